#include "service/ratelimit/retry.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"

namespace sag::ratelimit {
namespace {

TEST(RetryBudgetTest, FloorAllowsAFewRetriesWithoutTraffic) {
  FakeClock clock;
  RetryBudget budget(&clock);
  EXPECT_TRUE(budget.TryRetry());
  EXPECT_TRUE(budget.TryRetry());
  EXPECT_TRUE(budget.TryRetry());
  EXPECT_FALSE(budget.TryRetry());
  EXPECT_EQ(budget.Retries(), 3);
}

TEST(RetryBudgetTest, RetriesStayWithinTwentyPercentOfRequests) {
  FakeClock clock;
  RetryBudget budget(&clock);
  int granted = 0;
  // 1000 requests over 10 s, each of which fails and wants a retry.
  for (int i = 0; i < 1000; ++i) {
    budget.OnRequest();
    if (budget.TryRetry()) ++granted;
    clock.Advance(absl::Milliseconds(10));
  }
  EXPECT_LE(granted, 200 + 3);
  EXPECT_GE(granted, 190);
  EXPECT_LE(static_cast<double>(budget.Retries()), 0.2 * budget.Requests() + 3);
}

TEST(RetryBudgetTest, ExactRatioAtOneInstant) {
  FakeClock clock;
  RetryBudget budget(&clock);
  for (int i = 0; i < 100; ++i) budget.OnRequest();
  int granted = 0;
  while (budget.TryRetry()) ++granted;
  EXPECT_EQ(granted, 20 + 3);  // The share plus the reserve.
}

TEST(RetryBudgetTest, WindowSlides) {
  FakeClock clock;
  RetryBudget budget(&clock);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(budget.TryRetry());
  EXPECT_FALSE(budget.TryRetry());
  clock.Advance(absl::Seconds(5));
  EXPECT_FALSE(budget.TryRetry());  // Still inside the 10 s window.
  clock.Advance(absl::Seconds(5));
  EXPECT_TRUE(budget.TryRetry());  // The old retries left the window.
  EXPECT_EQ(budget.Retries(), 1);
}

TEST(RetryBudgetTest, ThreadSafe) {
  FakeClock clock;
  RetryBudget budget(&clock, {/*ratio=*/0.2, /*min_retries=*/0});
  std::vector<std::thread> threads;
  std::atomic<int> granted{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        budget.OnRequest();
        if (budget.TryRetry()) granted.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(budget.Requests(), 4000);
  EXPECT_LE(granted.load(), 800);
  EXPECT_EQ(budget.Retries(), granted.load());
}

TEST(BackoffTest, CeilingDoublesUpToTheCap) {
  Backoff backoff;
  EXPECT_EQ(backoff.Ceiling(0), absl::Milliseconds(100));
  EXPECT_EQ(backoff.Ceiling(1), absl::Milliseconds(100));
  EXPECT_EQ(backoff.Ceiling(2), absl::Milliseconds(200));
  EXPECT_EQ(backoff.Ceiling(3), absl::Milliseconds(400));
  EXPECT_EQ(backoff.Ceiling(6), absl::Milliseconds(3200));
  EXPECT_EQ(backoff.Ceiling(7), absl::Seconds(5));
  EXPECT_EQ(backoff.Ceiling(1000000), absl::Seconds(5));
}

TEST(BackoffTest, FullJitterSpansZeroToTheCeiling) {
  double u = 0.0;
  Backoff backoff({}, [&u] { return u; });
  EXPECT_EQ(backoff.Delay(3), absl::ZeroDuration());
  u = 0.5;
  EXPECT_EQ(backoff.Delay(3), absl::Milliseconds(200));
  u = 0.999999999999;
  EXPECT_LT(backoff.Delay(3), absl::Milliseconds(400));
  u = 1.0;  // A misbehaving source is clamped below the ceiling.
  EXPECT_LT(backoff.Delay(3), absl::Milliseconds(400));
  u = -1.0;
  EXPECT_EQ(backoff.Delay(3), absl::ZeroDuration());
}

TEST(BackoffTest, DefaultRandomSourceStaysInBoundsAndSpreads) {
  Backoff backoff({absl::Milliseconds(100), absl::Seconds(5)});
  for (int attempt = 1; attempt <= 10; ++attempt) {
    absl::Duration lo = absl::InfiniteDuration(), hi = absl::ZeroDuration();
    for (int i = 0; i < 500; ++i) {
      const absl::Duration d = backoff.Delay(attempt);
      ASSERT_GE(d, absl::ZeroDuration());
      ASSERT_LT(d, backoff.Ceiling(attempt));
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    // Full jitter: the samples cover most of [0, ceiling).
    EXPECT_LT(lo, backoff.Ceiling(attempt) / 10) << attempt;
    EXPECT_GT(hi, backoff.Ceiling(attempt) * 9 / 10) << attempt;
  }
}

}  // namespace
}  // namespace sag::ratelimit
