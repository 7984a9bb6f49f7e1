#include "validation.h"

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace sim {
namespace {

using nlohmann::json;

constexpr int kMaxJsonDepth = 32;
constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

enum class Kind { kString, kBool, kInteger, kStringArray, kIntegerArray, kObject };

struct ObjectSpec;

// One field of a model.
struct FieldSpec {
  absl::string_view name;
  Kind kind = Kind::kString;
  bool required = false;
  int64_t min = 0;         // string: min code points; integer (or items): min value
  int64_t max = kNoMax;    // string: max code points; integer (or items): max value
  size_t min_items = 0;    // arrays
  bool non_blank = false;  // strings: not only whitespace
  std::vector<absl::string_view> enum_values;
  const ObjectSpec* object = nullptr;
};

struct ObjectSpec {
  std::vector<FieldSpec> fields;
};

FieldSpec Str(absl::string_view name, bool required, int64_t min_len, int64_t max_len,
              bool non_blank = false) {
  FieldSpec f;
  f.name = name;
  f.kind = Kind::kString;
  f.required = required;
  f.min = min_len;
  f.max = max_len;
  f.non_blank = non_blank;
  return f;
}

FieldSpec Enum(absl::string_view name, bool required, std::vector<absl::string_view> values) {
  FieldSpec f = Str(name, required, 0, kNoMax);
  f.enum_values = std::move(values);
  return f;
}

FieldSpec Bool(absl::string_view name, bool required) {
  FieldSpec f;
  f.name = name;
  f.kind = Kind::kBool;
  f.required = required;
  return f;
}

FieldSpec Int(absl::string_view name, bool required, int64_t min, int64_t max) {
  FieldSpec f;
  f.name = name;
  f.kind = Kind::kInteger;
  f.required = required;
  f.min = min;
  f.max = max;
  return f;
}

FieldSpec StrArray(absl::string_view name, bool required, int64_t item_min_len) {
  FieldSpec f = Str(name, required, item_min_len, 1024);
  f.kind = Kind::kStringArray;
  return f;
}

FieldSpec IntArray(absl::string_view name, bool required, int64_t min, int64_t max,
                   size_t min_items) {
  FieldSpec f = Int(name, required, min, max);
  f.kind = Kind::kIntegerArray;
  f.min_items = min_items;
  return f;
}

FieldSpec Obj(absl::string_view name, bool required, const ObjectSpec* spec) {
  FieldSpec f;
  f.name = name;
  f.kind = Kind::kObject;
  f.required = required;
  f.object = spec;
  return f;
}

const std::vector<absl::string_view>& AudienceTypes() {
  static const auto* const kTypes =
      new std::vector<absl::string_view>{"ACCOUNTS", "LINKED", "USERS"};
  return *kTypes;
}

// --- The models ----------------------------------------------------------------------------

const ObjectSpec& AudienceDefinitionSpec() {
  static const auto* const kSpec = new ObjectSpec{{
      Str("targetEntity", false, 1, 255, /*non_blank=*/true),
      Str("query", true, 1, 100000, /*non_blank=*/true),
  }};
  return *kSpec;
}

const ObjectSpec& AudienceDefinitionWithoutTargetEntitySpec() {
  static const auto* const kSpec = new ObjectSpec{{
      Str("query", true, 1, 100000, /*non_blank=*/true),
  }};
  return *kSpec;
}

const ObjectSpec& AudienceOptionsSpec() {
  static const auto* const kSpec = new ObjectSpec{{
      Bool("includeHistoricalData", false),
      StrArray("filterByExternalIds", false, 1),
      Int("backfillEventDataDays", false, 1, kMaxInt32),
  }};
  return *kSpec;
}

const ObjectSpec& CreateAudienceInputSpec() {
  static const auto* const kSpec = new ObjectSpec{{
      Str("name", true, 1, 255, /*non_blank=*/true),
      Bool("enabled", false),
      Str("description", false, 0, 10000),
      Obj("definition", true, &AudienceDefinitionSpec()),
      Enum("audienceType", true, AudienceTypes()),
      Obj("options", false, &AudienceOptionsSpec()),
  }};
  return *kSpec;
}

const ObjectSpec& UpdateAudienceForSpaceInputSpec() {
  static const auto* const kSpec = new ObjectSpec{{
      Bool("enabled", false),
      Str("name", false, 1, 255, /*non_blank=*/true),
      Str("description", false, 0, 10000),
      Obj("definition", false, &AudienceDefinitionWithoutTargetEntitySpec()),
      Obj("options", false, &AudienceOptionsSpec()),
  }};
  return *kSpec;
}

const ObjectSpec& CreateAudiencePreviewOptionsSpec() {
  static const auto* const kSpec = new ObjectSpec{{
      StrArray("filterByExternalIds", false, 1),
      Int("backfillEventDataDays", false, 1, kMaxInt32),
  }};
  return *kSpec;
}

const ObjectSpec& CreateAudiencePreviewBetaInputSpec() {
  static const auto* const kSpec = new ObjectSpec{{
      Obj("definition", true, &AudienceDefinitionSpec()),
      Enum("audienceType", true, AudienceTypes()),
      Obj("options", false, &CreateAudiencePreviewOptionsSpec()),
  }};
  return *kSpec;
}

const ObjectSpec& PeriodicConfigSpec() {
  static const auto* const kSpec = new ObjectSpec{{
      Enum("interval", true, PeriodicIntervals()),
  }};
  return *kSpec;
}

const ObjectSpec& SpecificDaysConfigSpec() {
  static const auto* const kSpec = new ObjectSpec{{
      IntArray("days", true, 0, 6, 1),
      IntArray("hours", true, 0, 23, 1),
      Str("timezone", true, 1, 255, /*non_blank=*/true),
  }};
  return *kSpec;
}

// --- The checker ---------------------------------------------------------------------------

void Add(FieldErrors* errors, std::string field, std::string message) {
  errors->push_back({std::move(field), std::move(message)});
}

const char* JsonTypeName(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

// Checks an integer JSON value against [min, max]; returns false (after adding an error) when
// it is not an integer or out of range.
bool CheckInteger(const json& v, int64_t min, int64_t max, const std::string& path,
                  absl::string_view what, FieldErrors* errors) {
  if (!v.is_number_integer()) {
    Add(errors, path, absl::StrCat(path, " ", what, " must be an integer, not ", JsonTypeName(v)));
    return false;
  }
  bool in_range;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    in_range = u <= static_cast<uint64_t>(max) && (min <= 0 || u >= static_cast<uint64_t>(min));
  } else {
    const int64_t i = v.get<int64_t>();
    in_range = i >= min && i <= max;
  }
  if (!in_range) {
    Add(errors, path,
        max == kNoMax || max == kMaxInt32
            ? absl::StrCat(path, " ", what, " must be at least ", min)
            : absl::StrCat(path, " ", what, " must be between ", min, " and ", max));
    return false;
  }
  return true;
}

void ValidateObject(const json& object, const ObjectSpec& spec, const std::string& prefix,
                    FieldErrors* errors);

void ValidateValue(const json& v, const FieldSpec& f, const std::string& path,
                   FieldErrors* errors) {
  switch (f.kind) {
    case Kind::kString: {
      if (!v.is_string()) {
        Add(errors, path, absl::StrCat(path, " must be a string, not ", JsonTypeName(v)));
        return;
      }
      const std::string& s = v.get_ref<const std::string&>();
      if (!f.enum_values.empty()) {
        if (std::find(f.enum_values.begin(), f.enum_values.end(), s) == f.enum_values.end()) {
          Add(errors, path,
              absl::StrCat(path, " must be one of ", absl::StrJoin(f.enum_values, ", ")));
        }
        return;
      }
      const int64_t len = static_cast<int64_t>(Utf8Length(s));
      if (len < f.min) {
        Add(errors, path,
            f.min == 1 ? absl::StrCat(path, " must not be empty")
                       : absl::StrCat(path, " must have at least ", f.min, " characters"));
      } else if (len > f.max) {
        Add(errors, path, absl::StrCat(path, " must have at most ", f.max, " characters"));
      } else if (f.non_blank && absl::StripAsciiWhitespace(s).empty()) {
        Add(errors, path, absl::StrCat(path, " must not be blank"));
      }
      return;
    }
    case Kind::kBool:
      if (!v.is_boolean()) {
        Add(errors, path, absl::StrCat(path, " must be a boolean, not ", JsonTypeName(v)));
      }
      return;
    case Kind::kInteger:
      CheckInteger(v, f.min, f.max, path, "", errors);
      return;
    case Kind::kStringArray: {
      if (!v.is_array()) {
        Add(errors, path,
            absl::StrCat(path, " must be an array of strings, not ", JsonTypeName(v)));
        return;
      }
      for (size_t i = 0; i < v.size(); ++i) {
        const json& item = v[i];
        if (!item.is_string()) {
          Add(errors, path,
              absl::StrCat(path, " item ", i, " must be a string, not ", JsonTypeName(item)));
          return;
        }
        const int64_t len = static_cast<int64_t>(Utf8Length(item.get_ref<const std::string&>()));
        if (len < f.min || len > f.max) {
          Add(errors, path,
              absl::StrCat(path, " item ", i, " must have ", f.min, " to ", f.max, " characters"));
          return;
        }
      }
      return;
    }
    case Kind::kIntegerArray: {
      if (!v.is_array()) {
        Add(errors, path,
            absl::StrCat(path, " must be an array of integers, not ", JsonTypeName(v)));
        return;
      }
      if (v.size() < f.min_items) {
        Add(errors, path, absl::StrCat(path, " must not be empty"));
        return;
      }
      for (size_t i = 0; i < v.size(); ++i) {
        if (!CheckInteger(v[i], f.min, f.max, path, absl::StrCat("item ", i), errors)) return;
      }
      return;
    }
    case Kind::kObject:
      if (!v.is_object()) {
        Add(errors, path, absl::StrCat(path, " must be an object, not ", JsonTypeName(v)));
        return;
      }
      ValidateObject(v, *f.object, path + ".", errors);
      return;
  }
}

void ValidateObject(const json& object, const ObjectSpec& spec, const std::string& prefix,
                    FieldErrors* errors) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    const bool known = std::any_of(spec.fields.begin(), spec.fields.end(),
                                   [&](const FieldSpec& f) { return f.name == it.key(); });
    if (!known) {
      Add(errors, prefix + it.key(), absl::StrCat("unknown field ", prefix, it.key()));
    }
  }
  for (const FieldSpec& f : spec.fields) {
    const std::string path = absl::StrCat(prefix, f.name);
    auto it = object.find(std::string(f.name));
    if (it == object.end()) {
      if (f.required) Add(errors, path, absl::StrCat(path, " is required"));
      continue;
    }
    ValidateValue(*it, f, path, errors);
  }
}

