// In-process tests of two Gateway promises (service/server/gateway.h), behind a real gRPC server
// in this process with a listing cache, fake HTTP, token source and budget store and the fake
// clock (as gateway_test.cc):
//  - stages: a fresh hit reads no token and builds no upstream request;
//  - trace context: the caller's traceparent/tracestate reach every upstream attempt, and the
//    call's log line carries the trace id; an invalid traceparent is dropped, never an error;
//  - a rejected token is loud: after a 401/403 no listing of the workspace comes from the cache
//    (neither stale nor fresh) until a call succeeds; the observer (here the real app observer on
//    real metrics) counts, logs at error level and is told of each change of state.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/app/observers.h"
#include "service/cache/in_memory_store.h"
#include "service/cache/listing_cache.h"
#include "service/server/audiences_service.h"
#include "service/server/gateway.h"
#include "service/telemetry/gateway_metrics.h"
#include "service/telemetry/metrics.h"
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
constexpr char kListBody[] = R"({"data":{"audiences":[{"id":"aud_1","name":"A"}]}})";
constexpr char kTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr absl::Duration kWait = absl::Seconds(10);  // Bound of every wait on another thread.
// Far beyond the time the tests move the fake clock (which started at the real now), so that no
// call's deadline passes on it.
constexpr absl::Duration kDeadline = absl::Hours(1);
constexpr absl::Duration kTtl = absl::Seconds(30);
constexpr absl::Duration kSwr = absl::Seconds(30);
// Lanes are paced (one ListAudiences a second): calls that go upstream start this long apart on
// the fake clock, so none waits for its slot.
constexpr absl::Duration kPace = absl::Seconds(2);

template <typename Response>
struct PendingCall {
  grpc::ClientContext context;
  Response response;
  grpc::Status status;
  absl::Notification done;
  bool Wait() { return done.WaitForNotificationWithTimeout(kWait); }
  std::string XCache() {
    const auto& md = context.GetServerInitialMetadata();
    auto it = md.find("x-cache");
    return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  }
};

// The value of header `name` in `request` ("" when absent), and how many it has.
std::string HeaderOf(const upstream::HttpRequest& request, absl::string_view name, int* count) {
  std::string value;
  *count = 0;
  for (const auto& [k, v] : request.headers) {
    if (k == name) {
      value = v;
      ++*count;
    }
  }
  return value;
}

class GatewayTraceAuthTest : public InProcessGatewayTest {
 protected:
  GatewayTraceAuthTest() {
    metrics_ = *telemetry::GatewayMetrics::Create(&registry_, "test");
    observer_ =
        app::UpstreamAuthStateObserver(metrics_.get(), &logger_, [this] { ++state_changes_; });
    cache::InMemoryStore::Options so;
    so.clock = &clock_;
    cache::ListingCache::Options co;
    co.ttl = kTtl;
    co.stale_while_revalidate = kSwr;
    co.stale_if_error = absl::Minutes(5);
    co.clock = &clock_;
    cache_ = std::make_unique<cache::ListingCache>(std::make_shared<cache::InMemoryStore>(so), co);
    GatewayParts parts;
    parts.cache = cache_.get();
    Serve(parts, {metrics_.get(), &logger_, observer_.get()});
  }
  ~GatewayTraceAuthTest() override { StopServing(); }

  // GetAudience with `metadata` added to the call, kPace after the previous one.
  std::unique_ptr<PendingCall<v1::GetAudienceResponse>> GetAudience(
      const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
    clock_.Advance(kPace);
    auto call = std::make_unique<PendingCall<v1::GetAudienceResponse>>();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
    for (const auto& [k, v] : metadata) call->context.AddMetadata(k, v);
    v1::GetAudienceRequest request;
    request.set_space_id("spa_1");
    request.set_id("aud_1");
    auto* c = call.get();
    stub_->async()->GetAudience(&c->context, &request, &c->response, [c](grpc::Status s) {
      c->status = std::move(s);
      c->done.Notify();
    });
    return call;
  }

