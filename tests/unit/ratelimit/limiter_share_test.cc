// The limiter's order between callers (service/ratelimit/limiter.h): weighted fair queuing within
// a priority class, interactive before batch with batch's minimum share, FIFO per caller, the
// requeue head, and the deadline-aware estimate following that order. All on the fake clock.
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "service/ratelimit/limiter.h"
#include "tests/support/fake_budget_store.h"
#include "tests/support/fake_clock.h"
#include "tests/unit/ratelimit/test_util.h"

namespace sag::ratelimit {
namespace {

using ::sag::ratelimit::testing::RetryDelay;

constexpr absl::string_view kLane = "ws/ListAudiences";
const Limit k10PerSecond{10, absl::Seconds(1)};
const Limit k1PerSecond{1, absl::Seconds(1)};
constexpr Priority kBatch = Priority::kBatch;
constexpr Priority kInteractive = Priority::kInteractive;

class LimiterShareTest : public ::testing::Test {
 protected:
  struct Call {
    std::string name;
    std::string caller;
    absl::Status status;
    absl::Time at;
  };

  LimiterShareTest() : t0_(clock_.Now()) {}

  // A limiter whose callers have the given shares (others: interactive, weight 1).
  void Make(std::map<std::string, CallerShare> shares, double batch_min_share = 0.1,
            std::function<void(const AnswerEvent&)> on_answer = nullptr) {
    LimiterOptions options;
    options.batch_min_share = batch_min_share;
    options.share_of = [shares = std::move(shares)](absl::string_view caller) {
      auto it = shares.find(std::string(caller));
      return it == shares.end() ? CallerShare{} : it->second;
    };
    options.on_answer = std::move(on_answer);
    limiter_.reset();
    limiter_ = std::make_unique<Limiter>(&store_, &clock_, &clock_, std::move(options));
  }

  Ticket Acquire(const std::string& name, const std::string& caller, Limit limit = k1PerSecond,
                 absl::Time deadline = absl::InfiniteFuture()) {
    return limiter_->Acquire(AcquireRequest{std::string(kLane), limit, caller, deadline},
                             Record(name, caller));
  }

  Ticket Requeue(const std::string& name, const std::string& caller, Limit limit = k1PerSecond) {
    return limiter_->Requeue(AcquireRequest{std::string(kLane), limit, caller},
                             Record(name, caller));
  }

  // `n` calls of `caller` named caller + index.
  void Flood(const std::string& caller, int n, Limit limit = k1PerSecond) {
    for (int i = 0; i < n; ++i) Acquire(caller + std::to_string(i), caller, limit);
  }

  AdmitFn Record(std::string name, std::string caller) {
    return [this, name = std::move(name), caller = std::move(caller)](absl::Status s) {
      calls_.push_back(Call{name, caller, std::move(s), clock_.Now()});
    };
  }

  const Call* Find(const std::string& name) const {
    for (const Call& c : calls_) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }

  // The callers of the admitted calls, in order of admission.
  std::vector<std::string> AdmittedCallers() const {
    std::vector<std::string> out;
    for (const Call& c : calls_) {
      if (c.status.ok()) out.push_back(c.caller);
    }
    return out;
  }

  std::map<std::string, int> CountsIn(const std::vector<std::string>& callers, size_t from,
                                      size_t to) const {
    std::map<std::string, int> n;
    for (size_t i = from; i < to && i < callers.size(); ++i) ++n[callers[i]];
    return n;
  }

  // The wait the limiter expects for a new call of `caller` now: probed with a deadline it
  // cannot meet (a refused call changes nothing), read from its RetryInfo.
  absl::Duration ExpectedWait(const std::string& caller, Limit limit = k1PerSecond) {
    const std::string name = absl::StrCat("probe", probes_++);
    Acquire(name, caller, limit, clock_.Now() + absl::Nanoseconds(1));
    const Call* c = Find(name);
    EXPECT_NE(c, nullptr);
    if (c == nullptr) return absl::ZeroDuration();
    EXPECT_EQ(c->status.code(), absl::StatusCode::kResourceExhausted) << c->status;
    return RetryDelay(c->status).value_or(absl::ZeroDuration());
  }

