// Redis hung under a flood: what callers and the upstream see when the shared budget's Redis is
// frozen (SIGSTOP: its port still accepts connections, nothing is answered) and then resumes
// (SIGCONT). Real redis-server, segment-sim and --replicas gateways (default 2) with --redis_url
// and --replicas=N; GetAudience limited to --limit (default 10/1s) on the simulator and every
// replica. Each replica gets --inflight GetAudience calls kept in flight (tests/common/flood.h),
// each with a --deadline. After --warmup, Redis is frozen for --freeze, then thawed; the flood
// goes on for --after. Prints, per phase (before / during / after the freeze):
//   - the most upstream admissions in any window of the limit's length (sliding, from the
//     simulator's request log; a window is counted in the phase where it ends, so "during" holds
//     the switch to the local 1/N share and "after" the switch back), against the limit,
//   - the calls answered OK and failed, and their latency p50 / p99 / max (a call is "during"
//     when it was in flight at any moment of the freeze),
// and the upstream 429s over the whole run (goal 0).
//
//   bench_freeze [--limit=10/1s] [--replicas=2] [--inflight=4] [--deadline=15s] [--warmup=3s]
//                [--freeze=4s] [--after=5s] [--json=FILE]
//
// Exit code: 77 when /usr/bin/redis-server is missing (ctest SKIP_RETURN_CODE); 2 when the
// processes cannot be started; 1 when a call failed, the upstream answered 429 or a window held
// more than the limit (so the smoke run in ctest can fail).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/ratelimit/limits.h"
#include "tests/bench/loadgen.h"
#include "tests/common/admission_windows.h"
#include "tests/common/flood.h"
#include "tests/common/redis_server.h"
#include "tests/common/stack.h"

ABSL_FLAG(std::string, limit, "10/1s", "GetAudience limit, N/DURATION, on the sim and gateways.");
ABSL_FLAG(int, replicas, 2, "Gateway replicas sharing the Redis.");
ABSL_FLAG(int, inflight, 4, "GetAudience calls kept in flight per replica.");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(15), "Each call's deadline.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(3), "Flood through a healthy Redis first.");
ABSL_FLAG(absl::Duration, freeze, absl::Seconds(4), "How long Redis is frozen (SIGSTOP).");
ABSL_FLAG(absl::Duration, after, absl::Seconds(5), "Flood after SIGCONT.");
ABSL_FLAG(std::string, json, "", "Also write the figures to this JSON file.");

