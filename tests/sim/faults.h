// Fault injection of segment-sim: the upstream failures a client must survive (5xx answers, lost
// connections, garbled bodies, slow answers), on purpose and at chosen rates.
//
// FaultOptions says which faults, how often and for which operations; FaultInjector draws them,
// one request at a time, and counts what it injected.
//
// Promises:
//  - Faults only ever concern the 14 operations listed in `ops` (all 14 when empty); never the
//    debug endpoints, never an unrouted request.
//  - Each kind is drawn on its own, with probability equal to its rate, at its place in the
//    request's pipeline (see simulator.h), and a request gets at most one fault besides the
//    extra latency: the first that hits, in pipeline order (5xx, reset, 5xx_after, malformed).
//    With only one kind enabled, its rate is exactly the fraction of eligible requests it hits.
//  - Draws come from one generator seeded with `seed` (0: a random seed). Requests served
//    concurrently take draws in an order the scheduler decides, so a seed makes a run
//    reproducible only for requests sent one at a time.
//  - Thread-safe.
// Does not: decide what a fault looks like on the wire (simulator.cc does).

#ifndef SEGMENT_SIM_FAULTS_H_
#define SEGMENT_SIM_FAULTS_H_

#include <cstdint>
#include <random>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sim {

struct FaultOptions {
  // Fraction (0..1) of requests answered 500 or 503 (even odds) with an error envelope of type
  // "server", before anything is executed.
  double error_5xx_rate = 0;
  // Fraction (0..1) of WRITE requests (POST, PATCH, DELETE) that are executed (a 2xx outcome)
  // and then answered 500 instead: the change happened, the client cannot know it.
  double error_5xx_after_rate = 0;
  // Fraction (0..1) of requests whose answer is aborted before anything is executed: the
  // headers announce a Content-Length larger than the body sent, then the connection is closed,
  // so the client sees a transport error (a truncated transfer).
  double reset_rate = 0;
  // Fraction (0..1) of successful (2xx) answers whose JSON body is cut short (keeping its
  // status and a consistent Content-Length): never valid JSON. Writes are executed.
  double malformed_rate = 0;
  // Extra latency, uniform in [0, latency], added to every eligible request.
  absl::Duration latency = absl::ZeroDuration();
  // RPC names (PascalCase) the faults apply to; empty = all 14 operations.
  std::set<std::string, std::less<>> ops;
  uint64_t seed = 0;  // 0: seeded from std::random_device.

  // True when some fault (or extra latency) is configured.
  bool Any() const;

  // OK, or InvalidArgument naming the bad value (rates outside [0, 1], negative or over 1 h
  // latency).
  absl::Status Validate() const;
};

// Parses the --fault_ops syntax: a comma-separated list of RPC names ("GetAudience,
// CreateAudience"); spaces around names are ignored; empty gives the empty set (all
// operations). Unknown names and empty entries are InvalidArgument naming the entry.
absl::StatusOr<std::set<std::string, std::less<>>> ParseFaultOps(absl::string_view spec);

// Counts of injected faults, for GET /__sim/stats ("faults").
struct FaultCounts {
  int64_t error_5xx = 0;        // "5xx"
  int64_t error_5xx_after = 0;  // "5xx_after"
  int64_t reset = 0;            // "reset"
  int64_t malformed = 0;        // "malformed"
  int64_t latency = 0;          // "latency": requests given a non-zero extra delay
};

class FaultInjector {
 public:
  explicit FaultInjector(FaultOptions options);
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  const FaultOptions& options() const { return options_; }

  // True when faults apply to operation `rpc`.
  bool Applies(absl::string_view rpc) const;

  // The extra latency for one request of `rpc` (zero when none); counted when non-zero.
  absl::Duration DrawLatency(absl::string_view rpc) ABSL_LOCKS_EXCLUDED(mu_);

  // Before execution: 500 or 503 for a 5xx fault (counted), else 0.
  int Draw5xx(absl::string_view rpc) ABSL_LOCKS_EXCLUDED(mu_);
  // Before execution: true for an aborted answer (counted).
  bool DrawReset(absl::string_view rpc) ABSL_LOCKS_EXCLUDED(mu_);
  // After a write executed: true to answer 500 instead (counted).
  bool Draw5xxAfter(absl::string_view rpc) ABSL_LOCKS_EXCLUDED(mu_);
  // After a 2xx outcome: true to cut its body (counted).
  bool DrawMalformed(absl::string_view rpc) ABSL_LOCKS_EXCLUDED(mu_);

  // How many bytes of a `size`-byte body a malformed answer keeps: in [1, size - 1] (0 when
  // size < 2).
  size_t DrawCut(size_t size) ABSL_LOCKS_EXCLUDED(mu_);

  FaultCounts Counts() const ABSL_LOCKS_EXCLUDED(mu_);
  void ResetCounts() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // True with probability `rate`; always false for 0 (no draw taken).
  bool Hit(double rate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FaultOptions options_;
  mutable absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  FaultCounts counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sim

#endif  // SEGMENT_SIM_FAULTS_H_
