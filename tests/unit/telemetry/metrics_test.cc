// Registry and exposition format: exact text, a real Prometheus parser (Python prometheus_client),
// histograms, escaping, validation, concurrency, the gateway's metric set.
#include "service/telemetry/metrics.h"

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/telemetry/gateway_metrics.h"

namespace sag {
namespace telemetry {
namespace {

// Parses the exposition with prometheus_client and prints the families as JSON. Also applies the
// exposition grammar line by line, since prometheus_client's parser is lax (it turns unknown
// lines into untyped metrics instead of failing).
constexpr char kParserScript[] = R"PY(
import json, math, re, sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
if not text.endswith("\n"):
    sys.exit("exposition does not end with a newline")
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{%s(?:,%s)*\})? (\S+)$" % (NAME, LABEL, LABEL))
HELP = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)
typed = {}
for n, line in enumerate(text.split("\n")[:-1], 1):
    if line.startswith("# HELP"):
        if not HELP.match(line): sys.exit("line %d: bad HELP: %r" % (n, line))
    elif line.startswith("# TYPE"):
        m = TYPE.match(line)
        if not m: sys.exit("line %d: bad TYPE: %r" % (n, line))
        if m.group(1) in typed: sys.exit("line %d: TYPE given twice for %s" % (n, m.group(1)))
        typed[m.group(1)] = m.group(2)
    else:
        m = SAMPLE.match(line)
        if not m: sys.exit("line %d: not a sample: %r" % (n, line))
        float(m.group(3))
        base = m.group(1)
        for suffix in ("_bucket", "_sum", "_count"):
            if base.endswith(suffix) and base[:-len(suffix)] in typed:
                base = base[:-len(suffix)]
        if base not in typed: sys.exit("line %d: sample before its TYPE: %r" % (n, line))

def num(v):
    return v if math.isfinite(v) else str(v)

out = []
for family in text_string_to_metric_families(text):
    if family.type == "untyped":
        sys.exit("untyped family %s" % family.name)
    out.append({"name": family.name, "type": family.type, "help": family.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": num(s.value)}
                            for s in family.samples]})
print(json.dumps(out))
)PY";

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string WriteTemp(const std::string& name, const std::string& content) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name, ".", getpid());
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// A python3 that has prometheus_client; "" (with *why set) when there is none.
std::string FindPython(std::string* why) {
  bool any_python = false;
  for (const char* candidate : {"/usr/bin/python3", "python3"}) {
    if (RunCommand(absl::StrCat(candidate, " -c 'import sys' 2>/dev/null")).exit_code != 0)
      continue;
    any_python = true;
    if (RunCommand(absl::StrCat(candidate, " -c 'import prometheus_client' 2>/dev/null"))
            .exit_code == 0) {
      return candidate;
    }
  }
  *why = any_python ? "python3 has no prometheus_client: apt-get install python3-prometheus-client"
                    : "no python3 found";
  return "";
}

// Runs the real parser over `exposition`. Skips the test when python3 is absent; fails it when
// python3 is there without prometheus_client (install python3-prometheus-client).
#define PARSE_WITH_PROMETHEUS(exposition, out_json)                                  \
  do {                                                                               \
    std::string why_;                                                                \
    const std::string python_ = FindPython(&why_);                                   \
    if (python_.empty()) {                                                           \
      if (why_ == "no python3 found") GTEST_SKIP() << "skipped: " << why_;           \
      FAIL() << why_;                                                                \
    }                                                                                \
    const std::string script_ = WriteTemp("parse_prom.py", kParserScript);           \
    const std::string input_ = WriteTemp("exposition.txt", exposition);              \
    CommandResult r_ = RunCommand(python_ + " " + script_ + " " + input_ + " 2>&1"); \
    std::remove(script_.c_str());                                                    \
    std::remove(input_.c_str());                                                     \
    ASSERT_EQ(r_.exit_code, 0) << r_.output << "\n--- exposition:\n" << exposition;  \
    out_json = nlohmann::json::parse(r_.output);                                     \
  } while (0)

// The value of sample `name` with exactly `labels` in parsed families; NaN when absent.
double SampleValue(const nlohmann::json& families, const std::string& name,
                   const std::map<std::string, std::string>& labels) {
  for (const auto& family : families) {
    for (const auto& sample : family["samples"]) {
      if (sample["name"] != name) continue;
      if (sample["labels"].get<std::map<std::string, std::string>>() != labels) continue;
      if (sample["value"].is_string()) return std::stod(sample["value"].get<std::string>());
      return sample["value"].get<double>();
    }
  }
  return std::nan("");
}

