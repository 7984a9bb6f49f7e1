// FakeBudgetStore: a ratelimit::BudgetStore for tests. The GCRA arithmetic is the real
// InProcessBudgetStore's; on top of it the test can
//   - make TryTake fail with UNAVAILABLE (a shared store that cannot be reached), and
//   - hold TryTake calls of one key in flight (a slow Redis round trip): they wait until
//     Release(), while the test checks what other threads can do meanwhile.
// It counts TryTake calls per key.
#ifndef SAG_TESTS_SUPPORT_FAKE_BUDGET_STORE_H_
#define SAG_TESTS_SUPPORT_FAKE_BUDGET_STORE_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/ratelimit/budget_store.h"

namespace sag::testing {

class FakeBudgetStore final : public ratelimit::BudgetStore {
 public:
  explicit FakeBudgetStore(ratelimit::GcraOptions options = {}) : real_(options) {}

  absl::StatusOr<absl::Time> TryTake(absl::string_view key, ratelimit::Limit limit,
                                     absl::Time now) override;
  void BlockUntil(absl::string_view key, absl::Time until) override {
    real_.BlockUntil(key, until);
  }
  absl::Duration Interval(const ratelimit::Limit& limit) const override {
    return real_.Interval(limit);
  }

  // Every TryTake fails with UNAVAILABLE while set.
  void SetUnavailable(bool unavailable);
  // TryTake calls of `key` wait (without answering) until Release().
  void Hold(absl::string_view key);
  void Release();
  // Waits (real time, at most `timeout`) until `n` TryTake calls are held.
  bool WaitForHeld(int n, absl::Duration timeout = absl::Seconds(10));
  int Takes(absl::string_view key) const;

 private:
  ratelimit::InProcessBudgetStore real_;
  mutable absl::Mutex mu_;
  bool unavailable_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<std::string> held_key_ ABSL_GUARDED_BY(mu_);
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int> takes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sag::testing

#endif  // SAG_TESTS_SUPPORT_FAKE_BUDGET_STORE_H_
