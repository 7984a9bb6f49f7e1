// ListingCache: answers repeated listings from a CacheStore, collapses identical concurrent misses
// into one upstream call (singleflight), refreshes in the background and falls back to the last
// good answer when the upstream fails. It stores opaque values (the serialized response message)
// and knows nothing of gRPC or protobuf: the caller supplies the key, the tags and a `Fetch` that
// makes the upstream call.
//
// Nothing waits on a thread. Get() never blocks on the upstream: it either answers at once or
// registers a waiter whose `done` runs when the shared fetch reports (or when Abandon() is called).
// No callback (Fetch, Done) is ever run while the cache holds a lock, so callbacks may call back
// into the cache.
//
// Freshness, by the age of the entry (now - stored, from the injected clock; windows are
// half-open):
//   age < ttl                             fresh: answered from the store, Outcome::kHit.
//   ttl <= age < ttl + stale_while_revalidate
//                                         answered from the store at once, Outcome::kStale, and ONE
//                                         background refresh starts (unless a fetch for the key is
//                                         already in flight, which then serves as the refresh).
//   older, or no entry                    a miss: the caller joins the fetch in flight for the key,
//                                         or starts one; Outcome::kMiss.
// Stale-if-error: when a fetch fails with an error for which StaleIfErrorEligible() holds and the
// store still has an entry with age < ttl + stale_if_error, the waiters get that entry's value
// with Outcome::kStale instead of the error. Otherwise they all get the error (Outcome::kMiss).
// Errors are never stored. Entries are stored with
// `expires = stored + ttl + max(stale_while_revalidate, stale_if_error)`, when they become useless.
//
// Bypass (request metadata `cache-control: no-cache`): always starts a new fetch (it never joins
// one, whose answer could predate the request), never answers from the store, and stores its answer
// on success (a refresh). Its `done` gets the fetch's value or error as is, with Outcome::kBypass:
// the caller asked not to be served from the cache, so no stale-if-error either. Later misses for
// the key join the bypass fetch; a fetch it replaces still answers its own waiters but no longer
// stores (its answer is older).
//
// Invalidation: Invalidate(tag) drops every stored entry carrying `tag`, and every fetch in flight
// whose lookup carried `tag` is detached: it still answers the waiters that joined it, but its
// result is not stored (it may predate the write), and callers arriving after Invalidate() returns
// start a new fetch. Hence a caller that wrote, had the gateway invalidate, and then lists through
// the same cache sees its write.
//
// Thread safety: all methods are thread-safe. Ownership and lifetime: the store is shared; the
// clock is borrowed and must outlive the cache and every fetch it started. A fetch still in flight
// when the ListingCache is destroyed keeps the cache's internals (and the store) alive and still
// answers its waiters, so `done` still runs exactly once.
#ifndef SAG_SERVICE_CACHE_LISTING_CACHE_H_
#define SAG_SERVICE_CACHE_LISTING_CACHE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/cache/cache_store.h"
#include "service/common/clock.h"

namespace sag::cache {

// How an answer was produced; the value of the `x-cache` response metadata.
enum class Outcome { kHit, kMiss, kStale, kBypass };

// "hit", "miss", "stale", "bypass".
absl::string_view OutcomeName(Outcome outcome);

// Whether a failed fetch (or an abandoned wait) may be answered with a stale entry: only for a
// failure to get an answer, UNAVAILABLE (5xx, connection failure, upstream timeout),
// DEADLINE_EXCEEDED (the caller's deadline passed waiting) and RESOURCE_EXHAUSTED (a rate-limit
// wait longer than the caller's deadline). Never for an answer about the request or the token
// (UNAUTHENTICATED and PERMISSION_DENIED from a 401/403, NOT_FOUND, INVALID_ARGUMENT), nor for
// INTERNAL, CANCELLED or any other code: serving an old listing would hide them.
bool StaleIfErrorEligible(const absl::Status& status);

class ListingCache {
 public:
  struct Options {
    absl::Duration ttl = absl::Seconds(30);                     // Freshness.
    absl::Duration stale_while_revalidate = absl::Seconds(30);  // Grace after ttl (see above).
    absl::Duration stale_if_error = absl::Minutes(5);           // How long past ttl, on errors.
    Clock* clock = RealClock();                                 // Not owned.
  };

