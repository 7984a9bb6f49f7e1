#include "service/common/clock.h"

#include <vector>

namespace sag {
namespace {
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};
}  // namespace

Clock* RealClock() {
  static auto* clock = new SystemClock();
  return clock;
}

RealTimers::RealTimers() : thread_([this] { Loop(); }) {}

RealTimers::~RealTimers() { Stop(); }

void RealTimers::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // Destroyed outside the lock: a closure's destructor may call Schedule or Cancel.
  absl::flat_hash_map<TimerId, std::pair<absl::Time, std::function<void()>>> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped.swap(timers_);
    by_time_.clear();
  }
}

Timers::TimerId RealTimers::Schedule(absl::Time when, std::function<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      TimerId id = next_id_++;
      by_time_.emplace(when, id);
      timers_.emplace(id, std::make_pair(when, std::move(fn)));
      return id;  // The loop wakes because the mutex condition may have changed.
    }
  }
  return 0;  // Stopped: `fn` is destroyed on return, outside the lock.
}

bool RealTimers::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  auto it = timers_.find(id);
  if (it == timers_.end()) return false;
  auto range = by_time_.equal_range(it->second.first);
  for (auto i = range.first; i != range.second; ++i) {
    if (i->second == id) {
      by_time_.erase(i);
      break;
    }
  }
  timers_.erase(it);
  return true;
}

size_t RealTimers::Pending() {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

void RealTimers::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    absl::Time now = absl::Now();
    if (!by_time_.empty() && by_time_.begin()->first <= now) {
      TimerId id = by_time_.begin()->second;
      by_time_.erase(by_time_.begin());
      auto it = timers_.find(id);
      std::function<void()> fn = std::move(it->second.second);
      timers_.erase(it);
      mu_.Unlock();
      fn();
      mu_.Lock();
      continue;
    }
    absl::Time earliest = by_time_.empty() ? absl::InfiniteFuture() : by_time_.begin()->first;
    size_t count = by_time_.size();
    // Sleep until the earliest timer, a new earlier timer, or stop.
    auto changed = [this, earliest, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || by_time_.size() != count ||
             (!by_time_.empty() && by_time_.begin()->first < earliest);
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed), earliest);
  }
}

}  // namespace sag
