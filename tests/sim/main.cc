// segment-sim: flags and wiring only; the simulator itself is sim::Simulator (simulator.h).

#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <set>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "faults.h"
#include "rate_limits.h"
#include "service/common/cli.h"
#include "simulator.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:8080",
          "HOST:PORT to serve on ([v6addr]:PORT for IPv6); port 0 picks a free port. Once "
          "bound, one line 'segment-sim listening on http://HOST:PORT' is printed on stdout.");
ABSL_FLAG(std::string, rate_limits, "",
          "Per-operation limit overrides, OP=N/DURATION,... with OP an RPC name (PascalCase, "
          "e.g. ListAudiences) or 'default', DURATION an absl duration (50/1m, 10/1s). Limits "
          "apply per (token, operation) in fixed windows. Defaults: the six writes 50/1m, "
          "CreateAudiencePreview=5/1m, GetAudience=100/1m, GetAudiencePreview=300/1m, "
          "ListAudienceConsumersFromSpaceAndAudience=25/1m, ListAudiences=60/1m, default=60/1m "
          "(ForceExecuteAudienceRun, GetAudienceScheduleFromSpaceAndAudience, "
          "ListAudienceSchedulesFromSpaceAndAudience). 'default=' changes only the operations "
          "without an explicit entry.");
ABSL_FLAG(std::string, token, "",
          "The one bearer token accepted (Authorization: Bearer <token>); when empty, any "
          "non-empty token is accepted.");
ABSL_FLAG(absl::Duration, preview_duration, absl::Seconds(2),
          "How long an audience preview stays RUNNING before it is COMPLETED (or FAILED when "
          "its query contains the word 'fail').");
ABSL_FLAG(absl::Duration, latency, absl::ZeroDuration(),
          "Delay added before answering every request to the 14 operations (for deadline "
          "tests and benchmarks).");
ABSL_FLAG(int32_t, threads, 32,
          "HTTP worker threads. The server is thread-per-connection: each open (keep-alive) "
          "connection holds one thread.");
ABSL_FLAG(int64_t, preview_monthly_quota, 700,
          "CreateAudiencePreview requests allowed per spaceId per calendar month (UTC); over "
          "it, 429 until the next month.");
ABSL_FLAG(double, fault_5xx_rate, 0,
          "Fault injection: fraction (0..1) of requests answered 500 or 503 (even odds) with an "
          "error envelope of type 'server', after the rate limit and BEFORE anything is "
          "executed (a retry is safe).");
ABSL_FLAG(double, fault_5xx_after_rate, 0,
          "Fault injection: fraction (0..1) of successful WRITE requests (POST/PATCH/DELETE) "
          "that are executed and then answered 500: the change happened (a retry duplicates it).");
ABSL_FLAG(double, fault_reset_rate, 0,
          "Fault injection: fraction (0..1) of requests whose answer is aborted BEFORE anything "
          "is executed: a 200 status line announcing a Content-Length larger than the body "
          "sent, then the connection is closed (the client sees a transport error).");
ABSL_FLAG(double, fault_malformed_rate, 0,
          "Fault injection: fraction (0..1) of successful (2xx) answers whose JSON body is cut "
          "short (never valid JSON; status and Content-Length kept). Writes are executed.");
ABSL_FLAG(absl::Duration, fault_latency, absl::ZeroDuration(),
          "Fault injection: extra random latency, uniform in [0, this], added to every request "
          "of the --fault_ops operations (after --latency).");
ABSL_FLAG(std::string, fault_ops, "",
          "Fault injection: comma-separated RPC names (PascalCase, e.g. "
          "GetAudience,CreateAudience) the --fault_* flags apply to; empty = all 14 operations.");
ABSL_FLAG(uint64_t, fault_seed, 0,
          "Fault injection: seed of the random draws (0 = random). Reproducible for requests "
          "sent one at a time.");

