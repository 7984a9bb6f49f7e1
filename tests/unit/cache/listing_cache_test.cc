#include "service/cache/listing_cache.h"

#include <atomic>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/cache/in_memory_store.h"
#include "service/cache/keys.h"
#include "tests/support/fake_clock.h"

namespace sag::cache {
namespace {

using FetchDone = ListingCache::FetchDone;

// An upstream whose calls stay pending until the test answers them, in order.
class FakeUpstream {
 public:
  ListingCache::Fetch fetch() {
    return [this](FetchDone done) {
      absl::MutexLock lock(&mu_);
      ++started_;
      pending_.push_back(std::move(done));
    };
  }
  int started() const {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  size_t pending() const {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }
  // Answers the oldest pending call (index 0) or another one.
  void Reply(absl::StatusOr<std::string> result, size_t index = 0) {
    FetchDone done;
    {
      absl::MutexLock lock(&mu_);
      ASSERT_LT(index, pending_.size());
      done = std::move(pending_[index]);
      pending_.erase(pending_.begin() + index);
    }
    done(std::move(result));
  }

 private:
  mutable absl::Mutex mu_;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<FetchDone> pending_ ABSL_GUARDED_BY(mu_);
};

// A fetch the test must never see called.
ListingCache::Fetch NoFetch() {
  return [](FetchDone done) {
    ADD_FAILURE() << "unexpected upstream call";
    done(absl::InternalError("unexpected"));
  };
}

// Records every answer a Done receives.
struct Answer {
  absl::StatusOr<std::string> value;
  Outcome outcome;
};
class Answers {
 public:
  ListingCache::Done done() {
    return [this](absl::StatusOr<ListingCache::Bytes> value, Outcome outcome) {
      absl::MutexLock lock(&mu_);
      EXPECT_TRUE(!value.ok() || *value != nullptr);
      got_.push_back(
          Answer{value.ok() ? absl::StatusOr<std::string>(**value) : value.status(), outcome});
    };
  }
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return got_.size();
  }
  Answer at(size_t i) const {
    absl::MutexLock lock(&mu_);
    return got_.at(i);
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Answer> got_ ABSL_GUARDED_BY(mu_);
};

void PrintTo(const Answer& answer, std::ostream* os) {
  *os << "{" << (answer.value.ok() ? "\"" + *answer.value + "\"" : answer.value.status().ToString())
      << ", " << OutcomeName(answer.outcome) << "}";
}

MATCHER_P2(IsAnswer, value, outcome,
           absl::StrCat("is {\"", value, "\", ", OutcomeName(outcome), "}")) {
  return arg.value.ok() && *arg.value == value && arg.outcome == outcome;
}
MATCHER_P2(IsError, code, outcome,
           absl::StrCat("is {", absl::StatusCodeToString(code), ", ", OutcomeName(outcome), "}")) {
  return arg.value.status().code() == code && arg.outcome == outcome;
}

constexpr absl::Duration kTtl = absl::Seconds(30);
constexpr absl::Duration kSwr = absl::Seconds(30);
constexpr absl::Duration kSie = absl::Minutes(5);

class ListingCacheTest : public ::testing::Test {
 protected:
  ListingCacheTest() { Reset(); }

  void Reset(size_t max_bytes = size_t{64} << 20) {
    cache_.reset();
    InMemoryStore::Options store_options;
    store_options.max_bytes = max_bytes;
    store_options.clock = &clock_;
    store_ = std::make_shared<InMemoryStore>(store_options);
    ListingCache::Options options;
    options.ttl = kTtl;
    options.stale_while_revalidate = kSwr;
    options.stale_if_error = kSie;
    options.clock = &clock_;
    cache_ = std::make_unique<ListingCache>(store_, options);
  }

  static ListingCache::Lookup Lookup(absl::string_view workspace = "ws",
                                     absl::string_view space = "spa",
                                     absl::string_view params = "count=10", bool bypass = false) {
    return ListingCache::Lookup{MakeKey(workspace, space, kListAudiences, params),
                                ListingTags(workspace, space, kListAudiences), bypass};
  }
  static ListingCache::Lookup Bypass() { return Lookup("ws", "spa", "count=10", true); }

