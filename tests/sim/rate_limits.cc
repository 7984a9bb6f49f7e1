#include "rate_limits.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "operations.h"

namespace sim {
namespace {

constexpr size_t kSweepThreshold = 100000;

}  // namespace

RateLimitConfig RateLimitConfig::Defaults() {
  RateLimitConfig config;
  const Limit per_minute_50{50, absl::Minutes(1)};
  for (const char* rpc : {"CreateAudience", "UpdateAudienceForSpace", "RemoveAudienceFromSpace",
                          "AddAudienceScheduleToAudience", "UpdateAudienceScheduleForAudience",
                          "RemoveAudienceScheduleFromAudience"}) {
    config.explicit_[rpc] = per_minute_50;
  }
  config.explicit_["CreateAudiencePreview"] = {5, absl::Minutes(1)};
  config.explicit_["GetAudience"] = {100, absl::Minutes(1)};
  config.explicit_["GetAudiencePreview"] = {300, absl::Minutes(1)};
  config.explicit_["ListAudienceConsumersFromSpaceAndAudience"] = {25, absl::Minutes(1)};
  config.explicit_["ListAudiences"] = {60, absl::Minutes(1)};
  config.default_ = {60, absl::Minutes(1)};
  return config;
}

absl::StatusOr<RateLimitConfig> RateLimitConfig::Parse(absl::string_view spec) {
  RateLimitConfig config = Defaults();
  if (absl::StripAsciiWhitespace(spec).empty()) return config;
  std::set<std::string> seen;
  for (absl::string_view raw_entry : absl::StrSplit(spec, ',')) {
    const absl::string_view entry = absl::StripAsciiWhitespace(raw_entry);
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--rate_limits: bad entry \"", entry, "\": ", why,
          " (expected OP=N/DURATION with OP an RPC name such as ListAudiences or 'default', "
          "e.g. ListAudiences=60/1m,default=10/1s)"));
    };
    if (entry.empty()) return bad("empty entry");
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) return bad("missing '='");
    const std::string op(absl::StripAsciiWhitespace(entry.substr(0, eq)));
    const absl::string_view value = absl::StripAsciiWhitespace(entry.substr(eq + 1));
    if (op.empty()) return bad("missing operation name");
    if (op != "default" && FindOperation(op) == nullptr) {
      return bad(absl::StrCat("unknown operation '", op, "'"));
    }
    if (!seen.insert(op).second) return bad("operation given more than once");
    const size_t slash = value.find('/');
    if (slash == absl::string_view::npos) return bad("missing '/' between N and DURATION");
    const absl::string_view count_text = absl::StripAsciiWhitespace(value.substr(0, slash));
    const std::string duration_text(absl::StripAsciiWhitespace(value.substr(slash + 1)));
    int64_t points = 0;
    if (count_text.empty() ||
        !std::all_of(count_text.begin(), count_text.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(count_text, &points) || points < 1) {
      return bad("N must be a positive integer");
    }
    absl::Duration window;
    if (!absl::ParseDuration(duration_text, &window) || window <= absl::ZeroDuration() ||
        window == absl::InfiniteDuration()) {
      return bad("DURATION must be a positive absl duration such as 1m, 10s or 500ms");
    }
    if (op == "default") {
      config.default_ = {points, window};
    } else {
      config.explicit_[op] = {points, window};
    }
  }
  return config;
}

Limit RateLimitConfig::For(absl::string_view rpc) const {
  auto it = explicit_.find(rpc);
  return it == explicit_.end() ? default_ : it->second;
}

std::string RateLimitConfig::ToString() const {
  std::vector<std::string> parts;
  for (const auto& [rpc, limit] : explicit_) {
    parts.push_back(absl::StrCat(rpc, "=", limit.points, "/", absl::FormatDuration(limit.window)));
  }
  parts.push_back(
      absl::StrCat("default=", default_.points, "/", absl::FormatDuration(default_.window)));
  return absl::StrJoin(parts, ",");
}

RateDecision FixedWindowLimiter::Consume(const std::string& key, const Limit& limit,
                                         absl::Time now) {
  absl::MutexLock lock(&mu_);
  return ConsumeLocked(key, limit.points, now, now + limit.window, now, /*calendar=*/false);
}

RateDecision FixedWindowLimiter::ConsumeInWindow(const std::string& key, int64_t points,
                                                 absl::Time start, absl::Time end, absl::Time now) {
  absl::MutexLock lock(&mu_);
  return ConsumeLocked(key, points, start, end, now, /*calendar=*/true);
}

void FixedWindowLimiter::Clear() {
  absl::MutexLock lock(&mu_);
  windows_.clear();
}

RateDecision FixedWindowLimiter::ConsumeLocked(const std::string& key, int64_t points,
                                               absl::Time start, absl::Time end, absl::Time now,
                                               bool calendar) {
  if (windows_.size() > kSweepThreshold) {
    for (auto it = windows_.begin(); it != windows_.end();) {
      it = it->second.end <= now ? windows_.erase(it) : std::next(it);
    }
  }
  Window& w = windows_[key];
  const bool expired = calendar ? (w.start != start || w.end != end) : (now >= w.end);
  if (w.consumed == 0 || expired) {
    w.start = start;
    w.end = end;
    w.consumed = 0;
  }
  ++w.consumed;
  RateDecision d;
  d.limit = points;
  d.consumed = w.consumed;
  d.allowed = w.consumed <= points;
  d.remaining = std::max<int64_t>(0, points - w.consumed);
  d.reset = w.end;
  return d;
}

void UtcMonth(absl::Time t, absl::Time* start, absl::Time* end) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilMonth month = absl::ToCivilMonth(t, utc);
  *start = absl::FromCivil(month, utc);
  *end = absl::FromCivil(month + 1, utc);
}

std::string FormatHttpDateCeil(absl::Time t) {
  const absl::Duration since_epoch = t - absl::UnixEpoch();
  const absl::Time rounded = absl::UnixEpoch() + absl::Ceil(since_epoch, absl::Seconds(1));
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", rounded, absl::UTCTimeZone());
}

}  // namespace sim