// includeHistoricalData must be true whenever backfillEventDataDays is given (AudienceOptions).
void CheckBackfillNeedsHistory(const json& body, FieldErrors* errors) {
  auto options = body.find("options");
  if (options == body.end() || !options->is_object()) return;
  auto backfill = options->find("backfillEventDataDays");
  if (backfill == options->end()) return;
  auto history = options->find("includeHistoricalData");
  if (history == options->end() || !history->is_boolean() || !history->get<bool>()) {
    Add(errors, "options.backfillEventDataDays",
        "options.backfillEventDataDays requires options.includeHistoricalData to be true");
  }
}

int JsonNestingDepth(absl::string_view text) {
  int depth = 0;
  int max_depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

bool LooksLikeTimeZone(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (absl::string_view part : absl::StrSplit(name, '/')) {
    if (part.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(part.front()))) {
      return false;
    }
    for (char c : part) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '+') {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

const std::vector<std::string>& DefaultExternalIds() {
  static const auto* const kIds =
      new std::vector<std::string>{"user_id", "email", "android.idfa", "ios.idfa"};
  return *kIds;
}

const std::vector<absl::string_view>& PeriodicIntervals() {
  static const auto* const kIntervals =
      new std::vector<absl::string_view>{"15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"};
  return *kIntervals;
}

std::optional<json> ParseJsonObject(absl::string_view body, FieldErrors* errors) {
  if (absl::StripAsciiWhitespace(body).empty()) {
    Add(errors, "", "a JSON object request body is required");
    return std::nullopt;
  }
  if (JsonNestingDepth(body) > kMaxJsonDepth) {
    Add(errors, "", absl::StrCat("request body nests deeper than ", kMaxJsonDepth, " levels"));
    return std::nullopt;
  }
  json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    Add(errors, "", "request body is not valid JSON");
    return std::nullopt;
  }
  if (!parsed.is_object()) {
    Add(errors, "", absl::StrCat("request body must be a JSON object, not ", JsonTypeName(parsed)));
    return std::nullopt;
  }
  return parsed;
}

void ValidateCreateAudienceInput(const json& body, FieldErrors* errors) {
  ValidateObject(body, CreateAudienceInputSpec(), "", errors);
  CheckBackfillNeedsHistory(body, errors);
}

void ValidateUpdateAudienceForSpaceInput(const json& body, FieldErrors* errors) {
  ValidateObject(body, UpdateAudienceForSpaceInputSpec(), "", errors);
  CheckBackfillNeedsHistory(body, errors);
}

void ValidateCreateAudiencePreviewBetaInput(const json& body, FieldErrors* errors) {
  ValidateObject(body, CreateAudiencePreviewBetaInputSpec(), "", errors);
}

void ValidateAudienceScheduleInput(const json& body, FieldErrors* errors) {
  static const auto* const kTop = new ObjectSpec{{
      Enum("strategy", true, {"PERIODIC", "SPECIFIC_DAYS"}),
  }};
  // "config" is checked by hand below (anyOf); only report unknown fields here.
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "strategy" && it.key() != "config") {
      Add(errors, it.key(), absl::StrCat("unknown field ", it.key()));
    }
  }
  json strategy_only = json::object();
  if (body.contains("strategy")) strategy_only["strategy"] = body["strategy"];
  ValidateObject(strategy_only, *kTop, "", errors);
  std::string strategy;
  if (body.contains("strategy") && body["strategy"].is_string()) {
    strategy = body["strategy"].get<std::string>();
    if (strategy != "PERIODIC" && strategy != "SPECIFIC_DAYS") strategy.clear();
  }

  auto config = body.find("config");
  if (config == body.end()) {
    Add(errors, "config", "config is required");
    return;
  }
  if (!config->is_object()) {
    Add(errors, "config", absl::StrCat("config must be an object, not ", JsonTypeName(*config)));
    return;
  }
  const bool periodic_keys = config->contains("interval");
  const bool specific_keys =
      config->contains("days") || config->contains("hours") || config->contains("timezone");
  constexpr absl::string_view kShapes =
      "a PeriodicConfig {\"interval\"} or a SpecificDaysConfig {\"days\", \"hours\", "
      "\"timezone\"}";
  if (periodic_keys && specific_keys) {
    Add(errors, "config", absl::StrCat("config must be exactly one of ", kShapes, ", not both"));
    return;
  }
  if (strategy == "PERIODIC" && specific_keys) {
    Add(errors, "config",
        "config does not match strategy PERIODIC: expected a PeriodicConfig {\"interval\"}");
    return;
  }
  if (strategy == "SPECIFIC_DAYS" && periodic_keys) {
    Add(errors, "config",
        "config does not match strategy SPECIFIC_DAYS: expected a SpecificDaysConfig "
        "{\"days\", \"hours\", \"timezone\"}");
    return;
  }
  std::string shape = strategy;
  if (shape.empty()) shape = periodic_keys ? "PERIODIC" : specific_keys ? "SPECIFIC_DAYS" : "";
  if (shape.empty()) {
    Add(errors, "config", absl::StrCat("config must be ", kShapes));
    return;
  }
  if (shape == "PERIODIC") {
    ValidateObject(*config, PeriodicConfigSpec(), "config.", errors);
    return;
  }
  const size_t before = errors->size();
  ValidateObject(*config, SpecificDaysConfigSpec(), "config.", errors);
  auto tz = config->find("timezone");
  if (errors->size() == before && tz != config->end() && tz->is_string() &&
      !IsValidTimeZone(tz->get<std::string>())) {
    Add(errors, "config.timezone",
        "config.timezone must be a TZ database time zone identifier, e.g. America/New_York");
  }
}

