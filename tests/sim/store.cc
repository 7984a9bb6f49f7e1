#include "store.h"

#include <algorithm>
#include <functional>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sim {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr absl::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr int kIdLength = 27;

std::string Base62(std::mt19937_64& rng, int n) {
  std::string out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(kBase62[rng() % kBase62.size()]);
  return out;
}

std::mt19937_64 SeededRng(absl::string_view seed) {
  return std::mt19937_64(std::hash<std::string>{}(std::string(seed)));
}

std::string SizeType(absl::string_view audience_type) {
  if (audience_type == "ACCOUNTS") return "ACCOUNTS";
  if (audience_type == "LINKED") return "ENTITIES";
  return "USERS";
}

// Case-insensitive (ASCII) substring / prefix tests.
bool ContainsFold(absl::string_view haystack, absl::string_view needle) {
  return absl::StrContains(absl::AsciiStrToLower(haystack), absl::AsciiStrToLower(needle));
}

bool StartsWithFold(absl::string_view text, absl::string_view prefix) {
  return absl::StartsWithIgnoreCase(text, prefix);
}

// True when `text` contains `word` delimited by non-alphanumeric characters (ASCII, any case).
bool ContainsWord(absl::string_view text, absl::string_view word) {
  const std::string lower = absl::AsciiStrToLower(text);
  size_t pos = 0;
  while ((pos = lower.find(word.data(), pos, word.size())) != std::string::npos) {
    const bool left_ok =
        pos == 0 || !absl::ascii_isalnum(static_cast<unsigned char>(lower[pos - 1]));
    const size_t end = pos + word.size();
    const bool right_ok =
        end == lower.size() || !absl::ascii_isalnum(static_cast<unsigned char>(lower[end]));
    if (left_ok && right_ok) return true;
    pos = end;
  }
  return false;
}

absl::Duration IntervalDuration(absl::string_view interval) {
  int64_t n = 0;
  const char unit = interval.empty() ? 'm' : interval.back();
  for (char c : interval.substr(0, interval.empty() ? 0 : interval.size() - 1)) {
    n = n * 10 + (c - '0');
  }
  if (n <= 0) n = 1;
  switch (unit) {
    case 'd':
      return absl::Hours(24 * n);
    case 'h':
      return absl::Hours(n);
    default:
      return absl::Minutes(n);
  }
}

absl::Time NextExecution(const std::string& strategy, const json& config, absl::Time now) {
  if (strategy == "PERIODIC") {
    const absl::Duration step = IntervalDuration(config.value("interval", std::string("1h")));
    const absl::Duration since = now - absl::UnixEpoch();
    absl::Time next = absl::UnixEpoch() + absl::Ceil(since, step);
    if (next <= now) next += step;
    return next;
  }
  absl::TimeZone tz = absl::UTCTimeZone();
  const std::string tz_name = config.value("timezone", std::string("UTC"));
  if (!absl::LoadTimeZone(tz_name, &tz)) tz = absl::UTCTimeZone();
  std::vector<int> days;
  std::vector<int> hours;
  for (const json& d : config.value("days", json::array())) {
    if (d.is_number_integer()) days.push_back(d.get<int>());
  }
  for (const json& h : config.value("hours", json::array())) {
    if (h.is_number_integer()) hours.push_back(h.get<int>());
  }
  absl::CivilHour hour = absl::ToCivilHour(now, tz) + 1;
  for (int i = 0; i < 24 * 8; ++i, ++hour) {
    // absl::Weekday counts from Monday = 0; the API from Sunday = 0.
    const int weekday = (static_cast<int>(absl::GetWeekday(hour)) + 1) % 7;
    if (std::find(days.begin(), days.end(), weekday) != days.end() &&
        std::find(hours.begin(), hours.end(), hour.hour()) != hours.end()) {
      return absl::FromCivil(hour, tz);
    }
  }
  return now + absl::Hours(24);
}

ordered_json ConfigJson(const std::string& strategy, const json& config) {
  ordered_json out = ordered_json::object();
  if (strategy == "PERIODIC") {
    out["interval"] = config.value("interval", std::string());
  } else {
    out["days"] = config.value("days", json::array());
    out["hours"] = config.value("hours", json::array());
    out["timezone"] = config.value("timezone", std::string());
  }
  return out;
}

