// Strict validation of request bodies and query strings, model by model, as
// tests/reference/segment-audiences-api-v65.md describes them.
//
// Promises: every problem found becomes one FieldError naming the JSON path of the offending
// field ("name", "definition.query", "config.interval", "pagination.count", ...). Unknown
// fields, wrong JSON types (null included), missing required fields, enum values not listed,
// non-integer numbers and out-of-range values are all problems. The functions never throw,
// whatever the input bytes, and never recurse deeper than the models nest.
// Does not: know about stored state (existence of audiences, audience types); the store checks
// those.

#ifndef SEGMENT_SIM_VALIDATION_H_
#define SEGMENT_SIM_VALIDATION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "operations.h"

namespace sim {

struct FieldError {
  std::string field;  // JSON path; empty when the problem is the body as a whole
  std::string message;
};
using FieldErrors = std::vector<FieldError>;

// The default filterByExternalIds of AudienceOptions / CreateAudiencePreviewOptions.
const std::vector<std::string>& DefaultExternalIds();

// The PERIODIC intervals the API accepts.
const std::vector<absl::string_view>& PeriodicIntervals();

// Parses a request body that must be a JSON object. On failure appends an error and returns
// nullopt. Bodies nested deeper than 32 levels are refused before parsing.
std::optional<nlohmann::json> ParseJsonObject(absl::string_view body, FieldErrors* errors);

// Body models.
void ValidateCreateAudienceInput(const nlohmann::json& body, FieldErrors* errors);
void ValidateUpdateAudienceForSpaceInput(const nlohmann::json& body, FieldErrors* errors);
void ValidateCreateAudiencePreviewBetaInput(const nlohmann::json& body, FieldErrors* errors);
// AddAudienceScheduleToAudienceAlphaInput and UpdateAudienceScheduleForAudienceAlphaInput
// (identical): strategy + config, config being the PeriodicConfig | SpecificDaysConfig anyOf
// that must match the strategy.
void ValidateAudienceScheduleInput(const nlohmann::json& body, FieldErrors* errors);

// Query string parameters, decoded, in the order received.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Splits a raw query string ("a=1&b=%20x") into decoded pairs ('+' is a space). A '%' that
// does not start a valid escape is kept literally. Empty pieces ("&&") are skipped.
QueryParams ParseQuery(absl::string_view raw_query);

// Appends an error for every parameter `op` does not take and every repeated parameter.
void CheckQueryNames(const QueryParams& query, const Operation& op, FieldErrors* errors);

struct SearchQuery {
  std::string type;  // NAME | KEY | DEFINITION
  std::string query;
};

struct SortQuery {
  std::string field;      // CREATED_AT | NAME | UPDATED_AT
  std::string direction;  // ASC | DESC
};

struct ListQuery {
  int64_t count = 200;
  int64_t offset = 0;  // decoded from pagination.cursor
  std::optional<SearchQuery> search;
  std::optional<SortQuery> sort;
  bool include_schedules = false;
};

// Reads the pagination (count 1..max_count, default 200), search, sort and include parameters
// present in `query` (names already checked by CheckQueryNames).
ListQuery ParseListQuery(const QueryParams& query, int64_t max_count, FieldErrors* errors);

// Reads `include` (only "schedules" is valid). Returns true when schedules are requested.
bool ParseInclude(const QueryParams& query, FieldErrors* errors);

// Opaque pagination cursors: base64 of the decimal offset ("Mw==" is offset 3).
std::string EncodeCursor(int64_t offset);
std::optional<int64_t> DecodeCursor(absl::string_view cursor);

// Number of UTF-8 code points (continuation bytes not counted).
size_t Utf8Length(absl::string_view s);

// True for an IANA time zone name this host knows (or, without tzdata, one shaped like one).
bool IsValidTimeZone(absl::string_view name);

}  // namespace sim

#endif  // SEGMENT_SIM_VALIDATION_H_
