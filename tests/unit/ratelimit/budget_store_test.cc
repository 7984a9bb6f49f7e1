#include "service/ratelimit/budget_store.h"

#include <vector>

#include "gtest/gtest.h"
#include "tests/support/windows.h"

namespace sag::ratelimit {
namespace {

using ::sag::testing::MaxInWindow;

const absl::Time kT0 = absl::FromUnixSeconds(1795000000);

// Offers a call every `step` for `span` and returns the times the store let through.
std::vector<absl::Time> Drive(BudgetStore& store, Limit limit, absl::Duration step,
                              absl::Duration span) {
  std::vector<absl::Time> sent;
  for (absl::Time t = kT0; t < kT0 + span; t += step) {
    auto r = store.TryTake("ws/Op", limit, t);
    EXPECT_TRUE(r.ok());
    if (*r <= t) sent.push_back(t);
  }
  return sent;
}

TEST(EmissionIntervalTest, PerOverRequestsTimesMargin) {
  EXPECT_EQ(EmissionInterval({10, absl::Seconds(1)}, {1, 0.0}), absl::Milliseconds(100));
  EXPECT_EQ(EmissionInterval({10, absl::Seconds(1)}, {1, 0.02}), absl::Milliseconds(102));
  EXPECT_EQ(EmissionInterval({5, absl::Minutes(1)}, {1, 0.0}), absl::Seconds(12));
}

TEST(InProcessBudgetStoreTest, TenPerSecondIsPacedEvenly) {
  InProcessBudgetStore store({/*burst=*/1, /*pacing_margin=*/0.0});
  const Limit limit{10, absl::Seconds(1)};
  std::vector<absl::Time> sent = Drive(store, limit, absl::Milliseconds(1), absl::Seconds(5));
  ASSERT_EQ(sent.size(), 50u);
  for (size_t i = 1; i < sent.size(); ++i) {
    EXPECT_EQ(sent[i] - sent[i - 1], absl::Milliseconds(100)) << i;
  }
  EXPECT_EQ(MaxInWindow(sent, absl::Seconds(1)), 10u);
}

TEST(InProcessBudgetStoreTest, DefaultMarginStaysUnderTheLimitInEveryWindow) {
  InProcessBudgetStore store;  // burst 1, margin 2%
  const Limit limit{10, absl::Seconds(1)};
  std::vector<absl::Time> sent = Drive(store, limit, absl::Milliseconds(1), absl::Seconds(10));
  EXPECT_LE(MaxInWindow(sent, absl::Seconds(1)), 10u);
  // Still uses at least 95% of the budget.
  EXPECT_GE(sent.size(), 95u);
  for (size_t i = 1; i < sent.size(); ++i) {
    EXPECT_EQ(sent[i] - sent[i - 1], absl::Milliseconds(102)) << i;
  }
}

TEST(InProcessBudgetStoreTest, RefusalTakesNothingAndNamesTheNextSlot) {
  InProcessBudgetStore store({1, 0.0});
  const Limit limit{10, absl::Seconds(1)};
  ASSERT_EQ(*store.TryTake("k", limit, kT0), kT0);
  // Asking again and again before the slot does not push it back.
  for (int i = 0; i < 50; ++i) {
    auto r = store.TryTake("k", limit, kT0 + absl::Milliseconds(i));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, kT0 + absl::Milliseconds(100));
  }
  EXPECT_EQ(*store.TryTake("k", limit, kT0 + absl::Milliseconds(100)),
            kT0 + absl::Milliseconds(100));
}

TEST(InProcessBudgetStoreTest, IdleTimeDoesNotAccumulateABurst) {
  InProcessBudgetStore store({1, 0.0});
  const Limit limit{10, absl::Seconds(1)};
  ASSERT_EQ(*store.TryTake("k", limit, kT0), kT0);
  const absl::Time later = kT0 + absl::Minutes(5);
  EXPECT_EQ(*store.TryTake("k", limit, later), later);
  EXPECT_EQ(*store.TryTake("k", limit, later), later + absl::Milliseconds(100));
}

TEST(InProcessBudgetStoreTest, BurstToleranceLetsBCallsGoBackToBack) {
  InProcessBudgetStore store({/*burst=*/3, 0.0});
  const Limit limit{10, absl::Seconds(1)};
  EXPECT_EQ(*store.TryTake("k", limit, kT0), kT0);
  EXPECT_EQ(*store.TryTake("k", limit, kT0), kT0);
  EXPECT_EQ(*store.TryTake("k", limit, kT0), kT0);
  EXPECT_EQ(*store.TryTake("k", limit, kT0), kT0 + absl::Milliseconds(100));
}

TEST(InProcessBudgetStoreTest, KeysAreIndependent) {
  InProcessBudgetStore store({1, 0.0});
  const Limit limit{1, absl::Minutes(1)};
  EXPECT_EQ(*store.TryTake("ws/A", limit, kT0), kT0);
  EXPECT_EQ(*store.TryTake("ws/B", limit, kT0), kT0);
  EXPECT_EQ(*store.TryTake("ws/A", limit, kT0), kT0 + absl::Minutes(1));
}

TEST(InProcessBudgetStoreTest, BlockUntilHoldsEveryoneAndNeverMovesEarlier) {
  InProcessBudgetStore store({/*burst=*/3, 0.0});
  const Limit limit{10, absl::Seconds(1)};
  store.BlockUntil("k", kT0 + absl::Seconds(30));
  store.BlockUntil("k", kT0 + absl::Seconds(10));  // Earlier: ignored.
  EXPECT_EQ(*store.TryTake("k", limit, kT0), kT0 + absl::Seconds(30));
  EXPECT_EQ(*store.TryTake("k", limit, kT0 + absl::Seconds(29)), kT0 + absl::Seconds(30));
  EXPECT_EQ(*store.TryTake("k", limit, kT0 + absl::Seconds(30)), kT0 + absl::Seconds(30));
}

TEST(InProcessBudgetStoreTest, InvalidLimitIsAnError) {
  InProcessBudgetStore store;
  EXPECT_EQ(store.TryTake("k", {0, absl::Seconds(1)}, kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.TryTake("k", {1, absl::ZeroDuration()}, kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(InProcessBudgetStoreTest, ManyKeysAreSweptWithoutChangingAnswers) {
  InProcessBudgetStore store({1, 0.0});
  const Limit limit{1, absl::Seconds(1)};
  for (int i = 0; i < 10000; ++i) {
    const absl::Time t = kT0 + absl::Milliseconds(i);
    EXPECT_EQ(*store.TryTake(std::to_string(i), limit, t), t);
  }
  // The most recent key is still paced.
  EXPECT_EQ(*store.TryTake("9999", limit, kT0 + absl::Milliseconds(9999)),
            kT0 + absl::Milliseconds(10999));
}

}  // namespace
}  // namespace sag::ratelimit
