// What an uncached call's thread hops cost the gateway: its CPU per call at 1 call in flight
// against --concurrency in flight, and its uncached throughput pinned to 1 core against 2 cores;
// this build against a baseline gateway binary (--baseline_gateway, e.g. main's build), in the
// same run.
//
// Upstream: one nginx answering GetAudience from memory (tests/bench/nginx_upstream.h). For each
// build, two gateways (rate limit lifted), each started under taskset so that it sizes its
// thread pools to what it may use: one on core 0 only, one on cores 0-1. Three measurements per
// build, each of a closed loop of gRPC GetAudience calls (tests/bench/loadgen.h):
//   one       2-core gateway, 1 call in flight:              gateway CPU per call
//   many      2-core gateway, --concurrency calls in flight: gateway CPU per call and calls/s
//   one_core  1-core gateway, --concurrency calls in flight: calls/s
// --rounds rounds of every measurement of both builds, alternated, --seconds each, so that
// machine noise is spread over all of them; the first round has a --warmup, later ones 100 ms.
//
// Goals (printed, not enforced: they depend on the machine): CPU per call at 1 in flight at most
// 1.2x that at --concurrency; calls/s on 2 cores at least 1.6x that on 1 core. The load generator
// and nginx run on the same machine (unpinned, or on --others_cpus): on 2 cores they compete with
// the 2-core gateway, which bounds the scaling figure; their CPU per call is printed next to it.
//
//   bench_hops [--baseline_gateway=PATH] [--concurrency=16] [--seconds=2] [--rounds=3]
//              [--others_cpus=LIST] [--json=FILE]
//
// Exit code 0 when every call succeeded; 1 otherwise; 2 on a setup failure; 77 (skipped, for
// ctest) when there is no nginx or taskset binary, or fewer than 2 cores.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/bench/loadgen.h"
#include "tests/bench/nginx_upstream.h"
#include "tests/bench/proc_stats.h"
#include "tests/common/stack.h"

ABSL_FLAG(std::string, baseline_gateway, "",
          "An audiences-gateway binary to measure alongside this build's (e.g. main's).");
ABSL_FLAG(int, concurrency, 16, "Calls in flight of the `many` and `one_core` measurements.");
ABSL_FLAG(double, seconds, 2, "Measured seconds per measurement and round.");
ABSL_FLAG(int, rounds, 3, "Rounds of every measurement, alternated.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Warm-up of each measurement's first round.");
ABSL_FLAG(std::string, others_cpus, "",
          "Pin this load generator and nginx to these CPUs (taskset list); \"\" = unpinned.");
ABSL_FLAG(std::string, nginx, "/usr/sbin/nginx", "The nginx binary (else nginx on PATH).");
ABSL_FLAG(std::string, json, "", "Also write the figures to this JSON file.");

namespace {

namespace v1 = segment::audiences::v1;
using sag::bench::LoadResult;

constexpr char kTaskset[] = "/usr/bin/taskset";
constexpr absl::Duration kRoundWarmup = absl::Milliseconds(100);

// A gateway process and what the load generator needs to call it.
struct Gateway {
  std::unique_ptr<sag::testing::Stack> stack;
  std::unique_ptr<grpc::GenericStub> stub;
};

// Each of a process's threads, by thread id: its name, voluntary context switches (sleeps: waits
// for a lock, a condition or I/O; a thread woken once per call shows one a call) and CPU time.
struct ThreadStat {
  std::string name;
  long sleeps = 0;
  double cpu_s = 0;
};
using ThreadStats = std::map<std::string, ThreadStat>;

double ThreadCpuSeconds(const std::filesystem::path& task) {
  std::ifstream stat(task / "stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = content.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(content.substr(close + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stol(field);  // utime, stime
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

ThreadStats ReadThreadStats(pid_t pid) {
  ThreadStats out;
  std::error_code ec;
  const std::string dir = absl::StrCat("/proc/", pid, "/task");
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    ThreadStat& t = out[entry.path().filename().string()];
    std::ifstream status(entry.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Name:", 0) == 0) {
        t.name = std::string(absl::StripAsciiWhitespace(line.substr(5)));
      }
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) t.sleeps = std::stol(line.substr(24));
    }
    t.cpu_s = ThreadCpuSeconds(entry.path());
  }
  return out;
}

