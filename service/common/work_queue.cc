// See work_queue.h.
#include "service/common/work_queue.h"

#include <algorithm>
#include <utility>

namespace sag {

WorkQueue::WorkQueue(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { Loop(); });
}

WorkQueue::~WorkQueue() { Stop(); }

bool WorkQueue::Run(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (stop_) return false;
  queue_.push_back(std::move(fn));
  return true;
}

void WorkQueue::Stop() {
  absl::MutexLock join(&join_mu_);
  std::deque<std::function<void()>> dropped;  // Destroyed after the lock is released.
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    dropped.swap(queue_);
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

size_t WorkQueue::Queued() {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void WorkQueue::Loop() {
  while (true) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WorkQueue* q)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) { return q->stop_ || !q->queue_.empty(); },
          this));
      if (stop_) return;
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

}  // namespace sag