QueryParams ParseQuery(absl::string_view raw_query) {
  QueryParams params;
  for (absl::string_view piece : absl::StrSplit(raw_query, '&')) {
    if (piece.empty()) continue;
    const size_t eq = piece.find('=');
    const absl::string_view key = piece.substr(0, eq);
    const absl::string_view value =
        eq == absl::string_view::npos ? absl::string_view() : piece.substr(eq + 1);
    params.emplace_back(*PercentDecode(key, /*plus_is_space=*/true, /*strict=*/false),
                        *PercentDecode(value, /*plus_is_space=*/true, /*strict=*/false));
  }
  return params;
}

void CheckQueryNames(const QueryParams& query, const Operation& op, FieldErrors* errors) {
  std::vector<std::string> seen;
  for (const auto& [name, value] : query) {
    if (std::find(op.query_params.begin(), op.query_params.end(), name) == op.query_params.end()) {
      Add(errors, name,
          op.query_params.empty() ? absl::StrCat("unknown query parameter ", name, ": ", op.rpc,
                                                 " takes no query parameters")
                                  : absl::StrCat("unknown query parameter ", name, ": ", op.rpc,
                                                 " takes ", absl::StrJoin(op.query_params, ", ")));
      continue;
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      Add(errors, name, absl::StrCat("query parameter ", name, " is given more than once"));
      continue;
    }
    seen.push_back(name);
  }
}

