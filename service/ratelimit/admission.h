// Admission: the stage of the request path that decides when a planned call may go upstream.
// The Exchange sees only this interface; the Limiter (limiter.h: per-lane GCRA pacing, fair
// queues, upstream feedback) is the gateway's implementation, and tests put a fake behind it.
//
// What every implementation promises:
//   - `admit` runs exactly once per Acquire/Requeue: OK means the call may go now (its budget is
//     taken); any other status is the call's refusal (RESOURCE_EXHAUSTED with RetryInfo,
//     DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE, INVALID_ARGUMENT). Only OK consumes budget.
//   - `admit` never runs under a lock of the implementation and may call back into it; it may
//     run inline, before Acquire/Requeue returns (then the returned Ticket is kNoTicket).
//   - Cancel(ticket) of a waiting call runs its `admit` with CANCELLED before returning.
//   - Observe() and OnTooManyRequests() feed the upstream's rate-limit answers back; they never
//     block on I/O.
#ifndef SAG_SERVICE_RATELIMIT_ADMISSION_H_
#define SAG_SERVICE_RATELIMIT_ADMISSION_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/ratelimit/limits.h"

namespace sag::ratelimit {

// Identifies a queued call, for Cancel. kNoTicket: the call was answered at once.
using Ticket = uint64_t;
inline constexpr Ticket kNoTicket = 0;

using AdmitFn = std::function<void(absl::Status)>;

struct AcquireRequest {
  std::string lane;    // workspace + "/" + rpc; also the BudgetStore key.
  Limit limit;         // The lane's limit (LimitFor).
  std::string caller;  // The fairness unit (authenticated caller, x-caller-id or peer).
  absl::Time deadline = absl::InfiniteFuture();
};

class Admission {
 public:
  virtual ~Admission() = default;

  // Asks for a slot of `r.lane` under `r.limit` for `r.caller`.
  virtual Ticket Acquire(const AcquireRequest& r, AdmitFn admit) = 0;
  // Like Acquire, for a call whose upstream attempt was answered 429 (nothing executed): it goes
  // back to the head of its lane.
  virtual Ticket Requeue(const AcquireRequest& r, AdmitFn admit) = 0;
  // Removes a waiting call; false when it was already answered (or kNoTicket).
  virtual bool Cancel(Ticket ticket) = 0;
  // The rate-limit headers of an upstream answer on `lane`.
  virtual void Observe(absl::string_view lane, std::optional<int64_t> remaining,
                       std::optional<absl::Time> reset) = 0;
  // An upstream 429 on `lane`, with its Retry-After (or a default).
  virtual void OnTooManyRequests(absl::string_view lane, absl::Duration retry_after) = 0;
};

}  // namespace sag::ratelimit

#endif  // SAG_SERVICE_RATELIMIT_ADMISSION_H_
