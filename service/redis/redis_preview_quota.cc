#include "service/redis/redis_preview_quota.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "service/common/status_util.h"

namespace sag::redis {
namespace {

// KEYS[1] count key. ARGV: limit, expire-at (unix seconds). Returns {1, n} when counted (n the new
// count), {0, n} when the quota is used up (nothing counted).
const RedisScript& TakeScript() {
  static const RedisScript* script = new RedisScript(R"lua(
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {0, n} end
n = redis.call('INCR', KEYS[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return {1, n}
)lua");
  return *script;
}

// KEYS[1] count key. Returns the count after the release (never below 0).
const RedisScript& ReleaseScript() {
  static const RedisScript* script = new RedisScript(R"lua(
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n <= 0 then return 0 end
return redis.call('DECR', KEYS[1])
)lua");
  return *script;
}

std::string MonthName(absl::CivilMonth m) { return absl::FormatCivilTime(m); }

}  // namespace

RedisPreviewQuota::RedisPreviewQuota(RedisClient* client, RedisPreviewQuotaOptions options)
    : client_(client), options_([&] {
        options.limit = std::max<int64_t>(0, options.limit);
        return options;
      }()) {}

std::string RedisPreviewQuota::Key(absl::string_view space, absl::CivilMonth month) const {
  return absl::StrCat(options_.prefix, MonthName(month), ":", space);
}

absl::Status RedisPreviewQuota::TryTake(absl::string_view space, absl::Time now) {
  const absl::CivilMonth month = ratelimit::UtcMonthOf(now);
  // Kept until the start of the month after next (a Release just after midnight still works).
  const int64_t expire_at =
      absl::ToUnixSeconds(absl::FromCivil(absl::CivilSecond(month + 2), absl::UTCTimeZone()));
  absl::StatusOr<RedisReply> r = client_->Eval(
      TakeScript(), {Key(space, month)}, {absl::StrCat(options_.limit), absl::StrCat(expire_at)});
  if (!r.ok()) {
    return absl::UnavailableError(
        absl::StrCat("preview quota could not be counted (shared store): ", r.status().message()));
  }
  if (r->type != RedisReply::Type::kArray || r->elements.size() != 2 ||
      r->elements[0].type != RedisReply::Type::kInteger) {
    return absl::UnavailableError("preview quota: unexpected reply from the shared store");
  }
  if (r->elements[0].integer == 1) return absl::OkStatus();
  const std::string description = absl::StrCat(
      "CreateAudiencePreview quota of ", options_.limit,
      " calls per space per calendar month (UTC) is used up for ", MonthName(month),
      "; it resets on ", absl::FormatCivilTime(absl::CivilDay(month + 1)), " 00:00 UTC");
  google::rpc::QuotaFailure failure;
  auto* v = failure.add_violations();
  v->set_subject(absl::StrCat("spaces/", space));
  v->set_description(description);
  return WithDetail(absl::ResourceExhaustedError(absl::StrCat("spaces/", space, ": ", description)),
                    failure);
}

absl::Status RedisPreviewQuota::Release(absl::string_view space, absl::CivilMonth month) {
  absl::StatusOr<RedisReply> r = client_->Eval(ReleaseScript(), {Key(space, month)}, {});
  if (!r.ok()) {
    return absl::UnavailableError(
        absl::StrCat("preview quota release could not be saved: ", r.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RedisPreviewQuota::UsedOrError(absl::string_view space,
                                                       absl::CivilMonth month) const {
  absl::StatusOr<RedisReply> r = client_->Command({"GET", Key(space, month)});
  if (!r.ok()) return r.status();
  if (r->type == RedisReply::Type::kNil) return 0;
  int64_t n = 0;
  if (r->type != RedisReply::Type::kString || !absl::SimpleAtoi(r->str, &n)) {
    return absl::InternalError(absl::StrCat("preview quota: bad count under ", Key(space, month)));
  }
  return n;
}

int64_t RedisPreviewQuota::Used(absl::string_view space, absl::CivilMonth month) const {
  absl::StatusOr<int64_t> n = UsedOrError(space, month);
  return n.ok() ? *n : 0;
}

}  // namespace sag::redis
