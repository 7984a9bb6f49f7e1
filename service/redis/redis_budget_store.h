// The lane budget (GCRA, see service/ratelimit/budget_store.h) kept in Redis, so that any number
// of gateway replicas sharing one Segment token admit calls as one; and FallbackBudgetStore, which
// keeps the gateway serving (conservatively) while Redis is down or slow.
//
// RedisBudgetStore: each TryTake / BlockUntil is ONE Lua script run atomically by Redis on one
// hash key `sag:rl:<lane key>` with fields `tat` (theoretical arrival time) and `blk` (no slot
// before), both integer microseconds since the Unix epoch. The arithmetic is exactly
// InProcessBudgetStore's, with the emission interval rounded UP to a whole microsecond.
// The same hash holds the admission record: the times of the lane's last N admissions
// (N = limit.requests; fields r0 .. r<N-1> as a ring, `rn` = N, `rc` = admissions recorded),
// written by the take script in the same atomic step, by every replica. It answers
// RecentAdmissionsFillWindow, the shared form of the Limiter's "own pacing explains
// X-RateLimit-Remaining: 0" test (see limiter.h): one replica's admissions are only its share of
// the window. N + 4 fields per lane at most; limits of more than 1000 requests keep no record
// (their lanes are judged by each replica's own admissions, as before the record existed).
// Keys expire (PEXPIRE) one second after tat, blk and the last admission + N * T have all passed
// (after that the record cannot show a full window; an expired key behaves like a missing one
// for the GCRA and answers "not full" for the record), so Redis memory stays bounded by the lanes
// active within about one window.
//
// Clock (ClockSource): replicas' clocks differ (NTP keeps them within milliseconds, a bad host can
// be off by seconds); a shared GCRA state compared against different clocks lets a fast-clock
// replica take slots early. With kServer (default) the scripts read Redis's TIME, so every replica
// is judged by the same clock; the answer is converted back to the caller's clock as a delay:
// TryTake returns `now` when taken and `now + (allowed_at - server_now)` when not. BlockUntil's
// `until` is converted to a delay with the options' clock. With kCaller the caller's `now` is used
// as is (deterministic: tests, or hosts with tightly synced clocks).
#ifndef SAG_SERVICE_REDIS_REDIS_BUDGET_STORE_H_
#define SAG_SERVICE_REDIS_REDIS_BUDGET_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/ratelimit/budget_store.h"
#include "service/redis/redis_client.h"

namespace sag::redis {

enum class ClockSource { kServer, kCaller };

struct RedisBudgetOptions {
  ratelimit::GcraOptions gcra;
  ClockSource clock_source = ClockSource::kServer;
  // Converts BlockUntil's absolute `until` into a delay (kServer) or supplies "now" (kCaller).
  Clock* clock = RealClock();  // Not owned.
  std::string prefix = "sag:rl:";
};

// Thread-safe. Does not own the client, which must outlive it. Every call is one round trip on
// the client's connection (or an immediate UNAVAILABLE when it is down).
class RedisBudgetStore final : public ratelimit::BudgetStore {
 public:
  RedisBudgetStore(RedisClient* client, RedisBudgetOptions options = {});

  // See BudgetStore. UNAVAILABLE: Redis cannot be reached / timed out / cannot serve (nothing is
  // known to be taken); INTERNAL: unexpected reply (a bug); INVALID_ARGUMENT: bad limit.
  absl::StatusOr<absl::Time> TryTake(absl::string_view key, ratelimit::Limit limit,
                                     absl::Time now) override;
  // Best effort (the interface returns nothing); BlockUntilOrError reports the outcome.
  void BlockUntil(absl::string_view key, absl::Time until) override;
  absl::Status BlockUntilOrError(absl::string_view key, absl::Time until);
  // From the admission record every TryTake writes (all replicas'): whether the last
  // limit.requests admissions of `key` fit in limit.requests intervals. One read-only script.
  // std::nullopt when there is no answer; RecentAdmissionsFillWindowOrError says why:
  // UNAVAILABLE (Redis), INVALID_ARGUMENT (bad limit), FAILED_PRECONDITION (a limit above 1000
  // requests: no record is kept).
  std::optional<bool> RecentAdmissionsFillWindow(absl::string_view key,
                                                 const ratelimit::Limit& limit) override;
  absl::StatusOr<bool> RecentAdmissionsFillWindowOrError(absl::string_view key,
                                                         const ratelimit::Limit& limit);
  // EmissionInterval rounded up to a whole microsecond.
  absl::Duration Interval(const ratelimit::Limit& limit) const override;

