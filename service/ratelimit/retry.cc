#include "service/ratelimit/retry.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace sag::ratelimit {

RetryBudget::RetryBudget(Clock* clock, RetryBudgetOptions options)
    : clock_(clock),
      options_(options),
      bucket_width_(
          std::max(absl::Nanoseconds(1), options.window / std::max<int64_t>(1, options.buckets))),
      ring_(static_cast<size_t>(std::max(1, options.buckets))) {}

int64_t RetryBudget::IndexOf(absl::Time t) const {
  absl::Duration rem;  // absl requires a remainder out-parameter.
  return absl::IDivDuration(t - absl::UnixEpoch(), bucket_width_, &rem);
}

RetryBudget::Bucket& RetryBudget::Current() {
  const int64_t index = IndexOf(clock_->Now());
  const int64_t n = static_cast<int64_t>(ring_.size());
  Bucket& b = ring_[static_cast<size_t>(((index % n) + n) % n)];
  if (b.index != index) b = Bucket{index, 0, 0};
  return b;
}

void RetryBudget::Sum(int64_t* requests, int64_t* retries) const {
  const int64_t now = IndexOf(clock_->Now());
  const int64_t n = static_cast<int64_t>(ring_.size());
  *requests = 0;
  *retries = 0;
  for (const Bucket& b : ring_) {
    if (b.index > now - n && b.index <= now) {
      *requests += b.requests;
      *retries += b.retries;
    }
  }
}

void RetryBudget::OnRequest() {
  absl::MutexLock lock(&mu_);
  ++Current().requests;
}

bool RetryBudget::TryRetry() {
  absl::MutexLock lock(&mu_);
  Bucket& current = Current();
  int64_t requests = 0;
  int64_t retries = 0;
  Sum(&requests, &retries);
  const double allowed = static_cast<double>(options_.min_retries) + options_.ratio * requests;
  if (static_cast<double>(retries + 1) > allowed) return false;
  ++current.retries;
  return true;
}

int64_t RetryBudget::Requests() const {
  absl::MutexLock lock(&mu_);
  int64_t requests = 0;
  int64_t retries = 0;
  Sum(&requests, &retries);
  return requests;
}

int64_t RetryBudget::Retries() const {
  absl::MutexLock lock(&mu_);
  int64_t requests = 0;
  int64_t retries = 0;
  Sum(&requests, &retries);
  return retries;
}

namespace {

Backoff::Uniform DefaultUniform() {
  struct Source {
    absl::Mutex mu;
    std::mt19937_64 engine ABSL_GUARDED_BY(mu){std::random_device{}()};
  };
  auto source = std::make_shared<Source>();
  return [source] {
    absl::MutexLock lock(&source->mu);
    return std::uniform_real_distribution<double>(0.0, 1.0)(source->engine);
  };
}

}  // namespace

Backoff::Backoff(BackoffOptions options, Uniform uniform)
    : options_(options), uniform_(uniform ? std::move(uniform) : DefaultUniform()) {}

absl::Duration Backoff::Ceiling(int attempt) const {
  attempt = std::max(1, attempt);
  absl::Duration ceiling = options_.base;
  for (int i = 1; i < attempt && ceiling < options_.cap; ++i) ceiling *= 2;
  return std::min(ceiling, options_.cap);
}

absl::Duration Backoff::Delay(int attempt) const {
  double u = uniform_();
  if (!(u >= 0.0)) u = 0.0;  // Also catches NaN.
  if (u >= 1.0) u = std::nextafter(1.0, 0.0);
  const absl::Duration ceiling = Ceiling(attempt);
  absl::Duration d = absl::Floor(ceiling * u, absl::Nanoseconds(1));
  if (d >= ceiling) d = ceiling - absl::Nanoseconds(1);  // Rounding must not reach the bound.
  return std::max(d, absl::ZeroDuration());
}

}  // namespace sag::ratelimit
