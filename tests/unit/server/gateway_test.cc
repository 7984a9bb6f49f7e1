// In-process tests of the Gateway (service/server/gateway.h) behind a real gRPC server in this
// process (an in-process channel: no port, no child process), with fake HTTP, token source and
// budget store and the fake clock. gRPC runs the handlers on its own threads, so the tests wait
// for the fake upstream to receive a request (bounded) before answering it; nothing sleeps.
#include "service/server/gateway.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/common/memory_budget.h"
#include "service/operations/operation_table.h"
#include "service/server/audiences_service.h"
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
constexpr absl::Duration kWait = absl::Seconds(10);  // Bound of every wait on another thread.

// A unary call made with the async stub; Wait() blocks (bounded) until gRPC answers it.
template <typename Response>
struct PendingCall {
  grpc::ClientContext context;
  Response response;
  grpc::Status status;
  absl::Notification done;
  bool Wait() { return done.WaitForNotificationWithTimeout(kWait); }
};

class GatewayTest : public InProcessGatewayTest {
 protected:
  GatewayTest() { Serve(); }

  std::unique_ptr<PendingCall<v1::GetAudienceResponse>> GetAudience(std::string space,
                                                                    std::string id) {
    auto call = std::make_unique<PendingCall<v1::GetAudienceResponse>>();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    v1::GetAudienceRequest request;
    request.set_space_id(space);
    request.set_id(id);
    auto* c = call.get();
    stub_->async()->GetAudience(&c->context, &request, &c->response, [c](grpc::Status s) {
      c->status = std::move(s);
      c->done.Notify();
    });
    return call;
  }

  std::unique_ptr<PendingCall<v1::CreateAudienceResponse>> CreateAudience() {
    auto call = std::make_unique<PendingCall<v1::CreateAudienceResponse>>();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    v1::CreateAudienceRequest request;
    request.set_space_id("spa_1");
    request.mutable_audience()->set_name("A");
    request.mutable_audience()->mutable_definition()->set_query("event('x').count() > 0");
    auto* c = call.get();
    stub_->async()->CreateAudience(&c->context, &request, &c->response, [c](grpc::Status s) {
      c->status = std::move(s);
      c->done.Notify();
    });
    return call;
  }

  // The log lines whose msg is `msg`, parsed.
  std::vector<nlohmann::json> LogLines(absl::string_view msg) {
    std::vector<nlohmann::json> out;
    for (absl::string_view line : absl::StrSplit(log_.str(), '\n', absl::SkipEmpty())) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.value("msg", "") == msg) out.push_back(j);
    }
    return out;
  }
};

TEST_F(GatewayTest, AnswersFromTheUpstreamWithTheToken) {
  auto call = GetAudience("spa_1", "aud_1");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  upstream::HttpRequest sent = http_.Request(0);
  EXPECT_EQ(sent.method, "GET");
  EXPECT_EQ(sent.url, "https://api.example/spaces/spa_1/audiences/aud_1");
  bool has_token = false;
  for (const auto& [name, value] : sent.headers) {
    if (name == "Authorization") has_token = value == "Bearer test-token-0123456789";
  }
  EXPECT_TRUE(has_token);
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(call->Wait());
  ASSERT_TRUE(call->status.ok()) << call->status.error_message();
  EXPECT_EQ(call->response.audience().id(), "aud_1");
}

