#include "service/translate/json_reader.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/common/utf8.h"
#include "service/translate/descriptor_info.h"
#include "service/translate/json_reader_internal.h"

namespace sag::translate {
namespace internal {

struct Path {
  const Path* parent;
  absl::string_view key;  // when !is_index
  size_t index;           // when is_index
  bool is_index;
};

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;
using Json = nlohmann::json;

#define SAG_RETURN_IF_ERROR(expr)              \
  do {                                         \
    absl::Status sag_status_ = (expr);         \
    if (!sag_status_.ok()) return sag_status_; \
  } while (0)

Path Key(const Path* parent, absl::string_view key) { return Path{parent, key, 0, false}; }
Path Index(const Path* parent, size_t index) { return Path{parent, {}, index, true}; }

std::string Render(const Path* path) {
  std::vector<const Path*> nodes;
  for (const Path* p = path; p != nullptr; p = p->parent) nodes.push_back(p);
  if (nodes.empty()) return "(root)";
  std::string out;
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    if ((*it)->is_index) {
      absl::StrAppend(&out, "[", (*it)->index, "]");
    } else {
      absl::StrAppend(&out, out.empty() ? "" : ".", (*it)->key);
    }
  }
  return out;
}

absl::Status Error(const Path* path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Render(path), ": ", what));
}

const char* TypeName(const Scalar& v) {
  switch (v.kind) {
    case Scalar::Kind::kNull:
      return "null";
    case Scalar::Kind::kObject:
      return "an object";
    case Scalar::Kind::kArray:
      return "an array";
    case Scalar::Kind::kString:
      return "a string";
    case Scalar::Kind::kBool:
      return "a boolean";
    case Scalar::Kind::kInt:
    case Scalar::Kind::kUint:
    case Scalar::Kind::kDouble:
      return "a number";
    case Scalar::Kind::kBinary:
      return "binary data";
    case Scalar::Kind::kDiscarded:
      return "a discarded value";
  }
  return "an unknown value";
}

absl::Status TypeError(const Path* path, absl::string_view expected, const Scalar& got) {
  return Error(path, absl::StrCat("expected ", expected, ", got ", TypeName(got)));
}

absl::Status TypeError(const Path* path, absl::string_view expected, const Json& got) {
  return TypeError(path, expected, Scalar::Of(got));
}

absl::Status DepthError(const Path* path) {
  return Error(path, absl::StrCat("JSON nested deeper than ", kMaxDepth, " levels"));
}

absl::Status RangeError(const Path* path, const Scalar& v, const FieldDescriptor* f) {
  return Error(path, absl::StrCat(v.Text(), " is out of range for ", f->type_name()));
}

bool IsContainer(const Json& j) { return j.is_object() || j.is_array(); }

// A JSON integer (or integral float; or decimal string when allow_string) in [min, max].
absl::Status ReadSigned(const Scalar& v, const FieldDescriptor* f, int64_t min, int64_t max,
                        bool allow_string, const Path* path, int64_t* out) {
  int64_t x = 0;
  if (v.kind == Scalar::Kind::kUint) {
    if (v.n.u > static_cast<uint64_t>(max)) return RangeError(path, v, f);
    x = static_cast<int64_t>(v.n.u);
  } else if (v.kind == Scalar::Kind::kInt) {
    x = v.n.i;
  } else if (v.kind == Scalar::Kind::kDouble) {
    const double d = v.n.d;
    if (!std::isfinite(d)) return Error(path, "expected an integer, got a non-finite number");
    if (d != std::trunc(d)) return Error(path, absl::StrCat("expected an integer, got ", v.Text()));
    if (d < -kTwo63 || d >= kTwo63) return RangeError(path, v, f);
    x = static_cast<int64_t>(d);
  } else if (v.kind == Scalar::Kind::kString && allow_string) {
    if (!absl::SimpleAtoi(*v.s, &x)) {
      return Error(path, "expected an integer, got a string that does not hold one");
    }
  } else {
    return TypeError(path, "an integer", v);
  }
  if (x < min || x > max) return RangeError(path, v, f);
  *out = x;
  return absl::OkStatus();
}

