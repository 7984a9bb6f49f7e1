// Tests of the JSON <-> protobuf translator (service/translate/json_proto.h).
//
// The round-trip tests generate their documents from the reference models
// (tests/reference/segment-audiences-api-v65.json), so every model field is exercised: for each
// operation's response `data` model and each input model, a document with every field and one
// with only the required fields, in three variants that between them use every enum value and
// every member of every anyOf. Every document is read both ways, from its DOM (JsonToMessage) and
// from its text (JsonTextToMessage: RapidJSON's SAX parser, else nlohmann's), and both must give
// the same message and the same error.

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/casts.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/field_comparator.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/wrappers.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "segment/audiences/v1/audiences.pb.h"
#include "service/translate/json_proto.h"
#include "service/translate/json_reader_internal.h"
#include "tests/common/reference.h"

namespace sag::translate {
namespace {

namespace pb = google::protobuf;
namespace v1 = segment::audiences::v1;
using Json = nlohmann::json;
using Params = std::vector<std::pair<std::string, std::string>>;

// The reference and the model -> message table (tests/common/reference.h).
using ::sag::testing::DescriptorOf;
using ::sag::testing::DocGenerator;
using ::sag::testing::FieldByJsonName;
using ::sag::testing::InputModels;
using ::sag::testing::IsAnyOf;
using ::sag::testing::IsEnvelope;
using ::sag::testing::kPackage;
using ::sag::testing::ModelNamed;
using ::sag::testing::Models;
using ::sag::testing::NewMessage;
using ::sag::testing::Operations;
using ::sag::testing::OutputModels;
using ::sag::testing::ProtoNameOf;
using ::sag::testing::Reference;
using ::sag::testing::ResponseModels;

std::string LowerCamel(const std::string& snake) {
  std::string out;
  bool upper = false;
  for (char c : snake) {
    if (c == '_') {
      upper = true;
    } else {
      out.push_back(upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c);
      upper = false;
    }
  }
  return out;
}

const pb::OneofDescriptor* OneofByJsonName(const pb::Descriptor* d, const std::string& json) {
  for (int i = 0; i < d->real_oneof_decl_count(); ++i) {
    if (LowerCamel(d->oneof_decl(i)->name()) == json) return d->oneof_decl(i);
  }
  return nullptr;
}

// Whether `a` and `b` hold the same fields and values (NaN equal to NaN).
bool Same(const pb::Message& a, const pb::Message& b) {
  pb::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  pb::util::MessageDifferencer differencer;
  differencer.set_field_comparator(&comparator);
  return differencer.Compare(a, b);
}

// The text of `j`, or "" when `j` (built in code, e.g. with invalid UTF-8) has no JSON text that
// parses back to it.
std::string TextOf(const Json& j) {
  std::string text = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  const Json back = Json::parse(text, nullptr, false);
  return !back.is_discarded() && back == j ? text : "";
}

// Reads the text of `j` with JsonTextToMessage and expects what JsonToMessage gave: the same
// status and the same message (`dom`, holding what the DOM path read).
void ExpectTextAgrees(const Json& j, const pb::Message& dom, const absl::Status& dom_status) {
  const std::string text = TextOf(j);
  if (text.empty()) return;
  std::unique_ptr<pb::Message> m(dom.New());
  TextError error = TextError::kSyntax;
  const absl::Status status = JsonTextToMessage(text, m.get(), &error);
  EXPECT_EQ(status, dom_status) << text;
  EXPECT_EQ(error, status.ok() ? TextError::kNone : TextError::kModel) << text;
  EXPECT_TRUE(Same(*m, dom)) << text;
}

TEST(TranslateReferenceTest, ReferenceLoadsWithAllOperationsAndModels) {
  ASSERT_TRUE(Reference().is_object()) << "cannot read " << SAG_REFERENCE_DIR;
  EXPECT_EQ(Operations().size(), 14u);
  ASSERT_EQ(OutputModels().size(), 14u);
  for (const std::string& model : ResponseModels()) {
    EXPECT_TRUE(OutputModels().count(model)) << model;
  }
  for (const std::string& model : InputModels()) {
    EXPECT_TRUE(Models().contains(model)) << model;
  }
}

// ---------------------------------------------------------------------------------------------
// Every model field of the reference has a proto field (and the proto nothing more)
// ---------------------------------------------------------------------------------------------

bool IsInteger(const pb::FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
    case pb::FieldDescriptor::CPPTYPE_INT64:
    case pb::FieldDescriptor::CPPTYPE_UINT32:
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return true;
    default:
      return false;
  }
}

bool IsMessage(const pb::FieldDescriptor* f, const std::string& full_name) {
  return f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
         f->message_type()->full_name() == full_name;
}

// Checks that the proto field `f` can carry a value of reference type `type` (an element type
// when `f` is repeated and `element` is set). Returns "" or what is wrong.
std::string CheckType(const Json& type, const Json& spec, const pb::FieldDescriptor* f,
                      bool element) {
  const bool singular = element || !f->is_repeated();
  if (type.is_string()) {
    const std::string t = type.get<std::string>();
    if (!singular) return "is repeated, the reference has a " + t;
    if (t == "string" && spec.contains("enum")) {
      if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_ENUM) return "is not an enum";
      std::set<std::string> rest;
      for (const Json& v : spec["enum"]) {
        const std::string s = v.get<std::string>();
        rest.insert(s);
        const int number = RestToEnum(f->enum_type(), s);
        if (number == 0) return "has no value for REST " + s;
        if (EnumToRest(f->enum_type()->FindValueByNumber(number)) != s) return "renames " + s;
      }
      const pb::EnumValueDescriptor* zero = f->enum_type()->FindValueByNumber(0);
      if (zero == nullptr || !absl::EndsWith(zero->name(), "_UNSPECIFIED")) {
        return "has no <ENUM>_UNSPECIFIED zero value";
      }
      const std::string prefix(absl::StripSuffix(zero->name(), "UNSPECIFIED"));
      for (int i = 0; i < f->enum_type()->value_count(); ++i) {
        const pb::EnumValueDescriptor* v = f->enum_type()->value(i);
        if (v->number() == 0) continue;
        if (v->name() != prefix + EnumToRest(v)) return v->name() + " lacks the prefix " + prefix;
        if (!rest.count(EnumToRest(v))) return "has value " + v->name() + " the REST enum lacks";
      }
      return "";
    }
    if (t == "string") {
      return f->type() == pb::FieldDescriptor::TYPE_STRING ? "" : "is not a string";
    }
    if (t == "bool") return f->type() == pb::FieldDescriptor::TYPE_BOOL ? "" : "is not a bool";
    if (t == "int" || t == "number") return IsInteger(f) ? "" : "is not an integer";
    if (t == "any") {
      return IsMessage(f, "google.protobuf.Value") ? "" : "is not a google.protobuf.Value";
    }
    return "unknown reference type " + t;
  }
  if (type.contains("model")) {
    if (!singular) return "is repeated, the reference has a model";
    const std::string model = type["model"].get<std::string>();
    if (IsAnyOf(ModelNamed(model)) && DescriptorOf(model) == nullptr) {
      return "is a field, the reference has an inline anyOf " + model;
    }
    return IsMessage(f, ProtoNameOf(model)) ? "" : "is not a " + ProtoNameOf(model);
  }
  if (type.contains("array")) {
    if (element || !f->is_repeated() || f->is_map()) return "is not a repeated field";
    return CheckType(type["array"], spec, f, true);
  }
  if (type.contains("map")) {
    const Json& value = type["map"];
    if (value == "any") {
      if (!singular) return "is repeated, the reference has a free-form object";
      return IsMessage(f, "google.protobuf.Struct") ? "" : "is not a google.protobuf.Struct";
    }
    if (element || !f->is_map()) return "is not a map";
    const pb::FieldDescriptor* key = f->message_type()->map_key();
    const pb::FieldDescriptor* val = f->message_type()->map_value();
    if (key->type() != pb::FieldDescriptor::TYPE_STRING) return "map key is not a string";
    if (value.is_object() && value.contains("array")) {
      // Rule 4: a list message with one repeated field `items`.
      if (val->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) return "map value not a list";
      const pb::Descriptor* list = val->message_type();
      if (list->field_count() != 1 || list->field(0)->name() != "items") {
        return "map value is not a list message with one field `items`";
      }
      return CheckType(value, spec, list->field(0), false);
    }
    return CheckType(value, spec, val, false);
  }
  return "unknown reference type " + type.dump();
}