  std::unique_ptr<PendingCall<v1::ListAudiencesResponse>> ListAudiences(
      const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
    auto call = std::make_unique<PendingCall<v1::ListAudiencesResponse>>();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + kDeadline));
    for (const auto& [k, v] : metadata) call->context.AddMetadata(k, v);
    v1::ListAudiencesRequest request;
    request.set_space_id("spa_1");
    auto* c = call.get();
    stub_->async()->ListAudiences(&c->context, &request, &c->response, [c](grpc::Status s) {
      c->status = std::move(s);
      c->done.Notify();
    });
    return call;
  }

  // A listing (kPace after the previous one) answered by the upstream with `status` and `body`.
  std::unique_ptr<PendingCall<v1::ListAudiencesResponse>> ListAnsweredWith(long status,
                                                                           const char* body) {
    clock_.Advance(kPace);
    size_t sent = http_.SentCount();
    auto call = ListAudiences();
    EXPECT_TRUE(http_.WaitForSent(sent + 1, kWait));
    EXPECT_TRUE(http_.Respond(status, body));
    EXPECT_TRUE(call->Wait());
    return call;
  }

  // A listing answered without an upstream request (from the cache); the finished call.
  std::unique_ptr<PendingCall<v1::ListAudiencesResponse>> ListFromCache() {
    size_t sent = http_.SentCount();
    auto call = ListAudiences();
    EXPECT_TRUE(call->Wait());
    EXPECT_EQ(http_.SentCount(), sent);
    return call;
  }

  std::vector<nlohmann::json> LogLines(absl::string_view msg) {
    std::vector<nlohmann::json> out;
    for (absl::string_view line : absl::StrSplit(log_.str(), '\n', absl::SkipEmpty())) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && absl::StartsWith(j.value("msg", ""), msg)) out.push_back(j);
    }
    return out;
  }

  // The value of the exposition line `series` (name{labels}), or -1 when absent.
  double Metric(const std::string& series) {
    for (absl::string_view line : absl::StrSplit(registry_.Serialize(), '\n')) {
      if (absl::StartsWith(line, series + " ")) {
        double v = -1;
        if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
      }
    }
    return -1;
  }

  telemetry::Registry registry_;
  std::unique_ptr<telemetry::GatewayMetrics> metrics_;
  std::atomic<int> state_changes_{0};
  std::unique_ptr<UpstreamAuthObserver> observer_;
  std::unique_ptr<cache::ListingCache> cache_;
};

// --- stages: a fresh hit is answered by routing and the cache alone
// -------------------------------

// Upstream planning (the REST request, the token) happens only for a call that may go upstream:
// a fresh hit reads no token, so it is answered even while the token cannot be read.
TEST_F(GatewayTraceAuthTest, AFreshHitReadsNoTokenAndBuildsNoUpstreamRequest) {
  auto miss = ListAnsweredWith(200, kListBody);
  ASSERT_TRUE(miss->status.ok()) << miss->status.error_message();
  EXPECT_EQ(miss->XCache(), "miss");
  const int asked = tokens_.asked();
  EXPECT_GE(asked, 1);
  tokens_.Set(absl::UnavailableError("token file is empty"));
  auto hit = ListFromCache();
  ASSERT_TRUE(hit->status.ok()) << hit->status.error_message();
  EXPECT_EQ(hit->XCache(), "hit");
  EXPECT_EQ(hit->response.audiences_size(), 1);
  EXPECT_EQ(tokens_.asked(), asked);
  // A call that must go upstream still needs the token.
  auto bypass = ListAudiences({{"cache-control", "no-cache"}});
  ASSERT_TRUE(bypass->Wait());
  EXPECT_EQ(bypass->status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(bypass->status.error_message(), "no Segment token"));
}

// --- trace context ------------------------------------------------------------------------------