TEST(RegistryTest, ExactTextForASmallRegistry) {
  Registry registry;
  CounterFamily* requests =
      *registry.AddCounter("http_requests_total", "Requests served.", {"method", "code"});
  requests->WithLabels({"GET", "200"})->Increment(3);
  requests->WithLabels({"GET", "404"})->Increment();
  requests->WithLabels({"DELETE", "200"})->Increment(0.5);
  GaugeFamily* temperature = *registry.AddGauge("room_temperature_celsius", "Temperature.");
  temperature->Get()->Set(-2.25);
  HistogramFamily* latency = *registry.AddHistogram("rpc_duration_seconds",
                                                    "Latency.\nIn seconds \\o/", {"rpc"}, {0.1, 1});
  Histogram* get = latency->WithLabels({"Get"});
  get->Observe(0.05);
  get->Observe(0.1);  // le is "less or equal": lands in the 0.1 bucket
  get->Observe(0.5);
  get->Observe(7);
  *registry.AddCounter("unused_total", "Has labels, no children: not written.", {"x"});

  EXPECT_EQ(registry.Serialize(),
            "# HELP http_requests_total Requests served.\n"
            "# TYPE http_requests_total counter\n"
            "http_requests_total{method=\"DELETE\",code=\"200\"} 0.5\n"
            "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
            "http_requests_total{method=\"GET\",code=\"404\"} 1\n"
            "# HELP room_temperature_celsius Temperature.\n"
            "# TYPE room_temperature_celsius gauge\n"
            "room_temperature_celsius -2.25\n"
            "# HELP rpc_duration_seconds Latency.\\nIn seconds \\\\o/\n"
            "# TYPE rpc_duration_seconds histogram\n"
            "rpc_duration_seconds_bucket{rpc=\"Get\",le=\"0.1\"} 2\n"
            "rpc_duration_seconds_bucket{rpc=\"Get\",le=\"1\"} 3\n"
            "rpc_duration_seconds_bucket{rpc=\"Get\",le=\"+Inf\"} 4\n"
            "rpc_duration_seconds_sum{rpc=\"Get\"} 7.65\n"
            "rpc_duration_seconds_count{rpc=\"Get\"} 4\n");
}

TEST(RegistryTest, LabelLessFamiliesShowZeroAtOnce) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("a_total", "A.").ok());
  ASSERT_TRUE(registry.AddHistogram("b_seconds", "B.", {}, {1}).ok());
  EXPECT_EQ(registry.Serialize(),
            "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
            "# HELP b_seconds B.\n# TYPE b_seconds histogram\n"
            "b_seconds_bucket{le=\"1\"} 0\nb_seconds_bucket{le=\"+Inf\"} 0\n"
            "b_seconds_sum 0\nb_seconds_count 0\n");
}

TEST(RegistryTest, WithLabelsReturnsTheSameChild) {
  Registry registry;
  CounterFamily* family = *registry.AddCounter("x_total", "X.", {"a"});
  Counter* first = family->WithLabels({"1"});
  EXPECT_EQ(family->WithLabels({"1"}), first);
  EXPECT_NE(family->WithLabels({"2"}), first);
  EXPECT_EQ(family->size(), 2u);
}

TEST(RegistryTest, CounterIgnoresNegativeAndNaN) {
  Registry registry;
  Counter* c = (*registry.AddCounter("c_total", "C."))->Get();
  c->Increment(2);
  c->Increment(-1);
  c->Increment(std::nan(""));
  EXPECT_EQ(c->Value(), 2);
}

TEST(RegistryTest, GaugeMovesBothWays) {
  Registry registry;
  Gauge* g = (*registry.AddGauge("g", "G."))->Get();
  g->Increment(5);
  g->Decrement(2);
  EXPECT_EQ(g->Value(), 3);
  g->Set(10);
  EXPECT_EQ(g->Value(), 10);
}

TEST(RegistryTest, CallbackGaugesAreEvaluatedAtScrapeTime) {
  Registry registry;
  std::atomic<int> depth{3};
  Gauge* bytes = *registry.AddCallbackGauge("cache_bytes", "Bytes.", [&] { return 4096.0; });
  GaugeFamily* queue = *registry.AddGauge("queue_depth", "Depth.", {"operation"});
  queue->WithLabels({"ListAudiences"})->SetCallback([&] { return depth.load(); });
  EXPECT_NE(registry.Serialize().find("queue_depth{operation=\"ListAudiences\"} 3\n"),
            std::string::npos);
  depth = 7;
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("queue_depth{operation=\"ListAudiences\"} 7\n"), std::string::npos);
  EXPECT_NE(text.find("cache_bytes 4096\n"), std::string::npos);
  bytes->ClearCallback();
  bytes->Set(1);
  EXPECT_NE(registry.Serialize().find("cache_bytes 1\n"), std::string::npos);
}