  // Fills the default lookup's entry with `value` (a miss answered at once).
  void Fill(const std::string& value, ListingCache::Lookup lookup = Lookup()) {
    Answers& answers = NewAnswers();
    cache_->Get(
        lookup, [value](FetchDone done) { done(value); }, answers.done());
    ASSERT_EQ(answers.size(), 1u);
    ASSERT_TRUE(answers.at(0).value.ok());
  }

  // Answers live as long as the fixture, so that fetches left pending at the end of a test (whose
  // dropped FetchDone answers their waiters with INTERNAL) find them still there.
  Answers& NewAnswers() { return answers_pool_.emplace_back(); }

  FakeClock clock_;
  std::deque<Answers> answers_pool_;
  std::shared_ptr<InMemoryStore> store_;
  std::unique_ptr<ListingCache> cache_;
  FakeUpstream upstream_;  // Destroyed first: drops the pending fetches.
};

TEST(OutcomeTest, NamesAreTheXCacheValues) {
  EXPECT_EQ(OutcomeName(Outcome::kHit), "hit");
  EXPECT_EQ(OutcomeName(Outcome::kMiss), "miss");
  EXPECT_EQ(OutcomeName(Outcome::kStale), "stale");
  EXPECT_EQ(OutcomeName(Outcome::kBypass), "bypass");
}

TEST(StaleIfErrorEligibleTest, AnswersAreNotFailures) {
  EXPECT_FALSE(StaleIfErrorEligible(absl::OkStatus()));
  EXPECT_FALSE(StaleIfErrorEligible(absl::InvalidArgumentError("")));
  EXPECT_FALSE(StaleIfErrorEligible(absl::NotFoundError("")));
  EXPECT_FALSE(StaleIfErrorEligible(absl::PermissionDeniedError("")));
  EXPECT_FALSE(StaleIfErrorEligible(absl::UnauthenticatedError("")));
  EXPECT_TRUE(StaleIfErrorEligible(absl::UnavailableError("")));
  EXPECT_TRUE(StaleIfErrorEligible(absl::ResourceExhaustedError("")));
  EXPECT_TRUE(StaleIfErrorEligible(absl::DeadlineExceededError("")));
  // Only failures to get an answer: 5xx / timeouts (UNAVAILABLE), waits (DEADLINE_EXCEEDED) and
  // rate-limit waits (RESOURCE_EXHAUSTED). Nothing else, so a new code is never stale by accident.
  EXPECT_FALSE(StaleIfErrorEligible(absl::InternalError("")));
  EXPECT_FALSE(StaleIfErrorEligible(absl::CancelledError("")));
  EXPECT_FALSE(StaleIfErrorEligible(absl::FailedPreconditionError("")));
  EXPECT_FALSE(StaleIfErrorEligible(absl::UnknownError("")));
}

TEST_F(ListingCacheTest, MissFetchesStoresAndThenHits) {
  Answers& answers = NewAnswers();
  ListingCache::WaiterId id = cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_NE(id, ListingCache::kNoWaiter);
  EXPECT_EQ(upstream_.started(), 1);
  EXPECT_EQ(answers.size(), 0u);  // Nothing waits on a thread: the answer comes with the fetch.
  upstream_.Reply(std::string("v1"));
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_THAT(answers.at(0), IsAnswer("v1", Outcome::kMiss));

  // A hit is answered inline, before Get() returns.
  EXPECT_EQ(cache_->Get(Lookup(), NoFetch(), answers.done()), ListingCache::kNoWaiter);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_THAT(answers.at(1), IsAnswer("v1", Outcome::kHit));
  EXPECT_EQ(upstream_.started(), 1);
  EXPECT_FALSE(cache_->Abandon(id, absl::CancelledError("late")));

  ListingCache::Stats stats = cache_->stats();
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.fetches_started, 1u);
  EXPECT_EQ(stats.in_flight, 0u);
  EXPECT_EQ(stats.waiting, 0u);
  EXPECT_EQ(stats.store.entries, 1u);
  EXPECT_GT(stats.store.bytes, 0u);
}

TEST_F(ListingCacheTest, InlineFetchAnswersBeforeGetReturns) {
  Answers& answers = NewAnswers();
  ListingCache::WaiterId id = cache_->Get(
      Lookup(), [](FetchDone done) { done(std::string("v")); }, answers.done());
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_THAT(answers.at(0), IsAnswer("v", Outcome::kMiss));
  EXPECT_FALSE(cache_->Abandon(id, absl::CancelledError("")));
  EXPECT_EQ(answers.size(), 1u);
}

TEST_F(ListingCacheTest, EntriesExpire) {
  Fill("v1");
  clock_.Advance(kTtl - absl::Milliseconds(1));
  Answers& answers = NewAnswers();
  cache_->Get(Lookup(), NoFetch(), answers.done());
  EXPECT_THAT(answers.at(0), IsAnswer("v1", Outcome::kHit));
  // Past ttl + stale_while_revalidate: a plain miss.
  clock_.Advance(kSwr + absl::Milliseconds(2));
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_EQ(answers.size(), 1u);
  EXPECT_EQ(upstream_.started(), 1);
  upstream_.Reply(std::string("v2"));
  EXPECT_THAT(answers.at(1), IsAnswer("v2", Outcome::kMiss));
  // Past every window the store drops the entry on its own.
  clock_.Advance(kTtl + kSie + absl::Seconds(1));
  EXPECT_EQ(store_->Get(Lookup().key), nullptr);
}

TEST_F(ListingCacheTest, FreshHitAnswersOnlyFreshEntriesAndCountsOnlyHits) {
  EXPECT_EQ(cache_->FreshHit(Lookup().key), std::nullopt);  // Nothing stored.
  Fill("v1");
  const uint64_t hits = cache_->stats().hits;
  std::optional<ListingCache::Bytes> hit = cache_->FreshHit(Lookup().key);
  ASSERT_TRUE(hit.has_value());
  ASSERT_NE(*hit, nullptr);
  EXPECT_EQ(**hit, "v1");
  EXPECT_EQ(cache_->stats().hits, hits + 1);
  EXPECT_EQ(cache_->FreshHit(Lookup("ws2").key), std::nullopt);  // Another key.
  // Stale (within stale-while-revalidate) is not fresh: the full Get() must decide.
  clock_.Advance(kTtl);
  EXPECT_EQ(cache_->FreshHit(Lookup().key), std::nullopt);
  EXPECT_EQ(cache_->stats().hits, hits + 1);
  EXPECT_EQ(upstream_.started(), 0);
  // The bytes stay valid after the entry is gone.
  Fill("v2");
  hit = cache_->FreshHit(Lookup().key);
  store_->Erase(Lookup().key);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(**hit, "v2");
}

TEST_F(ListingCacheTest, KeysSeparateWorkspacesSpacesAndParameters) {
  Fill("ws-spa-10");
  Answers& answers = NewAnswers();
  for (const ListingCache::Lookup& other :
       {Lookup("ws2"), Lookup("ws", "spa2"), Lookup("ws", "spa", "count=20")}) {
    cache_->Get(other, upstream_.fetch(), answers.done());
  }
  EXPECT_EQ(upstream_.started(), 3);  // No sharing: each needs its own upstream call.
  EXPECT_EQ(answers.size(), 0u);
  cache_->Get(Lookup(), NoFetch(), answers.done());
  EXPECT_THAT(answers.at(0), IsAnswer("ws-spa-10", Outcome::kHit));
}

TEST_F(ListingCacheTest, SingleflightSharesOneFetchAmongConcurrentMisses) {
  Answers& answers = NewAnswers();
  constexpr int kCallers = 100;
  std::vector<ListingCache::WaiterId> ids;
  for (int i = 0; i < kCallers; ++i)
    ids.push_back(cache_->Get(Lookup(), upstream_.fetch(), answers.done()));
  EXPECT_EQ(upstream_.started(), 1);
  EXPECT_EQ(cache_->stats().singleflight_joins, kCallers - 1u);
  EXPECT_EQ(cache_->stats().waiting, size_t{kCallers});
  upstream_.Reply(std::string("shared"));
  ASSERT_EQ(answers.size(), size_t{kCallers});
  for (int i = 0; i < kCallers; ++i) EXPECT_THAT(answers.at(i), IsAnswer("shared", Outcome::kMiss));
  EXPECT_EQ(cache_->stats().misses, size_t{kCallers});
  EXPECT_EQ(cache_->stats().waiting, 0u);
}

TEST_F(ListingCacheTest, SingleflightSharesTheErrorToo) {
  Answers& answers = NewAnswers();
  for (int i = 0; i < 5; ++i) cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_EQ(upstream_.started(), 1);
  upstream_.Reply(absl::UnavailableError("upstream 503"));
  ASSERT_EQ(answers.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(answers.at(i), IsError(absl::StatusCode::kUnavailable, Outcome::kMiss));
    EXPECT_EQ(answers.at(i).value.status().message(), "upstream 503");
  }
  // Errors are not cached: the next caller tries again.
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_EQ(upstream_.started(), 2);
  EXPECT_EQ(cache_->stats().fetch_errors, 1u);
}

TEST_F(ListingCacheTest, AbandonedWaiterLeavesAloneAndTheSharedFetchGoesOn) {
  Answers& first = NewAnswers();
  Answers& second = NewAnswers();
  Answers& third = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), first.done());
  ListingCache::WaiterId leaving = cache_->Get(Lookup(), upstream_.fetch(), second.done());
  cache_->Get(Lookup(), upstream_.fetch(), third.done());
  ASSERT_EQ(upstream_.started(), 1);

