#include "service/telemetry/gateway_metrics.h"

#include <utility>

// Assigns *out from a StatusOr, or returns its error from the enclosing function.
#define SAG_ASSIGN_FAMILY(out, expr)            \
  do {                                          \
    auto result_ = (expr);                      \
    if (!result_.ok()) return result_.status(); \
    (out) = *result_;                           \
  } while (0)

namespace sag {
namespace telemetry {

std::vector<double> GatewayMetrics::CallDurationBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::vector<double> GatewayMetrics::QueueWaitBuckets() {
  return {0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

absl::StatusOr<std::unique_ptr<GatewayMetrics>> GatewayMetrics::Create(Registry* registry,
                                                                       absl::string_view version) {
  auto m = std::make_unique<GatewayMetrics>();
  SAG_ASSIGN_FAMILY(m->calls, registry->AddCounter("audiences_gateway_calls_total",
                                                   "gRPC calls finished, by RPC and gRPC code.",
                                                   {"rpc", "code"}));
  SAG_ASSIGN_FAMILY(m->call_duration,
                    registry->AddHistogram("audiences_gateway_call_duration_seconds",
                                           "gRPC call latency, queue wait and retries included.",
                                           {"rpc"}, CallDurationBuckets()));
  SAG_ASSIGN_FAMILY(m->calls_in_flight,
                    registry->AddGauge("audiences_gateway_calls_in_flight",
                                       "gRPC calls received and not yet finished."));
  SAG_ASSIGN_FAMILY(m->upstream_requests,
                    registry->AddCounter("audiences_gateway_upstream_requests_total",
                                         "HTTP requests to the Segment API, by operation and "
                                         "HTTP status (\"error\": no response).",
                                         {"operation", "status"}));
  SAG_ASSIGN_FAMILY(m->upstream_duration,
                    registry->AddHistogram("audiences_gateway_upstream_duration_seconds",
                                           "Latency of one HTTP request to the Segment API.",
                                           {"operation"}, CallDurationBuckets()));
  SAG_ASSIGN_FAMILY(
      m->upstream_429,
      registry->AddCounter("audiences_gateway_upstream_429_total",
                           "429 Too Many Requests received from the Segment API.", {"operation"}));
  SAG_ASSIGN_FAMILY(m->upstream_retries,
                    registry->AddCounter("audiences_gateway_upstream_retries_total",
                                         "Upstream requests re-sent after a 429, 5xx or "
                                         "connection failure.",
                                         {"operation"}));
  SAG_ASSIGN_FAMILY(m->upstream_auth_failures,
                    registry->AddCounter("audiences_gateway_upstream_auth_failures_total",
                                         "401/403 answers from the Segment API: the workspace's "
                                         "token is rejected.",
                                         {"workspace", "status"}));
  SAG_ASSIGN_FAMILY(m->upstream_auth_rejected,
                    registry->AddGauge("audiences_gateway_upstream_auth_rejected",
                                       "1 while the Segment API rejects the workspace's token "
                                       "(since a 401/403, until a success); else 0.",
                                       {"workspace"}));
  SAG_ASSIGN_FAMILY(m->queue_depth,
                    registry->AddGauge("audiences_gateway_queue_depth",
                                       "Calls waiting for a rate-limit slot.", {"operation"}));
  SAG_ASSIGN_FAMILY(m->queue_wait,
                    registry->AddHistogram("audiences_gateway_queue_wait_seconds",
                                           "Time calls waited for a rate-limit slot.",
                                           {"operation"}, QueueWaitBuckets()));
  SAG_ASSIGN_FAMILY(m->ratelimit_rejected,
                    registry->AddCounter("audiences_gateway_ratelimit_rejected_total",
                                         "Calls refused because no rate-limit slot would free up "
                                         "before their deadline.",
                                         {"operation"}));
  SAG_ASSIGN_FAMILY(m->caller_admitted,
                    registry->AddCounter("audiences_gateway_caller_admitted_total",
                                         "Calls given a rate-limit slot, by caller and class.",
                                         {"caller", "class"}));
  SAG_ASSIGN_FAMILY(m->caller_queue_wait,
                    registry->AddHistogram("audiences_gateway_caller_queue_wait_seconds",
                                           "Time admitted calls waited for a rate-limit slot, by "
                                           "caller and class.",
                                           {"caller", "class"}, QueueWaitBuckets()));
  SAG_ASSIGN_FAMILY(m->caller_refused,
                    registry->AddCounter("audiences_gateway_caller_refused_total",
                                         "Calls refused a rate-limit slot (queue full, wait beyond "
                                         "the deadline, deadline passed in the queue), by caller "
                                         "and class.",
                                         {"caller", "class"}));
  SAG_ASSIGN_FAMILY(
      m->cache_requests,
      registry->AddCounter("audiences_gateway_cache_requests_total",
                           "Listing calls by cache result (hit, miss, stale, bypass).",
                           {"rpc", "result"}));
  SAG_ASSIGN_FAMILY(m->cache_entries, registry->AddGauge("audiences_gateway_cache_entries",
                                                         "Entries in the listing cache."));
  SAG_ASSIGN_FAMILY(m->cache_bytes,
                    registry->AddGauge("audiences_gateway_cache_bytes",
                                       "Approximate bytes held by the listing cache."));
  SAG_ASSIGN_FAMILY(m->cache_evictions,
                    registry->AddCounter("audiences_gateway_cache_evictions_total",
                                         "Cache entries evicted to stay within the size limit."));
  SAG_ASSIGN_FAMILY(m->memory_refused,
                    registry->AddCounter("audiences_gateway_memory_refused_total",
                                         "Calls refused because the memory budget was full."));
  SAG_ASSIGN_FAMILY(m->memory_in_use,
                    registry->AddGauge("audiences_gateway_memory_in_use_bytes",
                                       "Memory budget in use: reserve, calls and listing cache."));
  SAG_ASSIGN_FAMILY(m->memory_limit, registry->AddGauge("audiences_gateway_memory_limit_bytes",
                                                        "The memory budget (--max_memory)."));
  SAG_ASSIGN_FAMILY(m->token_reloads,
                    registry->AddCounter("audiences_gateway_token_reloads_total",
                                         "Token file loads, by workspace and result (ok, error).",
                                         {"workspace", "result"}));
  SAG_ASSIGN_FAMILY(m->redis_degraded,
                    registry->AddGauge("audiences_gateway_redis_degraded",
                                       "1 while Redis is unreachable and rate limits fall back to "
                                       "this replica's 1/N share; 0 otherwise."));
  SAG_ASSIGN_FAMILY(m->build_info,
                    registry->AddGauge("audiences_gateway_build_info",
                                       "Build information; the value is always 1.", {"version"}));
  m->build_info->WithLabels({std::string(version)})->Set(1);
  return m;
}

#undef SAG_ASSIGN_FAMILY

}  // namespace telemetry
}  // namespace sag
