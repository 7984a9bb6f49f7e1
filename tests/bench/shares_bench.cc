// How callers share one rate-limit lane by priority and weight, against a real segment-sim and a
// real gateway configured with three callers (tests/common/flood.h): `heavy` (batch, weight 3),
// `light` (batch, weight 1) and `ui` (interactive). GetAudience is limited to --limit on both.
//
//  1. Weights: heavy and light each keep --backlog calls in flight for --seconds (after a 2 s
//     warm-up). Prints their shares of the OK calls that finished in the window (goal 75% / 25%,
//     +-5 points), and what an occasional interactive call of `ui` (one every ~1 s, random phase)
//     waited meanwhile: its latency minus the mean upstream latency the gateway measured (goal:
//     p99 <= two emission intervals), beside the gateway's own caller_queue_wait mean for ui.
//  2. Interactive flood: ui and heavy both keep --backlog calls in flight for --flood_seconds.
//     Prints batch's share (goal >= --batch_min_share, 10% by default).
//  3. Throughout: the upstream's 429 count (goal 0).
//
//   bench_shares [--seconds=20] [--flood_seconds=10] [--limit=10/1s] [--backlog=10] [--json=FILE]
//
// Exit code 1 when a call fails or the upstream answers 429 (so the smoke run in ctest can fail);
// the share and wait goals are reported, not enforced.
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/bench/loadgen.h"
#include "tests/common/flood.h"
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

ABSL_FLAG(int, seconds, 20, "Length of the weights window (scenario 1).");
ABSL_FLAG(int, flood_seconds, 10, "Length of the interactive-flood window (scenario 2).");
ABSL_FLAG(std::string, limit, "10/1s", "GetAudience limit, N/DURATION, on the sim and gateway.");
ABSL_FLAG(int, backlog, 10, "Calls each flooding caller keeps in flight.");
ABSL_FLAG(std::string, json, "", "Also write the figures to this JSON file.");

namespace {

namespace v1 = segment::audiences::v1;
using sag::testing::Flood;
using sag::testing::FloodCall;
using sag::testing::kHeavy;
using sag::testing::kLight;
using sag::testing::kUi;
using sag::testing::Stack;

constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr double kBatchMinShare = 0.1;  // The gateway's default.

const char* Mark(bool met) { return met ? "ok" : "MISSED"; }

// The value of the sample `series` (name{labels} exactly as exported), or -1.
double MetricValue(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

// "N/DURATION" -> calls per second; 0 when malformed.
double RateOf(const std::string& limit) {
  std::vector<std::string> parts = absl::StrSplit(limit, '/');
  int n = 0;
  absl::Duration per;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &n) ||
      !absl::ParseDuration(parts[1], &per) || per <= absl::ZeroDuration()) {
    return 0;
  }
  return n / absl::ToDoubleSeconds(per);
}

std::unique_ptr<Stack> StartStack(const std::string& limit) {
  const std::string dir = sag::testing::MakeTempDir();
  sag::testing::WriteFile(dir + "/config.yaml", sag::testing::SharesConfig());
  sag::testing::StackOptions options;
  options.sim_args = {"--rate_limits=GetAudience=" + limit, "--threads=32"};
  options.gateway_args = {"--config=" + dir + "/config.yaml", "--rate_limits=GetAudience=" + limit};
  auto stack = Stack::Start(options);
  if (!stack.ok()) {
    std::cerr << "cannot start: " << stack.status() << "\n";
    return nullptr;
  }
  return std::move(*stack);
}

std::string CreateAudience(Stack& s) {
  auto ctx = sag::testing::Context();
  ctx->AddMetadata("x-api-key", kUi.api_key);
  v1::CreateAudienceResponse created;
  grpc::Status st =
      s.stub().CreateAudience(ctx.get(), sag::testing::AudienceRequest(kSpace, "bench"), &created);
  if (!st.ok()) std::cerr << "create failed: " << st.error_message() << "\n";
  return st.ok() ? created.audience().id() : "";
}

struct Result {
  double interval_ms = 0;
  std::map<std::string, int> weights;  // OK calls per caller in the weights window
  double heavy_share = 0;
  std::vector<double> ui_waits_ms;
  double ui_wait_p50_ms = 0;
  double ui_wait_p99_ms = 0;
  double ui_gateway_wait_mean_ms = 0;
  double upstream_mean_ms = 0;
  std::map<std::string, int> flood;  // OK calls per caller in the interactive-flood window
  double batch_share = 0;
  int64_t upstream_429 = -1;
  int failed = 0;
};