namespace {

const std::string* FindParam(const QueryParams& query, absl::string_view name) {
  for (const auto& [key, value] : query) {
    if (key == name) return &value;
  }
  return nullptr;
}

}  // namespace

ListQuery ParseListQuery(const QueryParams& query, int64_t max_count, FieldErrors* errors) {
  ListQuery out;
  const std::string* count = FindParam(query, "pagination.count");
  const std::string* cursor = FindParam(query, "pagination.cursor");
  if (count != nullptr) {
    int64_t n = 0;
    const bool digits = !count->empty() && count->size() <= 12 &&
                        std::all_of(count->begin(), count->end(), absl::ascii_isdigit);
    if (!digits || !absl::SimpleAtoi(*count, &n) || n < 1 || n > max_count) {
      Add(errors, "pagination.count",
          absl::StrCat("pagination.count must be an integer between 1 and ", max_count));
    } else {
      out.count = n;
    }
  } else if (cursor != nullptr) {
    Add(errors, "pagination.count",
        "pagination.count is required when pagination is given (PaginationInput.count)");
  }
  if (cursor != nullptr) {
    std::optional<int64_t> offset = DecodeCursor(*cursor);
    if (!offset) {
      Add(errors, "pagination.cursor",
          "pagination.cursor is not a cursor returned by this API (use pagination.current, "
          "next or previous)");
    } else {
      out.offset = *offset;
    }
  }

  const std::string* search_type = FindParam(query, "search.type");
  const std::string* search_query = FindParam(query, "search.query");
  if (search_type != nullptr || search_query != nullptr) {
    SearchQuery search;
    bool ok = true;
    if (search_type == nullptr) {
      Add(errors, "search.type", "search.type is required when search is given");
      ok = false;
    } else if (*search_type != "NAME" && *search_type != "KEY" && *search_type != "DEFINITION") {
      Add(errors, "search.type", "search.type must be one of DEFINITION, KEY, NAME");
      ok = false;
    } else {
      search.type = *search_type;
    }
    if (search_query == nullptr) {
      Add(errors, "search.query", "search.query is required when search is given");
      ok = false;
    } else if (Utf8Length(*search_query) > 255) {
      Add(errors, "search.query", "search.query must have at most 255 characters");
      ok = false;
    } else {
      search.query = *search_query;
    }
    if (ok) out.search = std::move(search);
  }

  const std::string* sort_field = FindParam(query, "sort.field");
  const std::string* sort_direction = FindParam(query, "sort.direction");
  if (sort_field != nullptr || sort_direction != nullptr) {
    SortQuery sort;
    bool ok = true;
    if (sort_field == nullptr) {
      Add(errors, "sort.field", "sort.field is required when sort is given");
      ok = false;
    } else if (*sort_field != "CREATED_AT" && *sort_field != "NAME" &&
               *sort_field != "UPDATED_AT") {
      Add(errors, "sort.field", "sort.field must be one of CREATED_AT, NAME, UPDATED_AT");
      ok = false;
    } else {
      sort.field = *sort_field;
    }
    if (sort_direction == nullptr) {
      Add(errors, "sort.direction", "sort.direction is required when sort is given");
      ok = false;
    } else if (*sort_direction != "ASC" && *sort_direction != "DESC") {
      Add(errors, "sort.direction", "sort.direction must be one of ASC, DESC");
      ok = false;
    } else {
      sort.direction = *sort_direction;
    }
    if (ok) out.sort = std::move(sort);
  }

  out.include_schedules = ParseInclude(query, errors);
  return out;
}

