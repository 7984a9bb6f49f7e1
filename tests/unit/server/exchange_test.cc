// In-process tests of one upstream exchange (service/server/exchange.h): every terminal outcome
// at every stage (monthly quota, limiter queue, HTTP request, back-off), on the fake clock with a
// fake HTTP client. Everything runs on the test thread: nothing sleeps, nothing waits.
#include "service/server/exchange.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "segment/audiences/v1/audiences.pb.h"
#include "service/operations/operation_table.h"
#include "service/operations/request_builder.h"
#include "service/ratelimit/limiter.h"
#include "tests/support/fake_budget_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_http_client.h"

namespace sag {
namespace {

namespace v1 = segment::audiences::v1;
using ::sag::testing::FakeBudgetStore;
using ::sag::testing::FakeHttpClient;

constexpr char kSecret[] = "sekret-token-value";
constexpr char kAudienceBody[] = R"({"data":{"audience":{"id":"aud_1","name":"A"}}})";

// The outcome handed to `done`, once.
struct Result {
  int calls = 0;
  absl::Status status;
  std::unique_ptr<google::protobuf::Message> response;
  ExchangeReport report;
};

class ExchangeTest : public ::testing::Test {
 protected:
  ExchangeTest() {
    quota_ = *ratelimit::LocalPreviewQuota::Open({.path = "", .limit = 2});
    env_.http = &http_;
    env_.clock = &clock_;
    env_.timers = &clock_;
    env_.limiter = &limiter_;
    env_.quota = quota_.get();
    env_.retry_budget = &retry_budget_;
    env_.backoff = &backoff_;
    env_.upstream_timeout = absl::Seconds(30);
    env_.max_attempts = 3;
  }

  const ops::RequestBuilder& Builder(absl::string_view rpc) {
    auto& slot = builders_[std::string(rpc)];
    if (slot == nullptr) {
      const auto* service =
          v1::GetAudienceRequest::descriptor()->file()->FindServiceByName("AudiencesService");
      slot = *ops::RequestBuilder::Create(*ops::FindOperation(rpc),
                                          service->FindMethodByName(std::string(rpc)));
    }
    return *slot;
  }

  // Starts an exchange of `rpc` with `request`, due `timeout` from now on the fake clock.
  std::shared_ptr<Exchange> Start(absl::string_view rpc, const google::protobuf::Message& request,
                                  absl::Duration timeout = absl::Seconds(10),
                                  bool deadline_is_callers = true) {
    ExchangeParams p;
    p.builder = &Builder(rpc);
    p.http = *p.builder->Build(request, "https://api.example");
    p.http.headers.emplace_back("Authorization", absl::StrCat("Bearer ", kSecret));
    p.secret = kSecret;
    p.lane = absl::StrCat("ws/", rpc);
    p.limit = limit_;
    p.caller = "tester";
    p.space = "spa_1";
    p.deadline = clock_.Now() + timeout;
    p.deadline_is_callers = deadline_is_callers;
    return Exchange::Start(&env_, std::move(p),
                           [this](absl::Status s, std::unique_ptr<google::protobuf::Message> m,
                                  const ExchangeReport& r) {
                             ++result_.calls;
                             result_.status = std::move(s);
                             result_.response = std::move(m);
                             result_.report = r;
                           });
  }
  std::shared_ptr<Exchange> StartGet(absl::Duration timeout = absl::Seconds(10)) {
    return Start("GetAudience", GetRequest(), timeout);
  }
  static v1::GetAudienceRequest GetRequest() {
    v1::GetAudienceRequest r;
    r.set_space_id("spa_1");
    r.set_id("aud_1");
    return r;
  }
  static v1::CreateAudienceRequest CreateRequest() {
    v1::CreateAudienceRequest r;
    r.set_space_id("spa_1");
    r.mutable_audience()->set_name("A");
    r.mutable_audience()->mutable_definition()->set_query("event('x').count() > 0");
    return r;
  }
  static v1::CreateAudiencePreviewRequest PreviewRequest() {
    v1::CreateAudiencePreviewRequest r;
    r.set_space_id("spa_1");
    return r;
  }
  int64_t QuotaUsed() { return quota_->Used("spa_1", ratelimit::UtcMonthOf(clock_.Now())); }
  // A 429's body: Segment says when the next call may go in errors[].data.msBeforeNext.
  static std::string TooManyBody(int seconds) {
    return absl::StrCat(R"({"errors":[{"message":"slow down","data":{"msBeforeNext":)",
                        seconds * 1000, "}}]}");
  }