namespace {

namespace v1 = segment::audiences::v1;
using sag::testing::Flood;
using sag::testing::FloodCall;
using sag::testing::RedisServer;
using sag::testing::Stack;
using sag::testing::StackOptions;
using Json = nlohmann::json;

constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";

// What happened while Redis was healthy, frozen, and back.
struct Phase {
  explicit Phase(const char* n) : name(n) {}
  const char* name;
  int max_window = 0;  // Most upstream admissions in one window of the limit's length.
  int ok = 0, failed = 0;
  std::vector<double> latency_ms;  // OK calls.
};

struct Run {
  std::vector<std::unique_ptr<Stack>> replicas;
  std::vector<std::unique_ptr<Flood>> floods;
  absl::Time frozen_at, thawed_at;
};

// A simulator and `n` gateways sharing it and `redis` (the first Stack starts the simulator).
bool StartReplicas(const RedisServer& redis, int n, Run* run) {
  const std::string limits =
      "GetAudience=" + absl::GetFlag(FLAGS_limit) + ",CreateAudience=6000/1m";
  StackOptions o;
  o.sim_args = {"--rate_limits=" + limits, "--threads=64"};
  o.gateway_args = {"--rate_limits=" + limits, "--redis_url=" + redis.url(),
                    absl::StrCat("--replicas=", n)};
  for (int i = 0; i < n; ++i) {
    auto s = Stack::Start(o);
    if (!s.ok()) {
      std::cerr << "cannot start replica " << i << ": " << s.status() << "\n";
      return false;
    }
    run->replicas.push_back(std::move(*s));
    o.start_sim = false;
    o.upstream_url = run->replicas[0]->sim_url();
  }
  return true;
}

// The flood, the freeze (`redis` SIGSTOPped, then SIGCONTed) and the flood after it.
bool FloodAndFreeze(RedisServer* redis, const std::string& id, Run* run) {
  for (auto& r : run->replicas) {
    run->floods.push_back(
        std::make_unique<Flood>(&r->stub(), kSpace, id, absl::GetFlag(FLAGS_deadline)));
    run->floods.back()->Start(sag::testing::kHeavy, absl::GetFlag(FLAGS_inflight));
  }
  absl::SleepFor(absl::GetFlag(FLAGS_warmup));
  run->frozen_at = absl::Now();
  {
    sag::testing::ScopedRedisFreeze freeze(redis);
    if (!freeze.frozen().ok()) {
      std::cerr << freeze.frozen() << "\n";
      return false;
    }
    absl::SleepFor(absl::GetFlag(FLAGS_freeze));
    if (absl::Status s = freeze.Thaw(); !s.ok()) {
      std::cerr << s << "\n";
      return false;
    }
  }
  run->thawed_at = absl::Now();
  absl::SleepFor(absl::GetFlag(FLAGS_after));
  bool stopped = true;
  for (auto& f : run->floods) stopped = f->Stop(absl::GetFlag(FLAGS_deadline)) && stopped;
  if (!stopped) std::cerr << "calls still in flight one deadline after the flood stopped\n";
  return stopped;
}

// Calls of the floods into the phases: before (ended before the freeze), during (in flight at
// some moment of it), after (started after SIGCONT).
void CountCalls(const Run& run, Phase* before, Phase* during, Phase* after, std::string* error) {
  for (const auto& f : run.floods) {
    for (const FloodCall& c : f->Finished()) {
      Phase* p = c.end < run.frozen_at ? before : c.start >= run.thawed_at ? after : during;
      if (c.code != grpc::StatusCode::OK) {
        ++p->failed;
        if (error->empty()) *error = absl::StrCat("code ", c.code, " in phase ", p->name);
        continue;
      }
      ++p->ok;
      p->latency_ms.push_back(absl::ToDoubleMilliseconds(c.end - c.start));
    }
  }
}

// The most admissions in one window of `per`, counted in the phase where the window ends.
bool CountWindows(const Run& run, absl::Duration per, Phase* before, Phase* during, Phase* after,
                  int64_t* upstream_429) {
  const Json stats = run.replicas[0]->SimStats();
  *upstream_429 = stats.value("status_429", int64_t{-1});
  const std::vector<absl::Time> admitted =
      sag::testing::AdmittedAt(run.replicas[0]->SimRequests(), "GetAudience");
  const int64_t served =
      stats.value("by_operation", Json::object()).value("GetAudience", int64_t{0}) - *upstream_429;
  if (static_cast<int64_t>(admitted.size()) != served) {
    std::cerr << "the simulator's request log holds " << admitted.size() << " of " << served
              << " admissions (it keeps 1000): shorten the run\n";
    return false;
  }
  using sag::testing::MaxInWindow;
  before->max_window =
      static_cast<int>(MaxInWindow(admitted, per, absl::InfinitePast(), run.frozen_at - per));
  during->max_window =
      static_cast<int>(MaxInWindow(admitted, per, run.frozen_at - per, run.thawed_at - per));
  after->max_window =
      static_cast<int>(MaxInWindow(admitted, per, run.thawed_at - per, absl::InfiniteFuture()));
  return true;
}

Json Print(const Phase& p, int limit) {
  const double p50 = sag::bench::PercentileOf(p.latency_ms, 0.5);
  const double p99 = sag::bench::PercentileOf(p.latency_ms, 0.99);
  const double max =
      p.latency_ms.empty() ? 0 : *std::max_element(p.latency_ms.begin(), p.latency_ms.end());
  std::printf(
      "  %-7s most admissions in one window %2d of %d (%s); calls %4d ok, %d failed; latency "
      "p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
      p.name, p.max_window, limit, p.max_window <= limit ? "met" : "NOT met", p.ok, p.failed, p50,
      p99, max);
  return {{"max_admissions_in_window", p.max_window},
          {"calls_ok", p.ok},
          {"calls_failed", p.failed},
          {"latency_p50_ms", p50},
          {"latency_p99_ms", p99},
          {"latency_max_ms", max}};
}

absl::StatusOr<std::string> CreateAudience(Stack& s) {
  v1::CreateAudienceRequest create = sag::testing::AudienceRequest(kSpace, "freeze bench");
  v1::CreateAudienceResponse created;
  grpc::Status st = s.stub().CreateAudience(sag::testing::Context().get(), create, &created);
  if (!st.ok()) return absl::InternalError("CreateAudience failed: " + st.error_message());
  return created.audience().id();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!sag::testing::RedisServerInstalled()) {
    std::cerr << "bench_freeze: " << sag::testing::kRedisServerBin << " is not installed\n";
    return 77;
  }
  auto limits =
      sag::ratelimit::ParseRateLimits("GetAudience=" + absl::GetFlag(FLAGS_limit), {"GetAudience"});
  const int n = absl::GetFlag(FLAGS_replicas);
  if (!limits.ok() || n < 1 || absl::GetFlag(FLAGS_inflight) < 1) {
    std::cerr << "--limit must be N/DURATION, --replicas and --inflight positive\n";
    return 2;
  }
  const sag::ratelimit::Limit limit = limits->at("GetAudience");
  RedisServer redis;
  Run run;
  if (absl::Status s = redis.Start(); !s.ok()) {
    std::cerr << "cannot start redis-server: " << s << "\n";
    return 2;
  }
  if (!StartReplicas(redis, n, &run)) return 2;
  auto id = CreateAudience(*run.replicas[0]);
  if (!id.ok()) {
    std::cerr << id.status() << "\n";
    return 2;
  }
  if (!FloodAndFreeze(&redis, *id, &run)) return 1;