// The fields of `options` in the model's order (AudienceOptions).
ordered_json AudienceOptionsJson(const json& options) {
  ordered_json out = ordered_json::object();
  for (const char* name :
       {"includeHistoricalData", "filterByExternalIds", "backfillEventDataDays"}) {
    if (options.contains(name)) out[name] = options[name];
  }
  return out;
}

ordered_json SizeJson(absl::string_view audience_type, int64_t count, int64_t unique_count) {
  ordered_json size = ordered_json::object();
  size["count"] = count;
  size["type"] = SizeType(audience_type);
  size["uniqueCount"] = unique_count;
  return size;
}

ordered_json Data(ordered_json data) {
  ordered_json out = ordered_json::object();
  out["data"] = std::move(data);
  return out;
}

Result Ok(ordered_json data) { return {200, Data(std::move(data))}; }

Result Success() {
  ordered_json data = ordered_json::object();
  data["status"] = "SUCCESS";
  return Ok(std::move(data));
}

// A page of `items` per `query`, returned with its PaginationOutput.
template <typename T>
std::vector<T> Page(const std::vector<T>& items, const ListQuery& query, ordered_json* pagination) {
  const int64_t total = static_cast<int64_t>(items.size());
  const int64_t begin = std::min(query.offset, total);
  const int64_t end = std::min(total, begin + query.count);
  *pagination = ordered_json::object();
  (*pagination)["current"] = EncodeCursor(query.offset);
  if (end < total) (*pagination)["next"] = EncodeCursor(end);
  if (query.offset > 0) {
    (*pagination)["previous"] = EncodeCursor(std::max<int64_t>(0, query.offset - query.count));
  }
  (*pagination)["totalEntries"] = total;
  return std::vector<T>(items.begin() + begin, items.begin() + end);
}

}  // namespace

Result ErrorResult(int status, absl::string_view type, absl::string_view message,
                   absl::string_view field) {
  ordered_json error = ordered_json::object();
  error["type"] = std::string(type);
  error["message"] = std::string(message);
  if (!field.empty()) error["field"] = std::string(field);
  error["status"] = status;
  ordered_json body = ordered_json::object();
  body["errors"] = ordered_json::array({error});
  return {status, std::move(body)};
}

Result ValidationResult(const FieldErrors& errors) {
  ordered_json list = ordered_json::array();
  for (const FieldError& e : errors) {
    ordered_json error = ordered_json::object();
    error["type"] = std::string(kErrorValidation);
    error["message"] = e.message;
    if (!e.field.empty()) error["field"] = e.field;
    error["status"] = 422;
    list.push_back(std::move(error));
  }
  ordered_json body = ordered_json::object();
  body["errors"] = std::move(list);
  return {422, std::move(body)};
}

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

Store::Store(absl::Duration preview_duration) : preview_duration_(preview_duration) {}

std::string Store::RandomId(absl::string_view prefix) {
  std::string id(prefix);
  for (int i = 0; i < kIdLength; ++i) {
    id.push_back(kBase62[absl::Uniform<size_t>(gen_, 0, kBase62.size())]);
  }
  return id;
}

std::string Store::UniqueKey(const Space& space, const std::string& name) const {
  std::string base;
  for (char c : name) {
    const unsigned char u = static_cast<unsigned char>(c);
    base.push_back(absl::ascii_isalnum(u) ? absl::ascii_tolower(u) : '_');
  }
  auto taken = [&](const std::string& key) {
    return std::any_of(space.audiences.begin(), space.audiences.end(),
                       [&](const auto& entry) { return entry.second.key == key; });
  };
  if (!taken(base)) return base;
  for (int n = 2;; ++n) {
    std::string candidate = absl::StrCat(base, "_", n);
    if (!taken(candidate)) return candidate;
  }
}

std::vector<const Store::Audience*> Store::SortedAudiences(const Space& space) const {
  std::vector<const Audience*> out;
  out.reserve(space.audiences.size());
  for (const auto& [id, audience] : space.audiences) out.push_back(&audience);
  std::sort(out.begin(), out.end(),
            [](const Audience* a, const Audience* b) { return a->seq < b->seq; });
  return out;
}

Store::Audience* Store::FindAudience(const std::string& space, const std::string& id,
                                     Result* error) {
  auto s = spaces_.find(space);
  if (s != spaces_.end()) {
    auto a = s->second.audiences.find(id);
    if (a != s->second.audiences.end()) return &a->second;
  }
  *error = ErrorResult(404, kErrorNotFound,
                       absl::StrCat("audience ", id, " not found in space ", space));
  return nullptr;
}

