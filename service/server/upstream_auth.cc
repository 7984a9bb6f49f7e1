#include "service/server/upstream_auth.h"

namespace sag {

void UpstreamAuthState::Record(const std::string& workspace, long http_status) {
  const bool rejected = http_status == 401 || http_status == 403;
  const bool accepted = http_status >= 200 && http_status <= 299;
  if (!rejected && !accepted) return;
  if (accepted && rejected_count_.load(std::memory_order_acquire) == 0) return;
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    if (rejected) {
      changed = rejected_.insert(workspace).second;
    } else {
      changed = rejected_.erase(workspace) > 0;
    }
    rejected_count_.store(rejected_.size(), std::memory_order_release);
  }
  if (observer_ == nullptr) return;
  if (rejected) {
    observer_->OnTokenRejected(workspace, http_status, changed);
  } else if (changed) {
    observer_->OnTokenAccepted(workspace);
  }
}

bool UpstreamAuthState::Rejected(absl::string_view workspace) const {
  if (rejected_count_.load(std::memory_order_acquire) == 0) return false;
  absl::MutexLock lock(&mu_);
  return rejected_.contains(workspace);
}

}  // namespace sag
