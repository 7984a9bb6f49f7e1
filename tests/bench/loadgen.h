// A load generator for the benchmarks: it drives any asynchronous "issue one call" function and
// reports calls ok and failed, throughput and exact latency percentiles.
//
//  - ClosedLoop holds N calls in flight: each completion at once starts the next call in the
//    same slot. Latency = completion - start.
//  - OpenLoop starts calls at a fixed rate whatever the answers do (at most N in flight: a call
//    whose time has come waits for a free slot). Latency is measured from the call's *intended*
//    send time, so a stalled server is charged for every call it delayed (no coordinated
//    omission).
//
// Both run a warm-up, then a measured window: a call belongs to the window when it was started
// (intended, in the open loop) inside it; every call is awaited before Run returns. Throughput is
// the window's successful calls over the window's length; latency figures cover successful calls
// only. Every sample is kept (one vector per slot, merged at the end), so percentiles are exact
// (nearest rank over the sorted samples).
//
// Issuers turn a protocol into an Issue function:
//  - GrpcUnaryIssue: a unary gRPC call through a grpc::GenericStub on the callback API, from a
//    serialized request (no generated code needed);
//  - CurlClient: HTTP requests on libcurl's multi interface, driven by one event-loop thread;
//    each slot owns one easy handle and the multi handle pools keep-alive connections.
//
// Example (16 calls in flight, 1 s warm-up, 5 s measured):
//
//   grpc::GenericStub stub(channel);
//   sag::bench::GrpcUnary call{"/segment.audiences.v1.AudiencesService/GetAudience",
//                              request.SerializeAsString()};
//   sag::bench::LoadResult r = sag::bench::ClosedLoop(16, GrpcUnaryIssue(&stub, call))
//                                  .Run(absl::Seconds(1), absl::Seconds(5));
//   std::cout << sag::bench::FormatResult(r) << "\n";
#ifndef SAG_TESTS_BENCH_LOADGEN_H_
#define SAG_TESTS_BENCH_LOADGEN_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sag::bench {

// Called exactly once when a call completes, on any thread (possibly inside Issue itself).
using Done = std::function<void(bool ok, const std::string& error)>;
// Starts one call in `slot` (0 <= slot < concurrency; a slot has one call at a time) and returns
// without waiting for it; `done` reports its outcome.
using Issue = std::function<void(int slot, Done done)>;

// Latency percentiles, in microseconds (nearest rank over the sorted samples).
struct LatencySummary {
  int64_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double max_us = 0;
};

// The sample at quantile q (0 < q <= 1) of sorted samples: the smallest sample such that at
// least q of all samples are <= it. 0 for no samples.
double Percentile(const std::vector<double>& sorted_us, double q);
// Sorts the samples and summarises them.
LatencySummary Summarize(std::vector<double>* samples_us);
// Percentile() of unsorted samples (sorts a copy).
double PercentileOf(std::vector<double> samples, double q);
// Jain's fairness index of shares: (sum x)^2 / (n * sum x^2); 1 = perfectly even, 1/n = one
// takes all. 0 for no shares or all zero.
double JainIndex(const std::vector<double>& shares);

struct LoadResult {
  std::string mode;                // "closed" or "open".
  int concurrency = 0;             // Calls in flight (closed), most in flight (open).
  double target_rate = 0;          // Calls per second asked for (open loop only).
  double seconds = 0;              // Length of the measured window.
  int64_t ok = 0;                  // Successful calls started in the window.
  int64_t failed = 0;              // Failed calls started in the window.
  int64_t warmup_ok = 0;           // The same during the warm-up (for per-call resource figures:
  int64_t warmup_failed = 0;       // every call of a Run is counted in one of these four).
  int64_t waited_for_slot = 0;     // Open loop: calls sent late because all slots were busy.
  std::string first_error;         // The first failure's text (warm-up included).
  double throughput = 0;           // ok / seconds.
  LatencySummary latency;          // Successful calls of the window.
  std::vector<double> samples_us;  // Their latencies, sorted.

  int64_t calls() const { return ok + failed + warmup_ok + warmup_failed; }
};

// Pools results of the same scenario (e.g. alternating rounds): counts and windows add up, the
// percentiles are recomputed over all samples.
LoadResult Combine(const std::vector<LoadResult>& parts);

// {mode, concurrency, seconds, ok, failed, throughput, p50_us, ...}; without the samples.
nlohmann::json ToJson(const LoadResult& r);
// One line: "12345 calls/s, p50 123 us, p90 ..., p99 ..., p99.9 ..., max ...; 0 failed".
std::string FormatResult(const LoadResult& r);

// Keeps `concurrency` calls in flight: each slot issues its next call as soon as the previous one
// completes, until the window closes. Run blocks until every call has completed. A ClosedLoop may
// be Run several times (rounds); the Issue function is kept.
//
// max_calls > 0 also bounds the calls of the Run (warm-up included): once that many were started,
// slots stop issuing (e.g. Run(absl::ZeroDuration(), absl::Minutes(5), n) with concurrency n:
// n calls at once, one per slot). When the bound ends the Run before the window closes, the
// window ends at the last completion: `seconds` is the time from its start to that completion.
class ClosedLoop {
 public:
  ClosedLoop(int concurrency, Issue issue);
  ~ClosedLoop();
  ClosedLoop(const ClosedLoop&) = delete;
  ClosedLoop& operator=(const ClosedLoop&) = delete;
  LoadResult Run(absl::Duration warmup, absl::Duration duration, int64_t max_calls = 0);