Store::Audience* Store::FindLinkedAudience(const std::string& space, const std::string& id,
                                           absl::string_view what, Result* error) {
  Audience* audience = FindAudience(space, id, error);
  if (audience != nullptr && audience->audience_type != "LINKED") {
    *error = ErrorResult(
        422, kErrorValidation,
        absl::StrCat(what,
                     " are only available for Linked audiences (audienceType = LINKED); "
                     "audience ",
                     id, " has audienceType ", audience->audience_type),
        "audienceType");
    return nullptr;
  }
  return audience;
}

ordered_json Store::DefinitionJson(const Audience& a) {
  ordered_json d = ordered_json::object();
  if (a.target_entity) {
    d["targetEntity"] = *a.target_entity;
  } else if (a.audience_type == "LINKED") {
    d["targetEntity"] = "profile";  // "the value defaults to profile if not specified"
  }
  d["query"] = a.query;
  return d;
}

ordered_json Store::SummaryJson(const Audience& a) {
  ordered_json j = ordered_json::object();
  j["id"] = a.id;
  j["spaceId"] = a.space_id;
  j["name"] = a.name;
  if (a.description) j["description"] = *a.description;
  j["key"] = a.key;
  j["enabled"] = a.enabled;
  j["definition"] = DefinitionJson(a);
  j["status"] = a.enabled ? "Computing" : "Disabled";
  j["createdBy"] = a.created_by;
  j["updatedBy"] = a.updated_by;
  j["createdAt"] = FormatRfc3339(a.created_at);
  j["updatedAt"] = FormatRfc3339(a.updated_at);
  j["audienceType"] = a.audience_type;
  if (a.options) j["options"] = AudienceOptionsJson(*a.options);
  return j;
}

ordered_json Store::WithLookbackJson(const Audience& a, bool include_schedules, absl::Time now) {
  ordered_json j = ordered_json::object();
  ordered_json cadence = ordered_json::object();
  cadence["type"] = a.audience_type == "LINKED" ? "BATCH" : "REALTIME";
  j["computeCadence"] = std::move(cadence);
  j["size"] = SizeJson(a.audience_type, a.size_count, a.unique_count);
  // AudienceOptionsWithLookback: filterByExternalIds is required there.
  ordered_json options = ordered_json::object();
  const json given = a.options.value_or(json::object());
  options["filterByExternalIds"] = given.contains("filterByExternalIds")
                                       ? given["filterByExternalIds"]
                                       : json(DefaultExternalIds());
  if (given.contains("includeHistoricalData")) {
    options["includeHistoricalData"] = given["includeHistoricalData"];
  }
  if (given.contains("backfillEventDataDays")) {
    options["backfillEventDataDays"] = given["backfillEventDataDays"];
  }
  j["options"] = std::move(options);
  if (include_schedules) {
    ordered_json schedules = ordered_json::array();
    for (const Schedule& s : a.schedules) schedules.push_back(ScheduleJson(s, now));
    j["schedules"] = std::move(schedules);
  }
  const ordered_json summary = SummaryJson(a);
  for (auto it = summary.begin(); it != summary.end(); ++it) {
    if (it.key() != "options") j[it.key()] = it.value();
  }
  return j;
}

ordered_json Store::ScheduleJson(const Schedule& s, absl::Time now) {
  ordered_json j = ordered_json::object();
  j["id"] = s.id;
  j["strategy"] = s.strategy;
  j["config"] = ConfigJson(s.strategy, s.config);
  j["nextExecution"] = FormatRfc3339(NextExecution(s.strategy, s.config, now));
  return j;
}

