// What sharing one rate budget through Redis (--redis_url) achieves and costs, measured on a real
// redis-server (Debian's, loopback, no persistence), real segment-sim and real gateway replicas:
//
//  1. Shared budget: --replicas gateways (default 3) with --redis_url and --replicas=N in front of
//     one simulator; GetAudience (never cached) is limited to --limit (default 10/1s) on the
//     simulator and on every replica. --callers callers per replica (x-caller-id) each keep
//     --inflight GetAudience calls in flight (long deadlines) for --warmup + --seconds; at the end
//     the calls still queued are cancelled (counted apart, not as failures). Over the steady
//     window (after --warmup) it prints, from the simulator's /__sim/stats:
//       - aggregate budget utilisation = requests the upstream served per second / the limit
//         (goal >= 90%; the gateway's 2% pacing margin caps it at ~98%),
//       - upstream 429s over the whole run (goal 0),
//       - callers' success rate (goal 100%), Jain's fairness index across the replicas and across
//         all callers (their successful calls in the window),
//       - from /__sim/requests: the gaps between consecutive upstream GetAudience requests (p50,
//         p99, max; the pacing interval is limit.per / N * 1.02), which show where budget is lost,
//       - from each replica's /metrics: its upstream 429s, calls refused by the limiter and
//         audiences_gateway_redis_degraded.
//  2. Redis round trip: the same uncached GetAudience, not rate-limited (1,000,000/1s on the
//     simulator and gateways), through a gateway WITH --redis_url and an identical gateway
//     WITHOUT it (in-process budget), same simulator, --concurrency calls in flight (each a
//     blocking caller thread), --rounds alternating rounds (the order flips every round) for
//     --latency_seconds per gateway and concurrency. Prints each gateway's caller-side p50 / p99
//     latency and the difference (the added latency per call), the gateways' own mean of
//     (call duration - upstream duration) from /metrics, and, as the floor, the latency of
//     RedisBudgetStore::TryTake itself (the one script the gateway runs per call) measured in this
//     process against the same redis-server. The gateway exports no Redis latency metric.
//
//   bench_scaleout [--seconds=10] [--warmup=2s] [--limit=10/1s] [--sim_limit=N/D] [--replicas=3]
//                  [--callers=3] [--inflight=20] [--min_utilisation=0.7] [--latency_seconds=4]
//                  [--concurrency=1,8] [--rounds=4] [--json=FILE]
//
// Exit code: 77 when /usr/bin/redis-server is missing (ctest SKIP_RETURN_CODE); 2 when the
// processes cannot be started; 1 when a caller's call failed, the upstream answered 429, or the
// utilisation is implausibly low (< --min_utilisation, 70%: a lane blocked until every rounded-up
// X-RateLimit-Reset gives 50%), so the smoke run in ctest can fail.
// The 90% goal is reported, not enforced.
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/ratelimit/limits.h"
#include "service/redis/redis_budget_store.h"
#include "service/redis/redis_client.h"
#include "tests/bench/loadgen.h"
#include "tests/common/redis_server.h"
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

ABSL_FLAG(double, seconds, 10, "1.: seconds of the measured window (after --warmup).");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(2),
          "1.: load before the measured window (queues fill, replicas settle).");
ABSL_FLAG(std::string, limit, "10/1s",
          "1.: GetAudience limit, N/DURATION, on the simulator and every replica.");
ABSL_FLAG(std::string, sim_limit, "",
          "1.: the simulator's GetAudience limit when it should differ from --limit (a "
          "diagnosis aid: a looser upstream never answers X-RateLimit-Remaining: 0).");
ABSL_FLAG(double, min_utilisation, 0.7,
          "1.: exit 1 below this budget utilisation (implausibly low; the goal is 0.9).");
ABSL_FLAG(int, replicas, 3, "1.: gateway replicas sharing the Redis.");
ABSL_FLAG(int, callers, 3, "1.: callers (x-caller-id) per replica.");
ABSL_FLAG(int, inflight, 20, "1.: calls each caller keeps in flight.");
ABSL_FLAG(double, latency_seconds, 4, "2.: seconds of load per gateway and concurrency.");
ABSL_FLAG(std::string, concurrency, "1,8", "2.: calls in flight, comma-separated levels.");
ABSL_FLAG(int, rounds, 4, "2.: alternating rounds per concurrency level.");
ABSL_FLAG(std::string, json, "", "Also write the figures to this JSON file.");

