#include "tests/support/fake_clock.h"

namespace sag {

FakeClock::FakeClock(absl::Time start) : now_(start) {}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

Timers::TimerId FakeClock::Schedule(absl::Time when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  TimerId id = next_id_++;
  by_time_.emplace(when, id);
  timers_.emplace(id, std::make_pair(when, std::move(fn)));
  return id;
}

bool FakeClock::Cancel(TimerId id) {
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

void FakeClock::Advance(absl::Duration d) {
  absl::Time target;
  {
    absl::MutexLock lock(&mu_);
    target = now_ + d;
  }
  while (true) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      if (by_time_.empty() || by_time_.begin()->first > target) {
        now_ = target;
        return;
      }
      auto first = by_time_.begin();
      if (first->first > now_) now_ = first->first;
      TimerId id = first->second;
      by_time_.erase(first);
      auto it = timers_.find(id);
      fn = std::move(it->second.second);
      timers_.erase(it);
    }
    fn();
  }
}

size_t FakeClock::Pending() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

}  // namespace sag
