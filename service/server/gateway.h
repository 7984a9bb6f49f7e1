// The gateway's request path, shared by all 14 RPCs, as stages with one job each:
//
//   Route (routing.h: operation, caller, access, workspace, deadline)
//     -> [a listing: the cache front end; a fresh hit is answered here]
//     -> Plan (planning.h: REST request and token, only for a call that goes upstream)
//     -> Exchange (exchange.h: monthly quota; admission, admission.h, the limiter's queue; HTTP;
//        429 requeue; retries; the REST answer decoded)
//     -> Answer (answer.h: invalidation, audit, metrics, the call's log line) -> the reply.
//
// The Gateway is the orchestrator: it owns the stages, charges each call its share of the
// memory budget, and binds a call's reactor (call.h) to whatever it waits on.
//
// No thread waits on a call: Handle() returns a reactor at once; the exchange finishes it from a
// limiter, timer or HTTP thread; a caller that cancels (or whose deadline passes) leaves the
// queue and aborts its upstream request. Except a write sent with `idempotency-key` (with
// GatewayParts::idempotency): it runs on its own deadline, max(caller's, now +
// upstream_timeout), so that a retry with the key finds its answer; a repeat of it replays that
// answer (`idempotent-replayed: true`) or waits for it, parked, within its own deadline.
//
// Thread-safe: Handle() may be called from any number of gRPC threads.
#ifndef SAG_SERVICE_SERVER_GATEWAY_H_
#define SAG_SERVICE_SERVER_GATEWAY_H_

#include <google/protobuf/message.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/auth/access.h"
#include "service/auth/token_source.h"
#include "service/cache/listing_cache.h"
#include "service/idempotency/idempotency.h"
#include "service/operations/request_builder.h"
#include "service/ratelimit/limits.h"
#include "service/server/answer.h"
#include "service/server/call.h"
#include "service/server/exchange.h"
#include "service/server/planning.h"
#include "service/server/routing.h"
#include "service/server/trace_context.h"
#include "service/server/upstream_auth.h"
#include "service/telemetry/gateway_metrics.h"
#include "service/telemetry/logger.h"

namespace grpc {
class ByteBuffer;
class CallbackServerContext;
}  // namespace grpc

namespace sag {

struct GatewayOptions {
  std::string upstream_url = "https://api.segmentapis.com";  // Default for every workspace.
  ratelimit::LimitOverrides rate_limits;                     // --rate_limits
  ratelimit::Limit api_default{60, absl::Minutes(1)};        // Ops without a documented limit.
  std::vector<Workspace> workspaces;                         // At least one.
};

// Optional parts; none owned.
struct GatewayParts {
  cache::ListingCache* cache = nullptr;  // Without it listings are never cached (x-cache: bypass).
  const auth::AccessPolicy* access = nullptr;  // Without it every caller may call everything.
  // Tells the other replicas which listing tags a write dropped (Redis pub/sub); optional.
  std::function<void(const std::vector<std::string>& tags)> publish_invalidations;
  // Keys and answers of writes sent with `idempotency-key`; without it the metadata is ignored.
  idempotency::Store* idempotency = nullptr;
};

// Where the gateway reports; all optional, none owned.
struct GatewayObservers {
  telemetry::GatewayMetrics* metrics = nullptr;
  telemetry::Logger* logger = nullptr;
  // Told when the Segment API rejects (401/403) or accepts again a workspace's token.
  UpstreamAuthObserver* upstream_auth = nullptr;
};

class Gateway {
 public:
  // Builds the stages (routing binds every row of the operation table to its method of
  // segment.audiences.v1.AudiencesService and fails when they disagree; planning validates the
  // URLs). `env` must outlive the Gateway.
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(GatewayOptions options,
                                                         const ExchangeEnv* env,
                                                         GatewayParts parts = {},
                                                         GatewayObservers observers = {});

  // Serves one call of `rpc` (not a cacheable listing: those go to HandleListing). `request` and
  // `response` belong to gRPC and live until the returned reactor is done.
  grpc::ServerUnaryReactor* Handle(absl::string_view rpc, grpc::CallbackServerContext* context,
                                   const google::protobuf::Message* request,
                                   google::protobuf::Message* response);

  // Serves one call of a cacheable listing RPC registered as a raw method: `request` and
  // `response` are the wire bytes. A cache hit answers with the stored bytes themselves (shared,
  // not copied, parsed or re-serialised). Same lifetimes as Handle().
  grpc::ServerUnaryReactor* HandleListing(absl::string_view rpc,
                                          grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response);

  const Router& router() const { return *router_; }
  const Planner& planner() const { return *planner_; }

  // True from the first 401/403 answer for `workspace` until its next 2xx (upstream_auth.h). While
  // true, the workspace's listings bypass the cache (never fresh or stale from it).
  bool TokenRejected(absl::string_view workspace) const { return auth_state_->Rejected(workspace); }

 private:
  using Call = GatewayCall;
  Gateway(const ExchangeEnv* env, std::unique_ptr<Router> router, std::unique_ptr<Planner> planner,
          GatewayParts parts, GatewayObservers observers);

