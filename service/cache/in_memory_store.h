// InMemoryStore: a CacheStore in this process's memory, LRU-bounded by bytes.
//
// Bound: the sum of the entries' charges never exceeds `max_bytes` once a call returns; Put()
// evicts least recently used entries (Get() counts as a use) until the new entry fits. An entry
// whose charge exceeds `max_entry_bytes` (or `max_bytes`) is not stored.
//
// Charge of an entry (Charge()): key bytes + value bytes + for each tag (tag bytes +
// kTagOverhead) + kEntryOverhead. The overheads approximate what the store spends around the
// payload on a 64-bit build: the LRU list node, the key index slot, the shared entry and its
// control block, the tag index slots. Allocator rounding is not counted exactly, so the process's
// RSS grows by somewhat more than `bytes`; the bound is on what the store accounts.
//
// Expiry: an entry whose `expires` has passed (by the injected clock) is never returned; it is
// dropped when a Get() finds it, or earlier by LRU eviction.
//
// Thread-safe (one mutex; no call runs user code while holding it). Never blocks otherwise.
#ifndef SAG_SERVICE_CACHE_IN_MEMORY_STORE_H_
#define SAG_SERVICE_CACHE_IN_MEMORY_STORE_H_

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/cache/cache_store.h"
#include "service/common/clock.h"

namespace sag::cache {

class InMemoryStore final : public CacheStore {
 public:
  static constexpr size_t kEntryOverhead = 256;
  static constexpr size_t kTagOverhead = 48;

  struct Options {
    size_t max_bytes = size_t{64} << 20;       // Bound on the sum of charges.
    size_t max_entry_bytes = size_t{4} << 20;  // Larger entries are not stored.
    Clock* clock = RealClock();                // Not owned; must outlive the store.
    // Told how many entries a Put() evicted (when > 0), after the store's lock is released, on
    // the thread that called Put(). Must be quick and must not call back into the store.
    std::function<void(size_t evicted)> on_evict;
  };

  InMemoryStore() : InMemoryStore(Options()) {}
  explicit InMemoryStore(Options options);
  InMemoryStore(const InMemoryStore&) = delete;
  InMemoryStore& operator=(const InMemoryStore&) = delete;
  ~InMemoryStore() override = default;

  std::shared_ptr<const Entry> Get(absl::string_view key) override;
  bool Put(absl::string_view key, Entry entry) override;
  void Erase(absl::string_view key) override;
  size_t InvalidateTag(absl::string_view tag) override;
  StoreStats Stats() const override;

  // What an entry under `key` is charged against `max_bytes` (see the file comment).
  static size_t Charge(absl::string_view key, const Entry& entry);

  const Options& options() const { return options_; }

 private:
  struct Node {
    std::string key;
    std::shared_ptr<const Entry> entry;
    size_t charge = 0;
  };
  using Lru = std::list<Node>;  // Front: most recently used.

  // Put() under the lock; counts the entries it evicts in *evicted.
  bool PutLocked(absl::string_view key, Entry entry, size_t* evicted) ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveLocked(Lru::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);
  // Keys are views of Node::key (list nodes do not move).
  absl::flat_hash_map<absl::string_view, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  // Tag -> keys (views of Node::key) of the entries carrying it.
  absl::flat_hash_map<std::string, absl::flat_hash_set<absl::string_view>> by_tag_
      ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  StoreStats counters_ ABSL_GUARDED_BY(mu_);  // entries/bytes filled in by Stats().
};

}  // namespace sag::cache

#endif  // SAG_SERVICE_CACHE_IN_MEMORY_STORE_H_