namespace {

namespace v1 = segment::audiences::v1;
using sag::testing::FreePort;  // For --metrics_listen (the replicas log at warn, not the address).
using sag::testing::RedisServer;
using sag::testing::Stack;
using sag::testing::StackOptions;
using sag::testing::Subprocess;
using Json = nlohmann::json;

constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kUnlimited[] =
    "GetAudience=1000000/1s,CreateAudience=1000000/1s,ListAudiences=1000000/1s";

// A segment-sim process of our own (so that every replica is a start_sim=false Stack).
struct Sim {
  std::unique_ptr<Subprocess> proc;
  int port = 0;

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port); }
  Json Get(const std::string& path) const {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(10, 0);
    auto res = client.Get(path.c_str());
    if (!res || res->status != 200) return Json();
    return Json::parse(res->body, nullptr, false);
  }
};

absl::StatusOr<Sim> StartSim(const std::string& rate_limits) {
  Sim sim;
  auto proc =
      Subprocess::Start({SAG_SIM_BIN, "--listen=127.0.0.1:0", "--token=" + StackOptions().token,
                         "--threads=128", "--rate_limits=" + rate_limits});
  if (!proc.ok()) return proc.status();
  sim.proc = std::move(*proc);
  auto line = sim.proc->WaitForLine("listening on", absl::Seconds(20));
  if (!line.ok()) return line.status();
  sim.port = sag::testing::PortFromLine(*line);
  if (sim.port == 0) return absl::InternalError("no port in: " + *line);
  return sim;
}

struct Gateway {
  std::unique_ptr<Stack> stack;
  int metrics_port = 0;
};

absl::StatusOr<Gateway> StartGateway(const Sim& sim, std::vector<std::string> args) {
  Gateway g;
  g.metrics_port = FreePort();
  StackOptions o;
  o.start_sim = false;
  o.upstream_url = sim.url();
  o.gateway_args = std::move(args);
  o.gateway_args.push_back("--log_level=warn");
  o.gateway_args.push_back(absl::StrCat("--metrics_listen=127.0.0.1:", g.metrics_port));
  auto s = Stack::Start(o);
  if (!s.ok()) return s.status();
  g.stack = std::move(*s);
  return g;
}

std::string Scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  auto res = client.Get("/metrics");
  return res && res->status == 200 ? res->body : "";
}

// The value of the sample `series` (name{labels} exactly as exported), or 0 when absent.
double MetricValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, series) || line.size() <= series.size() ||
        line[series.size()] != ' ') {
      continue;
    }
    double v = 0;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
  }
  return 0;
}

absl::StatusOr<std::string> CreateAudience(Stack& s) {
  v1::CreateAudienceRequest create;
  create.set_space_id(kSpace);
  create.mutable_audience()->set_name("scale-out bench");
  create.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  create.mutable_audience()->mutable_definition()->set_query("event('Purchased').count() >= 1");
  v1::CreateAudienceResponse created;
  grpc::Status st = s.stub().CreateAudience(sag::testing::Context().get(), create, &created);
  if (!st.ok()) return absl::InternalError("CreateAudience failed: " + st.error_message());
  return created.audience().id();
}

// --- 1. Shared budget ---

// Keeps `inflight` GetAudience calls going for every (replica, caller) until Stop(); each
// completion starts the next call. Calls are kept (not freed) until the Flood is destroyed, so
// Stop() can cancel them without racing their completion.
class Flood {
 public:
  struct Call {
    grpc::ClientContext ctx;
    v1::GetAudienceRequest req;
    v1::GetAudienceResponse resp;
    int replica = 0;
    int caller = 0;
    bool done = false;
    bool after_stop = false;  // Completed after Stop() began (CANCELLED is then expected).
    grpc::Status status;
    absl::Time end;
  };

  Flood(std::vector<Stack*> replicas, int callers, int inflight, std::string id)
      : replicas_(std::move(replicas)),
        callers_(callers),
        inflight_(inflight),
        id_(std::move(id)) {}

