// The request path's stages on their own, in process, without a gRPC server: routing's workspace
// choice (routing.h), planning (planning.h), the answer's side effects (answer.h), and the
// Exchange behind a fake admission stage (admission.h).
#include <algorithm>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "segment/audiences/v1/audiences.pb.h"
#include "service/cache/in_memory_store.h"
#include "service/cache/listing_cache.h"
#include "service/server/answer.h"
#include "service/server/exchange.h"
#include "service/server/planning.h"
#include "service/server/routing.h"
#include "service/telemetry/gateway_metrics.h"
#include "service/telemetry/logger.h"
#include "service/telemetry/metrics.h"
#include "tests/support/fake_admission.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_http_client.h"
#include "tests/support/fake_token_source.h"

namespace sag {
namespace {

namespace v1 = segment::audiences::v1;
using ::sag::FakeClock;
using testing::FakeHttpClient;
using testing::FakeTokenSource;

Workspace MakeWorkspace(std::string name, std::vector<std::string> spaces,
                        auth::TokenSource* tokens) {
  Workspace ws;
  ws.name = std::move(name);
  ws.tokens = tokens;
  for (auto& s : spaces) ws.spaces.insert(std::move(s));
  return ws;
}

// --- Routing ---

class RouterTest : public ::testing::Test {
 protected:
  std::unique_ptr<Router> Make(std::vector<Workspace> workspaces) {
    absl::StatusOr<std::unique_ptr<Router>> router =
        Router::Create(std::move(workspaces), nullptr, &clock_);
    EXPECT_TRUE(router.ok()) << router.status();
    return router.ok() ? *std::move(router) : nullptr;
  }
  FakeClock clock_;
  FakeTokenSource tokens_;
};

TEST_F(RouterTest, NeedsAWorkspaceAndBindsEveryOperation) {
  EXPECT_EQ(Router::Create({}, nullptr, &clock_).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto router = Make({MakeWorkspace("a", {}, &tokens_)});
  ASSERT_NE(router, nullptr);
  for (const ops::Operation& op : ops::Operations()) {
    EXPECT_NE(router->Builder(op.rpc), nullptr) << op.rpc;
  }
  EXPECT_EQ(router->Builder("DeleteEverything"), nullptr);
  EXPECT_EQ(router->Builder(""), nullptr);
}

TEST_F(RouterTest, PicksTheWorkspaceByNameOrSpace) {
  auto router =
      Make({MakeWorkspace("eu", {"spa_eu"}, &tokens_), MakeWorkspace("us", {"spa_us"}, &tokens_),
            MakeWorkspace("any", {}, &tokens_)});
  ASSERT_NE(router, nullptr);
  EXPECT_EQ((*router->SelectWorkspace("", "spa_eu"))->name, "eu");
  EXPECT_EQ((*router->SelectWorkspace("", "spa_other"))->name, "any");
  EXPECT_EQ((*router->SelectWorkspace("us", "spa_us"))->name, "us");
  EXPECT_EQ((*router->SelectWorkspace("any", "spa_eu"))->name, "any");
  // Named, but the space is not one it serves.
  EXPECT_EQ(router->SelectWorkspace("eu", "spa_us").status().code(), absl::StatusCode::kNotFound);
  absl::Status unknown = router->SelectWorkspace("mars", "spa_eu").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(unknown.message(), "configured: eu, us, any")) << unknown;
}

TEST_F(RouterTest, AmbiguousOrUnservedSpacesAreTheCallersToResolve) {
  auto router =
      Make({MakeWorkspace("a", {"spa_1"}, &tokens_), MakeWorkspace("b", {"spa_1"}, &tokens_)});
  ASSERT_NE(router, nullptr);
  absl::Status twice = router->SelectWorkspace("", "spa_1").status();
  EXPECT_EQ(twice.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(twice.message(), "'a' and 'b'")) << twice;
  EXPECT_EQ(router->SelectWorkspace("", "spa_2").status().code(), absl::StatusCode::kNotFound);
  auto two_catch_alls = Make({MakeWorkspace("a", {}, &tokens_), MakeWorkspace("b", {}, &tokens_)});
  ASSERT_NE(two_catch_alls, nullptr);
  EXPECT_EQ(two_catch_alls->SelectWorkspace("", "spa_1").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RouterTest, HostileNamesAndSpacesAreRefusedNotMatched) {
  auto router = Make({MakeWorkspace("eu", {"spa_eu"}, &tokens_)});
  ASSERT_NE(router, nullptr);
  for (std::string hostile : {std::string("eu\r\nx-evil: 1"), std::string("eu\0", 3),
                              std::string(100000, 'e'), std::string("EU"), std::string(" eu")}) {
    EXPECT_EQ(router->SelectWorkspace(hostile, "spa_eu").status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(router->SelectWorkspace("", std::string(100000, 's')).status().code(),
            absl::StatusCode::kNotFound);
}

// --- Planning ---

class PlannerTest : public ::testing::Test {
 protected:
  PlannerTest() {
    workspaces_.push_back(MakeWorkspace("ws", {}, &tokens_));
    router_ = *Router::Create(workspaces_, nullptr, &clock_);
    PlannerOptions options;
    options.upstream_url = "https://api.example/";
    planner_ = *Planner::Create(options, workspaces_);
    routed_.workspace = &router_->workspaces().front();
    routed_.deadline = clock_.Now() + absl::Seconds(5);
    info_.rpc = "GetAudience";
    info_.caller = "svc-a";
    info_.space = "spa_1";
    info_.request_id = "req-1";
  }
  absl::StatusOr<ExchangeParams> PlanGet(absl::string_view id) {
    routed_.builder = router_->Builder("GetAudience");
    v1::GetAudienceRequest request;
    request.set_space_id("spa_1");
    request.set_id(std::string(id));
    return planner_->Plan(routed_, info_, request);
  }
  FakeClock clock_;
  FakeTokenSource tokens_{"secret-token-0123456789"};
  std::vector<Workspace> workspaces_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<Planner> planner_;
  Routed routed_;
  CallInfo info_;
};

TEST_F(PlannerTest, PlansTheRestRequestWithTokenIdsAndPacing) {
  absl::StatusOr<ExchangeParams> params = PlanGet("aud_1");
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->http.method, "GET");
  EXPECT_EQ(params->http.url, "https://api.example/spaces/spa_1/audiences/aud_1");
  std::vector<std::pair<std::string, std::string>> want = {
      {"Authorization", "Bearer secret-token-0123456789"}, {"X-Request-Id", "req-1"}};
  for (const auto& header : want) {
    EXPECT_NE(std::find(params->http.headers.begin(), params->http.headers.end(), header),
              params->http.headers.end())
        << header.first;
  }
  EXPECT_EQ(params->secret, "secret-token-0123456789");
  EXPECT_EQ(params->lane, "ws/GetAudience");
  EXPECT_EQ(params->limit.requests, planner_->LimitOf("GetAudience").requests);
  EXPECT_EQ(params->caller, "svc-a");
  EXPECT_EQ(params->space, "spa_1");
  EXPECT_EQ(params->deadline, routed_.deadline);
  EXPECT_EQ(tokens_.asked(), 1);
}

TEST_F(PlannerTest, AnUnreadableTokenIsUnavailableNamingTheWorkspaceNotTheToken) {
  tokens_.Set(absl::NotFoundError("/var/run/token: no such file"));
  absl::Status status = PlanGet("aud_1").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(status.message(), "workspace 'ws'")) << status;
}

TEST_F(PlannerTest, ARequestThatCannotBeRestIsRefusedBeforeTheTokenIsRead) {
  for (std::string id : {std::string(""), std::string("../spaces"), std::string(300, 'a'),
                         std::string("aud\r\nHost: evil"), std::string("a\0b", 3)}) {
    EXPECT_EQ(PlanGet(id).status().code(), absl::StatusCode::kInvalidArgument) << id;
  }
  EXPECT_EQ(tokens_.asked(), 0);
}

TEST(NormalizeBaseUrlTest, AcceptsHttpBasesAndRefusesTheRest) {
  EXPECT_EQ(*NormalizeBaseUrl("https://api.segmentapis.com/"), "https://api.segmentapis.com");
  EXPECT_EQ(*NormalizeBaseUrl("http://127.0.0.1:8080/prefix//"), "http://127.0.0.1:8080/prefix");
  for (absl::string_view bad :
       {"", "api.segmentapis.com", "ftp://host", "https://", "https:///", "https://h/?q=1",
        "https://h/#f", "https://h /x", "https://h\r\nX: y", "javascript://x"}) {
    EXPECT_EQ(NormalizeBaseUrl(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  FakeTokenSource tokens;
  std::vector<Workspace> workspaces = {MakeWorkspace("w", {}, &tokens)};
  workspaces[0].upstream_url = "gopher://x";
  EXPECT_FALSE(Planner::Create(PlannerOptions{}, workspaces).ok());
  PlannerOptions bad_default;
  bad_default.upstream_url = "not a url";
  EXPECT_FALSE(Planner::Create(bad_default, {}).ok());
}

// --- The answer's side effects ---

class AnswererTest : public ::testing::Test {
 protected:
  AnswererTest() {
    metrics_ = *telemetry::GatewayMetrics::Create(&registry_, "test");
    cache::InMemoryStore::Options so;
    so.clock = &clock_;
    cache::ListingCache::Options co;
    co.clock = &clock_;
    cache_ = std::make_unique<cache::ListingCache>(std::make_shared<cache::InMemoryStore>(so), co);
    AnswerParts parts{&clock_, metrics_.get(), &logger_, cache_.get(),
                      [this](const std::vector<std::string>& tags) {
                        published_.insert(published_.end(), tags.begin(), tags.end());
                      }};
    answer_ = std::make_unique<Answerer>(std::move(parts));
    info_.rpc = "GetAudience";
    info_.caller = "svc-a";
    info_.workspace = "ws";
    info_.space = "spa_1";
    info_.request_id = "req-1";
    info_.start = clock_.Now();
  }
  std::string Logged() {
    logger_.Flush();
    return out_.str();
  }
  FakeClock clock_;
  telemetry::Registry registry_;
  std::unique_ptr<telemetry::GatewayMetrics> metrics_;
  std::ostringstream out_;
  telemetry::Logger logger_{&out_, telemetry::LogLevel::kInfo};
  std::unique_ptr<cache::ListingCache> cache_;
  std::vector<std::string> published_;
  std::unique_ptr<Answerer> answer_;
  CallInfo info_;
};

TEST_F(AnswererTest, RetriesAreEveryRequestAfterTheFirstCountedOnce) {
  answer_->Started();
  ExchangeReport report;
  report.attempts = 3;  // A 429 resend and a 5xx retry.
  report.requeues_after_429 = 1;
  report.upstream_status = 200;
  clock_.Advance(absl::Milliseconds(250));
  answer_->Report(info_, absl::OkStatus(), report);
  std::string metrics = registry_.Serialize();
  EXPECT_TRUE(absl::StrContains(
      metrics, "audiences_gateway_upstream_retries_total{operation=\"GetAudience\"} 2"))
      << metrics;
  EXPECT_TRUE(absl::StrContains(metrics, "audiences_gateway_calls_in_flight 0")) << metrics;
  std::string line = Logged();
  EXPECT_TRUE(absl::StrContains(line, "\"retries\":2")) << line;
  EXPECT_TRUE(absl::StrContains(line, "\"request_id\":\"req-1\"")) << line;
}

TEST_F(AnswererTest, AWriteThatCertainlyDidNotRunInvalidatesNothing) {
  const ops::Operation& update = *ops::FindOperation("UpdateAudienceForSpace");
  v1::UpdateAudienceForSpaceRequest request;
  request.set_space_id("spa_1");
  request.set_id("aud_1");
  for (absl::StatusCode refused :
       {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
        absl::StatusCode::kPermissionDenied, absl::StatusCode::kUnauthenticated,
        absl::StatusCode::kResourceExhausted, absl::StatusCode::kFailedPrecondition}) {
    answer_->InvalidateAfterWrite("ws", update, request, absl::Status(refused, "no"));
  }
  EXPECT_EQ(cache_->stats().invalidations, 0u);
  EXPECT_TRUE(published_.empty());
  // It may have executed (a timeout) or did: both drop the listings, here and elsewhere.
  answer_->InvalidateAfterWrite("ws", update, request, absl::UnavailableError("timeout"));
  EXPECT_GT(cache_->stats().invalidations, 0u);
  EXPECT_FALSE(published_.empty());
}

TEST_F(AnswererTest, TheAuditLineNamesTheCreatedId) {
  info_.rpc = "CreateAudience";
  v1::CreateAudienceRequest request;
  request.set_space_id("spa_1");
  v1::CreateAudienceResponse response;
  response.mutable_audience()->set_id("aud_new");
  answer_->Audit(info_, request, &response, absl::OkStatus());
  std::string line = Logged();
  EXPECT_TRUE(absl::StrContains(line, "\"result_id\":\"aud_new\"")) << line;
  EXPECT_TRUE(absl::StrContains(line, "\"caller\":\"svc-a\"")) << line;
}

// --- The exchange behind a fake admission stage ---

TEST(ExchangeAdmissionTest, ARefusalFromAdmissionEndsTheCallWithNothingSent) {
  FakeClock clock;
  FakeHttpClient http;
  testing::FakeAdmission admission(absl::ResourceExhaustedError("queue full"));
  ratelimit::Backoff backoff;
  ExchangeEnv env;
  env.http = &http;
  env.clock = &clock;
  env.timers = &clock;
  env.limiter = &admission;
  env.backoff = &backoff;
  FakeTokenSource tokens;
  auto router = *Router::Create({MakeWorkspace("ws", {}, &tokens)}, nullptr, &clock);
  ExchangeParams params;
  params.builder = router->Builder("GetAudience");
  params.lane = "ws/GetAudience";
  params.limit = {10, absl::Seconds(1)};
  params.deadline = clock.Now() + absl::Seconds(5);
  params.http.method = "GET";
  params.http.url = "https://api.example/spaces/s/audiences/a";
  absl::Status got = absl::UnknownError("not answered");
  int answers = 0;
  Exchange::Start(&env, std::move(params),
                  [&](absl::Status status, std::unique_ptr<google::protobuf::Message>,
                      const ExchangeReport& report) {
                    got = std::move(status);
                    ++answers;
                    EXPECT_EQ(report.attempts, 0);
                  });
  EXPECT_EQ(answers, 1);
  EXPECT_EQ(got.code(), absl::StatusCode::kResourceExhausted) << got;
  EXPECT_EQ(http.SentCount(), 0u);
  EXPECT_EQ(admission.lanes(), std::vector<std::string>{"ws/GetAudience"});
}

}  // namespace
}  // namespace sag