  EXPECT_TRUE(cache_->Abandon(leaving, absl::DeadlineExceededError("deadline")));
  ASSERT_EQ(second.size(), 1u);  // Answered at once, with its own reason (no entry to serve).
  EXPECT_THAT(second.at(0), IsError(absl::StatusCode::kDeadlineExceeded, Outcome::kMiss));
  EXPECT_FALSE(cache_->Abandon(leaving, absl::DeadlineExceededError("again")));
  EXPECT_EQ(first.size(), 0u);
  EXPECT_EQ(third.size(), 0u);
  EXPECT_EQ(upstream_.pending(), 1u);  // Not cancelled.

  upstream_.Reply(std::string("v"));
  EXPECT_THAT(first.at(0), IsAnswer("v", Outcome::kMiss));
  EXPECT_THAT(third.at(0), IsAnswer("v", Outcome::kMiss));
  EXPECT_EQ(second.size(), 1u);  // Exactly once.
  EXPECT_EQ(cache_->stats().abandoned, 1u);
}

TEST_F(ListingCacheTest, FetchWhoseWaitersAllLeftStillStores) {
  Answers& answers = NewAnswers();
  ListingCache::WaiterId id = cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_TRUE(cache_->Abandon(id, absl::CancelledError("caller went away")));
  EXPECT_THAT(answers.at(0), IsError(absl::StatusCode::kCancelled, Outcome::kMiss));
  upstream_.Reply(std::string("v"));
  EXPECT_EQ(answers.size(), 1u);
  cache_->Get(Lookup(), NoFetch(), answers.done());
  EXPECT_THAT(answers.at(1), IsAnswer("v", Outcome::kHit));
}

