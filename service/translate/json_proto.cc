#include "service/translate/json_proto.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace sag::translate {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;
using Json = nlohmann::json;
using QueryParams = std::vector<std::pair<std::string, std::string>>;

#define SAG_RETURN_IF_ERROR(expr)              \
  do {                                         \
    absl::Status sag_status_ = (expr);         \
    if (!sag_status_.ok()) return sag_status_; \
  } while (0)

// 2^63 and 2^64 as doubles: the exclusive upper bounds of int64 and uint64.
constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kTwo64 = 18446744073709551616.0;

// Field numbers of google.protobuf.Value's `kind` members, Struct.fields and ListValue.values.
constexpr int kValueNull = 1;
constexpr int kValueNumber = 2;
constexpr int kValueString = 3;
constexpr int kValueBool = 4;
constexpr int kValueStruct = 5;
constexpr int kValueList = 6;
constexpr int kStructFields = 1;
constexpr int kListValues = 1;

// ---------------------------------------------------------------------------------------------
// Names and UTF-8
// ---------------------------------------------------------------------------------------------

// "AudienceType" -> "AUDIENCE_TYPE", "HTTPStatus" -> "HTTP_STATUS".
std::string ToUpperSnake(absl::string_view name) {
  std::string out;
  out.reserve(name.size() + 4);
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (i > 0 && absl::ascii_isupper(static_cast<unsigned char>(c))) {
      const unsigned char prev = static_cast<unsigned char>(name[i - 1]);
      const bool next_lower =
          i + 1 < name.size() && absl::ascii_islower(static_cast<unsigned char>(name[i + 1]));
      if (absl::ascii_islower(prev) || absl::ascii_isdigit(prev) ||
          (absl::ascii_isupper(prev) && next_lower)) {
        out.push_back('_');
      }
    }
    out.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

// "specific_days" -> "specificDays" (protobuf's json_name algorithm).
std::string ToLowerCamel(absl::string_view name) {
  std::string out;
  out.reserve(name.size());
  bool capitalize = false;
  for (const char c : name) {
    if (c == '_') {
      capitalize = true;
      continue;
    }
    out.push_back(capitalize ? absl::ascii_toupper(static_cast<unsigned char>(c)) : c);
    capitalize = false;
  }
  return out;
}

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when it is not one (overlong
// forms, surrogates and code points above U+10FFFF are not well formed).
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  uint32_t min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (len > s.size() - i) return 0;
  for (size_t k = 1; k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// `s` with every byte that does not start a well-formed sequence replaced by U+FFFD.
std::string SanitizeUtf8(absl::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(s.data() + i, len);
      i += len;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Per-descriptor facts, computed once and cached
// ---------------------------------------------------------------------------------------------

struct EnumInfo {
  explicit EnumInfo(const EnumDescriptor* e) : prefix(ToUpperSnake(e->name()) + "_") {
    rest_by_index.reserve(e->value_count());
    for (int i = 0; i < e->value_count(); ++i) {
      const EnumValueDescriptor* v = e->value(i);
      std::string rest = RestOf(v->name());
      if (v->number() == 0 || rest.empty()) {
        rest_by_index.emplace_back();
        continue;
      }
      number_by_rest.try_emplace(rest, v->number());  // The first of aliases wins.
      rest_by_index.push_back(std::move(rest));
    }
  }

  std::string RestOf(absl::string_view name) const {
    return std::string(absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name);
  }

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
  const FieldDescriptor* field = nullptr;
  const OneofDescriptor* oneof = nullptr;
};

struct MessageInfo {
  explicit MessageInfo(const Descriptor* d) {
    switch (d->well_known_type()) {
      case Descriptor::WELLKNOWNTYPE_STRUCT:
        shape = Shape::kStruct;
        break;
      case Descriptor::WELLKNOWNTYPE_VALUE:
        shape = Shape::kValue;
        break;
      case Descriptor::WELLKNOWNTYPE_LISTVALUE:
        shape = Shape::kListValue;
        break;
      default:
        break;
    }
    knows_any_key = shape == Shape::kStruct || shape == Shape::kValue;

    // Inline oneofs: real oneofs whose members are all messages.
    inline_oneof_names.resize(d->real_oneof_decl_count());
    for (int i = 0; i < d->real_oneof_decl_count(); ++i) {
      const OneofDescriptor* o = d->oneof_decl(i);
      bool all_messages = o->field_count() > 0;
      for (int k = 0; k < o->field_count(); ++k) {
        all_messages &= o->field(k)->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
      }
      if (all_messages) inline_oneof_names[i] = ToLowerCamel(o->name());
    }

    if (shape == Shape::kObject && d->field_count() > 0 && d->real_oneof_decl_count() == 1 &&
        d->oneof_decl(0)->field_count() == d->field_count() && !inline_oneof_names[0].empty()) {
      shape = Shape::kWrapper;
      wrapper_oneof = d->oneof_decl(0);
    }
    if (shape == Shape::kObject && d->field_count() == 1 && d->field(0)->is_repeated() &&
        !d->field(0)->is_map() && d->field(0)->name() == "items") {
      shape = Shape::kList;
      items = d->field(0);
    }

    inline_name_by_field.resize(d->field_count());
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      keys.try_emplace(f->json_name(), KeyTarget{f, nullptr});
      const OneofDescriptor* o = f->real_containing_oneof();
      if (o != nullptr && !inline_oneof_names[o->index()].empty()) {
        inline_name_by_field[i] = inline_oneof_names[o->index()];
      } else {
        ++key_count;
      }
      if (!f->has_presence() && !f->is_repeated()) required.push_back(f);
    }
    for (int i = 0; i < d->real_oneof_decl_count(); ++i) {
      if (inline_oneof_names[i].empty()) continue;
      ++key_count;
      // A field named like the oneof keeps the key (the .proto should not do that).
      keys.try_emplace(inline_oneof_names[i], KeyTarget{nullptr, d->oneof_decl(i)});
    }
    if (knows_any_key) key_count = std::numeric_limits<size_t>::max();
  }

  bool Knows(absl::string_view key) const { return knows_any_key || keys.contains(key); }

  Shape shape = Shape::kObject;
  // By oneof index: the JSON key of an inline oneof, "" for other oneofs. Never resized after
  // construction: `keys` and `inline_name_by_field` point into it.
  std::vector<std::string> inline_oneof_names;
  // By field index: the inline oneof's JSON key of a member, "" for other fields.
  std::vector<absl::string_view> inline_name_by_field;
  absl::flat_hash_map<absl::string_view, KeyTarget> keys;
  std::vector<const FieldDescriptor*> required;    // rule 3c
  size_t key_count = 0;                            // distinct JSON keys written (rule 3c)
  bool knows_any_key = false;                      // Struct / Value: any key fits
  const OneofDescriptor* wrapper_oneof = nullptr;  // kWrapper
  const FieldDescriptor* items = nullptr;          // kList
};

// Thread-safe cache: a process-wide map behind a mutex, fronted by a per-thread map so that
// steady-state lookups take no lock and share no cache line. Infos are never freed.
template <typename D, typename Info>
const Info& CachedInfo(const D* d) {
  thread_local absl::flat_hash_map<const D*, const Info*> local;
  if (auto it = local.find(d); it != local.end()) return *it->second;

  struct Global {
    absl::Mutex mu;
    absl::flat_hash_map<const D*, std::unique_ptr<const Info>> infos ABSL_GUARDED_BY(mu);
  };
  static Global* const global = new Global;
  const Info* info = nullptr;
  {
    absl::ReaderMutexLock lock(&global->mu);
    if (auto it = global->infos.find(d); it != global->infos.end()) info = it->second.get();
  }
  if (info == nullptr) {
    auto built = std::make_unique<const Info>(d);  // Built outside the lock.
    absl::MutexLock lock(&global->mu);
    info = global->infos.try_emplace(d, std::move(built)).first->second.get();
  }
  local.emplace(d, info);
  return *info;
}

const MessageInfo& InfoOf(const Descriptor* d) { return CachedInfo<Descriptor, MessageInfo>(d); }
const EnumInfo& InfoOf(const EnumDescriptor* e) { return CachedInfo<EnumDescriptor, EnumInfo>(e); }

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

// The JSON path of the value being read, as a chain of stack frames; rendered only on error.
struct Path {
  const Path* parent;
  absl::string_view key;  // when !is_index
  size_t index;           // when is_index
  bool is_index;
};

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

const char* TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "a number";
    case Json::value_t::binary:
      return "binary data";
    case Json::value_t::discarded:
      return "a discarded value";
  }
  return "an unknown value";
}

absl::Status TypeError(const Path* path, absl::string_view expected, const Json& got) {
  return Error(path, absl::StrCat("expected ", expected, ", got ", TypeName(got)));
}

absl::Status DepthError(const Path* path) {
  return Error(path, absl::StrCat("JSON nested deeper than ", kMaxDepth, " levels"));
}

absl::Status RangeError(const Path* path, const Json& v, const FieldDescriptor* f) {
  return Error(path, absl::StrCat(v.is_string() ? v.get_ref<const std::string&>() : v.dump(),
                                  " is out of range for ", f->type_name()));
}

// ---------------------------------------------------------------------------------------------
// JSON -> message
// ---------------------------------------------------------------------------------------------

bool IsContainer(const Json& j) { return j.is_object() || j.is_array(); }

absl::Status ReadMessage(const Json& j, Message* m, const Path* path, int depth);

// A JSON integer (or integral float; or decimal string when allow_string) in [min, max].
absl::Status ReadSigned(const Json& v, const FieldDescriptor* f, int64_t min, int64_t max,
                        bool allow_string, const Path* path, int64_t* out) {
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(max)) return RangeError(path, v, f);
    x = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d)) return Error(path, "expected an integer, got a non-finite number");
    if (d != std::trunc(d)) return Error(path, absl::StrCat("expected an integer, got ", v.dump()));
    if (d < -kTwo63 || d >= kTwo63) return RangeError(path, v, f);
    x = static_cast<int64_t>(d);
  } else if (v.is_string() && allow_string) {
    if (!absl::SimpleAtoi(v.get_ref<const std::string&>(), &x)) {
      return Error(path, "expected an integer, got a string that does not hold one");
    }
  } else {
    return TypeError(path, "an integer", v);
  }
  if (x < min || x > max) return RangeError(path, v, f);
  *out = x;
  return absl::OkStatus();
}

