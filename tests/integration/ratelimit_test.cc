// Rate-limit queueing, retries and clear failure, end to end: a real audiences-gateway in front
// of a real segment-sim (with its --rate_limits and --fault_* flags), both processes on loopback.
//
//  - bursts over the limit are queued, not refused: every call succeeds, the upstream never
//    answers 429;
//  - a gateway limit set too high still ends with every call answered OK (it learns from the
//    upstream's 429s and X-RateLimit-* headers);
//  - deadline-aware admission: a call that cannot get a slot before its deadline is refused at
//    once with RetryInfo; a cancelled call leaves the queue and never reaches the upstream;
//  - 20% of GETs answered 5xx: retried inside the deadline, at least 99.9% succeed;
//  - writes are never retried (no duplicate audiences) whatever the failure;
//  - garbled 200 bodies are a clear error, never a partial answer;
//  - the monthly preview quota refuses at once with QuotaFailure, across a restart;
//  - callers share a lane by priority and weight (config `callers[].priority/weight`): batch
//    callers of weights 3 and 1 get about 3:1, batch keeps its share under an interactive
//    flood, and a bad weight stops the gateway at start with exit code 2.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/flood.h"
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";

std::unique_ptr<grpc::ClientContext> CallerContext(const std::string& caller,
                                                   absl::Duration timeout) {
  auto ctx = Context(timeout);
  ctx->AddMetadata("x-caller-id", caller);
  return ctx;
}

int64_t SimCount(Stack& s, const std::string& key, const std::string& sub = "") {
  nlohmann::json stats = s.SimStats();
  if (!stats.is_object() || !stats.contains(key)) return -1;
  const nlohmann::json& v = sub.empty() ? stats[key] : stats[key].value(sub, nlohmann::json(-1));
  return v.is_number() ? v.get<int64_t>() : -1;
}

template <typename Detail>
bool FindDetail(const grpc::Status& st, Detail* out) {
  google::rpc::Status details;
  if (!details.ParseFromString(st.error_details())) return false;
  for (const auto& any : details.details()) {
    if (any.UnpackTo(out)) return true;
  }
  return false;
}

