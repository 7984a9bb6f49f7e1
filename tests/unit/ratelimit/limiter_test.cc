#include "service/ratelimit/limiter.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "service/common/work_queue.h"
#include "tests/support/fake_budget_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/windows.h"
#include "tests/unit/ratelimit/test_util.h"

namespace sag::ratelimit {
namespace {

using ::sag::ratelimit::testing::JainIndex;
using ::sag::ratelimit::testing::RetryDelay;
using ::sag::testing::MaxInWindow;

constexpr absl::string_view kLane = "ws/ListAudiences";
const Limit k10PerSecond{10, absl::Seconds(1)};
const Limit k1PerSecond{1, absl::Seconds(1)};

class LimiterTest : public ::testing::Test {
 protected:
  struct Call {
    std::string name;
    absl::Status status;
    absl::Time at;
    std::thread::id thread;
  };

  LimiterTest() : t0_(clock_.Now()) { Make(); }

  void Make(LimiterOptions options = {}) {
    limiter_.reset();
    limiter_ = std::make_unique<Limiter>(&store_, &clock_, &clock_, std::move(options));
  }

  AdmitFn Record(std::string name) {
    return [this, name](absl::Status s) {
      calls_.push_back(Call{name, std::move(s), clock_.Now(), std::this_thread::get_id()});
    };
  }

  Ticket Acquire(const std::string& name, const std::string& caller, Limit limit,
                 absl::Time deadline = absl::InfiniteFuture(), absl::string_view lane = kLane) {
    return limiter_->Acquire(AcquireRequest{std::string(lane), limit, caller, deadline},
                             Record(name));
  }

  Ticket Requeue(const std::string& name, const std::string& caller, Limit limit,
                 absl::Time deadline = absl::InfiniteFuture()) {
    return limiter_->Requeue(AcquireRequest{std::string(kLane), limit, caller, deadline},
                             Record(name));
  }

  const Call* Find(const std::string& name) const {
    for (const Call& c : calls_) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }

  // Names of the calls admitted (OK), in order.
  std::vector<std::string> Admitted() const {
    std::vector<std::string> out;
    for (const Call& c : calls_) {
      if (c.status.ok()) out.push_back(c.name);
    }
    return out;
  }

  std::vector<absl::Time> AdmittedTimes() const {
    std::vector<absl::Time> out;
    for (const Call& c : calls_) {
      if (c.status.ok()) out.push_back(c.at);
    }
    return out;
  }

  FakeClock clock_;
  const absl::Time t0_;
  InProcessBudgetStore store_{GcraOptions{/*burst=*/1, /*pacing_margin=*/0.0}};
  std::vector<Call> calls_;
  std::unique_ptr<Limiter> limiter_;
};

TEST_F(LimiterTest, FreeSlotAdmitsInlineWithoutTicket) {
  EXPECT_EQ(Acquire("a1", "A", k10PerSecond), kNoTicket);
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_TRUE(calls_[0].status.ok());
  EXPECT_EQ(calls_[0].at, t0_);
  EXPECT_EQ(calls_[0].thread, std::this_thread::get_id());
  EXPECT_EQ(limiter_->Stats().admitted_at_once, 1u);
  EXPECT_EQ(clock_.Pending(), 0u);
}

TEST_F(LimiterTest, QueuedCallsGoAtTheLimitsPaceNeverFaster) {
  for (int i = 0; i < 30; ++i) Acquire("a" + std::to_string(i), "A", k10PerSecond);
  EXPECT_EQ(calls_.size(), 1u);  // Only the first went at once; the rest wait.
  EXPECT_EQ(limiter_->QueueDepth(kLane), 29u);
  EXPECT_EQ(clock_.Pending(), 1u);  // One timer for the whole lane.
  clock_.Advance(absl::Seconds(5));
  std::vector<absl::Time> times = AdmittedTimes();
  ASSERT_EQ(times.size(), 30u);
  for (size_t i = 0; i < times.size(); ++i) {
    EXPECT_EQ(times[i], t0_ + absl::Milliseconds(100) * static_cast<int64_t>(i)) << i;
  }
  EXPECT_LE(MaxInWindow(times, absl::Seconds(1)), 10u);
  EXPECT_EQ(limiter_->QueueDepth(kLane), 0u);
  EXPECT_EQ(clock_.Pending(), 0u);
}

TEST_F(LimiterTest, FloodingCallerDoesNotStarveAnother) {
  for (int i = 0; i < 100; ++i) Acquire("A" + std::to_string(i), "A", k10PerSecond);
  for (int i = 0; i < 5; ++i) Acquire("B" + std::to_string(i), "B", k10PerSecond);
  clock_.Advance(absl::Seconds(11));
  std::vector<std::string> order = Admitted();
  ASSERT_EQ(order.size(), 105u);
  size_t last_b = 0;
  int b_seen = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i][0] == 'B') {
      last_b = i;
      ++b_seen;
    }
  }
  EXPECT_EQ(b_seen, 5);
  EXPECT_LE(last_b, 10u) << "B's 5 calls must be admitted within the first 11";
  // Jain's index over the first 10 admissions, while both callers wait.
  double a = 0, b = 0;
  for (size_t i = 0; i < 10; ++i) (order[i][0] == 'A' ? a : b) += 1;
  EXPECT_GE(JainIndex({a, b}), 0.95) << a << " vs " << b;
}

