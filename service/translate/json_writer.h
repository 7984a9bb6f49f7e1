// Writer: message -> the Segment REST API's JSON (json_proto.h states the mapping rules).
//
// What it promises
// - MessageToJson never fails and never crashes: every message gives JSON that dumps (strings
//   that are not valid UTF-8, possible only in messages built in code, have their bad bytes
//   replaced by U+FFFD; values nested deeper than kMaxDepth are written as null).
// - It follows the presence rules: fields with presence only when set, plain scalars always
//   (enums at zero never), repeated fields and maps only when non-empty.
// - Thread-safe.

#ifndef SAG_SERVICE_TRANSLATE_JSON_WRITER_H_
#define SAG_SERVICE_TRANSLATE_JSON_WRITER_H_

#include <string>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace sag::translate {

// Message -> REST JSON, following the presence rules of json_proto.h.
nlohmann::json MessageToJson(const google::protobuf::Message& msg);

namespace internal {

// Field `f` of `m` (element `index` when `f` is repeated; -1 otherwise) as JSON; `f` is not a
// message field.
nlohmann::json ScalarToJson(const google::protobuf::Message& m,
                            const google::protobuf::Reflection* r,
                            const google::protobuf::FieldDescriptor* f, int index);

// The key field `f` of a map entry as a JSON object key (decimal / true / false text).
std::string MapKeyToString(const google::protobuf::Message& entry,
                           const google::protobuf::Reflection* r,
                           const google::protobuf::FieldDescriptor* f);

// Whether field `f` of `m` is written at all (the presence rules).
bool IsWritten(const google::protobuf::Message& m, const google::protobuf::Reflection* r,
               const google::protobuf::FieldDescriptor* f);

}  // namespace internal
}  // namespace sag::translate

#endif  // SAG_SERVICE_TRANSLATE_JSON_WRITER_H_
