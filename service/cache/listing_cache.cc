#include "service/cache/listing_cache.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace sag::cache {

absl::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kHit:
      return "hit";
    case Outcome::kMiss:
      return "miss";
    case Outcome::kStale:
      return "stale";
    case Outcome::kBypass:
      return "bypass";
  }
  return "miss";
}

bool StaleIfErrorEligible(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:        // 5xx, connection failure, upstream timeout
    case absl::StatusCode::kDeadlineExceeded:   // the caller's deadline, waiting
    case absl::StatusCode::kResourceExhausted:  // a rate-limit wait longer than the deadline
      return true;
    default:
      return false;
  }
}

namespace {

// One upstream call and the Get()s waiting for it.
struct Flight {
  // Set at creation, then never changed: readable without the lock.
  std::string key;
  std::vector<std::string> tags;
  // The rest is guarded by Core::mu_.
  // Ids of abandoned waiters linger here; they are skipped at completion.
  std::vector<ListingCache::WaiterId> waiters;
  bool finished = false;
  bool store_result = true;  // False once invalidated or replaced by a bypass fetch.
};

struct Waiter {
  ListingCache::Done done;
  std::shared_ptr<Flight> flight;
  bool bypass = false;
};

}  // namespace

class ListingCache::Core : public std::enable_shared_from_this<Core> {
 public:
  Core(std::shared_ptr<CacheStore> store, Options options)
      : store_(std::move(store)), options_(Sanitize(std::move(options))) {}

  const Options& options() const { return options_; }

  WaiterId Get(const Lookup& lookup, Fetch fetch, Done done);
  std::optional<Bytes> FreshHit(absl::string_view key) {
    std::shared_ptr<const Entry> entry = store_->Get(key);
    if (entry == nullptr || !Fresh(*entry, options_.clock->Now())) return std::nullopt;
    hits_.fetch_add(1, std::memory_order_relaxed);
    return BytesOf(std::move(entry));
  }
  bool Abandon(WaiterId waiter, absl::Status reason);
  void Invalidate(absl::string_view tag);
  void Complete(const std::shared_ptr<Flight>& flight, absl::StatusOr<std::string> result);
  Stats stats() const;

 private:
  // Reports a fetch's result to the cache exactly once: at the first FetchDone call, or with
  // INTERNAL when every copy of the FetchDone is dropped without a call.
  class Completion {
   public:
    Completion(std::shared_ptr<Core> core, std::shared_ptr<Flight> flight)
        : core_(std::move(core)), flight_(std::move(flight)) {}
    ~Completion() {
      if (!called_.exchange(true)) {
        core_->Complete(flight_, absl::InternalError("listing fetch ended without an answer"));
      }
    }
    void Run(absl::StatusOr<std::string> result) {
      if (called_.exchange(true)) return;
      core_->Complete(flight_, std::move(result));
    }

   private:
    const std::shared_ptr<Core> core_;
    const std::shared_ptr<Flight> flight_;
    std::atomic<bool> called_{false};
  };

  static Options Sanitize(Options options) {
    options.ttl = std::max(options.ttl, absl::ZeroDuration());
    options.stale_while_revalidate = std::max(options.stale_while_revalidate, absl::ZeroDuration());
    options.stale_if_error = std::max(options.stale_if_error, absl::ZeroDuration());
    if (options.clock == nullptr) options.clock = RealClock();
    return options;
  }

  bool Fresh(const Entry& entry, absl::Time now) const { return now - entry.stored < options_.ttl; }
  bool WithinRevalidate(const Entry& entry, absl::Time now) const {
    return now - entry.stored < options_.ttl + options_.stale_while_revalidate;
  }
  // The entry under `key` if it may answer instead of an error, else nullptr.
  std::shared_ptr<const Entry> StaleForError(const std::string& key, absl::Time now) const {
    std::shared_ptr<const Entry> entry = store_->Get(key);
    if (entry == nullptr || now - entry->stored >= options_.ttl + options_.stale_if_error) {
      return nullptr;
    }
    return entry;
  }

  // A new flight for `lookup`, joinable from now on; replaces (and stops from storing) the
  // joinable flight for the same key, if any.
  std::shared_ptr<Flight> NewFlightLocked(const Lookup& lookup) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  WaiterId AddWaiterLocked(const std::shared_ptr<Flight>& flight, Done done, bool bypass)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Start(const std::shared_ptr<Flight>& flight, Fetch fetch);
  // Runs `done` with `value` or `status` and counts the outcome.
  void Answer(const Done& done, absl::StatusOr<Bytes> value, Outcome outcome);
  // The bytes of a stored entry, sharing its ownership (no copy).
  static Bytes BytesOf(std::shared_ptr<const Entry> entry) {
    const std::string* value = &entry->value;
    return Bytes(std::move(entry), value);
  }

  const std::shared_ptr<CacheStore> store_;
  const Options options_;

  mutable absl::Mutex mu_;
  // The flight a miss for the key joins. Flights leave it when they finish, are replaced by a
  // bypass flight or are invalidated.
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> joinable_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<WaiterId, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  WaiterId next_waiter_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;