namespace {

constexpr int kUsageError = 2;

int UsageError(const std::string& message) {
  std::cerr << "segment-sim: " << message << "\n";
  return kUsageError;
}

// Splits "HOST:PORT" / "[v6]:PORT".
bool ParseListen(const std::string& listen, std::string* host, int* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string h = listen.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) return false;
  int p = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &p) || p < 0 || p > 65535) return false;
  *host = h;
  *port = p;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const sag::cli::Program program{
      "segment-sim",
      "segment-sim: a local simulator of the Segment Public API's 14 Audiences operations.\n"
      "Usage: segment-sim [--listen=127.0.0.1:8080] [--token=T] [--rate_limits=OP=N/DUR,...]\n"
      "                   [--fault_*=...] ...\n"
      "Debug endpoints: GET /__sim/stats (injected faults under \"faults\"),\n"
      "GET /__sim/requests, POST /__sim/reset.",
      "", [](absl::string_view file) { return file == "sim/main.cc"; }};
  sag::cli::ParseCommandLineOrExit(argc, argv, program);

  sim::SimulatorOptions options;
  if (!ParseListen(absl::GetFlag(FLAGS_listen), &options.host, &options.port)) {
    return UsageError(absl::StrCat("--listen: bad value \"", absl::GetFlag(FLAGS_listen),
                                   "\" (expected HOST:PORT, e.g. 127.0.0.1:8080)"));
  }
  absl::StatusOr<sim::RateLimitConfig> limits =
      sim::RateLimitConfig::Parse(absl::GetFlag(FLAGS_rate_limits));
  if (!limits.ok()) return UsageError(std::string(limits.status().message()));
  options.rate_limits = *limits;
  options.token = absl::GetFlag(FLAGS_token);
  options.preview_duration = absl::GetFlag(FLAGS_preview_duration);
  if (options.preview_duration < absl::ZeroDuration()) {
    return UsageError("--preview_duration must not be negative");
  }
  options.latency = absl::GetFlag(FLAGS_latency);
  if (options.latency < absl::ZeroDuration() || options.latency > absl::Hours(1)) {
    return UsageError("--latency must be between 0s and 1h");
  }
  options.threads = absl::GetFlag(FLAGS_threads);
  if (options.threads < 1 || options.threads > 4096) {
    return UsageError("--threads must be between 1 and 4096");
  }
  options.preview_monthly_quota = absl::GetFlag(FLAGS_preview_monthly_quota);
  if (options.preview_monthly_quota < 0) {
    return UsageError("--preview_monthly_quota must not be negative");
  }
  absl::StatusOr<std::set<std::string, std::less<>>> fault_ops =
      sim::ParseFaultOps(absl::GetFlag(FLAGS_fault_ops));
  if (!fault_ops.ok()) return UsageError(std::string(fault_ops.status().message()));
  options.faults.ops = *std::move(fault_ops);
  options.faults.error_5xx_rate = absl::GetFlag(FLAGS_fault_5xx_rate);
  options.faults.error_5xx_after_rate = absl::GetFlag(FLAGS_fault_5xx_after_rate);
  options.faults.reset_rate = absl::GetFlag(FLAGS_fault_reset_rate);
  options.faults.malformed_rate = absl::GetFlag(FLAGS_fault_malformed_rate);
  options.faults.latency = absl::GetFlag(FLAGS_fault_latency);
  options.faults.seed = absl::GetFlag(FLAGS_fault_seed);
  if (absl::Status valid = options.faults.Validate(); !valid.ok()) {
    return UsageError(std::string(valid.message()));
  }

  // Handle SIGINT/SIGTERM on this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  sim::Simulator simulator(options);
  if (absl::Status status = simulator.Start(); !status.ok()) {
    std::cerr << status.message() << "\n";
    return 1;
  }
  const std::string shown_host = simulator.host().find(':') != std::string::npos
                                     ? absl::StrCat("[", simulator.host(), "]")
                                     : simulator.host();
  std::cout << "segment-sim listening on http://" << shown_host << ":" << simulator.port()
            << std::endl;  // flushes

  int received = 0;
  sigwait(&signals, &received);
  std::cerr << "segment-sim: signal " << received << ", stopping\n";
  simulator.Stop();
  return 0;
}