// Adds what each thread did between two readings: sleeps by thread name, CPU by thread id.
void AddThreadStats(const ThreadStats& before, const ThreadStats& after,
                    std::map<std::string, long>* sleeps_by_name, ThreadStats* cpu_by_tid) {
  for (const auto& [tid, t] : after) {
    auto it = before.find(tid);
    const ThreadStat zero;
    const ThreadStat& b = it != before.end() ? it->second : zero;
    (*sleeps_by_name)[t.name] += t.sleeps - b.sleeps;
    ThreadStat& c = (*cpu_by_tid)[tid];
    c.name = t.name;
    c.cpu_s += t.cpu_s - b.cpu_s;
  }
}

// One measurement: a closed loop on one gateway, its rounds and the CPU spent meanwhile.
struct Measurement {
  std::string build;  // "baseline" or "this".
  std::string key;    // "one", "many", "one_core".
  int loop_concurrency = 0;
  pid_t gateway_pid = 0;
  std::unique_ptr<sag::bench::ClosedLoop> loop;
  std::vector<LoadResult> rounds;
  double gateway_cpu_s = 0, client_cpu_s = 0, nginx_cpu_s = 0;
  std::map<std::string, long> switches;  // The gateway's sleeps, by thread name, every round.
  ThreadStats threads;                   // The gateway's CPU, by thread, every round.
  LoadResult total;

  double PerCall(double x) const {
    return total.calls() > 0 ? x / static_cast<double>(total.calls()) : 0;
  }
  double PerCallUs(double cpu_s) const { return PerCall(cpu_s * 1e6); }
};

int UsableCores() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  return sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
}

// Pins the calling thread (and so every thread created after, gRPC's included) to `list`.
bool PinThisProcess(const std::string& list) {
  return std::system(
             absl::StrCat(kTaskset, " -a -p -c ", list, " ", getpid(), " >/dev/null").c_str()) == 0;
}

absl::StatusOr<Gateway> StartGateway(const std::string& binary, const std::string& cpus,
                                     const std::string& upstream_url) {
  sag::testing::StackOptions options;
  options.start_sim = false;
  options.upstream_url = upstream_url;
  options.gateway_bin = binary;
  options.gateway_launcher = {kTaskset, "-c", cpus};
  options.gateway_args = {"--rate_limits=GetAudience=1000000/1s", "--log_level=warn"};
  auto stack = sag::testing::Stack::Start(options);
  if (!stack.ok()) return stack.status();
  Gateway g;
  g.stack = std::move(*stack);
  g.stub = std::make_unique<grpc::GenericStub>(g.stack->channel());
  // One call, to check that the gateway translates the body.
  v1::GetAudienceRequest request;
  request.set_space_id(sag::bench::kSpace);
  request.set_id(sag::bench::kAudience);
  v1::GetAudienceResponse response;
  grpc::Status st = g.stack->stub().GetAudience(sag::testing::Context().get(), request, &response);
  if (!st.ok() || response.audience().id() != sag::bench::kAudience) {
    return absl::InternalError(
        absl::StrCat("the gateway (", binary, ") did not answer: ", st.error_message()));
  }
  return g;
}

sag::bench::GrpcUnary GetAudienceCall() {
  v1::GetAudienceRequest request;
  request.set_space_id(sag::bench::kSpace);
  request.set_id(sag::bench::kAudience);
  sag::bench::GrpcUnary call;
  call.method = "/segment.audiences.v1.AudiencesService/GetAudience";
  call.request = request.SerializeAsString();
  return call;
}

void RunRound(Measurement& m, int round, pid_t nginx_pid) {
  const absl::Duration warmup = round == 0 ? absl::GetFlag(FLAGS_warmup) : kRoundWarmup;
  const auto g0 = sag::bench::ReadProcStats(m.gateway_pid);
  const auto n0 = sag::bench::ReadProcStats(nginx_pid);
  const auto c0 = sag::bench::ReadProcStats(getpid());
  const ThreadStats t0 = ReadThreadStats(m.gateway_pid);
  LoadResult r = m.loop->Run(warmup, absl::Seconds(absl::GetFlag(FLAGS_seconds)));
  AddThreadStats(t0, ReadThreadStats(m.gateway_pid), &m.switches, &m.threads);
  m.gateway_cpu_s += sag::bench::ReadProcStats(m.gateway_pid).cpu_seconds - g0.cpu_seconds;
  m.nginx_cpu_s += sag::bench::ReadProcStats(nginx_pid).cpu_seconds - n0.cpu_seconds;
  m.client_cpu_s += sag::bench::ReadProcStats(getpid()).cpu_seconds - c0.cpu_seconds;
  std::printf("  round %d %-8s %-8s %s\n", round + 1, m.build.c_str(), m.key.c_str(),
              sag::bench::FormatResult(r).c_str());
  m.rounds.push_back(std::move(r));
}

