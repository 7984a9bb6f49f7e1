// The Gateway's idempotent writes (metadata `idempotency-key`, service/idempotency) in process:
// a real gRPC server on an in-process channel, a fake upstream (FakeHttpClient), the fake clock
// and the in-memory store. Waits on other threads are bounded conditions; nothing sleeps blind.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/idempotency/memory_store.h"
#include "service/server/audiences_service.h"
#include "service/server/gateway.h"
#include "tests/support/fake_budget_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_http_client.h"
#include "tests/support/fake_token_source.h"
#include "tests/unit/server/in_process_gateway.h"

namespace sag {
namespace {

namespace v1 = segment::audiences::v1;
using ::sag::testing::FakeBudgetStore;
using ::sag::testing::FakeHttpClient;
using ::sag::testing::FakeTokenSource;
using ::sag::testing::InProcessGatewayTest;

constexpr char kAudienceBody[] = R"({"data":{"audience":{"id":"aud_1","name":"A"}}})";
constexpr absl::Duration kWait = absl::Seconds(10);

struct CreateCall {
  grpc::ClientContext context;
  v1::CreateAudienceResponse response;
  grpc::Status status;
  absl::Notification done;
  bool Wait() { return done.WaitForNotificationWithTimeout(kWait); }
  // Response metadata `idempotent-replayed` ("" when absent).
  std::string Replayed() const {
    const auto& md = context.GetServerInitialMetadata();
    auto it = md.find("idempotent-replayed");
    return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  }
};

// Waits (bounded, real time) until `condition` holds.
template <typename F>
bool WaitUntil(F condition) {
  absl::Time until = absl::Now() + kWait;
  while (!condition()) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

class IdempotentWriteTest : public InProcessGatewayTest {
 protected:
  IdempotentWriteTest() : store_({}, &clock_, &clock_) {
    GatewayParts parts;
    parts.idempotency = &store_;
    Serve(parts);
  }
  ~IdempotentWriteTest() override { StopServing(); }

  static v1::CreateAudienceRequest Request(const std::string& name) {
    v1::CreateAudienceRequest request;
    request.set_space_id("spa_1");
    request.mutable_audience()->set_name(name);
    request.mutable_audience()->mutable_definition()->set_query("event('x').count() > 0");
    return request;
  }

  // CreateAudience named `name`, with metadata `idempotency-key: key` unless key is "-".
  std::unique_ptr<CreateCall> Create(const std::string& key, const std::string& name = "A",
                                     const std::string& caller = "",
                                     absl::Duration deadline = absl::Seconds(60)) {
    auto call = std::make_unique<CreateCall>();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    if (key != "-") call->context.AddMetadata("idempotency-key", key);
    if (!caller.empty()) call->context.AddMetadata("x-caller-id", caller);
    v1::CreateAudienceRequest request = Request(name);
    CreateCall* c = call.get();
    stub_->async()->CreateAudience(&c->context, &request, &c->response, [c](grpc::Status s) {
      c->status = std::move(s);
      c->done.Notify();
    });
    return call;
  }

  idempotency::MemoryStore store_;
};

TEST_F(IdempotentWriteTest, RepeatReplaysTheAnswerWithoutASecondUpstreamCall) {
  auto first = Create("order-1");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(first->Wait());
  ASSERT_TRUE(first->status.ok()) << first->status.error_message();
  EXPECT_EQ(first->Replayed(), "");

  auto repeat = Create("order-1");
  ASSERT_TRUE(repeat->Wait());
  ASSERT_TRUE(repeat->status.ok()) << repeat->status.error_message();
  EXPECT_EQ(repeat->response.audience().id(), "aud_1");
  EXPECT_EQ(repeat->Replayed(), "true");
  EXPECT_EQ(http_.SentCount(), 1u);
}

TEST_F(IdempotentWriteTest, AnErrorAnswerIsReplayedWithItsDetails) {
  auto first = Create("order-1");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(
      422,
      R"({"errors":[{"type":"validation","message":"bad query","field":"definition.query"}]})"));
  ASSERT_TRUE(first->Wait());
  ASSERT_EQ(first->status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto repeat = Create("order-1");
  ASSERT_TRUE(repeat->Wait());
  EXPECT_EQ(repeat->status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(repeat->status.error_message(), first->status.error_message());
  EXPECT_EQ(repeat->status.error_details(), first->status.error_details());
  EXPECT_FALSE(first->status.error_details().empty());
  EXPECT_EQ(repeat->Replayed(), "true");
  EXPECT_EQ(http_.SentCount(), 1u);
}

TEST_F(IdempotentWriteTest, SameKeyWithAnotherRequestIsInvalidArgumentNamingTheKey) {
  auto first = Create("order-1", "A");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(first->Wait());
  auto other = Create("order-1", "B");
  ASSERT_TRUE(other->Wait());
  EXPECT_EQ(other->status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(other->status.error_message(), "idempotency-key"));
  EXPECT_TRUE(absl::StrContains(other->status.error_message(), "'order-1'"));
  EXPECT_EQ(http_.SentCount(), 1u);
}

TEST_F(IdempotentWriteTest, RepeatWhileTheFirstRunsWaitsForItsAnswer) {
  auto first = Create("order-1");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  auto repeat = Create("order-1");
  ASSERT_TRUE(WaitUntil([&] { return store_.waiters() == 1; }));
  EXPECT_FALSE(repeat->done.HasBeenNotified());
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(first->Wait());
  ASSERT_TRUE(repeat->Wait());
  ASSERT_TRUE(repeat->status.ok()) << repeat->status.error_message();
  EXPECT_EQ(repeat->response.audience().id(), "aud_1");
  EXPECT_EQ(repeat->Replayed(), "true");
  EXPECT_EQ(http_.SentCount(), 1u);
}

TEST_F(IdempotentWriteTest, CallerLeavingDoesNotAbortTheWriteAndTheRetryGetsItsResult) {
  auto first = Create("order-1");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  first->context.TryCancel();
  ASSERT_TRUE(first->Wait());
  EXPECT_EQ(first->status.error_code(), grpc::StatusCode::CANCELLED);
  // The retry arrives while the write is still in flight upstream: it waits, it does not resend.
  auto retry = Create("order-1");
  ASSERT_TRUE(WaitUntil([&] { return store_.waiters() == 1; }));
  EXPECT_EQ(http_.CancelCount(), 0u);
  EXPECT_EQ(http_.InFlight(), 1u);
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(retry->Wait());
  ASSERT_TRUE(retry->status.ok()) << retry->status.error_message();
  EXPECT_EQ(retry->response.audience().id(), "aud_1");
  EXPECT_EQ(http_.SentCount(), 1u);
}

TEST_F(IdempotentWriteTest, WithoutAKeyACancelledWriteIsStillAborted) {
  auto call = Create("-");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  call->context.TryCancel();
  ASSERT_TRUE(call->Wait());
  ASSERT_TRUE(http_.WaitForCancels(1, kWait));
  EXPECT_EQ(store_.entries(), 0u);
}

TEST_F(IdempotentWriteTest, AWriteNeverSentReleasesTheKey) {
  auto first = Create("order-1", "A", "", absl::Seconds(10));
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  // A 429 means nothing executed; its pause is longer than the write's deadline: given up.
  ASSERT_TRUE(http_.Respond(429, R"({"errors":[{"data":{"msBeforeNext":3600000}}]})"));
  ASSERT_TRUE(first->Wait());
  EXPECT_EQ(first->status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << first->status.error_message();
  EXPECT_EQ(store_.entries(), 0u);
  clock_.Advance(absl::Hours(2));
  // (The fake clock is now 2 h ahead of the real one, which gRPC deadlines use.)
  auto retry = Create("order-1", "A", "", absl::Hours(3));
  ASSERT_TRUE(http_.WaitForSent(2, kWait));  // Runs again: the key was free.
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(retry->Wait());
  EXPECT_TRUE(retry->status.ok()) << retry->status.error_message();
  EXPECT_EQ(retry->Replayed(), "");
}

TEST_F(IdempotentWriteTest, AWriteTheLimiterRefusedReleasesTheKey) {
  budget_.SetUnavailable(true);  // The shared budget cannot be reached: refused, never sent.
  auto first = Create("order-1");
  ASSERT_TRUE(first->Wait());
  EXPECT_EQ(first->status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << first->status.error_message();
  EXPECT_EQ(http_.SentCount(), 0u);
  EXPECT_EQ(store_.entries(), 0u);
  budget_.SetUnavailable(false);
  auto retry = Create("order-1");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(retry->Wait());
  EXPECT_TRUE(retry->status.ok()) << retry->status.error_message();
}

TEST_F(IdempotentWriteTest, KeysBelongToTheirCaller) {
  auto a = Create("order-1", "A", "team-a");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(a->Wait());
  clock_.Advance(absl::Seconds(2));  // The lane's next slot.
  auto b = Create("order-1", "A", "team-b");
  ASSERT_TRUE(http_.WaitForSent(2, kWait));  // Another caller's key: runs.
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(b->Wait());
  EXPECT_EQ(b->Replayed(), "");
  auto again = Create("order-1", "A", "team-a");
  ASSERT_TRUE(again->Wait());
  EXPECT_EQ(again->Replayed(), "true");
  EXPECT_EQ(http_.SentCount(), 2u);
}

TEST_F(IdempotentWriteTest, MalformedOversizedAndRepeatedKeysAreRefusedBeforeTheUpstream) {
  for (const std::string& key : {std::string(""), std::string(256, 'k'), std::string(8000, 'k')}) {
    auto call = Create(key);
    ASSERT_TRUE(call->Wait());
    EXPECT_EQ(call->status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << key.size();
    EXPECT_TRUE(absl::StrContains(call->status.error_message(), "idempotency-key"))
        << call->status.error_message();
  }
  auto twice = std::make_unique<CreateCall>();
  twice->context.AddMetadata("idempotency-key", "a");
  twice->context.AddMetadata("idempotency-key", "b");
  twice->context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  v1::CreateAudienceRequest request = Request("A");
  CreateCall* c = twice.get();
  stub_->async()->CreateAudience(&c->context, &request, &c->response, [c](grpc::Status s) {
    c->status = std::move(s);
    c->done.Notify();
  });
  ASSERT_TRUE(twice->Wait());
  EXPECT_EQ(twice->status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(http_.SentCount(), 0u);
  EXPECT_EQ(store_.entries(), 0u);
}

}  // namespace
}  // namespace sag
