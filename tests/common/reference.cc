#include "tests/common/reference.h"

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/dynamic_message.h"
#include "gtest/gtest.h"
#include "segment/audiences/v1/audiences.pb.h"

#ifndef SAG_REFERENCE_DIR
#error "SAG_REFERENCE_DIR must name the directory of segment-audiences-api-v65.json"
#endif

namespace sag::testing {

namespace pb = google::protobuf;
using Json = nlohmann::json;

const Json& Reference() {
  static const Json* const reference = [] {
    std::ifstream in(std::string(SAG_REFERENCE_DIR) + "/segment-audiences-api-v65.json");
    return new Json(in ? Json::parse(in, nullptr, /*allow_exceptions=*/false) : Json());
  }();
  return *reference;
}

const Json& Models() {
  static const Json empty = Json::object();
  const Json& ref = Reference();
  return ref.is_object() && ref.contains("models") ? ref["models"] : empty;
}

const Json& ModelNamed(const std::string& name) {
  static const Json empty = Json::object();
  return Models().contains(name) ? Models().at(name) : empty;
}

const Json& Operations() {
  static const Json empty = Json::array();
  const Json& ref = Reference();
  return ref.is_object() && ref.contains("operations") ? ref.at("operations") : empty;
}

std::string DataModelOf(const Json& operation) {
  if (!operation.contains("response") || !operation["response"].is_string()) return "";
  const Json& envelope = ModelNamed(operation["response"].get<std::string>());
  if (!envelope.contains("fields")) return "";
  for (const Json& field : envelope["fields"]) {
    if (field["json"] == "data") return field["type"]["model"].get<std::string>();
  }
  return "";
}

const std::map<std::string, std::string>& OutputModels() {
  static const auto* const outputs = [] {
    auto* out = new std::map<std::string, std::string>;
    for (const Json& op : Operations()) {
      const std::string data = DataModelOf(op);
      if (!data.empty()) {
        (*out)[data] = absl::StrCat(kPackage, op["rpc"].get<std::string>(), "Response");
      }
    }
    return out;
  }();
  return *outputs;
}

const std::vector<std::string>& InputModels() {
  static const auto* const inputs = new std::vector<std::string>{
      "CreateAudienceInput",
      "UpdateAudienceForSpaceInput",
      "AddAudienceScheduleToAudienceAlphaInput",
      "UpdateAudienceScheduleForAudienceAlphaInput",
      "CreateAudiencePreviewBetaInput",
      "PaginationInput",
      "ListAudiencesPaginationInput",
      "ListAudienceSearchInput",
      "ListAudienceConsumersSortInput",
      "RequestErrorEnvelope",
  };
  return *inputs;
}

const std::vector<std::string>& ResponseModels() {
  static const auto* const outputs = new std::vector<std::string>{
      "AddAudienceScheduleToAudienceAlphaOutput",
      "CreateAudienceOutput",
      "CreateAudiencePreviewBetaOutput",
      "ForceExecuteAudienceRunAlphaOutput",
      "GetAudienceBetaOutput",
      "GetAudiencePreviewBetaOutput",
      "GetAudienceScheduleFromSpaceAndAudienceAlphaOutput",
      "ListAudienceConsumersFromSpaceAndAudienceAlphaOutput",
      "ListAudienceSchedulesFromSpaceAndAudienceAlphaOutput",
      "ListAudiencesBetaOutput",
      "RemoveAudienceFromSpaceOutput",
      "RemoveAudienceScheduleFromAudienceAlphaOutput",
      "UpdateAudienceForSpaceOutput",
      "UpdateAudienceScheduleForAudienceAlphaOutput",
  };
  return *outputs;
}

bool IsEnvelope(const std::string& model) { return absl::EndsWith(model, "200Response"); }
bool IsAnyOf(const Json& model) { return model.contains("anyOf"); }

std::string ProtoNameOf(const std::string& model) {
  auto it = OutputModels().find(model);
  return it != OutputModels().end() ? it->second : absl::StrCat(kPackage, model);
}

const pb::Descriptor* DescriptorOf(const std::string& model) {
  // Referencing a generated type makes sure audiences.pb.cc is linked and registered.
  static const pb::Descriptor* const anchor =
      segment::audiences::v1::ListAudiencesResponse::descriptor();
  (void)anchor;
  return pb::DescriptorPool::generated_pool()->FindMessageTypeByName(ProtoNameOf(model));
}

std::unique_ptr<pb::Message> NewMessage(const pb::Descriptor* d) {
  return std::unique_ptr<pb::Message>(
      pb::MessageFactory::generated_factory()->GetPrototype(d)->New());
}

const pb::FieldDescriptor* FieldByJsonName(const pb::Descriptor* d, const std::string& json) {
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == json) return d->field(i);
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// DocGenerator
// ---------------------------------------------------------------------------------------------

Json DocGenerator::Model(const std::string& name, int variant) {
  const Json& model = ModelNamed(name);
  if (IsAnyOf(model)) {
    const Json& members = model["anyOf"];
    return Model(members[variant % members.size()].get<std::string>(), variant);
  }
  Json out = Json::object();
  if (!model.contains("fields")) {
    ADD_FAILURE() << "no model " << name << " in the reference";
    return out;
  }
  for (const Json& field : model["fields"]) {
    if (required_only_ && !field["required"].get<bool>()) continue;
    const std::string json = field["json"].get<std::string>();
    visited_.insert(absl::StrCat(name, ".", json));
    out[json] = Value(field["type"], field, absl::StrCat(name, ".", json), variant);
  }
  return out;
}

Json DocGenerator::Value(const Json& type, const Json& spec, const std::string& where,
                         int variant) {
  if (type.is_string()) {
    const std::string t = type.get<std::string>();
    if (t == "string" && spec.contains("enum")) {
      return spec["enum"][variant % spec["enum"].size()];
    }
    if (t == "string") {
      return absl::StrCat(where, "-", ++counter_, variant == 2 ? " \xC3\xA9\xE2\x82\xAC" : "");
    }
    if (t == "bool") return variant % 2 == 0;
    if (t == "int" || t == "number") return (++counter_ % 97) + (variant == 1 ? 1000 : 1);
    if (t == "any") return Any(variant);
    ADD_FAILURE() << "unknown type " << t;
    return Json();
  }
  if (type.contains("model")) return Model(type["model"].get<std::string>(), variant);
  if (type.contains("array")) {
    return Json::array({Value(type["array"], spec, where, variant),
                        Value(type["array"], spec, where, variant + 1)});
  }
  if (type.contains("map")) {
    const Json& value = type["map"];
    if (value == "any") return Json{{"first", Any(variant)}, {"second", Any(variant + 1)}};
    return Json{{"key-a", Value(value, spec, where, variant)},
                {"key-b", Value(value, spec, where, variant + 1)}};
  }
  ADD_FAILURE() << "unknown type " << type.dump();
  return Json();
}

Json DocGenerator::Any(int variant) {
  switch (variant % 4) {
    case 0:
      return Json{{"code", 42},
                  {"ratio", 0.25},
                  {"nested", {{"list", {1, -2.5, "x", true, nullptr, Json::object()}}}},
                  {"empty", Json::array()}};
    case 1:
      return "free text";
    case 2:
      return Json::array({1, 2, 3.5, false, Json{{"deep", Json{{"deeper", -7}}}}});
    default:
      return 12345678901;
  }
}

}  // namespace sag::testing