// One build's figures and goals, printed and as JSON.
nlohmann::json Report(const std::string& build, const Measurement& one, const Measurement& many,
                      const Measurement& one_core, int concurrency) {
  const double cpu_one = one.PerCallUs(one.gateway_cpu_s);
  const double cpu_many = many.PerCallUs(many.gateway_cpu_s);
  const double cpu_ratio = cpu_many > 0 ? cpu_one / cpu_many : 0;
  const double scaling =
      one_core.total.throughput > 0 ? many.total.throughput / one_core.total.throughput : 0;
  const bool cpu_met = cpu_ratio > 0 && cpu_ratio <= 1.2;
  const bool scaling_met = scaling >= 1.6;
  std::printf("  %s build:\n", build.c_str());
  std::printf(
      "    gateway CPU per call   1 in flight %.0f us, %d in flight %.0f us: %.2fx "
      "(goal <= 1.2: %s)\n",
      cpu_one, concurrency, cpu_many, cpu_ratio, cpu_met ? "met" : "NOT met");
  std::printf("    uncached calls/s       1 core %.0f, 2 cores %.0f: %.2fx (goal >= 1.6: %s)\n",
              one_core.total.throughput, many.total.throughput, scaling,
              scaling_met ? "met" : "NOT met");
  std::printf(
      "    p50 latency            1 in flight %.0f us; %d in flight: 2 cores %.0f us, "
      "1 core %.0f us\n",
      one.total.latency.p50_us, concurrency, many.total.latency.p50_us,
      one_core.total.latency.p50_us);
  std::printf(
      "    others' CPU per call   at %d in flight on 2 cores: load generator %.0f us, "
      "nginx %.0f us (gateway %.0f us)\n",
      concurrency, many.PerCallUs(many.client_cpu_s), many.PerCallUs(many.nginx_cpu_s), cpu_many);
  for (const Measurement* m : {&one, &many}) {
    std::vector<std::pair<std::string, long>> sorted(m->switches.begin(), m->switches.end());
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.second > b.second; });
    std::string line;
    for (const auto& [name, n] : sorted) {
      const double per_call = m->PerCall(static_cast<double>(n));
      if (per_call < 0.05) continue;
      absl::StrAppendFormat(&line, "%s%s %.2f", line.empty() ? "" : ", ", name, per_call);
    }
    std::printf("    sleeps/call, by thread %d in flight: %s\n", m->loop_concurrency, line.c_str());
  }
  // The thread that works most per call bounds the calls/s: 1 s / its CPU per call.
  const ThreadStat* busiest = nullptr;
  for (const auto& [tid, t] : many.threads) {
    if (busiest == nullptr || t.cpu_s > busiest->cpu_s) busiest = &t;
  }
  const double busiest_us = busiest != nullptr ? many.PerCallUs(busiest->cpu_s) : 0;
  std::printf(
      "    busiest thread         at %d in flight: %s, %.0f us per call (alone it could "
      "serve %.0f calls/s)\n",
      concurrency, busiest != nullptr ? busiest->name.c_str() : "n/a", busiest_us,
      busiest_us > 0 ? 1e6 / busiest_us : 0);
  nlohmann::json j;
  for (const Measurement* m : {&one, &many, &one_core}) {
    nlohmann::json r = sag::bench::ToJson(m->total);
    nlohmann::json switches;
    for (const auto& [name, n] : m->switches) switches[name] = m->PerCall(static_cast<double>(n));
    r["gateway_sleeps_per_call"] = std::move(switches);
    r["cpu_us_per_call"] = {{"gateway", m->PerCallUs(m->gateway_cpu_s)},
                            {"client", m->PerCallUs(m->client_cpu_s)},
                            {"nginx", m->PerCallUs(m->nginx_cpu_s)}};
    j[m->key] = std::move(r);
  }
  j["busiest_thread"] = {{"name", busiest != nullptr ? busiest->name : ""},
                         {"cpu_us_per_call", busiest_us}};
  j["cpu_us_per_call_one"] = cpu_one;
  j["cpu_us_per_call_many"] = cpu_many;
  j["cpu_ratio_one_to_many"] = {{"value", cpu_ratio}, {"goal", 1.2}, {"met", cpu_met}};
  j["calls_per_s_one_core"] = one_core.total.throughput;
  j["calls_per_s_two_cores"] = many.total.throughput;
  j["core_scaling"] = {{"value", scaling}, {"goal", 1.6}, {"met", scaling_met}};
  return j;
}

