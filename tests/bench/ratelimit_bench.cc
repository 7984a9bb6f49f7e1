// What rate-limit queueing costs and achieves, against a real segment-sim:
//
//  1. Pacing and fairness: --callers callers x --calls_per_caller GetAudience calls, all started
//     at once (caller by caller: the first one floods the queue before the others arrive), on an
//     operation limited to --limit on the simulator and the gateway alike. Prints the upstream's
//     429 count (goal 0), caller success (goal 100%), budget utilisation = achieved upstream rate
//     / limit (goal >= 95%), Jain's fairness index over the callers' throughput while all of them
//     had calls waiting (goal >= 0.95) and the p50/p99 queue wait (caller side: call latency
//     minus the mean upstream latency the gateway measured; and the gateway's own
//     audiences_gateway_queue_wait_seconds histogram mean).
//  2. Waiting is cheap: --queued_calls GetAudience calls queued behind a 1/1m limit (long
//     deadlines), then all cancelled. Prints the gateway's threads (goal < 64), RSS (goal
//     < 300 MB) and CPU while they wait (sampled over --idle_sample: goal ~0%, no busy polling),
//     against the idle gateway measured the same way in the same run.
//
//   bench_ratelimit [--callers=3] [--calls_per_caller=200] [--limit=10/1s]
//                   [--queued_calls=10000] [--idle_sample=5s] [--json=FILE]
//
// Exit code 1 when a call fails, the upstream answers 429 or a queued call is not cancelled
// cleanly (so the smoke run in ctest can fail); the performance goals are reported, not enforced.
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/bench/loadgen.h"
#include "tests/bench/proc_stats.h"
#include "tests/common/countdown.h"
#include "tests/common/stack.h"

ABSL_FLAG(int, callers, 3, "Callers (x-caller-id) in the pacing scenario.");
ABSL_FLAG(int, calls_per_caller, 200, "GetAudience calls per caller in the pacing scenario.");
ABSL_FLAG(std::string, limit, "10/1s", "GetAudience limit, N/DURATION, on the sim and gateway.");
ABSL_FLAG(int, queued_calls, 10000, "Calls left waiting in the queue scenario (0 skips it).");
ABSL_FLAG(absl::Duration, idle_sample, absl::Seconds(5),
          "How long CPU is sampled, idle and with the calls queued.");
ABSL_FLAG(std::string, json, "", "Also write the figures to this JSON file.");

