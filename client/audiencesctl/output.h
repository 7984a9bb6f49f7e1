// Output of audiencesctl: proto3 JSON, YAML (written from the same JSON) and aligned tables.
#ifndef SAG_CLIENT_AUDIENCESCTL_OUTPUT_H_
#define SAG_CLIENT_AUDIENCESCTL_OUTPUT_H_

#include <google/protobuf/message.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace audiencesctl {

enum class Format { kTable, kJson, kYaml, kId };

// Proto3 JSON (camelCase names, enum names, int64 as strings), indented by two spaces, ending
// with "\n". `defaults` also prints fields holding their default value.
std::string ToJson(const google::protobuf::Message& message, bool defaults = false);
// The same as an ordered JSON value (field order kept).
nlohmann::ordered_json ToOrderedJson(const google::protobuf::Message& message);
// The message as a JSON value (defaults included).
nlohmann::json ToJsonValue(const google::protobuf::Message& message);

// Block-style YAML of a JSON value, ending with "\n". Strings are quoted when a plain scalar
// would read as something else (numbers, booleans, null, special characters).
// Objects keep their key order (ordered_json).
std::string JsonToYaml(const nlohmann::ordered_json& value);

// An aligned table: one header row in capitals, columns separated by three spaces, no trailing
// spaces. Cells are sanitized (control characters become spaces); width counts code points.
std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows);
// "Label:   value" lines, values aligned; pairs with an empty value are skipped.
std::string RenderFields(const std::vector<std::pair<std::string, std::string>>& fields);

// The ids a response names, for -o id: the `id` of each object in its array fields (listings),
// else the `id` of its object fields (audience, audienceSchedule, audiencePreview, run).
std::vector<std::string> IdsOf(const nlohmann::json& response);

// Reading a JSON value for a cell: "" when absent or null; strings as is; numbers and booleans
// printed; arrays of scalars joined with ","; objects as compact JSON.
std::string Cell(const nlohmann::json& value, const char* pointer);
// An enum cell without its prefix ("AUDIENCE_TYPE_USERS" -> "USERS"); "" for *_UNSPECIFIED.
std::string EnumCell(const nlohmann::json& value, const char* pointer, const char* prefix);

}  // namespace audiencesctl

#endif  // SAG_CLIENT_AUDIENCESCTL_OUTPUT_H_