TEST_F(ListingCacheTest, AbandonServesStaleWithinStaleIfError) {
  Fill("old");
  clock_.Advance(kTtl + kSwr + absl::Seconds(1));  // Too old to revalidate: a miss.
  Answers& answers = NewAnswers();
  ListingCache::WaiterId id = cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_TRUE(cache_->Abandon(id, absl::DeadlineExceededError("deadline")));
  EXPECT_THAT(answers.at(0), IsAnswer("old", Outcome::kStale));
  // An OK reason is not an answer: it becomes CANCELLED, which is no failure of the upstream, so
  // no stale either (only UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED are).
  id = cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_TRUE(cache_->Abandon(id, absl::OkStatus()));
  EXPECT_THAT(answers.at(1), IsError(absl::StatusCode::kCancelled, Outcome::kMiss));
  // A rate-limit wait longer than the deadline is one.
  id = cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_TRUE(cache_->Abandon(id, absl::ResourceExhaustedError("rate limited")));
  EXPECT_THAT(answers.at(2), IsAnswer("old", Outcome::kStale));
  EXPECT_EQ(upstream_.started(), 1);
}

TEST_F(ListingCacheTest, InvalidateDropsTaggedEntriesOnly) {
  Fill("a", Lookup("ws", "spa"));
  Fill("b", Lookup("ws", "spb"));
  cache_->Invalidate(SpaceTag("ws", "spa", kListAudiences));
  Answers& answers = NewAnswers();
  cache_->Get(Lookup("ws", "spa"), upstream_.fetch(), answers.done());
  EXPECT_EQ(upstream_.started(), 1);
  cache_->Get(Lookup("ws", "spb"), NoFetch(), answers.done());
  EXPECT_THAT(answers.at(0), IsAnswer("b", Outcome::kHit));
  EXPECT_EQ(cache_->stats().invalidations, 1u);
  EXPECT_EQ(cache_->stats().store.invalidated, 1u);
}

