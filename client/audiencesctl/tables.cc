#include "audiencesctl/tables.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "audiencesctl/output.h"

namespace audiencesctl::tables {
namespace {

std::string Joined(const std::string& a, const std::string& sep, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return absl::StrCat(a, sep, b);
}

std::string SizeText(const Json& j, const char* pointer) {
  const std::string base(pointer);
  std::string count = Cell(j, (base + "/count").c_str());
  if (count.empty()) return "";
  std::string type =
      absl::AsciiStrToLower(EnumCell(j, (base + "/type").c_str(), "AUDIENCE_SIZE_TYPE_"));
  return Joined(count, " ", type);
}

std::string ScheduleConfig(const Json& s) {
  if (s.contains("periodic")) return absl::StrCat("every ", Cell(s, "/periodic/interval"));
  if (s.contains("specificDays")) {
    static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    std::vector<std::string> days;
    std::vector<std::string> hours;
    const Json& d = s["specificDays"];
    if (d.contains("days")) {
      for (const Json& day : d["days"]) {
        int n = day.is_number() ? day.get<int>() : -1;
        days.push_back(n >= 0 && n < 7 ? kDays[n] : day.dump());
      }
    }
    if (d.contains("hours")) {
      for (const Json& hour : d["hours"]) {
        std::string h = hour.dump();
        hours.push_back(absl::StrCat(h.size() < 2 ? "0" : "", h, ":00"));
      }
    }
    return Joined(Joined(absl::StrJoin(days, ","), " at ", absl::StrJoin(hours, ",")), " ",
                  Cell(s, "/specificDays/timezone"));
  }
  return "";
}

std::vector<std::string> AudienceRow(const Json& a) {
  return {Cell(a, "/id"),      Cell(a, "/name"),   EnumCell(a, "/audienceType", "AUDIENCE_TYPE_"),
          Cell(a, "/enabled"), Cell(a, "/status"), Cell(a, "/key")};
}

std::string AudiencesTable(const Json& audiences) {
  std::vector<std::vector<std::string>> rows;
  for (const Json& a : audiences) rows.push_back(AudienceRow(a));
  return RenderTable({"ID", "NAME", "TYPE", "ENABLED", "STATUS", "KEY"}, rows);
}

std::string AudienceFields(const Json& a) {
  std::vector<std::string> schedules;
  if (a.contains("schedules")) {
    for (const Json& s : a["schedules"]) {
      schedules.push_back(absl::StrCat(Cell(s, "/id"), " (", ScheduleConfig(s), ")"));
    }
  }
  return RenderFields({
      {"ID", Cell(a, "/id")},
      {"Name", Cell(a, "/name")},
      {"Key", Cell(a, "/key")},
      {"Space", Cell(a, "/spaceId")},
      {"Type", EnumCell(a, "/audienceType", "AUDIENCE_TYPE_")},
      {"Enabled", Cell(a, "/enabled")},
      {"Status", Cell(a, "/status")},
      {"Description", Cell(a, "/description")},
      {"Query", Cell(a, "/definition/query")},
      {"Target entity", Cell(a, "/definition/targetEntity")},
      {"Compute cadence", EnumCell(a, "/computeCadence/type", "COMPUTE_CADENCE_TYPE_")},
      {"Size", SizeText(a, "/size")},
      {"Schedules", absl::StrJoin(schedules, "; ")},
      {"Created", Joined(Cell(a, "/createdAt"), " by ", Cell(a, "/createdBy"))},
      {"Updated", Joined(Cell(a, "/updatedAt"), " by ", Cell(a, "/updatedBy"))},
  });
}

std::vector<std::string> ScheduleRow(const Json& s) {
  return {Cell(s, "/id"), EnumCell(s, "/strategy", "SCHEDULE_STRATEGY_"), ScheduleConfig(s),
          Cell(s, "/nextExecution")};
}

std::string SchedulesTable(const Json& schedules) {
  std::vector<std::vector<std::string>> rows;
  for (const Json& s : schedules) rows.push_back(ScheduleRow(s));
  return RenderTable({"ID", "STRATEGY", "CONFIG", "NEXT EXECUTION"}, rows);
}

std::string ScheduleFields(const Json& s) {
  return RenderFields({{"ID", Cell(s, "/id")},
                       {"Strategy", EnumCell(s, "/strategy", "SCHEDULE_STRATEGY_")},
                       {"Config", ScheduleConfig(s)},
                       {"Next execution", Cell(s, "/nextExecution")}});
}

std::string PreviewFields(const Json& p) {
  std::string out = RenderFields({
      {"ID", Cell(p, "/id")},
      {"Status", EnumCell(p, "/status", "AUDIENCE_PREVIEW_STATUS_")},
      {"Type", EnumCell(p, "/audienceType", "AUDIENCE_TYPE_")},
      {"Query", Cell(p, "/definition/query")},
      {"Target entity", Cell(p, "/definition/targetEntity")},
      {"Size", SizeText(p, "/size")},
      {"Results", p.contains("results") ? std::to_string(p["results"].size()) : ""},
      {"Failure reason", Cell(p, "/failureReason")},
  });
  if (p.contains("results") && !p["results"].empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const Json& r : p["results"]) {
      for (const char* kind : {"profile", "account", "entity"}) {
        if (r.contains(kind)) rows.push_back({kind, Cell(r[kind], "/id")});
      }
    }
    absl::StrAppend(&out, "\n", RenderTable({"RESULT", "ID"}, rows));
  }
  return out;
}

std::string OperationStatusText(const Json& j) {
  std::string s = EnumCell(j, "/status", "OPERATION_STATUS_");
  return s.empty() ? "done" : s;
}

}  // namespace

std::string Audiences(const Json& j, const Json&) { return AudiencesTable(j["audiences"]); }
std::string Audience(const Json& j, const Json&) { return AudienceFields(j["audience"]); }
std::string Schedules(const Json& j, const Json&) { return SchedulesTable(j["audienceSchedules"]); }
std::string Schedule(const Json& j, const Json&) { return ScheduleFields(j["audienceSchedule"]); }
std::string Preview(const Json& j, const Json&) { return PreviewFields(j["audiencePreview"]); }
std::string PreviewId(const Json& j, const Json&) {
  return RenderFields({{"Preview ID", Cell(j, "/audiencePreview/id")}});
}
std::string AudienceDeleted(const Json& j, const Json& req) {
  return absl::StrCat("Audience ", Cell(req, "/id"), " deleted (", OperationStatusText(j), ").\n");
}
std::string ScheduleDeleted(const Json& j, const Json& req) {
  return absl::StrCat("Schedule ", Cell(req, "/scheduleId"), " of audience ", Cell(req, "/id"),
                      " deleted (", OperationStatusText(j), ").\n");
}
std::string Run(const Json& j, const Json& req) {
  return RenderFields({{"Run ID", Cell(j, "/run/id")}, {"Audience", Cell(req, "/audienceId")}});
}

}  // namespace audiencesctl::tables
