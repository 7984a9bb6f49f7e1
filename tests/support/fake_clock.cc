#include "tests/support/fake_clock.h"

#include <optional>
#include <utility>

namespace sag {

FakeClock::FakeClock(absl::Time start) : now_(start) {}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

Timers::TimerId FakeClock::Schedule(absl::Time when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  return queue_.Add(when, std::move(fn));
}

bool FakeClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  return queue_.Remove(id);
}

void FakeClock::Advance(absl::Duration d) {
  absl::Time target;
  {
    absl::MutexLock lock(&mu_);
    target = now_ + d;
  }
  while (true) {
    std::optional<TimerQueue::Entry> due;
    {
      absl::MutexLock lock(&mu_);
      due = queue_.PopDue(target);
      if (!due.has_value()) {
        now_ = target;
        return;
      }
      if (due->first > now_) now_ = due->first;
    }
    due->second();
  }
}

size_t FakeClock::Pending() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

}  // namespace sag
