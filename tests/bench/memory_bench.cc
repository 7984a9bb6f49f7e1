// What the memory budget (--max_memory) holds a flood to, against a real segment-sim:
//
//  1. Flood: --calls GetAudience calls (default 32,000) sent at once on --lanes lanes (one
//     workspace each, all at --limit, 10/1s) of a gateway with --max_memory (512Mi), hour-long
//     deadlines, so nearly all of them park. Prints the gateway's peak RSS (/proc, every 20 ms)
//     against the budget, the calls refused with RESOURCE_EXHAUSTED, health latency during the
//     flood (a new connection every 100 ms, as a kubelet probe; p50/p99/max, goal p99 < 1 s) and
//     the RSS per parked call: (RSS once every call is parked or refused - RSS at idle, the
//     baseline of the same run) / parked calls. Then every call is cancelled.
//  2. In flight: --in_flight calls (2,000) on an unlimited lane against a simulator that answers
//     after --latency (2 s); RSS per call in flight = (RSS with all of them sent upstream - RSS
//     at idle) / calls.
//  3. The floor, after each of them: bench_memory_floor (memory_floor_server.cc), a gRPC server
//     built like the gateway's that only holds its calls, sent as many calls as the gateway held,
//     the same way (connections, metadata, deadlines); its RSS per held call is what gRPC itself
//     costs, and the gateway's excess over it (KB per call) is what the gateway can change.
//
//   bench_memory [--calls=32000] [--lanes=4] [--limit=10/1s] [--max_memory=512Mi]
//                [--in_flight=2000] [--latency=2s] [--json=FILE]
//
// Exit code 1 when a call is neither answered nor refused for memory, or a health probe fails (so
// the smoke run in ctest can fail); the memory goals are reported, not enforced.
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
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/common/memory_budget.h"
#include "tests/bench/loadgen.h"
#include "tests/bench/proc_stats.h"
#include "tests/common/countdown.h"
#include "tests/common/health_probe.h"
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

ABSL_FLAG(int, calls, 32000, "Calls in the flood.");
ABSL_FLAG(int, lanes, 4, "Lanes (workspaces) the flood is spread over.");
ABSL_FLAG(std::string, limit, "10/1s", "GetAudience limit of each lane.");
ABSL_FLAG(std::string, max_memory, "512Mi", "The gateway's --max_memory.");
ABSL_FLAG(int, in_flight, 2000, "Calls in flight in the second scenario (0 skips it).");
ABSL_FLAG(absl::Duration, latency, absl::Seconds(2), "Upstream answer delay, second scenario.");
ABSL_FLAG(std::string, json, "", "Also write the figures to this JSON file.");