  RedisClient* client() const { return client_; }
  const RedisBudgetOptions& options() const { return options_; }

 private:
  RedisClient* const client_;
  const RedisBudgetOptions options_;
};

struct FallbackOptions {
  // N: how many replicas share the budget. While degraded each replica paces every lane at 1/N of
  // its limit (Limit{requests, per * N}), so N replicas together stay within the limit. >= 1.
  int replicas = 1;
  // GCRA options of the local fallback (burst is divided by N, at least 1).
  ratelimit::GcraOptions gcra;
  // After Redis returns, each lane keeps the local 1/N check for this many of its `per` windows
  // (>= 1). 2 covers replicas reconnecting up to one window apart.
  int recovery_windows = 2;
  // Called on every change of degraded(); `why` says what happened. Must not block or call back
  // into the store. Optional.
  std::function<void(bool degraded, const std::string& why)> on_state_change;
  // The clock TryTake's `now` comes from (the Limiter's). Not owned. After a Redis call, which
  // may take up to the client's command timeout, the local state is charged at this clock's time
  // (when the call really goes out), never earlier than `now`.
  Clock* clock = RealClock();
};

// The BudgetStore the gateway uses with --redis_url. Thread-safe; does not own `shared`.
//
// It keeps, per lane, a local GCRA state paced at 1/N of the limit (Limit{requests, per * N},
// the same arithmetic as InProcessBudgetStore; kept here rather than in an InProcessBudgetStore
// because recovery needs to check the local state without taking from it).
//
// Healthy: TryTake asks Redis. Every call this replica is admitted is also recorded in the local
// state ("mirror"; at the time the call goes out, after the Redis round trip: FallbackOptions::
// clock), so the local state knows how much of its 1/N share the replica has recently used and
// the switch to the fallback cannot burst. The mirror's debt is capped: its next slot is
// never more than max(per, local interval) away, since a replica may take far more than 1/N
// through Redis (all of it, when the others are idle), and that must not lock it out for minutes
// once Redis goes away. The cap keeps what the mirror guarantees: a local admission never puts
// more of this replica's calls (through Redis or local) in a window of length `per` than its 1/N
// pacing allows.
// Degraded (Redis errors, timeouts, or the client is not connected): TryTake is answered by the
// local state alone. degraded() turns true, on_state_change fires, counters move. The client
// reconnects in the background (with back-off); nothing here waits for it.
// Recovering: after Redis comes back (first successful call after degraded, or any reconnection,
// since a restarted Redis has lost its state) and for `recovery_windows` x `per` of the lane's
// limit, a call must be allowed by the local 1/N state AND admitted by Redis (the local state is
// checked first without taking; it is charged only when Redis admits). Calls made during the
// outage are not in Redis; this keeps every window of length `per` within the limit (no burst
// when Redis returns). After that, windows contain only Redis-admitted calls.
// Entering degraded: with N > 1 no local admission comes sooner than one local interval (N x T)
// after the episode's first local take. The mirror only knows this replica's calls: when the
// shared pacing had filled the window just before the outage (calls T apart from all replicas),
// a replica that had taken less than 1/N of them could otherwise take a local call at once, one
// over the limit in that window (seen: 11 of 10). Every pre-outage call is before the episode
// began; with each replica waiting N x T, the window ending at any time t holds at most
// (per - (t - start)) / T of them plus N per N x T of local calls, together within the limit.
// Limitation: a replica cut off from a Redis that the others still reach takes its 1/N on top of
// what the others take through Redis (at most 1/N over the limit while the partition lasts).
class FallbackBudgetStore final : public ratelimit::BudgetStore {
 public:
  struct Stats {
    uint64_t shared_admits = 0;    // Calls admitted through Redis.
    uint64_t fallback_admits = 0;  // Calls admitted by the local store while degraded.
    uint64_t shared_errors = 0;    // Redis calls that failed (each sends TryTake to the fallback).
    uint64_t degraded_episodes = 0;  // Healthy -> degraded transitions.
    uint64_t recoveries = 0;         // Degraded (or reconnected) -> healthy transitions.
  };

