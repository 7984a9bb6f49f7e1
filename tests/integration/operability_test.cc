// Operability of audiences-gateway, as operators meet it: Prometheus /metrics read by a real
// Prometheus text parser, one JSON log line per call and the request id that ties the caller, the
// log and the upstream together, grpc.health.v1, graceful shutdown with calls in flight and
// queued, and the --config file, --version and --help. The gateway and segment-sim run as real
// processes on loopback (tests/common/stack.h).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

#ifndef SAG_EXPECTED_VERSION
#error "SAG_EXPECTED_VERSION (the project version) must be defined by the build"
#endif

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kService[] = "segment.audiences.v1.AudiencesService";
constexpr char kPython[] = "/usr/bin/python3";  // Debian's, where python3-prometheus-client is.
constexpr int kServing = 1;
constexpr int kNotServing = 2;

// ---- child processes --------------------------------------------------------------------------

// Waits (bounded) for `p` to exit by itself and for all its output; returns the exit code.
absl::StatusOr<int> WaitForExit(Subprocess& p, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (p.Running()) {
    if (absl::Now() > end) return absl::DeadlineExceededError("the process did not exit in time");
    absl::SleepFor(absl::Milliseconds(10));
  }
  // A needle that never appears: returns once the output reached end of file.
  (void)p.WaitForLine("\x01\x02 no such line", absl::Seconds(5));
  return p.Stop(SIGKILL, absl::Seconds(1));  // Already reaped: only reads the exit code.
}

struct RunResult {
  int code = -1;
  std::string output;
};

// Runs argv to completion (bounded); its stdout and stderr together.
absl::StatusOr<RunResult> RunToExit(std::vector<std::string> argv,
                                    std::vector<std::string> env = {},
                                    absl::Duration timeout = absl::Seconds(30)) {
  auto p = Subprocess::Start(std::move(argv), std::move(env));
  if (!p.ok()) return p.status();
  absl::StatusOr<int> code = WaitForExit(**p, timeout);
  if (!code.ok()) return code.status();
  return RunResult{*code, (*p)->Output()};
}

// ---- Prometheus exposition, read by python3-prometheus-client ---------------------------------

constexpr char kParseScript[] = R"py(
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding="utf-8").read()
out = {"types": {}, "samples": []}
for family in text_string_to_metric_families(text):
    out["types"][family.name] = family.type
    for s in family.samples:
        v = s.value if math.isfinite(s.value) else repr(s.value)
        out["samples"].append({"name": s.name, "labels": s.labels, "value": v})
print(json.dumps(out))
)py";

struct Exposition {
  // Family name as the parser reports it (counters without "_total") -> type.
  std::map<std::string, std::string> types;
  struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
  };
  std::vector<Sample> samples;

  // The sum of the samples named `name` whose labels include `labels` (0 when none).
  double Value(const std::string& name,
               const std::map<std::string, std::string>& labels = {}) const {
    double sum = 0;
    for (const Sample& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) match = false;
      }
      if (match) sum += s.value;
    }
    return sum;
  }
  bool Has(const std::string& name, const std::map<std::string, std::string>& labels) const {
    for (const Sample& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) match = false;
      }
      if (match) return true;
    }
    return false;
  }
};

// Parses `text` with prometheus_client.parser in a python3 child process. An error when the
// parser refuses the text.
absl::StatusOr<Exposition> ParseExposition(const std::string& text, const std::string& dir) {
  static int counter = 0;
  const std::string path = absl::StrCat(dir, "/metrics-", ++counter, ".txt");
  WriteFile(path, text);
  auto run = RunToExit({kPython, "-c", kParseScript, path});
  if (!run.ok()) return run.status();
  if (run->code != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("prometheus_client refused the exposition (exit ", run->code, "):\n",
                     run->output, "\n--- text ---\n", text));
  }
  nlohmann::json parsed = nlohmann::json::parse(run->output, nullptr, false);
  if (!parsed.is_object()) return absl::InternalError("parser output: " + run->output);
  Exposition e;
  for (const auto& [family, type] : parsed["types"].items()) e.types[family] = type;
  for (const auto& s : parsed["samples"]) {
    Exposition::Sample sample;
    sample.name = s["name"].get<std::string>();
    for (const auto& [k, v] : s["labels"].items()) sample.labels[k] = v.get<std::string>();
    sample.value = s["value"].is_number()
                       ? s["value"].get<double>()
                       : std::strtod(s["value"].get<std::string>().c_str(), nullptr);
    e.samples.push_back(std::move(sample));
  }
  return e;
}

absl::StatusOr<Exposition> Scrape(Stack& s) {
  auto text = s.ScrapeMetrics();
  if (!text.ok()) return text.status();
  return ParseExposition(*text, s.dir());
}

// A cheap reading of one unlabelled or labelled sample from the raw text, for polling loops:
// the value on the line that starts with `series` (exact name and label text), or -1.
double RawSample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::strtod(std::string(line.substr(series.size() + 1)).c_str(), nullptr);
    }
  }
  return -1;
}

// ---- JSON log lines ---------------------------------------------------------------------------

// Every line of `output` that is a JSON object (the gateway's log lines).
std::vector<nlohmann::json> JsonLines(const std::string& output) {
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (line.empty() || line.front() != '{') continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) lines.push_back(std::move(j));
  }
  return lines;
}

std::vector<nlohmann::json> CallLines(const std::string& output) {
  std::vector<nlohmann::json> calls;
  for (auto& j : JsonLines(output)) {
    if (j.value("msg", "") == "call") calls.push_back(std::move(j));
  }
  return calls;
}

// The call lines carrying `request_id` logged so far.
std::vector<nlohmann::json> CallLinesNow(Subprocess& gateway, const std::string& request_id) {
  std::vector<nlohmann::json> found;
  for (auto& j : CallLines(gateway.Output())) {
    if (j.value("request_id", "") == request_id) found.push_back(std::move(j));
  }
  return found;
}

// Waits (bounded) for the call line carrying `request_id`; the lines found (0, 1 or more).
std::vector<nlohmann::json> CallLinesFor(Subprocess& gateway, const std::string& request_id) {
  (void)gateway.WaitForLine(absl::StrCat("\"request_id\":\"", request_id, "\""), absl::Seconds(10));
  return CallLinesNow(gateway, request_id);
}