absl::Status ReadUnsigned(const Json& v, const FieldDescriptor* f, uint64_t max, bool allow_string,
                          const Path* path, uint64_t* out) {
  uint64_t u = 0;
  if (v.is_number_unsigned()) {
    u = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) return RangeError(path, v, f);
    u = static_cast<uint64_t>(i);
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d)) return Error(path, "expected an integer, got a non-finite number");
    if (d != std::trunc(d)) return Error(path, absl::StrCat("expected an integer, got ", v.dump()));
    if (d < 0 || d >= kTwo64) return RangeError(path, v, f);
    u = static_cast<uint64_t>(d);
  } else if (v.is_string() && allow_string) {
    if (!absl::SimpleAtoi(v.get_ref<const std::string&>(), &u)) {
      return Error(path, "expected a non-negative integer, got a string that does not hold one");
    }
  } else {
    return TypeError(path, "an integer", v);
  }
  if (u > max) return RangeError(path, v, f);
  *out = u;
  return absl::OkStatus();
}

absl::Status ReadDouble(const Json& v, const Path* path, double* out) {
  if (v.is_number()) {
    *out = v.get<double>();
    return absl::OkStatus();
  }
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
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

absl::Status ReadString(const Json& v, const Path* path, const std::string** out) {
  if (!v.is_string()) return TypeError(path, "a string", v);
  const std::string& s = v.get_ref<const std::string&>();
  if (!IsValidUtf8(s)) return Error(path, "string is not valid UTF-8");
  *out = &s;
  return absl::OkStatus();
}

// Reads the scalar `v` into field `f` of `m` (appending when `f` is repeated).
absl::Status ReadScalar(const Json& v, const FieldDescriptor* f, Message* m, const Reflection* r,
                        const Path* path) {
  const bool add = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int64_t x;
      SAG_RETURN_IF_ERROR(ReadSigned(v, f, std::numeric_limits<int32_t>::min(),
                                     std::numeric_limits<int32_t>::max(), false, path, &x));
      add ? r->AddInt32(m, f, static_cast<int32_t>(x)) : r->SetInt32(m, f, static_cast<int32_t>(x));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t x;
      SAG_RETURN_IF_ERROR(ReadSigned(v, f, std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::max(), true, path, &x));
      add ? r->AddInt64(m, f, x) : r->SetInt64(m, f, x);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint64_t x;
      SAG_RETURN_IF_ERROR(
          ReadUnsigned(v, f, std::numeric_limits<uint32_t>::max(), false, path, &x));
      add ? r->AddUInt32(m, f, static_cast<uint32_t>(x))
          : r->SetUInt32(m, f, static_cast<uint32_t>(x));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t x;
      SAG_RETURN_IF_ERROR(ReadUnsigned(v, f, std::numeric_limits<uint64_t>::max(), true, path, &x));
      add ? r->AddUInt64(m, f, x) : r->SetUInt64(m, f, x);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double d;
      SAG_RETURN_IF_ERROR(ReadDouble(v, path, &d));
      add ? r->AddDouble(m, f, d) : r->SetDouble(m, f, d);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double d;
      SAG_RETURN_IF_ERROR(ReadDouble(v, path, &d));
      if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max()) {
        return RangeError(path, v, f);
      }
      add ? r->AddFloat(m, f, static_cast<float>(d)) : r->SetFloat(m, f, static_cast<float>(d));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      if (!v.is_boolean()) return TypeError(path, "a boolean", v);
      add ? r->AddBool(m, f, v.get<bool>()) : r->SetBool(m, f, v.get<bool>());
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      if (!v.is_string()) return TypeError(path, "a string", v);
      const std::string& s = v.get_ref<const std::string&>();
      const int number = RestToEnum(f->enum_type(), std::string_view(s));
      add ? r->AddEnumValue(m, f, number) : r->SetEnumValue(m, f, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        if (!v.is_string()) return TypeError(path, "a base64 string", v);
        const std::string& s = v.get_ref<const std::string&>();
        std::string bytes;
        if (!absl::Base64Unescape(s, &bytes) && !absl::WebSafeBase64Unescape(s, &bytes)) {
          return Error(path, "string is not valid base64");
        }
        add ? r->AddString(m, f, std::move(bytes)) : r->SetString(m, f, std::move(bytes));
        return absl::OkStatus();
      }
      const std::string* s;
      SAG_RETURN_IF_ERROR(ReadString(v, path, &s));
      add ? r->AddString(m, f, *s) : r->SetString(m, f, *s);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return absl::InternalError(absl::StrCat(Render(path), ": not a scalar field"));
}

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
      const std::string* s;
      SAG_RETURN_IF_ERROR(ReadString(j, path, &s));
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

