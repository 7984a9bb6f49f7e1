// TimerQueue's order; RealTimers: Stop() ends the thread, pending timers never run, and a Schedule
// after it is a no-op (returns 0); the function's closure is destroyed, not run.
#include <atomic>
#include <memory>
#include <vector>

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

// TimerQueue (RealTimers' and FakeClock's): earliest first, ties in the order scheduled; a removed
// timer never comes out; PopDue gives nothing before its time.
TEST(TimerQueueTest, EarliestFirstTiesInOrderRemovedNever) {
  TimerQueue q;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  std::vector<int> order;
  q.Add(t0 + absl::Seconds(2), [&] { order.push_back(3); });
  q.Add(t0 + absl::Seconds(1), [&] { order.push_back(1); });
  const Timers::TimerId removed = q.Add(t0 + absl::Seconds(1), [&] { order.push_back(-1); });
  q.Add(t0 + absl::Seconds(1), [&] { order.push_back(2); });
  EXPECT_TRUE(q.Remove(removed));
  EXPECT_FALSE(q.Remove(removed));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.Earliest(), t0 + absl::Seconds(1));
  EXPECT_FALSE(q.PopDue(t0).has_value());
  while (auto due = q.PopDue(t0 + absl::Seconds(1))) due->second();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  auto last = q.PopDue(absl::InfiniteFuture());
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->first, t0 + absl::Seconds(2));
  EXPECT_EQ(q.Earliest(), absl::InfiniteFuture());
}

TEST(TimerQueueTest, TakeAllEmptiesAndHandsTheFunctionsOver) {
  TimerQueue q;
  auto owned = std::make_shared<int>(1);
  q.Add(absl::InfiniteFuture(), [owned] {});
  q.Add(absl::InfinitePast(), [owned] {});
  EXPECT_EQ(owned.use_count(), 3);
  std::vector<std::function<void()>> taken = q.TakeAll();
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(taken.size(), 2u);
  EXPECT_EQ(owned.use_count(), 3);  // Not destroyed by the queue...
  taken.clear();
  EXPECT_EQ(owned.use_count(), 1);  // ...but by whoever took them.
  EXPECT_FALSE(q.PopDue(absl::InfiniteFuture()).has_value());
}

}  // namespace
}  // namespace sag
