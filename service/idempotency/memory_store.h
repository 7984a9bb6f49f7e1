// The in-process idempotency Store (see idempotency.h for the contract every Store keeps).
//
// Promises of this one:
//   - Bounded: at most `max_entries` keys, claimed or recorded. A new key when full evicts the
//     least recently used recorded answer (a replay counts as a use); when every entry is a
//     call still in progress the new key is refused with RESOURCE_EXHAUSTED: an in-progress
//     key is never evicted, so its repeats never run the write twice.
//   - A recorded answer lives `ttl` from its Finish; after that the key is free again.
//   - A claim lasts until Finish (the gateway always finishes: its exchange is bounded by the
//     upstream timeout); `hold_until` is not needed in one process.
//   - Parked repeats (kWait) cost a map entry and, with a finite `wait_until`, one timer.
//
// Thread-safe; no callback runs under the store's lock.
#ifndef SAG_SERVICE_IDEMPOTENCY_MEMORY_STORE_H_
#define SAG_SERVICE_IDEMPOTENCY_MEMORY_STORE_H_

#include <algorithm>
#include <list>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "service/common/clock.h"
#include "service/idempotency/idempotency.h"

namespace sag::idempotency {

struct MemoryStoreOptions {
  size_t max_entries = 10000;            // --idempotency_max_entries
  absl::Duration ttl = absl::Hours(24);  // --idempotency_ttl
};

class MemoryStore final : public Store {
 public:
  // `clock` and `timers` are not owned and must outlive the store.
  MemoryStore(MemoryStoreOptions options, Clock* clock, Timers* timers)
      : options_(options), clock_(clock), timers_(timers) {}
  ~MemoryStore() override;

  absl::StatusOr<Begun> Begin(const std::string& key, const std::string& fingerprint,
                              absl::Time wait_until, absl::Time hold_until, Ready ready) override;
  void Finish(const std::string& key, const Answer& answer, bool record) override;
  void Abandon(WaiterId waiter, absl::Status why) override;

  size_t entries() const;
  size_t waiters() const;

 private:
  struct Entry {
    std::string fingerprint;
    bool done = false;
    Answer answer;
    absl::Time expires = absl::InfiniteFuture();
    std::list<std::string>::iterator lru;  // Valid when done.
    std::vector<WaiterId> waiters;
  };
  struct Waiter {
    Ready ready;
    Timers::TimerId timer = 0;
    std::string key;
  };
  // Drops `it` (a recorded entry) from the map and the LRU list.
  void EraseDoneLocked(absl::flat_hash_map<std::string, Entry>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes room for one more key: false when every entry is in progress.
  bool MakeRoomLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers waiter `id` with DEADLINE_EXCEEDED at `wait_until` (unless answered before).
  void ArmDeadline(WaiterId id, absl::Time wait_until);
  Begun ParkLocked(Entry& entry, const std::string& key, Ready ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const MemoryStoreOptions options_;
  Clock* const clock_;
  Timers* const timers_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // Recorded keys, most recently used first.
  absl::flat_hash_map<WaiterId, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  WaiterId next_waiter_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace sag::idempotency

#endif  // SAG_SERVICE_IDEMPOTENCY_MEMORY_STORE_H_