// Reads the object `j` into the member of `oneof` that fits it (rules 3a-3c).
absl::Status ReadAnyOf(const Json& j, const OneofDescriptor* oneof, Message* m, const Path* path,
                       int depth) {
  if (!j.is_object()) return TypeError(path, "an object", j);
  if (depth > kMaxDepth) return DepthError(path);
  const FieldDescriptor* member = ChooseMember(j, oneof);
  if (member == nullptr) return absl::OkStatus();  // A oneof without message members.
  return ReadMessage(j, m->GetReflection()->MutableMessage(m, member), path, depth);
}

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
      if (!ReadScalar(Json(std::string(key)), f, entry, r, path).ok()) {
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
      SAG_RETURN_IF_ERROR(ReadScalar(value, value_field, entry, er, &child));
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
      SAG_RETURN_IF_ERROR(ReadScalar(j[i], f, m, r, &child));
    }
  }
  return absl::OkStatus();
}

// Reads the non-null value `v` of field `f` of `m`.
absl::Status ReadField(const Json& v, const FieldDescriptor* f, Message* m, const Reflection* r,
                       const Path* path, int depth) {
  if (f->is_map()) return ReadMap(v, f, m, r, path, depth);
  if (f->is_repeated()) return ReadRepeated(v, f, m, r, path, depth);
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    return ReadMessage(v, r->MutableMessage(m, f), path, depth);
  }
  return ReadScalar(v, f, m, r, path);
}