  FallbackBudgetStore(RedisBudgetStore* shared, FallbackOptions options);

  absl::StatusOr<absl::Time> TryTake(absl::string_view key, ratelimit::Limit limit,
                                     absl::Time now) override ABSL_LOCKS_EXCLUDED(mu_);
  // Applied locally always and to Redis when reachable.
  void BlockUntil(absl::string_view key, absl::Time until) override;
  // Redis's admission record while healthy (or recovering); std::nullopt while degraded (the
  // Limiter then judges by its own admissions at the local 1/N interval) or when Redis fails.
  std::optional<bool> RecentAdmissionsFillWindow(absl::string_view key,
                                                 const ratelimit::Limit& limit) override;
  // The shared interval when healthy, the local (N times longer) one when degraded.
  absl::Duration Interval(const ratelimit::Limit& limit) const override;

  // True while the shared store is not being used: the client is not connected or the last
  // shared call failed. For health details, metrics and logs.
  bool degraded() const;
  Stats stats() const;
  int replicas() const { return replicas_; }

 private:
  ratelimit::Limit Scaled(const ratelimit::Limit& limit) const;
  struct LocalState {
    absl::Time tat = absl::InfinitePast();      // At the local (1/N) rate.
    absl::Time blocked = absl::InfinitePast();  // BlockUntil.
  };
  // The local GCRA (mu_ held): when the next local slot of `key` is; charging one call.
  absl::Time LocalAllowedAt(absl::string_view key, const ratelimit::Limit& local_limit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `limit` is the lane's limit, `local_limit` its 1/N share (Scaled); the debt is capped (see
  // the class comment).
  void LocalCharge(absl::string_view key, const ratelimit::Limit& limit,
                   const ratelimit::Limit& local_limit, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Take from the local state alone (degraded); counts fallback admissions.
  absl::Time LocalTake(absl::string_view key, const ratelimit::Limit& limit,
                       const ratelimit::Limit& local_limit, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  // After a Redis call begun at `now`: the time the admitted call goes out (>= now).
  absl::Time AfterShared(absl::Time now) const;
  // LocalTake at AfterShared(now) after a failed Redis call; returns `now` when taken.
  absl::Time LocalTakeAfterShared(absl::string_view key, const ratelimit::Limit& limit,
                                  const ratelimit::Limit& local_limit, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  void MarkDegraded(const std::string& why) ABSL_LOCKS_EXCLUDED(mu_);
  // After a successful shared call: leaves degraded state / notes a reconnection.
  void MarkHealthy(uint64_t generation, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  bool InRecovery(uint64_t generation, const ratelimit::Limit& limit, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);

  RedisBudgetStore* const shared_;
  const int replicas_;
  const FallbackOptions options_;
  const ratelimit::GcraOptions local_gcra_;

  mutable absl::Mutex mu_;
  // Keys with a recovery-time take under way (check local, ask Redis, charge local): one per key
  // at a time, without holding mu_ across Redis.
  absl::flat_hash_set<std::string> recovering_keys_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, LocalState> local_ ABSL_GUARDED_BY(mu_);
  bool degraded_flag_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t seen_generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time recovery_from_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // The first local take of the current degraded episode (InfinitePast while healthy).
  absl::Time degraded_from_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  std::atomic<bool> degraded_{false};
  std::atomic<uint64_t> shared_admits_{0};
  std::atomic<uint64_t> fallback_admits_{0};
  std::atomic<uint64_t> shared_errors_{0};
  std::atomic<uint64_t> degraded_episodes_{0};
  std::atomic<uint64_t> recoveries_{0};
};

}  // namespace sag::redis

#endif  // SAG_SERVICE_REDIS_REDIS_BUDGET_STORE_H_