// The gateway's JSON line whose msg is `msg`, waiting (bounded) for it.
nlohmann::json LogLine(Subprocess& gateway, const std::string& msg,
                       absl::Duration timeout = absl::Seconds(10)) {
  auto line = gateway.WaitForLine(absl::StrCat("\"msg\":\"", msg, "\""), timeout);
  if (!line.ok()) return nlohmann::json();
  return nlohmann::json::parse(*line, nullptr, false);
}

std::string MetadataValue(const std::multimap<grpc::string_ref, grpc::string_ref>& md,
                          const std::string& key) {
  auto it = md.find(key);
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

// The x-request-id the gateway returned, from the initial metadata.
std::string ReturnedRequestId(const grpc::ClientContext& ctx) {
  return MetadataValue(ctx.GetServerInitialMetadata(), "x-request-id");
}

// The simulator's recorded requests whose raw path contains `needle`.
std::vector<nlohmann::json> SimRequestsTo(Stack& s, const std::string& needle) {
  std::vector<nlohmann::json> found;
  nlohmann::json all = s.SimRequests();
  if (!all.is_array()) return found;
  for (auto& r : all) {
    if (r.value("path", "").find(needle) != std::string::npos) found.push_back(r);
  }
  return found;
}

// A request header as the simulator recorded it (names compared case-insensitively).
std::string Header(const nlohmann::json& request, const std::string& name) {
  if (!request.contains("headers") || !request["headers"].is_object()) return "";
  for (const auto& [k, v] : request["headers"].items()) {
    if (absl::EqualsIgnoreCase(k, name) && v.is_string()) return v.get<std::string>();
  }
  return "";
}

bool IsFreshRequestId(const std::string& id) {
  return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// ---- gRPC helpers -----------------------------------------------------------------------------

// A channel with its own connection (not shared through the global subchannel pool).
std::shared_ptr<grpc::Channel> FreshChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::string HealthRequest(const std::string& service) {
  // HealthCheckRequest { string service = 1; }
  std::string bytes;
  if (!service.empty()) {
    bytes.push_back(0x0a);
    bytes.push_back(static_cast<char>(service.size()));
    bytes += service;
  }
  return bytes;
}

// HealthCheckResponse { ServingStatus status = 1; } -> the status number (0 when absent).
int HealthStatusOf(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return -1;
  std::string raw;
  for (auto& s : slices) raw.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (raw.empty()) return 0;
  if (raw.size() == 2 && raw[0] == 0x08) return raw[1];
  return -1;
}

// grpc.health.v1.Health/Check by hand (the generated health stubs are not installed): the
// ServingStatus (1 SERVING, 2 NOT_SERVING), or the call's error.
absl::StatusOr<int> HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& service,
                                absl::Duration timeout = absl::Seconds(5)) {
  grpc::GenericStub generic(channel);
  grpc::Slice slice(HealthRequest(service));
  grpc::ByteBuffer in(&slice, 1), out;
  absl::Mutex mu;
  bool done = false;
  grpc::Status status;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in, &out,
                    [&](grpc::Status s) {
                      absl::MutexLock lock(&mu);
                      status = std::move(s);
                      done = true;
                    });
  absl::MutexLock lock(&mu);
  // The deadline bounds the call; the extra seconds only guard against a lost callback.
  if (!mu.AwaitWithTimeout(absl::Condition(&done), timeout + absl::Seconds(5))) {
    ctx.TryCancel();
    mu.Await(absl::Condition(&done));
    return absl::DeadlineExceededError("health check callback never ran");
  }
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return HealthStatusOf(out);
}