  void Start() {
    for (size_t r = 0; r < replicas_.size(); ++r) {
      for (int c = 0; c < callers_; ++c) {
        for (int i = 0; i < inflight_; ++i) Issue(static_cast<int>(r), c);
      }
    }
  }

  // No new calls; cancels those in flight; waits (bounded) until every call has completed.
  bool Stop(absl::Duration timeout) {
    std::vector<Call*> live;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      for (auto& c : calls_) {
        if (!c->done) live.push_back(c.get());
      }
    }
    for (Call* c : live) c->ctx.TryCancel();
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_ == 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
  }

  // Valid after Stop() returned true.
  const std::vector<std::unique_ptr<Call>>& calls() const { return calls_; }

 private:
  void Issue(int replica, int caller) {
    Call* call;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      calls_.push_back(std::make_unique<Call>());
      call = calls_.back().get();
      ++live_;
    }
    call->replica = replica;
    call->caller = caller;
    // Far longer than any queue wait here (all calls in flight at the limit: ~20 s by default).
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(2)));
    call->ctx.AddMetadata("x-caller-id", absl::StrCat("bench-caller-", caller));
    call->req.set_space_id(kSpace);
    call->req.set_id(id_);
    replicas_[replica]->stub().async()->GetAudience(&call->ctx, &call->req, &call->resp,
                                                    [this, call](grpc::Status s) {
                                                      bool again;
                                                      {
                                                        absl::MutexLock lock(&mu_);
                                                        call->status = std::move(s);
                                                        call->end = absl::Now();
                                                        call->done = true;
                                                        call->after_stop = stopping_;
                                                        --live_;
                                                        again = !stopping_;
                                                      }
                                                      if (again) Issue(call->replica, call->caller);
                                                    });
  }

  const std::vector<Stack*> replicas_;
  const int callers_;
  const int inflight_;
  const std::string id_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int live_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Call>> calls_ ABSL_GUARDED_BY(mu_);
};

struct SharedResult {
  double limit_rate = 0;  // Requests per second the limit allows.
  double window_s = 0;
  int64_t upstream_served = 0;  // In the window (status != 429).
  double upstream_rate = 0;
  double utilisation = 0;
  int64_t upstream_429 = 0;  // Whole run.
  int64_t calls_ok = 0;
  int64_t calls_failed = 0;
  int64_t cancelled_at_end = 0;
  std::string first_error;
  std::vector<double> ok_per_replica;  // In the window.
  std::vector<double> ok_per_caller;   // In the window (replica-major).
  double gap_p50_ms = 0, gap_p99_ms = 0, gap_max_ms = 0;
  int64_t gaps = 0;
  double pacing_interval_ms = 0;
  Json replica_metrics = Json::array();
};

