#include "tests/support/fake_budget_store.h"

namespace sag::testing {

absl::StatusOr<absl::Time> FakeBudgetStore::TryTake(absl::string_view key, ratelimit::Limit limit,
                                                    absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    ++takes_[key];
    if (held_key_.has_value() && *held_key_ == key) {
      ++held_;
      auto released = [this, k = std::string(key)]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return !held_key_.has_value() || *held_key_ != k;
      };
      mu_.Await(absl::Condition(&released));
      --held_;
    }
    if (unavailable_) return absl::UnavailableError("fake budget store: unavailable");
  }
  return real_.TryTake(key, limit, now);
}

void FakeBudgetStore::SetUnavailable(bool unavailable) {
  absl::MutexLock lock(&mu_);
  unavailable_ = unavailable;
}

void FakeBudgetStore::Hold(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  held_key_ = std::string(key);
}

void FakeBudgetStore::Release() {
  absl::MutexLock lock(&mu_);
  held_key_.reset();
}

bool FakeBudgetStore::WaitForHeld(int n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return held_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

int FakeBudgetStore::Takes(absl::string_view key) const {
  absl::MutexLock lock(&mu_);
  auto it = takes_.find(key);
  return it == takes_.end() ? 0 : it->second;
}

}  // namespace sag::testing