double Share(const std::map<std::string, int>& n, const std::string& who) {
  int total = 0;
  for (const auto& [caller, count] : n) total += count;
  auto it = n.find(who);
  return total == 0 || it == n.end() ? 0 : static_cast<double>(it->second) / total;
}

int Failed(const std::vector<FloodCall>& calls) {
  return static_cast<int>(std::count_if(calls.begin(), calls.end(), [](const FloodCall& c) {
    return c.code != grpc::StatusCode::OK;
  }));
}

// Scenario 1: heavy and light flood; ui calls now and then.
bool RunWeights(Stack& s, const std::string& id, Result* r) {
  Flood flood(&s.stub(), kSpace, id);
  flood.Start(kHeavy, absl::GetFlag(FLAGS_backlog));
  flood.Start(kLight, absl::GetFlag(FLAGS_backlog));
  absl::SleepFor(absl::Seconds(2));
  const absl::Time from = absl::Now();
  const absl::Time to = from + absl::Seconds(absl::GetFlag(FLAGS_seconds));
  std::mt19937 rng(17);
  std::vector<FloodCall> probes;
  while (absl::Now() + absl::Milliseconds(1500) < to) {
    absl::SleepFor(absl::Milliseconds(700 + static_cast<int>(rng() % 600)));
    probes.push_back(flood.Probe(kUi));
  }
  absl::SleepFor(std::max(absl::ZeroDuration(), to - absl::Now()));
  r->weights = flood.OkBetween(from, to);
  if (!flood.Stop()) return false;
  r->failed += Failed(flood.Finished());
  r->heavy_share = Share({{"heavy", r->weights["heavy"]}, {"light", r->weights["light"]}}, "heavy");
  const std::string text = s.ScrapeMetrics().value_or("");
  const double up_sum = MetricValue(
      text, "audiences_gateway_upstream_duration_seconds_sum{operation=\"GetAudience\"}");
  const double up_count = MetricValue(
      text, "audiences_gateway_upstream_duration_seconds_count{operation=\"GetAudience\"}");
  if (up_count > 0) r->upstream_mean_ms = 1000 * up_sum / up_count;
  const std::string ui = "{caller=\"ui\",class=\"interactive\"}";
  const double w_sum = MetricValue(text, "audiences_gateway_caller_queue_wait_seconds_sum" + ui);
  const double w_count =
      MetricValue(text, "audiences_gateway_caller_queue_wait_seconds_count" + ui);
  if (w_count > 0) r->ui_gateway_wait_mean_ms = 1000 * w_sum / w_count;
  for (const FloodCall& p : probes) {
    r->ui_waits_ms.push_back(
        std::max(0.0, absl::ToDoubleMilliseconds(p.end - p.start) - r->upstream_mean_ms));
  }
  r->ui_wait_p50_ms = sag::bench::PercentileOf(r->ui_waits_ms, 0.50);
  r->ui_wait_p99_ms = sag::bench::PercentileOf(r->ui_waits_ms, 0.99);
  return true;
}

// Scenario 2: ui (interactive) and heavy (batch) both flood.
bool RunInteractiveFlood(Stack& s, const std::string& id, Result* r) {
  Flood flood(&s.stub(), kSpace, id);
  flood.Start(kUi, absl::GetFlag(FLAGS_backlog));
  flood.Start(kHeavy, absl::GetFlag(FLAGS_backlog));
  absl::SleepFor(absl::Seconds(1));
  const absl::Time from = absl::Now();
  const absl::Time to = from + absl::Seconds(absl::GetFlag(FLAGS_flood_seconds));
  absl::SleepFor(to - absl::Now());
  r->flood = flood.OkBetween(from, to);
  if (!flood.Stop()) return false;
  r->failed += Failed(flood.Finished());
  r->batch_share = Share(r->flood, "heavy");
  return true;
}