  // Routing for every call: identify it (it is reported from here on), charge its share of the
  // memory budget into `memory`, route it. Finishes nothing.
  absl::Status Routing(absl::string_view rpc, grpc::CallbackServerContext* context,
                       const google::protobuf::Message& request, CallInfo& info,
                       MemoryBudget::Charge& memory, Routed& routed);
  // Routing, then Plan (every call that is not a listing); returns false after finishing `call`
  // with the error.
  bool Admit(absl::string_view rpc, grpc::CallbackServerContext* context,
             const google::protobuf::Message& request, Call* call, CallInfo& info,
             ExchangeParams& params);
  // Reports `status` and finishes `call` with it, unless already finished.
  void Fail(Call* call, const CallInfo& info, const absl::Status& status);
  // A call's share of the memory budget (env->memory), into `into`: the parked cost and twice
  // the request's size; or RESOURCE_EXHAUSTED.
  absl::Status ChargeMemory(size_t request_bytes, MemoryBudget::Charge& into);
  // `done`, after the workspace's token state has learnt the exchange's last HTTP status.
  Exchange::Done WatchingAuth(std::string workspace, Exchange::Done done);

  // --- The listing front end (gateway_listing.cc). ---
  // What the cache says of a routed listing before anything is planned.
  struct ListingLookup {
    bool bypass = true;  // No cache, a rejected token, or cache-control: no-cache.
    std::string key;     // Empty without a cache.
    std::optional<cache::ListingCache::Bytes> hit;  // A fresh entry.
  };
  ListingLookup LookUp(grpc::CallbackServerContext* context, const CallInfo& info,
                       const google::protobuf::Message& request);
  // Answers at once, on gRPC's default reactor (a call that never waits needs no reactor of its
  // own: nothing to cancel, no executor hop when gRPC is done with it).
  static grpc::ServerUnaryReactor* FinishedAtOnce(grpc::CallbackServerContext* context,
                                                  const grpc::Status& status);
  // A fresh hit: x-cache, the cache metric, the call line, the stored bytes themselves.
  grpc::ServerUnaryReactor* AnswerFreshHit(grpc::CallbackServerContext* context,
                                           grpc::ByteBuffer* response, CallInfo& info,
                                           const cache::ListingCache::Bytes& hit);
  // Serves a listing that was not a fresh hit through the cache (singleflight miss, stale,
  // bypass), or straight from the upstream when no cache is configured; plans it first.
  void ServeListing(grpc::CallbackServerContext* context, Call* call,
                    std::shared_ptr<CallInfo> info, const google::protobuf::Message& request,
                    grpc::ByteBuffer* response, const Routed& routed, ListingLookup lookup);
  // The cache key: workspace, space, rpc and the request's deterministic bytes.
  static std::string ListingKey(const CallInfo& info, const google::protobuf::Message& request);
  // A listing's outcome: x-cache value, the cache metric, the call's metrics and log line (the
  // exchange's report only when the answer came from the upstream).
  void ReportListing(CallInfo& info, cache::Outcome outcome, const absl::Status& status,
                     const ExchangeReport& report);
  // Answers a listing call once: x-cache, the cache metric, the log line, the bytes or the error.
  void AnswerListing(grpc::CallbackServerContext* context, Call* call, grpc::ByteBuffer* response,
                     CallInfo& info, absl::StatusOr<cache::ListingCache::Bytes> value,
                     cache::Outcome outcome, const ExchangeReport& report);
  // Without a cache: one exchange on the caller's deadline, answered as a bypass.
  void FetchUncached(Call* call, const CallInfo& info, ExchangeParams params,
                     cache::ListingCache::Done finished, std::shared_ptr<ExchangeReport> report);
  // The fetch the cache runs for every caller waiting on the key: on its own deadline
  // (now + upstream_timeout), not bound to any caller.
  cache::ListingCache::Fetch SharedFetch(std::string workspace, ExchangeParams params,
                                         std::shared_ptr<ExchangeReport> report);
  // A caller waiting on the cache leaves at its deadline (less a margin) or when it cancels.
  void WatchListingWait(grpc::CallbackServerContext* context, Call* call,
                        cache::ListingCache::WaiterId waiter,
                        const std::shared_ptr<std::atomic<Timers::TimerId>>& timer);

  // --- Writes sent with `idempotency-key` (gateway_keyed.cc). ---
  // Checks the key, then replays the recorded answer, parks the call until the first call with
  // the key answers, or runs it (StartKeyedWrite).
  void ServeKeyedWrite(grpc::CallbackServerContext* context, Call* call,
                       std::shared_ptr<CallInfo> info, const google::protobuf::Message& request,
                       google::protobuf::Message* response, ExchangeParams params);
  // Answers a repeat with the recorded answer (idempotent-replayed: true), or with why it has
  // none (its wait ended), unless `claim` (the call's, shared) was already taken.
  void Replay(grpc::CallbackServerContext* context, Call* call,
              const std::shared_ptr<std::atomic<bool>>& claim, const CallInfo& info,
              google::protobuf::Message* response, absl::StatusOr<idempotency::Answer> answer);
  void StartKeyedWrite(Call* call, std::shared_ptr<CallInfo> info,
                       const google::protobuf::Message& request,
                       google::protobuf::Message* response, ExchangeParams params,
                       std::string scope);

  const ExchangeEnv* const env_;
  const std::unique_ptr<Router> router_;
  const std::unique_ptr<Planner> planner_;
  const GatewayParts parts_;
  Answerer answer_;
  // Shared with the exchanges' callbacks: a background listing refresh may report after the
  // Gateway is gone.
  const std::shared_ptr<UpstreamAuthState> auth_state_;
};

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_GATEWAY_H_
