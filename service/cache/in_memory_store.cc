#include "service/cache/in_memory_store.h"

#include <iterator>
#include <utility>

namespace sag::cache {

InMemoryStore::InMemoryStore(Options options) : options_(std::move(options)) {}

size_t InMemoryStore::Charge(absl::string_view key, const Entry& entry) {
  size_t charge = kEntryOverhead + key.size() + entry.value.size();
  for (const std::string& tag : entry.tags) charge += tag.size() + kTagOverhead;
  return charge;
}

std::shared_ptr<const Entry> InMemoryStore::Get(absl::string_view key) {
  const absl::Time now = options_.clock->Now();
  absl::MutexLock lock(&mu_);
  auto found = index_.find(key);
  if (found == index_.end()) return nullptr;
  Lru::iterator it = found->second;
  if (it->entry->expires <= now) {
    RemoveLocked(it);
    ++counters_.expired;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it);  // Iterators stay valid.
  return it->entry;
}

bool InMemoryStore::Put(absl::string_view key, Entry entry) {
  size_t evicted = 0;
  const bool stored = PutLocked(key, std::move(entry), &evicted);
  if (evicted > 0 && options_.on_evict) options_.on_evict(evicted);
  return stored;
}

bool InMemoryStore::PutLocked(absl::string_view key, Entry entry, size_t* evicted) {
  const size_t charge = Charge(key, entry);
  absl::MutexLock lock(&mu_);
  auto found = index_.find(key);
  if (found != index_.end()) RemoveLocked(found->second);
  if (charge > options_.max_entry_bytes || charge > options_.max_bytes) {
    ++counters_.rejected;
    return false;
  }
  while (!lru_.empty() && bytes_ + charge > options_.max_bytes) {
    RemoveLocked(std::prev(lru_.end()));
    ++counters_.evictions;
    ++*evicted;
  }
  lru_.push_front(Node{std::string(key), std::make_shared<const Entry>(std::move(entry)), charge});
  Node& node = lru_.front();
  absl::string_view stored_key = node.key;
  index_.emplace(stored_key, lru_.begin());
  for (const std::string& tag : node.entry->tags) by_tag_[tag].insert(stored_key);
  bytes_ += charge;
  return true;
}

void InMemoryStore::Erase(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  auto found = index_.find(key);
  if (found != index_.end()) RemoveLocked(found->second);
}

size_t InMemoryStore::InvalidateTag(absl::string_view tag) {
  absl::MutexLock lock(&mu_);
  auto found = by_tag_.find(tag);
  if (found == by_tag_.end()) return 0;
  // RemoveLocked() edits by_tag_ (this very set included): take the keys out first.
  absl::flat_hash_set<absl::string_view> keys = std::move(found->second);
  by_tag_.erase(found);
  size_t dropped = 0;
  for (absl::string_view key : keys) {
    auto it = index_.find(key);
    if (it == index_.end()) continue;
    RemoveLocked(it->second);  // `key` dangles from here on; not used again.
    ++dropped;
  }
  counters_.invalidated += dropped;
  return dropped;
}

StoreStats InMemoryStore::Stats() const {
  absl::MutexLock lock(&mu_);
  StoreStats stats = counters_;
  stats.entries = index_.size();
  stats.bytes = bytes_;
  return stats;
}

void InMemoryStore::RemoveLocked(Lru::iterator it) {
  absl::string_view key = it->key;
  for (const std::string& tag : it->entry->tags) {
    auto tagged = by_tag_.find(tag);
    if (tagged == by_tag_.end()) continue;
    tagged->second.erase(key);
    if (tagged->second.empty()) by_tag_.erase(tagged);
  }
  index_.erase(key);
  bytes_ -= it->charge;
  lru_.erase(it);
}

}  // namespace sag::cache