v1::AudienceSummary CreateAudience(Stack& s, const std::string& name) {
  v1::CreateAudienceRequest req = AudienceRequest(kSpace, name);
  req.mutable_audience()->set_enabled(true);
  v1::CreateAudienceResponse resp;
  grpc::Status st = s.stub().CreateAudience(Context(absl::Seconds(30)).get(), req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.audience();
}

grpc::Status GetAudience(Stack& s, const std::string& id,
                         absl::Duration timeout = absl::Seconds(10),
                         const std::string& request_id = "") {
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id(id);
  v1::GetAudienceResponse resp;
  auto ctx = Context(timeout);
  if (!request_id.empty()) ctx->AddMetadata("x-request-id", request_id);
  return s.stub().GetAudience(ctx.get(), req, &resp);
}

// ================================================================================================
// Metrics
// ================================================================================================

TEST(OperabilityMetricsTest, MetricsMoveAfterCallsAndParseWithPrometheusClient) {
  StackOptions o;
  // GetAudience at 2 per second: the third call in a row waits for its slot.
  o.gateway_args = {"--rate_limits=GetAudience=2/1s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  ASSERT_GT(s.metrics_port(), 0) << s.gateway().Output();

  auto before = Scrape(s);
  ASSERT_TRUE(before.ok()) << before.status();

  v1::AudienceSummary aud = CreateAudience(s, "Metrics audience");
  ASSERT_FALSE(aud.id().empty());
  for (int i = 0; i < 3; ++i) {
    grpc::Status st = GetAudience(s, aud.id());
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_EQ(GetAudience(s, "aud_missing").error_code(), grpc::StatusCode::NOT_FOUND);
  // Listings: a miss, a hit, and a bypass (cache-control: no-cache).
  for (int i = 0; i < 3; ++i) {
    v1::ListAudiencesRequest req;
    req.set_space_id(kSpace);
    v1::ListAudiencesResponse resp;
    auto ctx = Context();
    if (i == 2) ctx->AddMetadata("cache-control", "no-cache");
    grpc::Status st = s.stub().ListAudiences(ctx.get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.audiences_size(), 1);
  }

  auto after = Scrape(s);
  ASSERT_TRUE(after.ok()) << after.status();
  auto delta = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
    return after->Value(name, labels) - before->Value(name, labels);
  };

  // Types, as the parser read them (it drops "_total" from counter family names).
  EXPECT_EQ(after->types["audiences_gateway_calls"], "counter");
  EXPECT_EQ(after->types["audiences_gateway_call_duration_seconds"], "histogram");
  EXPECT_EQ(after->types["audiences_gateway_calls_in_flight"], "gauge");
  EXPECT_EQ(after->types["audiences_gateway_upstream_requests"], "counter");
  EXPECT_EQ(after->types["audiences_gateway_upstream_duration_seconds"], "histogram");
  EXPECT_EQ(after->types["audiences_gateway_queue_wait_seconds"], "histogram");
  EXPECT_EQ(after->types["audiences_gateway_queue_depth"], "gauge");
  EXPECT_EQ(after->types["audiences_gateway_cache_requests"], "counter");
  EXPECT_EQ(after->types["audiences_gateway_build_info"], "gauge");

  // Calls by RPC and code.
  const std::string calls = "audiences_gateway_calls_total";
  EXPECT_EQ(delta(calls, {{"rpc", "CreateAudience"}, {"code", "OK"}}), 1);
  EXPECT_EQ(delta(calls, {{"rpc", "GetAudience"}, {"code", "OK"}}), 3);
  EXPECT_EQ(delta(calls, {{"rpc", "GetAudience"}, {"code", "NOT_FOUND"}}), 1);
  EXPECT_EQ(delta(calls, {{"rpc", "ListAudiences"}, {"code", "OK"}}), 3);
  EXPECT_EQ(after->Value("audiences_gateway_calls_in_flight"), 0);

  // Call latency histogram: a count per call, +Inf bucket = count, sum > 0.
  const std::string dur = "audiences_gateway_call_duration_seconds";
  EXPECT_EQ(delta(dur + "_count", {{"rpc", "GetAudience"}}), 4);
  EXPECT_EQ(delta(dur + "_count", {{"rpc", "ListAudiences"}}), 3);
  EXPECT_EQ(after->Value(dur + "_bucket", {{"rpc", "GetAudience"}, {"le", "+Inf"}}),
            after->Value(dur + "_count", {{"rpc", "GetAudience"}}));
  EXPECT_GT(delta(dur + "_sum", {{"rpc", "GetAudience"}}), 0);

  // Upstream requests by operation and HTTP status: the cache hit made none.
  const std::string up = "audiences_gateway_upstream_requests_total";
  EXPECT_EQ(delta(up, {{"operation", "GetAudience"}, {"status", "200"}}), 3);
  EXPECT_EQ(delta(up, {{"operation", "GetAudience"}, {"status", "404"}}), 1);
  EXPECT_EQ(delta(up, {{"operation", "ListAudiences"}, {"status", "200"}}), 2);
  EXPECT_EQ(delta(up, {{"operation", "CreateAudience"}}), 1);
  EXPECT_EQ(
      delta("audiences_gateway_upstream_duration_seconds_count", {{"operation", "GetAudience"}}),
      4);
  EXPECT_EQ(delta("audiences_gateway_upstream_429_total", {}), 0);

  // Queue wait: one observation per admitted call, and the 2/1s limit made some wait.
  const std::string wait = "audiences_gateway_queue_wait_seconds";
  EXPECT_EQ(delta(wait + "_count", {{"operation", "GetAudience"}}), 4);
  EXPECT_GT(delta(wait + "_sum", {{"operation", "GetAudience"}}), 0.2);
  EXPECT_TRUE(after->Has("audiences_gateway_queue_depth", {{"operation", "GetAudience"}}));
  EXPECT_EQ(after->Value("audiences_gateway_queue_depth", {{"operation", "GetAudience"}}), 0);

  // Cache outcomes of the listings.
  const std::string cache = "audiences_gateway_cache_requests_total";
  EXPECT_EQ(delta(cache, {{"rpc", "ListAudiences"}, {"result", "miss"}}), 1);
  EXPECT_EQ(delta(cache, {{"rpc", "ListAudiences"}, {"result", "hit"}}), 1);
  EXPECT_EQ(delta(cache, {{"rpc", "ListAudiences"}, {"result", "bypass"}}), 1);
  EXPECT_GE(after->Value("audiences_gateway_cache_entries"), 1);
  EXPECT_GT(after->Value("audiences_gateway_cache_bytes"), 0);

  // Build info: 1, with the version the binary reports.
  EXPECT_EQ(after->Value("audiences_gateway_build_info", {{"version", SAG_EXPECTED_VERSION}}), 1);
}

TEST(OperabilityMetricsTest, MetricsEndpointServesOnlyMetrics) {
  auto stack = StartOrDie();
  ASSERT_NE(stack, nullptr);
  ASSERT_GT(stack->metrics_port(), 0);
  auto text = stack->ScrapeMetrics();
  ASSERT_TRUE(text.ok()) << text.status();
  // Families with labels appear once they have a child; these two are there from the start.
  EXPECT_TRUE(absl::StrContains(*text, "# TYPE audiences_gateway_calls_in_flight gauge\n"));
  EXPECT_TRUE(absl::StrContains(*text, "# TYPE audiences_gateway_build_info gauge\n"));
  // Every line is a comment, blank, or a sample; the whole text parses.
  auto parsed = ParseExposition(*text, stack->dir());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // The parser itself can fail: a sample line without a value is refused.
  auto broken = ParseExposition(*text + "audiences_gateway_calls_total{rpc=\"x\"\n", stack->dir());
  EXPECT_FALSE(broken.ok());
  // Other paths are not served.
  httplib::Client client("127.0.0.1", stack->metrics_port());
  client.set_read_timeout(10, 0);
  auto other = client.Get("/debug");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

// ================================================================================================
// Logs
// ================================================================================================

void ExpectCallLineShape(const nlohmann::json& line) {
  ASSERT_TRUE(line.is_object());
  ASSERT_TRUE(line.contains("time") && line["time"].is_string()) << line.dump();
  // RFC 3339, UTC, milliseconds: 2024-05-01T12:00:00.123Z
  absl::Time parsed;
  std::string error;
  const std::string time = line["time"].get<std::string>();
  EXPECT_TRUE(time.size() == 24 && time.back() == 'Z' && time[19] == '.' &&
              absl::ParseTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone(), &parsed, &error))
      << line.dump() << " " << error;
  EXPECT_LT(absl::AbsDuration(absl::Now() - parsed), absl::Minutes(5)) << line.dump();
  for (const char* key :
       {"level", "msg", "rpc", "caller", "workspace", "space", "code", "cache", "request_id"}) {
    EXPECT_TRUE(line.contains(key) && line[key].is_string()) << key << " in " << line.dump();
  }
  for (const char* key : {"latency_ms", "queue_wait_ms", "retries"}) {
    EXPECT_TRUE(line.contains(key) && line[key].is_number()) << key << " in " << line.dump();
  }
  EXPECT_TRUE(line.contains("upstream_status") &&
              (line["upstream_status"].is_number_integer() || line["upstream_status"].is_null()))
      << line.dump();
  EXPECT_EQ(line.value("msg", ""), "call");
  EXPECT_EQ(line.value("workspace", ""), "default");
  EXPECT_GE(line.value("latency_ms", -1.0), 0.0);
}

TEST(OperabilityLogTest, EachCallLogsOneJsonLineAndTheRequestIdTravelsEverywhere) {
  auto stack = StartOrDie();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;

  // The start-up line.
  nlohmann::json started = LogLine(s.gateway(), "started");
  ASSERT_TRUE(started.is_object()) << s.gateway().Output();
  EXPECT_EQ(started.value("level", ""), "info");
  EXPECT_EQ(started.value("upstream", ""), s.sim_url());
  // One workspace, "default": `workspace` or a `workspaces` list.
  const nlohmann::json workspaces = started.contains("workspaces")
                                        ? started["workspaces"]
                                        : nlohmann::json::array({started.value("workspace", "")});
  EXPECT_EQ(workspaces, nlohmann::json::array({"default"})) << started.dump();
  EXPECT_EQ(started.value("version", ""), SAG_EXPECTED_VERSION);
  EXPECT_EQ(started.value("listen", ""), s.gateway_address());
  EXPECT_TRUE(absl::StartsWith(started.value("metrics", ""), "127.0.0.1:"));

  // 1. The caller sends an id: echoed in metadata, logged, sent upstream.
  const std::string given = "ops-req-0001.A:b_c";
  {
    v1::GetAudienceRequest req;
    req.set_space_id(kSpace);
    req.set_id("aud_logged404");
    v1::GetAudienceResponse resp;
    auto ctx = Context();
    ctx->AddMetadata("x-request-id", given);
    ctx->AddMetadata("x-caller-id", "ops-team");
    grpc::Status st = s.stub().GetAudience(ctx.get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    std::string returned = ReturnedRequestId(*ctx);
    if (returned.empty()) {
      ADD_FAILURE() << "x-request-id missing from the initial metadata of a failed call; trailing: "
                    << MetadataValue(ctx->GetServerTrailingMetadata(), "x-request-id");
    }
    EXPECT_EQ(returned, given);
    auto lines = CallLinesFor(s.gateway(), given);
    ASSERT_EQ(lines.size(), 1u) << s.gateway().Output();
    ExpectCallLineShape(lines[0]);
    EXPECT_EQ(lines[0].value("level", ""), "info");
    EXPECT_EQ(lines[0].value("rpc", ""), "GetAudience");
    EXPECT_EQ(lines[0].value("caller", ""), "ops-team");
    EXPECT_EQ(lines[0].value("space", ""), kSpace);
    EXPECT_EQ(lines[0].value("code", ""), "NOT_FOUND");
    EXPECT_EQ(lines[0]["upstream_status"], 404);
    EXPECT_EQ(lines[0].value("cache", "?"), "");
    EXPECT_EQ(lines[0].value("retries", -1), 0);
    EXPECT_FALSE(lines[0].value("error", "").empty()) << lines[0].dump();
    auto upstream = SimRequestsTo(s, "aud_logged404");
    ASSERT_EQ(upstream.size(), 1u);
    EXPECT_EQ(Header(upstream[0], "X-Request-Id"), given);
  }

  // 2. No id: a fresh one, the same in all three places.
  std::string fresh;
  {
    v1::CreateAudienceRequest req;
    req.set_space_id(kSpace);
    req.mutable_audience()->set_name("Logged audience");
    req.mutable_audience()->set_enabled(true);
    req.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
    req.mutable_audience()->mutable_definition()->set_query("event('Signed Up').count() >= 1");
    v1::CreateAudienceResponse resp;
    auto ctx = Context();
    grpc::Status st = s.stub().CreateAudience(ctx.get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    fresh = ReturnedRequestId(*ctx);
    EXPECT_TRUE(IsFreshRequestId(fresh)) << "'" << fresh << "'";
    auto lines = CallLinesFor(s.gateway(), fresh);
    ASSERT_EQ(lines.size(), 1u) << s.gateway().Output();
    ExpectCallLineShape(lines[0]);
    EXPECT_EQ(lines[0].value("rpc", ""), "CreateAudience");
    EXPECT_EQ(lines[0].value("code", ""), "OK");
    EXPECT_FALSE(lines[0]["upstream_status"].is_null());
    EXPECT_FALSE(lines[0].contains("error")) << lines[0].dump();
    EXPECT_FALSE(lines[0].value("caller", "").empty());  // The peer when no x-caller-id.
    auto upstream = SimRequestsTo(s, "/audiences");
    ASSERT_FALSE(upstream.empty());
    EXPECT_EQ(Header(upstream.back(), "X-Request-Id"), fresh);
  }

  // 3. An unfit id (spaces, too long) is replaced, never forwarded.
  for (const std::string& bad : {std::string("has spaces in it"), std::string(200, 'x')}) {
    auto ctx = Context();
    ctx->AddMetadata("x-request-id", bad);
    v1::GetAudienceRequest req;
    req.set_space_id(kSpace);
    req.set_id("aud_badid");
    v1::GetAudienceResponse resp;
    (void)s.stub().GetAudience(ctx.get(), req, &resp);
    std::string returned = ReturnedRequestId(*ctx);
    EXPECT_TRUE(IsFreshRequestId(returned)) << "'" << returned << "'";
    EXPECT_EQ(CallLinesFor(s.gateway(), returned).size(), 1u);
    auto upstream = SimRequestsTo(s, "aud_badid");
    ASSERT_FALSE(upstream.empty());
    EXPECT_EQ(Header(upstream.back(), "X-Request-Id"), returned);
  }

  // 4. Listings log their cache outcome; a hit has no upstream status.
  std::vector<std::string> listing_ids;
  for (int i = 0; i < 2; ++i) {
    v1::ListAudiencesRequest req;
    req.set_space_id(kSpace);
    v1::ListAudiencesResponse resp;
    auto ctx = Context();
    ASSERT_TRUE(s.stub().ListAudiences(ctx.get(), req, &resp).ok());
    listing_ids.push_back(ReturnedRequestId(*ctx));
  }
  auto miss = CallLinesFor(s.gateway(), listing_ids[0]);
  auto hit = CallLinesFor(s.gateway(), listing_ids[1]);
  ASSERT_EQ(miss.size(), 1u);
  ASSERT_EQ(hit.size(), 1u);
  ExpectCallLineShape(hit[0]);
  EXPECT_EQ(miss[0].value("cache", ""), "miss");
  EXPECT_EQ(miss[0]["upstream_status"], 200);
  EXPECT_EQ(hit[0].value("cache", ""), "hit");
  EXPECT_TRUE(hit[0]["upstream_status"].is_null()) << hit[0].dump();

  // One call line per call, and every JSON line has time, level and msg.
  EXPECT_EQ(CallLines(s.gateway().Output()).size(), 6u) << s.gateway().Output();
  for (const auto& line : JsonLines(s.gateway().Output())) {
    EXPECT_TRUE(line.contains("time") && line.contains("level") && line.contains("msg"))
        << line.dump();
  }
}

TEST(OperabilityLogTest, QueueWaitIsLoggedForACallThatWaited) {
  StackOptions o;
  o.gateway_args = {"--rate_limits=GetAudience=1/1s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  EXPECT_EQ(GetAudience(*stack, "aud_q1", absl::Seconds(10), "queue-first").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetAudience(*stack, "aud_q2", absl::Seconds(10), "queue-second").error_code(),
            grpc::StatusCode::NOT_FOUND);
  auto second = CallLinesFor(stack->gateway(), "queue-second");
  ASSERT_EQ(second.size(), 1u) << stack->gateway().Output();
  // The second call waited for the next slot, about a second.
  EXPECT_GT(second[0].value("queue_wait_ms", 0.0), 300.0) << second[0].dump();
  EXPECT_GE(second[0].value("latency_ms", 0.0), second[0].value("queue_wait_ms", 0.0));
}

TEST(OperabilityLogTest, WarnLevelSuppressesInfoCallLines) {
  StackOptions o;
  o.sim_args = {"--latency=500ms"};
  // Room enough that the short call is not refused for its rate-limit wait (RESOURCE_EXHAUSTED).
  o.gateway_args = {"--log_level=warn", "--rate_limits=GetAudience=100/1s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  // An info-level call (NOT_FOUND), then a warn-level one (deadline exceeded).
  grpc::Status info = GetAudience(s, "aud_info", absl::Seconds(10), "level-info");
  EXPECT_EQ(info.error_code(), grpc::StatusCode::NOT_FOUND) << info.error_message();
  grpc::Status slow = GetAudience(s, "aud_warn", absl::Milliseconds(100), "level-warn");
  EXPECT_EQ(slow.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << slow.error_message();
  auto warn = CallLinesFor(s.gateway(), "level-warn");
  ASSERT_EQ(warn.size(), 1u) << s.gateway().Output();
  EXPECT_EQ(warn[0].value("level", ""), "warn");
  // The info call finished before the warn call started, so its line would be there by now.
  EXPECT_TRUE(CallLinesNow(s.gateway(), "level-info").empty()) << s.gateway().Output();
  for (const auto& line : JsonLines(s.gateway().Output())) {
    EXPECT_NE(line.value("level", ""), "info") << line.dump();
  }
}

TEST(OperabilityLogTest, TheTokenNeverAppearsInOutputOrErrors) {
  const std::string token = "sekret-token-6b86b273ff34fce1";
  std::vector<std::string> messages;
  std::string output;
  {
    // 401: the simulator accepts another token.
    StackOptions o;
    o.token = token;
    o.sim_token = "the-other-token-d4735e3a265e";
    o.gateway_args = {"--log_level=debug"};
    auto stack = StartOrDie(o);
    ASSERT_NE(stack, nullptr);
    grpc::Status st = GetAudience(*stack, "aud_401", absl::Seconds(10), "token-401");
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
    messages.push_back(st.error_message());
    EXPECT_EQ(CallLinesFor(stack->gateway(), "token-401").size(), 1u);
    auto code = stack->gateway().Stop(SIGTERM, absl::Seconds(25));
    EXPECT_TRUE(code.ok() && *code == 0);
    output += stack->gateway().Output();
  }
  {
    // 404 and 422 with the right token.
    StackOptions o;
    o.token = token;
    o.sim_token = token;
    o.gateway_args = {"--log_level=debug"};
    auto stack = StartOrDie(o);
    ASSERT_NE(stack, nullptr);
    grpc::Status st = GetAudience(*stack, "aud_404", absl::Seconds(10), "token-404");
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    messages.push_back(st.error_message());
    v1::CreateAudienceRequest req;
    req.set_space_id(kSpace);
    req.mutable_audience()->set_name("");
    req.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
    v1::CreateAudienceResponse resp;
    auto ctx = Context();
    ctx->AddMetadata("x-request-id", "token-422");
    st = stack->stub().CreateAudience(ctx.get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    messages.push_back(st.error_message());
    messages.push_back(st.error_details());
    auto lines = CallLinesFor(stack->gateway(), "token-422");
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0]["upstream_status"], 422);
    EXPECT_EQ(CallLinesFor(stack->gateway(), "token-404").size(), 1u);
    auto code = stack->gateway().Stop(SIGTERM, absl::Seconds(25));
    EXPECT_TRUE(code.ok() && *code == 0);
    output += stack->gateway().Output();
  }
  ASSERT_TRUE(absl::StrContains(output, "\"msg\":\"stopped\"")) << output;
  EXPECT_FALSE(absl::StrContains(output, token)) << output;
  for (const std::string& m : messages) EXPECT_FALSE(absl::StrContains(m, token)) << m;
}

// ================================================================================================
// Health
// ================================================================================================

TEST(OperabilityHealthTest, ServingForTheServerAndTheServiceWhenATokenIsLoaded) {
  auto stack = StartOrDie();
  ASSERT_NE(stack, nullptr);
  for (const std::string service : {"", kService}) {
    auto status = HealthCheck(stack->channel(), service);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, kServing) << "service '" << service << "'";
  }
  auto unknown = HealthCheck(stack->channel(), "no.such.Service");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
}

TEST(OperabilityHealthTest, NoTokenIsNotServingAndCallsAreUnavailableUntilOneIsWritten) {
  // The token file holds only a newline.
  const std::string dir = MakeTempDir();
  const std::string token_file = dir + "/token";
  WriteFile(token_file, "\n");
  StackOptions o;
  o.token = "";  // No token file from the stack: ours.
  o.sim_token = "late-token-4e07408562be";
  o.gateway_args = {"--token_file=" + token_file};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  for (const std::string service : {"", kService}) {
    auto status = HealthCheck(s.channel(), service);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, kNotServing) << "service '" << service << "'";
  }
  grpc::Status st = GetAudience(s, "aud_notoken");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "workspace 'default'")) << st.error_message();
  EXPECT_EQ(SimRequestsTo(s, "aud_notoken").size(), 0u);

  // A token arrives: SERVING within a few seconds, and calls reach the upstream.
  const std::string token = o.sim_token;
  WriteFile(token_file, token + "\n");
  absl::StatusOr<int> status;
  const absl::Time end = absl::Now() + absl::Seconds(10);
  do {
    status = HealthCheck(s.channel(), kService);
    if (status.ok() && *status == kServing) break;
    absl::SleepFor(absl::Milliseconds(100));
  } while (absl::Now() < end);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, kServing) << s.gateway().Output();
  EXPECT_EQ(GetAudience(s, "aud_withtoken").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(absl::StrContains(s.gateway().Output(), token));
  // The load is counted.
  auto metrics = Scrape(s);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_GE(metrics->Value("audiences_gateway_token_reloads_total",
                           {{"workspace", "default"}, {"result", "ok"}}),
            1);
}

TEST(OperabilityHealthTest, NotServingFromTheFirstSigtermWhileACallIsInFlight) {
  StackOptions o;
  o.sim_args = {"--latency=2s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  ASSERT_GT(s.metrics_port(), 0);

  // A Watch stream on its own connection, opened before the signal.
  auto watch_channel = FreshChannel(s.gateway_address());
  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::Slice slice(HealthRequest(kService));
  grpc::ByteBuffer watch_request(&slice, 1);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> watch(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
          watch_channel.get(),
          grpc::internal::RpcMethod("/grpc.health.v1.Health/Watch",
                                    grpc::internal::RpcMethod::SERVER_STREAMING),
          &watch_ctx, watch_request));
  grpc::ByteBuffer update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(HealthStatusOf(update), kServing);

  // A slow call in flight.
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_inflight");
  v1::GetAudienceResponse resp;
  auto ctx = Context(absl::Seconds(20));
  absl::Mutex mu;
  bool done = false;
  grpc::Status slow_status;
  s.stub().async()->GetAudience(ctx.get(), &req, &resp, [&](grpc::Status st) {
    absl::MutexLock lock(&mu);
    slow_status = std::move(st);
    done = true;
  });
  // Wait until the gateway has it (bounded).
  const absl::Time end = absl::Now() + absl::Seconds(10);
  double in_flight = 0;
  while (absl::Now() < end) {
    auto text = s.ScrapeMetrics();
    if (text.ok()) in_flight = RawSample(*text, "audiences_gateway_calls_in_flight");
    if (in_flight >= 1) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_GE(in_flight, 1);

  ASSERT_EQ(kill(s.gateway().pid(), SIGTERM), 0);
  // The watcher hears NOT_SERVING.
  ASSERT_TRUE(watch->Read(&update)) << "the Watch stream ended without NOT_SERVING";
  EXPECT_EQ(HealthStatusOf(update), kNotServing);
  watch_ctx.TryCancel();
  (void)watch->Finish();

  // Another channel: NOT_SERVING, or no new call accepted at all; never SERVING. Not accepted
  // is UNAVAILABLE (the listener is closed) or CANCELLED (gRPC's Shutdown cancels a call that
  // arrived but was not yet matched to a method: seen on a loaded machine).
  auto other = HealthCheck(FreshChannel(s.gateway_address()), kService, absl::Seconds(2));
  if (other.ok()) {
    EXPECT_EQ(*other, kNotServing);
  } else {
    const absl::StatusCode code = other.status().code();
    EXPECT_TRUE(code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kCancelled)
        << other.status();
  }

  // The call in flight still gets its upstream answer.
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(20)));
    EXPECT_EQ(slow_status.error_code(), grpc::StatusCode::NOT_FOUND) << slow_status.error_message();
  }
  auto code = WaitForExit(s.gateway(), absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

// ================================================================================================
// Graceful shutdown
// ================================================================================================

struct AsyncCall {
  grpc::ClientContext ctx;
  v1::GetAudienceRequest request;
  v1::GetAudienceResponse response;
  grpc::Status status;
  bool done = false;
};

// The upstream answers in 2 s and GetAudience is limited to 100/1s on both sides: when SIGTERM
// comes, calls are waiting upstream and in the gateway's rate-limit queue.
TEST(OperabilityShutdownTest, SigtermLetsTwoHundredInFlightAndQueuedCallsFinishThenExitsZero) {
  constexpr int kCalls = 200;
  const absl::Duration grace = absl::Seconds(20);
  StackOptions o;
  o.sim_args = {"--latency=2s", "--rate_limits=GetAudience=100/1s", "--threads=256"};
  o.gateway_args = {"--rate_limits=GetAudience=100/1s", "--upstream_max_connections=128",
                    absl::StrCat("--shutdown_grace=", absl::FormatDuration(grace))};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  ASSERT_GT(s.metrics_port(), 0);
  v1::AudienceSummary aud = CreateAudience(s, "Shutdown audience");
  ASSERT_FALSE(aud.id().empty());

  absl::Mutex mu;
  int finished = 0;
  std::vector<std::unique_ptr<AsyncCall>> calls;
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<AsyncCall>();
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    call->ctx.AddMetadata("x-request-id", absl::StrCat("drain-", i));
    call->request.set_space_id(kSpace);
    call->request.set_id(aud.id());
    AsyncCall* raw = call.get();
    s.stub().async()->GetAudience(&raw->ctx, &raw->request, &raw->response,
                                  [raw, &mu, &finished](grpc::Status st) {
                                    absl::MutexLock lock(&mu);
                                    raw->status = std::move(st);
                                    raw->done = true;
                                    ++finished;
                                  });
    calls.push_back(std::move(call));
  }

  // Wait (bounded) until the gateway has received every call (finished or not) and some wait in
  // the rate-limit queue; then most are still in flight or queued (the upstream takes 2 s).
  double in_flight = 0, queued = 0;
  int finished_before = 0;
  const absl::Time end = absl::Now() + absl::Seconds(15);
  while (absl::Now() < end) {
    auto text = s.ScrapeMetrics();
    if (text.ok()) {
      in_flight = RawSample(*text, "audiences_gateway_calls_in_flight");
      queued = RawSample(*text, "audiences_gateway_queue_depth{operation=\"GetAudience\"}");
    }
    {
      absl::MutexLock lock(&mu);
      finished_before = finished;
    }
    if (in_flight + finished_before >= kCalls && queued > 0) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GE(in_flight + finished_before, kCalls);
  ASSERT_GT(queued, 0) << "no call was queued when SIGTERM was sent";
  ASSERT_GE(in_flight, kCalls / 2) << "too few calls left in flight for the test to mean much";

  const absl::Time sigterm_at = absl::Now();
  ASSERT_EQ(kill(s.gateway().pid(), SIGTERM), 0);
  nlohmann::json shutting = LogLine(s.gateway(), "shutting down");
  ASSERT_TRUE(shutting.is_object()) << s.gateway().Output();
  EXPECT_EQ(shutting.value("grace", ""), "20s");

  // New calls are refused. Health turns NOT_SERVING before the server stops taking calls, so
  // poll (bounded) on fresh connections until the refusal shows.
  grpc::Status refused;
  const absl::Time refuse_end = absl::Now() + absl::Seconds(5);
  int accepted_after_sigterm = 0;
  while (absl::Now() < refuse_end) {
    auto channel = FreshChannel(s.gateway_address());
    auto stub = v1::AudiencesService::NewStub(channel);
    v1::GetAudienceRequest req;
    req.set_space_id(kSpace);
    req.set_id(aud.id());
    v1::GetAudienceResponse resp;
    auto ctx = Context(absl::Seconds(3));
    refused = stub->GetAudience(ctx.get(), req, &resp);
    if (refused.error_code() == grpc::StatusCode::UNAVAILABLE) break;
    ++accepted_after_sigterm;
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_LE(accepted_after_sigterm, 1) << "new calls kept being accepted after SIGTERM";

  // Every call completes OK.
  {
    absl::MutexLock lock(&mu);
    auto all_done = [&finished] { return finished == kCalls; };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_done), grace + absl::Seconds(10)))
        << finished << " of " << kCalls << " finished";
  }
  int ok = 0;
  std::map<std::string, int> errors;
  for (const auto& call : calls) {
    absl::MutexLock lock(&mu);
    if (!call->done) continue;
    if (call->status.ok() && call->response.audience().id() == aud.id()) {
      ++ok;
    } else {
      ++errors[absl::StrCat(call->status.error_code(), " ", call->status.error_message())];
    }
  }
  EXPECT_EQ(ok, kCalls);
  for (const auto& [error, count] : errors) ADD_FAILURE() << count << " x " << error;

  // Then the process exits 0, within the grace period.
  auto code = WaitForExit(s.gateway(), grace + absl::Seconds(5));
  ASSERT_TRUE(code.ok()) << code.status();
  const absl::Duration took = absl::Now() - sigterm_at;
  EXPECT_EQ(*code, 0) << s.gateway().Output().substr(0, 4000);
  EXPECT_LT(took, grace) << "exit took " << took;
  EXPECT_TRUE(absl::StrContains(s.gateway().Output(), "\"msg\":\"stopped\""));
}