TEST_F(LimiterTest, ThreeFloodingCallersShareEvenly) {
  for (int i = 0; i < 200; ++i) {
    for (const char* caller : {"X", "Y", "Z"}) {
      Acquire(std::string(caller) + std::to_string(i), caller, k10PerSecond);
    }
  }
  clock_.Advance(absl::Seconds(30));  // 301 slots: about 100 each.
  std::map<char, double> share;
  for (const std::string& name : Admitted()) share[name[0]] += 1;
  ASSERT_EQ(share.size(), 3u);
  const double jain = JainIndex({share['X'], share['Y'], share['Z']});
  EXPECT_GE(jain, 0.999) << share['X'] << " " << share['Y'] << " " << share['Z'];
}

TEST_F(LimiterTest, FifoWithinACaller) {
  for (int i = 0; i < 20; ++i) {
    Acquire("a" + std::to_string(i), "A", k10PerSecond);
    if (i % 2 == 0) Acquire("b" + std::to_string(i / 2), "B", k10PerSecond);
  }
  clock_.Advance(absl::Seconds(10));
  int next_a = 0, next_b = 0;
  for (const std::string& name : Admitted()) {
    if (name[0] == 'a') {
      EXPECT_EQ(name, "a" + std::to_string(next_a++));
    } else {
      EXPECT_EQ(name, "b" + std::to_string(next_b++));
    }
  }
  EXPECT_EQ(next_a, 20);
  EXPECT_EQ(next_b, 10);
}

TEST_F(LimiterTest, ExpectedWaitBeyondDeadlineIsRefusedAtOnceWithRetryInfo) {
  for (int i = 1; i <= 5; ++i) Acquire("a" + std::to_string(i), "A", k1PerSecond);
  // B: one caller (A) ahead of it in the round-robin: 1 s to the next slot + 1 slot = 2 s.
  EXPECT_NE(Acquire("b1", "B", k1PerSecond, t0_ + absl::Milliseconds(2500)), kNoTicket);
  // A's 6th: A's 4 waiting + B's 1 ahead: 1 s + 5 s = 6 s > 3 s.
  EXPECT_EQ(Acquire("a6", "A", k1PerSecond, t0_ + absl::Seconds(3)), kNoTicket);
  const Call* refused = Find("a6");
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused->at, t0_);
  EXPECT_EQ(refused->thread, std::this_thread::get_id());
  EXPECT_EQ(RetryDelay(refused->status), absl::Seconds(6));
  EXPECT_EQ(limiter_->Stats().refused_deadline, 1u);
  EXPECT_EQ(limiter_->QueueDepth(kLane), 5u);

  clock_.Advance(absl::Seconds(10));
  // The estimate for b1 was exact, and the refused call took no slot.
  EXPECT_EQ(Find("b1")->at, t0_ + absl::Seconds(2));
  EXPECT_TRUE(Find("b1")->status.ok());
  std::vector<absl::Time> times = AdmittedTimes();
  ASSERT_EQ(times.size(), 6u);
  EXPECT_EQ(times.back(), t0_ + absl::Seconds(5));
}

TEST_F(LimiterTest, RefusedCallConsumesNoBudget) {
  const Limit one_per_10s{1, absl::Seconds(10)};
  Acquire("a1", "A", one_per_10s);
  EXPECT_EQ(Acquire("a2", "A", one_per_10s, t0_ + absl::Seconds(1)), kNoTicket);
  EXPECT_EQ(Find("a2")->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryDelay(Find("a2")->status), absl::Seconds(10));
  clock_.Advance(absl::Seconds(10));
  // Had a2 taken a slot, a3 would wait until t0 + 20 s.
  EXPECT_EQ(Acquire("a3", "A", one_per_10s), kNoTicket);
  EXPECT_TRUE(Find("a3")->status.ok());
  EXPECT_EQ(Find("a3")->at, t0_ + absl::Seconds(10));
}

TEST_F(LimiterTest, PassedDeadlineIsDeadlineExceededAtOnce) {
  EXPECT_EQ(Acquire("late", "A", k10PerSecond, t0_), kNoTicket);
  EXPECT_EQ(Find("late")->status.code(), absl::StatusCode::kDeadlineExceeded);
  // It took nothing: the next call goes at once.
  EXPECT_EQ(Acquire("next", "A", k10PerSecond), kNoTicket);
  EXPECT_TRUE(Find("next")->status.ok());
}

TEST_F(LimiterTest, QueuedCallLeavesWhenItsDeadlinePasses) {
  Acquire("a1", "A", k1PerSecond);
  EXPECT_NE(Acquire("b1", "B", k1PerSecond, t0_ + absl::Milliseconds(1500)), kNoTicket);
  limiter_->OnTooManyRequests(kLane, absl::Seconds(5));  // Pushes the slot past b1's deadline.
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Find("b1"), nullptr);  // Still waiting at its original slot time.
  clock_.Advance(absl::Milliseconds(500));
  const Call* b1 = Find("b1");
  ASSERT_NE(b1, nullptr);
  EXPECT_EQ(b1->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(b1->at, t0_ + absl::Milliseconds(1500));  // Not a moment past its deadline.
  EXPECT_EQ(limiter_->QueueDepth(kLane), 0u);
  EXPECT_EQ(clock_.Pending(), 0u);
  EXPECT_EQ(limiter_->Stats().deadline_exceeded, 1u);
  // The expired call took no slot: after the pause the next call goes at once.
  clock_.Advance(absl::Milliseconds(3500));
  EXPECT_EQ(Acquire("a2", "A", k1PerSecond), kNoTicket);
  EXPECT_EQ(Find("a2")->at, t0_ + absl::Seconds(5));
}