  FakeClock clock_;
  const absl::Time t0_;
  InProcessBudgetStore store_{GcraOptions{/*burst=*/1, /*pacing_margin=*/0.0}};
  std::vector<Call> calls_;
  std::unique_ptr<Limiter> limiter_;
  int probes_ = 0;
};

TEST_F(LimiterShareTest, WeightsThreeToOneGiveThreeToOneAdmissions) {
  Make({{"A", {kBatch, 3}}, {"B", {kBatch, 1}}});
  Acquire("warm", "X", k10PerSecond);  // Takes the free slot; everything below queues.
  Flood("A", 400, k10PerSecond);
  Flood("B", 400, k10PerSecond);
  clock_.Advance(absl::Seconds(40));  // 400 more slots, both callers waiting throughout.
  const std::vector<std::string> order = AdmittedCallers();
  ASSERT_GE(order.size(), 401u);
  std::map<std::string, int> n = CountsIn(order, 1, 401);
  EXPECT_EQ(n["A"], 300);
  EXPECT_EQ(n["B"], 100);
  // Not in bursts: any 8 consecutive admissions hold 6 of A and 2 of B.
  for (size_t i = 1; i + 8 <= 401; i += 8) EXPECT_EQ(CountsIn(order, i, i + 8)["B"], 2) << i;
}

TEST_F(LimiterShareTest, WeightedCallersOfBothClassesShareTheirClassByWeight) {
  Make({{"I5", {kInteractive, 5}}, {"I1", {kInteractive, 1}}, {"B", {kBatch, 1}}},
       /*batch_min_share=*/0.0);
  Acquire("warm", "X", k10PerSecond);
  Flood("I5", 600, k10PerSecond);
  Flood("I1", 600, k10PerSecond);
  Flood("B", 10, k10PerSecond);
  clock_.Advance(absl::Seconds(60));
  std::map<std::string, int> n = CountsIn(AdmittedCallers(), 1, 601);
  EXPECT_EQ(n["I5"], 500);
  EXPECT_EQ(n["I1"], 100);
  EXPECT_EQ(n["B"], 0) << "a batch share of 0: batch waits while interactive calls do";
}

TEST_F(LimiterShareTest, InteractiveGoesBeforeBatchThatWasQueuedFirst) {
  Make({{"B", {kBatch, 1}}});
  Acquire("warm", "X");
  Flood("B", 5);
  Flood("I", 5);  // Not configured: interactive.
  clock_.Advance(absl::Seconds(10));
  const std::vector<std::string> order = AdmittedCallers();
  EXPECT_EQ(order,
            (std::vector<std::string>{"X", "I", "I", "I", "I", "I", "B", "B", "B", "B", "B"}));
}

TEST_F(LimiterShareTest, BatchKeepsItsMinimumShareUnderAnInteractiveFlood) {
  for (double share : {0.1, 0.25}) {
    SCOPED_TRACE(share);
    Make({{"B", {kBatch, 1}}}, share);
    calls_.clear();  // After Make: the previous limiter answered its queue UNAVAILABLE.
    clock_.Advance(absl::Seconds(10));  // A fresh window for the store's lane.
    Acquire("warm", "X", k10PerSecond);
    Flood("I", 400, k10PerSecond);
    Flood("B", 400, k10PerSecond);
    clock_.Advance(absl::Seconds(20));  // 200 admissions, both classes waiting throughout.
    std::map<std::string, int> n = CountsIn(AdmittedCallers(), 1, 201);
    EXPECT_EQ(n["B"], static_cast<int>(200 * share));
    EXPECT_EQ(n["I"], 200 - static_cast<int>(200 * share));
  }
}

TEST_F(LimiterShareTest, BatchTakesTheWholeLaneWhenNoInteractiveCallWaits) {
  Make({{"B", {kBatch, 1}}});
  Acquire("warm", "X", k10PerSecond);
  Flood("B", 20, k10PerSecond);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(CountsIn(AdmittedCallers(), 1, 21)["B"], 20);
}

TEST_F(LimiterShareTest, CallsOfOneCallerKeepTheirOrderWhateverTheMix) {
  Make({{"A", {kBatch, 7}}, {"B", {kBatch, 2}}, {"C", {kInteractive, 3}}}, 0.3);
  Acquire("warm", "X", k10PerSecond);
  std::mt19937 rng(7);
  const std::vector<std::string> callers = {"A", "B", "C", "D"};
  std::map<std::string, int> sent;
  for (int i = 0; i < 300; ++i) {
    const std::string& c = callers[rng() % callers.size()];
    Acquire(c + std::to_string(sent[c]++), c, k10PerSecond);
  }
  clock_.Advance(absl::Seconds(31));
  std::map<std::string, int> next;
  for (const Call& call : calls_) {
    if (call.caller == "X") continue;
    ASSERT_TRUE(call.status.ok()) << call.name;
    EXPECT_EQ(call.name, call.caller + std::to_string(next[call.caller]++));
  }
  EXPECT_EQ(next, sent);
}

TEST_F(LimiterShareTest, RequeuedCallGoesFirstWhateverItsClass) {
  Make({{"B", {kBatch, 1}}});
  Acquire("b0", "B", k10PerSecond);  // Admitted at once, then answered 429.
  Flood("I", 3, k10PerSecond);
  limiter_->OnTooManyRequests(kLane, absl::Seconds(1));
  EXPECT_NE(Requeue("b0-again", "B", k10PerSecond), kNoTicket);
  clock_.Advance(absl::Seconds(2));
  ASSERT_EQ(calls_.size(), 5u);
  EXPECT_EQ(calls_[1].name, "b0-again");
  EXPECT_EQ(calls_[1].at, t0_ + absl::Seconds(1));
  EXPECT_EQ(calls_[2].name, "I0");
}

// The wait estimate is the order's: a call's expected wait (RetryInfo of a refused probe) is the
// time it is then admitted, when nothing arrives after it.
TEST_F(LimiterShareTest, EstimateCountsOnlyTheCallsTheOrderServesFirst) {
  Make({{"A", {kBatch, 3}}, {"B", {kBatch, 1}}});
  Acquire("warm", "X");
  Flood("A", 6);
  // B's first call gets tag 1 = A's third: A's three first calls go before it.
  EXPECT_EQ(ExpectedWait("B"), absl::Seconds(4));
  // An interactive call goes before every batch call: only the slot.
  EXPECT_EQ(ExpectedWait("I"), absl::Seconds(1));
  Acquire("b0", "B");
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(Find("b0")->at, t0_ + absl::Seconds(4));
}

TEST_F(LimiterShareTest, BatchCallBehindAnInteractiveFloodIsRefusedByItsShare) {
  Make({{"B", {kBatch, 1}}});  // 10%: every 10th admission.
  Acquire("warm", "X");
  Flood("I", 30);
  // 9 interactive calls go first, then B's: 1 s to the slot + 9 s.
  EXPECT_EQ(Acquire("b-short", "B", k1PerSecond, t0_ + absl::Milliseconds(9500)), kNoTicket);
  const Call* refused = Find("b-short");
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryDelay(refused->status), absl::Seconds(10));
  EXPECT_NE(Acquire("b-long", "B", k1PerSecond, t0_ + absl::Milliseconds(10500)), kNoTicket);
  clock_.Advance(absl::Seconds(11));
  ASSERT_NE(Find("b-long"), nullptr);
  EXPECT_TRUE(Find("b-long")->status.ok());
  EXPECT_EQ(Find("b-long")->at, t0_ + absl::Seconds(10));
}

TEST_F(LimiterShareTest, InteractiveCallBehindABatchFloodWaitsOnlyForTheShare) {
  Make({{"B", {kBatch, 1}}}, 0.5);  // Every other admission is batch while both wait.
  Acquire("warm", "X");
  Flood("B", 30);
  Flood("I", 3);
  // I's 4th call is the 4th interactive: 3 batch calls are let in before it (credit 0.5 per
  // admission): 1 s + (3 + 3) s.
  EXPECT_EQ(ExpectedWait("I"), absl::Seconds(7));
  Acquire("i-last", "I");
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(Find("i-last")->at, t0_ + absl::Seconds(7));
}

// Random mixes of classes, weights, requeues and cancellations: the estimate for the last call is
// exactly when it goes.
TEST_F(LimiterShareTest, EstimateIsExactForRandomMixes) {
  const std::vector<std::string> callers = {"A", "B", "C", "D", "E"};
  for (int seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(static_cast<unsigned>(seed));
    std::map<std::string, CallerShare> shares;
    for (const std::string& c : callers) {
      shares[c] = CallerShare{rng() % 2 ? kBatch : kInteractive, 1 + static_cast<int>(rng() % 5)};
    }
    Make(shares, static_cast<double>(rng() % 11) / 10);
    calls_.clear();  // After Make: the previous limiter answered its queue UNAVAILABLE.
    clock_.Advance(absl::Seconds(100));  // A fresh window.
    const absl::Time start = clock_.Now();
    Acquire("warm", "X");
    std::vector<Ticket> tickets;
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      const std::string& c = callers[rng() % callers.size()];
      tickets.push_back(Acquire(absl::StrCat("q", i), c));
      if (rng() % 8 == 0) Requeue(absl::StrCat("r", i), c);
      if (rng() % 6 == 0) limiter_->Cancel(tickets[rng() % tickets.size()]);
    }
    // Some admissions happen, moving the credit and the classes' virtual times; a call stays
    // queued, so the probe below cannot find a free slot.
    const size_t depth = limiter_->QueueDepth(kLane);
    clock_.Advance(absl::Seconds(
        static_cast<int64_t>(std::min<size_t>(rng() % 6, depth == 0 ? 0 : depth - 1))));
    const std::string& last = callers[rng() % callers.size()];
    const absl::Duration expected = ExpectedWait(last);
    const absl::Time asked = clock_.Now();
    Acquire("last", last);
    clock_.Advance(absl::Seconds(200));
    ASSERT_NE(Find("last"), nullptr);
    EXPECT_TRUE(Find("last")->status.ok());
    EXPECT_EQ(Find("last")->at, asked + expected) << "start " << start;
  }
}

