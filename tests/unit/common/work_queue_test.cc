// WorkQueue: functions run on the queue's threads (never the caller's), in order, several at once
// with several threads; Stop() waits for the running ones and drops the queued ones unrun.
#include "service/common/work_queue.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace sag {
namespace {

TEST(WorkQueueTest, RunsOnItsOwnThreadInOrder) {
  WorkQueue queue(1);
  absl::Mutex mu;
  std::vector<int> order;
  std::thread::id ran_on;
  absl::Notification done;
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(queue.Run([&, i] {
      absl::MutexLock lock(&mu);
      order.push_back(i);
      ran_on = std::this_thread::get_id();
      if (i == 4) done.Notify();
    }));
  }
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

// With two threads, a function that blocks does not hold up the next one: the second runs (and
// releases the first) while the first still waits.
TEST(WorkQueueTest, ABlockedFunctionDoesNotHoldUpTheNext) {
  WorkQueue queue(2);
  absl::Notification release, first_done;
  queue.Run([&] {
    release.WaitForNotification();
    first_done.Notify();
  });
  queue.Run([&] { release.Notify(); });
  EXPECT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(WorkQueueTest, StopWaitsForTheRunningAndDropsTheQueued) {
  auto queue = std::make_unique<WorkQueue>(1);
  absl::Notification started, release;
  std::atomic<bool> finished{false};
  std::atomic<int> queued_runs{0};
  auto owned = std::make_shared<int>(1);
  queue->Run([&] {
    started.Notify();
    release.WaitForNotification();
    finished = true;
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  queue->Run([&queued_runs, owned] { ++queued_runs; });
  EXPECT_EQ(queue->Queued(), 1u);
  std::thread stopper([&] { queue->Stop(); });
  // Wait (bounded) until Stop() has taken effect: Run() refuses from then on.
  const absl::Time limit = absl::Now() + absl::Seconds(10);
  while (queue->Run([] {}) && absl::Now() < limit) absl::SleepFor(absl::Milliseconds(1));
  release.Notify();
  stopper.join();
  EXPECT_TRUE(finished.load());  // Stop() returned only after the running function ended.
  EXPECT_EQ(queued_runs.load(), 0);
  EXPECT_EQ(owned.use_count(), 1);  // The queued closure was destroyed, not run.
  EXPECT_FALSE(queue->Run([&queued_runs] { ++queued_runs; }));
  queue.reset();
  EXPECT_EQ(queued_runs.load(), 0);
}

TEST(WorkQueueTest, AtLeastOneThread) {
  WorkQueue queue(0);
  absl::Notification ran;
  queue.Run([&] { ran.Notify(); });
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

}  // namespace
}  // namespace sag
