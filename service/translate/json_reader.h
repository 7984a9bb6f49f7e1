// Reader: the Segment REST API's JSON -> message (json_proto.h states the mapping rules).
//
// What it promises
// - JsonToMessage never crashes, whatever the JSON (any type at any place, any nesting, numbers
//   of any size): it returns OK or InvalidArgument naming the JSON path of the problem.
// - JsonTextToMessage gives exactly what JsonToMessage gives on the parsed text (same message,
//   same errors), without building the document's DOM first; a text that is not JSON is an error
//   of its own kind. It never crashes either.
// - Thread-safe.

#ifndef SAG_SERVICE_TRANSLATE_JSON_READER_H_
#define SAG_SERVICE_TRANSLATE_JSON_READER_H_

#include <string_view>

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

// What a JsonTextToMessage error is about.
enum class TextError {
  kNone,         // no error
  kSyntax,       // the text is not JSON: "not JSON: syntax error at byte 17 of 40"
  kNotAnObject,  // a member was asked for, and the document is not a JSON object
  kModel,        // the JSON does not fit the message: JsonToMessage's error, JSON path first
};

// JSON text -> message, parsed straight into `*out` (RapidJSON's SAX parser, nlohmann's for any
// text RapidJSON might read otherwise; only anyOf objects, maps and free-form values are
// collected into a small DOM first). The result is the one
// JsonToMessage(nlohmann::json::parse(json), out) gives, errors included; a text that is not JSON
// (truncated, invalid UTF-8, trailing bytes, numbers that overflow a double) returns
// InvalidArgument and leaves `*out` empty. `*error`, when not null, tells the kinds apart.
absl::Status JsonTextToMessage(std::string_view json, google::protobuf::Message* out,
                               TextError* error = nullptr);

// The same for the value of the document's top-level key `member` ("data" for the Segment API's
// {"data": ...} envelope; the other keys are skipped): the document must be an object
// (kNotAnObject otherwise), and a missing or null member gives an empty message. Of duplicate
// keys, the last counts, as in nlohmann::json.
absl::Status JsonTextToMessage(std::string_view json, std::string_view member,
                               google::protobuf::Message* out, TextError* error = nullptr);

}  // namespace sag::translate

#endif  // SAG_SERVICE_TRANSLATE_JSON_READER_H_
