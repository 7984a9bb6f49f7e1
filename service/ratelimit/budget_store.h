// The budget of each lane: when may the next call go? A small, atomic-friendly interface so the
// state can live in this process (InProcessBudgetStore) or, shared by several replicas, in Redis.
//
// Algorithm: GCRA (the generic cell rate algorithm, a.k.a. a leaky bucket as a meter). Per key the
// store keeps one time, the theoretical arrival time TAT. With
//
//   T   = limit.per / limit.requests * (1 + pacing_margin)     (emission interval)
//   tau = (burst - 1) * T                                      (burst tolerance)
//
// a call at `now` conforms when now >= TAT - tau; taking it sets TAT = max(TAT, now) + T.
//
// Why paced and not "N per window": Segment counts fixed windows of `per` that open at the first
// request after the previous window closed. Calls spaced at least per/N apart can never put N+1
// calls into any window of length `per`, whatever its alignment; a bucket that allowed a burst of
// N could (N at the end of one window, N at the start of the next is fine, but the upstream's
// window is not aligned with ours). So the default burst is 1 slot: a 10/1s limit sends one call
// every 100 ms and at most 10 in any 1 s. A burst of b lets b calls go back to back after an idle
// period, at the price of up to N + b - 1 calls in some window. The pacing margin (default 2%)
// stretches T slightly so network jitter between the gateway and the upstream cannot squeeze an
// (N+1)-th call into a window; it costs 2% of the budget.
#ifndef SAG_SERVICE_RATELIMIT_BUDGET_STORE_H_
#define SAG_SERVICE_RATELIMIT_BUDGET_STORE_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/ratelimit/limits.h"

namespace sag::ratelimit {

// GCRA parameters (see the file comment).
struct GcraOptions {
  int burst = 1;                // >= 1 calls that may go back to back.
  double pacing_margin = 0.02;  // >= 0; T = per / requests * (1 + pacing_margin).
};

// The emission interval T of `limit` under `options`. `limit` must be valid.
absl::Duration EmissionInterval(const Limit& limit, const GcraOptions& options);

// Shared budget state. Implementations are thread-safe; each call is one atomic step on one key
// (a Redis implementation runs each as one script).
class BudgetStore {
 public:
  virtual ~BudgetStore() = default;

  // Takes one slot of `key` under `limit` if one is available at `now`. Returns:
  //   - a time <= now: the slot was taken (the call may go now);
  //   - a time > now: nothing was taken; the earliest time a slot may be available (another
  //     taker or a BlockUntil may still push it later: call again then);
  //   - InvalidArgument when `limit` is not valid; Unavailable when the shared store cannot be
  //     reached (nothing taken).
  virtual absl::StatusOr<absl::Time> TryTake(absl::string_view key, Limit limit,
                                             absl::Time now) = 0;

  // No slot of `key` before `until` (upstream feedback: a 429 or X-RateLimit-Remaining: 0).
  // Never moves an existing restriction earlier.
  virtual void BlockUntil(absl::string_view key, absl::Time until) = 0;

  // The emission interval this store paces `limit` with (for wait estimates).
  virtual absl::Duration Interval(const Limit& limit) const = 0;

  // For Limiter::Observe (X-RateLimit-Remaining: 0): whether the last `limit.requests`
  // admissions of `key` made through this store by EVERY process sharing it fit in
  // `limit.requests` emission intervals, i.e. the shared pacing itself filled the upstream's
  // window. std::nullopt when the store keeps no such record, or cannot read it now: the Limiter
  // then judges by its own admissions alone. The default (a store used by one process, such as
  // InProcessBudgetStore, where the Limiter's own record is the whole record) keeps none.
  virtual std::optional<bool> RecentAdmissionsFillWindow(absl::string_view key,
                                                         const Limit& limit) {
    (void)key;
    (void)limit;
    return std::nullopt;
  }
};

// GCRA in this process. Thread-safe. Memory: one entry per key; entries whose TAT and block have
// passed carry no information and are swept when the map grows.
class InProcessBudgetStore final : public BudgetStore {
 public:
  explicit InProcessBudgetStore(GcraOptions options = {});
  InProcessBudgetStore(const InProcessBudgetStore&) = delete;
  InProcessBudgetStore& operator=(const InProcessBudgetStore&) = delete;

  absl::StatusOr<absl::Time> TryTake(absl::string_view key, Limit limit, absl::Time now) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void BlockUntil(absl::string_view key, absl::Time until) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Duration Interval(const Limit& limit) const override;

  const GcraOptions& options() const { return options_; }

 private:
  void MaybeSweep(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const GcraOptions options_;
  absl::Mutex mu_;
  struct State {
    absl::Time tat = absl::InfinitePast();      // theoretical arrival time
    absl::Time blocked = absl::InfinitePast();  // no slot before this (BlockUntil)
  };
  absl::flat_hash_map<std::string, State> state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sag::ratelimit

#endif  // SAG_SERVICE_RATELIMIT_BUDGET_STORE_H_