TEST(OperabilityShutdownTest, SecondSignalExitsAtOnceWithNonZero) {
  StackOptions o;
  o.sim_args = {"--latency=10s"};
  o.gateway_args = {"--shutdown_grace=30s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  // A call that holds the drain open for 10 s.
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_slow");
  v1::GetAudienceResponse resp;
  auto ctx = Context(absl::Seconds(30));
  absl::Mutex mu;
  bool done = false;
  s.stub().async()->GetAudience(ctx.get(), &req, &resp, [&](grpc::Status) {
    absl::MutexLock lock(&mu);
    done = true;
  });
  const absl::Time end = absl::Now() + absl::Seconds(10);
  double in_flight = 0;
  while (absl::Now() < end) {
    auto text = s.ScrapeMetrics();
    if (text.ok()) in_flight = RawSample(*text, "audiences_gateway_calls_in_flight");
    if (in_flight >= 1) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_GE(in_flight, 1);

  ASSERT_EQ(kill(s.gateway().pid(), SIGTERM), 0);
  ASSERT_TRUE(LogLine(s.gateway(), "shutting down").is_object()) << s.gateway().Output();
  // Still draining.
  EXPECT_TRUE(s.gateway().Running());
  const absl::Time second_at = absl::Now();
  ASSERT_EQ(kill(s.gateway().pid(), SIGTERM), 0);
  auto code = WaitForExit(s.gateway(), absl::Seconds(5));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_NE(*code, 0);
  EXPECT_LT(absl::Now() - second_at, absl::Seconds(2));
  EXPECT_TRUE(absl::StrContains(s.gateway().Output(), "second signal")) << s.gateway().Output();
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(15)));
}