TEST_F(ListingCacheTest, FetchStartedBeforeInvalidationDoesNotStoreNorGetJoined) {
  Answers& before = NewAnswers();
  Answers& after = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), before.done());    // Fetch #1: may predate the write.
  cache_->Invalidate(SpaceTag("ws", "spa", kListAudiences));  // The write succeeded.
  cache_->Get(Lookup(), upstream_.fetch(), after.done());     // Must not join #1.
  ASSERT_EQ(upstream_.started(), 2);

  upstream_.Reply(std::string("without-write"), 0);  // #1 answers its own waiter...
  EXPECT_THAT(before.at(0), IsAnswer("without-write", Outcome::kMiss));
  EXPECT_EQ(after.size(), 0u);
  EXPECT_EQ(store_->Get(Lookup().key), nullptr);  // ...but is not stored.
  EXPECT_EQ(cache_->stats().results_dropped, 1u);

  upstream_.Reply(std::string("with-write"));  // #2 is stored.
  EXPECT_THAT(after.at(0), IsAnswer("with-write", Outcome::kMiss));
  cache_->Get(Lookup(), NoFetch(), after.done());
  EXPECT_THAT(after.at(1), IsAnswer("with-write", Outcome::kHit));
}

TEST_F(ListingCacheTest, PreInvalidationFetchFinishingLastDoesNotOverwrite) {
  Answers& answers = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  cache_->Invalidate(SpaceTag("ws", "spa", kListAudiences));
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  upstream_.Reply(std::string("new"), 1);
  upstream_.Reply(std::string("old"), 0);
  cache_->Get(Lookup(), NoFetch(), answers.done());
  EXPECT_THAT(answers.at(2), IsAnswer("new", Outcome::kHit));
}

TEST_F(ListingCacheTest, UnrelatedInvalidationKeepsTheFetchJoinable) {
  Answers& answers = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  cache_->Invalidate(SpaceTag("ws", "other-space", kListAudiences));
  cache_->Invalidate(SpaceTag("ws", "spa", kListConsumers));
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_EQ(upstream_.started(), 1);
  upstream_.Reply(std::string("v"));
  EXPECT_NE(store_->Get(Lookup().key), nullptr);
}

TEST_F(ListingCacheTest, StaleWhileRevalidateAnswersStaleAndRefreshesOnce) {
  Fill("v1");
  clock_.Advance(kTtl + absl::Seconds(1));
  Answers& answers = NewAnswers();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(cache_->Get(Lookup(), upstream_.fetch(), answers.done()), ListingCache::kNoWaiter);
  }
  ASSERT_EQ(answers.size(), 3u);  // All answered at once...
  for (int i = 0; i < 3; ++i) EXPECT_THAT(answers.at(i), IsAnswer("v1", Outcome::kStale));
  EXPECT_EQ(upstream_.started(), 1);  // ...with exactly one background refresh.
  EXPECT_EQ(cache_->stats().background_refreshes, 1u);

  // A miss arriving meanwhile (the entry too old by then) joins the refresh.
  clock_.Advance(kSwr);
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_EQ(upstream_.started(), 1);
  upstream_.Reply(std::string("v2"));
  EXPECT_THAT(answers.at(3), IsAnswer("v2", Outcome::kMiss));
  cache_->Get(Lookup(), NoFetch(), answers.done());
  EXPECT_THAT(answers.at(4), IsAnswer("v2", Outcome::kHit));
  EXPECT_EQ(cache_->stats().stale, 3u);
}

TEST_F(ListingCacheTest, FailedRevalidationKeepsTheEntryAndRetriesLater) {
  Fill("v1");
  clock_.Advance(kTtl + absl::Seconds(1));
  Answers& answers = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  upstream_.Reply(absl::UnavailableError("down"));
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  EXPECT_THAT(answers.at(1), IsAnswer("v1", Outcome::kStale));
  EXPECT_EQ(upstream_.started(), 2);  // The next stale answer refreshes again.
}