TEST_F(GatewayTraceAuthTest, TraceHeadersReachEveryAttemptAndTheTraceIdIsLogged) {
  auto call = GetAudience({{"traceparent", kTraceparent}, {"tracestate", "congo=t61rcWkgMzE"}});
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(503));    // A GET is retried after a 5xx.
  clock_.Advance(absl::Seconds(10));  // Past the back-off.
  ASSERT_TRUE(http_.WaitForSent(2, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(call->Wait());
  ASSERT_TRUE(call->status.ok()) << call->status.error_message();
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(absl::StrCat("attempt ", i + 1));
    int n = 0;
    EXPECT_EQ(HeaderOf(http_.Request(i), "traceparent", &n), kTraceparent);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(HeaderOf(http_.Request(i), "tracestate", &n), "congo=t61rcWkgMzE");
    EXPECT_EQ(n, 1);
  }
  std::vector<nlohmann::json> lines = LogLines("call");
  ASSERT_EQ(lines.size(), 1u) << log_.str();
  EXPECT_EQ(lines[0]["trace_id"], kTraceId) << lines[0].dump();
  EXPECT_EQ(lines[0]["retries"], 1);
}

TEST_F(GatewayTraceAuthTest, AnInvalidTraceparentIsDroppedWithItsTracestateNotAnError) {
  for (const char* bad : {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // uppercase
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero id
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}) {  // short
    SCOPED_TRACE(bad);
    size_t sent = http_.SentCount();
    auto call = GetAudience({{"traceparent", bad}, {"tracestate", "congo=t61rcWkgMzE"}});
    ASSERT_TRUE(http_.WaitForSent(sent + 1, kWait));
    ASSERT_TRUE(http_.Respond(200, kAudienceBody));
    ASSERT_TRUE(call->Wait());
    EXPECT_TRUE(call->status.ok()) << call->status.error_message();
    int n = 0;
    HeaderOf(http_.Request(sent), "traceparent", &n);
    EXPECT_EQ(n, 0);
    HeaderOf(http_.Request(sent), "tracestate", &n);
    EXPECT_EQ(n, 0);
  }
  for (const nlohmann::json& line : LogLines("call")) EXPECT_EQ(line["trace_id"], "");
}