bool RunShared(int redis_port, SharedResult* r) {
  const std::string limit_spec = absl::GetFlag(FLAGS_limit);
  const int n = absl::GetFlag(FLAGS_replicas);
  const int callers = absl::GetFlag(FLAGS_callers);
  auto limits = sag::ratelimit::ParseRateLimits("GetAudience=" + limit_spec, {"GetAudience"});
  if (!limits.ok()) {
    std::cerr << "--limit: " << limits.status() << "\n";
    return false;
  }
  const sag::ratelimit::Limit limit = limits->at("GetAudience");
  r->limit_rate = limit.requests / absl::ToDoubleSeconds(limit.per);
  r->pacing_interval_ms = absl::ToDoubleMilliseconds(limit.per) / limit.requests * 1.02;
  const std::string rate_limits = "GetAudience=" + limit_spec + ",CreateAudience=6000/1m";
  const std::string sim_limit = absl::GetFlag(FLAGS_sim_limit);
  auto sim = StartSim(sim_limit.empty() ? rate_limits
                                        : "GetAudience=" + sim_limit + ",CreateAudience=6000/1m");
  if (!sim.ok()) {
    std::cerr << "cannot start segment-sim: " << sim.status() << "\n";
    return false;
  }
  std::vector<Gateway> gateways;
  std::vector<Stack*> stacks;
  for (int i = 0; i < n; ++i) {
    auto g = StartGateway(*sim, {"--rate_limits=" + rate_limits,
                                 absl::StrCat("--redis_url=redis://127.0.0.1:", redis_port),
                                 absl::StrCat("--replicas=", n)});
    if (!g.ok()) {
      std::cerr << "cannot start replica " << i << ": " << g.status() << "\n";
      return false;
    }
    gateways.push_back(std::move(*g));
    stacks.push_back(gateways.back().stack.get());
  }
  auto id = CreateAudience(*stacks[0]);
  if (!id.ok()) {
    std::cerr << id.status() << "\n";
    return false;
  }
  Flood flood(stacks, callers, absl::GetFlag(FLAGS_inflight), *id);
  flood.Start();
  absl::SleepFor(absl::GetFlag(FLAGS_warmup));  // The load runs meanwhile.
  const Json s0 = sim->Get("/__sim/stats");
  const absl::Time t0 = absl::Now();
  absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_seconds)));
  const Json s1 = sim->Get("/__sim/stats");
  const absl::Time t1 = absl::Now();
  if (!flood.Stop(absl::Seconds(60))) {
    std::cerr << "calls still in flight 60 s after they were cancelled\n";
    return false;
  }
  const Json s2 = sim->Get("/__sim/stats");
  if (!s0.is_object() || !s1.is_object() || !s2.is_object()) {
    std::cerr << "cannot read the simulator's /__sim/stats\n";
    return false;
  }

  auto get_audience = [](const Json& s) {
    return s.value("by_operation", Json::object()).value("GetAudience", 0L);
  };
  r->window_s = absl::ToDoubleSeconds(t1 - t0);
  r->upstream_served = (get_audience(s1) - get_audience(s0)) -
                       (s1.value("status_429", 0L) - s0.value("status_429", 0L));
  r->upstream_rate = r->upstream_served / r->window_s;
  r->utilisation = r->upstream_rate / r->limit_rate;
  r->upstream_429 = s2.value("status_429", 0L);

  r->ok_per_replica.assign(n, 0);
  r->ok_per_caller.assign(static_cast<size_t>(n * callers), 0);
  for (const auto& c : flood.calls()) {
    if (c->status.ok()) {
      ++r->calls_ok;
      if (c->end >= t0 && c->end <= t1) {
        ++r->ok_per_replica[c->replica];
        ++r->ok_per_caller[static_cast<size_t>(c->replica * callers + c->caller)];
      }
    } else if (c->after_stop && c->status.error_code() == grpc::StatusCode::CANCELLED) {
      ++r->cancelled_at_end;
    } else {
      ++r->calls_failed;
      if (r->first_error.empty()) {
        r->first_error = absl::StrCat(c->status.error_code(), ": ", c->status.error_message());
      }
    }
  }

  // Gaps between consecutive upstream GetAudience requests in the window (the log keeps 1000).
  std::vector<absl::Time> sent;
  for (const Json& e : sim->Get("/__sim/requests")) {
    if (e.value("operation", Json()) != "GetAudience") continue;
    absl::Time t;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, e.value("time", ""), &t, &err) && t >= t0 && t <= t1) {
      sent.push_back(t);
    }
  }
  std::sort(sent.begin(), sent.end());
  std::vector<double> gaps;
  for (size_t i = 1; i < sent.size(); ++i) {
    gaps.push_back(absl::ToDoubleMilliseconds(sent[i] - sent[i - 1]));
  }
  r->gaps = static_cast<int64_t>(gaps.size());
  r->gap_p50_ms = sag::bench::PercentileOf(gaps, 0.5);
  r->gap_p99_ms = sag::bench::PercentileOf(gaps, 0.99);
  r->gap_max_ms = gaps.empty() ? 0 : *std::max_element(gaps.begin(), gaps.end());

  for (auto& g : gateways) {
    const std::string text = Scrape(g.metrics_port);
    r->replica_metrics.push_back(
        {{"upstream_429",
          MetricValue(text, "audiences_gateway_upstream_429_total{operation=\"GetAudience\"}")},
         {"ratelimit_rejected",
          MetricValue(text,
                      "audiences_gateway_ratelimit_rejected_total{operation=\"GetAudience\"}")},
         {"redis_degraded", MetricValue(text, "audiences_gateway_redis_degraded")},
         {"scraped", !text.empty()}});
  }
  return true;
}