TEST_F(ListingCacheTest, StaleIfErrorWithinTheWindowThenTheError) {
  Fill("good");
  clock_.Advance(kTtl + kSwr + absl::Seconds(1));
  Answers& answers = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  upstream_.Reply(absl::UnavailableError("upstream 503"));
  EXPECT_THAT(answers.at(0), IsAnswer("good", Outcome::kStale));
  EXPECT_THAT(answers.at(1), IsAnswer("good", Outcome::kStale));

  // A rate-limit wait longer than the caller's deadline counts as a failure too.
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  upstream_.Reply(absl::ResourceExhaustedError("rate limited"));
  EXPECT_THAT(answers.at(2), IsAnswer("good", Outcome::kStale));

  // Up to the edge of the window, still served; from it on, the error.
  clock_.Advance(kSie - kSwr - absl::Seconds(1) - absl::Milliseconds(1));  // age: ttl + sie - 1ms
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  upstream_.Reply(absl::UnavailableError("upstream 503"));
  EXPECT_THAT(answers.at(3), IsAnswer("good", Outcome::kStale));
  clock_.Advance(absl::Milliseconds(1));
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  upstream_.Reply(absl::UnavailableError("upstream 503"));
  EXPECT_THAT(answers.at(4), IsError(absl::StatusCode::kUnavailable, Outcome::kMiss));
  EXPECT_EQ(cache_->stats().stale_if_error, 4u);
}

TEST_F(ListingCacheTest, AnswersLikeNotFoundPassThrough) {
  for (absl::Status answer : {absl::NotFoundError("space gone"), absl::InvalidArgumentError("bad"),
                              absl::PermissionDeniedError("no"), absl::UnauthenticatedError("no"),
                              absl::InternalError("a 2xx body that does not fit the model")}) {
    SCOPED_TRACE(answer.ToString());
    Reset();
    Fill("good");
    clock_.Advance(kTtl + kSwr + absl::Seconds(1));
    Answers& answers = NewAnswers();
    cache_->Get(Lookup(), upstream_.fetch(), answers.done());
    upstream_.Reply(answer);
    EXPECT_THAT(answers.at(0), IsError(answer.code(), Outcome::kMiss));
  }
}

TEST_F(ListingCacheTest, InvalidatedEntryIsNotServedOnError) {
  Fill("pre-write");
  cache_->Invalidate(SpaceTag("ws", "spa", kListAudiences));
  Answers& answers = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  upstream_.Reply(absl::UnavailableError("down"));
  EXPECT_THAT(answers.at(0), IsError(absl::StatusCode::kUnavailable, Outcome::kMiss));
}

TEST_F(ListingCacheTest, BypassAlwaysFetchesAndRefreshesTheEntry) {
  Fill("v1");
  Answers& answers = NewAnswers();
  cache_->Get(Bypass(), upstream_.fetch(), answers.done());  // Fresh entry, fetched anyway.
  EXPECT_EQ(upstream_.started(), 1);
  EXPECT_EQ(answers.size(), 0u);
  upstream_.Reply(std::string("v2"));
  EXPECT_THAT(answers.at(0), IsAnswer("v2", Outcome::kBypass));
  cache_->Get(Lookup(), NoFetch(), answers.done());
  EXPECT_THAT(answers.at(1), IsAnswer("v2", Outcome::kHit));
  EXPECT_EQ(cache_->stats().bypass, 1u);
}

TEST_F(ListingCacheTest, BypassErrorPassesThroughAndKeepsTheEntry) {
  Fill("v1");
  Answers& answers = NewAnswers();
  cache_->Get(Bypass(), upstream_.fetch(), answers.done());
  upstream_.Reply(absl::UnavailableError("down"));
  EXPECT_THAT(answers.at(0), IsError(absl::StatusCode::kUnavailable, Outcome::kBypass));
  cache_->Get(Lookup(), NoFetch(), answers.done());
  EXPECT_THAT(answers.at(1), IsAnswer("v1", Outcome::kHit));
}