  // Reports the result of one upstream call: the value to store and answer, or the error. The
  // first call counts; later calls are ignored. It may be called on any thread, including inside
  // the Fetch that received it. If every copy is destroyed without a call, the waiters get
  // INTERNAL (a fetch can thus not strand them).
  using FetchDone = std::function<void(absl::StatusOr<std::string>)>;
  // Starts ONE upstream call and reports it through `done`. Must not block. Called at most once
  // per Get(), without cache locks held; not called when the Get() is answered from the store or
  // joins a fetch in flight (it is then dropped unused).
  using Fetch = std::function<void(FetchDone done)>;
  // An answer's bytes, shared with the store (a hit copies nothing) and immutable.
  using Bytes = std::shared_ptr<const std::string>;
  // The answer to one Get(). Runs exactly once per Get(), without cache locks held. An OK value is
  // never null.
  using Done = std::function<void(absl::StatusOr<Bytes> value, Outcome outcome)>;

  // Names a waiting Get() for Abandon().
  using WaiterId = uint64_t;
  static constexpr WaiterId kNoWaiter = 0;

  struct Lookup {
    std::string key;                // MakeKey(...) (keys.h).
    std::vector<std::string> tags;  // ListingTags(...) (keys.h): what Invalidate() matches.
    bool bypass = false;            // cache-control: no-cache.
  };

  // Counters (monotonic) and gauges, for metrics. A snapshot; not read atomically together.
  struct Stats {
    // Answers by outcome (each Get() is counted once, when its `done` runs).
    uint64_t hits = 0;
    uint64_t misses = 0;  // Including errors passed through.
    uint64_t stale = 0;   // Stale-while-revalidate and stale-if-error answers.
    uint64_t bypass = 0;
    uint64_t stale_if_error = 0;        // Of `stale`: answers given instead of an error.
    uint64_t fetches_started = 0;       // Upstream calls started (Fetch invoked).
    uint64_t singleflight_joins = 0;    // Get()s that joined a fetch in flight instead.
    uint64_t background_refreshes = 0;  // Of `fetches_started`: stale-while-revalidate refreshes.
    uint64_t fetch_errors = 0;          // Fetches that reported an error.
    uint64_t results_dropped = 0;       // Successful fetches not stored: invalidated or replaced.
    uint64_t abandoned = 0;             // Waiters that left through Abandon().
    uint64_t invalidations = 0;         // Invalidate() calls.
    uint64_t in_flight = 0;             // Gauge: fetches started and not yet reported.
    uint64_t waiting = 0;               // Gauge: Get()s waiting for a fetch.
    StoreStats store;                   // The store's entries, bytes, evictions, ...
  };

  ListingCache(std::shared_ptr<CacheStore> store, Options options);
  ListingCache(const ListingCache&) = delete;
  ListingCache& operator=(const ListingCache&) = delete;
  ~ListingCache();

  // Answers `lookup` as described in the file comment. `done` runs exactly once:
  //   - fresh hit or stale-while-revalidate: on the calling thread, before Get() returns, which
  //   then
  //     returns kNoWaiter;
  //   - otherwise: on the thread that reports the fetch (FetchDone) or calls Abandon(); Get()
  //   returns
  //     a WaiterId (if the fetch reported inline, `done` has already run by then).
  WaiterId Get(const Lookup& lookup, Fetch fetch, Done done);

  // The fast path of Get() alone: the value under `key` when it is fresh (counted as a hit), else
  // nothing (and nothing counted): the caller then makes the full Get(). Never waits or fetches.
  std::optional<Bytes> FreshHit(absl::string_view key);

  // The waiter leaves: its `done` runs now, on the calling thread, with a stale value (kStale) if
  // `reason` is StaleIfErrorEligible, the lookup was not a bypass and the store has an entry within
  // ttl + stale_if_error; otherwise with `reason` (an OK `reason` becomes CANCELLED). The shared
  // fetch is neither cancelled nor failed: it goes on for the other waiters and is stored.
  // Returns false, doing nothing, when the waiter's `done` already ran (or runs concurrently) or
  // the id is unknown (kNoWaiter included).
  bool Abandon(WaiterId waiter, absl::Status reason);

  // Drops every entry carrying `tag` and detaches the fetches in flight that carry it (see the file
  // comment). Effective when it returns.
  void Invalidate(absl::string_view tag);

  Stats stats() const;
  const Options& options() const;

 private:
  class Core;
  std::shared_ptr<Core> core_;
};

}  // namespace sag::cache

#endif  // SAG_SERVICE_CACHE_LISTING_CACHE_H_