Result Store::CreateAudience(const std::string& space, const json& input, const std::string& user,
                             absl::Time now) {
  absl::MutexLock lock(&mu_);
  Space& s = spaces_[space];
  Audience a;
  a.seq = next_seq_++;
  do {
    a.id = RandomId("aud_");
  } while (s.audiences.count(a.id) != 0);
  a.space_id = space;
  a.name = input["name"].get<std::string>();
  if (input.contains("description")) a.description = input["description"].get<std::string>();
  a.key = UniqueKey(s, a.name);
  a.enabled = input.value("enabled", true);
  const json& definition = input["definition"];
  a.query = definition["query"].get<std::string>();
  if (definition.contains("targetEntity")) {
    a.target_entity = definition["targetEntity"].get<std::string>();
  }
  a.audience_type = input["audienceType"].get<std::string>();
  if (input.contains("options")) a.options = input["options"];
  a.created_by = user;
  a.updated_by = user;
  a.created_at = now;
  a.updated_at = now;
  a.size_count = absl::Uniform<int64_t>(gen_, 0, 50000);
  a.unique_count = a.size_count - a.size_count / 10;
  ordered_json data = ordered_json::object();
  data["audience"] = SummaryJson(a);
  s.audiences.emplace(a.id, std::move(a));
  return Ok(std::move(data));
}

Result Store::GetAudience(const std::string& space, const std::string& id, bool include_schedules,
                          absl::Time now) {
  absl::MutexLock lock(&mu_);
  Result error;
  const Audience* a = FindAudience(space, id, &error);
  if (a == nullptr) return error;
  ordered_json data = ordered_json::object();
  data["audience"] = WithLookbackJson(*a, include_schedules, now);
  return Ok(std::move(data));
}

Result Store::ListAudiences(const std::string& space, const ListQuery& query, absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<const Audience*> matching;
  auto s = spaces_.find(space);
  if (s != spaces_.end()) {
    for (const Audience* a : SortedAudiences(s->second)) {
      if (query.search) {
        const SearchQuery& q = *query.search;
        const bool hit = q.type == "NAME"  ? ContainsFold(a->name, q.query)
                         : q.type == "KEY" ? StartsWithFold(a->key, q.query)
                                           : ContainsFold(a->query, q.query);
        if (!hit) continue;
      }
      matching.push_back(a);
    }
  }
  ordered_json pagination;
  ordered_json audiences = ordered_json::array();
  for (const Audience* a : Page(matching, query, &pagination)) {
    audiences.push_back(WithLookbackJson(*a, query.include_schedules, now));
  }
  ordered_json data = ordered_json::object();
  data["audiences"] = std::move(audiences);
  data["pagination"] = std::move(pagination);
  return Ok(std::move(data));
}

Result Store::UpdateAudience(const std::string& space, const std::string& id, const json& input,
                             const std::string& user, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Result error;
  Audience* a = FindAudience(space, id, &error);
  if (a == nullptr) return error;
  if (input.contains("enabled")) a->enabled = input["enabled"].get<bool>();
  if (input.contains("name")) a->name = input["name"].get<std::string>();
  if (input.contains("description")) a->description = input["description"].get<std::string>();
  if (input.contains("definition")) a->query = input["definition"]["query"].get<std::string>();
  if (input.contains("options")) a->options = input["options"];
  a->updated_by = user;
  // updatedAt always moves forward, even within one millisecond.
  a->updated_at = std::max(now, a->updated_at + absl::Milliseconds(1));
  ordered_json data = ordered_json::object();
  data["audience"] = SummaryJson(*a);
  return Ok(std::move(data));
}

Result Store::RemoveAudience(const std::string& space, const std::string& id) {
  absl::MutexLock lock(&mu_);
  Result error;
  if (FindAudience(space, id, &error) == nullptr) return error;
  spaces_[space].audiences.erase(id);
  return Success();
}

Result Store::ListConsumers(const std::string& space, const std::string& id,
                            const ListQuery& query) {
  absl::MutexLock lock(&mu_);
  Result error;
  const Audience* target = FindAudience(space, id, &error);
  if (target == nullptr) return error;
  std::vector<const Audience*> matching;
  for (const Audience* a : SortedAudiences(spaces_[space])) {
    if (a == target || !absl::StrContains(a->query, target->key)) continue;
    if (query.search) {
      const SearchQuery& q = *query.search;
      const bool hit = q.type == "NAME"  ? ContainsFold(a->name, q.query)
                       : q.type == "KEY" ? StartsWithFold(a->key, q.query)
                                         : ContainsFold(a->query, q.query);
      if (!hit) continue;
    }
    matching.push_back(a);
  }
  if (query.sort) {
    const SortQuery& sort = *query.sort;
    const bool desc = sort.direction == "DESC";
    std::stable_sort(matching.begin(), matching.end(), [&](const Audience* x, const Audience* y) {
      const Audience* a = desc ? y : x;
      const Audience* b = desc ? x : y;
      if (sort.field == "NAME") {
        return absl::AsciiStrToLower(a->name) < absl::AsciiStrToLower(b->name);
      }
      if (sort.field == "UPDATED_AT") return a->updated_at < b->updated_at;
      return a->created_at < b->created_at;
    });
  }
  ordered_json pagination;
  ordered_json audiences = ordered_json::array();
  for (const Audience* a : Page(matching, query, &pagination)) {
    audiences.push_back(SummaryJson(*a));
  }
  ordered_json data = ordered_json::object();
  data["audiences"] = std::move(audiences);
  data["pagination"] = std::move(pagination);
  return Ok(std::move(data));
}