TEST(OperabilityShutdownTest, SigintDrainsLikeSigterm) {
  auto stack = StartOrDie();
  ASSERT_NE(stack, nullptr);
  EXPECT_EQ(GetAudience(*stack, "aud_x").error_code(), grpc::StatusCode::NOT_FOUND);
  auto code = stack->gateway().Stop(SIGINT, absl::Seconds(25));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  nlohmann::json line = LogLine(stack->gateway(), "shutting down");
  ASSERT_TRUE(line.is_object());
  EXPECT_EQ(line.value("signal", 0), SIGINT);
}

// ================================================================================================
// Configuration, --version, --help
// ================================================================================================

TEST(OperabilityConfigTest, ConfigFileSetsFlagsAndTheCommandLineWins) {
  auto stack = StartOrDie();  // Its simulator is the upstream; its token file is reused.
  ASSERT_NE(stack, nullptr);
  const std::string config = stack->dir() + "/gateway.yaml";
  WriteFile(config, absl::StrCat("# audiences-gateway configuration\n"
                                 "listen: 127.0.0.1:1          # the command line overrides it\n"
                                 "metrics_listen: 127.0.0.1:0\n"
                                 "upstream_url: ",
                                 stack->sim_url(),
                                 "\n"
                                 "token_file: ",
                                 stack->token_file(),
                                 "\n"
                                 "log_level: error             # the command line overrides it\n"
                                 "shutdown_grace: 7s\n"
                                 "rate_limits: [GetAudience=30/1m, default=100/1m]\n"));
  auto gw = Subprocess::Start(
      {SAG_GATEWAY_BIN, "--config=" + config, "--listen=127.0.0.1:0", "--log_level=info"});
  ASSERT_TRUE(gw.ok()) << gw.status();
  Subprocess& g = **gw;
  auto listening = g.WaitForLine("listening on", absl::Seconds(20));
  ASSERT_TRUE(listening.ok()) << listening.status();
  const int port = PortFromLine(*listening);
  EXPECT_NE(port, 1);
  ASSERT_GT(port, 0);
  // log_level=info (command line) wins over the file's error: the started line is there.
  nlohmann::json started = LogLine(g, "started");
  ASSERT_TRUE(started.is_object()) << g.Output();
  // From the file: the metrics address and the upstream.
  EXPECT_TRUE(absl::StartsWith(started.value("metrics", ""), "127.0.0.1:")) << started.dump();
  EXPECT_NE(started.value("metrics", ""), "127.0.0.1:0");
  EXPECT_EQ(started.value("upstream", ""), stack->sim_url());
  // A call reaches the simulator with the file's token file.
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  auto stub = v1::AudiencesService::NewStub(channel);
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_fromconfig");
  v1::GetAudienceResponse resp;
  EXPECT_EQ(stub->GetAudience(Context().get(), req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(SimRequestsTo(*stack, "aud_fromconfig").size(), 1u);
  // shutdown_grace from the file.
  auto code = g.Stop(SIGTERM, absl::Seconds(20));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
  nlohmann::json shutting = LogLine(g, "shutting down");
  ASSERT_TRUE(shutting.is_object()) << g.Output();
  EXPECT_EQ(shutting.value("grace", ""), "7s");
}

TEST(OperabilityConfigTest, JsonConfigSetsTheLogLevel) {
  StackOptions o;
  o.sim_args = {"--latency=300ms"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  const std::string config = stack->dir() + "/gateway.json";
  nlohmann::json j = {{"listen", "127.0.0.1:0"},
                      {"metrics_listen", ""},
                      {"upstream_url", stack->sim_url()},
                      {"token_file", stack->token_file()},
                      {"rate_limits", {"GetAudience=100/1s"}},
                      {"log_level", "warn"}};
  WriteFile(config, j.dump(2));
  auto gw = Subprocess::Start({SAG_GATEWAY_BIN, "--config=" + config});
  ASSERT_TRUE(gw.ok());
  Subprocess& g = **gw;
  auto listening = g.WaitForLine("listening on", absl::Seconds(20));
  ASSERT_TRUE(listening.ok()) << listening.status();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", PortFromLine(*listening)),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::AudiencesService::NewStub(channel);
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_cfg");
  v1::GetAudienceResponse resp;
  {
    auto ctx = Context();
    ctx->AddMetadata("x-request-id", "cfg-info");
    EXPECT_EQ(stub->GetAudience(ctx.get(), req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    auto ctx = Context(absl::Milliseconds(100));
    ctx->AddMetadata("x-request-id", "cfg-warn");
    EXPECT_EQ(stub->GetAudience(ctx.get(), req, &resp).error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  EXPECT_EQ(CallLinesFor(g, "cfg-warn").size(), 1u) << g.Output();
  EXPECT_TRUE(CallLinesNow(g, "cfg-info").empty()) << g.Output();
  EXPECT_FALSE(absl::StrContains(g.Output(), "\"msg\":\"started\"")) << g.Output();
  auto code = g.Stop(SIGTERM, absl::Seconds(20));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

TEST(OperabilityConfigTest, UnknownKeyOrBadValueExitsTwoNamingTheKey) {
  const std::string dir = MakeTempDir();
  struct Case {
    std::string text;
    std::string names;
  };
  for (const Case& c : {Case{"listen: 127.0.0.1:0\nshutdown_grac: 5s\n", "shutdown_grac"},
                        Case{"log_level: loud\n", "log_level"},
                        Case{"listen: 127.0.0.1:0\ntoken: abc\n", "'token'"}}) {
    const std::string config = dir + "/bad.yaml";
    WriteFile(config, c.text);
    auto run = RunToExit({SAG_GATEWAY_BIN, "--config=" + config, "--metrics_listen="});
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->code, 2) << run->output;
    EXPECT_TRUE(absl::StrContains(run->output, c.names)) << run->output;
    EXPECT_FALSE(absl::StrContains(run->output, "listening on")) << run->output;
  }
  // The suggestion for a near miss.
  WriteFile(dir + "/typo.yaml", "shutdown_grac: 5s\n");
  auto run = RunToExit({SAG_GATEWAY_BIN, "--config=" + dir + "/typo.yaml", "--metrics_listen="});
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(absl::StrContains(run->output, "shutdown_grace")) << run->output;
}

TEST(OperabilityConfigTest, VersionPrintsTheVersionAndExitsZero) {
  auto run = RunToExit({SAG_GATEWAY_BIN, "--version"});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->code, 0) << run->output;
  EXPECT_TRUE(
      absl::StrContains(run->output, absl::StrCat("audiences-gateway ", SAG_EXPECTED_VERSION)))
      << run->output;
  EXPECT_FALSE(absl::StrContains(run->output, "listening on"));
}

TEST(OperabilityConfigTest, HelpExplainsEveryFlagAndNeverShowsAToken) {
  const std::string dir = MakeTempDir();
  const std::string file_token = "file-token-help-3fdba35f04dc";
  const std::string env_token = "env-token-help-ef2d127de37b";
  WriteFile(dir + "/token", file_token + "\n");
  auto run = RunToExit({SAG_GATEWAY_BIN, "--help", "--token_file=" + dir + "/token"},
                       {"SEGMENT_API_TOKEN=" + env_token});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_TRUE(run->code == 0 || run->code == 1) << run->code;  // absl's --help exit code.
  for (const char* flag :
       {"listen", "upstream_url", "token_file", "config", "metrics_listen", "rate_limits",
        "cache_ttl", "redis_url", "shutdown_grace", "log_level"}) {
    // absl's format: `    --NAME (explanation); default: VALUE;`
    const std::string start = absl::StrCat("--", flag, " (");
    const size_t at = run->output.find(start);
    ASSERT_NE(at, std::string::npos) << start << " in:\n" << run->output;
    const size_t end = run->output.find("default:", at);
    ASSERT_NE(end, std::string::npos) << run->output.substr(at);
    EXPECT_GT(end - at, start.size() + 12)
        << "too short an explanation: " << run->output.substr(at);
  }
  EXPECT_FALSE(absl::StrContains(run->output, file_token));
  EXPECT_FALSE(absl::StrContains(run->output, env_token));
  EXPECT_FALSE(absl::StrContains(run->output, "listening on"));
}

}  // namespace
}  // namespace sag::testing