namespace {

namespace v1 = segment::audiences::v1;
using sag::testing::Countdown;
using sag::testing::Stack;
using sag::testing::StackOptions;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kToken[] = "test-token-7f3a9c";

struct Call {
  grpc::ClientContext ctx;
  v1::GetAudienceRequest req;
  v1::GetAudienceResponse resp;
  grpc::Status status;
};

// A label-less sample's value in the exposition text, or -1.
double Sample(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

double Metric(Stack& s, const std::string& name) {
  absl::StatusOr<std::string> text = s.ScrapeMetrics();
  return text.ok() ? Sample(*text, name) : -1;
}

using Stubs = std::vector<std::unique_ptr<v1::AudiencesService::Stub>>;

// `n` stubs, each on a connection of its own, to `address`.
Stubs Connect(const std::string& address, int n) {
  Stubs stubs;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(v1::AudiencesService::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

// How a scenario sends its calls; the floor server gets the same calls as the gateway.
struct CallShape {
  int channels = 16;
  int lanes = 0;  // > 0: call i names workspace "ws<i % lanes>" (x-segment-workspace).
  absl::Duration deadline = absl::Hours(1);
};

// The flood: 16 connections, hour-long deadlines (lanes set from --lanes). In flight: 8
// connections, 120 s deadlines, no workspace named.
const CallShape kFloodShape{16, 0, absl::Hours(1)};
const CallShape kInFlightShape{8, 0, absl::Seconds(120)};

// Sends `n` GetAudience calls of audience `id` at once, round-robin over `stubs`; each counts
// `done` down when it finishes.
std::vector<std::unique_ptr<Call>> SendCalls(const Stubs& stubs, int n, const CallShape& shape,
                                             const std::string& id, Countdown& done) {
  std::vector<std::unique_ptr<Call>> calls;
  const absl::Time deadline = absl::Now() + shape.deadline;
  for (int i = 0; i < n; ++i) {
    auto call = std::make_unique<Call>();
    call->ctx.set_deadline(absl::ToChronoTime(deadline));
    if (shape.lanes > 0) {
      call->ctx.AddMetadata("x-segment-workspace", absl::StrCat("ws", i % shape.lanes));
    }
    call->req.set_space_id(kSpace);
    call->req.set_id(id);
    Call* raw = call.get();
    stubs[i % stubs.size()]->async()->GetAudience(&raw->ctx, &raw->req, &raw->resp,
                                                  [raw, &done](grpc::Status st) {
                                                    raw->status = std::move(st);
                                                    done.Done();
                                                  });
    calls.push_back(std::move(call));
  }
  return calls;
}

std::string CreateAudience(Stack& s, const std::string& workspace) {
  v1::CreateAudienceRequest create = sag::testing::AudienceRequest(kSpace, "bench");
  v1::CreateAudienceResponse created;
  auto ctx = sag::testing::Context();
  if (!workspace.empty()) ctx->AddMetadata("x-segment-workspace", workspace);
  grpc::Status st = s.stub().CreateAudience(ctx.get(), create, &created);
  if (!st.ok()) std::cerr << "create failed: " << st.error_message() << "\n";
  return st.ok() ? created.audience().id() : "";
}

struct FloodResult {
  int calls = 0;
  int refused = 0;  // RESOURCE_EXHAUSTED, memory budget full
  int parked = 0;   // the gateway's calls_in_flight once the flood settled
  int other = 0;    // neither: answered otherwise
  std::string first_other;
  int64_t budget = 0;
  long rss_idle_kb = 0, rss_settled_kb = 0, rss_peak_kb = 0;
  double settle_s = 0;
  double budget_in_use = 0;
  sag::testing::HealthProber::Result health;
};

// A --config naming `lanes` workspaces on one token file: a lane each for GetAudience.
std::string WriteWorkspaces(int lanes) {
  const std::string dir = sag::testing::MakeTempDir();
  std::ofstream(dir + "/token") << kToken << "\n";
  std::string yaml = "workspaces:\n";
  for (int i = 0; i < lanes; ++i) {
    absl::StrAppend(&yaml, "  - name: ws", i, "\n    token_file: ", dir, "/token\n");
  }
  std::ofstream(dir + "/gateway.yaml") << yaml;
  return dir + "/gateway.yaml";
}

bool RunFlood(FloodResult* r) {
  r->calls = absl::GetFlag(FLAGS_calls);
  const int lanes = std::max(1, absl::GetFlag(FLAGS_lanes));
  StackOptions options;
  options.token = "";  // The workspaces' token files.
  options.sim_args = {"--rate_limits=GetAudience=1000/1s,CreateAudience=1000/1s"};
  options.gateway_args = {"--config=" + WriteWorkspaces(lanes),
                          "--rate_limits=GetAudience=" + absl::GetFlag(FLAGS_limit),
                          "--max_memory=" + absl::GetFlag(FLAGS_max_memory)};
  auto stack = Stack::Start(options);
  if (!stack.ok()) {
    std::cerr << "cannot start: " << stack.status() << "\n";
    return false;
  }
  Stack& s = **stack;
  const std::string id = CreateAudience(s, "ws0");
  if (id.empty()) return false;
  r->budget = static_cast<int64_t>(Metric(s, "audiences_gateway_memory_limit_bytes"));
  const pid_t gw = s.gateway().pid();
  absl::SleepFor(absl::Seconds(1));  // Let the gateway settle before the baseline.
  r->rss_idle_kb = sag::bench::ReadProcStats(gw).rss_kb;

  Stubs stubs = Connect(s.gateway_address(), kFloodShape.channels);
  Countdown done(r->calls);
  sag::bench::PeakSampler sampler(gw, 20);
  sag::testing::HealthProber prober(s.gateway_address(), absl::Milliseconds(100), absl::Seconds(5));
  const absl::Time start = absl::Now();
  CallShape shape = kFloodShape;
  shape.lanes = lanes;
  std::vector<std::unique_ptr<Call>> calls = SendCalls(stubs, r->calls, shape, id, done);
  // Settled: every call is finished (refused, or answered by its slot) or held by the gateway.
  const absl::Time give_up = absl::Now() + absl::Seconds(120);
  while (absl::Now() < give_up) {
    const double held = Metric(s, "audiences_gateway_calls_in_flight");
    if (held >= 0 && done.left() <= static_cast<int>(held)) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  r->settle_s = absl::ToDoubleSeconds(absl::Now() - start);
  absl::SleepFor(absl::Seconds(2));  // Probes and RSS samples with the flood parked.
  r->health = prober.Stop();
  r->parked = static_cast<int>(Metric(s, "audiences_gateway_calls_in_flight"));
  r->budget_in_use = Metric(s, "audiences_gateway_memory_in_use_bytes");
  r->rss_settled_kb = sag::bench::ReadProcStats(gw).rss_kb;

  for (auto& c : calls) c->ctx.TryCancel();
  if (!done.WaitFor(absl::Seconds(120))) {
    std::cerr << "cancelled calls did not all finish\n";
    return false;
  }
  sampler.Stop();
  r->rss_peak_kb = sampler.peak_rss_kb();
  for (const auto& c : calls) {
    const grpc::StatusCode code = c->status.error_code();
    if (code == grpc::StatusCode::RESOURCE_EXHAUSTED &&
        absl::StrContains(c->status.error_message(), "memory budget is full")) {
      ++r->refused;
    } else if (code != grpc::StatusCode::CANCELLED && !c->status.ok()) {
      ++r->other;
      if (r->first_other.empty()) {
        r->first_other = absl::StrCat(code, ": ", c->status.error_message());
      }
    }
  }
  return true;
}

struct InFlightResult {
  int calls = 0;
  int sent = 0;  // upstream requests the simulator had received when RSS was read
  int ok = 0;
  long rss_idle_kb = 0, rss_in_flight_kb = 0;
};

bool RunInFlight(InFlightResult* r) {
  r->calls = absl::GetFlag(FLAGS_in_flight);
  const std::string unlimited = "1000000/1s";
  StackOptions options;
  options.sim_args = {
      absl::StrCat("--latency=", absl::FormatDuration(absl::GetFlag(FLAGS_latency))),
      absl::StrCat("--threads=", r->calls + 64),
      absl::StrCat("--rate_limits=GetAudience=", unlimited, ",CreateAudience=", unlimited)};
  options.gateway_args = {absl::StrCat("--upstream_max_connections=", r->calls),
                          "--max_memory=" + absl::GetFlag(FLAGS_max_memory),
                          absl::StrCat("--rate_limits=GetAudience=", unlimited)};
  auto stack = Stack::Start(options);
  if (!stack.ok()) {
    std::cerr << "cannot start: " << stack.status() << "\n";
    return false;
  }
  Stack& s = **stack;
  const std::string id = CreateAudience(s, "");
  if (id.empty()) return false;
  const pid_t gw = s.gateway().pid();
  absl::SleepFor(absl::Seconds(1));
  r->rss_idle_kb = sag::bench::ReadProcStats(gw).rss_kb;
  const int64_t before = s.SimStats()["by_operation"].value("GetAudience", int64_t{0});

  Stubs stubs = Connect(s.gateway_address(), kInFlightShape.channels);
  Countdown done(r->calls);
  std::vector<std::unique_ptr<Call>> calls = SendCalls(stubs, r->calls, kInFlightShape, id, done);
  // All sent upstream (the simulator counts a request when it arrives, and answers later).
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (absl::Now() < give_up && r->sent < r->calls) {
    r->sent =
        static_cast<int>(s.SimStats()["by_operation"].value("GetAudience", int64_t{0}) - before);
    if (r->sent < r->calls) absl::SleepFor(absl::Milliseconds(20));
  }
  r->rss_in_flight_kb = sag::bench::ReadProcStats(gw).rss_kb;
  if (!done.WaitFor(absl::Seconds(120))) return false;
  for (const auto& c : calls) r->ok += c->status.ok() ? 1 : 0;
  return true;
}

// The floor: bench_memory_floor (tests/bench/memory_floor_server.cc), a gRPC server built like
// the gateway's that holds every call, sent the same calls as the gateway.
struct FloorResult {
  int calls = 0;
  int held = 0;  // calls the server held when RSS was read
  long rss_idle_kb = 0, rss_held_kb = 0;
  double KbPerCall() const {
    return held > 0 ? static_cast<double>(rss_held_kb - rss_idle_kb) / held : 0;
  }
};

// Calls the floor server holds (its answer to a GetAudience of id "held?"), or -1.
int HeldByFloor(v1::AudiencesService::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::GetAudienceRequest req;
  req.set_id("held?");
  v1::GetAudienceResponse resp;
  if (!stub.GetAudience(&ctx, req, &resp).ok()) return -1;
  int held = -1;
  return absl::SimpleAtoi(resp.audience().name(), &held) ? held : -1;
}

bool RunFloor(int n, const CallShape& shape, FloorResult* r) {
  r->calls = n;
  auto server = sag::testing::Subprocess::Start(
      {SAG_MEMORY_FLOOR_BIN, "--max_memory=" + absl::GetFlag(FLAGS_max_memory)});
  if (!server.ok()) {
    std::cerr << "cannot start the floor server: " << server.status() << "\n";
    return false;
  }
  auto line = (*server)->WaitForLine("listening on", absl::Seconds(20));
  if (!line.ok()) return false;
  const std::string address = absl::StrCat("127.0.0.1:", sag::testing::PortFromLine(*line));
  Stubs stubs = Connect(address, shape.channels);
  if (HeldByFloor(*stubs[0]) != 0) return false;  // Connected; the idle baseline's warm-up.
  const pid_t pid = (*server)->pid();
  absl::SleepFor(absl::Seconds(1));  // As the gateway's idle baseline.
  r->rss_idle_kb = sag::bench::ReadProcStats(pid).rss_kb;
  Countdown done(n);
  std::vector<std::unique_ptr<Call>> calls = SendCalls(stubs, n, shape, "floor", done);
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (absl::Now() < give_up && r->held < n) {
    r->held = std::max(0, HeldByFloor(*stubs[0]));
    if (r->held < n) absl::SleepFor(absl::Milliseconds(20));
  }
  r->rss_held_kb = sag::bench::ReadProcStats(pid).rss_kb;
  for (auto& c : calls) c->ctx.TryCancel();
  const bool finished = done.WaitFor(absl::Seconds(60));
  if (!finished) std::cerr << "floor: cancelled calls did not all finish\n";
  return finished && r->held == n;
}

double PerParked(const FloodResult& f) {
  return f.parked > 0 ? static_cast<double>(f.rss_settled_kb - f.rss_idle_kb) / f.parked : 0;
}

double PerInFlight(const InFlightResult& in) {
  return in.sent > 0 ? static_cast<double>(in.rss_in_flight_kb - in.rss_idle_kb) / in.sent : 0;
}

const char* Mark(bool met) { return met ? "ok" : "MISSED"; }

void PrintFlood(const FloodResult& f) {
  std::vector<double> lat = f.health.latency_ms;
  const double p50 = sag::bench::PercentileOf(lat, 0.50), p99 = sag::bench::PercentileOf(lat, 0.99);
  const double max = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
  const double per_parked = PerParked(f);
  std::printf("bench_memory: %d GetAudience calls at once on %d lanes at %s, --max_memory=%s\n",
              f.calls, absl::GetFlag(FLAGS_lanes), absl::GetFlag(FLAGS_limit).c_str(),
              absl::GetFlag(FLAGS_max_memory).c_str());
  std::printf("  %-30s %-58s %s\n", "figure", "measured", "goal");
  std::printf("  %-30s %-58s %s\n", "gateway peak RSS",
              absl::StrFormat("%.1f MB (idle %.1f MB, budget %.1f MB)", f.rss_peak_kb / 1024.0,
                              f.rss_idle_kb / 1024.0, f.budget / 1048576.0)
                  .c_str(),
              absl::StrCat("< budget ", Mark(f.rss_peak_kb * 1024 < f.budget)).c_str());
  std::printf("  %-30s %-58s %s\n", "calls parked / refused",
              absl::StrFormat("%d / %d (memory budget full), %d other; settled in %.1f s", f.parked,
                              f.refused, f.other, f.settle_s)
                  .c_str(),
              "(report)");
  std::printf("  %-30s %-58s %s\n", "budget in use (gateway)",
              absl::StrFormat("%.1f MB", f.budget_in_use / 1048576.0).c_str(), "(report)");
  std::printf("  %-30s %-58s %s\n", "health p50 / p99 / max",
              absl::StrFormat("%.1f / %.1f / %.1f ms (%zu probes, %d failed)", p50, p99, max,
                              lat.size(), f.health.failed)
                  .c_str(),
              absl::StrCat("p99 < 1 s ", Mark(p99 < 1000 && f.health.failed == 0)).c_str());
  std::printf("  %-30s %-58s %s\n", "RSS per parked call",
              absl::StrFormat("%.1f KB ((%.1f - %.1f MB) / %d)", per_parked,
                              f.rss_settled_kb / 1024.0, f.rss_idle_kb / 1024.0, f.parked)
                  .c_str(),
              absl::StrCat("<= 8 KB ", Mark(per_parked <= 8)).c_str());
  if (!f.first_other.empty()) std::printf("  first other error: %s\n", f.first_other.c_str());
}

// The floor's figures and the gateway's excess over it (KB per call), after the gateway's.
void PrintFloor(const char* what, const FloorResult& fl, double gateway_kb) {
  std::printf(
      "  %-30s %-58s %s\n", absl::StrCat("gRPC floor per held call, ", what).c_str(),
      absl::StrFormat("%.1f KB ((%.1f - %.1f MB) / %d held, bench_memory_floor)", fl.KbPerCall(),
                      fl.rss_held_kb / 1024.0, fl.rss_idle_kb / 1024.0, fl.held)
          .c_str(),
      "(report)");
  std::printf(
      "  %-30s %-58s %s\n", absl::StrCat("gateway excess, ", what).c_str(),
      absl::StrFormat("%.1f KB per call over the floor", gateway_kb - fl.KbPerCall()).c_str(),
      "(report)");
}

nlohmann::json FloorJson(const FloorResult& fl, double gateway_kb) {
  return {{"calls", fl.calls},
          {"held", fl.held},
          {"rss_idle_kb", fl.rss_idle_kb},
          {"rss_held_kb", fl.rss_held_kb},
          {"kb_per_held_call", fl.KbPerCall()},
          {"gateway_excess_kb_per_call", gateway_kb - fl.KbPerCall()}};
}

void WriteJson(const std::string& path, const FloodResult& f, const FloorResult& floor_parked,
               const InFlightResult* in, const FloorResult& floor_in_flight) {
  std::vector<double> lat = f.health.latency_ms;
  nlohmann::json j = {
      {"scenario", "memory"},
      {"calls", f.calls},
      {"lanes", absl::GetFlag(FLAGS_lanes)},
      {"limit", absl::GetFlag(FLAGS_limit)},
      {"budget_bytes", f.budget},
      {"refused", f.refused},
      {"parked", f.parked},
      {"other", f.other},
      {"rss_idle_kb", f.rss_idle_kb},
      {"rss_settled_kb", f.rss_settled_kb},
      {"rss_peak_kb", f.rss_peak_kb},
      {"health_probes", lat.size()},
      {"health_failed", f.health.failed},
      {"health_p50_ms", sag::bench::PercentileOf(lat, 0.50)},
      {"health_p99_ms", sag::bench::PercentileOf(lat, 0.99)},
      {"health_max_ms", lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end())},
      {"kb_per_parked_call", PerParked(f)},
      {"floor", FloorJson(floor_parked, PerParked(f))}};
  if (in != nullptr) {
    j["in_flight"] = {{"calls", in->calls},
                      {"sent", in->sent},
                      {"ok", in->ok},
                      {"rss_idle_kb", in->rss_idle_kb},
                      {"rss_in_flight_kb", in->rss_in_flight_kb},
                      {"kb_per_call", PerInFlight(*in)},
                      {"floor", FloorJson(floor_in_flight, PerInFlight(*in))}};
  }
  std::ofstream(path) << j.dump(2) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  FloodResult f;
  if (!RunFlood(&f)) return 2;
  PrintFlood(f);
  // The floor gets as many calls as the gateway held, sent the same way.
  FloorResult floor_parked, floor_in_flight;
  CallShape shape = kFloodShape;
  shape.lanes = std::max(1, absl::GetFlag(FLAGS_lanes));
  if (!RunFloor(f.parked > 0 ? f.parked : f.calls, shape, &floor_parked)) return 2;
  PrintFloor("parked", floor_parked, PerParked(f));
  InFlightResult in;
  const bool in_flight_ran = absl::GetFlag(FLAGS_in_flight) > 0;
  if (in_flight_ran) {
    if (!RunInFlight(&in)) return 2;
    std::printf("  %-30s %-58s %s\n", "RSS per call in flight",
                absl::StrFormat("%.1f KB ((%.1f - %.1f MB) / %d sent; %d/%d ok)", PerInFlight(in),
                                in.rss_in_flight_kb / 1024.0, in.rss_idle_kb / 1024.0, in.sent,
                                in.ok, in.calls)
                    .c_str(),
                absl::StrCat("<= 16 KB ", Mark(PerInFlight(in) <= 16)).c_str());
    if (!RunFloor(in.sent > 0 ? in.sent : in.calls, kInFlightShape, &floor_in_flight)) return 2;
    PrintFloor("in flight", floor_in_flight, PerInFlight(in));
  }
  if (std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    WriteJson(path, f, floor_parked, in_flight_ran ? &in : nullptr, floor_in_flight);
  }
  const bool ok = f.other == 0 && f.health.failed == 0 && (!in_flight_ran || in.ok == in.calls);
  return ok ? 0 : 1;
}
