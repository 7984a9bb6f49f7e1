// The idempotency Store (see service/idempotency/idempotency.h) kept in Redis, so that replicas
// share keys: a retry sent to another replica replays the first replica's answer or waits for it.
//
// One string key per scoped idempotency key: `sag:idem:<scope>` (scope = ScopeKey's SHA-256) whose
// value is `P:<fingerprint>:<claim token>` while a call holds it, then
// `D:<fingerprint>:<EncodeAnswer>`.
//   - Begin claims with SET NX PX (the claim expires at `hold_until` + `claim_margin`, so a replica
//     that dies holding a key frees it), else reads the value: another fingerprint is
//     INVALID_ARGUMENT, an answer is replayed, a claim parks the call.
//   - A parked call is answered at once when the holder is on this replica (Finish wakes it);
//     otherwise a timer reads the key every `poll_interval` until its answer appears or
//     `wait_until` passes (DEADLINE_EXCEEDED). A claim that vanishes (the holder never sent the
//     write, or died) answers the parked call with ABORTED: retry.
//   - Finish records the answer for `ttl` (SET PX by a script that only replaces this call's own
//     claim, or an expired one), or deletes the claim when it is still this call's.
//
// Redis down: Begin fails with UNAVAILABLE (the write is not sent; retry); a failed Finish leaves
// the claim to expire. No lock is held during a Redis command. Thread-safe; the client, clock and
// timers are not owned and must outlive the store.
#ifndef SAG_SERVICE_REDIS_REDIS_IDEMPOTENCY_STORE_H_
#define SAG_SERVICE_REDIS_REDIS_IDEMPOTENCY_STORE_H_

#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "service/common/clock.h"
#include "service/idempotency/idempotency.h"
#include "service/redis/redis_client.h"

namespace sag::redis {

struct RedisIdempotencyOptions {
  absl::Duration ttl = absl::Hours(24);  // --idempotency_ttl
  absl::Duration poll_interval = absl::Milliseconds(50);
  absl::Duration claim_margin = absl::Seconds(5);
  std::string prefix = "sag:idem:";
};

class RedisIdempotencyStore final : public idempotency::Store {
 public:
  RedisIdempotencyStore(RedisClient* client, Clock* clock, Timers* timers,
                        RedisIdempotencyOptions options = {});
  ~RedisIdempotencyStore() override;

  absl::StatusOr<Begun> Begin(const std::string& key, const std::string& fingerprint,
                              absl::Time wait_until, absl::Time hold_until, Ready ready) override;
  void Finish(const std::string& key, const idempotency::Answer& answer, bool record) override;
  void Abandon(WaiterId waiter, absl::Status why) override;

  size_t waiters() const;

 private:
  struct Waiter {
    std::string key;
    std::string fingerprint;
    absl::Time wait_until;
    Ready ready;
    Timers::TimerId timer = 0;
  };
  // What a read of the key found.
  struct Found {
    enum class Kind { kNone, kClaim, kAnswer, kOther } kind = Kind::kNone;
    std::string fingerprint;
    std::string rest;
  };
  absl::StatusOr<Found> Read(const std::string& key) const;
  absl::StatusOr<Begun> Inspect(const std::string& key, const std::string& fingerprint,
                                const Found& found, absl::Time wait_until, Ready ready);
  void SchedulePoll(WaiterId id, absl::Time at);
  void Poll(WaiterId id);
  // Removes and answers waiter `id` (no-op when already gone).
  void Reply(WaiterId id, absl::StatusOr<idempotency::Answer> answer);

  RedisClient* const client_;
  Clock* const clock_;
  Timers* const timers_;
  const RedisIdempotencyOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> claims_ ABSL_GUARDED_BY(mu_);  // key -> value
  absl::flat_hash_map<WaiterId, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  WaiterId next_waiter_ ABSL_GUARDED_BY(mu_) = 1;
  std::mt19937_64 random_ ABSL_GUARDED_BY(mu_){std::random_device{}()};
};

}  // namespace sag::redis

#endif  // SAG_SERVICE_REDIS_REDIS_IDEMPOTENCY_STORE_H_
