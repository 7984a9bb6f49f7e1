// The gateway's telemetry bridges: for each component, the observer (callback) it is given, which
// turns what the component reports into metrics and log lines. Components know nothing of
// Prometheus or the logger; every metric is pushed by the component that changes it (or read at
// scrape time for gauges), none is polled by a timer thread.
//
// Each function returns a callback that only increments/sets metrics and writes log lines: quick,
// non-blocking, safe on any thread. `metrics` and `logger` must outlive the callbacks.
#ifndef SAG_SERVICE_APP_OBSERVERS_H_
#define SAG_SERVICE_APP_OBSERVERS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/auth/access.h"
#include "service/ratelimit/limiter.h"
#include "service/server/upstream_auth.h"
#include "service/telemetry/gateway_metrics.h"
#include "service/telemetry/logger.h"

namespace sag::app {

// FileTokenSource: every (re)load of workspace `name`'s token file.
std::function<void(bool ok, const std::string& why)> TokenReloadObserver(
    telemetry::GatewayMetrics* metrics, telemetry::Logger* logger, std::string name);

// RedisClient: connected / unreachable (`shown` is the URL without its password).
std::function<void(bool up, const std::string& why)> RedisStateObserver(telemetry::Logger* logger,
                                                                        std::string shown);

// FallbackBudgetStore: limits degraded to this replica's share, or shared again.
std::function<void(bool degraded, const std::string& why)> FallbackObserver(
    telemetry::GatewayMetrics* metrics, telemetry::Logger* logger);

// RedisInvalidation: the subscription to other replicas' writes paused.
std::function<void(bool up, const std::string& why)> InvalidationStateObserver(
    telemetry::Logger* logger);

// Limiter: queue wait of admitted calls, refusals (queue full, deadline), per operation and per
// caller and class (a caller `access` does not name configured counts as "other"). `access` may
// be null (every caller "other").
std::function<void(const ratelimit::AnswerEvent&)> LimiterObserver(
    telemetry::GatewayMetrics* metrics, const auth::AccessPolicy* access);

// Exchange: every upstream attempt (status 0 = transport failure).
std::function<void(absl::string_view rpc, long status, absl::Duration took)> AttemptObserver(
    telemetry::GatewayMetrics* metrics);

// Gateway: the Segment API rejected a workspace's token (401/403), or accepts it again. Counts
// every rejection (upstream_auth_failures_total), sets upstream_auth_rejected, logs the first one
// at error level naming the workspace and the status (never the token) and the return at info, and
// after a change of state calls `on_change` (the health entries).
std::unique_ptr<UpstreamAuthObserver> UpstreamAuthStateObserver(telemetry::GatewayMetrics* metrics,
                                                                telemetry::Logger* logger,
                                                                std::function<void()> on_change);

// InMemoryStore: entries evicted to stay within the byte bound.
std::function<void(size_t evicted)> EvictionObserver(telemetry::GatewayMetrics* metrics);

}  // namespace sag::app

#endif  // SAG_SERVICE_APP_OBSERVERS_H_
