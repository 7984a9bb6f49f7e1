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

Timers::TimerId TimerQueue::Add(absl::Time when, std::function<void()> fn) {
  const Timers::TimerId id = next_id_++;
  by_time_.emplace(when, id);
  timers_.emplace(id, Entry(when, std::move(fn)));
  return id;
}

bool TimerQueue::Remove(Timers::TimerId id) {
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

std::optional<TimerQueue::Entry> TimerQueue::PopDue(absl::Time until) {
  if (by_time_.empty() || by_time_.begin()->first > until) return std::nullopt;
  const Timers::TimerId id = by_time_.begin()->second;
  by_time_.erase(by_time_.begin());
  auto it = timers_.find(id);
  Entry entry = std::move(it->second);
  timers_.erase(it);
  return entry;
}

absl::Time TimerQueue::Earliest() const {
  return by_time_.empty() ? absl::InfiniteFuture() : by_time_.begin()->first;
}

std::vector<std::function<void()>> TimerQueue::TakeAll() {
  std::vector<std::function<void()>> out;
  out.reserve(timers_.size());
  for (auto& [id, entry] : timers_) out.push_back(std::move(entry.second));
  timers_.clear();
  by_time_.clear();
  return out;
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
  std::vector<std::function<void()>> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped = queue_.TakeAll();
  }
}

Timers::TimerId RealTimers::Schedule(absl::Time when, std::function<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    // The loop wakes because the mutex condition may have changed.
    if (!stop_) return queue_.Add(when, std::move(fn));
  }
  return 0;  // Stopped: `fn` is destroyed on return, outside the lock.
}

bool RealTimers::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  return queue_.Remove(id);
}

size_t RealTimers::Pending() {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void RealTimers::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    if (std::optional<TimerQueue::Entry> due = queue_.PopDue(absl::Now())) {
      mu_.Unlock();
      due->second();
      due.reset();  // The closure, destroyed unlocked too.
      mu_.Lock();
      continue;
    }
    const absl::Time earliest = queue_.Earliest();
    const size_t count = queue_.size();
    // Sleep until the earliest timer, a new earlier timer, or stop.
    auto changed = [this, earliest, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || queue_.size() != count || queue_.Earliest() < earliest;
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed), earliest);
  }
}

}  // namespace sag