TEST_F(LimiterTest, CancelLeavesAtOnceAndFreesThePlace) {
  LimiterOptions options;
  options.max_queue = 2;
  Make(options);
  Acquire("a1", "A", k1PerSecond);
  const Ticket t2 = Acquire("a2", "A", k1PerSecond);
  const Ticket t3 = Acquire("a3", "A", k1PerSecond);
  ASSERT_NE(t2, kNoTicket);
  ASSERT_NE(t3, kNoTicket);
  EXPECT_EQ(Acquire("a4", "A", k1PerSecond), kNoTicket);  // Full.
  EXPECT_EQ(Find("a4")->status.code(), absl::StatusCode::kResourceExhausted);

  EXPECT_TRUE(limiter_->Cancel(t2));
  const Call* a2 = Find("a2");
  ASSERT_NE(a2, nullptr);  // Answered before Cancel returned, on this thread.
  EXPECT_EQ(a2->status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(a2->thread, std::this_thread::get_id());
  EXPECT_EQ(limiter_->QueueDepth(kLane), 1u);
  EXPECT_FALSE(limiter_->Cancel(t2));  // Already answered.
  EXPECT_FALSE(limiter_->Cancel(kNoTicket));

  EXPECT_NE(Acquire("a5", "A", k1PerSecond), kNoTicket);  // The freed place.
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(Find("a3")->at, t0_ + absl::Seconds(1));  // Moved up into a2's slot.
  EXPECT_EQ(Find("a5")->at, t0_ + absl::Seconds(2));
  EXPECT_EQ(limiter_->Stats().cancelled, 1u);
}

TEST_F(LimiterTest, CancellingTheLastWaiterDropsTheTimer) {
  Acquire("a1", "A", k1PerSecond);
  const Ticket t = Acquire("a2", "A", k1PerSecond);
  EXPECT_EQ(clock_.Pending(), 1u);
  EXPECT_TRUE(limiter_->Cancel(t));
  EXPECT_EQ(clock_.Pending(), 0u);
}

TEST_F(LimiterTest, BoundedQueueRefusesAtOnceWithRetryInfo) {
  LimiterOptions options;
  options.max_queue = 3;
  Make(options);
  Acquire("a0", "A", k1PerSecond);  // Goes at once.
  for (int i = 1; i <= 3; ++i) EXPECT_NE(Acquire("a" + std::to_string(i), "A", k1PerSecond), 0u);
  EXPECT_EQ(Acquire("a4", "A", k1PerSecond), kNoTicket);
  const Call* full = Find("a4");
  ASSERT_NE(full, nullptr);
  EXPECT_EQ(full->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryDelay(full->status), absl::Seconds(4));  // 1 s to the slot + 3 ahead.
  EXPECT_EQ(limiter_->QueueDepth(kLane), 3u);
  EXPECT_EQ(limiter_->Stats().refused_queue_full, 1u);
  // Another lane is not affected.
  EXPECT_EQ(Acquire("other", "A", k1PerSecond, absl::InfiniteFuture(), "ws/GetAudience"),
            kNoTicket);
  EXPECT_TRUE(Find("other")->status.ok());
}

TEST_F(LimiterTest, TooManyRequestsPausesTheLaneAndRequeueGoesFirst) {
  Acquire("a1", "A", k10PerSecond);  // Sent at t0 ...
  Acquire("a2", "A", k10PerSecond);
  Acquire("a3", "A", k10PerSecond);
  Acquire("b1", "B", k10PerSecond);
  clock_.Advance(absl::Milliseconds(50));
  // ... and answered 429 with msBeforeNext = 2000.
  limiter_->OnTooManyRequests(kLane, absl::Seconds(2));
  EXPECT_NE(Requeue("a1-again", "A", k10PerSecond), kNoTicket);
  EXPECT_EQ(limiter_->Stats().requeued, 1u);
  clock_.Advance(absl::Milliseconds(1949));
  EXPECT_EQ(Admitted().size(), 1u) << "nothing may go during the pause";
  clock_.Advance(absl::Seconds(1));
  std::vector<std::string> order = Admitted();
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(order[1], "a1-again");
  EXPECT_EQ(Find("a1-again")->at, t0_ + absl::Milliseconds(2050));
  // Then the fair order carries on, the requeued call not counting as A's turn (it had it when
  // first admitted): a2 and b1 were each their caller's first waiting call (a2 queued first),
  // then a3.
  EXPECT_EQ(order[2], "a2");
  EXPECT_EQ(order[3], "b1");
  EXPECT_EQ(order[4], "a3");
  EXPECT_EQ(Find("b1")->at, t0_ + absl::Milliseconds(2250));
}

TEST_F(LimiterTest, RequeueRefusedWhenThePauseOutlastsTheDeadline) {
  Acquire("a1", "A", k10PerSecond);
  limiter_->OnTooManyRequests(kLane, absl::Seconds(10));
  EXPECT_EQ(Requeue("a1-again", "A", k10PerSecond, t0_ + absl::Seconds(1)), kNoTicket);
  const Call* c = Find("a1-again");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryDelay(c->status), absl::Seconds(10));
}

TEST_F(LimiterTest, RequeueIgnoresTheQueueBound) {
  LimiterOptions options;
  options.max_queue = 1;
  Make(options);
  Acquire("a1", "A", k10PerSecond);
  Acquire("a2", "A", k10PerSecond);
  limiter_->OnTooManyRequests(kLane, absl::Seconds(1));
  EXPECT_NE(Requeue("a1-again", "A", k10PerSecond), kNoTicket);
  EXPECT_EQ(limiter_->QueueDepth(kLane), 2u);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(Admitted(), (std::vector<std::string>{"a1", "a1-again", "a2"}));
}

