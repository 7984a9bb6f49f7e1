// Rate limits of segment-sim.
//
// RateLimitConfig: which limit (N requests per DURATION) applies to which operation. It starts
// from the documented per-endpoint limits (tests/reference/segment-api-behaviour.md) and takes
// overrides in the `--rate_limits` syntax "OP=N/DURATION,..." where OP is an RPC name
// (PascalCase) or "default" and DURATION an absl duration ("50/1m", "10/1s"). "default" changes
// only the operations without an explicit (documented or given) entry. Immutable once built.
//
// FixedWindowLimiter: fixed windows per key, the way Segment's limiter (rate-limiter-flexible)
// counts: a window opens at the first request after the previous one closed and lasts DURATION;
// every request in it, refused ones included, adds one consumed point; a request is allowed
// while consumed <= N. Calendar windows (e.g. a UTC month) are supported too. Thread-safe.

#ifndef SEGMENT_SIM_RATE_LIMITS_H_
#define SEGMENT_SIM_RATE_LIMITS_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sim {

struct Limit {
  int64_t points = 0;     // requests allowed per window (>= 1)
  absl::Duration window;  // window length (> 0)
};

class RateLimitConfig {
 public:
  // The documented limits: the six writes 50/1m, CreateAudiencePreview 5/1m, GetAudience 100/1m,
  // GetAudiencePreview 300/1m, ListAudienceConsumersFromSpaceAndAudience 25/1m,
  // ListAudiences 60/1m, default (every other operation) 60/1m.
  static RateLimitConfig Defaults();

  // Defaults() with the overrides of `spec` applied. An empty spec gives Defaults(). On bad
  // syntax, an unknown operation, a repeated entry, N < 1 or DURATION <= 0, returns
  // InvalidArgument with a message naming the offending entry.
  static absl::StatusOr<RateLimitConfig> Parse(absl::string_view spec);

  // The limit for operation `rpc`.
  Limit For(absl::string_view rpc) const;

  // "OP=N/DURATION,..." listing every explicit entry and the default (for logs and --help).
  std::string ToString() const;

 private:
  std::map<std::string, Limit, std::less<>> explicit_;
  Limit default_;
};

// The outcome of one request against a limiter.
struct RateDecision {
  bool allowed = true;
  int64_t limit = 0;      // N of the window
  int64_t consumed = 0;   // points consumed in the window, this request included
  int64_t remaining = 0;  // max(0, limit - consumed)
  absl::Time reset;       // when the window closes
};

class FixedWindowLimiter {
 public:
  FixedWindowLimiter() = default;
  FixedWindowLimiter(const FixedWindowLimiter&) = delete;
  FixedWindowLimiter& operator=(const FixedWindowLimiter&) = delete;

  // Consumes one point of `key` in a window of `limit.window` that opens at the first request
  // after the previous window closed.
  RateDecision Consume(const std::string& key, const Limit& limit, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Consumes one point of `key` in the calendar window [start, end) (which contains now).
  RateDecision ConsumeInWindow(const std::string& key, int64_t points, absl::Time start,
                               absl::Time end, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // Forgets every window.
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Window {
    absl::Time start;
    absl::Time end;
    int64_t consumed = 0;
  };
  RateDecision ConsumeLocked(const std::string& key, int64_t points, absl::Time start,
                             absl::Time end, absl::Time now, bool calendar)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<std::string, Window> windows_ ABSL_GUARDED_BY(mu_);
};

// The UTC calendar month containing `t`: [first instant of the month, first of the next).
void UtcMonth(absl::Time t, absl::Time* start, absl::Time* end);

// `t` as an RFC 5322 date ("Sat, 28 Nov 2026 12:00:00 GMT"), rounded UP to the whole second.
std::string FormatHttpDateCeil(absl::Time t);

}  // namespace sim

#endif  // SEGMENT_SIM_RATE_LIMITS_H_
