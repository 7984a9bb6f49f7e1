// The operation table of segment-sim: one row per REST operation of the Segment Public API's
// Audiences tag (API v65), as listed in tests/reference/segment-audiences-api-v65.md.
//
// Promises:
//  - AllOperations() holds exactly the 14 operations, immutable, safe to read from any thread.
//  - MatchRoute() maps a method and a raw (still percent-encoded) request path to one operation
//    and its decoded path parameters. The path is split on '/' BEFORE percent-decoding, so "%2F"
//    inside an id stays part of that id and never changes the route. Empty segments ("//", a
//    trailing '/'), "." and ".." segments, bad percent escapes, unknown paths and a method that
//    the path's template does not take all yield no route. When several templates match, the one
//    whose literal segments come first wins ("/audiences/previews/{id}" beats
//    "/audiences/{id}/schedules").
// Does not: look at the query string, headers or body.

#ifndef SEGMENT_SIM_OPERATIONS_H_
#define SEGMENT_SIM_OPERATIONS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sim {

enum class OpId {
  kAddAudienceScheduleToAudience,
  kCreateAudience,
  kCreateAudiencePreview,
  kForceExecuteAudienceRun,
  kGetAudience,
  kGetAudiencePreview,
  kGetAudienceScheduleFromSpaceAndAudience,
  kListAudienceConsumersFromSpaceAndAudience,
  kListAudienceSchedulesFromSpaceAndAudience,
  kListAudiences,
  kRemoveAudienceFromSpace,
  kRemoveAudienceScheduleFromAudience,
  kUpdateAudienceForSpace,
  kUpdateAudienceScheduleForAudience,
};

struct Operation {
  OpId id;
  absl::string_view rpc;            // PascalCase RPC name, e.g. "ListAudiences".
  absl::string_view method;         // "GET", "POST", "PATCH" or "DELETE".
  absl::string_view path_template;  // e.g. "/spaces/{spaceId}/audiences/{id}".
  // Query parameters the operation takes, object parameters written with dots
  // ("pagination.count"). Anything else in the query string is a validation error.
  std::vector<absl::string_view> query_params;
  bool has_body;  // true when the operation takes a JSON request body.
  // Media types the operation answers with, server-preferred first.
  std::vector<absl::string_view> accept;
  // Media types accepted for the request body; empty when has_body is false.
  std::vector<absl::string_view> content_types;
  // The path template split on '/', without the leading empty segment.
  std::vector<absl::string_view> segments;
};

// The 14 operations, in the reference's (alphabetical) order.
const std::vector<Operation>& AllOperations();

// The operation named `rpc` (PascalCase), or nullptr.
const Operation* FindOperation(absl::string_view rpc);

struct Route {
  const Operation* op = nullptr;
  // Decoded path parameters by their template name ("spaceId", "id", "audienceId",
  // "scheduleId").
  std::map<std::string, std::string> params;
};

// See the file comment. `raw_path` is the request target up to (excluding) '?'.
std::optional<Route> MatchRoute(absl::string_view method, absl::string_view raw_path);

// Decodes %XX escapes (and '+' as a space when plus_is_space). With strict, a '%' not followed
// by two hex digits makes the result nullopt; otherwise such a '%' is kept as is.
std::optional<std::string> PercentDecode(absl::string_view in, bool plus_is_space, bool strict);

}  // namespace sim

#endif  // SEGMENT_SIM_OPERATIONS_H_