absl::Status ReadUnsigned(const Scalar& v, const FieldDescriptor* f, uint64_t max,
                          bool allow_string, const Path* path, uint64_t* out) {
  uint64_t u = 0;
  if (v.kind == Scalar::Kind::kUint) {
    u = v.n.u;
  } else if (v.kind == Scalar::Kind::kInt) {
    if (v.n.i < 0) return RangeError(path, v, f);
    u = static_cast<uint64_t>(v.n.i);
  } else if (v.kind == Scalar::Kind::kDouble) {
    const double d = v.n.d;
    if (!std::isfinite(d)) return Error(path, "expected an integer, got a non-finite number");
    if (d != std::trunc(d)) return Error(path, absl::StrCat("expected an integer, got ", v.Text()));
    if (d < 0 || d >= kTwo64) return RangeError(path, v, f);
    u = static_cast<uint64_t>(d);
  } else if (v.kind == Scalar::Kind::kString && allow_string) {
    if (!absl::SimpleAtoi(*v.s, &u)) {
      return Error(path, "expected a non-negative integer, got a string that does not hold one");
    }
  } else {
    return TypeError(path, "an integer", v);
  }
  if (u > max) return RangeError(path, v, f);
  *out = u;
  return absl::OkStatus();
}

absl::Status ReadDouble(const Scalar& v, const Path* path, double* out) {
  if (v.is_number()) {
    *out = v.AsDouble();
    return absl::OkStatus();
  }
  if (v.kind == Scalar::Kind::kString) {
    const std::string& s = *v.s;
    if (s == "NaN") {
      *out = std::numeric_limits<double>::quiet_NaN();
      return absl::OkStatus();
    }
    if (s == "Infinity" || s == "-Infinity") {
      *out = s[0] == '-' ? -std::numeric_limits<double>::infinity()
                         : std::numeric_limits<double>::infinity();
      return absl::OkStatus();
    }
  }
  return TypeError(path, "a number", v);
}

absl::Status ReadString(const Scalar& v, const Path* path, const std::string** out) {
  if (v.kind != Scalar::Kind::kString) return TypeError(path, "a string", v);
  if (!IsValidUtf8(*v.s)) return Error(path, "string is not valid UTF-8");
  *out = v.s;
  return absl::OkStatus();
}

// Reads the integer `v` into the integer field `f` of `m` (appending when `f` is repeated).
absl::Status ReadInteger(const Scalar& v, const FieldDescriptor* f, Message* m, const Reflection* r,
                         const Path* path) {
  const bool add = f->is_repeated();
  int64_t x = 0;
  uint64_t u = 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      SAG_RETURN_IF_ERROR(ReadSigned(v, f, std::numeric_limits<int32_t>::min(),
                                     std::numeric_limits<int32_t>::max(), false, path, &x));
      add ? r->AddInt32(m, f, static_cast<int32_t>(x)) : r->SetInt32(m, f, static_cast<int32_t>(x));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      SAG_RETURN_IF_ERROR(ReadSigned(v, f, std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::max(), true, path, &x));
      add ? r->AddInt64(m, f, x) : r->SetInt64(m, f, x);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      SAG_RETURN_IF_ERROR(
          ReadUnsigned(v, f, std::numeric_limits<uint32_t>::max(), false, path, &u));
      add ? r->AddUInt32(m, f, static_cast<uint32_t>(u))
          : r->SetUInt32(m, f, static_cast<uint32_t>(u));
      break;
    default:  // CPPTYPE_UINT64
      SAG_RETURN_IF_ERROR(ReadUnsigned(v, f, std::numeric_limits<uint64_t>::max(), true, path, &u));
      add ? r->AddUInt64(m, f, u) : r->SetUInt64(m, f, u);
      break;
  }
  return absl::OkStatus();
}