// --- 2. Redis round trip ---

struct LatencySample {
  std::vector<double> ms;  // Caller-side latency of each successful call.
  int64_t failed = 0;
  std::string first_error;
};

// `concurrency` threads each calling GetAudience back to back on `stub` for `duration`.
void Measure(v1::AudiencesService::Stub& stub, const std::string& id, int concurrency,
             absl::Duration duration, LatencySample* out) {
  absl::Mutex mu;
  const absl::Time until = absl::Now() + duration;
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      std::vector<double> mine;
      int64_t failed = 0;
      std::string error;
      v1::GetAudienceRequest req;
      req.set_space_id(kSpace);
      req.set_id(id);
      while (absl::Now() < until) {
        v1::GetAudienceResponse resp;
        auto ctx = sag::testing::Context(absl::Seconds(10));
        const absl::Time start = absl::Now();
        grpc::Status st = stub.GetAudience(ctx.get(), req, &resp);
        const absl::Time end = absl::Now();
        if (st.ok()) {
          mine.push_back(absl::ToDoubleMilliseconds(end - start));
        } else {
          ++failed;
          if (error.empty()) error = absl::StrCat(st.error_code(), ": ", st.error_message());
        }
      }
      absl::MutexLock lock(&mu);
      out->ms.insert(out->ms.end(), mine.begin(), mine.end());
      out->failed += failed;
      if (out->first_error.empty()) out->first_error = error;
    });
  }
  for (auto& t : threads) t.join();
}

// The gateway's own mean of (call duration - upstream duration) for GetAudience, from /metrics.
struct GatewayMeans {
  double call_sum = 0, call_count = 0, up_sum = 0, up_count = 0;
  static GatewayMeans Read(int port) {
    const std::string text = Scrape(port);
    GatewayMeans m;
    m.call_sum =
        MetricValue(text, "audiences_gateway_call_duration_seconds_sum{rpc=\"GetAudience\"}");
    m.call_count =
        MetricValue(text, "audiences_gateway_call_duration_seconds_count{rpc=\"GetAudience\"}");
    m.up_sum = MetricValue(
        text, "audiences_gateway_upstream_duration_seconds_sum{operation=\"GetAudience\"}");
    m.up_count = MetricValue(
        text, "audiences_gateway_upstream_duration_seconds_count{operation=\"GetAudience\"}");
    return m;
  }
  // Mean in-gateway time (ms) of the calls between `before` and this reading.
  double OverheadMsSince(const GatewayMeans& before) const {
    const double calls = call_count - before.call_count, ups = up_count - before.up_count;
    if (calls <= 0 || ups <= 0) return 0;
    return 1000 * ((call_sum - before.call_sum) / calls - (up_sum - before.up_sum) / ups);
  }
};

// RedisBudgetStore::TryTake round trips, one at a time, on a limit that always admits.
bool MeasureTryTake(int redis_port, absl::Duration duration, std::vector<double>* ms) {
  sag::redis::RedisOptions ro;
  ro.url = absl::StrCat("redis://127.0.0.1:", redis_port);
  auto client = sag::redis::RedisClient::Create(ro);
  if (!client.ok() || !(*client)->WaitConnected(absl::Seconds(5))) return false;
  sag::redis::RedisBudgetOptions bo;
  bo.prefix = "sag:bench:";
  sag::redis::RedisBudgetStore store(client->get(), bo);
  const sag::ratelimit::Limit unlimited{1000000, absl::Seconds(1)};
  const absl::Time until = absl::Now() + duration;
  while (absl::Now() < until) {
    const absl::Time start = absl::Now();
    auto taken = store.TryTake("bench/GetAudience", unlimited, start);
    const absl::Time end = absl::Now();
    if (!taken.ok()) return false;
    ms->push_back(absl::ToDoubleMilliseconds(end - start));
  }
  return true;
}

struct LatencyLevel {
  int concurrency = 0;
  LatencySample with_redis, without_redis;
  double overhead_with_ms = 0, overhead_without_ms = 0;
};

