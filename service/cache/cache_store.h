// Where listing-cache entries live. The ListingCache decides what is fresh, stale or useless; a
// CacheStore only keeps entries by key, finds them by tag and bounds its memory.
//
// The seam exists so that the scale-out work can share entries and invalidations between gateway
// replicas (Redis) without touching the ListingCache. Contract for every implementation:
//   - Thread-safe: every method may be called from any thread, concurrently.
//   - Non-blocking in practice: the ListingCache calls the store while holding its own lock and on
//     the gRPC / upstream event-loop threads. An implementation must answer from memory (a shared
//     store keeps a local copy and talks to Redis in the background); it must never call back
//     into the ListingCache.
//   - Values are opaque bytes (the serialized response message).
#ifndef SAG_SERVICE_CACHE_CACHE_STORE_H_
#define SAG_SERVICE_CACHE_CACHE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sag::cache {

struct Entry {
  // Opaque answer bytes.
  std::string value;
  // When the answer was received from the upstream.
  absl::Time stored;
  // From then on the entry is useless: a store may drop it, and must not return it.
  absl::Time expires = absl::InfiniteFuture();
  // InvalidateTag(t) drops the entry when t is one of these.
  std::vector<std::string> tags;
};

// Counters and gauges of a store, for metrics. A snapshot; fields are not read atomically together.
struct StoreStats {
  uint64_t entries = 0;      // Gauge: entries held now.
  uint64_t bytes = 0;        // Gauge: bytes charged now (see the implementation for what counts).
  uint64_t evictions = 0;    // Counter: entries dropped to respect the byte bound.
  uint64_t expired = 0;      // Counter: entries dropped because `expires` passed.
  uint64_t rejected = 0;     // Counter: Put()s refused because the entry was over the size cap.
  uint64_t invalidated = 0;  // Counter: entries dropped by InvalidateTag().
};

class CacheStore {
 public:
  virtual ~CacheStore() = default;

  // The entry under `key`, or nullptr when there is none (never stored, erased, evicted, expired,
  // invalidated). The entry is immutable and stays valid as long as the caller holds it, even if
  // the store drops it meanwhile.
  virtual std::shared_ptr<const Entry> Get(absl::string_view key) = 0;

  // Stores `entry` under `key`, replacing any previous entry. Returns false when the store refused
  // it (over its size cap); the previous entry under `key`, being older, is then dropped anyway.
  virtual bool Put(absl::string_view key, Entry entry) = 0;

  // Drops the entry under `key`, if any.
  virtual void Erase(absl::string_view key) = 0;

  // Drops every entry carrying `tag`. Returns how many were dropped. Once this returns, no Get()
  // returns an entry that carried `tag` and was stored before the call.
  virtual size_t InvalidateTag(absl::string_view tag) = 0;

  virtual StoreStats Stats() const = 0;
};

}  // namespace sag::cache

#endif  // SAG_SERVICE_CACHE_CACHE_STORE_H_