TEST_F(ListingCacheTest, BypassNeverJoinsAndReplacesTheFetchInFlight) {
  Answers& miss = NewAnswers();
  Answers& bypass = NewAnswers();
  Answers& later = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), miss.done());    // #0
  cache_->Get(Bypass(), upstream_.fetch(), bypass.done());  // #1: a new fetch
  cache_->Get(Bypass(), upstream_.fetch(), bypass.done());  // #2: another one
  EXPECT_EQ(upstream_.started(), 3);
  cache_->Get(Lookup(), upstream_.fetch(), later.done());  // Joins the newest (#2).
  EXPECT_EQ(upstream_.started(), 3);
  upstream_.Reply(std::string("v2"), 2);
  EXPECT_THAT(bypass.at(0), IsAnswer("v2", Outcome::kBypass));
  EXPECT_THAT(later.at(0), IsAnswer("v2", Outcome::kMiss));
  upstream_.Reply(std::string("v0"), 0);  // Older: answers its waiter, does not overwrite.
  EXPECT_THAT(miss.at(0), IsAnswer("v0", Outcome::kMiss));
  upstream_.Reply(std::string("v1"), 0);
  EXPECT_THAT(bypass.at(1), IsAnswer("v1", Outcome::kBypass));
  cache_->Get(Lookup(), NoFetch(), later.done());
  EXPECT_THAT(later.at(1), IsAnswer("v2", Outcome::kHit));
}

TEST_F(ListingCacheTest, AbandonedBypassGetsItsReason) {
  Fill("v1");
  Answers& answers = NewAnswers();
  ListingCache::WaiterId id = cache_->Get(Bypass(), upstream_.fetch(), answers.done());
  EXPECT_TRUE(cache_->Abandon(id, absl::DeadlineExceededError("deadline")));
  EXPECT_THAT(answers.at(0), IsError(absl::StatusCode::kDeadlineExceeded, Outcome::kBypass));
}

TEST_F(ListingCacheTest, DroppedFetchDoneFailsTheWaitersInsteadOfStrandingThem) {
  Answers& answers = NewAnswers();
  cache_->Get(
      Lookup(), [](FetchDone) { /* loses it */ }, answers.done());
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_THAT(answers.at(0), IsError(absl::StatusCode::kInternal, Outcome::kMiss));
  EXPECT_EQ(cache_->stats().in_flight, 0u);
  // An empty Fetch is reported the same way.
  cache_->Get(Lookup(), ListingCache::Fetch(), answers.done());
  EXPECT_THAT(answers.at(1), IsError(absl::StatusCode::kInternal, Outcome::kMiss));
}

TEST_F(ListingCacheTest, OnlyTheFirstFetchDoneCounts) {
  Answers& answers = NewAnswers();
  cache_->Get(
      Lookup(),
      [](FetchDone done) {
        done(std::string("first"));
        done(std::string("second"));
        done(absl::UnavailableError("third"));
      },
      answers.done());
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_THAT(answers.at(0), IsAnswer("first", Outcome::kMiss));
  EXPECT_EQ(store_->Get(Lookup().key)->value, "first");
}

TEST_F(ListingCacheTest, CallbacksMayReenterTheCache) {
  Answers& answers = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), [&](absl::StatusOr<ListingCache::Bytes>, Outcome) {
    cache_->Invalidate(SpaceTag("ws", "spa", kListAudiences));
    cache_->Get(Lookup("ws2"), upstream_.fetch(), answers.done());
  });
  upstream_.Reply(std::string("v"));
  EXPECT_EQ(upstream_.started(), 2);
}

TEST_F(ListingCacheTest, WaitersAreAnsweredEvenAfterTheCacheIsDestroyed) {
  Answers& answers = NewAnswers();
  cache_->Get(Lookup(), upstream_.fetch(), answers.done());
  cache_.reset();
  upstream_.Reply(std::string("late"));
  EXPECT_THAT(answers.at(0), IsAnswer("late", Outcome::kMiss));
}