TEST(TranslateReferenceTest, EveryModelFieldHasAProtoField) {
  ASSERT_TRUE(Models().is_object());
  int models = 0;
  int fields = 0;
  for (const auto& [name, model] : Models().items()) {
    if (IsEnvelope(name)) {
      // {data: <Output>}: the gateway returns the Response message, i.e. `data`.
      ASSERT_EQ(model["fields"].size(), 1u) << name;
      EXPECT_EQ(model["fields"][0]["json"], "data") << name;
      EXPECT_TRUE(OutputModels().count(model["fields"][0]["type"]["model"].get<std::string>()));
      continue;
    }
    const pb::Descriptor* d = DescriptorOf(name);
    if (IsAnyOf(model)) {
      // Either a wrapper message (AudiencePreviewResult) or an inline oneof (Config, checked
      // where it is used).
      if (d == nullptr) continue;
      ++models;
      ASSERT_EQ(d->real_oneof_decl_count(), 1) << name;
      const pb::OneofDescriptor* o = d->oneof_decl(0);
      ASSERT_EQ(o->field_count(), d->field_count()) << name << ": fields outside the oneof";
      ASSERT_EQ(static_cast<size_t>(o->field_count()), model["anyOf"].size()) << name;
      for (int i = 0; i < o->field_count(); ++i) {
        EXPECT_TRUE(IsMessage(o->field(i), ProtoNameOf(model["anyOf"][i].get<std::string>())))
            << name << "." << o->field(i)->name();
      }
      continue;
    }
    ASSERT_NE(d, nullptr) << "no message " << ProtoNameOf(name) << " for model " << name;
    ++models;
    std::set<std::string> reference_keys;
    for (const Json& field : model["fields"]) {
      ++fields;
      const std::string json = field["json"].get<std::string>();
      reference_keys.insert(json);
      SCOPED_TRACE(absl::StrCat(name, ".", json));
      const pb::FieldDescriptor* f = FieldByJsonName(d, json);
      if (f == nullptr) {
        // An anyOf inline: a oneof named like the key, members = the anyOf's models.
        const pb::OneofDescriptor* o = OneofByJsonName(d, json);
        ASSERT_NE(o, nullptr) << "no field or oneof with JSON name " << json;
        ASSERT_TRUE(field["type"].contains("model"));
        const Json& any_of = ModelNamed(field["type"]["model"].get<std::string>());
        ASSERT_TRUE(IsAnyOf(any_of));
        ASSERT_EQ(static_cast<size_t>(o->field_count()), any_of["anyOf"].size());
        for (int i = 0; i < o->field_count(); ++i) {
          EXPECT_TRUE(IsMessage(o->field(i), ProtoNameOf(any_of["anyOf"][i].get<std::string>())));
        }
        continue;
      }
      EXPECT_EQ(CheckType(field["type"], field, f, false), "");
      // An optional REST scalar must be able to be absent: the proto field needs presence.
      if (!field["required"].get<bool>() && !f->is_repeated()) {
        EXPECT_TRUE(f->has_presence()) << "optional in REST but without presence in proto";
      }
    }
    // And the proto has nothing the reference does not.
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      const pb::OneofDescriptor* o = f->real_containing_oneof();
      const std::string key = o != nullptr ? LowerCamel(o->name()) : f->json_name();
      EXPECT_TRUE(reference_keys.count(key)) << d->full_name() << "." << f->name();
    }
  }
  EXPECT_EQ(models, 48);  // 63 models - 14 {data} envelopes - Config (an inline oneof)
  EXPECT_GT(fields, 100);
}

// Request messages: path parameters, query parameters and body, as service/README.md (the API)
// says.
TEST(TranslateReferenceTest, RequestsCarryPathQueryAndBody) {
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  ASSERT_EQ(Operations().size(), 14u);
  for (const Json& op : Operations()) {
    const std::string rpc = op["rpc"].get<std::string>();
    SCOPED_TRACE(rpc);
    const pb::Descriptor* req = pool->FindMessageTypeByName(absl::StrCat(kPackage, rpc, "Request"));
    ASSERT_NE(req, nullptr);
    std::set<std::string> expected;
    const std::string path = op["path"].get<std::string>();
    for (size_t at = path.find('{'); at != std::string::npos; at = path.find('{', at + 1)) {
      const std::string param = path.substr(at + 1, path.find('}', at) - at - 1);
      expected.insert(param);
      const pb::FieldDescriptor* f = FieldByJsonName(req, param);
      ASSERT_NE(f, nullptr) << param;
      EXPECT_EQ(f->type(), pb::FieldDescriptor::TYPE_STRING);
    }
    for (const auto& [param, type] : op["query"].items()) {
      expected.insert(param);
      const pb::FieldDescriptor* f = FieldByJsonName(req, param);
      ASSERT_NE(f, nullptr) << param;
      if (type == "StrictStr") {
        EXPECT_EQ(f->type(), pb::FieldDescriptor::TYPE_STRING);
      } else {
        EXPECT_TRUE(IsMessage(f, ProtoNameOf(type.get<std::string>()))) << param;
      }
    }
    if (!op["body"].is_null()) {
      int bodies = 0;
      for (int i = 0; i < req->field_count(); ++i) {
        const pb::FieldDescriptor* f = req->field(i);
        if (IsMessage(f, ProtoNameOf(op["body"].get<std::string>()))) {
          ++bodies;
          expected.insert(f->json_name());
          EXPECT_TRUE(f->name() == "audience" || f->name() == "schedule" || f->name() == "preview")
              << f->name();
        }
      }
      EXPECT_EQ(bodies, 1);
    }
    EXPECT_EQ(static_cast<size_t>(req->field_count()), expected.size());
  }
}

// ---------------------------------------------------------------------------------------------
// Documents generated from the reference models
// ---------------------------------------------------------------------------------------------

struct RoundTripCase {
  std::string model;
  bool required_only;
  int variant;
};

std::vector<RoundTripCase> RoundTripCases() {
  std::vector<RoundTripCase> cases;
  std::vector<std::string> models = ResponseModels();
  models.insert(models.end(), InputModels().begin(), InputModels().end());
  for (const std::string& model : models) {
    for (bool required_only : {false, true}) {
      for (int variant = 0; variant < 3; ++variant) {
        cases.push_back({model, required_only, variant});
      }
    }
  }
  return cases;
}

class TranslateRoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(TranslateRoundTripTest, JsonToProtoToJsonIsIdentity) {
  const RoundTripCase& c = GetParam();
  ASSERT_TRUE(Models().contains(c.model)) << c.model;
  const pb::Descriptor* d = DescriptorOf(c.model);
  ASSERT_NE(d, nullptr) << ProtoNameOf(c.model);

  DocGenerator generator(c.required_only);
  const Json doc = generator.Model(c.model, c.variant);
  std::unique_ptr<pb::Message> msg = NewMessage(d);
  const absl::Status status = JsonToMessage(doc, msg.get());
  ASSERT_TRUE(status.ok()) << status << "\n" << doc.dump(2);
  const Json back = MessageToJson(*msg);
  EXPECT_EQ(back, doc) << "in:  " << doc.dump() << "\nout: " << back.dump();

  // From the text, streamed (no fall back to the DOM way), the same message.
  std::unique_ptr<pb::Message> streamed = NewMessage(d);
  EXPECT_EQ(internal::StreamTextToMessage(doc.dump(), nullptr, streamed.get(), nullptr),
            internal::StreamResult::kRead);
  EXPECT_TRUE(Same(*streamed, *msg)) << doc.dump();
  EXPECT_EQ(MessageToJson(*streamed), doc);
  ExpectTextAgrees(doc, *msg, status);
  // And inside the {"data": ...} envelope the API wraps responses in.
  std::unique_ptr<pb::Message> member = NewMessage(d);
  const std::string envelope = Json{{"errors", Json::array()}, {"data", doc}}.dump();
  const std::string_view data = "data";
  EXPECT_EQ(internal::StreamTextToMessage(envelope, &data, member.get(), nullptr),
            internal::StreamResult::kRead);
  EXPECT_TRUE(Same(*member, *msg)) << envelope;
  // RapidJSON's fast pass reads both alone, to the same message.
  std::unique_ptr<pb::Message> fast = NewMessage(d);
  EXPECT_TRUE(internal::FastTextToMessage(doc.dump(), nullptr, fast.get())) << doc.dump();
  EXPECT_TRUE(Same(*fast, *msg)) << doc.dump();
  std::unique_ptr<pb::Message> fast_member = NewMessage(d);
  EXPECT_TRUE(internal::FastTextToMessage(envelope, &data, fast_member.get())) << envelope;
  EXPECT_TRUE(Same(*fast_member, *msg)) << envelope;

  // The message survives the wire (map entries, Struct, oneofs) unchanged.
  std::unique_ptr<pb::Message> parsed = NewMessage(d);
  ASSERT_TRUE(parsed->ParseFromString(msg->SerializeAsString()));
  EXPECT_EQ(MessageToJson(*parsed), doc);
}

INSTANTIATE_TEST_SUITE_P(ReferenceModels, TranslateRoundTripTest,
                         ::testing::ValuesIn(RoundTripCases()),
                         [](const ::testing::TestParamInfo<RoundTripCase>& info) {
                           return absl::StrCat(info.param.model,
                                               info.param.required_only ? "_Required" : "_Full",
                                               "_V", info.param.variant);
                         });