std::string CreateAudienceOrDie(Stack& s, const std::string& name) {
  v1::CreateAudienceRequest req = AudienceRequest(kSpace, name);
  v1::CreateAudienceResponse resp;
  grpc::Status st = s.stub().CreateAudience(Context().get(), req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.audience().id();
}

// The audiences of the space, read through the gateway (bypassing its listing cache).
int CountAudiences(Stack& s) {
  v1::ListAudiencesRequest req;
  req.set_space_id(kSpace);
  req.mutable_pagination()->set_count(200);
  v1::ListAudiencesResponse resp;
  auto ctx = Context(absl::Seconds(30));
  ctx->AddMetadata("cache-control", "no-cache");
  grpc::Status st = s.stub().ListAudiences(ctx.get(), req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return st.ok() ? resp.audiences_size() : -1;
}

// One asynchronous GetAudience.
struct GetCall {
  std::unique_ptr<grpc::ClientContext> ctx;
  v1::GetAudienceRequest req;
  v1::GetAudienceResponse resp;
  grpc::Status status;
  std::string caller;
  absl::Time start;
  absl::Time end;
};

// Starts every call of `calls` at once and waits for all of them.
void RunAll(Stack& s, std::vector<std::unique_ptr<GetCall>>& calls) {
  absl::BlockingCounter done(static_cast<int>(calls.size()));
  for (auto& c : calls) {
    GetCall* raw = c.get();
    raw->start = absl::Now();
    s.stub().async()->GetAudience(raw->ctx.get(), &raw->req, &raw->resp,
                                  [raw, &done](grpc::Status st) {
                                    raw->status = std::move(st);
                                    raw->end = absl::Now();
                                    done.DecrementCount();
                                  });
  }
  done.Wait();
}

std::unique_ptr<GetCall> NewGet(const std::string& id, const std::string& caller,
                                absl::Duration timeout) {
  auto c = std::make_unique<GetCall>();
  c->ctx = CallerContext(caller, timeout);
  c->req.set_space_id(kSpace);
  c->req.set_id(id);
  c->caller = caller;
  return c;
}

// GetAudience calls from `callers` x `per_caller`, interleaved, all started at once.
std::vector<std::unique_ptr<GetCall>> BurstOfGets(const std::string& id, int callers,
                                                  int per_caller, absl::Duration timeout) {
  std::vector<std::unique_ptr<GetCall>> calls;
  for (int i = 0; i < per_caller; ++i) {
    for (int c = 0; c < callers; ++c) {
      calls.push_back(NewGet(id, absl::StrCat("caller-", c), timeout));
    }
  }
  return calls;
}

std::string FirstError(const std::vector<std::unique_ptr<GetCall>>& calls) {
  for (const auto& c : calls) {
    if (!c->status.ok()) {
      return absl::StrCat(c->status.error_code(), ": ", c->status.error_message());
    }
  }
  return "";
}

int CountOk(const std::vector<std::unique_ptr<GetCall>>& calls, const std::string& id) {
  int ok = 0;
  for (const auto& c : calls) {
    if (c->status.ok() && c->resp.audience().id() == id) ++ok;
  }
  return ok;
}

// The gateway's Prometheus text, from the address its "started" log line names.
std::string GatewayMetricsText(Stack& s) {
  auto line = s.gateway().WaitForLine("\"started\"", absl::Seconds(5));
  if (!line.ok()) return "";
  std::smatch m;
  if (!std::regex_search(*line, m, std::regex("\"metrics\":\"[^\"]*:(\\d+)\""))) return "";
  httplib::Client client("127.0.0.1", std::stoi(m[1]));
  client.set_read_timeout(5, 0);
  auto res = client.Get("/metrics");
  return res && res->status == 200 ? res->body : "";
}

// The value of the sample `series` (name and labels, exactly as exported), or -1.
double MetricValue(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

// --- Queueing instead of 429 ------------------------------------------------------------------

TEST(RateLimitIntegrationTest, OverLimitBurstsAllSucceedWithoutUpstream429) {
  StackOptions o;
  o.sim_args = {"--rate_limits=GetAudience=10/1s"};
  o.gateway_args = {"--rate_limits=GetAudience=10/1s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  const std::string id = CreateAudienceOrDie(*stack, "Burst target");
  ASSERT_FALSE(id.empty());

  auto calls = BurstOfGets(id, /*callers=*/3, /*per_caller=*/20, absl::Seconds(30));
  const absl::Time start = absl::Now();
  RunAll(*stack, calls);
  const absl::Duration took = absl::Now() - start;

  EXPECT_EQ(CountOk(calls, id), 60) << FirstError(calls);
  EXPECT_EQ(SimCount(*stack, "status_429"), 0);
  EXPECT_EQ(SimCount(*stack, "by_operation", "GetAudience"), 60);
  // Paced at the limit: 60 calls at 10/s take about 6 s, not much less.
  EXPECT_GT(took, absl::Seconds(5)) << took;
}

TEST(RateLimitIntegrationTest, TooHighGatewayLimitStillEndsWithEveryCallOk) {
  StackOptions o;
  o.sim_args = {"--rate_limits=GetAudience=10/1s"};
  o.gateway_args = {"--rate_limits=GetAudience=100/1s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  const std::string id = CreateAudienceOrDie(*stack, "Learning target");
  ASSERT_FALSE(id.empty());

  auto calls = BurstOfGets(id, /*callers=*/3, /*per_caller=*/20, absl::Seconds(30));
  RunAll(*stack, calls);

  EXPECT_EQ(CountOk(calls, id), 60) << FirstError(calls);
  const int64_t upstream = SimCount(*stack, "by_operation", "GetAudience");
  const int64_t too_many = SimCount(*stack, "status_429");
  RecordProperty("upstream_requests", static_cast<int>(upstream));
  RecordProperty("upstream_429", static_cast<int>(too_many));
  EXPECT_EQ(upstream - too_many, 60);  // every call executed exactly once
  // It learns: far fewer 429s than calls (a gateway that did not would send ~10 per window
  // that fit and hammer the rest).
  EXPECT_LT(too_many, 30) << "upstream requests " << upstream;
}

// --- Deadline-aware admission and cancellation --------------------------------------------------

TEST(RateLimitIntegrationTest, CallThatCannotMakeItsDeadlineIsRefusedAtOnce) {
  StackOptions o;
  o.sim_args = {"--rate_limits=GetAudience=1/10s"};
  o.gateway_args = {"--rate_limits=GetAudience=1/10s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_missing");
  v1::GetAudienceResponse resp;
  grpc::Status first =
      stack->stub().GetAudience(CallerContext("a", absl::Seconds(5)).get(), req, &resp);
  EXPECT_EQ(first.error_code(), grpc::StatusCode::NOT_FOUND) << first.error_message();

  const absl::Time start = absl::Now();
  grpc::Status second =
      stack->stub().GetAudience(CallerContext("b", absl::Seconds(1)).get(), req, &resp);
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << second.error_message();
  EXPECT_LT(took, absl::Milliseconds(500));
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(FindDetail(second, &retry)) << second.error_message();
  const absl::Duration delay =
      absl::Seconds(retry.retry_delay().seconds()) + absl::Nanoseconds(retry.retry_delay().nanos());
  // The expected wait: the rest of the 10 s slot.
  EXPECT_GT(delay, absl::Seconds(5)) << delay;
  EXPECT_LE(delay, absl::Seconds(11)) << delay;
  EXPECT_EQ(SimCount(*stack, "by_operation", "GetAudience"), 1);
}

TEST(RateLimitIntegrationTest, CancelledCallerLeavesTheQueueAndNeverReachesTheUpstream) {
  StackOptions o;
  o.sim_args = {"--rate_limits=GetAudience=1/3s"};
  o.gateway_args = {"--rate_limits=GetAudience=1/3s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_missing");
  v1::GetAudienceResponse resp;
  grpc::Status first =
      stack->stub().GetAudience(CallerContext("a", absl::Seconds(5)).get(), req, &resp);
  ASSERT_EQ(first.error_code(), grpc::StatusCode::NOT_FOUND) << first.error_message();

  // Queued behind the slot (about 3 s away), then cancelled.
  std::vector<std::unique_ptr<GetCall>> queued;
  queued.push_back(NewGet("aud_missing", "b", absl::Seconds(30)));
  absl::BlockingCounter done(1);
  GetCall* raw = queued[0].get();
  stack->stub().async()->GetAudience(raw->ctx.get(), &raw->req, &raw->resp,
                                     [raw, &done](grpc::Status st) {
                                       raw->status = std::move(st);
                                       raw->end = absl::Now();
                                       done.DecrementCount();
                                     });
  absl::SleepFor(absl::Milliseconds(300));
  const std::string metrics_before = GatewayMetricsText(*stack);
  EXPECT_EQ(MetricValue(metrics_before, "audiences_gateway_queue_depth{operation=\"GetAudience\"}"),
            1)
      << metrics_before;
  const absl::Time cancelled_at = absl::Now();
  raw->ctx->TryCancel();
  done.Wait();
  EXPECT_EQ(raw->status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(raw->end - cancelled_at, absl::Milliseconds(500));
  // Its place is free at once...
  absl::SleepFor(absl::Milliseconds(100));
  const std::string metrics_after = GatewayMetricsText(*stack);
  EXPECT_EQ(MetricValue(metrics_after, "audiences_gateway_queue_depth{operation=\"GetAudience\"}"),
            0)
      << metrics_after;
  // ...and its slot passes unused: the upstream never sees it.
  absl::SleepFor(absl::Seconds(4));
  EXPECT_EQ(SimCount(*stack, "by_operation", "GetAudience"), 1);
  // The next caller gets the slot at once.
  const absl::Time next = absl::Now();
  grpc::Status third =
      stack->stub().GetAudience(CallerContext("c", absl::Seconds(5)).get(), req, &resp);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::NOT_FOUND) << third.error_message();
  EXPECT_LT(absl::Now() - next, absl::Seconds(1));
  EXPECT_EQ(SimCount(*stack, "by_operation", "GetAudience"), 2);
}

// --- Retries ---------------------------------------------------------------------------------

TEST(RateLimitIntegrationTest, TwentyPercent5xxOnGetsStillSucceedsWithinTheDeadline) {
  const std::string unlimited = "GetAudience=100000/1s,CreateAudience=100000/1s";
  StackOptions o;
  o.sim_args = {"--fault_5xx_rate=0.2", "--fault_ops=GetAudience", "--threads=160",
                "--rate_limits=" + unlimited};
  o.gateway_args = {"--rate_limits=" + unlimited};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  const std::string id = CreateAudienceOrDie(*stack, "Flaky reads");
  ASSERT_FALSE(id.empty());

  constexpr int kCalls = 1000;
  constexpr int kWave = 50;  // calls in flight at once
  int ok = 0;
  int unavailable = 0;  // calls whose every attempt drew a 5xx
  std::string first_error;
  for (int sent = 0; sent < kCalls; sent += kWave) {
    std::vector<std::unique_ptr<GetCall>> wave;
    for (int i = 0; i < kWave; ++i) wave.push_back(NewGet(id, "reader", absl::Seconds(5)));
    RunAll(*stack, wave);
    ok += CountOk(wave, id);
    for (const auto& c : wave) unavailable += c->status.error_code() == grpc::UNAVAILABLE;
    if (first_error.empty()) first_error = FirstError(wave);
  }
  const int64_t injected = SimCount(*stack, "faults", "5xx");
  const int64_t upstream = SimCount(*stack, "by_operation", "GetAudience");
  RecordProperty("ok", ok);
  RecordProperty("injected_5xx", static_cast<int>(injected));
  const std::string why = absl::StrCat(ok, "/", kCalls, " ok; first error: ", first_error,
                                       "; injected 5xx ", injected, ", upstream ", upstream);
  // Five attempts at a 20% fault rate leave 0.2^5 of the calls failing: 0.32 expected in 1000.
  // Every call either succeeds or ends UNAVAILABLE after its attempts (never a deadline, never a
  // refusal), and at most 4 end so (P(5 or more) is about 2e-5).
  EXPECT_EQ(ok + unavailable, kCalls) << why;
  EXPECT_LE(unavailable, 4) << why;
  EXPECT_GE(injected, 5 * unavailable) << why;  // each failed call used all five attempts
  EXPECT_GT(injected, kCalls / 10);             // the faults did happen
  EXPECT_EQ(upstream - injected, ok);           // each success is exactly one good upstream answer
}

TEST(RateLimitIntegrationTest, ConnectionResetOnGetsIsRetried) {
  const std::string unlimited = "GetAudience=100000/1s,CreateAudience=100000/1s";
  StackOptions o;
  // 5%: the retries stay well inside the retry budget (20% of requests).
  o.sim_args = {"--fault_reset_rate=0.05", "--fault_ops=GetAudience", "--threads=160",
                "--rate_limits=" + unlimited};
  o.gateway_args = {"--rate_limits=" + unlimited};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  const std::string id = CreateAudienceOrDie(*stack, "Lossy reads");
  ASSERT_FALSE(id.empty());
  constexpr int kCalls = 200;
  int ok = 0;
  std::string first_error;
  for (int sent = 0; sent < kCalls; sent += 20) {
    std::vector<std::unique_ptr<GetCall>> wave;
    for (int i = 0; i < 20; ++i) wave.push_back(NewGet(id, "reader", absl::Seconds(5)));
    RunAll(*stack, wave);
    ok += CountOk(wave, id);
    if (first_error.empty()) first_error = FirstError(wave);
  }
  const int64_t resets = SimCount(*stack, "faults", "reset");
  EXPECT_EQ(ok, kCalls) << first_error;
  EXPECT_GT(resets, 0);
  EXPECT_EQ(SimCount(*stack, "by_operation", "GetAudience"), ok + resets);
}

TEST(RateLimitIntegrationTest, WriteExecutedThen500IsNotRetriedIntoADuplicate) {
  const std::string unlimited = "CreateAudience=100000/1s,ListAudiences=100000/1s";
  StackOptions o;
  o.sim_args = {"--fault_5xx_after_rate=0.3", "--fault_ops=CreateAudience", "--fault_seed=11",
                "--rate_limits=" + unlimited};
  o.gateway_args = {"--rate_limits=" + unlimited};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  constexpr int kCalls = 40;
  int ok = 0;
  int unavailable = 0;
  for (int i = 0; i < kCalls; ++i) {
    v1::CreateAudienceRequest req = AudienceRequest(kSpace, absl::StrCat("Audience ", i));
    v1::CreateAudienceResponse resp;
    grpc::Status st = stack->stub().CreateAudience(Context().get(), req, &resp);
    if (st.ok()) {
      ++ok;
      EXPECT_FALSE(resp.audience().id().empty());
    } else {
      EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
      EXPECT_TRUE(absl::StrContains(st.error_message(), "500")) << st.error_message();
      ++unavailable;
    }
  }
  const int64_t executed_then_500 = SimCount(*stack, "faults", "5xx_after");
  EXPECT_GT(executed_then_500, 0);
  EXPECT_EQ(unavailable, executed_then_500);
  EXPECT_EQ(SimCount(*stack, "by_operation", "CreateAudience"), kCalls);  // never retried
  EXPECT_EQ(CountAudiences(*stack), ok + executed_then_500);
}

TEST(RateLimitIntegrationTest, WriteAnswered5xxOrResetBeforeExecutionIsNotRetriedEither) {
  const std::string unlimited = "CreateAudience=100000/1s,ListAudiences=100000/1s";
  for (const std::string fault : {"--fault_5xx_rate=0.3", "--fault_reset_rate=0.3"}) {
    SCOPED_TRACE(fault);
    StackOptions o;
    o.sim_args = {fault, "--fault_ops=CreateAudience", "--fault_seed=5",
                  "--rate_limits=" + unlimited};
    o.gateway_args = {"--rate_limits=" + unlimited};
    auto stack = StartOrDie(o);
    ASSERT_NE(stack, nullptr);
    constexpr int kCalls = 30;
    int ok = 0;
    for (int i = 0; i < kCalls; ++i) {
      v1::CreateAudienceRequest req = AudienceRequest(kSpace, absl::StrCat("Audience ", i));
      v1::CreateAudienceResponse resp;
      grpc::Status st = stack->stub().CreateAudience(Context().get(), req, &resp);
      if (st.ok()) {
        ++ok;
      } else {
        EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
      }
    }
    const nlohmann::json faults = stack->SimStats()["faults"];
    EXPECT_GT(faults.value("5xx", 0) + faults.value("reset", 0), 0) << faults.dump();
    // The gateway cannot tell "before" from "after": it must not retry.
    EXPECT_EQ(SimCount(*stack, "by_operation", "CreateAudience"), kCalls);
    EXPECT_EQ(ok + faults.value("5xx", 0) + faults.value("reset", 0), kCalls);
    EXPECT_EQ(CountAudiences(*stack), ok);
  }
}

// --- Garbled answers ---------------------------------------------------------------------------

TEST(RateLimitIntegrationTest, MalformedBodiesAreAClearErrorNeverAPartialAnswer) {
  StackOptions o;
  o.sim_args = {"--fault_malformed_rate=1", "--fault_ops=GetAudience,CreateAudience",
                "--rate_limits=GetAudience=100000/1s,CreateAudience=100000/1s"};
  o.gateway_args = {"--rate_limits=GetAudience=100000/1s,CreateAudience=100000/1s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);

  // A write whose answer is garbled: executed once, reported as an error (not retried).
  v1::CreateAudienceRequest create;
  create.set_space_id(kSpace);
  create.mutable_audience()->set_name("Garbled");
  create.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  create.mutable_audience()->mutable_definition()->set_query("event('Purchased').count() >= 1");
  v1::CreateAudienceResponse created;
  grpc::Status st = stack->stub().CreateAudience(Context().get(), create, &created);
  EXPECT_TRUE(st.error_code() == grpc::StatusCode::UNAVAILABLE ||
              st.error_code() == grpc::StatusCode::INTERNAL)
      << st.error_code() << ": " << st.error_message();
  EXPECT_EQ(SimCount(*stack, "by_operation", "CreateAudience"), 1);
  // It was executed: read its id back (ListAudiences is not garbled).
  v1::ListAudiencesRequest list;
  list.set_space_id(kSpace);
  v1::ListAudiencesResponse listed;
  auto list_ctx = Context();
  list_ctx->AddMetadata("cache-control", "no-cache");
  ASSERT_TRUE(stack->stub().ListAudiences(list_ctx.get(), list, &listed).ok());
  ASSERT_EQ(listed.audiences_size(), 1);
  const std::string audience = listed.audiences(0).id();

  for (int i = 0; i < 20; ++i) {
    v1::GetAudienceRequest req;
    req.set_space_id(kSpace);
    req.set_id(audience);
    v1::GetAudienceResponse resp;
    grpc::Status got = stack->stub().GetAudience(Context().get(), req, &resp);
    ASSERT_TRUE(got.error_code() == grpc::StatusCode::UNAVAILABLE ||
                got.error_code() == grpc::StatusCode::INTERNAL)
        << got.error_code() << ": " << got.error_message();
    EXPECT_TRUE(absl::StrContains(got.error_message(), "not JSON") ||
                absl::StrContains(got.error_message(), "does not fit"))
        << got.error_message();
    EXPECT_EQ(resp.ByteSizeLong(), 0u);  // nothing half-decoded reaches the caller
  }
  EXPECT_EQ(SimCount(*stack, "faults", "malformed"), 21);
}

// --- The monthly preview quota ------------------------------------------------------------------

TEST(RateLimitIntegrationTest, MonthlyPreviewQuotaRefusesAtOnceAndSurvivesARestart) {
  const std::string dir = MakeTempDir();
  const std::string quota_file = dir + "/preview-quota.json";
  const std::string limits = "--rate_limits=CreateAudiencePreview=1000/1s";
  StackOptions o;
  o.sim_args = {limits};
  o.gateway_args = {limits, "--preview_monthly_quota=3", "--preview_quota_file=" + quota_file};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);

  v1::CreateAudiencePreviewRequest req;
  req.set_space_id(kSpace);
  req.mutable_preview()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  req.mutable_preview()->mutable_definition()->set_query("event('Purchased').count() >= 1");
  auto refused_at_once = [&req](Stack& s) {
    v1::CreateAudiencePreviewResponse resp;
    const absl::Time start = absl::Now();
    grpc::Status st = s.stub().CreateAudiencePreview(Context().get(), req, &resp);
    EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
    ASSERT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
    google::rpc::QuotaFailure quota;
    ASSERT_TRUE(FindDetail(st, &quota)) << st.error_message();
    ASSERT_EQ(quota.violations_size(), 1);
    EXPECT_EQ(quota.violations(0).subject(), absl::StrCat("spaces/", kSpace));
    EXPECT_FALSE(quota.violations(0).description().empty());
  };
  for (int i = 0; i < 3; ++i) {
    v1::CreateAudiencePreviewResponse resp;
    grpc::Status st = stack->stub().CreateAudiencePreview(Context().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << i << ": " << st.error_message();
  }
  refused_at_once(*stack);
  EXPECT_EQ(SimCount(*stack, "by_operation", "CreateAudiencePreview"), 3);

  // A restart with the same state file: still refused, still no upstream call.
  auto code = stack->gateway().Stop(SIGTERM, absl::Seconds(25));
  ASSERT_TRUE(code.ok());
  StackOptions again;
  again.start_sim = false;
  again.upstream_url = stack->sim_url();
  again.gateway_args = o.gateway_args;
  auto restarted = StartOrDie(again);
  ASSERT_NE(restarted, nullptr);
  refused_at_once(*restarted);
  EXPECT_EQ(SimCount(*stack, "by_operation", "CreateAudiencePreview"), 3);
}

// Callers of SharesConfig (flood.h) on a 10/1s lane: shares by order of completion, after the
// first calls (the backlogs filling up) are skipped. Wide margins: the exact shares are the
// limiter's unit tests'; this shows the configuration reaches the lane.
std::unique_ptr<Stack> StartSharesStack() {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/config.yaml", SharesConfig());
  StackOptions o;
  o.sim_args = {"--rate_limits=GetAudience=10/1s"};
  o.gateway_args = {"--config=" + dir + "/config.yaml", "--rate_limits=GetAudience=10/1s"};
  return StartOrDie(o);
}

std::string CreateAudienceAs(Stack& s, const FloodCaller& caller) {
  auto ctx = Context();
  ctx->AddMetadata("x-api-key", caller.api_key);
  v1::CreateAudienceResponse resp;
  grpc::Status st = s.stub().CreateAudience(ctx.get(), AudienceRequest(kSpace, "shared"), &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.audience().id();
}

TEST(RateLimitIntegrationTest, CallersShareALaneByPriorityAndWeight) {
  std::unique_ptr<Stack> s = StartSharesStack();
  ASSERT_NE(s, nullptr);
  const std::string id = CreateAudienceAs(*s, kUi);
  ASSERT_FALSE(id.empty());
  {
    Flood flood(&s->stub(), kSpace, id);
    flood.Start(kHeavy, 8);
    flood.Start(kLight, 8);
    ASSERT_TRUE(flood.WaitForOk(70, absl::Seconds(60)));
    ASSERT_TRUE(flood.Stop());
    std::map<std::string, int> n = flood.OkInOrder(10, 70);  // ~45 : ~15
    EXPECT_GE(n["heavy"], 36) << n["heavy"] << " : " << n["light"];
    EXPECT_LE(n["heavy"], 54) << n["heavy"] << " : " << n["light"];
    for (const FloodCall& c : flood.Finished()) EXPECT_EQ(c.code, grpc::StatusCode::OK);
  }
  {
    Flood flood(&s->stub(), kSpace, id);
    flood.Start(kUi, 8);
    flood.Start(kHeavy, 8);
    ASSERT_TRUE(flood.WaitForOk(70, absl::Seconds(60)));
    ASSERT_TRUE(flood.Stop());
    std::map<std::string, int> n = flood.OkInOrder(10, 70);  // ~54 : ~6
    EXPECT_GE(n["heavy"], 3) << "batch keeps its share: " << n["ui"] << " : " << n["heavy"];
    EXPECT_GE(n["ui"], 45) << "interactive first: " << n["ui"] << " : " << n["heavy"];
  }
  EXPECT_EQ(SimCount(*s, "status_429"), 0);
  absl::StatusOr<std::string> metrics = s->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  for (const char* series :
       {"audiences_gateway_caller_admitted_total{caller=\"heavy\",class=\"batch\"}",
        "audiences_gateway_caller_admitted_total{caller=\"ui\",class=\"interactive\"}",
        "audiences_gateway_caller_queue_wait_seconds_count{caller=\"light\",class=\"batch\"}"}) {
    EXPECT_NE(metrics->find(series), std::string::npos) << series;
  }
}

TEST(RateLimitIntegrationTest, BadCallerWeightStopsTheGatewayWithExitCode2) {
  const std::string dir = MakeTempDir();
  for (const auto& [entry, key] : std::vector<std::pair<std::string, std::string>>{
           {"    weight: 0\n", "callers[3].weight"},
           {"    weight: 1.5\n", "callers[3].weight"},
           {"    priority: realtime\n", "callers[3].priority"}}) {
    WriteFile(
        dir + "/bad.yaml",
        SharesConfig("  - name: bad\n    secret_sha256: " + std::string(64, 'a') + "\n" + entry));
    absl::StatusOr<ProgramResult> run =
        RunProgram({SAG_GATEWAY_BIN, "--config=" + dir + "/bad.yaml", "--listen=127.0.0.1:0",
                    "--metrics_listen="});
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->code, 2) << run->output;
    EXPECT_NE(run->output.find(key), std::string::npos) << run->output;
  }
}

}  // namespace
}  // namespace sag::testing