bool RunLatency(int redis_port, std::vector<LatencyLevel>* levels, std::vector<double>* trytake) {
  std::vector<int> concurrency;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    int c = 0;
    if (!absl::SimpleAtoi(part, &c) || c < 1) {
      std::cerr << "--concurrency: bad level '" << part << "'\n";
      return false;
    }
    concurrency.push_back(c);
  }
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  const absl::Duration per_round =
      absl::Seconds(absl::GetFlag(FLAGS_latency_seconds)) / static_cast<int64_t>(rounds);

  auto sim = StartSim(kUnlimited);
  if (!sim.ok()) {
    std::cerr << "cannot start segment-sim: " << sim.status() << "\n";
    return false;
  }
  // Identical flags but --redis_url (and --replicas, which only matters while Redis is away).
  auto with = StartGateway(*sim, {std::string("--rate_limits=") + kUnlimited,
                                  absl::StrCat("--redis_url=redis://127.0.0.1:", redis_port),
                                  absl::StrCat("--replicas=", absl::GetFlag(FLAGS_replicas))});
  auto without = StartGateway(*sim, {std::string("--rate_limits=") + kUnlimited});
  if (!with.ok() || !without.ok()) {
    std::cerr << "cannot start the gateways: " << (with.ok() ? without.status() : with.status())
              << "\n";
    return false;
  }
  auto id = CreateAudience(*without->stack);
  if (!id.ok()) {
    std::cerr << id.status() << "\n";
    return false;
  }

  for (int c : concurrency) {
    LatencyLevel level;
    level.concurrency = c;
    LatencySample discard;  // Warm-up: connections, caches, the Lua script loaded.
    Measure(with->stack->stub(), *id, c, absl::Milliseconds(300), &discard);
    Measure(without->stack->stub(), *id, c, absl::Milliseconds(300), &discard);
    const GatewayMeans with0 = GatewayMeans::Read(with->metrics_port);
    const GatewayMeans without0 = GatewayMeans::Read(without->metrics_port);
    for (int round = 0; round < rounds; ++round) {
      for (int k = 0; k < 2; ++k) {
        const bool redis_turn = (round % 2 == 0) == (k == 0);  // Order flips every round.
        Gateway& g = redis_turn ? *with : *without;
        Measure(g.stack->stub(), *id, c, per_round,
                redis_turn ? &level.with_redis : &level.without_redis);
      }
    }
    level.overhead_with_ms = GatewayMeans::Read(with->metrics_port).OverheadMsSince(with0);
    level.overhead_without_ms = GatewayMeans::Read(without->metrics_port).OverheadMsSince(without0);
    levels->push_back(std::move(level));
  }
  if (!MeasureTryTake(redis_port, std::max(absl::Milliseconds(500), per_round), trytake)) {
    std::cerr << "RedisBudgetStore::TryTake against the bench's redis-server failed\n";
    return false;
  }
  return true;
}

