// Query parameters: a message flattened into the Segment REST API's query parameters
// (json_proto.h, "Query parameters", states the flattening rules).
//
// What it promises
// - AppendQueryParams never fails and never crashes; it only appends to `*out` (nothing when
//   `out` is null), skipping unset fields and values nested deeper than kMaxDepth.
// - Values are NOT percent-encoded (the HTTP layer does it).
// - Thread-safe.

#ifndef SAG_SERVICE_TRANSLATE_QUERY_PARAMS_H_
#define SAG_SERVICE_TRANSLATE_QUERY_PARAMS_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "google/protobuf/message.h"

namespace sag::translate {

// Appends `msg` flattened into REST query parameters: with prefix "pagination", a
// PaginationInput with cursor "x" and count 3 gives {"pagination.cursor", "x"},
// {"pagination.count", "3"}.
void AppendQueryParams(const google::protobuf::Message& msg, std::string_view prefix,
                       std::vector<std::pair<std::string, std::string>>* out);

}  // namespace sag::translate

#endif  // SAG_SERVICE_TRANSLATE_QUERY_PARAMS_H_