TEST_F(LimiterTest, RemainingZeroBlocksUntilReset) {
  const Limit per_minute{60, absl::Minutes(1)};
  Acquire("a1", "A", per_minute);
  // Another client of the token spent the window: Remaining 0, reset in 30 s.
  limiter_->Observe(kLane, 0, t0_ + absl::Seconds(30));
  EXPECT_EQ(limiter_->Stats().upstream_blocks, 1u);
  EXPECT_NE(Acquire("a2", "A", per_minute), kNoTicket);
  clock_.Advance(absl::Seconds(29));
  EXPECT_EQ(Find("a2"), nullptr);
  clock_.Advance(absl::Seconds(1));
  ASSERT_NE(Find("a2"), nullptr);
  EXPECT_EQ(Find("a2")->at, t0_ + absl::Seconds(30));
}

TEST_F(LimiterTest, BogusResetFarAwayIsCappedAtOneWindow) {
  const Limit per_minute{50, absl::Minutes(1)};
  Acquire("a1", "A", per_minute);
  limiter_->Observe(kLane, 0, t0_ + absl::Hours(24 * 365));
  Acquire("a2", "A", per_minute);
  clock_.Advance(absl::Minutes(2));
  ASSERT_NE(Find("a2"), nullptr);
  EXPECT_EQ(Find("a2")->at, t0_ + absl::Minutes(1) + absl::Seconds(1));
}

TEST_F(LimiterTest, RemainingZeroMovesAWaitingLanesTimer) {
  const Limit per_minute{60, absl::Minutes(1)};
  Acquire("a1", "A", per_minute);
  Acquire("a2", "A", per_minute);
  limiter_->Observe(kLane, 0, t0_ + absl::Seconds(5));
  EXPECT_EQ(clock_.Pending(), 1u);
  clock_.Advance(absl::Seconds(6));
  EXPECT_EQ(Find("a2")->at, t0_ + absl::Seconds(5));
}

TEST_F(LimiterTest, OtherHeaderValuesDoNotBlock) {
  Acquire("a1", "A", k10PerSecond);
  limiter_->Observe(kLane, 3, t0_ + absl::Seconds(30));
  limiter_->Observe(kLane, std::nullopt, t0_ + absl::Seconds(30));
  limiter_->Observe(kLane, 0, t0_ - absl::Seconds(1));  // A reset in the past.
  clock_.Advance(absl::Milliseconds(100));
  EXPECT_EQ(Acquire("a2", "A", k10PerSecond), kNoTicket);
  EXPECT_EQ(limiter_->Stats().upstream_blocks, 0u);
}

TEST_F(LimiterTest, RemainingZeroWithoutResetBlocksForOneWindow) {
  Acquire("a1", "A", k10PerSecond);
  limiter_->Observe(kLane, 0, std::nullopt);
  Acquire("a2", "A", k10PerSecond);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(Find("a2")->at, t0_ + absl::Seconds(1));
}

TEST_F(LimiterTest, RemainingZeroExplainedByOwnPacingDoesNotBlock) {
  for (int i = 1; i <= 11; ++i) Acquire("a" + std::to_string(i), "A", k10PerSecond);
  clock_.Advance(absl::Milliseconds(900));  // a1..a10 sent: the window is full, by us.
  ASSERT_EQ(Admitted().size(), 10u);
  // The reset date is rounded up to the second: blocking on it would waste up to 1 s.
  limiter_->Observe(kLane, 0, t0_ + absl::Seconds(2));
  EXPECT_EQ(limiter_->Stats().remaining_zero_trusted, 1u);
  clock_.Advance(absl::Milliseconds(100));
  EXPECT_EQ(Find("a11")->at, t0_ + absl::Seconds(1));
}

TEST_F(LimiterTest, RemainingZeroAlwaysBlocksWithoutTrustInOwnPacing) {
  LimiterOptions options;
  options.trust_own_pacing = false;
  Make(options);
  for (int i = 1; i <= 11; ++i) Acquire("a" + std::to_string(i), "A", k10PerSecond);
  clock_.Advance(absl::Milliseconds(900));
  limiter_->Observe(kLane, 0, t0_ + absl::Seconds(2));
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(Find("a11")->at, t0_ + absl::Seconds(2));
}

// A budget shared by several Limiters ("replicas"), keeping like RedisBudgetStore the record of
// every admission it gave, whoever asked: RecentAdmissionsFillWindow answers from it (or, with
// `answers` false, not at all: a store that cannot read its record).
class SharedRecordStore final : public BudgetStore {
 public:
  explicit SharedRecordStore(GcraOptions options) : inner_(options) {}
  absl::StatusOr<absl::Time> TryTake(absl::string_view key, Limit limit, absl::Time now) override {
    absl::StatusOr<absl::Time> r = inner_.TryTake(key, limit, now);
    if (r.ok() && *r <= now) admissions_[std::string(key)].push_back(now);
    return r;
  }
  void BlockUntil(absl::string_view key, absl::Time until) override {
    inner_.BlockUntil(key, until);
  }
  absl::Duration Interval(const Limit& limit) const override { return inner_.Interval(limit); }
  std::optional<bool> RecentAdmissionsFillWindow(absl::string_view key,
                                                 const Limit& limit) override {
    ++asked;
    if (!answers) return std::nullopt;
    const std::vector<absl::Time>& a = admissions_[std::string(key)];
    const size_t n = static_cast<size_t>(limit.requests);
    if (a.size() < n) return false;
    return a.back() - a[a.size() - n] < Interval(limit) * static_cast<int64_t>(n);
  }

