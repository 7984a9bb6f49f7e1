// WorkQueue: a fixed set of threads running queued functions, first in first out.
//
// For work that may block on I/O and must not run on a thread that others wait for (the timer
// thread, a gRPC or HTTP callback): e.g. the limiter's round trips to a shared Redis budget, so
// that several lanes' round trips overlap instead of queueing behind each other.
//
// Promises: Run() never runs `fn` on the calling thread; functions start in the order given
// (with one thread, they also finish in that order). Stop() (and the destructor) waits for the
// functions already running and drops the queued ones unrun; Run() after Stop() returns false
// and drops `fn`. Thread-safe; Stop() must not be called from one of the queue's own functions.
#ifndef SAG_SERVICE_COMMON_WORK_QUEUE_H_
#define SAG_SERVICE_COMMON_WORK_QUEUE_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace sag {

class WorkQueue {
 public:
  explicit WorkQueue(int threads);  // At least one thread.
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  bool Run(std::function<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  size_t Queued() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // Set in the constructor; joined by the first Stop().
  absl::Mutex join_mu_;               // Serialises Stop() calls.
};

}  // namespace sag

#endif  // SAG_SERVICE_COMMON_WORK_QUEUE_H_
