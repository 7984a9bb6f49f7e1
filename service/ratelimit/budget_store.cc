#include "service/ratelimit/budget_store.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sag::ratelimit {
namespace {

constexpr size_t kSweepThreshold = 4096;

GcraOptions Normalized(GcraOptions o) {
  o.burst = std::max(1, o.burst);
  o.pacing_margin = std::max(0.0, o.pacing_margin);
  return o;
}

}  // namespace

absl::Duration EmissionInterval(const Limit& limit, const GcraOptions& options) {
  absl::Duration t = limit.per / static_cast<int64_t>(limit.requests);
  if (options.pacing_margin > 0) {
    t += absl::Trunc(t * options.pacing_margin, absl::Nanoseconds(1));
  }
  return t;
}

InProcessBudgetStore::InProcessBudgetStore(GcraOptions options) : options_(Normalized(options)) {}

absl::Duration InProcessBudgetStore::Interval(const Limit& limit) const {
  return EmissionInterval(limit, options_);
}

absl::StatusOr<absl::Time> InProcessBudgetStore::TryTake(absl::string_view key, Limit limit,
                                                         absl::Time now) {
  if (!limit.valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid rate limit ", FormatLimit(limit), " for ", key));
  }
  const absl::Duration t = Interval(limit);
  const absl::Duration tau = t * (options_.burst - 1);
  absl::MutexLock lock(&mu_);
  MaybeSweep(now);
  State& s = state_[key];
  const absl::Time allowed_at = std::max(s.tat - tau, s.blocked);
  if (now < allowed_at) return allowed_at;
  s.tat = std::max(s.tat, now) + t;
  return now;
}

void InProcessBudgetStore::BlockUntil(absl::string_view key, absl::Time until) {
  absl::MutexLock lock(&mu_);
  State& s = state_[key];
  s.blocked = std::max(s.blocked, until);
}

void InProcessBudgetStore::MaybeSweep(absl::Time now) {
  if (state_.size() < kSweepThreshold) return;
  for (auto it = state_.begin(); it != state_.end();) {
    // An entry whose times have both passed behaves exactly like a missing one.
    if (it->second.tat <= now && it->second.blocked <= now) {
      state_.erase(it++);
    } else {
      ++it;
    }
  }
}

}  // namespace sag::ratelimit