  FakeClock clock_;
  FakeHttpClient http_;
  FakeBudgetStore store_;
  // Before the limiter: destroying the limiter answers queued calls, which give quota back.
  std::unique_ptr<ratelimit::LocalPreviewQuota> quota_;
  ratelimit::Limiter limiter_{&store_, &clock_, &clock_};
  ratelimit::RetryBudget retry_budget_{&clock_};
  // The back-off delay is half its ceiling: 50 ms, 100 ms, 200 ms, ...
  ratelimit::Backoff backoff_{{}, [] { return 0.5; }};
  ratelimit::Limit limit_{10, absl::Seconds(1)};
  ExchangeEnv env_;
  std::map<std::string, std::unique_ptr<ops::RequestBuilder>> builders_;
  Result result_;
};

TEST_F(ExchangeTest, AnswerOnFirstTryIsDecoded) {
  auto ex = StartGet();
  ASSERT_EQ(http_.SentCount(), 1u);
  EXPECT_EQ(http_.Request(0).method, "GET");
  EXPECT_EQ(result_.calls, 0);
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_EQ(result_.calls, 1);
  ASSERT_TRUE(result_.status.ok()) << result_.status;
  auto* got = dynamic_cast<v1::GetAudienceResponse*>(result_.response.get());
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->audience().id(), "aud_1");
  EXPECT_EQ(result_.report.attempts, 1);
  EXPECT_EQ(result_.report.requeues_after_429, 0);
  EXPECT_EQ(result_.report.upstream_status, 200);
}

// --- deadline, at each stage ---

TEST_F(ExchangeTest, DeadlineAlreadyPassedNeverReachesTheUpstream) {
  auto ex = StartGet(absl::ZeroDuration());
  EXPECT_EQ(result_.calls, 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(result_.status)) << result_.status;
  EXPECT_EQ(http_.SentCount(), 0u);
}

TEST_F(ExchangeTest, DeadlinePassingInTheQueueEndsTheCallThere) {
  limit_ = {1, absl::Seconds(1)};
  auto first = StartGet();
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  auto second = StartGet(absl::Milliseconds(1500));  // Its slot is ~1 s away: it waits.
  EXPECT_EQ(result_.calls, 1);                       // Only the first so far.
  limiter_.OnTooManyRequests("ws/GetAudience", absl::Seconds(5));  // The slot moves past it.
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(result_.calls, 2);
  EXPECT_TRUE(absl::IsDeadlineExceeded(result_.status)) << result_.status;
  EXPECT_EQ(http_.SentCount(), 1u);
}

TEST_F(ExchangeTest, ExpectedWaitBeyondTheDeadlineIsRefusedAtOnce) {
  limit_ = {1, absl::Seconds(1)};
  auto first = StartGet();
  auto second = StartGet(absl::Milliseconds(300));
  EXPECT_EQ(result_.calls, 1);
  EXPECT_TRUE(absl::IsResourceExhausted(result_.status)) << result_.status;
  EXPECT_EQ(http_.SentCount(), 1u);
}

TEST_F(ExchangeTest, CallersDeadlineDuringTheRequestIsDeadlineExceeded) {
  auto ex = StartGet(absl::Seconds(2));
  EXPECT_EQ(http_.Request(0).timeout, absl::Seconds(2));  // The request's timeout is what is left.
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(http_.Fail(absl::DeadlineExceededError("curl: timeout")));
  EXPECT_TRUE(absl::IsDeadlineExceeded(result_.status)) << result_.status;
  EXPECT_EQ(http_.SentCount(), 1u);  // Not retried: no time left.
}

TEST_F(ExchangeTest, UpstreamTimeoutOfASharedFetchIsUnavailable) {
  auto ex = Start("GetAudience", GetRequest(), absl::Seconds(10), /*deadline_is_callers=*/false);
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(http_.Fail(absl::DeadlineExceededError("curl: timeout")));
  EXPECT_TRUE(absl::IsUnavailable(result_.status)) << result_.status;
}

// --- cancel, at each stage ---

TEST_F(ExchangeTest, CancelWhileQueuedLeavesTheQueueAndSendsNothing) {
  limit_ = {1, absl::Seconds(1)};
  auto first = StartGet();
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  auto second = StartGet();
  ASSERT_EQ(limiter_.QueueDepth("ws/GetAudience"), 1u);
  second->Cancel();
  EXPECT_EQ(result_.calls, 2);
  EXPECT_TRUE(absl::IsCancelled(result_.status)) << result_.status;
  EXPECT_EQ(limiter_.QueueDepth("ws/GetAudience"), 0u);
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(http_.SentCount(), 1u);
  EXPECT_EQ(result_.calls, 2);
}

TEST_F(ExchangeTest, CancelDuringTheRequestAbortsIt) {
  auto ex = StartGet();
  ex->Cancel();
  EXPECT_EQ(result_.calls, 1);
  EXPECT_TRUE(absl::IsCancelled(result_.status)) << result_.status;
  EXPECT_EQ(http_.CancelCount(), 1u);
  EXPECT_EQ(http_.InFlight(), 0u);
  ex->Cancel();  // Twice is harmless.
  EXPECT_EQ(result_.calls, 1);
}

TEST_F(ExchangeTest, CancelDuringBackoffStopsTheRetry) {
  auto ex = StartGet();
  ASSERT_TRUE(http_.Respond(503));
  ASSERT_EQ(result_.calls, 0);  // Waiting to retry.
  ex->Cancel();
  EXPECT_EQ(result_.calls, 1);
  EXPECT_TRUE(absl::IsCancelled(result_.status)) << result_.status;
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(http_.SentCount(), 1u);
  EXPECT_EQ(result_.calls, 1);
}

TEST_F(ExchangeTest, AnswerArrivingAfterCancelIsIgnored) {
  auto ex = StartGet();
  ex->Cancel();  // The fake answers the request with CANCELLED right away...
  EXPECT_FALSE(http_.Respond(200, kAudienceBody));  // ...so nothing is left to answer.
  EXPECT_EQ(result_.calls, 1);
  EXPECT_TRUE(absl::IsCancelled(result_.status));
}

// --- 429: back to the queue, for every method, outside the 5xx attempt limit ---

TEST_F(ExchangeTest, TooManyRequestsThenSuccessIsOneRetry) {
  auto ex = StartGet();
  ASSERT_TRUE(http_.Respond(429, TooManyBody(1)));
  EXPECT_EQ(result_.calls, 0);
  EXPECT_EQ(http_.SentCount(), 1u);
  clock_.Advance(absl::Milliseconds(900));
  EXPECT_EQ(http_.SentCount(), 1u);  // The lane is paused for msBeforeNext.
  clock_.Advance(absl::Milliseconds(200));
  ASSERT_EQ(http_.SentCount(), 2u);
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(result_.status.ok()) << result_.status;
  EXPECT_EQ(result_.report.attempts, 2);            // Two requests sent...
  EXPECT_EQ(result_.report.requeues_after_429, 1);  // ...the second after a 429.
}

TEST_F(ExchangeTest, TooManyRequestsDoNotCountAgainstTheFailureAttemptLimit) {
  env_.max_attempts = 2;  // One retry after a 5xx.
  auto ex = StartGet();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(http_.Respond(429, TooManyBody(1))) << i;
    clock_.Advance(absl::Seconds(2));
  }
  ASSERT_TRUE(http_.Respond(503));  // The first failure: one retry is still allowed.
  clock_.Advance(absl::Seconds(2));
  ASSERT_EQ(http_.SentCount(), 5u);
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  EXPECT_TRUE(result_.status.ok()) << result_.status;
  EXPECT_EQ(result_.report.attempts, 5);
  EXPECT_EQ(result_.report.requeues_after_429, 3);
}