const char* Mark(bool met) { return met ? "met" : "NOT met"; }

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!sag::testing::RedisServerInstalled()) {
    std::cerr << "bench_scaleout: " << sag::testing::kRedisServerBin
              << " is not installed; skipped\n";
    return 77;
  }
  if (absl::GetFlag(FLAGS_seconds) <= 0 || absl::GetFlag(FLAGS_replicas) < 1 ||
      absl::GetFlag(FLAGS_callers) < 1 || absl::GetFlag(FLAGS_inflight) < 1 ||
      absl::GetFlag(FLAGS_latency_seconds) <= 0) {
    std::cerr << "--seconds, --replicas, --callers, --inflight, --latency_seconds: positive\n";
    return 2;
  }
  RedisServer redis;
  if (absl::Status started = redis.Start(); !started.ok()) {
    std::cerr << "cannot start redis-server: " << started << "\n";
    return 2;
  }
  const int redis_port = redis.port();
  bool failed = false;
  Json out = {{"scenario", "scaleout"}};

  // ---- 1. Shared budget ----
  SharedResult sr;
  if (!RunShared(redis_port, &sr)) return 2;
  const int n = absl::GetFlag(FLAGS_replicas);
  const int callers = absl::GetFlag(FLAGS_callers);
  const int64_t finished = sr.calls_ok + sr.calls_failed;
  const double success = finished > 0 ? 100.0 * sr.calls_ok / finished : 0;
  const double jain_replicas = sag::bench::JainIndex(sr.ok_per_replica);
  const double jain_callers = sag::bench::JainIndex(sr.ok_per_caller);
  std::printf(
      "bench_scaleout 1: %d replicas sharing Redis, GetAudience limited to %s, %d callers x %d "
      "in flight per replica, %.1f s window after %.1f s warm-up\n",
      n, absl::GetFlag(FLAGS_limit).c_str(), callers, absl::GetFlag(FLAGS_inflight), sr.window_s,
      absl::ToDoubleSeconds(absl::GetFlag(FLAGS_warmup)));
  std::printf("  %-36s %.2f/s of %.2f/s = %.1f%% (goal >= 90%%: %s)\n", "budget utilisation",
              sr.upstream_rate, sr.limit_rate, 100 * sr.utilisation, Mark(sr.utilisation >= 0.9));
  std::printf("  %-36s %ld (goal 0: %s)\n", "upstream 429s", static_cast<long>(sr.upstream_429),
              Mark(sr.upstream_429 == 0));
  std::printf("  %-36s %.1f%%: %ld ok, %ld failed, %ld cancelled at the end (goal 100%%: %s)\n",
              "caller success", success, static_cast<long>(sr.calls_ok),
              static_cast<long>(sr.calls_failed), static_cast<long>(sr.cancelled_at_end),
              Mark(sr.calls_failed == 0));
  std::printf("  %-36s %s -> Jain %.3f (callers: %.3f)\n", "ok calls per replica in window",
              absl::StrJoin(sr.ok_per_replica, " / ").c_str(), jain_replicas, jain_callers);
  std::printf("  %-36s p50 %.0f ms, p99 %.0f ms, max %.0f ms over %ld gaps (pacing %.0f ms)\n",
              "gap between upstream requests", sr.gap_p50_ms, sr.gap_p99_ms, sr.gap_max_ms,
              static_cast<long>(sr.gaps), sr.pacing_interval_ms);
  for (int i = 0; i < n; ++i) {
    const Json& m = sr.replica_metrics[i];
    std::printf(
        "  replica %d /metrics: upstream_429 %.0f, ratelimit_rejected %.0f, "
        "redis_degraded %.0f%s\n",
        i, m["upstream_429"].get<double>(), m["ratelimit_rejected"].get<double>(),
        m["redis_degraded"].get<double>(), m["scraped"].get<bool>() ? "" : " (no scrape)");
  }
  if (sr.gap_max_ms > 3 * sr.pacing_interval_ms) {
    std::printf(
        "  note: gaps far longer than the pacing interval mean the shared lane was blocked "
        "(upstream feedback); --sim_limit with a looser upstream limit tells\n");
  }
  if (!sr.first_error.empty()) std::printf("  first error: %s\n", sr.first_error.c_str());
  if (sr.calls_failed > 0 || sr.upstream_429 > 0 || sr.calls_ok == 0 ||
      sr.utilisation < absl::GetFlag(FLAGS_min_utilisation)) {
    failed = true;
  }
  out["shared_budget"] = {{"replicas", n},
                          {"callers_per_replica", callers},
                          {"inflight_per_caller", absl::GetFlag(FLAGS_inflight)},
                          {"limit", absl::GetFlag(FLAGS_limit)},
                          {"limit_per_s", sr.limit_rate},
                          {"window_s", sr.window_s},
                          {"upstream_served_in_window", sr.upstream_served},
                          {"upstream_per_s", sr.upstream_rate},
                          {"utilisation", sr.utilisation},
                          {"upstream_429", sr.upstream_429},
                          {"calls_ok", sr.calls_ok},
                          {"calls_failed", sr.calls_failed},
                          {"cancelled_at_end", sr.cancelled_at_end},
                          {"success_rate", success / 100},
                          {"ok_per_replica_in_window", sr.ok_per_replica},
                          {"jain_replicas", jain_replicas},
                          {"jain_callers", jain_callers},
                          {"gap_p50_ms", sr.gap_p50_ms},
                          {"gap_p99_ms", sr.gap_p99_ms},
                          {"gap_max_ms", sr.gap_max_ms},
                          {"pacing_interval_ms", sr.pacing_interval_ms},
                          {"replica_metrics", sr.replica_metrics},
                          {"first_error", sr.first_error}};

  // ---- 2. Redis round trip ----
  std::vector<LatencyLevel> levels;
  std::vector<double> trytake;
  if (!RunLatency(redis_port, &levels, &trytake)) return 2;
  std::printf(
      "bench_scaleout 2: uncached, unlimited GetAudience through a gateway with --redis_url vs "
      "without, %d alternating rounds, %.1f s per gateway and level\n",
      std::max(1, absl::GetFlag(FLAGS_rounds)), absl::GetFlag(FLAGS_latency_seconds));
  std::printf("  %-12s %-14s %9s %9s %9s %8s %16s\n", "in flight", "gateway", "calls", "p50 ms",
              "p99 ms", "failed", "in-gateway ms");
  out["redis_latency"] = Json::array();
  for (const LatencyLevel& l : levels) {
    const double p50_w = sag::bench::PercentileOf(l.with_redis.ms, 0.5),
                 p99_w = sag::bench::PercentileOf(l.with_redis.ms, 0.99);
    const double p50_o = sag::bench::PercentileOf(l.without_redis.ms, 0.5),
                 p99_o = sag::bench::PercentileOf(l.without_redis.ms, 0.99);
    std::printf("  %-12d %-14s %9zu %9.3f %9.3f %8ld %16.3f\n", l.concurrency, "with Redis",
                l.with_redis.ms.size(), p50_w, p99_w, static_cast<long>(l.with_redis.failed),
                l.overhead_with_ms);
    std::printf("  %-12d %-14s %9zu %9.3f %9.3f %8ld %16.3f\n", l.concurrency, "without",
                l.without_redis.ms.size(), p50_o, p99_o, static_cast<long>(l.without_redis.failed),
                l.overhead_without_ms);
    std::printf("  %-12d %-14s %9s %+9.3f %+9.3f %8s %+16.3f\n", l.concurrency, "added by Redis",
                "", p50_w - p50_o, p99_w - p99_o, "", l.overhead_with_ms - l.overhead_without_ms);
    for (const LatencySample* s : {&l.with_redis, &l.without_redis}) {
      if (!s->first_error.empty()) std::printf("  first error: %s\n", s->first_error.c_str());
    }
    if (l.with_redis.failed > 0 || l.without_redis.failed > 0 || l.with_redis.ms.empty() ||
        l.without_redis.ms.empty()) {
      failed = true;
    }
    out["redis_latency"].push_back(
        {{"inflight", l.concurrency},
         {"with_redis_calls", l.with_redis.ms.size()},
         {"with_redis_p50_ms", p50_w},
         {"with_redis_p99_ms", p99_w},
         {"with_redis_failed", l.with_redis.failed},
         {"with_redis_in_gateway_mean_ms", l.overhead_with_ms},
         {"without_redis_calls", l.without_redis.ms.size()},
         {"without_redis_p50_ms", p50_o},
         {"without_redis_p99_ms", p99_o},
         {"without_redis_failed", l.without_redis.failed},
         {"without_redis_in_gateway_mean_ms", l.overhead_without_ms},
         {"added_p50_ms", p50_w - p50_o},
         {"added_p99_ms", p99_w - p99_o},
         {"added_in_gateway_mean_ms", l.overhead_with_ms - l.overhead_without_ms}});
  }
  const double tt50 = sag::bench::PercentileOf(trytake, 0.5),
               tt99 = sag::bench::PercentileOf(trytake, 0.99);
  std::printf("  %-36s p50 %.3f ms, p99 %.3f ms (%zu calls, one at a time, in this process)\n",
              "RedisBudgetStore::TryTake", tt50, tt99, trytake.size());
  std::printf(
      "  (the gateway exports no Redis latency metric; in-gateway ms = mean call duration "
      "- mean upstream duration from its /metrics)\n");
  out["redis_trytake"] = {{"calls", trytake.size()}, {"p50_ms", tt50}, {"p99_ms", tt99}};

  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return failed ? 1 : 0;
}
