// The gateway's composition root: builds every component from a validated ServerConfig, owns
// them, serves gRPC (and /metrics) and shuts down on SIGTERM/SIGINT.
//
// Promises:
//  - Components are members declared in dependency order: each is built after, and destroyed
//    before, everything it uses (timers and the limiter go before the cache and Redis objects
//    they call into; the gRPC server goes first of all). Work that outlives the RPCs (a fetch
//    whose callers left, a retry timer, a queued call) is ended first, while the gateway it calls
//    back into still exists: StopBackgroundWork().
//  - Create() builds without listening: errors (an unopenable quota file, a bad Redis URL) come
//    back as a status. Start() binds the gRPC port and the metrics listener; an address in use is
//    an error naming the address (SO_REUSEPORT is off, so two gateways never share a port).
//  - Run() blocks until SIGTERM or SIGINT, then marks health NOT_SERVING, lets in-flight and
//    queued calls finish for shutdown_grace and returns 0; a second signal exits 1 at once.
//
//   sag::app::GatewayServer::BlockShutdownSignals();  // first, before any thread exists
//   auto server = sag::app::GatewayServer::Create(*config);
//   absl::Status started = (*server)->Start();
//   return (*server)->Run();
#ifndef SAG_SERVICE_APP_GATEWAY_SERVER_H_
#define SAG_SERVICE_APP_GATEWAY_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "service/app/server_config.h"
#include "service/auth/token_source.h"
#include "service/cache/in_memory_store.h"
#include "service/cache/listing_cache.h"
#include "service/common/clock.h"
#include "service/common/memory_budget.h"
#include "service/common/work_queue.h"
#include "service/ratelimit/budget_store.h"
#include "service/ratelimit/limiter.h"
#include "service/ratelimit/preview_quota.h"
#include "service/ratelimit/retry.h"
#include "service/redis/redis_budget_store.h"
#include "service/redis/redis_client.h"
#include "service/redis/redis_idempotency_store.h"
#include "service/redis/redis_invalidation.h"
#include "service/redis/redis_preview_quota.h"
#include "service/server/audiences_service.h"
#include "service/server/gateway.h"
#include "service/telemetry/gateway_metrics.h"
#include "service/telemetry/logger.h"
#include "service/telemetry/metrics.h"
#include "service/telemetry/metrics_server.h"
#include "service/upstream/curl_multi_client.h"

namespace sag::app {

class GatewayServer {
 public:
  // Blocks SIGTERM and SIGINT in the calling thread, so that every thread created afterwards
  // inherits the mask and Run() alone takes them. Call first thing in main().
  static void BlockShutdownSignals();

  static absl::StatusOr<std::unique_ptr<GatewayServer>> Create(ServerConfig config);
  ~GatewayServer();
  GatewayServer(const GatewayServer&) = delete;
  GatewayServer& operator=(const GatewayServer&) = delete;

  // Benchmark hook (tests/bench/floor_gateway.cc, the floor of bench_hits): registers `service`,
  // which the caller owns and keeps alive until this server is destroyed, on the gRPC server
  // beside the gateway's own services. Call before Start(). audiences-gateway never calls it and
  // no flag or config reaches it.
  void AddExtraService(grpc::Service* service) { extra_services_.push_back(service); }

  // Listens: the gRPC port, then /metrics. Unavailable naming the address when one cannot be bound.
  // Prints "audiences-gateway listening on HOST:PORT (upstream URL)" on stdout.
  absl::Status Start();
  // Serves until a signal (see the file comment); the exit code.
  int Run();

 private:
  explicit GatewayServer(ServerConfig config);
  absl::Status BuildMemory();
  absl::Status BuildTokens();
  absl::Status BuildCache();
  absl::Status BuildSharedState();
  absl::Status BuildGateway();
  // Ends the threads that run callbacks (timers, HTTP) and the limiter's waits; the destructor
  // calls it before any member is destroyed.
  void StopBackgroundWork();
  // "--listen: cannot listen on ADDRESS[: why]".
  absl::Status ListenError(const std::string& why) const;
  absl::Status StartGrpc();
  void LogStarted();
  // Re-reads every workspace's token, then PublishHealth().
  void RefreshHealth();
  // Sets every health entry from what is known (no I/O): "" and the service name SERVING while
  // not stopping and every workspace has a token; each workspace's entry
  // (kServiceName + "/workspace/" + name) SERVING while not stopping, it has a token, and the
  // Segment API does not reject its token.
  void PublishHealth();
  void WaitForSignals();

  const ServerConfig config_;
  sigset_t signals_;
  telemetry::Logger logger_;
  telemetry::Registry registry_;
  std::unique_ptr<telemetry::GatewayMetrics> metrics_;
  // Health state, and the observer that updates it (PublishHealth) when the Segment API rejects
  // or accepts a workspace's token: before the HTTP client, since a request it answers while
  // being destroyed still reports here (and then finds health_open_ false).
  absl::Mutex health_mu_;
  bool health_open_ ABSL_GUARDED_BY(health_mu_) = true;     // False once destruction begins.
  std::vector<bool> token_ok_ ABSL_GUARDED_BY(health_mu_);  // Per workspace, by RefreshHealth.
  std::unique_ptr<UpstreamAuthObserver> auth_observer_;
  // Before everything that holds a charge of it (calls, exchanges) or is counted in it (cache).
  std::unique_ptr<MemoryBudget> memory_;
  std::vector<std::unique_ptr<auth::TokenSource>> token_sources_;
  std::vector<Workspace> workspaces_;
  std::unique_ptr<cache::ListingCache> cache_;  // null: --cache_max_bytes=0
  // Shared state when --redis_url is set (else all null and the in-process ones below serve).
  std::unique_ptr<redis::RedisClient> redis_;
  std::unique_ptr<redis::RedisBudgetStore> redis_budget_;
  std::unique_ptr<redis::FallbackBudgetStore> fallback_budget_;
  std::unique_ptr<redis::RedisPreviewQuota> redis_quota_;
  std::unique_ptr<redis::RedisInvalidation> invalidation_;
  RealTimers timers_;
  // With Redis: the threads that run the limiter's timer work (a round trip to the shared budget
  // each), one per Redis connection, so lanes' round trips overlap. Null without Redis.
  std::unique_ptr<WorkQueue> store_work_;
  ratelimit::InProcessBudgetStore in_process_budget_;
  // Before the limiter: destroying the limiter answers its queued calls, which give their
  // preview quota back.
  std::unique_ptr<ratelimit::LocalPreviewQuota> local_quota_;
  std::unique_ptr<ratelimit::Limiter> limiter_;
  ratelimit::RetryBudget retry_budget_;
  ratelimit::Backoff backoff_;
  std::unique_ptr<upstream::CurlMultiClient> http_;  // Reset early: StopBackgroundWork().
  ExchangeEnv env_;
  // Keys and answers of idempotent writes: in Redis when --redis_url is set, else in memory.
  std::unique_ptr<idempotency::Store> idempotency_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<AudiencesServiceImpl> service_;
  std::unique_ptr<telemetry::MetricsServer> metrics_server_;
  std::vector<grpc::Service*> extra_services_;  // AddExtraService (benchmarks only).
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Notification stopping_;
  std::thread health_thread_;
};

}  // namespace sag::app

#endif  // SAG_SERVICE_APP_GATEWAY_SERVER_H_