int Run() {
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (concurrency < 1 || rounds < 1 || !(absl::GetFlag(FLAGS_seconds) > 0)) {
    std::cerr << "--concurrency, --rounds and --seconds must be positive\n";
    return 2;
  }
  const std::string nginx_binary = sag::bench::FindNginx(absl::GetFlag(FLAGS_nginx));
  if (nginx_binary.empty() || access(kTaskset, X_OK) != 0 || UsableCores() < 2) {
    std::cout << "bench_hops: needs nginx, " << kTaskset << " and 2 cores. Skipped.\n";
    return 77;
  }
  const std::string others = absl::GetFlag(FLAGS_others_cpus);
  if (!others.empty() && !PinThisProcess(others)) {
    std::cerr << "cannot pin the load generator to " << others << "\n";
    return 2;
  }
  auto nginx = sag::bench::StartNginx(nginx_binary, sag::bench::AudienceBody());
  if (!nginx.ok()) {
    std::cerr << "cannot start nginx: " << nginx.status() << "\n";
    return 2;
  }
  const pid_t nginx_pid = (*nginx)->process->pid();
  if (!others.empty() &&
      std::system(
          absl::StrCat(kTaskset, " -a -p -c ", others, " ", nginx_pid, " >/dev/null").c_str()) !=
          0) {
    std::cerr << "cannot pin nginx to " << others << "\n";
    return 2;
  }

  std::vector<std::pair<std::string, std::string>> builds;  // name, binary ("" = this build)
  if (!absl::GetFlag(FLAGS_baseline_gateway).empty()) {
    builds.emplace_back("baseline", absl::GetFlag(FLAGS_baseline_gateway));
  }
  builds.emplace_back("this", "");
  std::vector<Gateway> gateways;  // Kept alive (idle between their measurements).
  std::vector<Measurement> measurements;
  const sag::bench::GrpcUnary call = GetAudienceCall();
  for (const auto& [name, binary] : builds) {
    for (const char* cpus : {"0,1", "0"}) {
      auto g = StartGateway(binary, cpus, (*nginx)->static_url());
      if (!g.ok()) {
        std::cerr << "cannot start the " << name << " gateway: " << g.status() << "\n";
        return 2;
      }
      gateways.push_back(std::move(*g));
      const Gateway& gw = gateways.back();
      const bool one_core = std::string(cpus) == "0";
      for (const std::string& key : one_core ? std::vector<std::string>{"one_core"}
                                             : std::vector<std::string>{"one", "many"}) {
        Measurement m;
        m.build = name;
        m.key = key;
        m.gateway_pid = gw.stack->gateway().pid();
        m.loop_concurrency = key == "one" ? 1 : concurrency;
        m.loop = std::make_unique<sag::bench::ClosedLoop>(
            m.loop_concurrency, sag::bench::GrpcUnaryIssue(gw.stub.get(), call));
        measurements.push_back(std::move(m));
      }
    }
  }

  std::printf(
      "bench_hops: uncached GetAudience through the gateway (nginx upstream); %d rounds of %.1f s "
      "per measurement, alternated; load generator and nginx %s; %d cores\n",
      rounds, absl::GetFlag(FLAGS_seconds),
      others.empty() ? "unpinned" : ("on CPUs " + others).c_str(), UsableCores());
  for (int round = 0; round < rounds; ++round) {
    for (Measurement& m : measurements) RunRound(m, round, nginx_pid);
  }

  int exit_code = 0;
  std::map<std::string, std::map<std::string, Measurement*>> by_build;
  for (Measurement& m : measurements) {
    m.total = sag::bench::Combine(m.rounds);
    if (m.total.failed + m.total.warmup_failed > 0 || m.total.ok == 0) {
      std::printf("  FAILED: %s %s: %s\n", m.build.c_str(), m.key.c_str(),
                  m.total.first_error.c_str());
      exit_code = 1;
    }
    by_build[m.build][m.key] = &m;
  }
  nlohmann::json out = {
      {"scenario", "hops"},     {"concurrency", concurrency},
      {"rounds", rounds},       {"seconds_per_round", absl::GetFlag(FLAGS_seconds)},
      {"cores", UsableCores()}, {"others_cpus", others}};
  for (const auto& [name, binary] : builds) {
    auto& b = by_build[name];
    out[name] = Report(name, *b["one"], *b["many"], *b["one_core"], concurrency);
    if (!binary.empty()) out[name]["binary"] = binary;
  }
  out["ok"] = exit_code == 0;
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return Run();
}