TEST(RegistryTest, HistogramBucketsAreCumulative) {
  Registry registry;
  Histogram* h = (*registry.AddHistogram("h_seconds", "H.", {}, {0.001, 0.01, 0.1, 1, 10}))->Get();
  std::mt19937 rng(42);
  std::exponential_distribution<double> dist(2.0);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double v = dist(rng);
    sum += v;
    h->Observe(v);
  }
  h->ObserveDuration(absl::Milliseconds(10));  // exactly on a bound: le="0.01"
  const Histogram::Snapshot snap = h->Collect();
  ASSERT_EQ(snap.cumulative.size(), 6u);
  for (size_t i = 1; i < snap.cumulative.size(); ++i) {
    EXPECT_GE(snap.cumulative[i], snap.cumulative[i - 1]);
  }
  EXPECT_EQ(snap.cumulative.back(), 10001u);
  EXPECT_EQ(snap.count, 10001u);
  EXPECT_NEAR(snap.sum, sum + 0.01, 1e-6);

  Registry one;
  Histogram* o = (*one.AddHistogram("o", "O.", {}, {0.01, 0.1}))->Get();
  o->ObserveDuration(absl::Milliseconds(10));
  EXPECT_EQ(o->Collect().cumulative, (std::vector<uint64_t>{1, 1, 1}));
}

TEST(RegistryTest, LabelValuesAreEscaped) {
  Registry registry;
  CounterFamily* f = *registry.AddCounter("esc_total", "E.", {"v"});
  f->WithLabels({"a\\b\"c\nd"})->Increment();
  EXPECT_NE(registry.Serialize().find("esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"), std::string::npos)
      << registry.Serialize();
  EXPECT_EQ(EscapeLabelValue("ok \xC3\xA9"), "ok \xC3\xA9");      // valid UTF-8 kept
  EXPECT_EQ(EscapeLabelValue("bad \xFF!"), "bad \xEF\xBF\xBD!");  // invalid byte replaced
  EXPECT_EQ(EscapeLabelValue("\xC3"), "\xEF\xBF\xBD");            // truncated sequence
}