  bool answers = true;
  int asked = 0;

 private:
  InProcessBudgetStore inner_;
  std::map<std::string, std::vector<absl::Time>> admissions_;
};

// Three replicas, each with its own Limiter on one shared store, flood one 10/1s lane: 4 + 3 + 4
// calls. The first 10 go at t0, t0 + 100 ms, ..., t0 + 900 ms, spread over the replicas (none has
// 10 of its own). Then the upstream says Remaining: 0 with the reset rounded up to t0 + 2 s.
// `answers`: whether the store can read its shared record.
struct SharedWindowRun {
  std::vector<absl::Time> admitted;  // Every replica's, in order.
  LimiterStats observer_stats;
  int asked = 0;
};
SharedWindowRun RunSharedWindow(bool answers, int calls_before_observe = 10) {
  FakeClock clock;
  const absl::Time t0 = clock.Now();
  SharedRecordStore store(GcraOptions{/*burst=*/1, /*pacing_margin=*/0.0});
  store.answers = answers;
  SharedWindowRun run;
  std::vector<std::unique_ptr<Limiter>> replicas;
  for (int i = 0; i < 3; ++i) replicas.push_back(std::make_unique<Limiter>(&store, &clock, &clock));
  const int calls[3] = {4, 3, 4};
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i < calls[r]; ++i) {
      replicas[r]->Acquire(AcquireRequest{std::string(kLane), k10PerSecond, "A"},
                           [&run, &clock](absl::Status s) {
                             if (s.ok()) run.admitted.push_back(clock.Now());
                           });
    }
  }
  clock.Advance(absl::Milliseconds(100) * (calls_before_observe - 1));
  EXPECT_EQ(run.admitted.size(), static_cast<size_t>(calls_before_observe));
  // The response to the last admitted call, answered by replica 2.
  replicas[2]->Observe(kLane, 0, t0 + absl::Seconds(2));
  clock.Advance(absl::Seconds(3));
  run.observer_stats = replicas[2]->Stats();
  run.asked = store.asked;
  return run;
}

TEST(LimiterSharedStoreTest, RemainingZeroExplainedByTheSharedPacingDoesNotBlockAnyReplica) {
  const SharedWindowRun run = RunSharedWindow(/*answers=*/true);
  ASSERT_EQ(run.admitted.size(), 11u);
  // No replica's own record explains the window (4, 3 and 4 calls); the shared record does: the
  // 11th call goes at its paced slot, not at the rounded-up reset.
  EXPECT_EQ(run.admitted[10], run.admitted[0] + absl::Seconds(1));
  EXPECT_EQ(run.observer_stats.remaining_zero_trusted, 1u);
  EXPECT_EQ(run.observer_stats.upstream_blocks, 0u);
  EXPECT_EQ(run.asked, 1);
}

TEST(LimiterSharedStoreTest, RemainingZeroBeforeTheSharedWindowIsFullStillBlocks) {
  // Remaining: 0 after only 6 of our calls: someone else spends the token (or the real limit is
  // lower than configured). The block is what it is for.
  const SharedWindowRun run = RunSharedWindow(/*answers=*/true, /*calls_before_observe=*/6);
  ASSERT_EQ(run.admitted.size(), 11u);
  EXPECT_EQ(run.admitted[6], run.admitted[0] + absl::Seconds(2));
  EXPECT_EQ(run.observer_stats.remaining_zero_trusted, 0u);
  EXPECT_EQ(run.observer_stats.upstream_blocks, 1u);
}

TEST(LimiterSharedStoreTest, WithoutTheSharedRecordTheLaneBlocks) {
  // A store that cannot answer (Redis away): only the replica's own record counts, which holds 4
  // of the 10 calls: every replica waits for the reset (the conservative answer).
  const SharedWindowRun run = RunSharedWindow(/*answers=*/false);
  ASSERT_EQ(run.admitted.size(), 11u);
  EXPECT_EQ(run.admitted[10], run.admitted[0] + absl::Seconds(2));
  EXPECT_EQ(run.observer_stats.upstream_blocks, 1u);
}

TEST(LimiterSharedStoreTest, OwnPacingThatExplainsItNeedsNoSharedRecord) {
  // One replica alone filled the window: judged by its own record, the store is not asked (no
  // round trip to a shared store).
  FakeClock clock;
  const absl::Time t0 = clock.Now();
  SharedRecordStore store(GcraOptions{/*burst=*/1, /*pacing_margin=*/0.0});
  Limiter limiter(&store, &clock, &clock);
  std::vector<absl::Time> admitted;
  for (int i = 0; i < 11; ++i) {
    limiter.Acquire(AcquireRequest{std::string(kLane), k10PerSecond, "A"}, [&](absl::Status s) {
      if (s.ok()) admitted.push_back(clock.Now());
    });
  }
  clock.Advance(absl::Milliseconds(900));
  limiter.Observe(kLane, 0, t0 + absl::Seconds(2));
  clock.Advance(absl::Seconds(1));
  ASSERT_EQ(admitted.size(), 11u);
  EXPECT_EQ(admitted[10], t0 + absl::Seconds(1));
  EXPECT_EQ(limiter.Stats().remaining_zero_trusted, 1u);
  EXPECT_EQ(store.asked, 0);
}

