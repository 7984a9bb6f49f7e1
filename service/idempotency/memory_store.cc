#include "service/idempotency/memory_store.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace sag::idempotency {

MemoryStore::~MemoryStore() {
  std::vector<Timers::TimerId> timers;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, waiter] : waiters_) timers.push_back(waiter.timer);
  }
  for (Timers::TimerId t : timers) {
    if (t != 0) timers_->Cancel(t);
  }
}

void MemoryStore::EraseDoneLocked(absl::flat_hash_map<std::string, Entry>::iterator it) {
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

bool MemoryStore::MakeRoomLocked(absl::Time now) {
  // Expired answers first (they are at the LRU tail or anywhere: check the tail only, cheap).
  while (!lru_.empty()) {
    auto it = entries_.find(lru_.back());
    if (it->second.expires > now && entries_.size() < options_.max_entries) return true;
    if (it->second.expires > now && entries_.size() >= options_.max_entries) {
      EraseDoneLocked(it);  // Full: the least recently used answer goes.
      return true;
    }
    EraseDoneLocked(it);
  }
  return entries_.size() < options_.max_entries;
}

Store::Begun MemoryStore::ParkLocked(Entry& entry, const std::string& key, Ready ready) {
  WaiterId id = next_waiter_++;
  entry.waiters.push_back(id);
  waiters_[id] = Waiter{std::move(ready), 0, key};
  Begun begun;
  begun.state = State::kWait;
  begun.waiter = id;
  return begun;
}

absl::StatusOr<Store::Begun> MemoryStore::Begin(const std::string& key,
                                                const std::string& fingerprint,
                                                absl::Time wait_until, absl::Time /*hold_until*/,
                                                Ready ready) {
  absl::Time now = clock_->Now();
  Begun begun;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.done && it->second.expires <= now) {
      EraseDoneLocked(it);
      it = entries_.end();
    }
    if (it != entries_.end()) {
      Entry& entry = it->second;
      if (entry.fingerprint != fingerprint) {
        return absl::InvalidArgumentError("the key was used for a different request");
      }
      if (entry.done) {
        lru_.splice(lru_.begin(), lru_, entry.lru);
        begun.state = State::kReplay;
        begun.answer = entry.answer;
        return begun;
      }
      begun = ParkLocked(entry, key, std::move(ready));
    } else {
      if (!MakeRoomLocked(now)) {
        return absl::ResourceExhaustedError(absl::StrCat("too many idempotent writes in progress (",
                                                         options_.max_entries, "); retry later"));
      }
      entries_[key].fingerprint = fingerprint;
      return begun;  // kClaimed
    }
  }
  ArmDeadline(begun.waiter, wait_until);
  return begun;
}

void MemoryStore::ArmDeadline(WaiterId id, absl::Time wait_until) {
  if (wait_until == absl::InfiniteFuture()) return;
  Timers::TimerId t = timers_->Schedule(wait_until, [this, id] {
    Abandon(id, absl::DeadlineExceededError(
                    "the deadline passed waiting for the first call with this idempotency-key"));
  });
  bool parked;
  {
    absl::MutexLock lock(&mu_);
    auto w = waiters_.find(id);
    parked = w != waiters_.end();
    if (parked) w->second.timer = t;
  }
  if (!parked) timers_->Cancel(t);  // Answered in between.
}

void MemoryStore::Finish(const std::string& key, const Answer& answer, bool record) {
  std::vector<Waiter> woken;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.done) return;
    for (WaiterId id : it->second.waiters) {
      auto w = waiters_.find(id);
      if (w == waiters_.end()) continue;
      woken.push_back(std::move(w->second));
      waiters_.erase(w);
    }
    if (record) {
      Entry& entry = it->second;
      entry.waiters.clear();
      entry.done = true;
      entry.answer = answer;
      entry.expires = clock_->Now() + options_.ttl;
      lru_.push_front(key);
      entry.lru = lru_.begin();
    } else {
      entries_.erase(it);
    }
  }
  for (Waiter& w : woken) {
    if (w.timer != 0) timers_->Cancel(w.timer);
    w.ready(answer);
  }
}

void MemoryStore::Abandon(WaiterId waiter, absl::Status why) {
  Waiter w;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiters_.find(waiter);
    if (it == waiters_.end()) return;
    w = std::move(it->second);
    waiters_.erase(it);
    auto e = entries_.find(w.key);
    if (e != entries_.end()) {
      auto& ids = e->second.waiters;
      ids.erase(std::remove(ids.begin(), ids.end(), waiter), ids.end());
    }
  }
  if (w.timer != 0) timers_->Cancel(w.timer);
  w.ready(std::move(why));
}

size_t MemoryStore::entries() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

size_t MemoryStore::waiters() const {
  absl::MutexLock lock(&mu_);
  return waiters_.size();
}

}  // namespace sag::idempotency
