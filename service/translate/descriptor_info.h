// Descriptor info: the facts about messages and enums that the translator's reader, writer and
// query-parameter parts share (json_proto.h states the mapping rules they implement).
//
// What it promises
// - InfoOf(descriptor) computes a message's or an enum's facts once per descriptor and caches
//   them for the life of the process: JSON keys (rule 1, inline oneofs of rule 3a), the shape
//   (ordinary object, Struct / Value / ListValue, rule 3b wrapper, rule 4 list), what rule 3c
//   needs (required fields, key count) and the enum prefixes of rule 2. Descriptors passed in
//   must live that long (those of generated messages do).
// - Thread-safe: steady-state lookups take no lock.
// - EnumToRest / RestToEnum (the enum rule, usable alone) never fail: unknown input gives "" / 0.

#ifndef SAG_SERVICE_TRANSLATE_DESCRIPTOR_INFO_H_
#define SAG_SERVICE_TRANSLATE_DESCRIPTOR_INFO_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace sag::translate {

// JSON containers (objects and arrays) nested deeper than this are rejected by JsonToMessage
// (the outermost object is depth 1; a wrapper message of rule 3b counts as one more level, as
// its member is a message of its own). MessageToJson writes null in place of any deeper value,
// and AppendQueryParams skips it.
inline constexpr int kMaxDepth = 64;

// The enum rule, usable alone. EnumToRest(AUDIENCE_TYPE_LINKED) == "LINKED"; "" for the zero
// value (and for nullptr). A value whose name lacks the prefix is returned whole.
std::string EnumToRest(const google::protobuf::EnumValueDescriptor* v);
// RestToEnum(AudienceType, "LINKED") == 2. A REST value the enum does not know (or "") gives 0.
int RestToEnum(const google::protobuf::EnumDescriptor* e, std::string_view rest);

namespace internal {

// 2^63 and 2^64 as doubles: the exclusive upper bounds of int64 and uint64.
inline constexpr double kTwo63 = 9223372036854775808.0;
inline constexpr double kTwo64 = 18446744073709551616.0;

// Field numbers of google.protobuf.Value's `kind` members, Struct.fields and ListValue.values.
inline constexpr int kValueNull = 1;
inline constexpr int kValueNumber = 2;
inline constexpr int kValueString = 3;
inline constexpr int kValueBool = 4;
inline constexpr int kValueStruct = 5;
inline constexpr int kValueList = 6;
inline constexpr int kStructFields = 1;
inline constexpr int kListValues = 1;

struct EnumInfo {
  explicit EnumInfo(const google::protobuf::EnumDescriptor* e);
  std::string RestOf(absl::string_view name) const;

  std::string prefix;                                    // "AUDIENCE_TYPE_"
  std::vector<std::string> rest_by_index;                // "" for the zero value
  absl::flat_hash_map<std::string, int> number_by_rest;  // no entry for the zero value
};

enum class Shape {
  kObject,     // an ordinary message: a JSON object of its fields
  kStruct,     // google.protobuf.Struct
  kValue,      // google.protobuf.Value
  kListValue,  // google.protobuf.ListValue
  kWrapper,    // rule 3b: the set member of its single oneof, as that member's object
  kList,       // rule 4: its repeated `items`, as a bare array
};

// What a JSON key of an object names: a field or an inline oneof (rule 3a).
struct KeyTarget {
  const google::protobuf::FieldDescriptor* field = nullptr;
  const google::protobuf::OneofDescriptor* oneof = nullptr;
};

struct MessageInfo {
  explicit MessageInfo(const google::protobuf::Descriptor* d);

  bool Knows(absl::string_view key) const { return knows_any_key || keys.contains(key); }

  Shape shape = Shape::kObject;
  // By oneof index: the JSON key of an inline oneof, "" for other oneofs. Never resized after
  // construction: `keys` and `inline_name_by_field` point into it.
  std::vector<std::string> inline_oneof_names;
  // By field index: the inline oneof's JSON key of a member, "" for other fields.
  std::vector<absl::string_view> inline_name_by_field;
  absl::flat_hash_map<absl::string_view, KeyTarget> keys;
  std::vector<const google::protobuf::FieldDescriptor*> required;  // rule 3c
  size_t key_count = 0;        // distinct JSON keys written (rule 3c)
  bool knows_any_key = false;  // Struct / Value: any key fits
  const google::protobuf::OneofDescriptor* wrapper_oneof = nullptr;  // kWrapper
  const google::protobuf::FieldDescriptor* items = nullptr;          // kList
};

const MessageInfo& InfoOf(const google::protobuf::Descriptor* d);
const EnumInfo& InfoOf(const google::protobuf::EnumDescriptor* e);

}  // namespace internal
}  // namespace sag::translate

#endif  // SAG_SERVICE_TRANSLATE_DESCRIPTOR_INFO_H_
