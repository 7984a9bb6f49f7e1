// What the gateway costs on an uncached call, next to what a plain reverse proxy costs.
//
// One nginx (Debian's /usr/sbin/nginx, run as the current user in a temporary prefix, one
// process) serves two loopback ports:
//   static  answers GET /spaces/<space>/audiences/<id> with a fixed GetAudience 200 body
//           (`return 200`, application/json, from memory): the upstream of every scenario;
//   proxy   proxy_pass to static over pooled keep-alive connections (upstream `keepalive 64`,
//           HTTP/1.1, `Connection ""`): the textbook reverse proxy.
// A real audiences-gateway (rate limit lifted) uses the static port as its upstream. Three
// scenarios, the same call at the same load:
//   A direct   libcurl (multi interface, one event-loop thread, keep-alive) -> nginx static
//   B proxy    the same libcurl client -> nginx proxy -> nginx static
//   C gateway  gRPC GetAudience (callback API, tests/bench/loadgen.h) -> gateway -> nginx static
// Closed loop by default (--concurrency calls always in flight), or open loop with
// --mode=rate --rate=N (latency measured from the intended send time). Each scenario gets
// --seconds of measurement split into --rounds rounds, alternated A, B, C, A, B, C... so that
// machine noise is spread over all three; the first round of each has a --warmup, later rounds
// a 100 ms one. Percentiles are exact, over every call of all rounds of a scenario.
//
// Printed (and written to --json): each round and each scenario's throughput and p50/p90/p99/
// p99.9; the latency the gateway adds (C - A) and the one nginx adds (B - A) at p50 and p99,
// and their ratio (the goal is at most 1.0: printed, not enforced, since it depends on the
// machine); CPU per call of the gateway, of nginx as a proxy (B - A) and of this client; the
// gateway's RSS before and after.
//
// Note: C - A includes the gRPC client's own cost (HTTP/2, protobuf), which a REST client does
// not pay; the "client CPU per call" line shows how much that is.
//
//   bench_proxy [--concurrency=16] [--seconds=5] [--rounds=5] [--warmup=1s]
//               [--mode=concurrency|rate] [--rate=N] [--nginx=/usr/sbin/nginx] [--json=FILE]
//
// Exit code 0 when every call succeeded and every scenario completed calls; 1 otherwise; 2 on
// a setup failure; 77 (skipped, for ctest) when there is no nginx binary.
#include <curl/curl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/bench/loadgen.h"
#include "tests/bench/nginx_upstream.h"
#include "tests/bench/proc_stats.h"
#include "tests/common/redis_server.h"  // FreePort
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

ABSL_FLAG(int, concurrency, 16, "Calls in flight (closed loop), or most in flight (rate mode).");
ABSL_FLAG(double, seconds, 5, "Measured seconds per scenario (split into --rounds).");
ABSL_FLAG(int, rounds, 5, "Alternating rounds A, B, C per scenario.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Warm-up before each scenario's first round.");
ABSL_FLAG(std::string, mode, "concurrency",
          "concurrency: closed loop holding --concurrency calls; rate: open loop at --rate.");
ABSL_FLAG(double, rate, 0, "Calls per second in --mode=rate.");
ABSL_FLAG(std::string, nginx, "/usr/sbin/nginx", "The nginx binary (else nginx on PATH).");
ABSL_FLAG(std::string, gateway_log_level, "warn", "The gateway's --log_level.");
ABSL_FLAG(std::string, json, "", "Also write the figures to this JSON file.");