Result Store::AddSchedule(const std::string& space, const std::string& id, const json& input,
                          absl::Time now) {
  absl::MutexLock lock(&mu_);
  Result error;
  Audience* a = FindLinkedAudience(space, id, "Schedules", &error);
  if (a == nullptr) return error;
  Schedule s;
  s.id = RandomId("sch_");
  s.strategy = input["strategy"].get<std::string>();
  s.config = input["config"];
  ordered_json data = ordered_json::object();
  data["audienceSchedule"] = ScheduleJson(s, now);
  a->schedules.push_back(std::move(s));
  return Ok(std::move(data));
}

Result Store::GetSchedule(const std::string& space, const std::string& id,
                          const std::string& schedule_id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Result error;
  const Audience* a = FindLinkedAudience(space, id, "Schedules", &error);
  if (a == nullptr) return error;
  for (const Schedule& s : a->schedules) {
    if (s.id == schedule_id) {
      ordered_json data = ordered_json::object();
      data["audienceSchedule"] = ScheduleJson(s, now);
      return Ok(std::move(data));
    }
  }
  return ErrorResult(404, kErrorNotFound,
                     absl::StrCat("schedule ", schedule_id, " not found for audience ", id));
}

Result Store::ListSchedules(const std::string& space, const std::string& id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Result error;
  const Audience* a = FindLinkedAudience(space, id, "Schedules", &error);
  if (a == nullptr) return error;
  ordered_json schedules = ordered_json::array();
  for (const Schedule& s : a->schedules) schedules.push_back(ScheduleJson(s, now));
  ordered_json data = ordered_json::object();
  data["audienceSchedules"] = std::move(schedules);
  return Ok(std::move(data));
}

Result Store::UpdateSchedule(const std::string& space, const std::string& id,
                             const std::string& schedule_id, const json& input, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Result error;
  Audience* a = FindLinkedAudience(space, id, "Schedules", &error);
  if (a == nullptr) return error;
  for (Schedule& s : a->schedules) {
    if (s.id == schedule_id) {
      s.strategy = input["strategy"].get<std::string>();
      s.config = input["config"];
      ordered_json data = ordered_json::object();
      data["audienceSchedule"] = ScheduleJson(s, now);
      return Ok(std::move(data));
    }
  }
  return ErrorResult(404, kErrorNotFound,
                     absl::StrCat("schedule ", schedule_id, " not found for audience ", id));
}

Result Store::RemoveSchedule(const std::string& space, const std::string& id,
                             const std::string& schedule_id) {
  absl::MutexLock lock(&mu_);
  Result error;
  Audience* a = FindLinkedAudience(space, id, "Schedules", &error);
  if (a == nullptr) return error;
  auto it = std::find_if(a->schedules.begin(), a->schedules.end(),
                         [&](const Schedule& s) { return s.id == schedule_id; });
  if (it == a->schedules.end()) {
    return ErrorResult(404, kErrorNotFound,
                       absl::StrCat("schedule ", schedule_id, " not found for audience ", id));
  }
  a->schedules.erase(it);
  return Success();
}

Result Store::ForceRun(const std::string& space, const std::string& id) {
  absl::MutexLock lock(&mu_);
  Result error;
  const Audience* a = FindLinkedAudience(space, id, "Forced runs", &error);
  if (a == nullptr) return error;
  ordered_json run = ordered_json::object();
  run["id"] = absl::StrCat(RandomId(""), "-force_execute_audience_run-", a->id);
  ordered_json data = ordered_json::object();
  data["run"] = std::move(run);
  return Ok(std::move(data));
}

