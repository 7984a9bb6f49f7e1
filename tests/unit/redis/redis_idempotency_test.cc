// service/redis/redis_idempotency_store.h against a real redis-server: two stores on one Redis
// stand for two replicas. Claim, replay, conflict, waiting across replicas (poll) and on one
// (woken by Finish), release, the waiter's deadline, key expiry and Redis down.
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/redis/redis_client.h"
#include "service/redis/redis_idempotency_store.h"
#include "tests/common/redis_server.h"

namespace sag::redis {
namespace {

using idempotency::Answer;
using idempotency::Store;
constexpr absl::Time kNoWait = absl::InfiniteFuture();

// What one parked call received (once).
struct Parked {
  absl::Notification done;
  absl::StatusOr<Answer> got = absl::UnknownError("nothing yet");
  Store::Ready Ready() {
    return [this](absl::StatusOr<Answer> a) {
      got = std::move(a);
      done.Notify();
    };
  }
  bool Wait() { return done.WaitForNotificationWithTimeout(absl::Seconds(10)); }
};

class RedisIdempotencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!sag::testing::RedisServerInstalled()) GTEST_SKIP() << "no redis-server";
    server_ = std::make_unique<sag::testing::RedisServer>();
    ASSERT_TRUE(server_->Start().ok());
    RedisOptions o;
    o.url = server_->url();
    o.command_timeout = absl::Milliseconds(200);
    o.min_backoff = absl::Milliseconds(10);
    o.max_backoff = absl::Milliseconds(100);
    client_ = *RedisClient::Create(o);
    ASSERT_TRUE(client_->WaitConnected(absl::Seconds(5)));
    RedisIdempotencyOptions io;
    io.ttl = absl::Minutes(10);
    io.poll_interval = absl::Milliseconds(10);
    a_ = std::make_unique<RedisIdempotencyStore>(client_.get(), RealClock(), &timers_, io);
    b_ = std::make_unique<RedisIdempotencyStore>(client_.get(), RealClock(), &timers_, io);
  }

  absl::StatusOr<Store::Begun> Begin(RedisIdempotencyStore& s, const std::string& fp,
                                     Parked* parked = nullptr, absl::Time wait_until = kNoWait) {
    return s.Begin(
        "k", fp, wait_until, absl::Now() + absl::Seconds(30),
        parked != nullptr ? parked->Ready() : [](absl::StatusOr<Answer>) {});
  }
  int64_t Pttl() { return client_->Command({"PTTL", "sag:idem:k"})->integer; }

  std::unique_ptr<sag::testing::RedisServer> server_;
  std::unique_ptr<RedisClient> client_;
  RealTimers timers_;
  std::unique_ptr<RedisIdempotencyStore> a_, b_;
  const Answer created_{0, "", "", "audience aud_1"};
};

TEST_F(RedisIdempotencyTest, AnotherReplicaWaitsForTheAnswerThenReplaysIt) {
  ASSERT_EQ(Begin(*a_, "fp")->state, Store::State::kClaimed);
  EXPECT_GT(Pttl(), 30000);  // The claim outlives the write's deadline (plus a margin)...
  EXPECT_LE(Pttl(), 35000);  // ...and no more.
  Parked parked;
  ASSERT_EQ(Begin(*b_, "fp", &parked)->state, Store::State::kWait);
  EXPECT_TRUE(absl::IsInvalidArgument(Begin(*b_, "other").status()));
  EXPECT_FALSE(parked.done.HasBeenNotified());
  a_->Finish("k", created_, /*record=*/true);
  ASSERT_TRUE(parked.Wait());
  ASSERT_TRUE(parked.got.ok()) << parked.got.status();
  EXPECT_TRUE(*parked.got == created_);
  auto replay = Begin(*b_, "fp");
  ASSERT_EQ(replay->state, Store::State::kReplay);
  EXPECT_TRUE(replay->answer == created_);
  EXPECT_GT(Pttl(), 590000);  // Kept for the TTL.
  EXPECT_TRUE(absl::IsInvalidArgument(Begin(*a_, "other").status()));
}

TEST_F(RedisIdempotencyTest, ARepeatOnTheSameReplicaIsWokenByFinish) {
  RedisIdempotencyOptions slow;
  slow.poll_interval = absl::Hours(1);  // Only Finish can answer it in time.
  RedisIdempotencyStore s(client_.get(), RealClock(), &timers_, slow);
  ASSERT_EQ(Begin(s, "fp")->state, Store::State::kClaimed);
  Parked parked;
  ASSERT_EQ(Begin(s, "fp", &parked)->state, Store::State::kWait);
  s.Finish("k", created_, true);
  EXPECT_TRUE(parked.done.HasBeenNotified());
  EXPECT_TRUE(*parked.got == created_);
  EXPECT_EQ(s.waiters(), 0u);
}

TEST_F(RedisIdempotencyTest, ReleaseFreesTheKeyAndTellsOtherReplicasToRetry) {
  ASSERT_EQ(Begin(*a_, "fp")->state, Store::State::kClaimed);
  Parked parked;
  ASSERT_EQ(Begin(*b_, "fp", &parked)->state, Store::State::kWait);
  a_->Finish("k", Answer{8, "refused", "", ""}, /*record=*/false);
  EXPECT_EQ(Pttl(), -2);  // Gone.
  ASSERT_TRUE(parked.Wait());
  EXPECT_TRUE(absl::IsAborted(parked.got.status())) << parked.got.status();
  EXPECT_EQ(Begin(*b_, "fp")->state, Store::State::kClaimed);
}

TEST_F(RedisIdempotencyTest, AWaiterLeavesAtItsDeadlineOrWhenAbandoned) {
  ASSERT_EQ(Begin(*a_, "fp")->state, Store::State::kClaimed);
  Parked timed, abandoned;
  ASSERT_EQ(Begin(*b_, "fp", &timed, absl::Now() + absl::Milliseconds(100))->state,
            Store::State::kWait);
  auto second = Begin(*b_, "fp", &abandoned);
  ASSERT_EQ(second->state, Store::State::kWait);
  b_->Abandon(second->waiter, absl::CancelledError("gone"));
  ASSERT_TRUE(abandoned.done.HasBeenNotified());
  EXPECT_TRUE(absl::IsCancelled(abandoned.got.status()));
  ASSERT_TRUE(timed.Wait());
  EXPECT_TRUE(absl::IsDeadlineExceeded(timed.got.status())) << timed.got.status();
  EXPECT_EQ(b_->waiters(), 0u);
}

TEST_F(RedisIdempotencyTest, ACorruptValueIsNeverReplayed) {
  ASSERT_TRUE(client_->Command({"SET", "sag:idem:k", "D:fp:garbage"}).ok());
  EXPECT_TRUE(absl::IsInternal(Begin(*a_, "fp").status()));
  ASSERT_TRUE(client_->Command({"SET", "sag:idem:k", "nonsense"}).ok());
  EXPECT_TRUE(absl::IsInternal(Begin(*a_, "fp").status()));
}

TEST_F(RedisIdempotencyTest, RedisDownIsUnavailableAndClaimsNothing) {
  ASSERT_TRUE(server_->Kill().ok());
  absl::StatusOr<Store::Begun> begun = Begin(*a_, "fp");
  EXPECT_TRUE(absl::IsUnavailable(begun.status())) << begun.status();
}

}  // namespace
}  // namespace sag::redis