TEST_F(LimiterShareTest, CancelledCallGivesItsPlaceBack) {
  Make({{"A", {kBatch, 1}}, {"B", {kBatch, 1}}});
  Acquire("warm", "X");
  const Ticket a0 = Acquire("a0", "A");
  Acquire("a1", "A");
  Acquire("b0", "B");
  Acquire("b1", "B");
  EXPECT_TRUE(limiter_->Cancel(a0));
  // A's a1 moves up to a0's tag: A and B alternate again, A first.
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(Find("a1")->at, t0_ + absl::Seconds(1));
  EXPECT_EQ(Find("b0")->at, t0_ + absl::Seconds(2));
  EXPECT_EQ(Find("b1")->at, t0_ + absl::Seconds(3));
}

TEST_F(LimiterShareTest, AnswersNameTheCallersClass) {
  std::vector<std::pair<std::string, Priority>> seen;
  Make({{"B", {kBatch, 2}}}, 0.1,
       [&seen](const AnswerEvent& e) { seen.emplace_back(std::string(e.caller), e.priority); });
  Acquire("b0", "B");
  Acquire("i0", "I");
  Acquire("late", "B", k1PerSecond, t0_ + absl::Milliseconds(10));  // Refused at once.
  clock_.Advance(absl::Seconds(2));
  using Seen = std::vector<std::pair<std::string, Priority>>;
  EXPECT_EQ(seen, (Seen{{"B", kBatch}, {"B", kBatch}, {"I", kInteractive}}));
  EXPECT_EQ(PriorityName(kBatch), "batch");
  EXPECT_EQ(PriorityName(kInteractive), "interactive");
}

TEST_F(LimiterShareTest, OutOfRangeWeightsAndSharesAreClamped) {
  Make({{"A", {kBatch, 0}}, {"B", {kBatch, 1000000}}}, 7.0);  // Weight 1, 1000; share 1.
  Acquire("warm", "X", k10PerSecond);
  Flood("A", 10, k10PerSecond);
  Flood("B", 10, k10PerSecond);
  Flood("I", 10, k10PerSecond);
  clock_.Advance(absl::Seconds(4));
  const std::vector<std::string> order = AdmittedCallers();
  // A share of 1: batch first while it waits; weight 1000 against 1: B's ten before A's first.
  ASSERT_GE(order.size(), 21u);
  EXPECT_EQ(CountsIn(order, 1, 11)["B"], 10);
  EXPECT_EQ(CountsIn(order, 11, 21)["A"], 10);
}

}  // namespace
}  // namespace sag::ratelimit
