// How much a call in flight costs the gateway: N concurrent GetAudience calls (default 2,000)
// against a segment-sim that answers every request after 500 ms. Prints the gateway's thread
// count and resident memory idle (the baseline, same run) and at the peak, and the calls' outcome.
//
//   bench_concurrency [--calls=2000] [--latency=500ms] [--json=FILE]
//
// Exit code 1 when a call fails (so the smoke run in ctest can fail).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/bench/proc_stats.h"
#include "tests/common/stack.h"

ABSL_FLAG(int, calls, 2000, "Concurrent calls.");
ABSL_FLAG(absl::Duration, latency, absl::Milliseconds(500), "Upstream answer delay.");
ABSL_FLAG(std::string, json, "", "Also write the figures to this JSON file.");

namespace v1 = segment::audiences::v1;

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int calls = absl::GetFlag(FLAGS_calls);
  const std::string unlimited = "1000000/1s";
  sag::testing::StackOptions options;
  options.sim_args = {
      absl::StrCat("--latency=", absl::FormatDuration(absl::GetFlag(FLAGS_latency))),
      absl::StrCat("--threads=", calls + 64),
      absl::StrCat("--rate_limits=default=", unlimited, ",GetAudience=", unlimited,
                   ",CreateAudience=", unlimited)};
  options.gateway_args = {absl::StrCat("--upstream_max_connections=", calls),
                          absl::StrCat("--rate_limits=default=", unlimited,
                                       ",GetAudience=", unlimited, ",CreateAudience=", unlimited)};
  auto stack = sag::testing::Stack::Start(options);
  if (!stack.ok()) {
    std::cerr << "cannot start: " << stack.status() << "\n";
    return 2;
  }
  auto& stub = (*stack)->stub();
  const pid_t gw = (*stack)->gateway().pid();

  v1::CreateAudienceRequest create;
  create.set_space_id("9aQ1Lj62S4bomZKLF4DPqW");
  create.mutable_audience()->set_name("bench");
  create.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  create.mutable_audience()->mutable_definition()->set_query("event('Purchased').count() >= 1");
  v1::CreateAudienceResponse created;
  grpc::Status st = stub.CreateAudience(sag::testing::Context().get(), create, &created);
  if (!st.ok()) {
    std::cerr << "create failed: " << st.error_message() << "\n";
    return 2;
  }

  absl::SleepFor(absl::Milliseconds(500));  // Let the gateway settle before the baseline.
  sag::bench::ProcStats idle = sag::bench::ReadProcStats(gw);

  struct Call {
    grpc::ClientContext ctx;
    v1::GetAudienceRequest req;
    v1::GetAudienceResponse resp;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> inflight(calls);
  absl::BlockingCounter done(calls);
  sag::bench::PeakSampler sampler(gw, 20);
  absl::Time start = absl::Now();
  for (auto& c : inflight) {
    c = std::make_unique<Call>();
    c->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    c->req.set_space_id(create.space_id());
    c->req.set_id(created.audience().id());
    Call* raw = c.get();
    stub.async()->GetAudience(&raw->ctx, &raw->req, &raw->resp, [raw, &done](grpc::Status s) {
      raw->status = std::move(s);
      done.DecrementCount();
    });
  }
  done.Wait();
  absl::Duration wall = absl::Now() - start;
  sampler.Stop();
  sag::bench::ProcStats after = sag::bench::ReadProcStats(gw);

  int ok = 0;
  std::string first_error;
  for (auto& c : inflight) {
    if (c->status.ok() && c->resp.audience().id() == created.audience().id()) {
      ++ok;
    } else if (first_error.empty()) {
      first_error = c->status.error_message();
    }
  }
  const double wall_s = absl::ToDoubleSeconds(wall);
  const double latency_s = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_latency));
  std::printf("bench_concurrency: %d concurrent GetAudience calls, upstream latency %.0f ms\n",
              calls, latency_s * 1000);
  std::printf("  %-34s %d / %d\n", "calls ok", ok, calls);
  std::printf("  %-34s %.2f s (ideal %.2f s, ratio %.2f)\n", "wall time", wall_s, latency_s,
              wall_s / latency_s);
  std::printf("  %-34s idle %ld, peak %ld (+%ld)\n", "gateway threads", idle.threads,
              sampler.peak_threads(), sampler.peak_threads() - idle.threads);
  std::printf("  %-34s idle %.1f MB, peak %.1f MB (ratio %.2f, %.1f KB per call in flight)\n",
              "gateway RSS", idle.rss_kb / 1024.0, sampler.peak_rss_kb() / 1024.0,
              static_cast<double>(sampler.peak_rss_kb()) / static_cast<double>(idle.rss_kb),
              static_cast<double>(sampler.peak_rss_kb() - idle.rss_kb) / calls);
  std::printf("  %-34s %.2f s for %d calls (%.0f us per call)\n", "gateway CPU",
              after.cpu_seconds - idle.cpu_seconds, calls,
              (after.cpu_seconds - idle.cpu_seconds) * 1e6 / calls);
  if (!first_error.empty()) std::printf("  first error: %s\n", first_error.c_str());

  std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) {
    nlohmann::json j = {{"scenario", "concurrency"},
                        {"calls", calls},
                        {"ok", ok},
                        {"upstream_latency_ms", latency_s * 1000},
                        {"wall_s", wall_s},
                        {"threads_idle", idle.threads},
                        {"threads_peak", sampler.peak_threads()},
                        {"rss_idle_kb", idle.rss_kb},
                        {"rss_peak_kb", sampler.peak_rss_kb()},
                        {"cpu_s", after.cpu_seconds - idle.cpu_seconds}};
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return ok == calls ? 0 : 1;
}
