// What every stage of the request path shares about one unary call: the reactor that answers it
// (`GatewayCall`) and what the call's log line and metrics need to know of it (`CallInfo`).
//
// Promises:
//  - A call is finished exactly once. Whoever claims it first (the answer, or the caller's
//    cancellation) finishes it; a later claimant leaves it alone. The claim flag is shared, so
//    work that outlives the call (a keyed write) can still ask whether it won.
//  - Cancellation reaches whatever the call waits on: its exchange (aborted) or its wait in a
//    store (abandoned), including one registered after the caller left.
//  - gRPC deletes the reactor in OnDone(), after the winner finished it.
#ifndef SAG_SERVICE_SERVER_CALL_H_
#define SAG_SERVICE_SERVER_CALL_H_

#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/memory_budget.h"
#include "service/server/exchange.h"
#include "service/server/trace_context.h"

namespace google::protobuf {
class Message;
}  // namespace google::protobuf

namespace sag {

class GatewayCall final : public grpc::ServerUnaryReactor {
 public:
  using ClaimFlag = std::shared_ptr<std::atomic<bool>>;
  // True for the first claimant only.
  static bool Claim(const ClaimFlag& flag) {
    return !flag->exchange(true, std::memory_order_acq_rel);
  }
  bool Claim() { return Claim(claimed_); }
  ClaimFlag claim_flag() const { return claimed_; }

  // For a call waiting in a store (the listing cache, an idempotency key): leaving means
  // abandoning the wait. Runs `abandon` at once when the caller already left.
  void SetAbandon(std::function<void(absl::Status)> abandon);
  // The call's upstream exchange: cancelled when the caller leaves (at once if it already did).
  void SetExchange(std::shared_ptr<Exchange> exchange);

  void OnCancel() override;
  void OnDone() override { delete this; }

  // The parsed request of a raw (listing) call: lives as long as the call.
  std::unique_ptr<google::protobuf::Message> request;
  // What the call holds of the memory budget, until gRPC is done with it.
  MemoryBudget::Charge memory;

 private:
  const ClaimFlag claimed_ = std::make_shared<std::atomic<bool>>(false);
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Exchange> exchange_ ABSL_GUARDED_BY(mu_);
  std::function<void(absl::Status)> abandon_ ABSL_GUARDED_BY(mu_);
};

// One call as its log line and metrics see it; filled by routing, read by the answer stage.
struct CallInfo {
  std::string rpc;
  std::string workspace;
  std::string caller;
  std::string space;
  std::string request_id;
  TraceContext trace;  // From the caller's traceparent/tracestate (trace_id "" when none).
  absl::Time start;
  std::string cache;  // x-cache value, for listings.
};

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_CALL_H_