  Phase before("before"), during("during"), after("after");
  std::string error;
  CountCalls(run, &before, &during, &after, &error);
  int64_t upstream_429 = -1;
  if (!CountWindows(run, limit.per, &before, &during, &after, &upstream_429)) return 1;

  std::printf(
      "bench_freeze: %d replicas sharing Redis, GetAudience limited to %s, %d calls in flight per "
      "replica (deadline %s); Redis frozen (SIGSTOP) for %s after %s, then %s after SIGCONT\n",
      n, absl::GetFlag(FLAGS_limit).c_str(), absl::GetFlag(FLAGS_inflight),
      absl::FormatDuration(absl::GetFlag(FLAGS_deadline)).c_str(),
      absl::FormatDuration(absl::GetFlag(FLAGS_freeze)).c_str(),
      absl::FormatDuration(absl::GetFlag(FLAGS_warmup)).c_str(),
      absl::FormatDuration(absl::GetFlag(FLAGS_after)).c_str());
  Json out = {{"scenario", "freeze"}, {"limit", absl::GetFlag(FLAGS_limit)}, {"replicas", n}};
  for (const Phase* p : {&before, &during, &after}) out[p->name] = Print(*p, limit.requests);
  std::printf("  upstream 429s %ld (goal 0: %s)\n", static_cast<long>(upstream_429),
              upstream_429 == 0 ? "met" : "NOT met");
  if (!error.empty()) std::printf("  first failed call: %s\n", error.c_str());
  out["upstream_429"] = upstream_429;
  out["freeze_s"] = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_freeze));
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";

  bool ok = upstream_429 == 0;
  for (const Phase* p : {&before, &during, &after}) {
    ok = ok && p->failed == 0 && p->ok > 0 && p->max_window <= limit.requests;
  }
  return ok ? 0 : 1;
}
