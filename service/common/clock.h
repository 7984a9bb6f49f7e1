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
#include <thread>
#include <utility>

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
  std::multimap<absl::Time, TimerId> by_time_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TimerId, std::pair<absl::Time, std::function<void()>>> timers_
      ABSL_GUARDED_BY(mu_);
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sag

#endif  // SAG_SERVICE_COMMON_CLOCK_H_