// The generated documents use every field of every model reachable from the tested models,
// every anyOf member and every enum value.
TEST(TranslateReferenceTest, GeneratedDocumentsCoverEveryModelField) {
  DocGenerator generator(/*required_only=*/false);
  std::set<std::string> enum_values_seen;
  std::vector<Json> docs;
  for (const RoundTripCase& c : RoundTripCases()) {
    if (!c.required_only) docs.push_back(generator.Model(c.model, c.variant));
  }
  std::set<std::string> expected;
  for (const auto& [name, model] : Models().items()) {
    if (IsEnvelope(name) || IsAnyOf(model)) continue;
    for (const Json& field : model["fields"]) {
      expected.insert(absl::StrCat(name, ".", field["json"].get<std::string>()));
    }
  }
  for (const std::string& field : expected) {
    EXPECT_TRUE(generator.visited().count(field)) << field << " is in no generated document";
  }
  // anyOf members and enum values: each appears in some parsed message.
  std::set<std::string> members_set;
  std::set<std::string> enums_set;
  std::function<void(const pb::Message&)> walk = [&](const pb::Message& m) {
    const pb::Reflection* r = m.GetReflection();
    std::vector<const pb::FieldDescriptor*> fields;
    r->ListFields(m, &fields);
    for (const pb::FieldDescriptor* f : fields) {
      if (f->real_containing_oneof() != nullptr) members_set.insert(f->full_name());
      if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM && !f->is_repeated()) {
        enums_set.insert(f->enum_type()->FindValueByNumber(r->GetEnumValue(m, f))->full_name());
      }
      if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) walk(r->GetRepeatedMessage(m, f, i));
      } else {
        walk(r->GetMessage(m, f));
      }
    }
  };
  size_t i = 0;
  for (const RoundTripCase& c : RoundTripCases()) {
    if (c.required_only) continue;
    std::unique_ptr<pb::Message> msg = NewMessage(DescriptorOf(c.model));
    ASSERT_TRUE(JsonToMessage(docs[i++], msg.get()).ok());
    walk(*msg);
  }
  const pb::FileDescriptor* file = v1::AudiencePreviewResult::descriptor()->file();
  for (int m = 0; m < file->message_type_count(); ++m) {
    const pb::Descriptor* d = file->message_type(m);
    for (int o = 0; o < d->real_oneof_decl_count(); ++o) {
      for (int k = 0; k < d->oneof_decl(o)->field_count(); ++k) {
        EXPECT_TRUE(members_set.count(d->oneof_decl(o)->field(k)->full_name()))
            << d->oneof_decl(o)->field(k)->full_name() << " never chosen";
      }
    }
  }
  for (int e = 0; e < file->enum_type_count(); ++e) {
    const pb::EnumDescriptor* ed = file->enum_type(e);
    for (int k = 1; k < ed->value_count(); ++k) {
      // Enums only used in query parameters are covered by the input models too.
      EXPECT_TRUE(enums_set.count(ed->value(k)->full_name())) << ed->value(k)->full_name();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rules, one by one
// ---------------------------------------------------------------------------------------------

// Both parse `j` from its DOM, and expect its text to read the same (ExpectTextAgrees).
template <typename M>
M Parse(const Json& j) {
  M m;
  const absl::Status status = JsonToMessage(j, &m);
  EXPECT_TRUE(status.ok()) << status << " for " << j.dump();
  ExpectTextAgrees(j, m, status);
  return m;
}

template <typename M>
absl::Status ParseError(const Json& j) {
  M m;
  const absl::Status status = JsonToMessage(j, &m);
  ExpectTextAgrees(j, m, status);
  return status;
}

TEST(TranslateEnumTest, PrefixRule) {
  const pb::EnumDescriptor* type = v1::AudienceType_descriptor();
  EXPECT_EQ(EnumToRest(type->FindValueByName("AUDIENCE_TYPE_LINKED")), "LINKED");
  EXPECT_EQ(EnumToRest(type->FindValueByName("AUDIENCE_TYPE_UNSPECIFIED")), "");
  EXPECT_EQ(EnumToRest(nullptr), "");
  EXPECT_EQ(RestToEnum(type, "LINKED"), v1::AUDIENCE_TYPE_LINKED);
  EXPECT_EQ(RestToEnum(type, "USERS"), v1::AUDIENCE_TYPE_USERS);
  EXPECT_EQ(RestToEnum(type, "linked"), 0);
  EXPECT_EQ(RestToEnum(type, "UNSPECIFIED"), 0);
  EXPECT_EQ(RestToEnum(type, "AUDIENCE_TYPE_LINKED"), 0);
  EXPECT_EQ(RestToEnum(type, ""), 0);
  EXPECT_EQ(RestToEnum(nullptr, "LINKED"), 0);
  EXPECT_EQ(EnumToRest(v1::ScheduleStrategy_descriptor()->FindValueByNumber(
                v1::SCHEDULE_STRATEGY_SPECIFIC_DAYS)),
            "SPECIFIC_DAYS");
  EXPECT_EQ(RestToEnum(v1::AudienceConsumersSortField_descriptor(), "CREATED_AT"),
            v1::AUDIENCE_CONSUMERS_SORT_FIELD_CREATED_AT);
  // Every value of every enum of the file round-trips.
  const pb::FileDescriptor* file = type->file();
  for (int e = 0; e < file->enum_type_count(); ++e) {
    const pb::EnumDescriptor* ed = file->enum_type(e);
    for (int k = 0; k < ed->value_count(); ++k) {
      const pb::EnumValueDescriptor* v = ed->value(k);
      EXPECT_EQ(RestToEnum(ed, EnumToRest(v)), v->number()) << v->full_name();
    }
  }
}

TEST(TranslateEnumTest, UnknownRestValueReadsAsZeroAndSucceeds) {
  v1::CreateAudienceInput in;
  ASSERT_TRUE(JsonToMessage(Json{{"name", "a"}, {"audienceType", "GALAXIES"}}, &in).ok());
  EXPECT_EQ(in.audience_type(), v1::AUDIENCE_TYPE_UNSPECIFIED);
  EXPECT_EQ(MessageToJson(in), (Json{{"name", "a"}}));  // The zero value is omitted.

  v1::AudienceSchedule schedule;
  ASSERT_TRUE(JsonToMessage(Json{{"id", "s"}, {"strategy", ""}}, &schedule).ok());
  EXPECT_EQ(schedule.strategy(), v1::SCHEDULE_STRATEGY_UNSPECIFIED);

  // Values not in the enum (possible from binary input) are omitted too.
  v1::AudienceSize size;
  size.set_type(static_cast<v1::AudienceSizeType>(77));
  EXPECT_EQ(MessageToJson(size), Json::object());
}

TEST(TranslateJsonTest, UnknownKeysAreIgnored) {
  const auto in = Parse<v1::CreateAudienceInput>(
      Json{{"name", "a"},
           {"surprise", {{"deep", {1, 2, {{"x", nullptr}}}}}},
           {"definition", {{"query", "q"}, {"future", 1}}},
           {"options", {{"filterByExternalIds", {"e"}}, {"newOption", true}}}});
  EXPECT_EQ(in.name(), "a");
  EXPECT_EQ(in.definition().query(), "q");
  EXPECT_EQ(in.options().filter_by_external_ids_size(), 1);
}

TEST(TranslateJsonTest, NullIsAbsent) {
  const auto in = Parse<v1::CreateAudienceInput>(Json{{"name", nullptr},
                                                      {"enabled", nullptr},
                                                      {"description", nullptr},
                                                      {"definition", nullptr},
                                                      {"audienceType", nullptr},
                                                      {"options", nullptr}});
  EXPECT_FALSE(in.has_enabled());
  EXPECT_FALSE(in.has_description());
  EXPECT_FALSE(in.has_definition());
  EXPECT_FALSE(in.has_options());
  EXPECT_EQ(in.name(), "");

  const auto page = Parse<v1::PaginationOutput>(
      Json{{"current", "MA=="}, {"next", nullptr}, {"previous", nullptr}});
  EXPECT_FALSE(page.has_next());
  EXPECT_EQ(MessageToJson(page), (Json{{"current", "MA=="}}));

  // A null map value is an absent entry; a null top-level document an empty message.
  const auto profile = Parse<v1::Profile>(Json{{"mapping", {{"a", "b"}, {"c", nullptr}}}});
  EXPECT_EQ(profile.mapping().size(), 1u);
  v1::RequestError error;
  error.set_type("stale");
  ASSERT_TRUE(JsonToMessage(Json(), &error).ok());
  EXPECT_EQ(error.type(), "");  // Cleared.
  // Inside free-form JSON, null is a value.
  const auto details = Parse<v1::EntityDetails>(Json{{"properties", {{"gone", nullptr}}}});
  EXPECT_EQ(details.properties().fields().at("gone").kind_case(), pb::Value::kNullValue);
  EXPECT_EQ(MessageToJson(details)["properties"], (Json{{"gone", nullptr}}));
}

TEST(TranslateJsonTest, PresenceRulesOnOutput) {
  // Plain scalars always; enums at zero, unset optionals / messages, empty repeated: never.
  EXPECT_EQ(MessageToJson(v1::CreateAudienceInput()), (Json{{"name", ""}}));
  EXPECT_EQ(MessageToJson(v1::UpdateAudienceForSpaceInput()), Json::object());
  EXPECT_EQ(
      MessageToJson(v1::AudiencePreviewEntitiesResult()),
      (Json{
          {"id", ""}, {"idProperty", ""}, {"relationshipSlug", ""}, {"profilesTruncated", false}}));
  v1::UpdateAudienceForSpaceInput update;
  update.set_enabled(false);
  update.set_name("");
  update.mutable_options();
  EXPECT_EQ(MessageToJson(update),
            (Json{{"enabled", false}, {"name", ""}, {"options", Json::object()}}));
  v1::AudienceSize size;
  size.set_count(0);
  EXPECT_EQ(MessageToJson(size), (Json{{"count", 0}}));
}

TEST(TranslateJsonTest, TypeMismatchNamesThePath) {
  Json doc = {{"audiences", Json::array()}};
  for (int i = 0; i < 4; ++i) doc["audiences"].push_back({{"id", absl::StrCat(i)}});
  doc["audiences"][3]["enabled"] = "yes";
  absl::Status status = ParseError<v1::ListAudiencesResponse>(doc);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "audiences[3].enabled: expected a boolean, got a string");

  struct Case {
    Json doc;
    std::string message;
  };
  const std::vector<Case> cases = {
      {Json::array(), "(root): expected an object, got an array"},
      {{{"audience", {{"name", 5}}}}, "audience.name: expected a string, got a number"},
      {{{"audience", {{"options", {{"backfillEventDataDays", 3.5}}}}}},
       "audience.options.backfillEventDataDays: expected an integer, got 3.5"},
      {{{"audience", {{"options", {{"backfillEventDataDays", 2147483648}}}}}},
       "audience.options.backfillEventDataDays: 2147483648 is out of range for int32"},
      {{{"audience", {{"options", {{"backfillEventDataDays", "3"}}}}}},
       "audience.options.backfillEventDataDays: expected an integer, got a string"},
      {{{"audience", {{"options", {{"filterByExternalIds", "a"}}}}}},
       "audience.options.filterByExternalIds: expected an array, got a string"},
      {{{"audience", {{"options", {{"filterByExternalIds", {"a", 1}}}}}}},
       "audience.options.filterByExternalIds[1]: expected a string, got a number"},
      {{{"audience", {{"definition", "q"}}}},
       "audience.definition: expected an object, got a string"},
      {{{"audience", {{"audienceType", 2}}}},
       "audience.audienceType: expected a string, got a number"},
      {{{"audience", {{"enabled", 1}}}}, "audience.enabled: expected a boolean, got a number"},
  };
  for (const Case& c : cases) {
    status = ParseError<v1::CreateAudienceResponse>(c.doc);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.doc.dump();
    EXPECT_EQ(status.message(), c.message) << c.doc.dump();
  }

  // Paths through maps, list wrappers and anyOf members.
  const Json preview = Json::parse(R"({"audiencePreview": {"results": [
      {"id": "a"},
      {"id": "p", "entities": {"accounts": [{"id": "e", "idProperty": 7}]}},
      {"id": "x", "idProperty": "i", "relationshipSlug": "r", "profilesTruncated": "no"}]}})");
  status = ParseError<v1::GetAudiencePreviewResponse>(preview);
  EXPECT_EQ(status.message(),
            "audiencePreview.results[1].entities.accounts[0].idProperty: expected a string, got "
            "a number");
  Json preview2 = preview;
  preview2["audiencePreview"]["results"].erase(1);
  status = ParseError<v1::GetAudiencePreviewResponse>(preview2);
  EXPECT_EQ(status.message(),
            "audiencePreview.results[1].profilesTruncated: expected a boolean, got a string");
  status = ParseError<v1::AudienceSchedule>(Json{{"config", {{"interval", 15}}}});
  EXPECT_EQ(status.message(), "config.interval: expected a string, got a number");
  status = ParseError<v1::AudienceSchedule>(Json{{"config", "1d"}});
  EXPECT_EQ(status.message(), "config: expected an object, got a string");
  status = ParseError<v1::AudiencePreviewProfileResult>(Json{{"entities", {{"k", {{"id", 1}}}}}});
  EXPECT_EQ(status.message(), "entities.k: expected an array, got an object");
  status = ParseError<v1::Profile>(Json{{"mapping", {{"a", true}}}});
  EXPECT_EQ(status.message(), "mapping.a: expected a string, got a boolean");
  // Invalid UTF-8 (possible in a json built in code) is refused.
  status = ParseError<v1::AudienceRunInfo>(Json{{"id", std::string("a\xFF")}});
  EXPECT_EQ(status.message(), "id: string is not valid UTF-8");
}