void Print(const Result& r) {
  const double heavy = 100 * r.heavy_share;
  std::printf("limit %s (one slot every %.0f ms), backlog %d per flooding caller\n",
              absl::GetFlag(FLAGS_limit).c_str(), r.interval_ms, absl::GetFlag(FLAGS_backlog));
  std::printf("1. weights 3:1, both batch, %d s window:\n", absl::GetFlag(FLAGS_seconds));
  std::printf("  %-44s heavy %d, light %d\n", "OK calls in the window",
              r.weights.count("heavy") ? r.weights.at("heavy") : 0,
              r.weights.count("light") ? r.weights.at("light") : 0);
  std::printf("  %-44s %.1f%% / %.1f%%   goal 75 / 25 +-5  %s\n", "shares heavy / light", heavy,
              100 - heavy, Mark(heavy >= 70 && heavy <= 80));
  std::printf("  %-44s %zu calls: p50 %.0f ms, p99 %.0f ms   goal p99 <= %.0f ms  %s\n",
              "interactive ui's wait meanwhile", r.ui_waits_ms.size(), r.ui_wait_p50_ms,
              r.ui_wait_p99_ms, 2 * r.interval_ms,
              Mark(!r.ui_waits_ms.empty() && r.ui_wait_p99_ms <= 2 * r.interval_ms));
  std::printf("  %-44s %.0f ms (upstream mean %.1f ms, subtracted above)\n",
              "  gateway's own queue-wait mean for ui", r.ui_gateway_wait_mean_ms,
              r.upstream_mean_ms);
  std::printf("2. interactive flood (ui) against batch (heavy), %d s window:\n",
              absl::GetFlag(FLAGS_flood_seconds));
  std::printf("  %-44s ui %d, heavy %d\n", "OK calls in the window",
              r.flood.count("ui") ? r.flood.at("ui") : 0,
              r.flood.count("heavy") ? r.flood.at("heavy") : 0);
  std::printf("  %-44s %.1f%%   goal >= %.0f%%  %s\n", "batch share", 100 * r.batch_share,
              100 * kBatchMinShare, Mark(r.batch_share >= kBatchMinShare - 0.005));
  std::printf("3. %-44s %lld   goal 0  %s\n", "upstream 429s",
              static_cast<long long>(r.upstream_429), Mark(r.upstream_429 == 0));
  std::printf("  %-44s %d\n", "failed calls", r.failed);
}

void WriteJson(const Result& r, const std::string& path) {
  nlohmann::json j = {
      {"limit", absl::GetFlag(FLAGS_limit)},
      {"weights_window_s", absl::GetFlag(FLAGS_seconds)},
      {"heavy_ok", r.weights.count("heavy") ? r.weights.at("heavy") : 0},
      {"light_ok", r.weights.count("light") ? r.weights.at("light") : 0},
      {"heavy_share", r.heavy_share},
      {"ui_wait_p50_ms", r.ui_wait_p50_ms},
      {"ui_wait_p99_ms", r.ui_wait_p99_ms},
      {"ui_wait_goal_ms", 2 * r.interval_ms},
      {"ui_gateway_wait_mean_ms", r.ui_gateway_wait_mean_ms},
      {"flood_window_s", absl::GetFlag(FLAGS_flood_seconds)},
      {"batch_share_under_interactive_flood", r.batch_share},
      {"batch_min_share", kBatchMinShare},
      {"upstream_429", r.upstream_429},
      {"failed", r.failed},
  };
  std::ofstream(path) << j.dump(2) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  Result r;
  const double rate = RateOf(absl::GetFlag(FLAGS_limit));
  if (rate <= 0) {
    std::cerr << "--limit must be N/DURATION\n";
    return 2;
  }
  r.interval_ms = 1000 / rate;
  auto stack = StartStack(absl::GetFlag(FLAGS_limit));
  if (stack == nullptr) return 1;
  const std::string id = CreateAudience(*stack);
  if (id.empty()) return 1;
  if (!RunWeights(*stack, id, &r) || !RunInteractiveFlood(*stack, id, &r)) {
    std::cerr << "calls did not all finish\n";
    return 1;
  }
  r.upstream_429 = stack->SimStats().value("status_429", int64_t{-1});
  Print(r);
  if (!absl::GetFlag(FLAGS_json).empty()) WriteJson(r, absl::GetFlag(FLAGS_json));
  return r.failed == 0 && r.upstream_429 == 0 ? 0 : 1;
}