namespace {

namespace v1 = segment::audiences::v1;
using sag::testing::Countdown;
using sag::testing::Stack;
using sag::testing::StackOptions;

constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";

struct Call {
  grpc::ClientContext ctx;
  v1::GetAudienceRequest req;
  v1::GetAudienceResponse resp;
  grpc::Status status;
  int caller = 0;
  absl::Time start;
  absl::Time end;
};

// The gateway's metrics port, from its JSON "started" log line.
int MetricsPort(Stack& s) {
  auto line = s.gateway().WaitForLine("\"started\"", absl::Seconds(10));
  if (!line.ok()) return 0;
  std::smatch m;
  if (!std::regex_search(*line, m, std::regex("\"metrics\":\"[^\"]*:(\\d+)\""))) return 0;
  return std::stoi(m[1]);
}

std::string Metrics(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  auto res = client.Get("/metrics");
  return res && res->status == 200 ? res->body : "";
}

// The value of the sample `series` (name{labels} exactly as exported), or -1.
double MetricValue(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

std::unique_ptr<Stack> StartStack(const std::string& limit, int sim_threads,
                                  std::vector<std::string> gateway_extra) {
  StackOptions options;
  options.sim_args = {"--rate_limits=GetAudience=" + limit,
                      absl::StrCat("--threads=", sim_threads)};
  options.gateway_args = {"--rate_limits=GetAudience=" + limit, "--metrics_listen=127.0.0.1:0"};
  for (auto& a : gateway_extra) options.gateway_args.push_back(std::move(a));
  auto stack = Stack::Start(options);
  if (!stack.ok()) {
    std::cerr << "cannot start: " << stack.status() << "\n";
    return nullptr;
  }
  return std::move(*stack);
}

// CPU percent of one core used by `pid` over `period`, and the stats at its end.
sag::bench::ProcStats SampleCpu(pid_t pid, absl::Duration period, double* cpu_percent) {
  const sag::bench::ProcStats before = sag::bench::ReadProcStats(pid);
  const absl::Time start = absl::Now();
  absl::SleepFor(period);
  const sag::bench::ProcStats after = sag::bench::ReadProcStats(pid);
  *cpu_percent =
      100.0 * (after.cpu_seconds - before.cpu_seconds) / absl::ToDoubleSeconds(absl::Now() - start);
  return after;
}

const char* Mark(bool met) { return met ? "ok" : "MISSED"; }

struct PacingResult {
  int calls = 0;
  int ok = 0;
  int64_t upstream = 0;
  int64_t upstream_429 = 0;
  double limit_rate = 0;
  double upstream_rate = 0;
  double utilisation = 0;
  double jain = 0;
  std::vector<int> contended_share;
  double contended_s = 0;
  double wait_p50_ms = 0;
  double wait_p99_ms = 0;
  double gateway_wait_mean_ms = 0;
  double upstream_mean_ms = 0;
  double wall_s = 0;
  std::string first_error;
};

bool RunPacing(const std::string& limit, double limit_rate, PacingResult* r) {
  const int callers = absl::GetFlag(FLAGS_callers);
  const int per_caller = absl::GetFlag(FLAGS_calls_per_caller);
  auto stack = StartStack(limit, 64, {});
  if (stack == nullptr) return false;
  const int metrics_port = MetricsPort(*stack);
  auto& stub = stack->stub();

  v1::CreateAudienceRequest create;
  create.set_space_id(kSpace);
  create.mutable_audience()->set_name("bench");
  create.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  create.mutable_audience()->mutable_definition()->set_query("event('Purchased').count() >= 1");
  v1::CreateAudienceResponse created;
  grpc::Status st = stub.CreateAudience(sag::testing::Context().get(), create, &created);
  if (!st.ok()) {
    std::cerr << "create failed: " << st.error_message() << "\n";
    return false;
  }
  const std::string id = created.audience().id();

  r->calls = callers * per_caller;
  r->limit_rate = limit_rate;
  // Long enough for the whole burst at the limit, twice over.
  const absl::Duration deadline = absl::Seconds(30) + absl::Seconds(2.0 * r->calls / limit_rate);
  std::vector<std::unique_ptr<Call>> calls;
  Countdown done(r->calls);
  const absl::Time start = absl::Now();
  for (int c = 0; c < callers; ++c) {  // caller by caller: the first floods the queue
    for (int i = 0; i < per_caller; ++i) {
      auto call = std::make_unique<Call>();
      call->caller = c;
      call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
      call->ctx.AddMetadata("x-caller-id", absl::StrCat("bench-caller-", c));
      call->req.set_space_id(kSpace);
      call->req.set_id(id);
      Call* raw = call.get();
      raw->start = absl::Now();
      stub.async()->GetAudience(&raw->ctx, &raw->req, &raw->resp, [raw, &done](grpc::Status s) {
        raw->status = std::move(s);
        raw->end = absl::Now();
        done.Done();
      });
      calls.push_back(std::move(call));
    }
  }
  if (!done.WaitFor(deadline + absl::Seconds(30))) {
    std::cerr << "calls did not all finish\n";
    return false;
  }
  r->wall_s = absl::ToDoubleSeconds(absl::Now() - start);

  // Outcome.
  std::vector<absl::Time> last_done(callers, absl::InfinitePast());
  for (const auto& c : calls) {
    if (c->status.ok() && c->resp.audience().id() == id) {
      ++r->ok;
    } else if (r->first_error.empty()) {
      r->first_error = absl::StrCat(c->status.error_code(), ": ", c->status.error_message());
    }
    last_done[c->caller] = std::max(last_done[c->caller], c->end);
  }
  const nlohmann::json stats = stack->SimStats();
  r->upstream = stats["by_operation"].value("GetAudience", int64_t{0});
  r->upstream_429 = stats.value("status_429", int64_t{-1});

  // Achieved upstream rate, from the simulator's request log (it keeps the last 1000).
  std::vector<absl::Time> sent;
  for (const auto& entry : stack->SimRequests()) {
    if (entry.value("operation", nlohmann::json()) != "GetAudience") continue;
    absl::Time t;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, entry["time"].get<std::string>(), &t, &err)) {
      sent.push_back(t);
    }
  }
  if (sent.size() < static_cast<size_t>(r->upstream)) {  // log overflowed: caller side instead
    sent.clear();
    for (const auto& c : calls) sent.push_back(c->end);
  }
  std::sort(sent.begin(), sent.end());
  if (sent.size() >= 2) {
    r->upstream_rate =
        static_cast<double>(sent.size() - 1) / absl::ToDoubleSeconds(sent.back() - sent.front());
    r->utilisation = r->upstream_rate / limit_rate;
  }

