// RealTimers: Stop() ends the thread, pending timers never run, and a Schedule after it is a
// no-op (returns 0); the function's closure is destroyed, not run.
#include <atomic>
#include <memory>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/common/clock.h"

namespace sag {
namespace {

TEST(RealTimersTest, RunsADueTimer) {
  RealTimers timers;
  absl::Notification ran;
  EXPECT_NE(timers.Schedule(absl::Now(), [&] { ran.Notify(); }), 0u);
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(RealTimersTest, StopDropsPendingTimersWithoutRunningThem) {
  RealTimers timers;
  std::atomic<int> runs{0};
  auto owned = std::make_shared<int>(1);
  timers.Schedule(absl::Now() + absl::Hours(1), [&runs, owned] { ++runs; });
  EXPECT_EQ(owned.use_count(), 2);
  timers.Stop();
  EXPECT_EQ(timers.Pending(), 0u);
  EXPECT_EQ(owned.use_count(), 1);  // The closure was destroyed...
  EXPECT_EQ(runs.load(), 0);        // ...not run.
}

TEST(RealTimersTest, ScheduleAfterStopNeverRuns) {
  RealTimers timers;
  timers.Stop();
  std::atomic<int> runs{0};
  auto owned = std::make_shared<int>(1);
  EXPECT_EQ(timers.Schedule(absl::Now(), [&runs, owned] { ++runs; }), 0u);
  EXPECT_EQ(owned.use_count(), 1);
  EXPECT_EQ(timers.Pending(), 0u);
  EXPECT_FALSE(timers.Cancel(0));
  timers.Stop();  // Twice is fine; so is the destructor after it.
  EXPECT_EQ(runs.load(), 0);
}

}  // namespace
}  // namespace sag
