#include "service/translate/json_writer.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/common/utf8.h"
#include "service/translate/descriptor_info.h"

namespace sag::translate {
namespace internal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using Json = nlohmann::json;

// Rule 6 / 7: integral doubles as JSON integers. Non-finite: null in a Value, a string in a
// double field.
Json DoubleToJson(double d, bool in_value) {
  if (!std::isfinite(d)) {
    if (in_value) return Json();
    return Json(std::isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"));
  }
  if (d == std::trunc(d)) {
    if (d >= -kTwo63 && d < kTwo63) return Json(static_cast<int64_t>(d));
    if (d >= 0 && d < kTwo64) return Json(static_cast<uint64_t>(d));
  }
  return Json(d);
}

// A float as the double its shortest decimal form denotes (0.1f -> 0.1, not 0.100000001...).
Json FloatToJson(float f) {
  if (!std::isfinite(f)) return DoubleToJson(f, false);
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf) - 1, f);
  *result.ptr = '\0';
  return DoubleToJson(std::strtod(buf, nullptr), false);
}

std::string EnumNumberToRest(const EnumDescriptor* e, int number) {
  return EnumToRest(e->FindValueByNumber(number));
}

}  // namespace

// Field `f` of `m` (element `index` when `f` is repeated) as JSON.
Json ScalarToJson(const Message& m, const Reflection* r, const FieldDescriptor* f, int index) {
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return Json(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return Json(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return Json(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return Json(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return DoubleToJson(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f), false);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return FloatToJson(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return Json(rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f));
    case FieldDescriptor::CPPTYPE_ENUM:
      return Json(EnumNumberToRest(
          f->enum_type(), rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f)));
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      if (f->type() == FieldDescriptor::TYPE_BYTES) return Json(absl::Base64Escape(s));
      return Json(SanitizeUtf8(s));
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return Json();
}

std::string MapKeyToString(const Message& entry, const Reflection* r, const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      return SanitizeUtf8(r->GetStringReference(entry, f, &scratch));
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(entry, f) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(r->GetInt32(entry, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(r->GetInt64(entry, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(r->GetUInt32(entry, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(r->GetUInt64(entry, f));
    default:
      return "";
  }
}

// Whether field `f` of `m` is written / flattened at all (the presence rules).
bool IsWritten(const Message& m, const Reflection* r, const FieldDescriptor* f) {
  if (f->is_repeated()) return r->FieldSize(m, f) > 0;
  if (f->has_presence() && !r->HasField(m, f)) return false;
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
    // The zero value, and numbers the enum does not define, have no REST value.
    const int number = r->GetEnumValue(m, f);
    return number != 0 && f->enum_type()->FindValueByNumber(number) != nullptr;
  }
  return true;
}

namespace {

Json WriteMessage(const Message& m, int depth);

Json WriteValue(const Message& m, int depth);

Json WriteStruct(const Message& m, int depth) {
  if (depth > kMaxDepth) return Json();
  Json out = Json::object();
  const Reflection* r = m.GetReflection();
  const FieldDescriptor* fields = m.GetDescriptor()->FindFieldByNumber(kStructFields);
  const int n = r->FieldSize(m, fields);
  for (int i = 0; i < n; ++i) {
    const Message& entry = r->GetRepeatedMessage(m, fields, i);
    const Reflection* er = entry.GetReflection();
    const Descriptor* ed = entry.GetDescriptor();
    std::string scratch;
    out[SanitizeUtf8(er->GetStringReference(entry, ed->map_key(), &scratch))] =
        WriteValue(er->GetMessage(entry, ed->map_value()), depth + 1);
  }
  return out;
}

Json WriteListValue(const Message& m, int depth) {
  if (depth > kMaxDepth) return Json();
  Json out = Json::array();
  const Reflection* r = m.GetReflection();
  const FieldDescriptor* values = m.GetDescriptor()->FindFieldByNumber(kListValues);
  const int n = r->FieldSize(m, values);
  for (int i = 0; i < n; ++i) {
    out.push_back(WriteValue(r->GetRepeatedMessage(m, values, i), depth + 1));
  }
  return out;
}

Json WriteValue(const Message& m, int depth) {
  const Reflection* r = m.GetReflection();
  const Descriptor* d = m.GetDescriptor();
  const FieldDescriptor* kind =
      d->oneof_decl_count() > 0 ? r->GetOneofFieldDescriptor(m, d->oneof_decl(0)) : nullptr;
  if (kind == nullptr) return Json();
  switch (kind->number()) {
    case kValueNumber:
      return DoubleToJson(r->GetDouble(m, kind), true);
    case kValueString: {
      std::string scratch;
      return Json(SanitizeUtf8(r->GetStringReference(m, kind, &scratch)));
    }
    case kValueBool:
      return Json(r->GetBool(m, kind));
    case kValueStruct:
      return WriteStruct(r->GetMessage(m, kind), depth);
    case kValueList:
      return WriteListValue(r->GetMessage(m, kind), depth);
    default:
      return Json();  // kValueNull
  }
}

Json WriteMap(const Message& m, const Reflection* r, const FieldDescriptor* f, int depth) {
  if (depth > kMaxDepth) return Json();
  Json out = Json::object();
  const FieldDescriptor* key_field = f->message_type()->map_key();
  const FieldDescriptor* value_field = f->message_type()->map_value();
  const int n = r->FieldSize(m, f);
  for (int i = 0; i < n; ++i) {
    const Message& entry = r->GetRepeatedMessage(m, f, i);
    const Reflection* er = entry.GetReflection();
    out[MapKeyToString(entry, er, key_field)] =
        value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE
            ? WriteMessage(er->GetMessage(entry, value_field), depth + 1)
            : ScalarToJson(entry, er, value_field, -1);
  }
  return out;
}

Json WriteRepeated(const Message& m, const Reflection* r, const FieldDescriptor* f, int depth) {
  if (depth > kMaxDepth) return Json();
  Json out = Json::array();
  const int n = r->FieldSize(m, f);
  const bool message = f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  for (int i = 0; i < n; ++i) {
    out.push_back(message ? WriteMessage(r->GetRepeatedMessage(m, f, i), depth + 1)
                          : ScalarToJson(m, r, f, i));
  }
  return out;
}

Json WriteMessage(const Message& m, int depth) {
  const MessageInfo& info = InfoOf(m.GetDescriptor());
  if (info.shape == Shape::kValue) return WriteValue(m, depth);
  if (depth > kMaxDepth) return Json();
  const Reflection* r = m.GetReflection();
  switch (info.shape) {
    case Shape::kStruct:
      return WriteStruct(m, depth);
    case Shape::kListValue:
      return WriteListValue(m, depth);
    case Shape::kList:
      return WriteRepeated(m, r, info.items, depth);
    case Shape::kWrapper: {
      const FieldDescriptor* member = r->GetOneofFieldDescriptor(m, info.wrapper_oneof);
      if (member == nullptr) return Json::object();
      return WriteMessage(r->GetMessage(m, member), depth + 1);  // As in ReadMessage.
    }
    case Shape::kValue:
    case Shape::kObject:
      break;
  }
  Json out = Json::object();
  const Descriptor* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (!IsWritten(m, r, f)) continue;
    const absl::string_view inline_name = info.inline_name_by_field[i];
    const std::string key(inline_name.empty() ? absl::string_view(f->json_name()) : inline_name);
    if (f->is_map()) {
      out[key] = WriteMap(m, r, f, depth + 1);
    } else if (f->is_repeated()) {
      out[key] = WriteRepeated(m, r, f, depth + 1);
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      out[key] = WriteMessage(r->GetMessage(m, f), depth + 1);
    } else {
      out[key] = ScalarToJson(m, r, f, -1);
    }
  }
  return out;
}
}  // namespace
}  // namespace internal

nlohmann::json MessageToJson(const google::protobuf::Message& msg) {
  return internal::WriteMessage(msg, 1);
}

}  // namespace sag::translate
