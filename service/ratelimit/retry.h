// Retries that cannot multiply an outage: a retry budget and exponential back-off with jitter.
//
// RetryBudget bounds retries to a fraction of the requests seen over a sliding window (Envoy's
// retry budgets): with the defaults at most 20% of the requests of the last 10 s, but always at
// least 3 retries per 10 s, so a quiet gateway can still retry its one failed call. Every first
// attempt is counted with OnRequest(); every retry must win TryRetry() before it is sent.
//
// Backoff: "full jitter" (AWS architecture blog, "Exponential Backoff And Jitter"): the delay of
// retry k (k >= 1) is uniform in [0, min(cap, base * 2^(k-1))). Full jitter spreads the retries
// of many callers who failed together.
//
// Which calls may be retried (GETs on 5xx/connection failure/timeout; never a write that may
// have reached the upstream) and within which deadline is the caller's business.
#ifndef SAG_SERVICE_RATELIMIT_RETRY_H_
#define SAG_SERVICE_RATELIMIT_RETRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"

namespace sag::ratelimit {

struct RetryBudgetOptions {
  double ratio = 0.2;                         // Retries per request over the window.
  int64_t min_retries = 3;                    // Reserve: retries allowed per window on top.
  absl::Duration window = absl::Seconds(10);  // Sliding window (in `buckets` steps).
  int buckets = 10;
};

// Thread-safe. `clock` is not owned and must outlive the budget.
class RetryBudget {
 public:
  explicit RetryBudget(Clock* clock, RetryBudgetOptions options = {});
  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  // Counts a request (a first attempt, not a retry).
  void OnRequest() ABSL_LOCKS_EXCLUDED(mu_);

  // Returns true and counts a retry when retries in the window, this one included, stay within
  // min_retries + ratio * requests in the window (a reserve plus a share, as Finagle's
  // RetryBudget); false (nothing counted) otherwise.
  bool TryRetry() ABSL_LOCKS_EXCLUDED(mu_);

  // Requests and retries counted in the current window (for metrics and tests).
  int64_t Requests() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t Retries() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Bucket {
    int64_t index = -1;  // Which bucket-width step since the epoch it counts.
    int64_t requests = 0;
    int64_t retries = 0;
  };
  Bucket& Current() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Sum(int64_t* requests, int64_t* retries) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t IndexOf(absl::Time t) const;

  Clock* const clock_;
  const RetryBudgetOptions options_;
  const absl::Duration bucket_width_;
  mutable absl::Mutex mu_;
  std::vector<Bucket> ring_ ABSL_GUARDED_BY(mu_);
};

struct BackoffOptions {
  absl::Duration base = absl::Milliseconds(100);
  absl::Duration cap = absl::Seconds(5);
};

// Thread-safe when its random source is (the default one is).
class Backoff {
 public:
  // Returns a uniform double in [0, 1).
  using Uniform = std::function<double()>;

  // `uniform` null: a thread-safe pseudo-random source seeded from std::random_device.
  explicit Backoff(BackoffOptions options = {}, Uniform uniform = nullptr);

  // The upper bound of retry `attempt`'s delay: min(cap, base * 2^(attempt-1)); attempt < 1 is
  // treated as 1.
  absl::Duration Ceiling(int attempt) const;

  // The delay before retry `attempt` (1 = the first retry): uniform in [0, Ceiling(attempt)).
  absl::Duration Delay(int attempt) const;

 private:
  BackoffOptions options_;
  Uniform uniform_;
};

}  // namespace sag::ratelimit

#endif  // SAG_SERVICE_RATELIMIT_RETRY_H_