TEST_F(ExchangeTest, TooManyRequestsOnAWriteIsSentAgain) {
  auto ex = Start("CreateAudience", CreateRequest());
  ASSERT_TRUE(http_.Respond(429, TooManyBody(1)));
  clock_.Advance(absl::Seconds(2));
  ASSERT_EQ(http_.SentCount(), 2u);  // A 429 means nothing executed.
  EXPECT_EQ(http_.Request(1).method, "POST");
  EXPECT_EQ(http_.Request(1).body, http_.Request(0).body);
}

TEST_F(ExchangeTest, TooManyRequestsPastTheDeadlineIsRefused) {
  auto ex = StartGet(absl::Seconds(2));
  ASSERT_TRUE(http_.Respond(429, TooManyBody(10)));
  EXPECT_EQ(result_.calls, 1);
  EXPECT_TRUE(absl::IsResourceExhausted(result_.status)) << result_.status;
  EXPECT_EQ(result_.report.requeues_after_429, 1);
  EXPECT_EQ(http_.SentCount(), 1u);
}

// --- 5xx and transport failures: GETs retried within the attempt limit and the budget ---

TEST_F(ExchangeTest, ServerErrorsAreRetriedUpToTheAttemptLimit) {
  auto ex = StartGet();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(http_.SentCount(), static_cast<size_t>(i + 1));
    ASSERT_TRUE(http_.Respond(503));
    clock_.Advance(absl::Seconds(1));  // Past any back-off.
  }
  EXPECT_EQ(http_.SentCount(), 3u);  // max_attempts
  ASSERT_EQ(result_.calls, 1);
  EXPECT_FALSE(result_.status.ok());
  EXPECT_EQ(result_.report.attempts, 3);
  EXPECT_EQ(result_.report.upstream_status, 503);
}

