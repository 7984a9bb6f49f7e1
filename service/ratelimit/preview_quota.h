// The monthly quota of CreateAudiencePreview: 700 calls per space per calendar month (UTC).
//
// Unlike the per-minute limits, waiting is no answer here (the next slot may be weeks away): a
// call past the quota is refused at once with RESOURCE_EXHAUSTED and a google.rpc.QuotaFailure.
// The count must survive a restart: LocalPreviewQuota keeps it in a small JSON state file,
// rewritten atomically (temporary file, fsync, rename) on every change; a Redis implementation
// of PreviewQuota will share it across replicas.
#ifndef SAG_SERVICE_RATELIMIT_PREVIEW_QUOTA_H_
#define SAG_SERVICE_RATELIMIT_PREVIEW_QUOTA_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace sag::ratelimit {

// The UTC calendar month containing `t`.
absl::CivilMonth UtcMonthOf(absl::Time t);

// Counts calls per (space, UTC month). Implementations are thread-safe.
class PreviewQuota {
 public:
  virtual ~PreviewQuota() = default;

  // Counts one call of `space` in the month of `now`. Returns:
  //   OK                   counted; the call may go;
  //   RESOURCE_EXHAUSTED   with google.rpc.QuotaFailure (subject "spaces/<space>", description
  //                        naming the month and the limit): the month's quota is used up;
  //                        nothing counted;
  //   UNAVAILABLE          the count could not be saved; nothing counted (fail closed: a quota
  //                        that a restart could reset is no quota).
  virtual absl::Status TryTake(absl::string_view space, absl::Time now) = 0;

  // Gives back one call counted by TryTake in `month` that never reached the upstream (refused
  // before it was sent), so it does not count. Does nothing when that count is already 0.
  // Returns UNAVAILABLE when the new count could not be saved (it still holds in memory).
  virtual absl::Status Release(absl::string_view space, absl::CivilMonth month) = 0;

  // Calls counted for `space` in `month`.
  virtual int64_t Used(absl::string_view space, absl::CivilMonth month) const = 0;
};

struct PreviewQuotaOptions {
  std::string path;     // State file; empty: in memory only (a restart resets the count).
  int64_t limit = 700;  // Calls per space per month (>= 0).
};

// PreviewQuota in this process, optionally persisted to `options.path`. One process per state
// file (several replicas need the shared, Redis implementation). Keeps the current and the
// previous month (so a Release just after midnight on the 1st still finds its month); older
// months are dropped when the file is next written.
//
// File format: {"version":1,"limit":700,"months":{"2026-11":{"<spaceId>":12,...},...}}
// ("limit" is informational: the configured limit applies).
class LocalPreviewQuota final : public PreviewQuota {
 public:
  // Loads the state file when it exists. A missing file is an empty count; an unreadable or
  // malformed file is an error naming the file (refusing to start beats silently resetting).
  static absl::StatusOr<std::unique_ptr<LocalPreviewQuota>> Open(PreviewQuotaOptions options);

  absl::Status TryTake(absl::string_view space, absl::Time now) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Release(absl::string_view space, absl::CivilMonth month) override
      ABSL_LOCKS_EXCLUDED(mu_);
  int64_t Used(absl::string_view space, absl::CivilMonth month) const override
      ABSL_LOCKS_EXCLUDED(mu_);

  const PreviewQuotaOptions& options() const { return options_; }

 private:
  using Counts = std::map<absl::CivilMonth, std::map<std::string, int64_t, std::less<>>>;

  explicit LocalPreviewQuota(PreviewQuotaOptions options) : options_(std::move(options)) {}
  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);
  // Drops months before the one preceding `current`, then writes the file (if any).
  absl::Status Save(absl::CivilMonth current) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PreviewQuotaOptions options_;
  mutable absl::Mutex mu_;
  Counts counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sag::ratelimit

#endif  // SAG_SERVICE_RATELIMIT_PREVIEW_QUOTA_H_