// Observe and OnTooManyRequests do not hold the limiter's lock across the store's calls (with
// Redis, round trips of up to its 50 ms timeout): another thread can use the Limiter meanwhile.
class ProbingStore final : public BudgetStore {
 public:
  absl::StatusOr<absl::Time> TryTake(absl::string_view key, Limit limit, absl::Time now) override {
    return inner_.TryTake(key, limit, now);
  }
  void BlockUntil(absl::string_view key, absl::Time until) override {
    inner_.BlockUntil(key, until);
    blocked_while_free.push_back(Probe());
  }
  absl::Duration Interval(const Limit& limit) const override { return inner_.Interval(limit); }
  std::optional<bool> RecentAdmissionsFillWindow(absl::string_view, const Limit&) override {
    asked_while_free.push_back(Probe());
    return false;
  }
  // Whether another thread gets through the Limiter's lock (QueueDepth) within 2 s.
  bool Probe() {
    // Shared with the thread: it may outlive this call (when the lock is held, until it is not).
    auto done = std::make_shared<absl::Notification>();
    std::thread t([done, limiter = limiter] {
      limiter->QueueDepth(kLane);
      done->Notify();
    });
    const bool free = done->WaitForNotificationWithTimeout(absl::Seconds(2));
    probes.push_back(std::move(t));  // Joined by the test once the store call has returned.
    return free;
  }

  Limiter* limiter = nullptr;
  std::vector<bool> blocked_while_free;
  std::vector<bool> asked_while_free;
  std::vector<std::thread> probes;

 private:
  InProcessBudgetStore inner_{GcraOptions{/*burst=*/1, /*pacing_margin=*/0.0}};
};

TEST(LimiterLockTest, ObserveCallsTheStoreWithoutTheLimitersLock) {
  FakeClock clock;
  ProbingStore store;
  Limiter limiter(&store, &clock, &clock);
  store.limiter = &limiter;
  limiter.Acquire(AcquireRequest{std::string(kLane), k10PerSecond, "A"}, [](absl::Status) {});
  limiter.Acquire(AcquireRequest{std::string(kLane), k10PerSecond, "A"}, [](absl::Status) {});
  limiter.Observe(kLane, 0, clock.Now() + absl::Seconds(1));
  limiter.OnTooManyRequests(kLane, absl::Seconds(2));
  for (std::thread& t : store.probes) t.join();
  EXPECT_EQ(store.asked_while_free, std::vector<bool>{true});
  EXPECT_EQ(store.blocked_while_free, (std::vector<bool>{true, true}));
  EXPECT_EQ(limiter.Stats().upstream_blocks, 2u);
  EXPECT_EQ(limiter.QueueDepth(kLane), 1u);
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(limiter.QueueDepth(kLane), 0u);
}

TEST_F(LimiterTest, InvalidLimitIsInvalidArgument) {
  EXPECT_EQ(Acquire("bad", "A", Limit{0, absl::Seconds(1)}), kNoTicket);
  EXPECT_EQ(Find("bad")->status.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LimiterTest, DestructionAnswersWaitingCallsUnavailable) {
  Acquire("a1", "A", k1PerSecond);
  Acquire("a2", "A", k1PerSecond);
  Acquire("b1", "B", k1PerSecond, t0_ + absl::Seconds(30));
  limiter_.reset();
  ASSERT_EQ(calls_.size(), 3u);
  EXPECT_EQ(Find("a2")->status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Find("b1")->status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(clock_.Pending(), 0u);
  clock_.Advance(absl::Seconds(60));  // Nothing fires any more.
  EXPECT_EQ(calls_.size(), 3u);
}

TEST_F(LimiterTest, OneTimerPerLaneWhateverTheQueue) {
  const std::vector<std::string> lanes = {"ws/A", "ws/B", "ws/C"};
  for (int i = 0; i < 1000; ++i) {
    const std::string& lane = lanes[static_cast<size_t>(i) % lanes.size()];
    // Deadlines far enough to be accepted, all different.
    Acquire("c" + std::to_string(i), "caller" + std::to_string(i % 7), k10PerSecond,
            t0_ + absl::Seconds(200) + absl::Milliseconds(i), lane);
  }
  EXPECT_EQ(clock_.Pending(), 3u);
  for (int step = 0; step < 50; ++step) {
    clock_.Advance(absl::Milliseconds(370));
    EXPECT_LE(clock_.Pending(), lanes.size());
  }
}

TEST_F(LimiterTest, AdmitMayCallBackIntoTheLimiter) {
  Acquire("a1", "A", k10PerSecond);
  limiter_->Acquire(AcquireRequest{std::string(kLane), k10PerSecond, "A"}, [this](absl::Status s) {
    ASSERT_TRUE(s.ok());
    Acquire("chained", "A", k10PerSecond);
    limiter_->Observe(kLane, 5, std::nullopt);
  });
  clock_.Advance(absl::Seconds(1));
  ASSERT_NE(Find("chained"), nullptr);
  EXPECT_EQ(Find("chained")->at, t0_ + absl::Milliseconds(200));
}

TEST_F(LimiterTest, AnswerHookSeesQueueWaits) {
  std::vector<std::pair<Outcome, absl::Duration>> events;
  LimiterOptions options;
  options.on_answer = [&events](const AnswerEvent& e) {
    EXPECT_EQ(e.lane, kLane);
    events.emplace_back(e.outcome, e.waited);
  };
  Make(options);
  for (int i = 0; i < 4; ++i) Acquire("a" + std::to_string(i), "A", k10PerSecond);
  Acquire("late", "B", k10PerSecond, t0_ + absl::Milliseconds(100));
  clock_.Advance(absl::Seconds(1));
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0], std::make_pair(Outcome::kAdmitted, absl::ZeroDuration()));
  EXPECT_EQ(events[1], std::make_pair(Outcome::kDeadlineRefused, absl::ZeroDuration()));
  EXPECT_EQ(events[2], std::make_pair(Outcome::kAdmitted, absl::Milliseconds(100)));
  EXPECT_EQ(events[3], std::make_pair(Outcome::kAdmitted, absl::Milliseconds(200)));
  EXPECT_EQ(events[4], std::make_pair(Outcome::kAdmitted, absl::Milliseconds(300)));
  EXPECT_EQ(OutcomeName(Outcome::kDeadlineRefused), "deadline_refused");
}

