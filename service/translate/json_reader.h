// Reader: the Segment REST API's JSON -> message (json_proto.h states the mapping rules).
//
// What it promises
// - JsonToMessage never crashes, whatever the JSON (any type at any place, any nesting, numbers
//   of any size): it returns OK or InvalidArgument naming the JSON path of the problem.
// - Thread-safe.

#ifndef SAG_SERVICE_TRANSLATE_JSON_READER_H_
#define SAG_SERVICE_TRANSLATE_JSON_READER_H_

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace sag::translate {

// REST JSON (the shape the Segment API sends / accepts) -> message. `*out` is cleared first.
// Unknown JSON keys are ignored (upstream may add fields); JSON null == absent (a top-level null
// gives an empty message). A type mismatch (e.g. a string where a bool is expected, a fraction
// or an out-of-range number for an integer field, invalid UTF-8 in a string) returns
// InvalidArgument whose message starts with the JSON path, e.g.
// "audiences[3].enabled: expected a boolean, got a string" ("(root)" for the document itself).
// Nesting deeper than kMaxDepth returns InvalidArgument. On error `*out` holds whatever was read
// before the error. Never crashes on any input.
absl::Status JsonToMessage(const nlohmann::json& json, google::protobuf::Message* out);

}  // namespace sag::translate

#endif  // SAG_SERVICE_TRANSLATE_JSON_READER_H_