  std::atomic<uint64_t> hits_{0}, misses_{0}, stale_{0}, bypass_{0}, stale_if_error_{0},
      fetches_started_{0}, joins_{0}, background_refreshes_{0}, fetch_errors_{0},
      results_dropped_{0}, abandoned_{0}, invalidations_{0};
};

std::shared_ptr<Flight> ListingCache::Core::NewFlightLocked(const Lookup& lookup) {
  auto flight = std::make_shared<Flight>();
  flight->key = lookup.key;
  flight->tags = lookup.tags;
  auto [it, inserted] = joinable_.try_emplace(lookup.key, flight);
  if (!inserted) {
    it->second->store_result = false;
    it->second = flight;
  }
  ++in_flight_;
  return flight;
}

ListingCache::WaiterId ListingCache::Core::AddWaiterLocked(const std::shared_ptr<Flight>& flight,
                                                           Done done, bool bypass) {
  WaiterId id = next_waiter_++;
  flight->waiters.push_back(id);
  waiters_.emplace(id, Waiter{std::move(done), flight, bypass});
  return id;
}

void ListingCache::Core::Start(const std::shared_ptr<Flight>& flight, Fetch fetch) {
  fetches_started_.fetch_add(1, std::memory_order_relaxed);
  auto completion = std::make_shared<Completion>(shared_from_this(), flight);
  if (!fetch) {
    completion->Run(absl::InternalError("listing cache: no fetch given for a miss"));
    return;
  }
  fetch([completion](absl::StatusOr<std::string> result) { completion->Run(std::move(result)); });
}

