// segment-sim: a local, strict simulator of the Segment Public API's 14 Audiences REST
// operations (API v65), for testing and benchmarking clients such as the gateway.
//
// Simulator promises:
//  - Start() binds host:port (port 0 picks a free port, see port()) and serves on its own
//    threads until Stop() or destruction. Start() returns once the socket listens, so requests
//    may be sent immediately. Start() and Stop() are called from one thread; everything else
//    (including every request) may run concurrently.
//  - Each request to one of the 14 operations goes through, in this order: routing (404
//    "unrouted" otherwise), --latency and the faults' extra latency, authentication (401,
//    consumes nothing), the per (token, operation) fixed-window rate limit (429), the per-space
//    monthly quota of CreateAudiencePreview (429), the injected faults that precede execution
//    (5xx, aborted answer), Accept negotiation (406), Content-Type (415), query and body
//    validation (422), existence (404) and the domain rules (422), then the operation, then the
//    injected faults that follow it (500 after a write executed, a cut 2xx body).
//    Every answer past authentication carries X-RateLimit-Consumed/-Remaining/-Reset.
//  - Faults (faults.h) are injected only when SimulatorOptions::faults asks for them.
//  - Debug endpoints outside the API (no auth, no limits): GET /__sim/stats,
//    GET /__sim/requests, POST /__sim/reset. See README.md for their JSON.
//  - Any input bytes get a clean 4xx; bodies over max_body_bytes get 413.
// Does not: persist anything, speak TLS or HTTP/2, emulate Segment's real audience computation.

#ifndef SEGMENT_SIM_SIMULATOR_H_
#define SEGMENT_SIM_SIMULATOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "faults.h"
#include "rate_limits.h"

namespace sim {

struct SimulatorOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  RateLimitConfig rate_limits = RateLimitConfig::Defaults();
  std::string token;  // the one bearer token accepted; empty: any non-empty token
  absl::Duration preview_duration = absl::Seconds(2);  // how long a preview stays RUNNING
  absl::Duration latency = absl::ZeroDuration();       // added before answering each operation
  int threads = 32;                                    // HTTP worker threads
  int64_t preview_monthly_quota = 700;  // CreateAudiencePreview per spaceId per UTC month
  size_t max_body_bytes = 1 << 20;      // larger request bodies get 413
  FaultOptions faults;                  // injected failures (none by default); must Validate()
  // The clock for rate-limit windows, quotas, timestamps and preview progress; null means
  // absl::Now. Tests may inject a fake one.
  std::function<absl::Time()> clock;
};

class Simulator {
 public:
  explicit Simulator(SimulatorOptions options);
  ~Simulator();  // Stop()s.
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // Binds and starts serving. Fails (and serves nothing) when the address cannot be bound or
  // Start() was already called.
  absl::Status Start();

  // The bound port (the real one when options.port was 0); 0 before Start().
  int port() const;
  const std::string& host() const;

  // Stops accepting, finishes the requests in flight and joins the threads. Idempotent.
  void Stop();

  // Same as POST /__sim/reset: forgets all state, counters, the request log, rate-limit
  // windows and quotas.
  void Reset();

  // The body of GET /__sim/stats.
  std::string StatsJson() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sim

#endif  // SEGMENT_SIM_SIMULATOR_H_
