// A rejected token and trace context, end to end: a real segment-sim and a real audiences-gateway
// on loopback.
//  - The simulator revokes the gateway's token (POST /__sim/token): after the first 401 no listing
//    comes from the cache (the request reaches the simulator, the caller gets UNAUTHENTICATED),
//    the workspace's health entry turns NOT_SERVING while the server's stays SERVING, the metric
//    and an error log line say so; a new token in the gateway's token file and one successful
//    call make the workspace SERVING again and the cache serve again.
//  - The caller's traceparent/tracestate reach the simulator as HTTP headers and the trace id is
//    in the call's log line; an invalid traceparent is not sent and the call still succeeds.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/stack.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kWorkspaceHealth[] = "segment.audiences.v1.AudiencesService/workspace/default";
constexpr char kService[] = "segment.audiences.v1.AudiencesService";
constexpr int kServing = 1;
constexpr int kNotServing = 2;
constexpr char kTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Listing {
  grpc::Status status;
  std::string cache;  // x-cache
};

Listing List(Stack& s, const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  auto ctx = Context();
  for (const auto& [k, v] : metadata) ctx->AddMetadata(k, v);
  v1::ListAudiencesRequest req;
  req.set_space_id(kSpace);
  v1::ListAudiencesResponse resp;
  Listing out;
  out.status = s.stub().ListAudiences(ctx.get(), req, &resp);
  auto it = ctx->GetServerInitialMetadata().find("x-cache");
  if (it != ctx->GetServerInitialMetadata().end())
    out.cache = std::string(it->second.data(), it->second.size());
  return out;
}

// grpc.health.v1.Health/Check by hand (no generated health stubs are installed): 1 SERVING,
// 2 NOT_SERVING, or -1 when the call failed.
int HealthOf(Stack& s, const std::string& service) {
  std::string request;  // HealthCheckRequest { string service = 1; } (names < 128 bytes)
  request.push_back(0x0a);
  request.push_back(static_cast<char>(service.size()));
  request += service;
  grpc::GenericStub generic(s.channel());
  grpc::Slice slice(request);
  grpc::ByteBuffer in(&slice, 1), out;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  absl::Mutex mu;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in, &out,
                    [&](grpc::Status st) {
                      absl::MutexLock lock(&mu);
                      status = std::move(st);
                      done = true;
                    });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));  // The deadline bounds the call.
  if (!status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!out.Dump(&slices).ok()) return -1;
  std::string raw;
  for (auto& sl : slices) raw.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  if (raw.empty()) return 0;  // UNKNOWN
  return raw.size() == 2 && raw[0] == 0x08 ? raw[1] : -1;
}

// Waits (bounded) until `service`'s health is `want`; the last status seen.
int WaitForHealth(Stack& s, const std::string& service, int want) {
  int seen = HealthOf(s, service);
  for (absl::Time end = absl::Now() + absl::Seconds(10); seen != want && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(50));
    seen = HealthOf(s, service);
  }
  return seen;
}

// The value of the exposition line `series` (name{labels}), or -1 when absent.
double Metric(Stack& s, const std::string& series) {
  auto text = s.ScrapeMetrics();
  if (!text.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    double v = -1;
    if (absl::StartsWith(line, series + " ") &&
        absl::SimpleAtod(line.substr(series.size() + 1), &v)) {
      return v;
    }
  }
  return -1;
}

int SimToken(Stack& s, const std::string& token) {
  httplib::Client client(s.sim_url());
  client.set_read_timeout(10, 0);
  auto res =
      client.Post("/__sim/token", nlohmann::json{{"token", token}}.dump(), "application/json");
  return res ? res->status : -1;
}

int SimRequests(Stack& s) { return s.SimStats().value("requests", -1); }

// The value of header `name` (any case) in a /__sim/requests entry, "" when absent.
std::string SimHeader(const nlohmann::json& request, const std::string& name) {
  if (!request.contains("headers") || !request["headers"].is_object()) return "";
  for (const auto& [k, v] : request["headers"].items()) {
    if (absl::AsciiStrToLower(k) == name && v.is_string()) return v.get<std::string>();
  }
  return "";
}

// ListAudiences paced at 50 a second on both sides, so no call here waits a second for its slot.
StackOptions FastListings() {
  StackOptions o;
  o.sim_args = {"--rate_limits=ListAudiences=1000/1s"};
  o.gateway_args = {"--rate_limits=ListAudiences=50/1s"};
  return o;
}