  // Fairness while every caller still had calls waiting: from the start until the first caller
  // was done.
  const absl::Time contended_end = *std::min_element(last_done.begin(), last_done.end());
  r->contended_s = absl::ToDoubleSeconds(contended_end - start);
  r->contended_share.assign(callers, 0);
  for (const auto& c : calls) {
    if (c->status.ok() && c->end <= contended_end) ++r->contended_share[c->caller];
  }
  r->jain = sag::bench::JainIndex(
      std::vector<double>(r->contended_share.begin(), r->contended_share.end()));

  // Queue wait. The gateway's own view: its histogram's mean. The caller's view: call latency
  // minus the mean upstream latency the gateway measured.
  const std::string text = Metrics(metrics_port);
  const double wait_sum =
      MetricValue(text, "audiences_gateway_queue_wait_seconds_sum{operation=\"GetAudience\"}");
  const double wait_count =
      MetricValue(text, "audiences_gateway_queue_wait_seconds_count{operation=\"GetAudience\"}");
  if (wait_count > 0) r->gateway_wait_mean_ms = 1000 * wait_sum / wait_count;
  const double up_sum = MetricValue(
      text, "audiences_gateway_upstream_duration_seconds_sum{operation=\"GetAudience\"}");
  const double up_count = MetricValue(
      text, "audiences_gateway_upstream_duration_seconds_count{operation=\"GetAudience\"}");
  if (up_count > 0) r->upstream_mean_ms = 1000 * up_sum / up_count;
  std::vector<double> waits;
  for (const auto& c : calls) {
    if (!c->status.ok()) continue;
    waits.push_back(
        std::max(0.0, absl::ToDoubleMilliseconds(c->end - c->start) - r->upstream_mean_ms));
  }
  r->wait_p50_ms = sag::bench::PercentileOf(waits, 0.50);
  r->wait_p99_ms = sag::bench::PercentileOf(waits, 0.99);
  return true;
}

struct QueueResult {
  int calls = 0;
  int queued_seen = 0;  // the gateway's queue depth once all were sent
  double queue_fill_s = 0;
  sag::bench::ProcStats idle;
  double idle_cpu_percent = 0;
  sag::bench::ProcStats waiting;
  double waiting_cpu_percent = 0;
  long peak_threads = 0;
  long peak_rss_kb = 0;
  int cancelled = 0;
  double cancel_all_s = 0;
  int queue_after_cancel = -1;
  double queue_drained_s = 0;  // From the cancels until the gateway's queue was empty.
  int64_t upstream = 0;
  std::string first_error;
};

