// FakeClock: a Clock and Timers for tests. Time moves only when the test says so (Advance, RunDue);
// timers fire as it moves, in time order, on the thread that moves it. Nothing sleeps.
#ifndef SAG_TESTS_SUPPORT_FAKE_CLOCK_H_
#define SAG_TESTS_SUPPORT_FAKE_CLOCK_H_

#include <functional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"

namespace sag {

// A clock that moves only when told, with timers that fire as it moves (on the thread that calls
// Advance/Set, in time order). For tests.
class FakeClock final : public Clock, public Timers {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1795000000));
  absl::Time Now() const override;
  TimerId Schedule(absl::Time when, std::function<void()> fn) override;
  bool Cancel(TimerId id) override;
  // Moves time forward by `d`, running every timer that comes due, in order.
  void Advance(absl::Duration d);
  // Runs timers already due without moving time (those scheduled "now").
  void RunDue() { Advance(absl::ZeroDuration()); }
  size_t Pending() const;

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  TimerQueue queue_ ABSL_GUARDED_BY(mu_);  // The same queue as RealTimers'.
};

}  // namespace sag

#endif  // SAG_TESTS_SUPPORT_FAKE_CLOCK_H_