Json Nested(int depth, bool objects) {
  Json j = 1;
  for (int i = 0; i < depth; ++i) j = objects ? Json{{"a", std::move(j)}} : Json::array({j});
  return j;
}

TEST(TranslateJsonTest, DeepNestingIsAnErrorNotACrash) {
  for (bool objects : {true, false}) {
    // The document is errors(1) -> [ (2) -> { (3) -> data: 1000 levels.
    const Json doc = {{"errors", {{{"type", "t"}, {"data", Nested(1000, objects)}}}}};
    const absl::Status status = ParseError<v1::RequestErrorEnvelope>(doc);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(status.message(), "nested deeper than 64")) << status;
    EXPECT_TRUE(absl::StartsWith(status.message(), "errors[0].data")) << status;
  }
  // Exactly kMaxDepth levels are fine, one more is not.
  pb::Value value;
  EXPECT_TRUE(JsonToMessage(Nested(kMaxDepth, true), &value).ok());
  EXPECT_EQ(MessageToJson(value), Nested(kMaxDepth, true));
  EXPECT_FALSE(JsonToMessage(Nested(kMaxDepth + 1, true), &value).ok());
  EXPECT_TRUE(JsonToMessage(Nested(kMaxDepth, false), &value).ok());
  EXPECT_FALSE(JsonToMessage(Nested(kMaxDepth + 1, false), &value).ok());
  v1::RequestErrorEnvelope envelope;
  EXPECT_TRUE(
      JsonToMessage({{"errors", {{{"data", Nested(kMaxDepth - 3, true)}}}}}, &envelope).ok());
  EXPECT_FALSE(
      JsonToMessage({{"errors", {{{"data", Nested(kMaxDepth - 2, true)}}}}}, &envelope).ok());

  // A message built in code, nested 1000 deep, is cut (null) instead of overflowing the stack.
  auto deep = std::make_unique<pb::Value>();
  pb::Value* leaf = deep.get();
  for (int i = 0; i < 1000; ++i) {
    leaf = &(*leaf->mutable_list_value()->add_values());
  }
  leaf->set_number_value(1);
  Json out = MessageToJson(*deep);
  int levels = 0;
  for (const Json* j = &out; j->is_array(); j = &(*j)[0]) ++levels;
  EXPECT_EQ(levels, kMaxDepth);
  Params params;
  AppendQueryParams(*deep, "deep", &params);  // Must not crash either.
}

TEST(TranslateJsonTest, LargeNumbers) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  for (int64_t n : {kMax, kMin, int64_t{0}, int64_t{-1}, int64_t{9007199254740993}}) {
    const Json doc = {{"count", n}, {"type", "USERS"}, {"uniqueCount", n}};
    const auto size = Parse<v1::AudienceSize>(doc);
    EXPECT_EQ(size.count(), n);
    EXPECT_EQ(MessageToJson(size), doc);
    EXPECT_EQ(MessageToJson(size).dump(), doc.dump());
  }
  // int64 from a string (lenient), written back as a number.
  EXPECT_EQ(Parse<v1::AudienceSize>(Json{{"count", "9223372036854775807"}}).count(), kMax);
  EXPECT_EQ(MessageToJson(Parse<v1::AudienceSize>(Json{{"count", "-12"}}))["count"], -12);
  EXPECT_EQ(Parse<v1::AudienceSize>(Json{{"count", 3.0}}).count(), 3);
  EXPECT_EQ(Parse<v1::AudienceSize>(Json{{"count", 1e18}}).count(), 1000000000000000000);

  const auto message = [](const Json& count) {
    return std::string(ParseError<v1::AudienceSize>(Json{{"count", count}}).message());
  };
  EXPECT_EQ(message(uint64_t{9223372036854775808u}),
            "count: 9223372036854775808 is out of range for int64");
  EXPECT_EQ(message(std::numeric_limits<uint64_t>::max()),
            "count: 18446744073709551615 is out of range for int64");
  EXPECT_EQ(message(1e19), "count: 1e+19 is out of range for int64");
  EXPECT_EQ(message(-1e300), "count: -1e+300 is out of range for int64");
  EXPECT_EQ(message("9223372036854775808"),
            "count: expected an integer, got a string that does not hold one");
  EXPECT_EQ(message("12abc"), "count: expected an integer, got a string that does not hold one");
  EXPECT_EQ(message(0.5), "count: expected an integer, got 0.5");
  EXPECT_EQ(message(true), "count: expected an integer, got a boolean");

  const auto options_message = [](const Json& days) {
    return std::string(
        ParseError<v1::AudienceOptions>(Json{{"backfillEventDataDays", days}}).message());
  };
  EXPECT_EQ(Parse<v1::AudienceOptions>(Json{{"backfillEventDataDays", 2147483647}})
                .backfill_event_data_days(),
            2147483647);
  EXPECT_EQ(Parse<v1::AudienceOptions>(Json{{"backfillEventDataDays", -2147483648}})
                .backfill_event_data_days(),
            std::numeric_limits<int32_t>::min());
  EXPECT_EQ(options_message(-2147483649),
            "backfillEventDataDays: -2147483649 is out of range for int32");
  EXPECT_EQ(options_message(1e300), "backfillEventDataDays: 1e+300 is out of range for int32");

  // Unsigned and floating types (not in the Audiences proto; via the wrapper well-known types).
  EXPECT_EQ(Parse<pb::UInt64Value>(Json{{"value", "18446744073709551615"}}).value(),
            std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(MessageToJson(Parse<pb::UInt64Value>(Json{{"value", 18446744073709551615u}})),
            (Json{{"value", 18446744073709551615u}}));
  EXPECT_EQ(ParseError<pb::UInt32Value>(Json{{"value", -1}}).message(),
            "value: -1 is out of range for uint32");
  EXPECT_EQ(ParseError<pb::UInt32Value>(Json{{"value", 4294967296}}).message(),
            "value: 4294967296 is out of range for uint32");
  EXPECT_EQ(MessageToJson(Parse<pb::DoubleValue>(Json{{"value", 2.5}})), (Json{{"value", 2.5}}));
  EXPECT_EQ(MessageToJson(Parse<pb::DoubleValue>(Json{{"value", 1e300}})),
            (Json{{"value", 1e300}}));
  EXPECT_TRUE(std::isnan(Parse<pb::DoubleValue>(Json{{"value", "NaN"}}).value()));
  EXPECT_EQ(MessageToJson(Parse<pb::DoubleValue>(Json{{"value", "-Infinity"}})),
            (Json{{"value", "-Infinity"}}));
  EXPECT_EQ(MessageToJson(Parse<pb::FloatValue>(Json{{"value", 0.1}})).dump(), R"({"value":0.1})");
  EXPECT_EQ(ParseError<pb::FloatValue>(Json{{"value", 1e39}}).message(),
            "value: 1e+39 is out of range for float");
}

