#include "service/translate/query_params.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "service/translate/descriptor_info.h"
#include "service/translate/json_writer.h"

namespace sag::translate {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using internal::InfoOf;
using internal::IsWritten;
using internal::MapKeyToString;
using internal::MessageInfo;
using internal::ScalarToJson;
using internal::Shape;
using Json = nlohmann::json;
using QueryParams = std::vector<std::pair<std::string, std::string>>;

std::string ScalarToQuery(const Message& m, const Reflection* r, const FieldDescriptor* f,
                          int index) {
  const Json v = ScalarToJson(m, r, f, index);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

bool IsDefaultScalar(const Message& m, const Reflection* r, const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return r->GetInt32(m, f) == 0;
    case FieldDescriptor::CPPTYPE_INT64:
      return r->GetInt64(m, f) == 0;
    case FieldDescriptor::CPPTYPE_UINT32:
      return r->GetUInt32(m, f) == 0;
    case FieldDescriptor::CPPTYPE_UINT64:
      return r->GetUInt64(m, f) == 0;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return r->GetDouble(m, f) == 0;
    case FieldDescriptor::CPPTYPE_FLOAT:
      return r->GetFloat(m, f) == 0;
    case FieldDescriptor::CPPTYPE_BOOL:
      return !r->GetBool(m, f);
    case FieldDescriptor::CPPTYPE_ENUM:
      return r->GetEnumValue(m, f) == 0;
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      return r->GetStringReference(m, f, &scratch).empty();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return false;
}

std::string JoinKey(absl::string_view prefix, absl::string_view name) {
  return prefix.empty() ? std::string(name) : absl::StrCat(prefix, ".", name);
}

void AppendMessage(const Message& m, const std::string& prefix, QueryParams* out, int depth);

void AppendField(const Message& m, const Reflection* r, const FieldDescriptor* f,
                 const std::string& key, QueryParams* out, int depth) {
  const bool message = f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  if (f->is_map()) {
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    const int n = r->FieldSize(m, f);
    for (int i = 0; i < n; ++i) {
      const Message& entry = r->GetRepeatedMessage(m, f, i);
      const Reflection* er = entry.GetReflection();
      const std::string entry_key = JoinKey(key, MapKeyToString(entry, er, key_field));
      if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        AppendMessage(er->GetMessage(entry, value_field), entry_key, out, depth + 1);
      } else {
        out->emplace_back(entry_key, ScalarToQuery(entry, er, value_field, -1));
      }
    }
  } else if (f->is_repeated()) {
    const int n = r->FieldSize(m, f);
    for (int i = 0; i < n; ++i) {
      if (message) {
        AppendMessage(r->GetRepeatedMessage(m, f, i), absl::StrCat(key, "[", i, "]"), out,
                      depth + 1);
      } else {
        out->emplace_back(key, ScalarToQuery(m, r, f, i));
      }
    }
  } else if (message) {
    AppendMessage(r->GetMessage(m, f), key, out, depth + 1);
  } else {
    out->emplace_back(key, ScalarToQuery(m, r, f, -1));
  }
}

void AppendMessage(const Message& m, const std::string& prefix, QueryParams* out, int depth) {
  if (depth > kMaxDepth) return;
  const MessageInfo& info = InfoOf(m.GetDescriptor());
  const Reflection* r = m.GetReflection();
  switch (info.shape) {
    case Shape::kStruct:
    case Shape::kValue:
    case Shape::kListValue:
      out->emplace_back(prefix,
                        MessageToJson(m).dump(-1, ' ', false, Json::error_handler_t::replace));
      return;
    case Shape::kList:
      AppendField(m, r, info.items, prefix, out, depth);
      return;
    case Shape::kWrapper: {
      const FieldDescriptor* member = r->GetOneofFieldDescriptor(m, info.wrapper_oneof);
      if (member != nullptr) AppendMessage(r->GetMessage(m, member), prefix, out, depth + 1);
      return;
    }
    case Shape::kObject:
      break;
  }
  const Descriptor* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (!IsWritten(m, r, f)) continue;
    if (!f->is_repeated() && !f->has_presence() && IsDefaultScalar(m, r, f)) continue;
    const absl::string_view inline_name = info.inline_name_by_field[i];
    AppendField(m, r, f, JoinKey(prefix, inline_name.empty() ? f->json_name() : inline_name), out,
                depth);
  }
}

}  // namespace

void AppendQueryParams(const google::protobuf::Message& msg, std::string_view prefix,
                       std::vector<std::pair<std::string, std::string>>* out) {
  if (out == nullptr) return;
  AppendMessage(msg, std::string(prefix), out, 1);
}

}  // namespace sag::translate
