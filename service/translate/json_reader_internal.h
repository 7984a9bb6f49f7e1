// Reader internals shared by the DOM reader (json_reader.cc, JsonToMessage) and the text reader
// (json_text_reader.cc, JsonTextToMessage): the scalar rules and the readers of whole JSON
// values, so that both apply the same code to the same values. Not for use outside the reader.
//
// What it promises: each function reads a value into a message exactly as JsonToMessage would
// at that place, and returns OK or InvalidArgument naming the JSON path (`path` may be null: the
// document itself). Never crashes.

#ifndef SAG_SERVICE_TRANSLATE_JSON_READER_INTERNAL_H_
#define SAG_SERVICE_TRANSLATE_JSON_READER_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace sag::translate::internal {

// The JSON path of the value being read, as a chain of stack frames; rendered only on error.
struct Path;

// One JSON value as the scalar rules see it: its kind, and its payload when it is a scalar.
struct Scalar {
  enum class Kind : uint8_t {
    kNull,
    kBool,
    kInt,     // a negative integer (nlohmann's number_integer)
    kUint,    // a non-negative integer (nlohmann's number_unsigned)
    kDouble,  // a number with a fraction or an exponent (nlohmann's number_float)
    kString,
    kObject,
    kArray,
    kBinary,
    kDiscarded,
  };

  static Scalar Of(const nlohmann::json& j);
  static Scalar String(const std::string* s) { return Scalar{Kind::kString, {}, s}; }

  bool is_number() const {
    return kind == Kind::kInt || kind == Kind::kUint || kind == Kind::kDouble;
  }
  double AsDouble() const;   // a number's value as a double
  std::string Text() const;  // as an error message quotes it: a string as is, else its JSON

  Kind kind = Kind::kNull;
  union {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
  } n = {};
  const std::string* s = nullptr;  // kString
};

// Reads the scalar `v` into field `f` of `m` (appending when `f` is repeated).
absl::Status ReadScalar(const Scalar& v, const google::protobuf::FieldDescriptor* f,
                        google::protobuf::Message* m, const google::protobuf::Reflection* r,
                        const Path* path);

// Reads `j` (at nesting `depth`, 1 for the document) into `m` according to m's shape.
absl::Status ReadMessage(const nlohmann::json& j, google::protobuf::Message* m, const Path* path,
                         int depth);

// Reads the non-null value `v` of field `f` of `m` (at the depth of the value).
absl::Status ReadField(const nlohmann::json& v, const google::protobuf::FieldDescriptor* f,
                       google::protobuf::Message* m, const google::protobuf::Reflection* r,
                       const Path* path, int depth);

// Reads the object `j` into the member of `oneof` that fits it (rules 3a-3c).
absl::Status ReadAnyOf(const nlohmann::json& j, const google::protobuf::OneofDescriptor* oneof,
                       google::protobuf::Message* m, const Path* path, int depth);

// The text reader's streaming pass alone (JsonTextToMessage runs it first; tests run it to prove
// that documents are read without the DOM). `member` null: the document is the message.
enum class StreamResult {
  kRead,    // `*out` holds the document, exactly as JsonToMessage would read it
  kRedo,    // the document must be read the DOM way (an error, a duplicate key, ...)
  kSyntax,  // the text is not JSON; `*error_byte` (if not null) is where the parser stopped
};
StreamResult StreamTextToMessage(std::string_view json, const std::string_view* member,
                                 google::protobuf::Message* out, size_t* error_byte);

// The text reader's fast pass alone (RapidJSON's SAX reader driving the same frames; ReadText
// runs it before StreamTextToMessage): true when it read the whole document into `*out`, exactly
// as StreamTextToMessage would; false (`*out` in any state) when the text must go nlohmann's way:
// RapidJSON refused it, a string or key is not well-formed UTF-8, it holds a NUL byte, or the
// frames had to redo.
bool FastTextToMessage(std::string_view json, const std::string_view* member,
                       google::protobuf::Message* out);

}  // namespace sag::translate::internal

#endif  // SAG_SERVICE_TRANSLATE_JSON_READER_INTERNAL_H_