TEST(TranslateJsonTest, ValueNumbersKeepIntegersIntegers) {
  const Json data = {{"int", 3},
                     {"negative", -7},
                     {"fraction", 2.5},
                     {"integral_double", 3.0},
                     {"two53", 9007199254740992},
                     {"big", 1e300},
                     {"huge_integer", 18446744073709551615u},
                     {"list", {1, 1.5, -0.25, 100000000000}}};
  const auto envelope = Parse<v1::RequestErrorEnvelope>(
      Json{{"errors", {{{"type", "RequestError"}, {"data", data}}}}});
  const Json out = MessageToJson(envelope)["errors"][0]["data"];
  EXPECT_EQ(out["int"].dump(), "3");
  EXPECT_TRUE(out["int"].is_number_integer());
  EXPECT_EQ(out["negative"].dump(), "-7");
  EXPECT_EQ(out["fraction"].dump(), "2.5");
  EXPECT_EQ(out["integral_double"].dump(), "3");
  EXPECT_EQ(out["two53"].dump(), "9007199254740992");
  EXPECT_TRUE(out["big"].is_number_float());
  EXPECT_EQ(out["huge_integer"].dump(), "1.8446744073709552e+19");  // 2^64: a double only
  EXPECT_EQ(out["list"].dump(), "[1,1.5,-0.25,100000000000]");
  // The 429 body of the behaviour reference keeps its integers.
  const Json too_many =
      Json::parse(R"({"errors":[{"type":"RequestError","message":"Too many requests",)"
                  R"("data":{"remainingPoints":0,"msBeforeNext":57647,"consumedPoints":21}}]})");
  EXPECT_EQ(MessageToJson(Parse<v1::RequestErrorEnvelope>(too_many)).dump(), too_many.dump());
  // Value at the top level, and non-finite doubles (only from code) as null.
  EXPECT_EQ(MessageToJson(Parse<pb::Value>(Json(5))).dump(), "5");
  EXPECT_EQ(MessageToJson(Parse<pb::Value>(Json())), Json());
  pb::Value nan;
  nan.set_number_value(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(MessageToJson(nan), Json());
  EXPECT_EQ(MessageToJson(pb::Value()), Json());
  // A Struct at the top level.
  const Json object = {{"a", {1, "b", nullptr}}, {"c", {{"d", false}}}};
  EXPECT_EQ(MessageToJson(Parse<pb::Struct>(object)), object);
  EXPECT_EQ(ParseError<pb::Struct>(Json::array()).message(),
            "(root): expected an object, got an array");
}

TEST(TranslateJsonTest, BytesAreBase64) {
  EXPECT_EQ(Parse<pb::BytesValue>(Json{{"value", "aGVsbG8="}}).value(), "hello");
  EXPECT_EQ(Parse<pb::BytesValue>(Json{{"value", "aGVsbG8"}}).value(), "hello");
  EXPECT_EQ(Parse<pb::BytesValue>(Json{{"value", "_-8="}}).value(), "\xFF\xEF");
  pb::BytesValue bytes;
  bytes.set_value(std::string("\0\xFF\xEF", 3));
  EXPECT_EQ(MessageToJson(bytes), (Json{{"value", "AP/v"}}));
  EXPECT_EQ(ParseError<pb::BytesValue>(Json{{"value", "not base64!"}}).message(),
            "value: string is not valid base64");
}

TEST(TranslateJsonTest, InvalidUtf8InAMessageStillDumps) {
  v1::AudienceRunInfo run;
  run.set_id("a\xFFz");
  const Json out = MessageToJson(run);
  EXPECT_EQ(out["id"], "a\xEF\xBF\xBDz");
  EXPECT_NO_THROW(out.dump());
}

TEST(TranslateJsonTest, ClearsTheOutputFirst) {
  v1::AudienceDefinition def;
  def.set_target_entity("old");
  ASSERT_TRUE(JsonToMessage(Json{{"query", "q"}}, &def).ok());
  EXPECT_FALSE(def.has_target_entity());
  EXPECT_EQ(JsonToMessage(Json::object(), nullptr).code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// anyOf <-> oneof
// ---------------------------------------------------------------------------------------------

v1::AudiencePreviewResult::ResultCase ResultOf(const Json& j) {
  return Parse<v1::AudiencePreviewResult>(j).result_case();
}

TEST(TranslateOneofTest, PreviewResultPicksTheTightestFit) {
  using R = v1::AudiencePreviewResult;
  const Json entity = {{"id", "e"}, {"idProperty", "user_id"}, {"relationshipSlug", "accounts"}};
  EXPECT_EQ(ResultOf({{"id", "x"}}), R::kAccount);
  EXPECT_EQ(ResultOf({{"id", "x"}, {"entities", {{"accounts", {entity}}}}}), R::kProfile);
  EXPECT_EQ(ResultOf({{"id", "x"}, {"entities", Json::object()}}), R::kProfile);
  EXPECT_EQ(ResultOf({{"id", "x"},
                      {"idProperty", "p"},
                      {"relationshipSlug", "s"},
                      {"profilesTruncated", false}}),
            R::kEntity);
  EXPECT_EQ(ResultOf({{"id", "x"},
                      {"idProperty", "p"},
                      {"relationshipSlug", "s"},
                      {"profilesTruncated", true},
                      {"entities", {{"k", 1}}},
                      {"profiles", {{{"properties", {"a"}}}}}}),
            R::kEntity);
  // Nulls do not count; only unknown keys pick the first member. An empty object is what an
  // unset result writes, and reads back as unset (it picked the first member, so an unset
  // result did not survive a round trip: found by translate_fuzz).
  EXPECT_EQ(ResultOf({{"id", "x"}, {"entities", nullptr}}), R::kAccount);
  EXPECT_EQ(ResultOf(Json::object()), R::RESULT_NOT_SET);
  EXPECT_EQ(ResultOf({{"brandNew", 1}}), R::kProfile);
  // A key no member knows (an upstream addition) does not change the choice.
  EXPECT_EQ(ResultOf({{"id", "x"}, {"brandNew", 1}}), R::kAccount);
  // No candidate (required fields missing): the member knowing the most keys, read leniently.
  EXPECT_EQ(ResultOf({{"id", "x"}, {"idProperty", "p"}}), R::kEntity);
  const auto lenient =
      Parse<R>({{"id", "x"}, {"entities", {{"k", {entity}}}}, {"profiles", Json::array()}});
  EXPECT_EQ(lenient.result_case(), R::kEntity);
  EXPECT_EQ(lenient.entity().entities().fields().count("k"), 1u);

  // Output: the member's object itself.
  R account;
  account.mutable_account()->set_id("a1");
  EXPECT_EQ(MessageToJson(account), (Json{{"id", "a1"}}));
  EXPECT_EQ(MessageToJson(R()), Json::object());
}

TEST(TranslateOneofTest, ScheduleConfigIsInline) {
  const auto periodic = Parse<v1::AudienceSchedule>(
      {{"id", "sch"}, {"strategy", "PERIODIC"}, {"config", {{"interval", "1d"}}}});
  EXPECT_EQ(periodic.config_case(), v1::AudienceSchedule::kPeriodic);
  EXPECT_EQ(periodic.periodic().interval(), "1d");
  const Json specific = {{"id", "sch"},
                         {"strategy", "SPECIFIC_DAYS"},
                         {"config", {{"days", {0, 6}}, {"hours", {23}}, {"timezone", "UTC"}}}};
  const auto days = Parse<v1::AudienceSchedule>(specific);
  EXPECT_EQ(days.config_case(), v1::AudienceSchedule::kSpecificDays);
  EXPECT_EQ(MessageToJson(days), specific);
  // Without a timezone SpecificDaysConfig is no candidate, but still knows the most keys.
  EXPECT_EQ(Parse<v1::AddAudienceScheduleToAudienceAlphaInput>({{"config", {{"days", {1}}}}})
                .config_case(),
            v1::AddAudienceScheduleToAudienceAlphaInput::kSpecificDays);
  EXPECT_EQ(Parse<v1::AudienceSchedule>({{"config", Json::object()}}).config_case(),
            v1::AudienceSchedule::kPeriodic);
  // A member's own key is accepted too; output always uses the oneof's name.
  const auto by_member = Parse<v1::UpdateAudienceScheduleForAudienceAlphaInput>(
      {{"strategy", "PERIODIC"}, {"periodic", {{"interval", "4h"}}}});
  EXPECT_EQ(MessageToJson(by_member),
            (Json{{"strategy", "PERIODIC"}, {"config", {{"interval", "4h"}}}}));
  // Unset oneof: no key.
  EXPECT_EQ(MessageToJson(v1::AddAudienceScheduleToAudienceAlphaInput()), Json::object());
}

TEST(TranslateOneofTest, MapOfListsIsAnObjectOfArrays) {
  const Json doc = {{"id", "p"},
                    {"entities",
                     {{"accounts",
                       {{{"id", "a"}, {"idProperty", "i"}, {"relationshipSlug", "s"}},
                        {{"id", "b"},
                         {"idProperty", "i"},
                         {"relationshipSlug", "s"},
                         {"properties", {{"plan", "pro"}}}}}},
                      {"carts", Json::array()}}}};
  const auto profile = Parse<v1::AudiencePreviewProfileResult>(doc);
  EXPECT_EQ(profile.entities().at("accounts").items_size(), 2);
  EXPECT_EQ(profile.entities().at("carts").items_size(), 0);
  EXPECT_EQ(MessageToJson(profile), doc);
  // The list message alone is a bare array too.
  EXPECT_EQ(MessageToJson(profile.entities().at("accounts")), doc["entities"]["accounts"]);
  EXPECT_EQ(Parse<v1::EntityDetailsList>(Json::array({{{"id", "z"}}})).items(0).id(), "z");
  EXPECT_EQ(ParseError<v1::EntityDetailsList>({{"items", Json::array()}}).message(),
            "(root): expected an array, got an object");
  EXPECT_EQ(ParseError<v1::EntityDetailsList>(Json("x")).message(),
            "(root): expected an array, got a string");
}

// ---------------------------------------------------------------------------------------------
// Query parameters
// ---------------------------------------------------------------------------------------------

TEST(TranslateQueryTest, ListAudiences) {
  v1::ListAudiencesRequest req;
  req.set_space_id("9aQ1Lj62S4bomZKLF4DPqW");
  req.mutable_search()->set_type(v1::AUDIENCE_SEARCH_TYPE_NAME);
  req.mutable_search()->set_query("a b&c");
  req.mutable_pagination()->set_count(3);
  req.mutable_pagination()->set_cursor("Mw==");
  req.set_include("schedules");

  Params params;
  AppendQueryParams(req.pagination(), "pagination", &params);
  EXPECT_EQ(params, (Params{{"pagination.cursor", "Mw=="}, {"pagination.count", "3"}}));

  params.clear();
  AppendQueryParams(req, "", &params);
  EXPECT_EQ(params, (Params{{"spaceId", "9aQ1Lj62S4bomZKLF4DPqW"},
                            {"search.type", "NAME"},
                            {"search.query", "a b&c"},  // Not percent-encoded here.
                            {"pagination.cursor", "Mw=="},
                            {"pagination.count", "3"},
                            {"include", "schedules"}}));

  // Unset fields are skipped: no cursor, no search, no include.
  v1::ListAudiencesRequest first_page;
  first_page.mutable_pagination()->set_count(200);
  params.clear();
  AppendQueryParams(first_page, "", &params);
  EXPECT_EQ(params, (Params{{"pagination.count", "200"}}));
  params.clear();
  AppendQueryParams(v1::ListAudiencesRequest(), "", &params);
  EXPECT_TRUE(params.empty());
}

TEST(TranslateQueryTest, ListAudienceConsumersSort) {
  v1::ListAudienceConsumersFromSpaceAndAudienceRequest req;
  req.mutable_sort()->set_field(v1::AUDIENCE_CONSUMERS_SORT_FIELD_UPDATED_AT);
  req.mutable_sort()->set_direction(v1::SORT_DIRECTION_DESC);
  req.mutable_search()->set_type(v1::AUDIENCE_SEARCH_TYPE_DEFINITION);
  req.mutable_search()->set_query("q");
  req.mutable_pagination()->set_count(1000);
  Params params;
  AppendQueryParams(req.sort(), "sort", &params);
  EXPECT_EQ(params, (Params{{"sort.field", "UPDATED_AT"}, {"sort.direction", "DESC"}}));
  params.clear();
  AppendQueryParams(req, "", &params);
  EXPECT_EQ(params, (Params{{"pagination.count", "1000"},
                            {"search.type", "DEFINITION"},
                            {"search.query", "q"},
                            {"sort.field", "UPDATED_AT"},
                            {"sort.direction", "DESC"}}));
}

TEST(TranslateQueryTest, OtherShapes) {
  // Repeated scalars repeat the key; bools true/false; optional false is written.
  v1::AudienceOptions options;
  options.add_filter_by_external_ids("email");
  options.add_filter_by_external_ids("user_id");
  options.set_include_historical_data(false);
  options.set_backfill_event_data_days(-7);
  Params params;
  AppendQueryParams(options, "options", &params);
  EXPECT_EQ(params, (Params{{"options.includeHistoricalData", "false"},
                            {"options.filterByExternalIds", "email"},
                            {"options.filterByExternalIds", "user_id"},
                            {"options.backfillEventDataDays", "-7"}}));
  // Inline oneof under its name; maps as key.mapKey; Struct / Value as compact JSON.
  v1::AudienceSchedule schedule;
  schedule.mutable_specific_days()->add_days(1);
  schedule.mutable_specific_days()->add_days(5);
  schedule.mutable_specific_days()->set_timezone("Europe/Paris");
  params.clear();
  AppendQueryParams(schedule, "", &params);
  EXPECT_EQ(
      params,
      (Params{{"config.days", "1"}, {"config.days", "5"}, {"config.timezone", "Europe/Paris"}}));
  v1::Profile profile;
  (*profile.mutable_mapping())["a"] = "b";
  params.clear();
  AppendQueryParams(profile, "p", &params);
  EXPECT_EQ(params, (Params{{"p.mapping.a", "b"}}));
  v1::RequestError error;
  (*error.mutable_data()->mutable_struct_value()->mutable_fields())["n"].set_number_value(2);
  params.clear();
  AppendQueryParams(error, "", &params);
  EXPECT_EQ(params, (Params{{"data", R"({"n":2})"}}));
  // Repeated messages index the key; a wrapper flattens its member in place.
  v1::RequestErrorEnvelope envelope;
  envelope.add_errors()->set_type("a");
  envelope.add_errors()->set_type("b");
  v1::AudiencePreviewResult result;
  result.mutable_account()->set_id("acc");
  params.clear();
  AppendQueryParams(envelope, "", &params);
  AppendQueryParams(result, "result", &params);
  EXPECT_EQ(params,
            (Params{{"errors[0].type", "a"}, {"errors[1].type", "b"}, {"result.id", "acc"}}));
}

// ---------------------------------------------------------------------------------------------
// JSON text (JsonTextToMessage): what the DOM path gives, without building the DOM
// ---------------------------------------------------------------------------------------------

// Reads `text` both ways (parse + JsonToMessage, and JsonTextToMessage), expects the same status
// and message, and returns the status and (in *out) the message.
template <typename M>
absl::Status BothWays(const std::string& text, M* out = nullptr) {
  const Json j = Json::parse(text, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << text;
  M dom;
  const absl::Status status = JsonToMessage(j, &dom);
  M from_text;
  EXPECT_EQ(JsonTextToMessage(text, &from_text), status) << text;
  EXPECT_TRUE(Same(from_text, dom)) << text;
  if (out != nullptr) *out = from_text;
  return status;
}

TEST(TranslateTextTest, NotJsonIsASyntaxError) {
  const std::vector<std::string> texts = {
      "",
      "{",
      R"({"id": "a")",        // truncated
      R"({"id": "a"} x)",     // trailing bytes
      "{\"id\": \"a\xFF\"}",  // invalid UTF-8
      R"({"id": "\ud800"})",  // a lone surrogate
      R"({"id": 1e999})",     // overflows a double
      "[1,]",
      "{'id': 1}",
      R"({"id": 5, "x": })",                 // a syntax error after a type error
      "{\"id\": [" + std::string(5000, '[')  // deep, then truncated
  };
  for (const std::string& text : texts) {
    ASSERT_TRUE(Json::parse(text, nullptr, false).is_discarded()) << text;
    v1::AudienceRunInfo m;
    m.set_id("stale");
    TextError error = TextError::kNone;
    const absl::Status status = JsonTextToMessage(text, &m, &error);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(error, TextError::kSyntax) << text;
    EXPECT_TRUE(absl::StartsWith(status.message(), "not JSON: syntax error at byte ")) << status;
    EXPECT_EQ(m.ByteSizeLong(), 0u) << text;
  }
  v1::AudienceRunInfo m;
  EXPECT_EQ(JsonTextToMessage(R"({"id": "a"} x)", &m).message(),
            "not JSON: syntax error at byte 13 of 13");
}

// A document that is not an object (null, a number, a string, an array, a boolean) gives every
// message of the API the same answer both ways. (The fuzzer found `null` read differently.)
TEST(TranslateTextTest, ADocumentThatIsNotAnObjectAsInTheDom) {
  const pb::FileDescriptor* file = v1::GetAudienceRequest::descriptor()->file();
  for (int i = 0; i < file->message_type_count(); ++i) {
    const pb::Descriptor* desc = file->message_type(i);
    for (const char* text : {"null", "1", "\"s\"", "[]", "true"}) {
      SCOPED_TRACE(absl::StrCat(desc->full_name(), " from ", text));
      const pb::Message* prototype = pb::MessageFactory::generated_factory()->GetPrototype(desc);
      std::unique_ptr<pb::Message> dom(prototype->New());
      std::unique_ptr<pb::Message> from_text(prototype->New());
      const absl::Status status = JsonToMessage(Json::parse(text), dom.get());
      EXPECT_EQ(JsonTextToMessage(text, from_text.get()), status);
      EXPECT_TRUE(Same(*from_text, *dom));
      if (!status.ok()) continue;
      // And what was read writes back to a fixed point.
      const Json out = MessageToJson(*dom);
      std::unique_ptr<pb::Message> again(prototype->New());
      ASSERT_TRUE(JsonToMessage(out, again.get()).ok()) << out.dump();
      EXPECT_EQ(MessageToJson(*again), out) << out.dump();
    }
  }
}

TEST(TranslateTextTest, HostileDocumentsGiveTheDomErrors) {
  // Nesting far past kMaxDepth, in free-form data and in an unknown key (skipped: fine).
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  absl::Status status =
      BothWays<v1::RequestErrorEnvelope>(R"({"errors": [{"type": "t", "data": )" + deep + "}]}");
  EXPECT_TRUE(absl::StartsWith(status.message(), "errors[0].data[0][0]")) << status;
  EXPECT_TRUE(absl::EndsWith(status.message(), "]: JSON nested deeper than 64 levels")) << status;
  v1::RequestErrorEnvelope envelope;
  EXPECT_TRUE(
      BothWays(R"({"surprise": )" + deep + R"(, "errors": [{"type": "t"}]})", &envelope).ok());
  EXPECT_EQ(envelope.errors(0).type(), "t");
  EXPECT_FALSE(BothWays<pb::Value>(std::string(65, '[') + std::string(65, ']')).ok());
  EXPECT_TRUE(BothWays<pb::Value>(std::string(64, '[') + std::string(64, ']')).ok());
  // Numbers of any size.
  EXPECT_EQ(BothWays<v1::AudienceSize>(R"({"count": 123456789012345678901234567890})").message(),
            "count: 1.2345678901234568e+29 is out of range for int64");
  // Below int64: a double, which rounds to -2^63, which fits (as in the DOM).
  EXPECT_TRUE(BothWays<v1::AudienceSize>(R"({"count": -9223372036854775809})").ok());
  EXPECT_EQ(BothWays<v1::AudienceSize>(R"({"count": -9223372036854777856})").message(),
            "count: -9.223372036854778e+18 is out of range for int64");
  EXPECT_EQ(BothWays<v1::AudienceSize>(R"({"count": 1e-300})").message(),
            "count: expected an integer, got 1e-300");
  EXPECT_TRUE(
      BothWays<v1::AudienceSize>(R"({"count": -9223372036854775808, "uniqueCount": 1.0})").ok());
  EXPECT_EQ(BothWays<v1::AudienceOptions>(R"({"backfillEventDataDays": 2147483648})").message(),
            "backfillEventDataDays: 2147483648 is out of range for int32");
  // Types out of place, at every level.
  EXPECT_EQ(BothWays<v1::ListAudiencesResponse>(R"({"audiences": [{"id": "a"}, 5]})").message(),
            "audiences[1]: expected an object, got a number");
  EXPECT_EQ(BothWays<v1::ListAudiencesResponse>(R"({"audiences": [null]})").message(),
            "audiences[0]: expected an object, got null");
  EXPECT_EQ(BothWays<v1::ListAudiencesResponse>(R"({"audiences": {}})").message(),
            "audiences: expected an array, got an object");
  EXPECT_EQ(BothWays<v1::ListAudiencesResponse>("[]").message(),
            "(root): expected an object, got an array");
  EXPECT_EQ(BothWays<v1::ListAudiencesResponse>(R"("x")").message(),
            "(root): expected an object, got a string");
  EXPECT_TRUE(BothWays<v1::ListAudiencesResponse>("null").ok());
  EXPECT_EQ(BothWays<v1::EntityDetailsList>(R"([{"id": "a"}, [1]])").message(),
            "[1]: expected an object, got an array");
  // Long strings and many keys.
  v1::AudienceRunInfo run;
  EXPECT_TRUE(BothWays(R"({"id": ")" + std::string(1 << 20, 'x') + R"("})", &run).ok());
  EXPECT_EQ(run.id().size(), 1u << 20);
}

// RapidJSON's fast pass reads only what nlohmann reads the same way; everything else goes the
// nlohmann way, so the answer (error, byte, JSON path) is nlohmann's.
TEST(TranslateTextTest, TheFastPassLeavesToNlohmannWhatItCannotReadTheSameWay) {
  struct Case {
    std::string text;
    bool fast;  // whether the fast pass may read it
  };
  const std::vector<Case> cases = {
      // nlohmann refuses a lone low surrogate; RapidJSON 1.1 would let it through as bad UTF-8,
      // even in a key the message does not know.
      {R"({"surprise": "\udc00", "id": "a"})", false},
      {R"({"\udc00": 1, "id": "a"})", false},
      {R"({"surprise": "\ud83d\ude00", "id": "a\u00e9"})", true},  // a pair, and an escape
      {std::string("{\"id\": \"a\"}\0x", 13), false},              // RapidJSON reads NUL as the end
      {std::string("{\"id\": \"a\0b\"}", 13), false},
      {R"({"id": "a\u0000b"})", true},                       // an escaped NUL is text
      {"\xEF\xBB\xBF{\"id\": \"a\"}", false},                // a byte order mark
      {"{\"id\": \"a\xC0\xAF\"}", false},                    // overlong UTF-8
      {"{\"id\": \"a\xED\xA0\x80\"}", false},                // an encoded surrogate
      {"{\"id\": \"\xE2\x82\xAC\xF0\x9F\x98\x80\"}", true},  // valid multi-byte UTF-8
      {R"({"id": "a", "surprise": 1e400})", false},          // past a double
      {R"({"id": "a", "surprise": [1e-400, -0, -0.0, 18446744073709551616]})", true},
      {R"({"id": "a"} )", true},
      {R"({"id": "a"} x)", false},
      {R"({"id": "a", "id": "b"})", false},  // a duplicate: the frames redo
  };
  for (const Case& c : cases) {
    v1::AudienceRunInfo fast;
    EXPECT_EQ(internal::FastTextToMessage(c.text, nullptr, &fast), c.fast) << c.text;
    v1::AudienceRunInfo from_text;
    TextError error = TextError::kNone;
    const absl::Status status = JsonTextToMessage(c.text, &from_text, &error);
    const Json j = Json::parse(c.text, nullptr, false);
    if (j.is_discarded()) {
      EXPECT_EQ(error, TextError::kSyntax) << c.text;
      EXPECT_FALSE(c.fast) << c.text;
      continue;
    }
    v1::AudienceRunInfo dom;
    EXPECT_EQ(status, JsonToMessage(j, &dom)) << c.text;
    EXPECT_TRUE(Same(from_text, dom)) << c.text;
    if (c.fast) {
      EXPECT_TRUE(Same(fast, dom)) << c.text;
    }
  }
  // Numbers at the edges read as nlohmann reads them (signed only when negative; doubles
  // correctly rounded); a number the field cannot hold makes the frames redo.
  for (const std::string number :
       {"-0", "0", "-1", "4294967295", "4294967296", "-2147483649", "9223372036854775807",
        "-9223372036854775808", "18446744073709551615", "1.7976931348623157e308",
        "2.2250738585072011e-308", "4.9406564584124654e-324", "0.1", "1e23", "8.98846567431158e307",
        "123456789012345678901234567890", "1E2", "-1e-2"}) {
    const std::string text = R"({"count": )" + number + R"(, "uniqueCount": )" + number + "}";
    v1::AudienceSize fast;
    const bool read = internal::FastTextToMessage(text, nullptr, &fast);
    v1::AudienceSize dom;
    const absl::Status status = JsonToMessage(Json::parse(text), &dom);
    EXPECT_EQ(read, status.ok()) << text << ": " << status;
    if (read) {
      EXPECT_TRUE(Same(fast, dom)) << text;
    }
    v1::AudienceSize from_text;
    EXPECT_EQ(JsonTextToMessage(text, &from_text), status) << text;
    EXPECT_TRUE(Same(from_text, dom)) << text;
  }
  // Doubles, where a double field holds them exactly as nlohmann (strtod) read them.
  for (const std::string number :
       {"0.1", "1e23", "2.2250738585072011e-308", "4.9406564584124654e-324",
        "1.7976931348623157e308", "123456789012345678901234567890", "-0", "-0.0", "1e-400"}) {
    const std::string text = "[" + number + "]";
    pb::ListValue fast;
    ASSERT_TRUE(internal::FastTextToMessage(text, nullptr, &fast)) << text;
    pb::ListValue dom;
    ASSERT_TRUE(JsonToMessage(Json::parse(text), &dom).ok()) << text;
    ASSERT_EQ(fast.values_size(), 1);
    EXPECT_EQ(absl::bit_cast<uint64_t>(fast.values(0).number_value()),
              absl::bit_cast<uint64_t>(dom.values(0).number_value()))
        << text;
  }
}

TEST(TranslateTextTest, DuplicateKeysAndKeyOrderAsInTheDom) {
  // Of duplicate keys the last counts, null (absent) included.
  v1::UpdateAudienceForSpaceInput update;
  ASSERT_TRUE(
      BothWays(R"({"enabled": true, "name": "a", "enabled": null, "name": "b"})", &update).ok());
  EXPECT_FALSE(update.has_enabled());
  EXPECT_EQ(update.name(), "b");
  ASSERT_TRUE(BothWays(R"({"options": {"filterByExternalIds": ["a"]},
                           "options": {"includeHistoricalData": true}})",
                       &update)
                  .ok());
  EXPECT_EQ(update.options().filter_by_external_ids_size(), 0);
  EXPECT_TRUE(BothWays<v1::CreateAudienceInput>(R"({"enabled": "x", "enabled": true})").ok());
  v1::Profile profile;
  ASSERT_TRUE(BothWays(R"({"mapping": {"a": "x", "b": "y", "a": null}})", &profile).ok());
  EXPECT_EQ(profile.mapping().size(), 1u);
  // Two keys of one oneof: the DOM reads an object's keys in sorted order, the last read wins.
  v1::AudienceSchedule schedule;
  ASSERT_TRUE(BothWays(R"({"specificDays": {"days": [1], "timezone": "UTC"},
                           "config": {"interval": "1d"}})",
                       &schedule)
                  .ok());
  EXPECT_EQ(schedule.config_case(), v1::AudienceSchedule::kSpecificDays);
  // Of several errors, the one of the first key in sorted order is reported.
  EXPECT_EQ(BothWays<v1::CreateAudienceInput>(R"({"name": 5, "enabled": "x"})").message(),
            "enabled: expected a boolean, got a string");
}