Result Store::CreatePreview(const std::string& space, const json& input, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Space& s = spaces_[space];
  Preview p;
  do {
    p.id = absl::StrCat(RandomId(""), "-compute_preview_execution-", space,
                        "-compute_preview_execution");
  } while (s.previews.count(p.id) != 0);
  p.audience_type = input["audienceType"].get<std::string>();
  const json& definition = input["definition"];
  p.query = definition["query"].get<std::string>();
  if (definition.contains("targetEntity")) {
    p.target_entity = definition["targetEntity"].get<std::string>();
  }
  if (input.contains("options")) p.options = input["options"];
  p.created_at = now;
  ordered_json identifier = ordered_json::object();
  identifier["id"] = p.id;
  ordered_json data = ordered_json::object();
  data["audiencePreview"] = std::move(identifier);
  s.previews.emplace(p.id, std::move(p));
  return Ok(std::move(data));
}

ordered_json Store::PreviewJson(const Preview& p, absl::Time now) const {
  ordered_json j = ordered_json::object();
  j["id"] = p.id;
  j["audienceType"] = p.audience_type;
  ordered_json definition = ordered_json::object();
  if (p.target_entity) definition["targetEntity"] = *p.target_entity;
  definition["query"] = p.query;
  j["definition"] = std::move(definition);
  // ReadAudiencePreviewOptions.
  ordered_json options = ordered_json::object();
  const json given = p.options.value_or(json::object());
  options["filterByExternalIds"] = given.contains("filterByExternalIds")
                                       ? given["filterByExternalIds"]
                                       : json(DefaultExternalIds());
  if (given.contains("backfillEventDataDays")) {
    options["backfillEventDataDays"] = given["backfillEventDataDays"];
  }
  j["options"] = std::move(options);

  if (now - p.created_at < preview_duration_) {
    j["status"] = "RUNNING";
    return j;
  }
  if (ContainsWord(p.query, "fail")) {
    j["status"] = "FAILED";
    j["failureReason"] = "the audience definition could not be evaluated (simulated failure)";
    return j;
  }
  j["status"] = "COMPLETED";
  std::mt19937_64 rng = SeededRng(p.id);
  const std::string slug = p.target_entity.value_or("accounts");
  ordered_json results = ordered_json::array();
  constexpr int kResults = 3;
  for (int i = 1; i <= kResults; ++i) {
    ordered_json r = ordered_json::object();
    if (p.audience_type == "ACCOUNTS") {
      r["id"] = absl::StrCat("acc_", Base62(rng, kIdLength));
    } else if (p.audience_type == "USERS") {
      r["id"] = absl::StrCat("use_", Base62(rng, kIdLength));
      ordered_json entity = ordered_json::object();
      entity["id"] = absl::StrCat("account-", i);
      entity["idProperty"] = "account_id";
      entity["relationshipSlug"] = "accounts";
      entity["properties"] = {{"name", absl::StrCat("Account ", i)}, {"plan", "enterprise"}};
      ordered_json entities = ordered_json::object();
      entities["accounts"] = ordered_json::array({entity});
      r["entities"] = std::move(entities);
    } else {  // LINKED: entity results
      r["id"] = absl::StrCat(slug, "-", i);
      r["idProperty"] = "id";
      r["relationshipSlug"] = slug;
      r["properties"] = {{"name", absl::StrCat("Entity ", i)}, {"rank", i}};
      ordered_json profile = ordered_json::object();
      profile["properties"] = ordered_json::array({"email"});
      profile["mapping"] = {{"email", absl::StrCat("user", i, "@example.com")}};
      r["profiles"] = ordered_json::array({profile});
      r["profilesTruncated"] = false;
    }
    results.push_back(std::move(r));
  }
  j["results"] = std::move(results);
  const int64_t count = kResults + static_cast<int64_t>(rng() % 1000);
  j["size"] = SizeJson(p.audience_type, count, count - count / 10);
  return j;
}

Result Store::GetPreview(const std::string& space, const std::string& id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto s = spaces_.find(space);
  if (s != spaces_.end()) {
    auto p = s->second.previews.find(id);
    if (p != s->second.previews.end()) {
      ordered_json data = ordered_json::object();
      data["audiencePreview"] = PreviewJson(p->second, now);
      return Ok(std::move(data));
    }
  }
  return ErrorResult(404, kErrorNotFound,
                     absl::StrCat("audience preview ", id, " not found in space ", space));
}

void Store::Clear() {
  absl::MutexLock lock(&mu_);
  spaces_.clear();
}

}  // namespace sim