// Reads the number `v` into the float or double field `f` of `m`.
absl::Status ReadFloating(const Scalar& v, const FieldDescriptor* f, Message* m,
                          const Reflection* r, const Path* path) {
  const bool add = f->is_repeated();
  double d = 0;
  SAG_RETURN_IF_ERROR(ReadDouble(v, path, &d));
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
    add ? r->AddDouble(m, f, d) : r->SetDouble(m, f, d);
    return absl::OkStatus();
  }
  if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max()) {
    return RangeError(path, v, f);
  }
  add ? r->AddFloat(m, f, static_cast<float>(d)) : r->SetFloat(m, f, static_cast<float>(d));
  return absl::OkStatus();
}

// Reads the string `v` into the string or bytes (base64) field `f` of `m`.
absl::Status ReadText(const Scalar& v, const FieldDescriptor* f, Message* m, const Reflection* r,
                      const Path* path) {
  const bool add = f->is_repeated();
  if (f->type() == FieldDescriptor::TYPE_BYTES) {
    if (v.kind != Scalar::Kind::kString) return TypeError(path, "a base64 string", v);
    std::string bytes;
    if (!absl::Base64Unescape(*v.s, &bytes) && !absl::WebSafeBase64Unescape(*v.s, &bytes)) {
      return Error(path, "string is not valid base64");
    }
    add ? r->AddString(m, f, std::move(bytes)) : r->SetString(m, f, std::move(bytes));
    return absl::OkStatus();
  }
  const std::string* s = nullptr;
  SAG_RETURN_IF_ERROR(ReadString(v, path, &s));
  add ? r->AddString(m, f, *s) : r->SetString(m, f, *s);
  return absl::OkStatus();
}

}  // namespace

Scalar Scalar::Of(const Json& j) {
  Scalar v;
  switch (j.type()) {
    case Json::value_t::null:
      break;
    case Json::value_t::boolean:
      v.kind = Kind::kBool;
      v.n.b = j.get<bool>();
      break;
    case Json::value_t::number_integer:
      v.kind = Kind::kInt;
      v.n.i = j.get<int64_t>();
      break;
    case Json::value_t::number_unsigned:
      v.kind = Kind::kUint;
      v.n.u = j.get<uint64_t>();
      break;
    case Json::value_t::number_float:
      v.kind = Kind::kDouble;
      v.n.d = j.get<double>();
      break;
    case Json::value_t::string:
      v.kind = Kind::kString;
      v.s = &j.get_ref<const std::string&>();
      break;
    case Json::value_t::object:
      v.kind = Kind::kObject;
      break;
    case Json::value_t::array:
      v.kind = Kind::kArray;
      break;
    case Json::value_t::binary:
      v.kind = Kind::kBinary;
      break;
    case Json::value_t::discarded:
      v.kind = Kind::kDiscarded;
      break;
  }
  return v;
}

double Scalar::AsDouble() const {
  switch (kind) {
    case Kind::kInt:
      return static_cast<double>(n.i);
    case Kind::kUint:
      return static_cast<double>(n.u);
    case Kind::kDouble:
      return n.d;
    default:
      return 0;
  }
}

std::string Scalar::Text() const {
  switch (kind) {
    case Kind::kString:
      return *s;
    case Kind::kInt:
      return Json(n.i).dump();
    case Kind::kUint:
      return Json(n.u).dump();
    case Kind::kDouble:
      return Json(n.d).dump();
    case Kind::kBool:
      return n.b ? "true" : "false";
    default:
      return TypeName(*this);
  }
}

