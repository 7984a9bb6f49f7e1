// The Segment Audiences API reference (tests/reference/segment-audiences-api-v65.json) as the
// tests use it: its operations and models, the proto message of each model, and a generator of
// JSON documents for any model.
//
// The reference is read once, from SAG_REFERENCE_DIR; when it cannot be read, Reference() is
// null and the accessors return empty containers (the tests then fail on their own checks).
#ifndef SAG_TESTS_COMMON_REFERENCE_H_
#define SAG_TESTS_COMMON_REFERENCE_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace sag::testing {

// The proto package of the gateway's messages, with the trailing dot.
inline constexpr char kPackage[] = "segment.audiences.v1.";

// The whole reference document (null when it cannot be read).
const nlohmann::json& Reference();
// reference.models: model name -> {fields: [{json, type, required, enum?}]} or {anyOf: [...]}.
const nlohmann::json& Models();
// One model, or an empty object.
const nlohmann::json& ModelNamed(const std::string& name);
// reference.operations: [{rpc, method, path, query, body, response, accept, content_type}].
const nlohmann::json& Operations();

// The `data` model of every operation's 200 body -> the RPC's Response message (full name).
const std::map<std::string, std::string>& OutputModels();
// Models sent as request bodies or query parameters, plus the error body.
const std::vector<std::string>& InputModels();
// The 14 response `data` models, by name.
const std::vector<std::string>& ResponseModels();

// The `data` model of an operation's 200 envelope (e.g. "GetAudienceBetaOutput"), or "".
std::string DataModelOf(const nlohmann::json& operation);

// A {data: <Output>} envelope (the models named "<Rpc>200Response").
bool IsEnvelope(const std::string& model);
// An anyOf model ({anyOf: [member models]}).
bool IsAnyOf(const nlohmann::json& model);

// The proto message of a model: the Response message for output models, else the model's name,
// in full ("segment.audiences.v1.X").
std::string ProtoNameOf(const std::string& model);
// Its descriptor in the generated pool, or nullptr.
const google::protobuf::Descriptor* DescriptorOf(const std::string& model);
// A new empty message of a generated type.
std::unique_ptr<google::protobuf::Message> NewMessage(const google::protobuf::Descriptor* d);
// The field of `d` whose JSON name is `json`, or nullptr.
const google::protobuf::FieldDescriptor* FieldByJsonName(const google::protobuf::Descriptor* d,
                                                         const std::string& json);

// Builds a JSON document for a model: every field (or only the required ones), strings and
// numbers made unique by a counter, enums and anyOf members picked by `variant`, arrays of two
// elements and maps of two keys (whose elements use variant and variant + 1). Variant 2 puts
// non-ASCII text in the strings.
class DocGenerator {
 public:
  explicit DocGenerator(bool required_only) : required_only_(required_only) {}

  nlohmann::json Model(const std::string& name, int variant);

  // "Model.field" of every field put into a document so far.
  const std::set<std::string>& visited() const { return visited_; }

 private:
  nlohmann::json Value(const nlohmann::json& type, const nlohmann::json& spec,
                       const std::string& where, int variant);
  // Free-form JSON of every kind, integers and fractions.
  static nlohmann::json Any(int variant);

  bool required_only_;
  int counter_ = 0;
  std::set<std::string> visited_;
};

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_REFERENCE_H_
