#include "service/ratelimit/limits.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace sag::ratelimit {

std::string FormatLimit(const Limit& limit) {
  return absl::StrCat(limit.requests, "/", absl::FormatDuration(limit.per));
}

absl::StatusOr<LimitOverrides> ParseRateLimits(absl::string_view spec,
                                               absl::Span<const absl::string_view> known_rpcs) {
  LimitOverrides out;
  if (absl::StripAsciiWhitespace(spec).empty()) return out;
  for (absl::string_view raw : absl::StrSplit(spec, ',')) {
    const absl::string_view entry = absl::StripAsciiWhitespace(raw);
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("--rate_limits: bad entry \"", entry, "\": ", why,
                       " (expected OP=N/DURATION with OP an RPC name or 'default', e.g. "
                       "ListAudiences=60/1m,default=10/1s)"));
    };
    if (entry.empty()) return bad("empty entry");
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) return bad("missing '='");
    const absl::string_view op = absl::StripAsciiWhitespace(entry.substr(0, eq));
    const absl::string_view value = absl::StripAsciiWhitespace(entry.substr(eq + 1));
    if (op.empty()) return bad("missing operation name");
    if (op != kDefaultOp &&
        std::find(known_rpcs.begin(), known_rpcs.end(), op) == known_rpcs.end()) {
      return bad(absl::StrCat("unknown operation '", op, "'"));
    }
    if (out.find(op) != out.end()) return bad(absl::StrCat("'", op, "' given more than once"));
    const size_t slash = value.find('/');
    if (slash == absl::string_view::npos) return bad("missing '/' between N and DURATION");
    const absl::string_view n_text = absl::StripAsciiWhitespace(value.substr(0, slash));
    const absl::string_view per_text = absl::StripAsciiWhitespace(value.substr(slash + 1));
    int64_t n = 0;
    if (n_text.empty() || !std::all_of(n_text.begin(), n_text.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(n_text, &n) || n < 1 || n > std::numeric_limits<int>::max()) {
      return bad("N must be an integer >= 1");
    }
    absl::Duration per;
    if (per_text.empty() || !absl::ParseDuration(per_text, &per) || per <= absl::ZeroDuration() ||
        per == absl::InfiniteDuration()) {
      return bad("DURATION must be a positive absl duration such as 1m, 10s or 500ms");
    }
    out.emplace(std::string(op), Limit{static_cast<int>(n), per});
  }
  return out;
}

Limit LimitFor(absl::string_view rpc, Limit documented, const LimitOverrides& overrides,
               Limit api_default) {
  if (auto it = overrides.find(rpc); it != overrides.end()) return it->second;
  if (documented.requests > 0) return documented;
  if (auto it = overrides.find(kDefaultOp); it != overrides.end()) return it->second;
  return api_default;
}

}  // namespace sag::ratelimit