absl::Status ReadScalar(const Scalar& v, const FieldDescriptor* f, Message* m, const Reflection* r,
                        const Path* path) {
  const bool add = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return ReadInteger(v, f, m, r, path);
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return ReadFloating(v, f, m, r, path);
    case FieldDescriptor::CPPTYPE_BOOL:
      if (v.kind != Scalar::Kind::kBool) return TypeError(path, "a boolean", v);
      add ? r->AddBool(m, f, v.n.b) : r->SetBool(m, f, v.n.b);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_ENUM: {
      if (v.kind != Scalar::Kind::kString) return TypeError(path, "a string", v);
      const int number = RestToEnum(f->enum_type(), std::string_view(*v.s));
      add ? r->AddEnumValue(m, f, number) : r->SetEnumValue(m, f, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING:
      return ReadText(v, f, m, r, path);
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return absl::InternalError(absl::StrCat(Render(path), ": not a scalar field"));
}

namespace {

absl::Status ReadValue(const Json& j, Message* m, const Path* path, int depth);

absl::Status ReadStruct(const Json& j, Message* m, const Path* path, int depth) {
  if (!j.is_object()) return TypeError(path, "an object", j);
  if (depth > kMaxDepth) return DepthError(path);
  const Reflection* r = m->GetReflection();
  const FieldDescriptor* fields = m->GetDescriptor()->FindFieldByNumber(kStructFields);
  for (const auto& [key, value] : j.items()) {
    const Path child = Key(path, key);
    if (!IsValidUtf8(key)) return Error(&child, "key is not valid UTF-8");
    Message* entry = r->AddMessage(m, fields);
    const Reflection* er = entry->GetReflection();
    const Descriptor* ed = entry->GetDescriptor();
    er->SetString(entry, ed->map_key(), key);
    SAG_RETURN_IF_ERROR(
        ReadValue(value, er->MutableMessage(entry, ed->map_value()), &child, depth + 1));
  }
  return absl::OkStatus();
}

absl::Status ReadListValue(const Json& j, Message* m, const Path* path, int depth) {
  if (!j.is_array()) return TypeError(path, "an array", j);
  if (depth > kMaxDepth) return DepthError(path);
  const Reflection* r = m->GetReflection();
  const FieldDescriptor* values = m->GetDescriptor()->FindFieldByNumber(kListValues);
  for (size_t i = 0; i < j.size(); ++i) {
    const Path child = Index(path, i);
    SAG_RETURN_IF_ERROR(ReadValue(j[i], r->AddMessage(m, values), &child, depth + 1));
  }
  return absl::OkStatus();
}

absl::Status ReadValue(const Json& j, Message* m, const Path* path, int depth) {
  const Reflection* r = m->GetReflection();
  const Descriptor* d = m->GetDescriptor();
  switch (j.type()) {
    case Json::value_t::null:
      r->SetEnumValue(m, d->FindFieldByNumber(kValueNull), 0);
      return absl::OkStatus();
    case Json::value_t::boolean:
      r->SetBool(m, d->FindFieldByNumber(kValueBool), j.get<bool>());
      return absl::OkStatus();
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      r->SetDouble(m, d->FindFieldByNumber(kValueNumber), j.get<double>());
      return absl::OkStatus();
    case Json::value_t::string: {
      const std::string* s = nullptr;
      SAG_RETURN_IF_ERROR(ReadString(Scalar::Of(j), path, &s));
      r->SetString(m, d->FindFieldByNumber(kValueString), *s);
      return absl::OkStatus();
    }
    case Json::value_t::object:
      return ReadStruct(j, r->MutableMessage(m, d->FindFieldByNumber(kValueStruct)), path, depth);
    case Json::value_t::array:
      return ReadListValue(j, r->MutableMessage(m, d->FindFieldByNumber(kValueList)), path, depth);
    case Json::value_t::binary:
    case Json::value_t::discarded:
      break;
  }
  return TypeError(path, "a JSON value", j);
}

// Rule 3c: the member of `oneof` (all messages) that explains the object `j` best.
const FieldDescriptor* ChooseMember(const Json& j, const OneofDescriptor* oneof) {
  absl::InlinedVector<std::pair<const FieldDescriptor*, const MessageInfo*>, 4> members;
  for (int i = 0; i < oneof->field_count(); ++i) {
    const FieldDescriptor* f = oneof->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      members.emplace_back(f, &InfoOf(f->message_type()));
    }
  }
  if (members.empty()) return nullptr;
  // The keys that discriminate: not null, and known to at least one member (a key no member
  // knows is an upstream addition and says nothing about the shape).
  absl::InlinedVector<absl::string_view, 16> keys;
  for (const auto& [key, value] : j.items()) {
    if (value.is_null()) continue;
    for (const auto& member : members) {
      if (member.second->Knows(key)) {
        keys.push_back(key);
        break;
      }
    }
  }
  if (keys.empty()) return members.front().first;

  const FieldDescriptor* best_fit = nullptr;
  size_t best_fit_keys = 0;
  const FieldDescriptor* most_matched = nullptr;
  size_t most_matched_keys = 0;
  for (const auto& [f, info] : members) {
    size_t matched = 0;
    for (const absl::string_view key : keys) matched += info->Knows(key) ? 1 : 0;
    bool required_present = true;
    for (const FieldDescriptor* req : info->required) {
      auto it = j.find(req->json_name());
      if (it == j.end() || it->is_null()) {
        required_present = false;
        break;
      }
    }
    if (matched == keys.size() && required_present &&
        (best_fit == nullptr || info->key_count < best_fit_keys)) {
      best_fit = f;
      best_fit_keys = info->key_count;
    }
    if (most_matched == nullptr || matched > most_matched_keys) {
      most_matched = f;
      most_matched_keys = matched;
    }
  }
  return best_fit != nullptr ? best_fit : most_matched;
}

}  // namespace

absl::Status ReadAnyOf(const Json& j, const OneofDescriptor* oneof, Message* m, const Path* path,
                       int depth) {
  if (!j.is_object()) return TypeError(path, "an object", j);
  if (depth > kMaxDepth) return DepthError(path);
  const FieldDescriptor* member = ChooseMember(j, oneof);
  if (member == nullptr) return absl::OkStatus();  // A oneof without message members.
  return ReadMessage(j, m->GetReflection()->MutableMessage(m, member), path, depth);
}

namespace {

absl::Status ReadMapKey(absl::string_view key, const FieldDescriptor* f, Message* entry,
                        const Reflection* r, const Path* path) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      if (!IsValidUtf8(key)) return Error(path, "key is not valid UTF-8");
      r->SetString(entry, f, std::string(key));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL:
      if (key != "true" && key != "false") return Error(path, "map key is not true or false");
      r->SetBool(entry, f, key == "true");
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      // The integer rules, applied to the key as a JSON string.
      if (const std::string text(key); !ReadScalar(Scalar::String(&text), f, entry, r, path).ok()) {
        return Error(path, absl::StrCat("map key is not a valid ", f->type_name()));
      }
      return absl::OkStatus();
    default:
      break;
  }
  return Error(path, "unsupported map key type");
}

