// Whether the Segment API currently rejects a workspace's token, learnt from the answers of the
// workspace's upstream calls, and who is told when that changes.
//
// Promises:
//  - A workspace is "rejected" from the first 401 or 403 answer to one of its calls until an
//    answer to one of its calls is a 2xx (the token works again). Other answers (404, 422, 429,
//    5xx, no answer at all) change nothing. Every workspace starts accepted.
//  - The observer hears of every 401/403 (`first` is true exactly once per rejection: for the
//    answer that made the workspace rejected) and of every return to accepted. It is called after
//    the state changed, with no lock held, on the thread that reports the answer; it never
//    receives the token.
//  - Thread-safe. Rejected() is cheap (an atomic load while no workspace is rejected;
//    else one short lock), no I/O.
#ifndef SAG_SERVICE_SERVER_UPSTREAM_AUTH_H_
#define SAG_SERVICE_SERVER_UPSTREAM_AUTH_H_

#include <atomic>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace sag {

// Told when the Segment API rejects or accepts a workspace's token. Implementations must be quick
// and must not block (they run on the threads that finish upstream calls).
class UpstreamAuthObserver {
 public:
  virtual ~UpstreamAuthObserver() = default;
  // A 401/403 answer for `workspace`; `first` when it made the workspace rejected.
  virtual void OnTokenRejected(const std::string& workspace, long http_status, bool first) = 0;
  // The first 2xx answer for `workspace` after it was rejected: it is accepted again.
  virtual void OnTokenAccepted(const std::string& workspace) = 0;
};

class UpstreamAuthState {
 public:
  // `observer` may be null; not owned, must outlive this.
  explicit UpstreamAuthState(UpstreamAuthObserver* observer) : observer_(observer) {}

  // Records the last HTTP status of one finished upstream call of `workspace` (0: no answer).
  void Record(const std::string& workspace, long http_status);
  bool Rejected(absl::string_view workspace) const;

 private:
  UpstreamAuthObserver* const observer_;
  // rejected_.size(), readable without the lock: while no workspace is rejected (the usual case)
  // a 2xx and Rejected() take no lock.
  std::atomic<size_t> rejected_count_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> rejected_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_UPSTREAM_AUTH_H_