bool RunQueue(absl::Duration sample, QueueResult* r) {
  r->calls = absl::GetFlag(FLAGS_queued_calls);
  auto stack = StartStack("1/1m", 16, {absl::StrCat("--queue_max=", 2 * r->calls + 10)});
  if (stack == nullptr) return false;
  const int metrics_port = MetricsPort(*stack);
  const pid_t gw = stack->gateway().pid();
  auto& stub = stack->stub();

  // The one call the minute allows goes now; everything after it waits.
  v1::GetAudienceRequest first;
  first.set_space_id(kSpace);
  first.set_id("aud_bench");
  v1::GetAudienceResponse ignored;
  grpc::Status st = stub.GetAudience(sag::testing::Context().get(), first, &ignored);
  if (st.error_code() != grpc::StatusCode::NOT_FOUND) {
    std::cerr << "first call: " << st.error_code() << " " << st.error_message() << "\n";
    return false;
  }
  absl::SleepFor(absl::Seconds(1));
  r->idle = SampleCpu(gw, sample, &r->idle_cpu_percent);

  // Several connections, as many callers would have.
  constexpr int kChannels = 8;
  std::vector<std::unique_ptr<v1::AudiencesService::Stub>> stubs;
  for (int i = 0; i < kChannels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(v1::AudiencesService::NewStub(grpc::CreateCustomChannel(
        stack->gateway_address(), grpc::InsecureChannelCredentials(), args)));
  }
  // The last queued call waits calls x 61 s: give every call a month.
  const absl::Time deadline = absl::Now() + absl::Hours(24 * 30);
  std::vector<std::unique_ptr<Call>> calls;
  Countdown done(r->calls);
  sag::bench::PeakSampler sampler(gw, 20);
  const absl::Time start = absl::Now();
  for (int i = 0; i < r->calls; ++i) {
    auto call = std::make_unique<Call>();
    call->caller = i % 10;
    call->ctx.set_deadline(absl::ToChronoTime(deadline));
    call->ctx.AddMetadata("x-caller-id", absl::StrCat("waiter-", call->caller));
    call->req.set_space_id(kSpace);
    call->req.set_id("aud_bench");
    Call* raw = call.get();
    stubs[i % kChannels]->async()->GetAudience(&raw->ctx, &raw->req, &raw->resp,
                                               [raw, &done](grpc::Status s) {
                                                 raw->status = std::move(s);
                                                 raw->end = absl::Now();
                                                 done.Done();
                                               });
    calls.push_back(std::move(call));
  }
  const std::string depth_series = "audiences_gateway_queue_depth{operation=\"GetAudience\"}";
  const absl::Time give_up = absl::Now() + absl::Seconds(120);
  while (absl::Now() < give_up) {
    r->queued_seen = static_cast<int>(MetricValue(Metrics(metrics_port), depth_series));
    if (r->queued_seen >= r->calls) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  r->queue_fill_s = absl::ToDoubleSeconds(absl::Now() - start);
  absl::SleepFor(absl::Milliseconds(500));  // let allocations settle
  r->waiting = SampleCpu(gw, sample, &r->waiting_cpu_percent);

  const absl::Time cancel_start = absl::Now();
  for (auto& c : calls) c->ctx.TryCancel();
  if (!done.WaitFor(absl::Seconds(120))) {
    std::cerr << "cancelled calls did not all finish\n";
    return false;
  }
  r->cancel_all_s = absl::ToDoubleSeconds(absl::Now() - cancel_start);
  sampler.Stop();
  r->peak_threads = sampler.peak_threads();
  r->peak_rss_kb = sampler.peak_rss_kb();
  for (const auto& c : calls) {
    if (c->status.error_code() == grpc::StatusCode::CANCELLED) {
      ++r->cancelled;
    } else if (r->first_error.empty()) {
      r->first_error = absl::StrCat(c->status.error_code(), ": ", c->status.error_message());
    }
  }
  // The client sees CANCELLED at once; the gateway's queue empties as the cancellations reach it
  // (later on a loaded machine or under ASan): wait for that, at most 10 s.
  const absl::Time drain_give_up = absl::Now() + absl::Seconds(10);
  while (true) {
    r->queue_after_cancel = static_cast<int>(MetricValue(Metrics(metrics_port), depth_series));
    if (r->queue_after_cancel == 0 || absl::Now() >= drain_give_up) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  r->queue_drained_s = absl::ToDoubleSeconds(absl::Now() - cancel_start);
  r->upstream = stack->SimStats()["by_operation"].value("GetAudience", int64_t{-1});
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string limit = absl::GetFlag(FLAGS_limit);
  std::vector<std::string> parts = absl::StrSplit(limit, '/');
  int64_t n = 0;
  absl::Duration per;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &n) || n < 1 ||
      !absl::ParseDuration(parts[1], &per) || per <= absl::ZeroDuration()) {
    std::cerr << "--limit: expected N/DURATION, got " << limit << "\n";
    return 2;
  }
  const double limit_rate = static_cast<double>(n) / absl::ToDoubleSeconds(per);
  const absl::Duration sample = absl::GetFlag(FLAGS_idle_sample);

  PacingResult p;
  if (!RunPacing(limit, limit_rate, &p)) return 2;
  std::printf(
      "bench_ratelimit: %d callers x %d GetAudience calls, limit %s (%.2f/s) on the "
      "simulator and the gateway\n",
      absl::GetFlag(FLAGS_callers), absl::GetFlag(FLAGS_calls_per_caller), limit.c_str(),
      limit_rate);
  std::printf("  %-36s %-50s %s\n", "figure", "measured", "goal");
  std::printf("  %-36s %-50s %s\n", "upstream 429s",
              absl::StrCat(p.upstream_429, " of ", p.upstream, " upstream requests").c_str(),
              absl::StrCat("0 ", Mark(p.upstream_429 == 0)).c_str());
  std::printf("  %-36s %-50s %s\n", "caller success",
              absl::StrFormat("%d / %d (%.1f%%)", p.ok, p.calls, 100.0 * p.ok / p.calls).c_str(),
              absl::StrCat("100% ", Mark(p.ok == p.calls)).c_str());
  std::printf(
      "  %-36s %-50s %s\n", "budget utilisation",
      absl::StrFormat("%.1f%% (%.2f/s of %.2f/s)", 100 * p.utilisation, p.upstream_rate, limit_rate)
          .c_str(),
      absl::StrCat(">= 95% ", Mark(p.utilisation >= 0.95)).c_str());
  std::string shares;
  for (int s : p.contended_share) absl::StrAppend(&shares, shares.empty() ? "" : "/", s);
  std::printf("  %-36s %-50s %s\n", "Jain's fairness (contended period)",
              absl::StrFormat("%.3f (calls %s in %.1f s)", p.jain, shares, p.contended_s).c_str(),
              absl::StrCat(">= 0.95 ", Mark(p.jain >= 0.95)).c_str());
  std::printf("  %-36s %-50s %s\n", "queue wait p50 / p99 (caller side)",
              absl::StrFormat("%.0f ms / %.0f ms", p.wait_p50_ms, p.wait_p99_ms).c_str(),
              "(report)");
  std::printf("  %-36s %-50s %s\n", "queue wait mean (gateway histogram)",
              absl::StrFormat("%.0f ms (upstream latency mean %.1f ms)", p.gateway_wait_mean_ms,
                              p.upstream_mean_ms)
                  .c_str(),
              "(report)");
  std::printf("  %-36s %-50s %s\n", "wall time",
              absl::StrFormat("%.1f s (ideal %.1f s)", p.wall_s, p.calls / limit_rate).c_str(), "");
  if (!p.first_error.empty()) std::printf("  first error: %s\n", p.first_error.c_str());

  QueueResult q;
  const bool queue_ran = absl::GetFlag(FLAGS_queued_calls) > 0;
  if (queue_ran) {
    if (!RunQueue(sample, &q)) return 2;
    std::printf(
        "\nbench_ratelimit: %d GetAudience calls queued behind 1/1m (month-long "
        "deadlines), then cancelled\n",
        q.calls);
    std::printf("  %-36s %-50s %s\n", "figure", "idle -> with calls queued", "goal");
    std::printf(
        "  %-36s %-50s %s\n", "gateway threads",
        absl::StrFormat("%ld -> %ld (peak %ld)", q.idle.threads, q.waiting.threads, q.peak_threads)
            .c_str(),
        absl::StrCat("< 64 ", Mark(q.peak_threads < 64)).c_str());
    std::printf(
        "  %-36s %-50s %s\n", "gateway RSS",
        absl::StrFormat("%.1f MB -> %.1f MB (peak %.1f MB, %.1f KB per call)",
                        q.idle.rss_kb / 1024.0, q.waiting.rss_kb / 1024.0, q.peak_rss_kb / 1024.0,
                        static_cast<double>(q.peak_rss_kb - q.idle.rss_kb) / q.calls)
            .c_str(),
        absl::StrCat("< 300 MB ", Mark(q.peak_rss_kb < 300 * 1024)).c_str());
    std::printf("  %-36s %-50s %s\n", "gateway CPU while waiting",
                absl::StrFormat("%.2f%% -> %.2f%% of a core (over %s)", q.idle_cpu_percent,
                                q.waiting_cpu_percent, absl::FormatDuration(sample))
                    .c_str(),
                absl::StrCat("~0% ", Mark(q.waiting_cpu_percent < 2.0)).c_str());
    std::printf(
        "  %-36s %-50s %s\n", "queue depth seen",
        absl::StrFormat("%d (all queued after %.1f s)", q.queued_seen, q.queue_fill_s).c_str(),
        absl::StrCat(q.calls, " ", Mark(q.queued_seen == q.calls)).c_str());
    std::printf(
        "  %-36s %-50s %s\n", "cancelled",
        absl::StrFormat("%d / %d in %.2f s, queue depth %d after %.2f s", q.cancelled, q.calls,
                        q.cancel_all_s, q.queue_after_cancel, q.queue_drained_s)
            .c_str(),
        absl::StrCat("all, 0 ", Mark(q.cancelled == q.calls && q.queue_after_cancel == 0)).c_str());
    std::printf("  %-36s %-50s %s\n", "upstream requests",
                absl::StrCat(q.upstream, " (the first call only)").c_str(),
                absl::StrCat("1 ", Mark(q.upstream == 1)).c_str());
    if (!q.first_error.empty()) std::printf("  first error: %s\n", q.first_error.c_str());
  }

  if (std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    nlohmann::json j = {{"scenario", "ratelimit"},
                        {"limit", limit},
                        {"callers", absl::GetFlag(FLAGS_callers)},
                        {"calls", p.calls},
                        {"ok", p.ok},
                        {"upstream_requests", p.upstream},
                        {"upstream_429", p.upstream_429},
                        {"upstream_rate_per_s", p.upstream_rate},
                        {"utilisation", p.utilisation},
                        {"jain", p.jain},
                        {"contended_share", p.contended_share},
                        {"contended_s", p.contended_s},
                        {"queue_wait_p50_ms", p.wait_p50_ms},
                        {"queue_wait_p99_ms", p.wait_p99_ms},
                        {"gateway_queue_wait_mean_ms", p.gateway_wait_mean_ms},
                        {"upstream_latency_mean_ms", p.upstream_mean_ms},
                        {"wall_s", p.wall_s}};
    if (queue_ran) {
      j["queued"] = {{"calls", q.calls},
                     {"queued_seen", q.queued_seen},
                     {"threads_idle", q.idle.threads},
                     {"threads_waiting", q.waiting.threads},
                     {"threads_peak", q.peak_threads},
                     {"rss_idle_kb", q.idle.rss_kb},
                     {"rss_waiting_kb", q.waiting.rss_kb},
                     {"rss_peak_kb", q.peak_rss_kb},
                     {"cpu_idle_percent", q.idle_cpu_percent},
                     {"cpu_waiting_percent", q.waiting_cpu_percent},
                     {"cancelled", q.cancelled},
                     {"cancel_all_s", q.cancel_all_s},
                     {"queue_after_cancel", q.queue_after_cancel},
                     {"queue_drained_s", q.queue_drained_s},
                     {"upstream_requests", q.upstream}};
    }
    std::ofstream(path) << j.dump(2) << "\n";
  }
  const bool pacing_ok = p.ok == p.calls && p.upstream_429 == 0;
  const bool queue_ok =
      !queue_ran || (q.cancelled == q.calls && q.queue_after_cancel == 0 && q.upstream == 1);
  return pacing_ok && queue_ok ? 0 : 1;
}