TEST(TranslateTextTest, MemberOfAnEnvelope) {
  const auto read = [](const std::string& text, v1::GetAudienceResponse* m, TextError* error) {
    return JsonTextToMessage(text, "data", m, error);
  };
  v1::GetAudienceResponse m;
  TextError error = TextError::kSyntax;
  EXPECT_TRUE(
      read(R"({"errors": [{"x": [1]}], "data": {"audience": {"id": "a"}}, "z": 1})", &m, &error)
          .ok());
  EXPECT_EQ(error, TextError::kNone);
  EXPECT_EQ(m.audience().id(), "a");
  // A missing or null member: an empty message.
  EXPECT_TRUE(read(R"({"errors": []})", &m, &error).ok());
  EXPECT_FALSE(m.has_audience());
  EXPECT_TRUE(read(R"({"data": null})", &m, &error).ok());
  EXPECT_FALSE(m.has_audience());
  // The last of duplicate members counts.
  EXPECT_TRUE(
      read(R"({"data": {"audience": {"id": "a"}}, "data": {"audience": {"id": "b"}}})", &m, &error)
          .ok());
  EXPECT_EQ(m.audience().id(), "b");
  // Each kind of error.
  for (const std::string text : {"[1]", "null", "5", R"("data")"}) {
    EXPECT_EQ(read(text, &m, &error).code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(error, TextError::kNotAnObject) << text;
  }
  EXPECT_EQ(read(R"({"data": {"audience": {"enabled": "x"}}})", &m, &error).message(),
            "audience.enabled: expected a boolean, got a string");
  EXPECT_EQ(error, TextError::kModel);
  EXPECT_EQ(read(R"({"data": []})", &m, &error).message(),
            "(root): expected an object, got an array");
  EXPECT_EQ(error, TextError::kModel);
  EXPECT_FALSE(read(R"({"data": {"audience": {"enabled": "x"}}, )", &m, &error).ok());
  EXPECT_EQ(error, TextError::kSyntax);
  EXPECT_EQ(m.ByteSizeLong(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Robustness and concurrency
// ---------------------------------------------------------------------------------------------

// Random JSON of every kind, biased towards the keys the messages use.
Json RandomJson(std::mt19937_64& rng, int depth, const std::vector<std::string>& keys) {
  std::uniform_int_distribution<int> kind(0, depth > 6 ? 6 : 8);
  switch (kind(rng)) {
    case 0:
      return Json();
    case 1:
      return std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    case 2:
      return static_cast<int64_t>(rng());
    case 3:
      return rng();  // uint64
    case 4:
      return std::uniform_real_distribution<double>(-1e20, 1e20)(rng);
    case 5: {
      static const char* const kStrings[] = {"LINKED",   "PERIODIC",           "", "x", "12", "NaN",
                                             "aGVsbG8=", "9223372036854775808"};
      return kStrings[rng() % 8];
    }
    case 6:
      return keys[rng() % keys.size()];
    case 7: {
      Json a = Json::array();
      const int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) a.push_back(RandomJson(rng, depth + 1, keys));
      return a;
    }
    default: {
      Json o = Json::object();
      const int n = static_cast<int>(rng() % 6);
      for (int i = 0; i < n; ++i) o[keys[rng() % keys.size()]] = RandomJson(rng, depth + 1, keys);
      return o;
    }
  }
}

TEST(TranslateRobustnessTest, RandomDocumentsNeverCrash) {
  const pb::FileDescriptor* file = v1::AudiencePreviewResult::descriptor()->file();
  std::vector<std::string> keys;
  for (int m = 0; m < file->message_type_count(); ++m) {
    const pb::Descriptor* d = file->message_type(m);
    for (int i = 0; i < d->field_count(); ++i) keys.push_back(d->field(i)->json_name());
    for (int i = 0; i < d->real_oneof_decl_count(); ++i) {
      keys.push_back(LowerCamel(d->oneof_decl(i)->name()));
    }
  }
  std::mt19937_64 rng(20240601);
  int ok = 0;
  int invalid = 0;
  for (int round = 0; round < 40; ++round) {
    for (int m = 0; m < file->message_type_count(); ++m) {
      const pb::Descriptor* d = file->message_type(m);
      std::unique_ptr<pb::Message> msg = NewMessage(d);
      const Json doc = RandomJson(rng, 0, keys);
      const absl::Status status = JsonToMessage(doc, msg.get());
      if (status.ok()) {
        ++ok;
        // Whatever was read writes and re-reads; after one more pass the JSON is a fixed point
        // (not at once: an unset wrapper writes {}, which reads back as its first member).
        Json out = MessageToJson(*msg);
        for (int pass = 0; pass < 2; ++pass) {
          std::unique_ptr<pb::Message> again = NewMessage(d);
          ASSERT_TRUE(JsonToMessage(out, again.get()).ok()) << d->name() << " " << out.dump();
          const Json next = MessageToJson(*again);
          if (pass == 1) {
            EXPECT_EQ(next, out) << d->name() << " " << doc.dump();
          }
          out = next;
        }
        Params params;
        AppendQueryParams(*msg, "q", &params);
      } else {
        ++invalid;
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      }
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(invalid, 0);
}

TEST(TranslateRobustnessTest, ConcurrentTranslationsAgree) {
  DocGenerator generator(/*required_only=*/false);
  const Json doc = generator.Model("GetAudiencePreviewBetaOutput", 0);
  const Json list = generator.Model("ListAudiencesBetaOutput", 2);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        v1::GetAudiencePreviewResponse preview;
        v1::ListAudiencesResponse audiences;
        if (!JsonToMessage(doc, &preview).ok() || MessageToJson(preview) != doc) ++failures;
        if (!JsonToMessage(list, &audiences).ok() || MessageToJson(audiences) != list) {
          ++failures;
        }
        if (RestToEnum(v1::AudienceType_descriptor(), "ACCOUNTS") != 1) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace sag::translate