TEST(TokenRejectedTest, RevokedTokenBypassesTheCacheAndTurnsTheWorkspaceNotServingUntilFixed) {
  auto stack = StartOrDie(FastListings());
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  ASSERT_TRUE(List(s).status.ok());
  Listing hit = List(s);
  ASSERT_TRUE(hit.status.ok()) << hit.status.error_message();
  ASSERT_EQ(hit.cache, "hit");  // The listing is fresh in the cache.
  EXPECT_EQ(WaitForHealth(s, kWorkspaceHealth, kServing), kServing);
  EXPECT_EQ(Metric(s, R"(audiences_gateway_upstream_auth_rejected{workspace="default"})"), 0);

  // Segment revokes the token; the first call that reaches it learns so.
  ASSERT_EQ(SimToken(s, "rotated-token-5d1e"), 200);
  Listing first = List(s, {{"cache-control", "no-cache"}});
  EXPECT_EQ(first.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << first.status.error_message();

  // From then on, the fresh entry is not served: every listing asks the API and gets its answer.
  for (int i = 0; i < 2; ++i) {
    const int before = SimRequests(s);
    Listing listed = List(s);
    EXPECT_EQ(listed.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << listed.status.error_message();
    EXPECT_EQ(listed.cache, "bypass");
    EXPECT_EQ(SimRequests(s), before + 1) << "the listing reached the simulator";
  }
  EXPECT_EQ(WaitForHealth(s, kWorkspaceHealth, kNotServing), kNotServing);
  EXPECT_EQ(HealthOf(s, ""), kServing) << "one workspace's token must not restart the replica";
  EXPECT_EQ(HealthOf(s, kService), kServing);
  EXPECT_GE(
      Metric(s,
             R"(audiences_gateway_upstream_auth_failures_total{workspace="default",status="401"})"),
      3);
  EXPECT_EQ(Metric(s, R"(audiences_gateway_upstream_auth_rejected{workspace="default"})"), 1);
  auto error = s.gateway().WaitForLine("Segment API rejected", absl::Seconds(5));
  ASSERT_TRUE(error.ok()) << s.gateway().Output();
  nlohmann::json line = nlohmann::json::parse(*error, nullptr, false);
  EXPECT_EQ(line.value("level", ""), "error") << *error;
  EXPECT_EQ(line.value("workspace", ""), "default") << *error;
  EXPECT_EQ(line.value("status", 0), 401) << *error;
  EXPECT_FALSE(absl::StrContains(s.gateway().Output(), "test-token-7f3a9c")) << "never the token";

  // The operator writes the new token; the gateway re-reads the file and the next call succeeds.
  { std::ofstream(s.token_file(), std::ios::trunc) << "rotated-token-5d1e\n"; }
  Listing fixed = List(s);
  for (absl::Time end = absl::Now() + absl::Seconds(10); !fixed.status.ok() && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(100));
    fixed = List(s);
  }
  ASSERT_TRUE(fixed.status.ok()) << fixed.status.error_message();
  EXPECT_EQ(fixed.cache, "bypass");
  EXPECT_EQ(WaitForHealth(s, kWorkspaceHealth, kServing), kServing);
  EXPECT_EQ(Metric(s, R"(audiences_gateway_upstream_auth_rejected{workspace="default"})"), 0);
  const int before = SimRequests(s);
  Listing again = List(s);
  ASSERT_TRUE(again.status.ok());
  EXPECT_EQ(again.cache, "hit") << "the success refreshed the entry; the cache serves again";
  EXPECT_EQ(SimRequests(s), before);
}

TEST(TraceContextIntegrationTest, TraceparentAndTracestateReachTheApiAndTheTraceIdTheLog) {
  auto stack = StartOrDie(FastListings());
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  Listing traced = List(s, {{"traceparent", kTraceparent},
                            {"tracestate", "congo=t61rcWkgMzE"},
                            {"x-request-id", "traced-call-1"}});
  ASSERT_TRUE(traced.status.ok()) << traced.status.error_message();
  Listing invalid =
      List(s, {{"traceparent", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
               {"tracestate", "congo=t61rcWkgMzE"},
               {"cache-control", "no-cache"},
               {"x-request-id", "invalid-trace-call-1"}});
  ASSERT_TRUE(invalid.status.ok()) << invalid.status.error_message();

  nlohmann::json requests = s.SimRequests();
  ASSERT_TRUE(requests.is_array());
  ASSERT_EQ(requests.size(), 2u) << requests.dump();
  EXPECT_EQ(SimHeader(requests[0], "traceparent"), kTraceparent) << requests[0].dump();
  EXPECT_EQ(SimHeader(requests[0], "tracestate"), "congo=t61rcWkgMzE") << requests[0].dump();
  EXPECT_EQ(SimHeader(requests[1], "traceparent"), "") << requests[1].dump();
  EXPECT_EQ(SimHeader(requests[1], "tracestate"), "") << requests[1].dump();

  auto call = s.gateway().WaitForLine("\"request_id\":\"traced-call-1\"", absl::Seconds(5));
  ASSERT_TRUE(call.ok()) << s.gateway().Output();
  EXPECT_EQ(nlohmann::json::parse(*call, nullptr, false).value("trace_id", "?"),
            "4bf92f3577b34da6a3ce929d0e0e4736")
      << *call;
  auto other = s.gateway().WaitForLine("\"request_id\":\"invalid-trace-call-1\"", absl::Seconds(5));
  ASSERT_TRUE(other.ok()) << s.gateway().Output();
  EXPECT_EQ(nlohmann::json::parse(*other, nullptr, false).value("trace_id", "?"), "") << *other;
}

}  // namespace
}  // namespace sag::testing
