// Time, injected. The limiter, the cache and retry back-off read a Clock and wait on Timers, so
// tests move time by hand (FakeClock, in tests/support/fake_clock.h) instead of sleeping.
//
// Timers run callbacks at (or after) their time on a thread of their own; a callback must not
// block. RealTimers uses one thread that sleeps until the earliest timer: no polling.
#ifndef SAG_SERVICE_COMMON_CLOCK_H_
#define SAG_SERVICE_COMMON_CLOCK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sag {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// absl::Now(). Shared, never destroyed.
Clock* RealClock();

class Timers {
 public:
  using TimerId = uint64_t;
  virtual ~Timers() = default;
  // Runs `fn` once at or after `when` (at once, on the timer thread, when `when` has passed).
  // Never runs `fn` on the calling thread. Thread-safe.
  virtual TimerId Schedule(absl::Time when, std::function<void()> fn) = 0;
  // Prevents a pending timer from running; returns false when it already ran or is running.
  virtual bool Cancel(TimerId id) = 0;
};

// The pending timers of a Timers implementation, earliest first (ties: the first scheduled).
// Not thread-safe: its owner locks. RealTimers and the tests' FakeClock share it.
class TimerQueue {
 public:
  using Entry = std::pair<absl::Time, std::function<void()>>;
  Timers::TimerId Add(absl::Time when, std::function<void()> fn);  // Ids from 1, never reused.
  bool Remove(Timers::TimerId id);                                 // False when it is not pending.
  // Removes and returns the earliest timer when it is due at `until` or before.
  std::optional<Entry> PopDue(absl::Time until);
  absl::Time Earliest() const;  // InfiniteFuture when none is pending.
  size_t size() const { return timers_.size(); }
  // Removes every pending timer and returns their functions (for the owner to destroy unlocked:
  // a closure's destructor may call back into the Timers).
  std::vector<std::function<void()>> TakeAll();

 private:
  std::multimap<absl::Time, Timers::TimerId> by_time_;
  absl::flat_hash_map<Timers::TimerId, Entry> timers_;
  Timers::TimerId next_id_ = 1;
};

// One thread, sleeping until the earliest timer. Destruction drops pending timers.
class RealTimers final : public Timers {
 public:
  RealTimers();
  ~RealTimers() override;  // Stop()s.
  // Schedule() after Stop() returns 0 and the function never runs.
  TimerId Schedule(absl::Time when, std::function<void()> fn) override;
  bool Cancel(TimerId id) override;
  size_t Pending();
  // Ends the timer thread (waiting for a callback that is running) and drops the pending ones
  // without running them. For an owner that must stop callbacks before destroying what they use.
  // Not from a timer callback.
  void Stop();

 private:
  void Loop();
  absl::Mutex mu_;
  TimerQueue queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sag

#endif  // SAG_SERVICE_COMMON_CLOCK_H_