// --max_memory: the upstream part of a call is charged once, from its first send (whatever the
// retries) until it finishes; a call cancelled in the queue never takes it.
TEST_F(ExchangeTest, UpstreamMemoryIsChargedOnceFromTheFirstSendToTheEnd) {
  MemoryBudget budget(1 << 20, 0);
  env_.memory = &budget;
  env_.costs = CallCosts{1000, 500};
  auto ex = StartGet();
  ASSERT_EQ(http_.SentCount(), 1u);
  EXPECT_EQ(budget.charged(), 500);
  ASSERT_TRUE(http_.Respond(503));
  clock_.Advance(absl::Seconds(1));  // Past the back-off: the retry.
  ASSERT_EQ(http_.SentCount(), 2u);
  EXPECT_EQ(budget.charged(), 500);
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_EQ(result_.calls, 1);
  EXPECT_TRUE(result_.status.ok()) << result_.status;
  EXPECT_EQ(budget.charged(), 0);

  clock_.Advance(absl::Minutes(5));  // The lane is idle again.
  limit_ = {1, absl::Minutes(1)};    // The next call waits in the queue...
  auto first = StartGet();
  auto queued = StartGet();
  EXPECT_EQ(http_.SentCount(), 3u);
  EXPECT_EQ(budget.charged(), 500);  // ... charged for the one sent only.
  queued->Cancel();
  EXPECT_EQ(budget.charged(), 500);
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  EXPECT_EQ(budget.charged(), 0);
  env_.memory = nullptr;
}

TEST_F(ExchangeTest, RetryWaitsForTheBackoff) {
  limit_ = {1000, absl::Seconds(1)};  // Pacing (~1 ms) shorter than the back-off.
  auto ex = StartGet();
  ASSERT_TRUE(http_.Fail(absl::UnavailableError("connection reset")));
  clock_.Advance(absl::Milliseconds(49));
  EXPECT_EQ(http_.SentCount(), 1u);
  clock_.Advance(absl::Milliseconds(2));  // The first retry waits 50 ms (see backoff_).
  ASSERT_EQ(http_.SentCount(), 2u);
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  EXPECT_TRUE(result_.status.ok()) << result_.status;
}

TEST_F(ExchangeTest, RetryBudgetSpentMeansNoRetry) {
  ratelimit::RetryBudget empty(&clock_, {.ratio = 0, .min_retries = 0});
  env_.retry_budget = &empty;
  auto ex = StartGet();
  ASSERT_TRUE(http_.Respond(502));
  EXPECT_EQ(result_.calls, 1);
  EXPECT_FALSE(result_.status.ok());
  EXPECT_EQ(http_.SentCount(), 1u);
}