absl::Status ReadMap(const Json& j, const FieldDescriptor* f, Message* m, const Reflection* r,
                     const Path* path, int depth) {
  if (!j.is_object()) return TypeError(path, "an object", j);
  if (depth > kMaxDepth) return DepthError(path);
  const FieldDescriptor* key_field = f->message_type()->map_key();
  const FieldDescriptor* value_field = f->message_type()->map_value();
  const bool message_value = value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  const bool null_is_value =
      message_value && InfoOf(value_field->message_type()).shape == Shape::kValue;
  for (const auto& [key, value] : j.items()) {
    if (value.is_null() && !null_is_value) continue;  // null == absent
    const Path child = Key(path, key);
    Message* entry = r->AddMessage(m, f);
    const Reflection* er = entry->GetReflection();
    SAG_RETURN_IF_ERROR(ReadMapKey(key, key_field, entry, er, &child));
    if (message_value) {
      SAG_RETURN_IF_ERROR(
          ReadMessage(value, er->MutableMessage(entry, value_field), &child, depth + 1));
    } else {
      SAG_RETURN_IF_ERROR(ReadScalar(Scalar::Of(value), value_field, entry, er, &child));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadRepeated(const Json& j, const FieldDescriptor* f, Message* m, const Reflection* r,
                          const Path* path, int depth) {
  if (!j.is_array()) return TypeError(path, "an array", j);
  if (depth > kMaxDepth) return DepthError(path);
  const bool message = f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  for (size_t i = 0; i < j.size(); ++i) {
    const Path child = Index(path, i);
    if (message) {
      SAG_RETURN_IF_ERROR(ReadMessage(j[i], r->AddMessage(m, f), &child, depth + 1));
    } else {
      SAG_RETURN_IF_ERROR(ReadScalar(Scalar::Of(j[i]), f, m, r, &child));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadField(const Json& v, const FieldDescriptor* f, Message* m, const Reflection* r,
                       const Path* path, int depth) {
  if (f->is_map()) return ReadMap(v, f, m, r, path, depth);
  if (f->is_repeated()) return ReadRepeated(v, f, m, r, path, depth);
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    return ReadMessage(v, r->MutableMessage(m, f), path, depth);
  }
  return ReadScalar(Scalar::Of(v), f, m, r, path);
}

absl::Status ReadMessage(const Json& j, Message* m, const Path* path, int depth) {
  if (IsContainer(j) && depth > kMaxDepth) return DepthError(path);
  const MessageInfo& info = InfoOf(m->GetDescriptor());
  switch (info.shape) {
    case Shape::kValue:
      return ReadValue(j, m, path, depth);
    case Shape::kStruct:
      return ReadStruct(j, m, path, depth);
    case Shape::kListValue:
      return ReadListValue(j, m, path, depth);
    case Shape::kWrapper:
      // {} is what an unset wrapper writes: it reads back as unset (json_proto.h, rule 3b).
      if (j.is_object() && j.empty()) return absl::OkStatus();
      // The member's object is the same JSON object; it counts as one more level so that a
      // wrapper whose member is a wrapper cannot recurse without bound.
      return ReadAnyOf(j, info.wrapper_oneof, m, path, depth + 1);
    case Shape::kList:
      return ReadRepeated(j, info.items, m, m->GetReflection(), path, depth);
    case Shape::kObject:
      break;
  }
  if (!j.is_object()) return TypeError(path, "an object", j);
  const Reflection* r = m->GetReflection();
  for (const auto& [key, value] : j.items()) {
    if (value.is_null()) continue;  // null == absent
    auto it = info.keys.find(key);
    if (it == info.keys.end()) continue;  // Unknown keys are ignored.
    const Path child = Key(path, key);
    if (it->second.oneof != nullptr) {
      SAG_RETURN_IF_ERROR(ReadAnyOf(value, it->second.oneof, m, &child, depth + 1));
    } else {
      SAG_RETURN_IF_ERROR(ReadField(value, it->second.field, m, r, &child, depth + 1));
    }
  }
  return absl::OkStatus();
}

}  // namespace internal

absl::Status JsonToMessage(const nlohmann::json& json, google::protobuf::Message* out) {
  if (out == nullptr) return absl::InvalidArgumentError("JsonToMessage: null output message");
  out->Clear();
  if (json.is_null() && internal::InfoOf(out->GetDescriptor()).shape != internal::Shape::kValue) {
    return absl::OkStatus();
  }
  return internal::ReadMessage(json, out, nullptr, 1);
}

}  // namespace sag::translate

#undef SAG_RETURN_IF_ERROR
