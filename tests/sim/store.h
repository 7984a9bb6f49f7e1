// The in-memory state of segment-sim and the domain rules of the Audiences operations.
//
// Promises:
//  - One Store holds every space; a space exists as soon as it is named (no 404 for spaces).
//    Audiences, schedules and previews live in their space; an id from another space is 404.
//  - Every method is thread-safe (one mutex) and returns a complete Result: the HTTP status and
//    the JSON body, either the operation's 200 body ({"data": ...}) shaped exactly as the
//    reference's response model, or a RequestErrorEnvelope. Optional fields are omitted, never
//    null; numbers are integers.
//  - Inputs are expected to have passed validation.h already (the Store does not re-check JSON
//    types); the Store checks what needs state: existence (404), schedules and runs only for
//    LINKED audiences (422, field "audienceType").
// Does not: authenticate, rate-limit, negotiate media types or sleep; simulator.h does that.

#ifndef SEGMENT_SIM_STORE_H_
#define SEGMENT_SIM_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "validation.h"

namespace sim {

// The error `type` strings of the RequestErrors segment-sim produces.
inline constexpr absl::string_view kErrorValidation = "validation";
inline constexpr absl::string_view kErrorNotFound = "not-found";
inline constexpr absl::string_view kErrorUnauthorized = "unauthorized";
inline constexpr absl::string_view kErrorRateLimited = "RequestError";
inline constexpr absl::string_view kErrorNotAcceptable = "not-acceptable";
inline constexpr absl::string_view kErrorUnsupportedMediaType = "unsupported-media-type";
inline constexpr absl::string_view kErrorPayloadTooLarge = "payload-too-large";
inline constexpr absl::string_view kErrorBadRequest = "bad-request";
inline constexpr absl::string_view kErrorServer = "server";

struct Result {
  int status = 200;
  nlohmann::ordered_json body;
};

// {"errors":[{"type":type,"message":message,"field":field (when non-empty),"status":status}]}.
Result ErrorResult(int status, absl::string_view type, absl::string_view message,
                   absl::string_view field = "");

// A 422 with one "validation" error per FieldError.
Result ValidationResult(const FieldErrors& errors);

// `t` as RFC 3339 UTC with milliseconds: "2026-11-28T12:00:00.000Z".
std::string FormatRfc3339(absl::Time t);

class Store {
 public:
  // `preview_duration`: how long a preview stays RUNNING after its creation.
  explicit Store(absl::Duration preview_duration);
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Bodies are validated CreateAudienceInput / UpdateAudienceForSpaceInput objects; `user` is
  // the id recorded as createdBy/updatedBy.
  Result CreateAudience(const std::string& space, const nlohmann::json& input,
                        const std::string& user, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  Result GetAudience(const std::string& space, const std::string& id, bool include_schedules,
                     absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  Result ListAudiences(const std::string& space, const ListQuery& query, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  Result UpdateAudience(const std::string& space, const std::string& id,
                        const nlohmann::json& input, const std::string& user, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  Result RemoveAudience(const std::string& space, const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Consumers: the other audiences of the space whose definition.query contains the key of
  // audience `id`.
  Result ListConsumers(const std::string& space, const std::string& id, const ListQuery& query)
      ABSL_LOCKS_EXCLUDED(mu_);

  // `input` is a validated schedule input (strategy + config).
  Result AddSchedule(const std::string& space, const std::string& id, const nlohmann::json& input,
                     absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  Result GetSchedule(const std::string& space, const std::string& id,
                     const std::string& schedule_id, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  Result ListSchedules(const std::string& space, const std::string& id, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  Result UpdateSchedule(const std::string& space, const std::string& id,
                        const std::string& schedule_id, const nlohmann::json& input, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  Result RemoveSchedule(const std::string& space, const std::string& id,
                        const std::string& schedule_id) ABSL_LOCKS_EXCLUDED(mu_);
  Result ForceRun(const std::string& space, const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);

  // `input` is a validated CreateAudiencePreviewBetaInput.
  Result CreatePreview(const std::string& space, const nlohmann::json& input, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  // RUNNING until preview_duration has passed, then COMPLETED (results, size) or, when the
  // definition's query contains the word "fail", FAILED (failureReason).
  Result GetPreview(const std::string& space, const std::string& id, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Forgets every space.
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Schedule {
    std::string id;
    std::string strategy;
    nlohmann::json config;
  };
  struct Audience {
    int64_t seq = 0;
    std::string id;
    std::string space_id;
    std::string name;
    std::optional<std::string> description;
    std::string key;
    bool enabled = true;
    std::string query;
    std::optional<std::string> target_entity;
    std::string audience_type;
    std::optional<nlohmann::json> options;  // AudienceOptions as given
    std::string created_by;
    std::string updated_by;
    absl::Time created_at;
    absl::Time updated_at;
    int64_t size_count = 0;
    int64_t unique_count = 0;
    std::vector<Schedule> schedules;
  };
  struct Preview {
    std::string id;
    std::string audience_type;
    std::string query;
    std::optional<std::string> target_entity;
    std::optional<nlohmann::json> options;  // CreateAudiencePreviewOptions as given
    absl::Time created_at;
  };
  struct Space {
    std::map<std::string, Audience> audiences;  // by id
    std::map<std::string, Preview> previews;    // by id
  };

  // The audience or a 404 Result in *error.
  Audience* FindAudience(const std::string& space, const std::string& id, Result* error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FindAudience, then 422 unless LINKED (`what` names the feature in the message).
  Audience* FindLinkedAudience(const std::string& space, const std::string& id,
                               absl::string_view what, Result* error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<const Audience*> SortedAudiences(const Space& space) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string UniqueKey(const Space& space, const std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string RandomId(absl::string_view prefix) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  static nlohmann::ordered_json DefinitionJson(const Audience& a);
  static nlohmann::ordered_json SummaryJson(const Audience& a);
  static nlohmann::ordered_json WithLookbackJson(const Audience& a, bool include_schedules,
                                                 absl::Time now);
  static nlohmann::ordered_json ScheduleJson(const Schedule& s, absl::Time now);
  nlohmann::ordered_json PreviewJson(const Preview& p, absl::Time now) const;

  const absl::Duration preview_duration_;
  absl::Mutex mu_;
  std::map<std::string, Space> spaces_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  absl::BitGen gen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sim

#endif  // SEGMENT_SIM_STORE_H_
