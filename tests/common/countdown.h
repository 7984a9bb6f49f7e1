// Counts finished asynchronous calls down to zero; a test or benchmark waits for all of them with a
// bound (never an unbounded wait: a call that never finishes fails the wait instead of hanging).
// Thread-safe.
#ifndef SAG_TESTS_COMMON_COUNTDOWN_H_
#define SAG_TESTS_COMMON_COUNTDOWN_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sag::testing {

class Countdown {
 public:
  explicit Countdown(int n) : left_(n) {}
  void Done() {
    absl::MutexLock lock(&mu_);
    --left_;
  }
  int left() {
    absl::MutexLock lock(&mu_);
    return left_;
  }
  // True once every call is done; false when `timeout` passed first.
  bool WaitFor(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto zero = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return left_ <= 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&zero), timeout);
  }

 private:
  absl::Mutex mu_;
  int left_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_COUNTDOWN_H_