// The call log's `retries` counts requests sent again: one after a 429 is one, not two.
TEST_F(GatewayTest, RetryAfterTooManyRequestsIsLoggedOnce) {
  auto call = GetAudience("spa_1", "aud_1");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(429, R"({"errors":[{"data":{"msBeforeNext":1000}}]})"));
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(http_.WaitForSent(2, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(call->Wait());
  ASSERT_TRUE(call->status.ok()) << call->status.error_message();
  std::vector<nlohmann::json> lines = LogLines("call");
  ASSERT_EQ(lines.size(), 1u) << log_.str();
  EXPECT_EQ(lines[0]["retries"], 1) << lines[0].dump();
  EXPECT_EQ(lines[0]["upstream_status"], 200);
}

TEST_F(GatewayTest, WriteIsSentOnceAndAuditedWhenTheUpstreamFails) {
  auto call = CreateAudience();
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(503));
  ASSERT_TRUE(call->Wait());
  EXPECT_EQ(call->status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << call->status.error_message();
  clock_.Advance(absl::Seconds(10));  // Past any back-off a retry would wait.
  EXPECT_EQ(http_.SentCount(), 1u);
  std::vector<nlohmann::json> audit = LogLines("audit");
  ASSERT_EQ(audit.size(), 1u) << log_.str();
  EXPECT_EQ(audit[0]["rpc"], "CreateAudience") << audit[0].dump();
}

TEST_F(GatewayTest, CallerCancellingAbortsTheUpstreamRequest) {
  auto call = GetAudience("spa_1", "aud_1");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  call->context.TryCancel();
  ASSERT_TRUE(call->Wait());
  EXPECT_EQ(call->status.error_code(), grpc::StatusCode::CANCELLED);
  // The server side sees the cancellation on a gRPC thread: wait for the upstream abort.
  ASSERT_TRUE(http_.WaitForCancels(1, kWait));
  EXPECT_EQ(http_.CancelCount(), 1u);
  EXPECT_EQ(http_.InFlight(), 0u);
}

TEST_F(GatewayTest, NoTokenIsUnavailableAndSendsNothing) {
  tokens_.Set(absl::UnavailableError("token file is empty"));
  auto call = GetAudience("spa_1", "aud_1");
  ASSERT_TRUE(call->Wait());
  EXPECT_EQ(call->status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(call->status.error_message(), "no Segment token"));
  EXPECT_EQ(http_.SentCount(), 0u);
}

TEST_F(GatewayTest, MalformedOversizedAndHostileIdsAreRefusedBeforeTheUpstream) {
  for (const std::string& id : {std::string(""), std::string(5000, 'a'), std::string("../admin"),
                                std::string("aud_1?x=1"), std::string("aud\n1")}) {
    auto call = GetAudience("spa_1", id);
    ASSERT_TRUE(call->Wait());
    EXPECT_EQ(call->status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << id.size();
  }
  EXPECT_EQ(http_.SentCount(), 0u);
  // A listing's raw bytes that are no message at all.
  grpc::GenericStub generic(channel_);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  grpc::Slice garbage(std::string("\xff\xff\xff\xff garbage", 12));
  grpc::ByteBuffer request(&garbage, 1);
  grpc::ByteBuffer response;
  absl::Notification done;
  grpc::Status status;
  generic.UnaryCall(&context, "/segment.audiences.v1.AudiencesService/ListAudiences",
                    grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(http_.SentCount(), 0u);
}

// Waits (bounded) until `done()` holds: gRPC runs the handlers on its own threads.
template <typename Predicate>
bool WaitUntil(Predicate done) {
  const absl::Time give_up = absl::Now() + kWait;
  while (!done()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// --max_memory: a call that would take the budget past its bound is refused at once, without an
// upstream call; the calls already accepted (one in flight, one parked for its rate-limit slot)
// are answered; once they are done their memory is free again.
TEST_F(GatewayTest, CallsOverTheMemoryBudgetAreRefusedAndAcceptedOnesAnswered) {
  // A call is charged 1000 and twice its request's 14 bytes, and 500 more once sent upstream.
  constexpr int64_t kCall = 1000 + 2 * 14;
  MemoryBudget budget(/*limit=*/100 + 2 * kCall + 500, /*reserved=*/100);
  env_.memory = &budget;
  env_.costs = CallCosts{1000, 500};
  auto in_flight = GetAudience("spa_1", "aud_1");
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  EXPECT_EQ(budget.charged(), kCall + 500);     // Accepted and sent.
  auto parked = GetAudience("spa_1", "aud_1");  // GetAudience is 100/1m: waits ~600 ms.
  ASSERT_TRUE(WaitUntil([&] { return budget.charged() == 2 * kCall + 500; })) << budget.charged();

  auto refused = GetAudience("spa_1", "aud_1");
  ASSERT_TRUE(refused->Wait());
  EXPECT_EQ(refused->status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(refused->status.error_message(), "memory budget is full"))
      << refused->status.error_message();
  PendingCall<v1::ListAudiencesResponse> listing;  // A raw (listing) method is refused alike.
  listing.context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  v1::ListAudiencesRequest list_request;
  list_request.set_space_id("spa_1");
  stub_->async()->ListAudiences(&listing.context, &list_request, &listing.response,
                                [&](grpc::Status s) {
                                  listing.status = std::move(s);
                                  listing.done.Notify();
                                });
  ASSERT_TRUE(listing.Wait());
  EXPECT_EQ(listing.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(http_.SentCount(), 1u);
  EXPECT_EQ(budget.refusals(), 2u);

  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(in_flight->Wait());
  EXPECT_TRUE(in_flight->status.ok()) << in_flight->status.error_message();
  clock_.Advance(absl::Seconds(1));  // The parked call's slot.
  ASSERT_TRUE(http_.WaitForSent(2, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(parked->Wait());
  EXPECT_TRUE(parked->status.ok()) << parked->status.error_message();
  EXPECT_EQ(parked->response.audience().id(), "aud_1");
  ASSERT_TRUE(WaitUntil([&] { return budget.charged() == 0; })) << budget.charged();
  auto after = GetAudience("spa_1", "aud_1");  // Room again.
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(http_.WaitForSent(3, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(after->Wait());
  EXPECT_TRUE(after->status.ok()) << after->status.error_message();
  ASSERT_TRUE(WaitUntil([&] { return budget.charged() == 0; })) << budget.charged();
  env_.memory = nullptr;  // `budget` goes before the fixture.
}

// A large request is charged for its size: it is refused where a small call still fits.
TEST_F(GatewayTest, LargeRequestsAreChargedTheirSize) {
  MemoryBudget budget(/*limit=*/100 + 1000 + 500 + 4000, /*reserved=*/100);
  env_.memory = &budget;
  env_.costs = CallCosts{1000, 500};
  PendingCall<v1::CreateAudienceResponse> large;
  large.context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  v1::CreateAudienceRequest request;
  request.set_space_id("spa_1");
  request.mutable_audience()->set_name("A");
  request.mutable_audience()->mutable_definition()->set_query(std::string(5000, 'x'));
  stub_->async()->CreateAudience(&large.context, &request, &large.response, [&](grpc::Status s) {
    large.status = std::move(s);
    large.done.Notify();
  });
  ASSERT_TRUE(large.Wait());
  EXPECT_EQ(large.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(http_.SentCount(), 0u);
  auto small = GetAudience("spa_1", "aud_1");  // 1000 + 2 x ~14 bytes + 500 upstream: fits.
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(small->Wait());
  EXPECT_TRUE(small->status.ok()) << small->status.error_message();
  ASSERT_TRUE(WaitUntil([&] { return budget.charged() == 0; })) << budget.charged();
  env_.memory = nullptr;
}

// The raw (bytes in, bytes out) methods are exactly the cacheable operations: a cacheable
// operation served typed would miss the cache's stored bytes, a raw one not cacheable would be
// served by HandleListing without a cache entry to fill.
TEST(AudiencesServiceTest, RawMethodsAreTheCacheableOperations) {
  std::vector<std::string> cacheable;
  for (const ops::Operation& op : ops::Operations()) {
    if (op.cacheable) cacheable.emplace_back(op.rpc);
  }
  std::vector<std::string> raw(std::begin(kRawListingRpcs), std::end(kRawListingRpcs));
  std::sort(cacheable.begin(), cacheable.end());
  std::sort(raw.begin(), raw.end());
  EXPECT_EQ(raw, cacheable);
}

}  // namespace
}  // namespace sag