TEST_F(LimiterTest, QueueDepthsListsLanes) {
  Acquire("a1", "A", k1PerSecond, absl::InfiniteFuture(), "ws/A");
  Acquire("a2", "A", k1PerSecond, absl::InfiniteFuture(), "ws/A");
  Acquire("b1", "A", k1PerSecond, absl::InfiniteFuture(), "ws/B");
  using Depths = std::vector<std::pair<std::string, size_t>>;
  EXPECT_EQ(limiter_->QueueDepths(), (Depths{{"ws/A", 1}, {"ws/B", 0}}));
  EXPECT_EQ(limiter_->QueueDepth("ws/unknown"), 0u);
}

// With real timers: a thousand waiting calls cost no thread and no polling, just one timer per
// lane; admissions arrive on the timer thread.
TEST(LimiterRealTimersTest, ThousandWaitingCallsNeedOneTimerPerLane) {
  auto timers_owner = std::make_unique<RealTimers>();
  RealTimers& timers = *timers_owner;
  InProcessBudgetStore store;
  absl::Mutex mu;
  int admitted = 0;
  int unavailable = 0;
  bool off_thread = false;
  absl::Notification timer_admission;
  const std::thread::id test_thread = std::this_thread::get_id();
  {
    Limiter limiter(&store, RealClock(), &timers);
    const std::vector<std::string> lanes = {"ws/A", "ws/B", "ws/C"};
    for (int i = 0; i < 1000; ++i) {
      const std::string& lane = lanes[static_cast<size_t>(i) % lanes.size()];
      limiter.Acquire(AcquireRequest{lane, Limit{20, absl::Seconds(1)}, "c"},
                      [&, lane](absl::Status s) {
                        absl::MutexLock lock(&mu);
                        if (s.ok()) {
                          ++admitted;
                          if (std::this_thread::get_id() != test_thread && !off_thread) {
                            off_thread = true;
                            timer_admission.Notify();
                          }
                        } else if (s.code() == absl::StatusCode::kUnavailable) {
                          ++unavailable;
                        }
                      });
    }
    EXPECT_LE(timers.Pending(), lanes.size());
    // The first call of each lane went at once; the next ones come from the lanes' timers, on
    // the timer thread (after ~50 ms).
    EXPECT_TRUE(timer_admission.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_LE(timers.Pending(), lanes.size());
  }
  EXPECT_EQ(timers.Pending(), 0u);  // The Limiter cancelled its timers.
  timers_owner.reset();             // Joins the timer thread: no admit still running.
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(off_thread);
  EXPECT_EQ(admitted + unavailable, 1000);
}

// Many threads acquiring and cancelling at once: every admit runs exactly once.
TEST(LimiterRealTimersTest, ConcurrentAcquireAndCancelAnswerEachCallOnce) {
  RealTimers timers;
  InProcessBudgetStore store;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::vector<std::atomic<int>> answers(kThreads * kPerThread);
  std::atomic<int> done{0};
  absl::Notification all_done;
  {
    Limiter limiter(&store, RealClock(), &timers);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const int id = t * kPerThread + i;
          Ticket ticket = limiter.Acquire(
              AcquireRequest{"ws/Op" + std::to_string(i % 3), Limit{5000, absl::Seconds(1)},
                             "caller" + std::to_string(t), absl::Now() + absl::Seconds(30)},
              [&, id](absl::Status) {
                answers[static_cast<size_t>(id)].fetch_add(1);
                if (done.fetch_add(1) + 1 == kThreads * kPerThread) all_done.Notify();
              });
          if (i % 5 == 0) limiter.Cancel(ticket);
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  }
  for (size_t i = 0; i < answers.size(); ++i) EXPECT_EQ(answers[i].load(), 1) << i;
}

// A slow store (a Redis round trip) on one lane must not stall the others: no lock of the
// limiter is held while the store is called.
TEST(LimiterLanesTest, SlowStoreOnOneLaneDoesNotStallAnother) {
  FakeClock clock;
  ::sag::testing::FakeBudgetStore store;
  Limiter limiter(&store, &clock, &clock);
  store.Hold("ws/slow");
  absl::Notification slow_admitted;
  std::thread slow([&] {
    limiter.Acquire(AcquireRequest{"ws/slow", k10PerSecond, "a"},
                    [&](absl::Status s) { slow_admitted.Notify(); });
  });
  ASSERT_TRUE(store.WaitForHeld(1));  // The slow lane's take is under way.
  // Another lane, and the slow lane's own queue, cancel and stats, all answer meanwhile.
  absl::Notification other_admitted;
  absl::Status other_status = absl::UnknownError("not answered");
  std::thread other([&] {
    limiter.Acquire(AcquireRequest{"ws/fast", k10PerSecond, "b"}, [&](absl::Status s) {
      other_status = s;
      other_admitted.Notify();
    });
    EXPECT_EQ(limiter.QueueDepth("ws/slow"), 0u);
    (void)limiter.Stats();
  });
  const bool answered = other_admitted.WaitForNotificationWithTimeout(absl::Seconds(10));
  store.Release();
  other.join();
  slow.join();
  EXPECT_TRUE(answered) << "a held TryTake of ws/slow blocked ws/fast";
  EXPECT_TRUE(other_status.ok()) << other_status;
  EXPECT_TRUE(slow_admitted.HasBeenNotified());
}

// Calls that arrive while a lane's take is under way queue, and are served after it, in order.
TEST(LimiterLanesTest, CallsArrivingDuringATakeQueueBehindIt) {
  FakeClock clock;
  ::sag::testing::FakeBudgetStore store;
  Limiter limiter(&store, &clock, &clock);
  absl::Mutex mu;
  std::vector<std::string> order;
  auto record = [&](std::string name) {
    return [&, name](absl::Status s) {
      absl::MutexLock lock(&mu);
      order.push_back(absl::StrCat(name, s.ok() ? "" : ":error"));
    };
  };
  store.Hold(kLane);
  std::thread first([&] {
    limiter.Acquire(AcquireRequest{std::string(kLane), k10PerSecond, "a"}, record("1"));
  });
  ASSERT_TRUE(store.WaitForHeld(1));
  // On a thread, bounded: a limiter holding a lock across the take would block it.
  Ticket second = kNoTicket;
  absl::Notification queued;
  std::thread caller([&] {
    second = limiter.Acquire(AcquireRequest{std::string(kLane), k10PerSecond, "a"}, record("2"));
    queued.Notify();
  });
  const bool returned = queued.WaitForNotificationWithTimeout(absl::Seconds(10));
  const size_t depth = returned ? limiter.QueueDepth(kLane) : 0;
  store.Release();
  caller.join();
  first.join();
  ASSERT_TRUE(returned) << "Acquire waited for the lane's take";
  EXPECT_NE(second, kNoTicket);  // Queued: the lane's take was under way.
  EXPECT_EQ(depth, 1u);
  clock.Advance(absl::Milliseconds(200));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<std::string>{"1", "2"}));
}