 private:
  struct Slot;
  void Drive(int slot);
  void Complete(int slot, bool ok, const std::string& error);

  const int concurrency_;
  const Issue issue_;
  // Set by Run for the current round.
  std::chrono::steady_clock::time_point measure_from_, until_;
  int64_t max_calls_ = 0;            // 0: no bound.
  std::atomic<int64_t> started_{0};  // Calls started (or refused by the bound) this Run.
  std::vector<std::unique_ptr<Slot>> slots_;
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;  // Slots still issuing or waiting for an answer.
};

// Starts `rate` calls per second, evenly spaced, with at most `max_in_flight` outstanding (slots).
// Latency is measured from each call's intended send time.
class OpenLoop {
 public:
  OpenLoop(double rate, int max_in_flight, Issue issue);
  ~OpenLoop();
  OpenLoop(const OpenLoop&) = delete;
  OpenLoop& operator=(const OpenLoop&) = delete;
  LoadResult Run(absl::Duration warmup, absl::Duration duration);

 private:
  struct Slot;
  void Complete(int slot, bool ok, const std::string& error);

  const double rate_;
  const int max_in_flight_;
  const Issue issue_;
  std::chrono::steady_clock::time_point measure_from_;
  std::vector<std::unique_ptr<Slot>> slots_;
  absl::Mutex mu_;
  std::vector<int> free_ ABSL_GUARDED_BY(mu_);  // Slots with no call outstanding.
};

// Closed loop when options.rate is 0, else open loop at options.rate.
struct LoadOptions {
  int concurrency = 16;
  double rate = 0;
  absl::Duration warmup = absl::Seconds(1);
  absl::Duration duration = absl::Seconds(5);
};
LoadResult RunLoad(const LoadOptions& options, Issue issue);

// ---- gRPC ----

// One unary call, repeated: the method's full path, the serialized request, metadata.
struct GrpcUnary {
  std::string method;   // "/package.Service/Method".
  std::string request;  // The serialized request message.
  std::vector<std::pair<std::string, std::string>> metadata;
  absl::Duration timeout = absl::Seconds(30);
  // Optional check of a successful answer: returns "" when good, else the failure's text.
  std::function<std::string(const grpc::ByteBuffer& response)> check;
  // Optional check that also sees the call's context, e.g. its server initial metadata
  // (context.GetServerInitialMetadata()): same contract, run after `check` when that passed.
  std::function<std::string(const grpc::ClientContext& context, const grpc::ByteBuffer& response)>
      check_with_context;
};

// Issues `call` through `stub` (which must outlive the load), on the callback API: no thread is
// blocked per call. A non-OK status fails the call with "CODE_NAME: message".
Issue GrpcUnaryIssue(grpc::GenericStub* stub, GrpcUnary call);

// The name of a gRPC status code ("UNAVAILABLE").
std::string StatusCodeName(grpc::StatusCode code);

// ---- HTTP (libcurl) ----

// Requests of one method to one URL over HTTP/1.1 keep-alive connections, on libcurl's multi
// interface: one event-loop thread runs every transfer; slot i reuses easy handle i. Issue() may
// be called from any thread; `done` runs on the event-loop thread.
class CurlClient {
 public:
  struct Options {
    std::string url;
    std::string method = "GET";
    std::vector<std::string> headers;  // "Name: value".
    int slots = 16;                    // Most concurrent requests (the Issue's slot range).
    absl::Duration timeout = absl::Seconds(30);
    long expected_status = 200;        // Any other status fails the call ("HTTP 502").
    int64_t expected_body_bytes = -1;  // When >= 0, a body of another size fails the call.
  };

  explicit CurlClient(Options options);
  ~CurlClient();  // Stops the event loop; calls still in flight are dropped (no `done`).
  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;

  // Starts a request in `slot`.
  void Start(int slot, Done done);
  // An Issue bound to this client (which must outlive the load).
  Issue issue() {
    return [this](int slot, Done done) { Start(slot, std::move(done)); };
  }
  // Connections the client opened so far (keep-alive reuse shows as a small number).
  int64_t connections_opened() const { return connections_.load(); }

 private:
  struct Transfer;
  void Loop();

  const Options options_;
  void* multi_ = nullptr;                             // CURLM*.
  void* header_list_ = nullptr;                       // curl_slist*.
  std::vector<std::unique_ptr<Transfer>> transfers_;  // One per slot.
  std::atomic<int64_t> connections_{0};
  absl::Mutex mu_;
  std::vector<std::pair<int, Done>> pending_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_;
};

}  // namespace sag::bench

#endif  // SAG_TESTS_BENCH_LOADGEN_H_