// Several threads hammer a few keys with every operation (and move time) while an "upstream"
// thread answers fetches, sometimes with errors. Every Get() must be answered exactly once, and the
// cache must end idle.
TEST_F(ListingCacheTest, ThreadSafetySmoke) {
  constexpr int kThreads = 6;
  constexpr int kOpsPerThread = 3000;
  absl::Mutex queue_mu;
  std::deque<FetchDone> queue;
  std::atomic<bool> stop{false};
  ListingCache::Fetch fetch = [&](FetchDone done) {
    absl::MutexLock lock(&queue_mu);
    queue.push_back(std::move(done));
  };
  std::atomic<int> answered{0}, requested{0};
  std::thread upstream([&] {
    int n = 0;
    while (true) {
      FetchDone done;
      {
        absl::MutexLock lock(&queue_mu);
        if (queue.empty()) {
          if (stop.load()) return;
        } else {
          done = std::move(queue.front());
          queue.pop_front();
        }
      }
      if (!done) {
        std::this_thread::yield();
        continue;
      }
      if (++n % 7 == 0) {
        done(absl::UnavailableError("flaky"));
      } else {
        done(absl::StrCat("value-", n));
      }
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<ListingCache::WaiterId> mine;
      for (int i = 0; i < kOpsPerThread; ++i) {
        const int op = rng() % 100;
        const std::string space = absl::StrCat("spa", rng() % 4);
        const std::string params = absl::StrCat("p", rng() % 3);
        if (op < 2) {
          clock_.Advance(absl::Seconds(5));  // Entries go stale, then too old.
        } else if (op < 5) {
          cache_->Invalidate(SpaceTag("ws", space, kListAudiences));
        } else if (op < 10 && !mine.empty()) {
          cache_->Abandon(mine[rng() % mine.size()], absl::DeadlineExceededError("deadline"));
        } else {
          requested.fetch_add(1);
          auto once = std::make_shared<std::atomic<int>>(0);
          ListingCache::WaiterId id =
              cache_->Get(Lookup("ws", space, params, /*bypass=*/op < 15), fetch,
                          [&answered, once](absl::StatusOr<ListingCache::Bytes>, Outcome) {
                            EXPECT_EQ(once->fetch_add(1), 0) << "answered twice";
                            answered.fetch_add(1);
                          });
          if (id != ListingCache::kNoWaiter) mine.push_back(id);
        }
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  stop.store(true);
  upstream.join();
  EXPECT_EQ(answered.load(), requested.load());
  ListingCache::Stats stats = cache_->stats();
  EXPECT_EQ(stats.in_flight, 0u);
  EXPECT_EQ(stats.waiting, 0u);
  EXPECT_EQ(stats.hits + stats.misses + stats.stale + stats.bypass, uint64_t(requested.load()));
  std::printf("smoke: %d gets, %llu fetches, %llu joins, %llu hits, %llu stale, %llu abandoned\n",
              requested.load(), static_cast<unsigned long long>(stats.fetches_started),
              static_cast<unsigned long long>(stats.singleflight_joins),
              static_cast<unsigned long long>(stats.hits),
              static_cast<unsigned long long>(stats.stale),
              static_cast<unsigned long long>(stats.abandoned));
}

// Resident set size of this process, in KiB (0 when unknown).
long RssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
}

TEST_F(ListingCacheTest, HundredThousandKeysStayUnderTheByteBound) {
  for (size_t max_bytes : {size_t{64} << 20, size_t{16} << 20}) {
    Reset(max_bytes);
    const long rss_before = RssKib();
    constexpr int kKeys = 100000;
    int answered = 0;
    for (int i = 0; i < kKeys; ++i) {
      const std::string space = absl::StrCat("spa_", i % 50);
      ListingCache::Lookup lookup{MakeKey("workspace", space, kListAudiences,
                                          absl::StrCat("pagination{count:50,cursor:", i, "}")),
                                  ListingTags("workspace", space, kListAudiences)};
      cache_->Get(
          lookup,
          [i](FetchDone done) { done(absl::StrCat("audiences page ", i, std::string(200, '.'))); },
          [&answered](absl::StatusOr<ListingCache::Bytes> v, Outcome) { answered += v.ok(); });
      ASSERT_LE(store_->Stats().bytes, max_bytes);
    }
    EXPECT_EQ(answered, kKeys);
    ListingCache::Stats stats = cache_->stats();
    EXPECT_LE(stats.store.bytes, max_bytes);
    std::printf(
        "100000 keys, max_bytes %zu: %llu entries, %llu bytes accounted, %llu evictions, "
        "RSS growth %ld KiB\n",
        max_bytes, static_cast<unsigned long long>(stats.store.entries),
        static_cast<unsigned long long>(stats.store.bytes),
        static_cast<unsigned long long>(stats.store.evictions), RssKib() - rss_before);
  }
}

}  // namespace
}  // namespace sag::cache