namespace {

namespace v1 = segment::audiences::v1;
using sag::bench::LoadResult;

constexpr absl::Duration kRoundWarmup = absl::Milliseconds(100);

using sag::bench::AudienceBody;
using sag::bench::kAccept;
using sag::bench::kAudience;
using sag::bench::kSpace;
using sag::bench::kToken;
using sag::bench::Nginx;
using sag::bench::RestPath;
using sag::bench::StartNginx;

struct Usage {
  double gateway_cpu_s = 0;
  double nginx_cpu_s = 0;
  double client_cpu_s = 0;
};

// A scenario: its load loop, the rounds' results and the CPU the processes spent meanwhile.
struct Scenario {
  std::string key;    // JSON key.
  std::string label;  // Printed.
  std::function<LoadResult(absl::Duration warmup, absl::Duration duration)> run;
  std::vector<LoadResult> rounds;
  Usage usage;
  LoadResult total;
};

double PerCallUs(double cpu_s, int64_t calls) {
  return calls > 0 ? cpu_s * 1e6 / static_cast<double>(calls) : 0;
}

// r = gateway_added / nginx_added, or nullopt when nginx added nothing measurable.
std::optional<double> Ratio(double gateway_added, double nginx_added) {
  if (!(nginx_added > 0)) return std::nullopt;
  return gateway_added / nginx_added;
}

std::string FormatRatio(std::optional<double> r) {
  return r ? absl::StrFormat("%.2f", *r) : std::string("n/a");
}

nlohmann::json RatioJson(std::optional<double> r) { return r ? nlohmann::json(*r) : nullptr; }

int Run() {
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const double rate = absl::GetFlag(FLAGS_rate);
  if (concurrency < 1 || rounds < 1 || !(seconds > 0) ||
      (mode != "concurrency" && mode != "rate") || (mode == "rate" && !(rate > 0))) {
    std::cerr << "--concurrency, --rounds and --seconds must be positive; --mode is concurrency "
                 "or rate (with a positive --rate)\n";
    return 2;
  }
  const std::string nginx_binary = sag::bench::FindNginx(absl::GetFlag(FLAGS_nginx));
  if (nginx_binary.empty()) {
    std::cout << "bench_proxy: no nginx binary (--nginx or PATH); install nginx-light. Skipped.\n";
    return 77;
  }

  const std::string body = AudienceBody();
  if (body.find('$') != std::string::npos) {
    std::cerr << "the body holds a '$', which nginx's `return` would expand\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Nginx>> started = StartNginx(nginx_binary, body);
  if (!started.ok()) {
    std::cerr << "cannot start nginx: " << started.status() << "\n";
    return 2;
  }
  std::unique_ptr<Nginx> nginx = std::move(*started);  // Stopped when Run returns.
  const pid_t nginx_pid = nginx->process->pid();

  int exit_code = 0;
  nlohmann::json out = {{"scenario", "proxy"}};
  {
    sag::testing::StackOptions options;
    options.start_sim = false;
    options.token = kToken;
    options.upstream_url = nginx->static_url();
    options.gateway_args = {"--rate_limits=GetAudience=1000000/1s",
                            "--log_level=" + absl::GetFlag(FLAGS_gateway_log_level)};
    auto stack = sag::testing::Stack::Start(options);
    if (!stack.ok()) {
      std::cerr << "cannot start the gateway: " << stack.status() << "\n";
      return 2;
    }
    sag::testing::Stack& s = **stack;
    const pid_t gateway_pid = s.gateway().pid();

    // One call to check that the gateway translates the body; its size checks every later one.
    v1::GetAudienceRequest request;
    request.set_space_id(kSpace);
    request.set_id(kAudience);
    v1::GetAudienceResponse sample;
    grpc::Status sample_status =
        s.stub().GetAudience(sag::testing::Context().get(), request, &sample);
    if (!sample_status.ok() || sample.audience().id() != kAudience ||
        sample.audience().schedules_size() != 1 || !sample.audience().has_definition()) {
      std::cerr << "the gateway's GetAudience is not the upstream body: "
                << sag::bench::StatusCodeName(sample_status.error_code()) << " "
                << sample_status.error_message() << "\n"
                << sample.DebugString() << "\n";
      return 2;
    }
    const size_t response_bytes = sample.ByteSizeLong();

    // The clients. The curl clients send what the gateway sends upstream (Accept, token).
    sag::bench::CurlClient::Options curl_options;
    curl_options.headers = {absl::StrCat("Accept: ", kAccept),
                            absl::StrCat("Authorization: Bearer ", kToken)};
    curl_options.slots = concurrency;
    curl_options.expected_body_bytes = static_cast<int64_t>(body.size());
    curl_options.url = nginx->static_url() + RestPath();
    sag::bench::CurlClient direct(curl_options);
    curl_options.url = nginx->proxy_url() + RestPath();
    sag::bench::CurlClient proxied(curl_options);
    grpc::GenericStub generic(s.channel());
    sag::bench::GrpcUnary call;
    call.method = "/segment.audiences.v1.AudiencesService/GetAudience";
    call.request = request.SerializeAsString();
    call.check = [response_bytes](const grpc::ByteBuffer& response) {
      return response.Length() == response_bytes
                 ? std::string()
                 : absl::StrCat("a response of ", response.Length(), " bytes, expected ",
                                response_bytes);
    };

    // Each scenario's loop, kept across rounds.
    auto make_run = [&](sag::bench::Issue issue) {
      std::function<LoadResult(absl::Duration, absl::Duration)> run;
      if (mode == "rate") {
        auto loop = std::make_shared<sag::bench::OpenLoop>(rate, concurrency, std::move(issue));
        run = [loop](absl::Duration w, absl::Duration d) { return loop->Run(w, d); };
      } else {
        auto loop = std::make_shared<sag::bench::ClosedLoop>(concurrency, std::move(issue));
        run = [loop](absl::Duration w, absl::Duration d) { return loop->Run(w, d); };
      }
      return run;
    };
    std::vector<Scenario> scenarios(3);
    scenarios[0].key = "direct";
    scenarios[0].label = "A direct  (curl -> nginx static)";
    scenarios[0].run = make_run(direct.issue());
    scenarios[1].key = "nginx_proxy";
    scenarios[1].label = "B nginx   (curl -> nginx proxy -> static)";
    scenarios[1].run = make_run(proxied.issue());
    scenarios[2].key = "gateway";
    scenarios[2].label = "C gateway (gRPC -> gateway -> static)";
    scenarios[2].run = make_run(sag::bench::GrpcUnaryIssue(&generic, call));

    const absl::Duration per_round = absl::Seconds(seconds / rounds);
    const std::string load =
        mode == "rate"
            ? absl::StrFormat("open loop at %.0f calls/s (at most %d in flight)", rate, concurrency)
            : absl::StrFormat("%d calls in flight", concurrency);
    std::printf(
        "bench_proxy: uncached GetAudience, %s; %d rounds of %.2f s per scenario, alternated, "
        "after a %s warm-up\n",
        load.c_str(), rounds, absl::ToDoubleSeconds(per_round),
        absl::FormatDuration(absl::GetFlag(FLAGS_warmup)).c_str());
    std::printf("  upstream body %zu bytes (nginx %s, one process); gRPC response %zu bytes\n",
                body.size(), nginx_binary.c_str(), response_bytes);

    const sag::bench::ProcStats gateway_before = sag::bench::ReadProcStats(gateway_pid);
    nlohmann::json rounds_json = nlohmann::json::array();
    for (int round = 0; round < rounds; ++round) {
      for (Scenario& sc : scenarios) {
        const absl::Duration warmup = round == 0 ? absl::GetFlag(FLAGS_warmup) : kRoundWarmup;
        const auto g0 = sag::bench::ReadProcStats(gateway_pid);
        const auto n0 = sag::bench::ReadProcStats(nginx_pid);
        const auto c0 = sag::bench::ReadProcStats(getpid());
        LoadResult r = sc.run(warmup, per_round);
        const auto g1 = sag::bench::ReadProcStats(gateway_pid);
        const auto n1 = sag::bench::ReadProcStats(nginx_pid);
        const auto c1 = sag::bench::ReadProcStats(getpid());
        sc.usage.gateway_cpu_s += g1.cpu_seconds - g0.cpu_seconds;
        sc.usage.nginx_cpu_s += n1.cpu_seconds - n0.cpu_seconds;
        sc.usage.client_cpu_s += c1.cpu_seconds - c0.cpu_seconds;
        std::printf("  round %-2d %-42s %s\n", round + 1, sc.label.c_str(),
                    sag::bench::FormatResult(r).c_str());
        nlohmann::json j = sag::bench::ToJson(r);
        j["round"] = round + 1;
        j["scenario"] = sc.key;
        rounds_json.push_back(std::move(j));
        sc.rounds.push_back(std::move(r));
      }
    }
    const sag::bench::ProcStats gateway_after = sag::bench::ReadProcStats(gateway_pid);

    std::printf("  all rounds:\n");
    for (Scenario& sc : scenarios) {
      sc.total = sag::bench::Combine(sc.rounds);
      std::printf("    %-42s %s\n", sc.label.c_str(), sag::bench::FormatResult(sc.total).c_str());
      if (!sc.total.first_error.empty()) {
        std::printf("      first error: %s\n", sc.total.first_error.c_str());
      }
      if (sc.total.failed + sc.total.warmup_failed > 0 || sc.total.ok == 0) exit_code = 1;
    }
    const LoadResult& a = scenarios[0].total;
    const LoadResult& b = scenarios[1].total;
    const LoadResult& c = scenarios[2].total;
    const double nginx_p50 = b.latency.p50_us - a.latency.p50_us;
    const double nginx_p99 = b.latency.p99_us - a.latency.p99_us;
    const double gateway_p50 = c.latency.p50_us - a.latency.p50_us;
    const double gateway_p99 = c.latency.p99_us - a.latency.p99_us;
    const std::optional<double> ratio_p50 = Ratio(gateway_p50, nginx_p50);
    const std::optional<double> ratio_p99 = Ratio(gateway_p99, nginx_p99);
    const bool goal_met = ratio_p50 && ratio_p99 && *ratio_p50 <= 1.0 && *ratio_p99 <= 1.0;

    // CPU per call: every call of the rounds, warm-ups included (they ran while measuring).
    const Usage& ua = scenarios[0].usage;
    const Usage& ub = scenarios[1].usage;
    const Usage& uc = scenarios[2].usage;
    const double nginx_static_us = PerCallUs(ua.nginx_cpu_s, a.calls());
    const double nginx_both_us = PerCallUs(ub.nginx_cpu_s, b.calls());
    const double nginx_proxy_us = nginx_both_us - nginx_static_us;
    const double gateway_cpu_us = PerCallUs(uc.gateway_cpu_s, c.calls());

    std::printf("  %-36s p50 %+.0f us, p99 %+.0f us\n", "nginx added latency (B - A)", nginx_p50,
                nginx_p99);
    std::printf("  %-36s p50 %+.0f us, p99 %+.0f us\n", "gateway added latency (C - A)",
                gateway_p50, gateway_p99);
    std::printf("  %-36s p50 %s, p99 %s (goal <= 1.0: %s)\n", "gateway added / nginx added",
                FormatRatio(ratio_p50).c_str(), FormatRatio(ratio_p99).c_str(),
                goal_met ? "met" : "NOT met");
    std::printf("  %-36s gateway %.0f us; nginx as a proxy (B - A) %.0f us; nginx static %.0f us\n",
                "CPU per call", gateway_cpu_us, nginx_proxy_us, nginx_static_us);
    std::printf("  %-36s A %.0f us, B %.0f us, C %.0f us (gRPC vs libcurl)\n",
                "bench client CPU per call", PerCallUs(ua.client_cpu_s, a.calls()),
                PerCallUs(ub.client_cpu_s, b.calls()), PerCallUs(uc.client_cpu_s, c.calls()));
    std::printf("  %-36s before %.1f MB, after %.1f MB; threads %ld -> %ld\n", "gateway RSS",
                gateway_before.rss_kb / 1024.0, gateway_after.rss_kb / 1024.0,
                gateway_before.threads, gateway_after.threads);
    std::printf("  %-36s direct %ld, proxied %ld (kept alive: at most %d each)\n",
                "curl connections opened", static_cast<long>(direct.connections_opened()),
                static_cast<long>(proxied.connections_opened()), concurrency);
    if (exit_code != 0) std::printf("  FAILED: a call failed or a scenario completed no call\n");

    out["mode"] = mode == "rate" ? "open" : "closed";
    out["concurrency"] = concurrency;
    if (mode == "rate") out["rate_per_s"] = rate;
    out["rounds"] = rounds;
    out["seconds_per_scenario"] = seconds;
    out["upstream_body_bytes"] = body.size();
    out["grpc_response_bytes"] = response_bytes;
    for (const Scenario& sc : scenarios) {
      nlohmann::json j = sag::bench::ToJson(sc.total);
      j["cpu_us_per_call"] = {{"gateway", PerCallUs(sc.usage.gateway_cpu_s, sc.total.calls())},
                              {"nginx", PerCallUs(sc.usage.nginx_cpu_s, sc.total.calls())},
                              {"client", PerCallUs(sc.usage.client_cpu_s, sc.total.calls())}};
      out[sc.key] = std::move(j);
    }
    out["rounds_detail"] = std::move(rounds_json);
    out["nginx_added_us"] = {{"p50", nginx_p50}, {"p99", nginx_p99}};
    out["gateway_added_us"] = {{"p50", gateway_p50}, {"p99", gateway_p99}};
    out["ratio_gateway_to_nginx_added"] = {{"p50", RatioJson(ratio_p50)},
                                           {"p99", RatioJson(ratio_p99)},
                                           {"goal", 1.0},
                                           {"met", goal_met}};
    out["gateway_cpu_us_per_call"] = gateway_cpu_us;
    out["nginx_proxy_cpu_us_per_call"] = nginx_proxy_us;
    out["nginx_static_cpu_us_per_call"] = nginx_static_us;
    out["gateway_rss_kb"] = {{"before", gateway_before.rss_kb}, {"after", gateway_after.rss_kb}};
    out["gateway_threads"] = {{"before", gateway_before.threads}, {"after", gateway_after.threads}};
    out["curl_connections_opened"] = {{"direct", direct.connections_opened()},
                                      {"proxied", proxied.connections_opened()}};
    out["ok"] = exit_code == 0;
  }  // The clients, then the gateway (Stack's destructor) stop here; nginx when Run returns.

  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);  // Before any thread uses libcurl.
  return Run();
}
