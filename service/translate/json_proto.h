// JSON <-> protobuf translation between the Segment Public API's REST JSON and the gateway's
// protobuf messages (segment.audiences.v1), driven only by descriptors and reflection: there is
// no per-message code, so a message added to the .proto is translated without changes here.
//
// This header is the umbrella of the translator's parts, each with its own header:
//   json_reader.h      reader: JSON -> message (JsonToMessage)
//   json_writer.h      writer: message -> JSON (MessageToJson)
//   query_params.h     query parameters: message -> query (AppendQueryParams)
//   descriptor_info.h  descriptor info: the per-descriptor cache the parts share (JSON names,
//                      oneof shapes, enum prefixes), the enum rule (EnumToRest / RestToEnum)
//                      and the depth limit kMaxDepth
// UTF-8 checks come from service/common/utf8.h.
//
// What it promises
// - JsonToMessage never crashes, whatever the JSON (any type at any place, any nesting, numbers
//   of any size): it returns OK or InvalidArgument naming the JSON path of the problem.
// - MessageToJson(JsonToMessage(x)) == x for every document the Segment API sends or accepts
//   (tests/unit/translate_test.cc proves it for every model of the v65 reference).
// - All functions are thread-safe. Per-descriptor facts (JSON names, oneof shapes, enum
//   prefixes) are computed once per descriptor and cached for the life of the process, so the
//   descriptors passed in must live that long (those of generated messages do).
//
// What it does not do
// - No HTTP concerns: query values are not percent-encoded, JSON is not parsed or printed.
// - It is not the proto3 canonical JSON mapping (google::protobuf::util::JsonStringToMessage):
//   enums drop their prefix, int64 are JSON numbers, and anyOf / list shapes follow the rules
//   below.
//
// Mapping rules
// 1. A field's JSON key is its json_name() (lowerCamelCase of the snake_case proto name).
// 2. Enums: the REST value is the value's name without the prefix "<ENUM NAME IN UPPER_SNAKE>_"
//    (AUDIENCE_TYPE_LINKED <-> "LINKED"). The zero value (<ENUM>_UNSPECIFIED) is written as
//    nothing (the key is omitted), as is a number the enum does not define; a REST string the
//    enum does not know reads as the zero value and is not an error.
// 3. anyOf <-> oneof. A "real" (not proto3-optional) oneof whose members are all messages is an
//    anyOf:
//    a. Inline: in its message the oneof is one JSON key, the lowerCamel name of the oneof
//       (`oneof config { PeriodicConfig periodic; ... }` <-> "config": {...}), holding the set
//       member's object. A JSON key naming a member itself ("periodic") is also accepted.
//    b. Wrapper: a message all of whose fields are the message members of one single oneof
//       (AudiencePreviewResult) is written as the set member's object itself, with no wrapper
//       key; an unset wrapper is written as {}, and {} reads back as an unset wrapper.
//    c. Reading either form picks the member whose message explains the JSON object best.
//       The keys a message knows are its fields' JSON names plus the names of its inline
//       oneofs (Struct / Value know every key); its required fields are those without presence
//       that are not repeated (proto3 plain scalars and enums: `string id`, `bool enabled`; not
//       `optional` fields, messages, repeated fields or maps). The object's keys that count are
//       those with a non-null value that at least one member knows (a key no member knows is
//       an upstream addition and says nothing about the shape). A member is a candidate when
//       its message knows every counted key and all its required fields are present (non-null).
//       Among candidates the member whose message knows the fewest keys (the tightest fit)
//       wins, ties going to declaration order. With no candidate, the member whose message
//       knows the most counted keys wins (ties: declaration order) and is read leniently
//       (unknown keys ignored, as always). No counted key (an inline oneof's {}, or only
//       unknown or null keys) picks the first member.
//       Examples (AudiencePreviewResult): {"id":"x"} -> account; {"id":"x","entities":{...}} ->
//       profile; {"id","idProperty","relationshipSlug","profilesTruncated",...} -> entity.
// 4. List wrapper: a message whose only field is a repeated field named `items`
//    (EntityDetailsList) is written and read as a bare JSON array.
// 5. Maps: map<K, scalar> <-> JSON object of scalars, map<K, message> <-> JSON object of the
//    messages' JSON (so map<string, EntityDetailsList> <-> object of arrays). Non-string keys
//    are written as their decimal / true / false text.
// 6. google.protobuf.Struct / Value / ListValue hold free-form JSON and map to it directly.
//    Numbers are doubles inside Value; a double with an integral value that an int64 or uint64
//    holds is written as a JSON integer (3 -> 3, not 3.0); non-finite doubles are written as
//    null. Inside a Struct / ListValue a JSON null is a null Value, not an absent one.
//    Beware: each level of a JSON object is three levels of protobuf messages (Struct, map
//    entry, Value), and protobuf parsers refuse messages nested deeper than 100 by default, so
//    free-form JSON nested more than ~30 levels translates but may not cross the wire.
// 7. Integers (int32, int64, uint32, uint64 and their sint/fixed variants) read JSON numbers
//    holding an integer in range (3.0 is accepted; 3.5 or 2^31 for an int32 are errors); 64-bit
//    ones also read a JSON string holding a decimal integer. All are written as JSON numbers.
//    float / double read numbers (or "NaN", "Infinity", "-Infinity") and are written as numbers
//    (integral values as integers; non-finite values as those strings).
// 8. string <-> JSON string (must be valid UTF-8), bool <-> JSON boolean (no coercion from
//    strings or numbers), bytes <-> base64 string (standard alphabet written; standard and
//    URL-safe, padded or not, read).
// Other well-known types (Timestamp, Any, wrappers, ...) are read and written as the ordinary
// messages they are; the Audiences proto does not use them.
//
// Presence (MessageToJson): fields with presence (proto3 `optional` scalars, messages, oneof
// members) are written only when set; plain scalars are always written, even at their default
// ("" / 0 / false), except enums at their zero value, which are omitted; repeated fields and maps
// only when non-empty. JsonToMessage: a JSON null is the same as an absent key.
//
// Query parameters (AppendQueryParams): fields are flattened in declaration order into
// `prefix.jsonName` keys (no leading dot when the prefix is empty). Unset fields are skipped:
// fields with presence that are not set, plain scalars at their default (0, "", false, the zero
// enum value), empty repeated fields and maps. Values: strings as is, bools true / false,
// numbers in decimal, enums their REST value, bytes base64, Struct / Value / ListValue as compact
// JSON. Repeated scalars repeat the key; nested messages nest the prefix (pagination.count); an
// inline oneof nests under the oneof's name, a wrapper message flattens its set member in place;
// elements of repeated messages get `key[i]`; map entries `key.<map key>`. Flattening a whole
// request also flattens its path fields (spaceId, id, ...): pass the query fields one by one
// (AppendQueryParams(req.pagination(), "pagination", &q)) or drop those keys.

#ifndef SAG_SERVICE_TRANSLATE_JSON_PROTO_H_
#define SAG_SERVICE_TRANSLATE_JSON_PROTO_H_

#include "service/translate/descriptor_info.h"  // IWYU pragma: export
#include "service/translate/json_reader.h"      // IWYU pragma: export
#include "service/translate/json_writer.h"      // IWYU pragma: export
#include "service/translate/query_params.h"     // IWYU pragma: export

#endif  // SAG_SERVICE_TRANSLATE_JSON_PROTO_H_
