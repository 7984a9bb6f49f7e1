// service/idempotency/memory_store.h on the fake clock: claim, replay, conflict, release, waiting
// repeats (answered, abandoned, timed out), expiry, the LRU bound and refusal when full.
#include "service/idempotency/memory_store.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"

namespace sag::idempotency {
namespace {

constexpr absl::Time kNoWait = absl::InfiniteFuture();

// Collects what a parked call receives.
struct Received {
  std::vector<absl::StatusOr<Answer>> got;
  Store::Ready Ready() {
    return [this](absl::StatusOr<Answer> a) { got.push_back(std::move(a)); };
  }
};

class MemoryStoreTest : public ::testing::Test {
 protected:
  explicit MemoryStoreTest(size_t max_entries = 3)
      : store_(MemoryStoreOptions{max_entries, absl::Hours(24)}, &clock_, &clock_) {}

  absl::StatusOr<Store::Begun> Begin(const std::string& key, const std::string& fp = "fp",
                                     absl::Time wait_until = kNoWait) {
    return store_.Begin(key, fp, wait_until, kNoWait, received_.Ready());
  }

  FakeClock clock_;
  MemoryStore store_;
  Received received_;
  const Answer created_{0, "", "", "audience aud_1"};
};

TEST_F(MemoryStoreTest, FirstCallClaimsThenTheSameRequestReplays) {
  auto first = Begin("k");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->state, Store::State::kClaimed);
  store_.Finish("k", created_, /*record=*/true);
  auto again = Begin("k");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state, Store::State::kReplay);
  EXPECT_TRUE(again->answer == created_);
  EXPECT_TRUE(received_.got.empty());
}

TEST_F(MemoryStoreTest, ErrorsAreReplayedToo) {
  ASSERT_TRUE(Begin("k").ok());
  Answer refused{3, "Segment API answered HTTP 422", "details", ""};
  store_.Finish("k", refused, true);
  auto again = Begin("k");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->answer == refused);
}

TEST_F(MemoryStoreTest, SameKeyOtherRequestIsInvalidArgumentWhileRunningAndAfter) {
  ASSERT_TRUE(Begin("k", "fp1").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(Begin("k", "fp2").status()));
  store_.Finish("k", created_, true);
  EXPECT_TRUE(absl::IsInvalidArgument(Begin("k", "fp2").status()));
  EXPECT_EQ(Begin("k", "fp1")->state, Store::State::kReplay);
}

TEST_F(MemoryStoreTest, RepeatWaitsAndGetsTheFirstAnswer) {
  ASSERT_EQ(Begin("k")->state, Store::State::kClaimed);
  auto repeat = Begin("k");
  ASSERT_TRUE(repeat.ok());
  EXPECT_EQ(repeat->state, Store::State::kWait);
  EXPECT_EQ(store_.waiters(), 1u);
  EXPECT_TRUE(received_.got.empty());
  store_.Finish("k", created_, true);
  ASSERT_EQ(received_.got.size(), 1u);
  ASSERT_TRUE(received_.got[0].ok());
  EXPECT_TRUE(*received_.got[0] == created_);
  EXPECT_EQ(store_.waiters(), 0u);
}

TEST_F(MemoryStoreTest, ReleaseFreesTheKeyAndStillAnswersWaiters) {
  ASSERT_EQ(Begin("k")->state, Store::State::kClaimed);
  ASSERT_EQ(Begin("k")->state, Store::State::kWait);
  Answer refused{8, "the wait exceeds your deadline", "retry-info", ""};
  store_.Finish("k", refused, /*record=*/false);
  ASSERT_EQ(received_.got.size(), 1u);
  EXPECT_TRUE(*received_.got[0] == refused);
  EXPECT_EQ(store_.entries(), 0u);
  EXPECT_EQ(Begin("k")->state, Store::State::kClaimed);  // A retry runs again.
}

TEST_F(MemoryStoreTest, WaiterLeavesAtItsDeadlineOrWhenAbandoned) {
  ASSERT_EQ(Begin("k")->state, Store::State::kClaimed);
  auto timed = Begin("k", "fp", clock_.Now() + absl::Seconds(1));
  auto cancelled = Begin("k");
  ASSERT_EQ(timed->state, Store::State::kWait);
  ASSERT_EQ(cancelled->state, Store::State::kWait);
  store_.Abandon(cancelled->waiter, absl::CancelledError("gone"));
  ASSERT_EQ(received_.got.size(), 1u);
  EXPECT_TRUE(absl::IsCancelled(received_.got[0].status()));
  store_.Abandon(cancelled->waiter, absl::CancelledError("twice"));  // No second answer.
  clock_.Advance(absl::Milliseconds(999));
  EXPECT_EQ(received_.got.size(), 1u);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_EQ(received_.got.size(), 2u);
  EXPECT_TRUE(absl::IsDeadlineExceeded(received_.got[1].status()));
  store_.Finish("k", created_, true);  // Nobody left to answer.
  EXPECT_EQ(received_.got.size(), 2u);
  EXPECT_EQ(clock_.Pending(), 0u);
}

TEST_F(MemoryStoreTest, AnswerExpiresAfterTheTtl) {
  ASSERT_TRUE(Begin("k", "fp1").ok());
  store_.Finish("k", created_, true);
  clock_.Advance(absl::Hours(24) - absl::Seconds(1));
  EXPECT_EQ(Begin("k", "fp1")->state, Store::State::kReplay);
  clock_.Advance(absl::Seconds(1));
  auto after = Begin("k", "fp2");  // Free again: even another request may use it.
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state, Store::State::kClaimed);
}

TEST_F(MemoryStoreTest, FullEvictsTheLeastRecentlyUsedAnswer) {
  for (const char* k : {"a", "b", "c"}) {
    ASSERT_TRUE(Begin(k).ok());
    store_.Finish(k, created_, true);
  }
  EXPECT_EQ(Begin("a")->state, Store::State::kReplay);  // "a" used: "b" is now the oldest.
  ASSERT_EQ(Begin("d")->state, Store::State::kClaimed);
  EXPECT_EQ(store_.entries(), 3u);
  EXPECT_EQ(Begin("a")->state, Store::State::kReplay);
  EXPECT_EQ(Begin("c")->state, Store::State::kReplay);
  EXPECT_EQ(Begin("b")->state, Store::State::kClaimed);  // Its answer was evicted.
}

TEST_F(MemoryStoreTest, FullOfCallsInProgressRefusesANewKeyAndEvictsNone) {
  for (const char* k : {"a", "b", "c"}) ASSERT_EQ(Begin(k)->state, Store::State::kClaimed);
  absl::StatusOr<Store::Begun> refused = Begin("d");
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  // The calls in progress keep their keys: repeats wait, not run.
  for (const char* k : {"a", "b", "c"}) EXPECT_EQ(Begin(k)->state, Store::State::kWait);
  store_.Finish("b", created_, /*record=*/false);
  EXPECT_EQ(Begin("d")->state, Store::State::kClaimed);
}

TEST_F(MemoryStoreTest, ExpiredAnswersMakeRoomBeforeLiveOnes) {
  ASSERT_TRUE(Begin("old").ok());
  store_.Finish("old", created_, true);
  clock_.Advance(absl::Hours(25));
  for (const char* k : {"a", "b", "c"}) ASSERT_EQ(Begin(k)->state, Store::State::kClaimed);
  EXPECT_EQ(store_.entries(), 3u);
}

}  // namespace
}  // namespace sag::idempotency
