// The monthly CreateAudiencePreview quota (see service/ratelimit/preview_quota.h) kept in Redis, so
// all replicas count against one number and a restart of any of them (or all) keeps the count.
//
// One integer key per (space, UTC month): `sag:pq:<YYYY-MM>:<space>`. TryTake runs one Lua script
// (GET; refuse when >= limit; else INCR and EXPIREAT the start of the month after next, so the
// previous month stays readable for a late Release and old months vanish by themselves): the count
// never exceeds the limit, whatever the number of replicas racing. Release runs a script that
// DECRs only when the count is > 0 (floor 0).
//
// The month is the UTC month of the caller's `now` (a replica whose clock is off by a second may
// count a call made at midnight into the neighbouring month; the quota is monthly, so this does
// not matter).
//
// Redis down: TryTake fails closed with UNAVAILABLE (nothing counted) as the PreviewQuota contract
// demands; Release returns UNAVAILABLE (the call stays counted: conservative); Used returns 0 (use
// UsedOrError to tell). Thread-safe; does not own the client, which must outlive it.
#ifndef SAG_SERVICE_REDIS_REDIS_PREVIEW_QUOTA_H_
#define SAG_SERVICE_REDIS_REDIS_PREVIEW_QUOTA_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "service/ratelimit/preview_quota.h"
#include "service/redis/redis_client.h"

namespace sag::redis {

struct RedisPreviewQuotaOptions {
  int64_t limit = 700;  // Calls per space per month (>= 0).
  std::string prefix = "sag:pq:";
};

class RedisPreviewQuota final : public ratelimit::PreviewQuota {
 public:
  RedisPreviewQuota(RedisClient* client, RedisPreviewQuotaOptions options = {});

  absl::Status TryTake(absl::string_view space, absl::Time now) override;
  absl::Status Release(absl::string_view space, absl::CivilMonth month) override;
  int64_t Used(absl::string_view space, absl::CivilMonth month) const override;
  absl::StatusOr<int64_t> UsedOrError(absl::string_view space, absl::CivilMonth month) const;

  // The Redis key of (space, month).
  std::string Key(absl::string_view space, absl::CivilMonth month) const;
  const RedisPreviewQuotaOptions& options() const { return options_; }

 private:
  RedisClient* const client_;
  const RedisPreviewQuotaOptions options_;
};

}  // namespace sag::redis

#endif  // SAG_SERVICE_REDIS_REDIS_PREVIEW_QUOTA_H_