void ListingCache::Core::Answer(const Done& done, absl::StatusOr<Bytes> value, Outcome outcome) {
  switch (outcome) {
    case Outcome::kHit:
      hits_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Outcome::kMiss:
      misses_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Outcome::kStale:
      stale_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Outcome::kBypass:
      bypass_.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  if (done) done(std::move(value), outcome);
}

ListingCache::WaiterId ListingCache::Core::Get(const Lookup& lookup, Fetch fetch, Done done) {
  const absl::Time now = options_.clock->Now();
  // Fast path, without the cache lock: a fresh entry.
  if (!lookup.bypass) {
    std::shared_ptr<const Entry> entry = store_->Get(lookup.key);
    if (entry != nullptr && Fresh(*entry, now)) {
      Answer(done, BytesOf(std::move(entry)), Outcome::kHit);
      return kNoWaiter;
    }
  }

  std::shared_ptr<Flight> to_start;
  std::shared_ptr<const Entry> answer;  // Set when answering from the store at once.
  Outcome answer_outcome = Outcome::kHit;
  WaiterId id = kNoWaiter;
  {
    absl::MutexLock lock(&mu_);
    if (lookup.bypass) {
      to_start = NewFlightLocked(lookup);
      id = AddWaiterLocked(to_start, std::move(done), /*bypass=*/true);
    } else {
      // Again under the lock: a flight may have stored the key since the fast path looked.
      std::shared_ptr<const Entry> entry = store_->Get(lookup.key);
      auto joinable = joinable_.find(lookup.key);
      if (entry != nullptr && Fresh(*entry, now)) {
        answer = std::move(entry);
        answer_outcome = Outcome::kHit;
      } else if (entry != nullptr && WithinRevalidate(*entry, now)) {
        answer = std::move(entry);
        answer_outcome = Outcome::kStale;
        if (joinable == joinable_.end()) {
          to_start = NewFlightLocked(lookup);
          background_refreshes_.fetch_add(1, std::memory_order_relaxed);
        }
      } else if (joinable != joinable_.end()) {
        joins_.fetch_add(1, std::memory_order_relaxed);
        id = AddWaiterLocked(joinable->second, std::move(done), /*bypass=*/false);
      } else {
        to_start = NewFlightLocked(lookup);
        id = AddWaiterLocked(to_start, std::move(done), /*bypass=*/false);
      }
    }
  }
  if (answer != nullptr) Answer(done, BytesOf(std::move(answer)), answer_outcome);
  if (to_start != nullptr) Start(to_start, std::move(fetch));
  return id;
}

void ListingCache::Core::Complete(const std::shared_ptr<Flight>& flight,
                                  absl::StatusOr<std::string> result) {
  const absl::Time now = options_.clock->Now();
  // Built before taking the lock: copying a large answer should not hold up other callers.
  std::optional<Entry> entry;
  absl::StatusOr<Bytes> answer =
      result.ok() ? absl::StatusOr<Bytes>(std::make_shared<const std::string>(*std::move(result)))
                  : absl::StatusOr<Bytes>(result.status());
  if (answer.ok()) {
    entry = Entry{
        **answer, now,
        now + options_.ttl + std::max(options_.stale_while_revalidate, options_.stale_if_error),
        flight->tags};  // A flight's key and tags never change.
  }
  std::vector<Waiter> to_answer;
  std::shared_ptr<const Entry> stale;
  {
    absl::MutexLock lock(&mu_);
    if (flight->finished) return;
    flight->finished = true;
    --in_flight_;
    auto joinable = joinable_.find(flight->key);
    if (joinable != joinable_.end() && joinable->second == flight) joinable_.erase(joinable);
    if (entry.has_value()) {
      if (flight->store_result) {
        // Stored under the lock, so an Invalidate() is either before (and detached this flight)
        // or after (and drops this entry).
        store_->Put(flight->key, std::move(*entry));
      } else {
        results_dropped_.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      fetch_errors_.fetch_add(1, std::memory_order_relaxed);
      if (StaleIfErrorEligible(answer.status())) stale = StaleForError(flight->key, now);
    }
    to_answer.reserve(flight->waiters.size());
    for (WaiterId id : flight->waiters) {
      auto waiter = waiters_.find(id);
      if (waiter == waiters_.end()) continue;  // Abandoned.
      to_answer.push_back(std::move(waiter->second));
      waiters_.erase(waiter);
    }
    flight->waiters.clear();
  }
  for (size_t i = 0; i < to_answer.size(); ++i) {
    const Waiter& waiter = to_answer[i];
    const bool last = i + 1 == to_answer.size();
    if (waiter.bypass) {
      Answer(waiter.done, last ? std::move(answer) : answer, Outcome::kBypass);
    } else if (answer.ok()) {
      Answer(waiter.done, last ? std::move(answer) : answer, Outcome::kMiss);
    } else if (stale != nullptr) {
      stale_if_error_.fetch_add(1, std::memory_order_relaxed);
      Answer(waiter.done, BytesOf(stale), Outcome::kStale);
    } else {
      Answer(waiter.done, answer.status(), Outcome::kMiss);
    }
  }
}

bool ListingCache::Core::Abandon(WaiterId id, absl::Status reason) {
  Waiter waiter;
  {
    absl::MutexLock lock(&mu_);
    auto found = waiters_.find(id);
    if (found == waiters_.end()) return false;
    waiter = std::move(found->second);
    waiters_.erase(found);
  }
  abandoned_.fetch_add(1, std::memory_order_relaxed);
  if (reason.ok()) reason = absl::CancelledError("listing wait abandoned");
  if (waiter.bypass) {
    Answer(waiter.done, std::move(reason), Outcome::kBypass);
    return true;
  }
  std::shared_ptr<const Entry> stale;
  if (StaleIfErrorEligible(reason))
    stale = StaleForError(waiter.flight->key, options_.clock->Now());
  if (stale != nullptr) {
    stale_if_error_.fetch_add(1, std::memory_order_relaxed);
    Answer(waiter.done, BytesOf(std::move(stale)), Outcome::kStale);
  } else {
    Answer(waiter.done, std::move(reason), Outcome::kMiss);
  }
  return true;
}

void ListingCache::Core::Invalidate(absl::string_view tag) {
  invalidations_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  store_->InvalidateTag(tag);
  for (auto it = joinable_.begin(); it != joinable_.end();) {
    const std::vector<std::string>& tags = it->second->tags;
    if (std::find(tags.begin(), tags.end(), tag) != tags.end()) {
      it->second->store_result = false;
      joinable_.erase(it++);
    } else {
      ++it;
    }
  }
}

ListingCache::Stats ListingCache::Core::stats() const {
  Stats stats;
  stats.hits = hits_.load(std::memory_order_relaxed);
  stats.misses = misses_.load(std::memory_order_relaxed);
  stats.stale = stale_.load(std::memory_order_relaxed);
  stats.bypass = bypass_.load(std::memory_order_relaxed);
  stats.stale_if_error = stale_if_error_.load(std::memory_order_relaxed);
  stats.fetches_started = fetches_started_.load(std::memory_order_relaxed);
  stats.singleflight_joins = joins_.load(std::memory_order_relaxed);
  stats.background_refreshes = background_refreshes_.load(std::memory_order_relaxed);
  stats.fetch_errors = fetch_errors_.load(std::memory_order_relaxed);
  stats.results_dropped = results_dropped_.load(std::memory_order_relaxed);
  stats.abandoned = abandoned_.load(std::memory_order_relaxed);
  stats.invalidations = invalidations_.load(std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    stats.in_flight = in_flight_;
    stats.waiting = waiters_.size();
  }
  stats.store = store_->Stats();
  return stats;
}

ListingCache::ListingCache(std::shared_ptr<CacheStore> store, Options options)
    : core_(std::make_shared<Core>(std::move(store), std::move(options))) {}

ListingCache::~ListingCache() = default;

ListingCache::WaiterId ListingCache::Get(const Lookup& lookup, Fetch fetch, Done done) {
  return core_->Get(lookup, std::move(fetch), std::move(done));
}

std::optional<ListingCache::Bytes> ListingCache::FreshHit(absl::string_view key) {
  return core_->FreshHit(key);
}

bool ListingCache::Abandon(WaiterId waiter, absl::Status reason) {
  return core_->Abandon(waiter, std::move(reason));
}

void ListingCache::Invalidate(absl::string_view tag) { core_->Invalidate(tag); }

ListingCache::Stats ListingCache::stats() const { return core_->stats(); }

const ListingCache::Options& ListingCache::options() const { return core_->options(); }

}  // namespace sag::cache