TEST_F(GatewayTraceAuthTest, AnOversizedTracestateIsDroppedAndTheTraceparentKept) {
  auto call = GetAudience({{"traceparent", kTraceparent}, {"tracestate", std::string(513, 'a')}});
  ASSERT_TRUE(http_.WaitForSent(1, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(call->Wait());
  EXPECT_TRUE(call->status.ok()) << call->status.error_message();
  int n = 0;
  EXPECT_EQ(HeaderOf(http_.Request(0), "traceparent", &n), kTraceparent);
  HeaderOf(http_.Request(0), "tracestate", &n);
  EXPECT_EQ(n, 0);
}

// --- a rejected token ---------------------------------------------------------------------------

TEST_F(GatewayTraceAuthTest, StaleIsServedAfterA5xxButNeverAfterA401) {
  ASSERT_TRUE(ListAnsweredWith(200, kListBody)->status.ok());
  clock_.Advance(kTtl + kSwr + absl::Seconds(1));  // Past revalidation, within stale-if-error.

  // The control: a 503 (retried, then given up) is answered with the stale listing.
  auto stale = ListAudiences();
  for (size_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(http_.WaitForSent(1 + i, kWait))
        << "attempt " << i << " sent " << http_.SentCount() << " timers " << clock_.Pending();
    ASSERT_TRUE(http_.Respond(503));
    clock_.Advance(absl::Seconds(10));
  }
  ASSERT_TRUE(stale->Wait());
  ASSERT_TRUE(stale->status.ok()) << stale->status.error_message();
  EXPECT_EQ(stale->XCache(), "stale");
  EXPECT_FALSE(gateway_->TokenRejected("ws"));

  // A 401 is the caller's answer, not a failure to get one.
  auto rejected = ListAnsweredWith(401, R"({"errors":[{"type":"unauthorized","message":"no"}]})");
  EXPECT_EQ(rejected->status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << rejected->status.error_message();
  EXPECT_EQ(rejected->XCache(), "miss");
  EXPECT_TRUE(gateway_->TokenRejected("ws"));
}

TEST_F(GatewayTraceAuthTest, AfterA401NoListingComesFromTheCacheUntilACallSucceeds) {
  ASSERT_TRUE(ListAnsweredWith(200, kListBody)->status.ok());
  EXPECT_EQ(ListFromCache()->XCache(), "hit");  // Fresh and served from the cache.

  // Another RPC of the workspace learns that the token is rejected.
  auto get = GetAudience();
  ASSERT_TRUE(http_.WaitForSent(2, kWait));
  ASSERT_TRUE(http_.Respond(401, R"({"errors":[{"type":"unauthorized","message":"no"}]})"));
  ASSERT_TRUE(get->Wait());
  EXPECT_EQ(get->status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(gateway_->TokenRejected("ws"));

  // The fresh entry is not served: the caller sees the real error, every time.
  for (int i = 0; i < 2; ++i) {
    auto listed = ListAnsweredWith(403, R"({"errors":[{"type":"forbidden","message":"no"}]})");
    EXPECT_EQ(listed->status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(listed->XCache(), "bypass");
  }
  // The token works again (e.g. fixed at Segment): the success clears the state and refreshes
  // the entry, and the cache serves again.
  auto fixed = ListAnsweredWith(200, kListBody);
  ASSERT_TRUE(fixed->status.ok()) << fixed->status.error_message();
  EXPECT_EQ(fixed->XCache(), "bypass");
  EXPECT_FALSE(gateway_->TokenRejected("ws"));
  auto hit = ListFromCache();
  EXPECT_TRUE(hit->status.ok());
  EXPECT_EQ(hit->XCache(), "hit");
}

TEST_F(GatewayTraceAuthTest, TheFirstRejectionIsLoggedAsAnErrorCountedAndReported) {
  EXPECT_EQ(Metric(R"(audiences_gateway_upstream_auth_rejected{workspace="ws"})"), -1);
  for (int i = 0; i < 3; ++i) {
    auto get = GetAudience();
    ASSERT_TRUE(http_.WaitForSent(i + 1, kWait));
    ASSERT_TRUE(http_.Respond(i == 2 ? 403 : 401, R"({"errors":[{"message":"no"}]})"));
    ASSERT_TRUE(get->Wait());
  }
  std::vector<nlohmann::json> errors = LogLines("Segment API rejected");
  ASSERT_EQ(errors.size(), 1u) << "only the first since the last success: " << log_.str();
  EXPECT_EQ(errors[0]["level"], "error");
  EXPECT_EQ(errors[0]["workspace"], "ws");
  EXPECT_EQ(errors[0]["status"], 401);
  EXPECT_FALSE(absl::StrContains(log_.str(), "test-token-0123456789")) << "never the token";
  EXPECT_EQ(
      Metric(R"(audiences_gateway_upstream_auth_failures_total{workspace="ws",status="401"})"), 2);
  EXPECT_EQ(
      Metric(R"(audiences_gateway_upstream_auth_failures_total{workspace="ws",status="403"})"), 1);
  EXPECT_EQ(Metric(R"(audiences_gateway_upstream_auth_rejected{workspace="ws"})"), 1);
  EXPECT_EQ(state_changes_.load(), 1);

  auto ok = GetAudience();
  ASSERT_TRUE(http_.WaitForSent(4, kWait));
  ASSERT_TRUE(http_.Respond(200, kAudienceBody));
  ASSERT_TRUE(ok->Wait());
  EXPECT_TRUE(ok->status.ok());
  EXPECT_EQ(Metric(R"(audiences_gateway_upstream_auth_rejected{workspace="ws"})"), 0);
  EXPECT_EQ(state_changes_.load(), 2);
  EXPECT_EQ(LogLines("Segment API accepts").size(), 1u) << log_.str();

  // Rejected again after the success: a new first rejection, logged again.
  auto again = GetAudience();
  ASSERT_TRUE(http_.WaitForSent(5, kWait));
  ASSERT_TRUE(http_.Respond(401, R"({"errors":[{"message":"no"}]})"));
  ASSERT_TRUE(again->Wait());
  EXPECT_EQ(LogLines("Segment API rejected").size(), 2u);
  EXPECT_EQ(state_changes_.load(), 3);
}

}  // namespace
}  // namespace sag