TEST_F(ExchangeTest, NoRetryWhoseBackoffEndsPastTheDeadline) {
  auto ex = StartGet(absl::Milliseconds(40));
  ASSERT_TRUE(http_.Respond(503));  // The back-off (50 ms) would end after the deadline.
  EXPECT_EQ(result_.calls, 1);
  EXPECT_EQ(http_.SentCount(), 1u);
}

// --- a write is never sent again once it may have executed ---

TEST_F(ExchangeTest, WriteIsNotRetriedAfterAServerError) {
  auto ex = Start("CreateAudience", CreateRequest());
  ASSERT_TRUE(http_.Respond(503));
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(http_.SentCount(), 1u);
  ASSERT_EQ(result_.calls, 1);
  EXPECT_FALSE(result_.status.ok());
}

TEST_F(ExchangeTest, WriteIsNotRetriedAfterAConnectionFailure) {
  auto ex = Start("CreateAudience", CreateRequest());
  ASSERT_TRUE(http_.Fail(absl::UnavailableError("connection reset by peer")));
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(http_.SentCount(), 1u);
  EXPECT_TRUE(absl::IsUnavailable(result_.status)) << result_.status;
}

// --- the monthly quota: taken before the queue, given back when nothing was sent ---

TEST_F(ExchangeTest, QuotaIsKeptOnceTheRequestWasSent) {
  auto ex = Start("CreateAudiencePreview", PreviewRequest());
  EXPECT_EQ(QuotaUsed(), 1);
  ASSERT_TRUE(http_.Respond(500));
  EXPECT_FALSE(result_.status.ok());
  EXPECT_EQ(QuotaUsed(), 1);  // It may have executed.
}

TEST_F(ExchangeTest, QuotaIsReleasedWhenTheCallNeverLeftTheQueue) {
  limit_ = {1, absl::Seconds(1)};
  auto first = Start("CreateAudiencePreview", PreviewRequest());
  auto second = Start("CreateAudiencePreview", PreviewRequest());
  EXPECT_EQ(QuotaUsed(), 2);
  second->Cancel();
  EXPECT_EQ(QuotaUsed(), 1);
  auto third = Start("CreateAudiencePreview", PreviewRequest(), absl::Milliseconds(100));
  EXPECT_TRUE(absl::IsResourceExhausted(result_.status)) << result_.status;  // Wait > deadline.
  EXPECT_EQ(QuotaUsed(), 1);
}

TEST_F(ExchangeTest, QuotaUsedUpIsRefusedBeforeTheQueue) {
  limit_ = {100, absl::Seconds(1)};
  auto a = Start("CreateAudiencePreview", PreviewRequest());
  auto b = Start("CreateAudiencePreview", PreviewRequest());
  clock_.Advance(absl::Seconds(1));  // b's slot.
  auto c = Start("CreateAudiencePreview", PreviewRequest());
  EXPECT_TRUE(absl::IsResourceExhausted(result_.status)) << result_.status;
  EXPECT_EQ(QuotaUsed(), 2);
  EXPECT_EQ(http_.SentCount(), 2u);
}

// --- errors: the token never leaks ---

TEST_F(ExchangeTest, SecretIsScrubbedFromErrors) {
  auto ex = StartGet();
  ASSERT_TRUE(http_.Fail(absl::InvalidArgumentError(absl::StrCat("bad header ", kSecret))));
  ASSERT_EQ(result_.calls, 1);
  EXPECT_FALSE(absl::StrContains(result_.status.message(), kSecret)) << result_.status;
  EXPECT_TRUE(absl::StrContains(result_.status.message(), "[redacted]")) << result_.status;
}

TEST_F(ExchangeTest, LimiterStoreUnavailableIsUnavailable) {
  store_.SetUnavailable(true);
  auto ex = StartGet();
  EXPECT_TRUE(absl::IsUnavailable(result_.status)) << result_.status;
  EXPECT_EQ(http_.SentCount(), 0u);
}

}  // namespace
}  // namespace sag