bool ParseInclude(const QueryParams& query, FieldErrors* errors) {
  const std::string* include = FindParam(query, "include");
  if (include == nullptr) return false;
  if (*include != "schedules") {
    Add(errors, "include", "include supports only the value schedules");
    return false;
  }
  return true;
}

std::string EncodeCursor(int64_t offset) { return absl::Base64Escape(absl::StrCat(offset)); }

std::optional<int64_t> DecodeCursor(absl::string_view cursor) {
  if (cursor.empty() || cursor.size() > 24) return std::nullopt;
  std::string decoded;
  if (!absl::Base64Unescape(cursor, &decoded)) return std::nullopt;
  if (decoded.empty() || decoded.size() > 12 ||
      !std::all_of(decoded.begin(), decoded.end(), absl::ascii_isdigit)) {
    return std::nullopt;
  }
  int64_t offset = 0;
  if (!absl::SimpleAtoi(decoded, &offset)) return std::nullopt;
  // Only the canonical spelling (padding optional) is a cursor this API handed out.
  std::string canonical = EncodeCursor(offset);
  absl::string_view unpadded = canonical;
  while (!unpadded.empty() && unpadded.back() == '=') unpadded.remove_suffix(1);
  if (cursor != canonical && cursor != unpadded) return std::nullopt;
  return offset;
}

size_t Utf8Length(absl::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool IsValidTimeZone(absl::string_view name) {
  if (!LooksLikeTimeZone(name)) return false;
  absl::TimeZone tz;
  if (absl::LoadTimeZone(std::string(name), &tz)) return true;
  // Without tzdata on the host every zone but UTC fails to load; accept well-formed names.
  static const bool kHaveTzdata = absl::LoadTimeZone("America/New_York", &tz);
  return !kHaveTzdata;
}

}  // namespace sim
