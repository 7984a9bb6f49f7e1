#include "audiencesctl/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace audiencesctl {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// Display width: code points (UTF-8 continuation bytes do not count).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string Sanitize(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) out.push_back(c < 0x20 || c == 0x7f ? ' ' : static_cast<char>(c));
  return out;
}

bool PlainSafe(const std::string& s) {
  if (s.empty() || s.size() > 200) return false;
  const unsigned char first = s.front();
  if (!(absl::ascii_isalpha(first) || first == '_' || first == '/')) return false;
  if (s.back() == ' ') return false;
  for (unsigned char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.' || c == '/' || c == ' ' ||
          c == '@' || c == '+')) {
      return false;
    }
  }
  static const char* kReserved[] = {"true", "false", "yes", "no", "on",
                                    "off",  "null",  "y",   "n",  "~"};
  const std::string lower = absl::AsciiStrToLower(s);
  for (const char* r : kReserved) {
    if (lower == r) return false;
  }
  return true;
}

std::string YamlScalar(const OrderedJson& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (PlainSafe(s)) return s;
    // A JSON string is a YAML double-quoted scalar, except that DEL, which JSON leaves raw, is
    // not printable in YAML.
    return absl::StrReplaceAll(
        OrderedJson(s).dump(-1, ' ', false, OrderedJson::error_handler_t::replace),
        {{"\x7f", "\\x7F"}});
  }
  if (v.is_null()) return "null";
  if (v.is_object()) return "{}";
  if (v.is_array()) return "[]";
  return v.dump();
}

bool IsLeaf(const OrderedJson& v) { return !((v.is_object() || v.is_array()) && !v.empty()); }

// Writes a non-empty object or array whose lines start at column `indent`.
void EmitBlock(const OrderedJson& v, int indent, std::string* out) {
  const std::string pad(indent, ' ');
  if (v.is_object()) {
    for (const auto& [key, item] : v.items()) {
      absl::StrAppend(out, pad, YamlScalar(OrderedJson(key)), ":");
      if (IsLeaf(item)) {
        absl::StrAppend(out, " ", YamlScalar(item), "\n");
      } else {
        out->push_back('\n');
        EmitBlock(item, indent + 2, out);
      }
    }
    return;
  }
  for (const OrderedJson& item : v) {
    if (IsLeaf(item)) {
      absl::StrAppend(out, pad, "- ", YamlScalar(item), "\n");
      continue;
    }
    // The item's block at indent+2, with its first line's indentation turned into "- ".
    std::string nested;
    EmitBlock(item, indent + 2, &nested);
    absl::StrAppend(out, pad, "- ", nested.substr(indent + 2));
  }
}

}  // namespace

namespace {

std::string ProtoJson(const google::protobuf::Message& message, bool defaults) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = defaults;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(message, &text, options);
  return text;
}

}  // namespace

OrderedJson ToOrderedJson(const google::protobuf::Message& message) {
  return OrderedJson::parse(ProtoJson(message, false), nullptr, false);
}

std::string ToJson(const google::protobuf::Message& message, bool defaults) {
  OrderedJson j = OrderedJson::parse(ProtoJson(message, defaults), nullptr, false);
  return j.dump(2, ' ', false, OrderedJson::error_handler_t::replace) + "\n";
}

Json ToJsonValue(const google::protobuf::Message& message) {
  return Json::parse(ProtoJson(message, true), nullptr, false);
}

std::string JsonToYaml(const OrderedJson& value) {
  if (IsLeaf(value)) return YamlScalar(value) + "\n";
  std::string out;
  EmitBlock(value, 0, &out);
  return out;
}

std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(headers.size(), 0);
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size() + 1);
  cells.push_back(headers);
  for (const auto& row : rows) {
    std::vector<std::string> clean;
    for (size_t i = 0; i < headers.size(); ++i) {
      clean.push_back(i < row.size() ? Sanitize(row[i]) : "");
    }
    cells.push_back(std::move(clean));
  }
  for (const auto& row : cells) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], Width(row[i]));
  }
  std::string out;
  for (const auto& row : cells) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - Width(row[i]) + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string RenderFields(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [label, value] : fields) {
    if (!value.empty()) width = std::max(width, Width(label) + 1);
  }
  std::string out;
  for (const auto& [label, value] : fields) {
    if (value.empty()) continue;
    std::string line = label + ":";
    line.append(width - Width(label + ":") + 2, ' ');
    absl::StrAppend(&out, line, Sanitize(value), "\n");
  }
  return out;
}

std::vector<std::string> IdsOf(const Json& response) {
  std::vector<std::string> ids;
  if (!response.is_object()) return ids;
  for (const auto& [key, value] : response.items()) {
    if (value.is_array()) {
      for (const Json& item : value) {
        if (item.is_object() && item.contains("id") && item["id"].is_string()) {
          ids.push_back(item["id"].get<std::string>());
        }
      }
    } else if (value.is_object() && value.contains("id") && value["id"].is_string()) {
      ids.push_back(value["id"].get<std::string>());
    }
  }
  return ids;
}

std::string Cell(const Json& value, const char* pointer) {
  const Json::json_pointer ptr(pointer);
  if (!value.contains(ptr)) return "";
  const Json& v = value.at(ptr);
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::vector<std::string> parts;
    for (const Json& item : v) {
      parts.push_back(item.is_string() ? item.get<std::string>() : item.dump());
    }
    return absl::StrJoin(parts, ",");
  }
  return v.dump();
}

std::string EnumCell(const Json& value, const char* pointer, const char* prefix) {
  std::string v = Cell(value, pointer);
  if (absl::EndsWith(v, "_UNSPECIFIED")) return "";
  if (absl::StartsWith(v, prefix)) v = v.substr(strlen(prefix));
  return v;
}

}  // namespace audiencesctl