// With run_timer_work, a lane's timer work (its store round trip) runs on the given threads, not
// on the timer thread: while one lane's take is held (a slow Redis), the clock's timer thread is
// free and another lane's queued call is admitted at its slot.
TEST(LimiterLanesTest, TimerWorkOnAPoolLetsALaneGoWhileAnotherLanesTakeIsSlow) {
  FakeClock clock;
  ::sag::testing::FakeBudgetStore store;
  WorkQueue pool(2);
  LimiterOptions options;
  std::atomic<int> handed_over{0};
  options.run_timer_work = [&](std::function<void()> fn) {
    ++handed_over;
    pool.Run(std::move(fn));
  };
  Limiter limiter(&store, &clock, &clock, options);
  absl::Mutex mu;
  std::vector<std::string> admitted;
  auto record = [&](std::string name) {
    return [&, name](absl::Status s) {
      absl::MutexLock lock(&mu);
      if (s.ok()) admitted.push_back(name);
    };
  };
  for (const char* lane : {"ws/slow", "ws/fast"}) {  // The first call of each goes at once.
    limiter.Acquire(AcquireRequest{lane, k10PerSecond, "a"}, record(absl::StrCat(lane, "#1")));
    limiter.Acquire(AcquireRequest{lane, k10PerSecond, "a"}, record(absl::StrCat(lane, "#2")));
  }
  store.Hold("ws/slow");
  clock.Advance(absl::Milliseconds(150));  // Returns: the timer thread only hands work over.
  EXPECT_EQ(handed_over.load(), 2);
  ASSERT_TRUE(store.WaitForHeld(1));  // ws/slow's take is under way on the pool.
  auto fast_admitted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return std::find(admitted.begin(), admitted.end(), "ws/fast#2") != admitted.end();
  };
  bool fast_went;
  {
    absl::MutexLock lock(&mu);
    fast_went = mu.AwaitWithTimeout(absl::Condition(&fast_admitted), absl::Seconds(10));
  }
  store.Release();
  EXPECT_TRUE(fast_went) << "ws/fast waited for ws/slow's take";
  absl::MutexLock lock(&mu);
  auto slow_admitted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return admitted.size() == 4; };
  EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&slow_admitted), absl::Seconds(10)));
  EXPECT_EQ(admitted.back(), "ws/slow#2");
}

TEST(LimiterLanesTest, CancelOfAnUnknownOrForeignTicketDoesNothing) {
  FakeClock clock;
  InProcessBudgetStore store;
  Limiter limiter(&store, &clock, &clock);
  EXPECT_FALSE(limiter.Cancel(kNoTicket));
  EXPECT_FALSE(limiter.Cancel(12345));
  EXPECT_FALSE(limiter.Cancel(~Ticket{0}));
  int answers = 0;
  limiter.Acquire(AcquireRequest{"ws/a", k1PerSecond, "a"}, [&](absl::Status) { ++answers; });
  Ticket queued =
      limiter.Acquire(AcquireRequest{"ws/a", k1PerSecond, "a"}, [&](absl::Status) { ++answers; });
  ASSERT_NE(queued, kNoTicket);
  EXPECT_FALSE(limiter.Cancel(queued + 1));
  EXPECT_TRUE(limiter.Cancel(queued));
  EXPECT_FALSE(limiter.Cancel(queued));
  EXPECT_EQ(answers, 2);
}

}  // namespace
}  // namespace sag::ratelimit