// Reads `j` (at nesting `depth`, 1 for the document) into `m` according to m's shape.
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

// ---------------------------------------------------------------------------------------------
// Message -> JSON
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Message -> query parameters
// ---------------------------------------------------------------------------------------------

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
                        WriteMessage(m, 1).dump(-1, ' ', false, Json::error_handler_t::replace));
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

absl::Status JsonToMessage(const nlohmann::json& json, google::protobuf::Message* out) {
  if (out == nullptr) return absl::InvalidArgumentError("JsonToMessage: null output message");
  out->Clear();
  if (json.is_null() && InfoOf(out->GetDescriptor()).shape != Shape::kValue) {
    return absl::OkStatus();
  }
  return ReadMessage(json, out, nullptr, 1);
}

nlohmann::json MessageToJson(const google::protobuf::Message& msg) { return WriteMessage(msg, 1); }

void AppendQueryParams(const google::protobuf::Message& msg, std::string_view prefix,
                       std::vector<std::pair<std::string, std::string>>* out) {
  if (out == nullptr) return;
  AppendMessage(msg, std::string(prefix), out, 1);
}

std::string EnumToRest(const google::protobuf::EnumValueDescriptor* v) {
  if (v == nullptr || v->number() == 0) return "";
  const EnumDescriptor* e = v->type();
  const EnumInfo& info = InfoOf(e);
  // Values made up by reflection for unknown numbers are not in the enum's value table.
  const int index = v->index();
  if (index >= 0 && index < e->value_count() && e->value(index) == v) {
    return info.rest_by_index[index];
  }
  return info.RestOf(v->name());
}

int RestToEnum(const google::protobuf::EnumDescriptor* e, std::string_view rest) {
  if (e == nullptr || rest.empty()) return 0;
  const EnumInfo& info = InfoOf(e);
  auto it = info.number_by_rest.find(absl::string_view(rest.data(), rest.size()));
  return it == info.number_by_rest.end() ? 0 : it->second;
}

}  // namespace sag::translate

#undef SAG_RETURN_IF_ERROR