TEST(RegistryTest, NamesAreValidated) {
  Registry registry;
  EXPECT_EQ(registry.AddCounter("", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddCounter("1abc", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddCounter("a-b", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(registry.AddCounter("ns:sub_name1", "x").ok());
  EXPECT_EQ(registry.AddCounter("l1", "x", {"bad-label"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddCounter("l2", "x", {"__reserved"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddCounter("l3", "x", {"a", "a"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h1", "x", {"le"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h2", "x", {}, {1, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h3", "x", {}, {2, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h4", "x", {}, {std::nan("")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(registry.AddHistogram("h5", "x", {}, {1, INFINITY}).ok());  // +Inf tolerated
  EXPECT_TRUE(IsValidMetricName("a:b_c"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
}

TEST(RegistryTest, DuplicateAndCollidingNamesAreRefused) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("dup_total", "x").ok());
  EXPECT_EQ(registry.AddGauge("dup_total", "x").status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(registry.AddHistogram("lat", "x", {}).ok());
  EXPECT_EQ(registry.AddCounter("lat_count", "x").status().code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(registry.AddGauge("q_sum", "x").ok());
  EXPECT_EQ(registry.AddHistogram("q", "x", {}).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(RegistryTest, SampleValuesFormat) {
  EXPECT_EQ(FormatSampleValue(0), "0");
  EXPECT_EQ(FormatSampleValue(42), "42");
  EXPECT_EQ(FormatSampleValue(-3), "-3");
  EXPECT_EQ(FormatSampleValue(1e6), "1000000");
  EXPECT_EQ(FormatSampleValue(0.005), "0.005");
  EXPECT_EQ(FormatSampleValue(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatSampleValue(1e300), "1e+300");
  EXPECT_EQ(FormatSampleValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatSampleValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatSampleValue(std::nan("")), "NaN");
  EXPECT_EQ(Registry::ExponentialBuckets(0.001, 10, 4),
            (std::vector<double>{0.001, 0.01, 0.1, 1.0}));
}

TEST(RegistryTest, ConcurrentUpdatesSumExactly) {
  Registry registry;
  CounterFamily* calls = *registry.AddCounter("calls_total", "Calls.", {"rpc"});
  Gauge* gauge = (*registry.AddGauge("inflight", "In flight."))->Get();
  HistogramFamily* lat = *registry.AddHistogram("lat_seconds", "Latency.", {"rpc"}, {0.5, 1});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    while (!done.load()) {
      const std::string text = registry.Serialize();
      ASSERT_FALSE(text.empty());
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread looks the child up itself: creation races must yield one child.
      Counter* c = calls->WithLabels({"GetAudience"});
      Histogram* h = lat->WithLabels({"GetAudience"});
      for (int i = 0; i < kPerThread; ++i) {
        c->Increment();
        gauge->Increment();
        h->Observe((i + t) % 3 == 0 ? 0.25 : 2.0);
        gauge->Decrement();
      }
      gauge->Increment();
    });
  }
  for (auto& t : threads) t.join();
  done = true;
  scraper.join();
  EXPECT_EQ(calls->size(), 1u);
  EXPECT_EQ(calls->WithLabels({"GetAudience"})->Value(), kThreads * kPerThread);
  EXPECT_EQ(gauge->Value(), kThreads);
  const Histogram::Snapshot snap = lat->WithLabels({"GetAudience"})->Collect();
  EXPECT_EQ(snap.count, static_cast<uint64_t>(kThreads) * kPerThread);
  int low = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) low += (i + t) % 3 == 0;
  }
  EXPECT_EQ(snap.cumulative[0], static_cast<uint64_t>(low));
  EXPECT_EQ(snap.cumulative[1], static_cast<uint64_t>(low));
  EXPECT_DOUBLE_EQ(snap.sum, low * 0.25 + (kThreads * kPerThread - low) * 2.0);
}

TEST(PrometheusParserTest, SmallRegistryParses) {
  Registry registry;
  CounterFamily* f = *registry.AddCounter("esc_total", "Help with \\ and\nnewline.", {"v", "w"});
  f->WithLabels({"a\\b\"c\nd", "plain"})->Increment(2);
  f->WithLabels({"", "x"})->Increment();
  *registry.AddGauge("special", "NaN and infinities.", {"k"});
  (*registry.AddGauge("nan_gauge", "NaN."))->Get()->Set(std::nan(""));
  (*registry.AddGauge("inf_gauge", "Inf."))->Get()->Set(-INFINITY);
  nlohmann::json families;
  PARSE_WITH_PROMETHEUS(registry.Serialize(), families);
  ASSERT_EQ(families.size(), 3u) << families.dump(2);
  EXPECT_EQ(families[0]["name"], "esc");  // prometheus_client drops a counter's _total
  EXPECT_EQ(families[0]["help"], "Help with \\ and\nnewline.");
  EXPECT_EQ(SampleValue(families, "esc_total", {{"v", "a\\b\"c\nd"}, {"w", "plain"}}), 2);
  EXPECT_EQ(SampleValue(families, "esc_total", {{"v", ""}, {"w", "x"}}), 1);
  EXPECT_TRUE(std::isinf(SampleValue(families, "inf_gauge", {})));
  EXPECT_TRUE(std::isnan(SampleValue(families, "nan_gauge", {})));
}

TEST(PrometheusParserTest, GatewayMetricsParseAndValuesMove) {
  Registry registry;
  auto metrics = GatewayMetrics::Create(&registry, "1.2.3");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  GatewayMetrics& m = **metrics;
  EXPECT_FALSE(GatewayMetrics::Create(&registry, "again").ok());  // names taken

  std::atomic<int> queued{4};
  m.calls->WithLabels({"GetAudience", "OK"})->Increment();
  m.call_duration->WithLabels({"GetAudience"})->Observe(0.02);
  m.upstream_requests->WithLabels({"GetAudience", "200"})->Increment();
  m.upstream_requests->WithLabels({"GetAudience", "error"})->Increment();
  m.upstream_duration->WithLabels({"GetAudience"})->Observe(0.015);
  m.upstream_429->WithLabels({"ListAudiences"})->Increment();
  m.upstream_retries->WithLabels({"ListAudiences"})->Increment();
  m.queue_depth->WithLabels({"CreateAudience"})->SetCallback([&] { return queued.load(); });
  m.queue_wait->WithLabels({"CreateAudience"})->Observe(12);
  m.ratelimit_rejected->WithLabels({"CreateAudience"})->Increment();
  m.cache_requests->WithLabels({"ListAudiences", "hit"})->Increment();
  m.cache_entries->Get()->Set(2);
  m.cache_bytes->Get()->Set(2048);
  m.cache_evictions->Get()->Increment();
  m.token_reloads->WithLabels({"default", "ok"})->Increment();
  m.upstream_auth_failures->WithLabels({"default", "401"})->Increment();
  m.upstream_auth_rejected->WithLabels({"default"})->Set(1);
  m.calls_in_flight->Get()->Set(1);
  m.memory_refused->Get()->Increment();
  m.memory_in_use->Get()->Set(1 << 20);
  m.memory_limit->Get()->Set(2 << 20);

  nlohmann::json before;
  PARSE_WITH_PROMETHEUS(registry.Serialize(), before);
  std::set<std::string> names;
  for (const auto& family : before) names.insert(family["name"].get<std::string>());
  for (const char* expected : {"audiences_gateway_calls",
                               "audiences_gateway_call_duration_seconds",
                               "audiences_gateway_calls_in_flight",
                               "audiences_gateway_upstream_requests",
                               "audiences_gateway_upstream_duration_seconds",
                               "audiences_gateway_upstream_429",
                               "audiences_gateway_upstream_retries",
                               "audiences_gateway_queue_depth",
                               "audiences_gateway_queue_wait_seconds",
                               "audiences_gateway_ratelimit_rejected",
                               "audiences_gateway_cache_requests",
                               "audiences_gateway_cache_entries",
                               "audiences_gateway_cache_bytes",
                               "audiences_gateway_cache_evictions",
                               "audiences_gateway_token_reloads",
                               "audiences_gateway_upstream_auth_failures",
                               "audiences_gateway_upstream_auth_rejected",
                               "audiences_gateway_build_info",
                               "audiences_gateway_memory_refused",
                               "audiences_gateway_memory_in_use_bytes",
                               "audiences_gateway_memory_limit_bytes"}) {
    EXPECT_EQ(names.count(expected), 1u) << expected;
  }
  EXPECT_EQ(SampleValue(before, "audiences_gateway_build_info", {{"version", "1.2.3"}}), 1);
  EXPECT_EQ(SampleValue(before, "audiences_gateway_upstream_auth_failures_total",
                        {{"workspace", "default"}, {"status", "401"}}),
            1);
  EXPECT_EQ(
      SampleValue(before, "audiences_gateway_upstream_auth_rejected", {{"workspace", "default"}}),
      1);
  EXPECT_EQ(SampleValue(before, "audiences_gateway_calls_total",
                        {{"rpc", "GetAudience"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(SampleValue(before, "audiences_gateway_queue_depth", {{"operation", "CreateAudience"}}),
            4);
  EXPECT_EQ(SampleValue(before, "audiences_gateway_queue_wait_seconds_bucket",
                        {{"operation", "CreateAudience"}, {"le", "10"}}),
            0);
  EXPECT_EQ(SampleValue(before, "audiences_gateway_queue_wait_seconds_bucket",
                        {{"operation", "CreateAudience"}, {"le", "30"}}),
            1);

  // Values move.
  m.calls->WithLabels({"GetAudience", "OK"})->Increment();
  m.calls->WithLabels({"GetAudience", "NOT_FOUND"})->Increment();
  m.call_duration->WithLabels({"GetAudience"})->Observe(3);
  queued = 0;
  nlohmann::json after;
  PARSE_WITH_PROMETHEUS(registry.Serialize(), after);
  EXPECT_EQ(
      SampleValue(after, "audiences_gateway_calls_total", {{"rpc", "GetAudience"}, {"code", "OK"}}),
      2);
  EXPECT_EQ(SampleValue(after, "audiences_gateway_calls_total",
                        {{"rpc", "GetAudience"}, {"code", "NOT_FOUND"}}),
            1);
  EXPECT_EQ(
      SampleValue(after, "audiences_gateway_call_duration_seconds_count", {{"rpc", "GetAudience"}}),
      2);
  EXPECT_DOUBLE_EQ(
      SampleValue(after, "audiences_gateway_call_duration_seconds_sum", {{"rpc", "GetAudience"}}),
      3.02);
  EXPECT_EQ(SampleValue(after, "audiences_gateway_queue_depth", {{"operation", "CreateAudience"}}),
            0);
  m.queue_depth->WithLabels({"CreateAudience"})->ClearCallback();
}

}  // namespace
}  // namespace telemetry
}  // namespace sag
