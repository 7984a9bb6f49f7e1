// Rate limits as data: what `--rate_limits` says and which limit applies to an RPC.
//
// A Limit is "`requests` calls per `per`" for one lane (one token/workspace and one operation).
// ParseRateLimits reads the `--rate_limits` flag (service/README.md, flags):
//
//   OP=N/DURATION[,OP=N/DURATION...]     e.g. "ListAudiences=60/1m,default=10/1s"
//
// OP is an RPC name from a caller-supplied list, or `default`; N an integer >= 1; DURATION an
// absl duration > 0 ("1m", "10s", "500ms", "1h30m"). Whitespace around tokens is ignored.
//
// LimitFor picks the limit of one RPC, most specific first:
//   1. an override naming the RPC;
//   2. the documented limit (operation table), when it states one (requests > 0);
//   3. the `default` override;
//   4. `api_default`, the API's default limit the gateway assumes.
// So `default` changes only the operations without an explicit (documented or given) limit, the
// same rule segment-sim applies to the same flag.
//
// Thread-safe: pure functions.
#ifndef SAG_SERVICE_RATELIMIT_LIMITS_H_
#define SAG_SERVICE_RATELIMIT_LIMITS_H_

#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "service/operations/operation_table.h"

namespace sag::ratelimit {

// `requests` calls per `per`. Valid when requests >= 1 and 0 < per < infinity.
struct Limit {
  int requests = 0;
  absl::Duration per = absl::Minutes(1);

  bool valid() const {
    return requests >= 1 && per > absl::ZeroDuration() && per < absl::InfiniteDuration();
  }
  friend bool operator==(const Limit& a, const Limit& b) {
    return a.requests == b.requests && a.per == b.per;
  }
  friend bool operator!=(const Limit& a, const Limit& b) { return !(a == b); }
};

// "N/DURATION", e.g. "10/1s" (for logs and messages).
std::string FormatLimit(const Limit& limit);

// The key of the `default` entry of LimitOverrides.
inline constexpr absl::string_view kDefaultOp = "default";

// RPC name (or kDefaultOp) -> limit. Ordered, so it prints stably.
using LimitOverrides = std::map<std::string, Limit, std::less<>>;

// Parses a `--rate_limits` value. An empty (or all-blank) spec gives no overrides.
// OP must be `default` or one of `known_rpcs` (case-sensitive). Returns InvalidArgument whose
// message names the offending entry and why: empty entry (e.g. a trailing comma), missing '=' or
// '/', unknown operation, an operation given twice, N not an integer >= 1, DURATION not a
// finite absl duration > 0.
absl::StatusOr<LimitOverrides> ParseRateLimits(absl::string_view spec,
                                               absl::Span<const absl::string_view> known_rpcs);

// The limit that applies to `rpc` (see the order above). `documented.requests == 0` means the
// operation has no documented limit. `api_default` should be valid.
Limit LimitFor(absl::string_view rpc, Limit documented, const LimitOverrides& overrides,
               Limit api_default);

// The same, reading the documented limit of an operation-table row.
inline Limit LimitFor(absl::string_view rpc, const ops::RateLimit& documented,
                      const LimitOverrides& overrides, Limit api_default) {
  return LimitFor(rpc, Limit{documented.requests, documented.per}, overrides, api_default);
}

}  // namespace sag::ratelimit

#endif  // SAG_SERVICE_RATELIMIT_LIMITS_H_
