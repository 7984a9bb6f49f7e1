#include "service/server/call.h"

#include <utility>

namespace sag {

void GatewayCall::SetAbandon(std::function<void(absl::Status)> abandon) {
  bool cancelled;
  {
    absl::MutexLock lock(&mu_);
    abandon_ = abandon;
    cancelled = cancelled_;
  }
  if (cancelled) abandon(absl::CancelledError("call cancelled by the caller"));
}

void GatewayCall::SetExchange(std::shared_ptr<Exchange> exchange) {
  bool cancelled;
  {
    absl::MutexLock lock(&mu_);
    exchange_ = exchange;
    cancelled = cancelled_;
  }
  if (cancelled) exchange->Cancel();
}

void GatewayCall::OnCancel() {
  std::shared_ptr<Exchange> exchange;
  std::function<void(absl::Status)> abandon;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    exchange = exchange_;
    abandon = abandon_;
  }
  if (exchange != nullptr) exchange->Cancel();
  if (abandon) abandon(absl::CancelledError("call cancelled by the caller"));
  if (Claim()) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled by the caller"));
}

}  // namespace sag
