#include "service/app/observers.h"

#include <utility>

namespace sag::app {

std::function<void(bool ok, const std::string& why)> TokenReloadObserver(
    telemetry::GatewayMetrics* metrics, telemetry::Logger* logger, std::string name) {
  return [metrics, logger, name = std::move(name)](bool ok, const std::string& why) {
    metrics->token_reloads->WithLabels({name, ok ? "ok" : "error"})->Increment();
    if (ok) {
      logger->Info("token loaded", {{"workspace", name}});
    } else {
      logger->Warn("token not loaded; the last good token stays in use",
                   {{"workspace", name}, {"reason", why}});
    }
  };
}

std::function<void(bool up, const std::string& why)> RedisStateObserver(telemetry::Logger* logger,
                                                                        std::string shown) {
  return [logger, shown = std::move(shown)](bool up, const std::string& why) {
    if (up) {
      logger->Info("redis connected", {{"redis", shown}});
    } else {
      logger->Warn("redis unreachable; limits fall back to this replica's share",
                   {{"redis", shown}, {"reason", why}});
    }
  };
}

std::function<void(bool degraded, const std::string& why)> FallbackObserver(
    telemetry::GatewayMetrics* metrics, telemetry::Logger* logger) {
  return [metrics, logger](bool degraded, const std::string& why) {
    metrics->redis_degraded->Get()->Set(degraded ? 1 : 0);
    if (degraded) {
      logger->Warn("rate limits degraded to the local 1/N share", {{"reason", why}});
    } else {
      logger->Info("rate limits shared through redis again", {{"reason", why}});
    }
  };
}

std::function<void(bool up, const std::string& why)> InvalidationStateObserver(
    telemetry::Logger* logger) {
  return [logger](bool up, const std::string& why) {
    if (!up) logger->Warn("cache invalidations from other replicas paused", {{"reason", why}});
  };
}

std::function<void(const ratelimit::AnswerEvent&)> LimiterObserver(
    telemetry::GatewayMetrics* metrics, const auth::AccessPolicy* access) {
  return [metrics, access](const ratelimit::AnswerEvent& e) {
    const std::string rpc(e.lane.substr(e.lane.rfind('/') + 1));
    const std::vector<std::string> who = {
        access != nullptr && access->IsConfigured(e.caller) ? std::string(e.caller) : "other",
        std::string(ratelimit::PriorityName(e.priority))};
    if (e.outcome == ratelimit::Outcome::kAdmitted) {
      metrics->queue_wait->WithLabels({rpc})->ObserveDuration(e.waited);
      metrics->caller_admitted->WithLabels(who)->Increment();
      metrics->caller_queue_wait->WithLabels(who)->ObserveDuration(e.waited);
    } else if (e.outcome == ratelimit::Outcome::kQueueFull ||
               e.outcome == ratelimit::Outcome::kDeadlineRefused) {
      metrics->ratelimit_rejected->WithLabels({rpc})->Increment();
      metrics->caller_refused->WithLabels(who)->Increment();
    } else if (e.outcome == ratelimit::Outcome::kDeadlineExceeded) {
      metrics->caller_refused->WithLabels(who)->Increment();
    }
  };
}

std::function<void(absl::string_view rpc, long status, absl::Duration took)> AttemptObserver(
    telemetry::GatewayMetrics* metrics) {
  return [metrics](absl::string_view rpc, long status, absl::Duration took) {
    const std::string op(rpc);
    metrics->upstream_requests->WithLabels({op, status == 0 ? "error" : std::to_string(status)})
        ->Increment();
    metrics->upstream_duration->WithLabels({op})->ObserveDuration(took);
    if (status == 429) metrics->upstream_429->WithLabels({op})->Increment();
  };
}

namespace {

class AuthObserver final : public UpstreamAuthObserver {
 public:
  AuthObserver(telemetry::GatewayMetrics* metrics, telemetry::Logger* logger,
               std::function<void()> on_change)
      : metrics_(metrics), logger_(logger), on_change_(std::move(on_change)) {}

  void OnTokenRejected(const std::string& workspace, long http_status, bool first) override {
    metrics_->upstream_auth_failures->WithLabels({workspace, std::to_string(http_status)})
        ->Increment();
    if (!first) return;
    metrics_->upstream_auth_rejected->WithLabels({workspace})->Set(1);
    logger_->Error(
        "Segment API rejected the workspace's token; its listings bypass the cache and its "
        "health entry is NOT_SERVING until a call succeeds",
        {{"workspace", workspace}, {"status", http_status}});
    if (on_change_) on_change_();
  }

  void OnTokenAccepted(const std::string& workspace) override {
    metrics_->upstream_auth_rejected->WithLabels({workspace})->Set(0);
    logger_->Info("Segment API accepts the workspace's token again", {{"workspace", workspace}});
    if (on_change_) on_change_();
  }

 private:
  telemetry::GatewayMetrics* const metrics_;
  telemetry::Logger* const logger_;
  const std::function<void()> on_change_;
};

}  // namespace

std::unique_ptr<UpstreamAuthObserver> UpstreamAuthStateObserver(telemetry::GatewayMetrics* metrics,
                                                                telemetry::Logger* logger,
                                                                std::function<void()> on_change) {
  return std::make_unique<AuthObserver>(metrics, logger, std::move(on_change));
}

std::function<void(size_t evicted)> EvictionObserver(telemetry::GatewayMetrics* metrics) {
  return [metrics](size_t evicted) {
    metrics->cache_evictions->Get()->Increment(static_cast<double>(evicted));
  };
}

}  // namespace sag::app
