#include "audiencesctl/commands.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "audiencesctl/args.h"
#include "audiencesctl/output.h"
#include "segment_audiences/client.h"

#ifndef AUDIENCESCTL_VERSION
#define AUDIENCESCTL_VERSION "dev"
#endif

namespace audiencesctl {
namespace {

namespace v1 = ::segment::audiences::v1;
namespace sa = ::segment_audiences;
using Json = nlohmann::json;
using google::protobuf::Message;

// ---------------------------------------------------------------------------------------------
// Flags, commands, help
// ---------------------------------------------------------------------------------------------

const std::vector<FlagSpec>& AllFlags() {
  static const std::vector<FlagSpec> kFlags = {
      // Global.
      {"addr", 0, true, "HOST:PORT",
       "Gateway address (default: $AUDIENCES_GATEWAY_ADDR, else localhost:50051)."},
      {"workspace", 0, true, "NAME",
       "Workspace, sent as metadata x-segment-workspace (default: $AUDIENCES_WORKSPACE)."},
      {"timeout", 0, true, "DURATION", "Deadline of each call, retries included (default 30s)."},
      {"output", 'o', true, "FORMAT",
       "table, json, yaml or id (default: table on a terminal, else json)."},
      {"tls", 0, false, "", "Use TLS (the system's root certificates unless --ca-cert)."},
      {"ca-cert", 0, true, "FILE", "PEM root certificates to trust (implies --tls)."},
      {"cert", 0, true, "FILE", "PEM client certificate for mutual TLS (with --key)."},
      {"key", 0, true, "FILE", "PEM private key of --cert."},
      {"server-name", 0, true, "NAME", "TLS name to verify instead of the address's host."},
      {"no-cache", 0, false, "", "Bypass the gateway's listing cache (cache-control: no-cache)."},
      {"help", 'h', false, "", "Help of the command."},
      // Commands.
      {"file", 'f', true, "FILE",
       "Proto3 JSON input ('-' = stdin): the body message, or the whole request."},
      {"space", 0, true, "ID", "Space id (default: $AUDIENCES_SPACE)."},
      {"id", 0, true, "ID", "Id (may also be given as the argument)."},
      {"audience", 0, true, "ID", "Audience id."},
      {"name", 0, true, "NAME", "Audience name."},
      {"description", 0, true, "TEXT", "Audience description."},
      {"query", 0, true, "QUERY", "Definition in Segment's audience query language."},
      {"type", 0, true, "TYPE", "Audience type: users, accounts or linked (default users)."},
      {"target-entity", 0, true, "SLUG", "Target entity relationship slug (linked audiences)."},
      {"enabled", 0, false, "", "Enable (--enabled) or disable (--enabled=false) the audience."},
      {"disabled", 0, false, "", "Same as --enabled=false."},
      {"external-ids", 0, true, "IDS", "Comma-separated external ids to filter by (user_id,...)."},
      {"backfill-days", 0, true, "N", "Days of event data to backfill."},
      {"include-historical", 0, false, "", "Include historical data."},
      {"include", 0, true, "WHAT", "Embed related resources: schedules."},
      {"count", 0, true, "N", "Page size (ListAudiences 1-200, consumers 1-1000)."},
      {"cursor", 0, true, "CURSOR", "Page to read (the pagination.next of a previous page)."},
      {"all", 0, false, "", "Walk every page (following pagination.next) and print them as one."},
      {"search", 0, true, "TEXT", "Filter by this text (see --search-type)."},
      {"search-type", 0, true, "FIELD", "What --search matches: name (default), key, definition."},
      {"sort", 0, true, "FIELD", "Sort by: name, created-at, updated-at."},
      {"order", 0, true, "DIR", "Sort direction: asc (default) or desc."},
      {"strategy", 0, true, "STRATEGY",
       "periodic or specific-days (default: from --interval or --days/--hours)."},
      {"interval", 0, true, "INTERVAL",
       "Periodic schedule: 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d."},
      {"days", 0, true, "DAYS", "Specific days: 0-6 (0 = Sunday) or sun..sat, comma-separated."},
      {"hours", 0, true, "HOURS", "Specific days: hours 0-23, comma-separated."},
      {"timezone", 0, true, "TZ", "Specific days: IANA time zone (America/New_York)."},
      {"wait", 0, false, "", "Poll until the preview is COMPLETED or FAILED."},
      {"wait-timeout", 0, true, "DURATION", "With --wait: give up after this long (default 5m)."},
      {"progress", 0, true, "WHEN",
       "With --wait: show progress on stderr: auto (on a terminal), always, never."},
  };
  return kFlags;
}

const FlagSpec* Spec(absl::string_view name) {
  for (const FlagSpec& f : AllFlags()) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

const std::vector<std::string>& GlobalFlags() {
  static const std::vector<std::string> kGlobal = {"addr",        "workspace", "timeout", "output",
                                                   "tls",         "ca-cert",   "cert",    "key",
                                                   "server-name", "no-cache",  "help"};
  return kGlobal;
}

struct Ctx;
using Handler = absl::Status (*)(Ctx&);

struct CommandFlag {
  const char* name;
  const char* help;  // nullptr: the flag's own help.
};

struct Command {
  std::string group;  // "audiences"
  std::string verb;   // "list"; "" for one-word commands
  std::string synopsis;
  std::string summary;
  std::string description;
  std::vector<CommandFlag> flags;
  std::string example;
  Handler run;
  int max_args = 0;         // Positional arguments after the command words.
  bool uses_client = true;  // Calls the gateway.
  bool default_json = false;
  std::string Path() const { return verb.empty() ? group : absl::StrCat(group, " ", verb); }
};

const std::vector<Command>& Commands();

constexpr char kExitCodesHelp[] =
    "Exit codes:\n"
    "  0  ok\n"
    "  1  usage error (bad flags or arguments, unreadable input)\n"
    "  2  INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE; a preview that FAILED\n"
    "  3  NOT_FOUND, ALREADY_EXISTS\n"
    "  4  UNAUTHENTICATED, PERMISSION_DENIED\n"
    "  5  RESOURCE_EXHAUSTED (rate limited; the retry delay is printed)\n"
    "  6  UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED; previews create --wait timing out\n"
    "  7  any other gRPC status\n";

std::string FlagLine(const FlagSpec& spec, const char* help) {
  std::string left = spec.short_name != 0
                         ? absl::StrCat("-", std::string(1, spec.short_name), ", --", spec.name)
                         : absl::StrCat("    --", spec.name);
  if (spec.takes_value) absl::StrAppend(&left, " ", spec.value_name);
  left.append(left.size() < 30 ? 30 - left.size() : 1, ' ');
  return absl::StrCat("  ", left, help != nullptr ? help : spec.help, "\n");
}

std::string GlobalFlagsHelp() {
  std::string out = "Global flags (anywhere on the line):\n";
  for (const std::string& name : GlobalFlags()) out += FlagLine(*Spec(name), nullptr);
  return out;
}

std::string TopHelp() {
  std::string out =
      "audiencesctl: the command-line client of audiences-gateway (segment.audiences.v1).\n\n"
      "Usage: audiencesctl COMMAND [flags]\n\nCommands:\n";
  std::vector<std::pair<std::string, std::string>> lines;
  for (const Command& c : Commands()) {
    if (c.group == "help") continue;
    lines.emplace_back(c.verb.empty() ? absl::StrCat(c.Path(), " ", c.synopsis) : c.Path(),
                       c.summary);
  }
  lines.emplace_back("help [COMMAND]", "Help of a command (same as COMMAND --help).");
  for (const auto& [left, right] : lines) {
    std::string l = left.size() < 36 ? left + std::string(36 - left.size(), ' ') : left + "  ";
    absl::StrAppend(&out, "  ", l, right, "\n");
  }
  absl::StrAppend(
      &out, "\n", GlobalFlagsHelp(),
      "\nEnvironment: AUDIENCES_GATEWAY_ADDR (--addr), AUDIENCES_WORKSPACE (--workspace),\n"
      "AUDIENCES_SPACE (--space).\n\n"
      "Input: flags for the common fields, or -f FILE / -f - (stdin) with proto3 JSON: the body\n"
      "(e.g. the audience of `audiences create`) or the whole request; flags override the file.\n"
      "Output: -o table (default on a terminal), -o json (default otherwise), -o yaml, or -o id\n"
      "(only the ids: of the resource, or of each item of a listing; for $(...)).\n\n",
      kExitCodesHelp,
      "\nExamples:\n"
      "  audiencesctl audiences create --space spa_1 --name Buyers \\\n"
      "      --query \"event('Order Completed').count() >= 1\"\n"
      "  audiencesctl audiences list --space spa_1 --all -o json\n"
      "  audiencesctl previews create --space spa_1 --query \"trait('vip') = true\" --wait\n"
      "  audiencesctl call GetAudience '{\"spaceId\":\"spa_1\",\"id\":\"aud_1\"}'\n");
  return out;
}

std::string GroupHelp(const std::string& group) {
  std::string out = absl::StrCat("Usage: audiencesctl ", group, " VERB [flags]\n\nVerbs:\n");
  for (const Command& c : Commands()) {
    if (c.group != group) continue;
    std::string left = c.verb;
    if (left.size() < 10) left.append(10 - left.size(), ' ');
    absl::StrAppend(&out, "  ", left, c.summary, "\n      audiencesctl ", c.Path(), " ", c.synopsis,
                    "\n");
  }
  absl::StrAppend(&out, "\nRun 'audiencesctl ", group, " VERB --help' for a verb's flags.\n");
  return out;
}

std::string CommandHelp(const Command& c) {
  std::string out = absl::StrCat("Usage: audiencesctl ", c.Path(), c.synopsis.empty() ? "" : " ",
                                 c.synopsis, "\n\n", c.summary, "\n");
  if (!c.description.empty()) absl::StrAppend(&out, "\n", c.description, "\n");
  if (!c.flags.empty()) {
    out += "\nFlags:\n";
    for (const CommandFlag& f : c.flags) out += FlagLine(*Spec(f.name), f.help);
  }
  absl::StrAppend(&out, "\n", GlobalFlagsHelp(), "\nExample:\n", c.example, "\n\n", kExitCodesHelp);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Context, errors, input
// ---------------------------------------------------------------------------------------------

constexpr char kUsagePayload[] = "audiencesctl/usage";

// A usage error: exit code 1, with a pointer to --help.
absl::Status Usage(absl::string_view message) {
  absl::Status s = absl::InvalidArgumentError(message);
  s.SetPayload(kUsagePayload, absl::Cord("1"));
  return s;
}
bool IsUsage(const absl::Status& s) { return s.GetPayload(kUsagePayload).has_value(); }

// A flag value that does not parse is a usage error.
template <typename T>
absl::StatusOr<T> AsUsage(absl::StatusOr<T> value) {
  if (!value.ok()) return Usage(value.status().message());
  return value;
}

#define CTL_RETURN_IF_ERROR(expr) \
  do {                            \
    absl::Status _st = (expr);    \
    if (!_st.ok()) return _st;    \
  } while (0)

#define CTL_CONCAT_INNER(a, b) a##b
#define CTL_CONCAT(a, b) CTL_CONCAT_INNER(a, b)
#define CTL_ASSIGN_OR_RETURN(lhs, expr) \
  CTL_ASSIGN_OR_RETURN_IMPL(CTL_CONCAT(_statusor_, __LINE__), lhs, expr)
#define CTL_ASSIGN_OR_RETURN_IMPL(var, lhs, expr) \
  auto var = (expr);                              \
  if (!var.ok()) return var.status();             \
  lhs = std::move(*var)

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

struct Ctx {
  const Command* command = nullptr;
  Args args;
  std::vector<std::string> rest;  // Positionals after the command words.
  Format format = Format::kJson;
  bool out_tty = false;
  bool err_tty = false;
  std::unique_ptr<sa::Client> client;
  sa::CallOptions call;
  std::string hint;  // Printed after an error.
};

absl::StatusOr<std::string> ReadText(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Usage(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

absl::Status ParseJsonInto(const std::string& text, Message* message) {
  google::protobuf::util::JsonParseOptions options;
  auto st = google::protobuf::util::JsonStringToMessage(text, message, options);
  if (st.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(st.ToString());
}

// -f FILE: proto3 JSON of `body` (a field of `request`), or of the whole request.
absl::Status ReadInput(Ctx& c, Message* request, Message* body) {
  if (!c.args.Has("file")) return absl::OkStatus();
  const std::string path = c.args.Get("file");
  CTL_ASSIGN_OR_RETURN(std::string text, ReadText(path));
  if (absl::StripAsciiWhitespace(text).empty()) text = "{}";
  // Named now: clearing `request` below deletes `body`.
  const std::string expected = body != nullptr
                                   ? absl::StrCat(body->GetDescriptor()->full_name(), " (or of ",
                                                  request->GetDescriptor()->full_name(), ")")
                                   : request->GetDescriptor()->full_name();
  absl::Status as_body = body != nullptr ? ParseJsonInto(text, body) : absl::OkStatus();
  if (body != nullptr && as_body.ok()) return absl::OkStatus();
  request->Clear();
  absl::Status as_request = ParseJsonInto(text, request);
  if (as_request.ok()) return absl::OkStatus();
  request->Clear();
  return Usage(absl::StrCat(path == "-" ? "stdin" : path, " is not proto3 JSON of ", expected, ": ",
                            body != nullptr ? as_body.message() : as_request.message()));
}

// --space (else $AUDIENCES_SPACE, else what -f gave) into `space_id`.
absl::Status ApplySpace(Ctx& c, std::string* space_id) {
  std::string space = c.args.Get("space", Env("AUDIENCES_SPACE"));
  if (!space.empty()) *space_id = space;
  if (space_id->empty()) return Usage("--space is required (or set $AUDIENCES_SPACE)");
  return absl::OkStatus();
}

// An id from flag `flag` or the positional argument (when `positional`), into `id`.
absl::Status ApplyId(Ctx& c, const char* flag, bool positional, std::string* id,
                     const char* alias = nullptr) {
  std::string value = c.args.Get(flag);
  if (value.empty() && alias != nullptr) value = c.args.Get(alias);
  if (positional && !c.rest.empty()) {
    if (!value.empty() && value != c.rest[0]) {
      return Usage(
          absl::StrCat("--", flag, " ", value, " and the argument ", c.rest[0], " disagree"));
    }
    value = c.rest[0];
  }
  if (!value.empty()) *id = value;
  if (id->empty()) {
    return Usage(absl::StrCat("--", flag, " is required",
                              positional ? " (or give the id as the argument)" : ""));
  }
  return absl::OkStatus();
}

// Parses an enum value from "users", "USERS" or "AUDIENCE_TYPE_USERS" ('-' reads as '_').
template <typename Enum>
absl::StatusOr<Enum> ParseEnum(const google::protobuf::EnumDescriptor* d, const char* flag,
                               const std::string& prefix, const std::string& text) {
  std::string upper = absl::AsciiStrToUpper(text);
  absl::StrReplaceAll({{"-", "_"}}, &upper);
  for (const std::string& name : {prefix + upper, upper}) {
    const auto* v = d->FindValueByName(name);
    if (v != nullptr && v->number() != 0) return static_cast<Enum>(v->number());
  }
  std::vector<std::string> allowed;
  for (int i = 0; i < d->value_count(); ++i) {
    if (d->value(i)->number() == 0) continue;
    std::string v = absl::AsciiStrToLower(d->value(i)->name().substr(prefix.size()));
    absl::StrReplaceAll({{"_", "-"}}, &v);
    allowed.push_back(v);
  }
  return Usage(
      absl::StrCat("--", flag, " is one of ", absl::StrJoin(allowed, ", "), ", not '", text, "'"));
}

absl::StatusOr<int> CountFlag(Ctx& c) {
  return AsUsage(ParseIntFlag("count", c.args.Get("count")));
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

void Print(Ctx& c, const Message& message, const std::function<std::string(const Json&)>& table) {
  switch (c.format) {
    case Format::kJson:
      std::cout << ToJson(message);
      break;
    case Format::kYaml:
      std::cout << JsonToYaml(ToOrderedJson(message));
      break;
    case Format::kTable:
      std::cout << table(ToJsonValue(message));
      break;
    case Format::kId:
      for (const std::string& id : IdsOf(ToJsonValue(message))) std::cout << id << "\n";
      break;
  }
  std::cout.flush();
}

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

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

absl::Status ApplyAudienceTypeFlag(Ctx& c, v1::AudienceType* type) {
  if (c.args.Has("type")) {
    CTL_ASSIGN_OR_RETURN(*type, ParseEnum<v1::AudienceType>(v1::AudienceType_descriptor(), "type",
                                                            "AUDIENCE_TYPE_", c.args.Get("type")));
  }
  if (*type == v1::AUDIENCE_TYPE_UNSPECIFIED) *type = v1::AUDIENCE_TYPE_USERS;
  return absl::OkStatus();
}

absl::Status ApplyEnabled(Ctx& c, const std::function<void(bool)>& set) {
  if (c.args.Has("enabled") && c.args.Has("disabled")) {
    return Usage("--enabled and --disabled contradict each other");
  }
  if (c.args.Has("enabled")) set(c.args.GetBool("enabled"));
  if (c.args.Has("disabled")) set(!c.args.GetBool("disabled"));
  return absl::OkStatus();
}

template <typename Options>
absl::Status ApplyAudienceOptions(Ctx& c, Options* options) {
  if (c.args.Has("external-ids")) {
    options->clear_filter_by_external_ids();
    for (const std::string& id : SplitList(c.args.Get("external-ids"))) {
      options->add_filter_by_external_ids(id);
    }
  }
  if (c.args.Has("backfill-days")) {
    CTL_ASSIGN_OR_RETURN(int days,
                         AsUsage(ParseIntFlag("backfill-days", c.args.Get("backfill-days"))));
    options->set_backfill_event_data_days(days);
  }
  return absl::OkStatus();
}

absl::Status ApplySearch(Ctx& c, v1::ListAudienceSearchInput* search) {
  if (c.args.Has("search-type") && !c.args.Has("search")) {
    return Usage("--search-type goes with --search TEXT");
  }
  if (!c.args.Has("search")) return absl::OkStatus();
  search->set_query(c.args.Get("search"));
  v1::AudienceSearchType type = v1::AUDIENCE_SEARCH_TYPE_NAME;
  if (c.args.Has("search-type")) {
    CTL_ASSIGN_OR_RETURN(type, ParseEnum<v1::AudienceSearchType>(
                                   v1::AudienceSearchType_descriptor(), "search-type",
                                   "AUDIENCE_SEARCH_TYPE_", c.args.Get("search-type")));
  }
  search->set_type(type);
  return absl::OkStatus();
}

template <typename Pagination>
absl::Status ApplyPagination(Ctx& c, Pagination* pagination) {
  if (c.args.Has("count")) {
    CTL_ASSIGN_OR_RETURN(int count, CountFlag(c));
    pagination->set_count(count);
  }
  if (c.args.Has("cursor")) pagination->set_cursor(c.args.Get("cursor"));
  return absl::OkStatus();
}

void NextPageHint(Ctx& c, const v1::PaginationOutput& p, const std::string& what) {
  if (c.format != Format::kTable || !p.has_next() || p.next().empty()) return;
  std::cerr << "More " << what << ": add --cursor " << p.next() << " (or --all for every page)"
            << (p.has_total_entries() ? absl::StrCat("; ", p.total_entries(), " in all") : "")
            << ".\n";
}

// One page, or with --all every page's audiences merged into one response (with no pagination:
// there is no next page to hint at).
template <typename Req, typename Resp>
absl::StatusOr<Resp> OneOrAllPages(
    Ctx& c, const Req& req,
    absl::Status (sa::Client::*for_each)(Req, absl::FunctionRef<bool(const Resp&)>,
                                         const sa::CallOptions&),
    absl::StatusOr<Resp> (sa::Client::*one)(const Req&, const sa::CallOptions&)) {
  if (!c.args.GetBool("all")) return (c.client.get()->*one)(req, c.call);
  Resp all;
  CTL_RETURN_IF_ERROR((c.client.get()->*for_each)(
      req,
      [&all](const Resp& page) {
        all.mutable_audiences()->MergeFrom(page.audiences());
        return true;
      },
      c.call));
  return all;
}

absl::Status AudiencesList(Ctx& c) {
  v1::ListAudiencesRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, nullptr));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplySearch(c, req.mutable_search()));
  if (req.search().query().empty() && req.search().type() == 0) req.clear_search();
  CTL_RETURN_IF_ERROR(ApplyPagination(c, req.mutable_pagination()));
  if (!c.args.Has("count") && !c.args.Has("cursor") && req.pagination().ByteSizeLong() == 0) {
    req.clear_pagination();
  }
  if (c.args.Has("include")) req.set_include(c.args.Get("include"));
  CTL_ASSIGN_OR_RETURN(
      v1::ListAudiencesResponse resp,
      OneOrAllPages(c, req, &sa::Client::ForEachAudiencesPage, &sa::Client::ListAudiences));
  if (c.format == Format::kTable && resp.audiences_size() == 0) {
    std::cerr << "No audiences found in space " << req.space_id() << ".\n";
    return absl::OkStatus();
  }
  Print(c, resp, [](const Json& j) { return AudiencesTable(j["audiences"]); });
  NextPageHint(c, resp.pagination(), "audiences");
  return absl::OkStatus();
}

absl::Status AudiencesGet(Ctx& c) {
  v1::GetAudienceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, nullptr));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "id", true, req.mutable_id()));
  if (c.args.Has("include")) req.set_include(c.args.Get("include"));
  CTL_ASSIGN_OR_RETURN(v1::GetAudienceResponse resp, c.client->GetAudience(req, c.call));
  Print(c, resp, [](const Json& j) { return AudienceFields(j["audience"]); });
  return absl::OkStatus();
}

absl::Status AudiencesCreate(Ctx& c) {
  v1::CreateAudienceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, req.mutable_audience()));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  v1::CreateAudienceInput* a = req.mutable_audience();
  if (c.args.Has("name")) a->set_name(c.args.Get("name"));
  if (c.args.Has("description")) a->set_description(c.args.Get("description"));
  if (c.args.Has("query")) a->mutable_definition()->set_query(c.args.Get("query"));
  if (c.args.Has("target-entity")) {
    a->mutable_definition()->set_target_entity(c.args.Get("target-entity"));
  }
  v1::AudienceType type = a->audience_type();
  CTL_RETURN_IF_ERROR(ApplyAudienceTypeFlag(c, &type));
  a->set_audience_type(type);
  CTL_RETURN_IF_ERROR(ApplyEnabled(c, [a](bool v) { a->set_enabled(v); }));
  CTL_RETURN_IF_ERROR(ApplyAudienceOptions(c, a->mutable_options()));
  if (c.args.Has("include-historical")) {
    a->mutable_options()->set_include_historical_data(c.args.GetBool("include-historical"));
  }
  if (a->options().ByteSizeLong() == 0) a->clear_options();
  CTL_ASSIGN_OR_RETURN(v1::CreateAudienceResponse resp, c.client->CreateAudience(req, c.call));
  Print(c, resp, [](const Json& j) { return AudienceFields(j["audience"]); });
  return absl::OkStatus();
}

absl::Status AudiencesUpdate(Ctx& c) {
  v1::UpdateAudienceForSpaceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, req.mutable_audience()));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "id", true, req.mutable_id()));
  v1::UpdateAudienceForSpaceInput* a = req.mutable_audience();
  if (c.args.Has("name")) a->set_name(c.args.Get("name"));
  if (c.args.Has("description")) a->set_description(c.args.Get("description"));
  if (c.args.Has("query")) a->mutable_definition()->set_query(c.args.Get("query"));
  CTL_RETURN_IF_ERROR(ApplyEnabled(c, [a](bool v) { a->set_enabled(v); }));
  CTL_RETURN_IF_ERROR(ApplyAudienceOptions(c, a->mutable_options()));
  if (c.args.Has("include-historical")) {
    a->mutable_options()->set_include_historical_data(c.args.GetBool("include-historical"));
  }
  if (a->options().ByteSizeLong() == 0) a->clear_options();
  if (a->ByteSizeLong() == 0) {
    return Usage("nothing to update: give --name, --description, --query, --enabled, ... or -f");
  }
  CTL_ASSIGN_OR_RETURN(v1::UpdateAudienceForSpaceResponse resp,
                       c.client->UpdateAudienceForSpace(req, c.call));
  Print(c, resp, [](const Json& j) { return AudienceFields(j["audience"]); });
  return absl::OkStatus();
}

std::string OperationStatusText(const Json& j) {
  std::string s = EnumCell(j, "/status", "OPERATION_STATUS_");
  return s.empty() ? "done" : s;
}

absl::Status AudiencesDelete(Ctx& c) {
  v1::RemoveAudienceFromSpaceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, nullptr));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "id", true, req.mutable_id()));
  CTL_ASSIGN_OR_RETURN(v1::RemoveAudienceFromSpaceResponse resp,
                       c.client->RemoveAudienceFromSpace(req, c.call));
  Print(c, resp, [&req](const Json& j) {
    return absl::StrCat("Audience ", req.id(), " deleted (", OperationStatusText(j), ").\n");
  });
  return absl::OkStatus();
}

absl::Status SchedulesList(Ctx& c) {
  v1::ListAudienceSchedulesFromSpaceAndAudienceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, nullptr));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "audience", true, req.mutable_id()));
  CTL_ASSIGN_OR_RETURN(v1::ListAudienceSchedulesFromSpaceAndAudienceResponse resp,
                       c.client->ListAudienceSchedulesFromSpaceAndAudience(req, c.call));
  if (c.format == Format::kTable && resp.audience_schedules_size() == 0) {
    std::cerr << "No schedules for audience " << req.id() << ".\n";
    return absl::OkStatus();
  }
  Print(c, resp, [](const Json& j) { return SchedulesTable(j["audienceSchedules"]); });
  return absl::OkStatus();
}

absl::Status SchedulesGet(Ctx& c) {
  v1::GetAudienceScheduleFromSpaceAndAudienceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, nullptr));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "audience", false, req.mutable_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "id", true, req.mutable_schedule_id()));
  CTL_ASSIGN_OR_RETURN(v1::GetAudienceScheduleFromSpaceAndAudienceResponse resp,
                       c.client->GetAudienceScheduleFromSpaceAndAudience(req, c.call));
  Print(c, resp, [](const Json& j) { return ScheduleFields(j["audienceSchedule"]); });
  return absl::OkStatus();
}

// --strategy, --interval, --days/--hours/--timezone into a schedule input (add or update).
template <typename Input>
absl::Status ApplyScheduleFlags(Ctx& c, Input* in) {
  const bool periodic = c.args.Has("interval");
  const bool days = c.args.Has("days") || c.args.Has("hours") || c.args.Has("timezone");
  if (periodic && days) {
    return Usage(
        "--interval (periodic) and --days/--hours/--timezone (specific days) exclude "
        "each other");
  }
  if (periodic) {
    in->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
    in->mutable_periodic()->set_interval(c.args.Get("interval"));
  }
  if (days) {
    in->set_strategy(v1::SCHEDULE_STRATEGY_SPECIFIC_DAYS);
    v1::SpecificDaysConfig* config = in->mutable_specific_days();
    if (c.args.Has("days")) {
      CTL_ASSIGN_OR_RETURN(std::vector<int> list, AsUsage(ParseDays(c.args.Get("days"))));
      config->clear_days();
      for (int d : list) config->add_days(d);
    }
    if (c.args.Has("hours")) {
      CTL_ASSIGN_OR_RETURN(std::vector<int> list,
                           AsUsage(ParseIntList("hours", c.args.Get("hours"))));
      config->clear_hours();
      for (int h : list) config->add_hours(h);
    }
    if (c.args.Has("timezone")) config->set_timezone(c.args.Get("timezone"));
  }
  if (c.args.Has("strategy")) {
    v1::ScheduleStrategy strategy;
    CTL_ASSIGN_OR_RETURN(
        strategy, ParseEnum<v1::ScheduleStrategy>(v1::ScheduleStrategy_descriptor(), "strategy",
                                                  "SCHEDULE_STRATEGY_", c.args.Get("strategy")));
    in->set_strategy(strategy);
  }
  if (in->strategy() == v1::SCHEDULE_STRATEGY_UNSPECIFIED && in->has_periodic()) {
    in->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
  }
  if (in->strategy() == v1::SCHEDULE_STRATEGY_UNSPECIFIED && in->has_specific_days()) {
    in->set_strategy(v1::SCHEDULE_STRATEGY_SPECIFIC_DAYS);
  }
  if (in->ByteSizeLong() == 0) {
    return Usage("no schedule: give --interval, or --days/--hours/--timezone, or -f");
  }
  return absl::OkStatus();
}

absl::Status SchedulesAdd(Ctx& c) {
  v1::AddAudienceScheduleToAudienceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, req.mutable_schedule()));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "audience", true, req.mutable_id()));
  CTL_RETURN_IF_ERROR(ApplyScheduleFlags(c, req.mutable_schedule()));
  CTL_ASSIGN_OR_RETURN(v1::AddAudienceScheduleToAudienceResponse resp,
                       c.client->AddAudienceScheduleToAudience(req, c.call));
  Print(c, resp, [](const Json& j) { return ScheduleFields(j["audienceSchedule"]); });
  return absl::OkStatus();
}

absl::Status SchedulesUpdate(Ctx& c) {
  v1::UpdateAudienceScheduleForAudienceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, req.mutable_schedule()));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "audience", false, req.mutable_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "id", true, req.mutable_schedule_id()));
  CTL_RETURN_IF_ERROR(ApplyScheduleFlags(c, req.mutable_schedule()));
  CTL_ASSIGN_OR_RETURN(v1::UpdateAudienceScheduleForAudienceResponse resp,
                       c.client->UpdateAudienceScheduleForAudience(req, c.call));
  Print(c, resp, [](const Json& j) { return ScheduleFields(j["audienceSchedule"]); });
  return absl::OkStatus();
}

absl::Status SchedulesDelete(Ctx& c) {
  v1::RemoveAudienceScheduleFromAudienceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, nullptr));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "audience", false, req.mutable_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "id", true, req.mutable_schedule_id()));
  CTL_ASSIGN_OR_RETURN(v1::RemoveAudienceScheduleFromAudienceResponse resp,
                       c.client->RemoveAudienceScheduleFromAudience(req, c.call));
  Print(c, resp, [&req](const Json& j) {
    return absl::StrCat("Schedule ", req.schedule_id(), " of audience ", req.id(), " deleted (",
                        OperationStatusText(j), ").\n");
  });
  return absl::OkStatus();
}

std::string PreviewStatusName(v1::AudiencePreviewStatus status) {
  std::string name = v1::AudiencePreviewStatus_Name(status);
  return absl::StartsWith(name, "AUDIENCE_PREVIEW_STATUS_") ? name.substr(24) : name;
}

absl::Status PreviewsCreate(Ctx& c) {
  v1::CreateAudiencePreviewRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, req.mutable_preview()));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  v1::CreateAudiencePreviewBetaInput* p = req.mutable_preview();
  if (c.args.Has("query")) p->mutable_definition()->set_query(c.args.Get("query"));
  if (c.args.Has("target-entity")) {
    p->mutable_definition()->set_target_entity(c.args.Get("target-entity"));
  }
  v1::AudienceType type = p->audience_type();
  CTL_RETURN_IF_ERROR(ApplyAudienceTypeFlag(c, &type));
  p->set_audience_type(type);
  CTL_RETURN_IF_ERROR(ApplyAudienceOptions(c, p->mutable_options()));
  if (p->options().ByteSizeLong() == 0) p->clear_options();
  const bool wait = c.args.GetBool("wait");
  if (!wait && (c.args.Has("wait-timeout") || c.args.Has("progress"))) {
    return Usage("--wait-timeout and --progress go with --wait");
  }
  sa::WaitOptions wait_options;
  if (c.args.Has("wait-timeout")) {
    CTL_ASSIGN_OR_RETURN(wait_options.timeout,
                         AsUsage(ParseDurationFlag("wait-timeout", c.args.Get("wait-timeout"))));
  }
  const std::string progress_flag = absl::AsciiStrToLower(c.args.Get("progress", "auto"));
  if (progress_flag != "auto" && progress_flag != "always" && progress_flag != "never") {
    return Usage("--progress is auto, always or never");
  }
  const bool progress = progress_flag == "always" || (progress_flag == "auto" && c.err_tty);

  CTL_ASSIGN_OR_RETURN(v1::CreateAudiencePreviewResponse created,
                       c.client->CreateAudiencePreview(req, c.call));
  const std::string id = created.audience_preview().id();
  if (!wait) {
    Print(c, created, [](const Json& j) {
      return RenderFields({{"Preview ID", Cell(j, "/audiencePreview/id")}});
    });
    if (c.format == Format::kTable) {
      std::cerr << "Follow it with: audiencesctl previews get --space " << req.space_id()
                << " --id " << id << "  (or create with --wait)\n";
    }
    return absl::OkStatus();
  }
  bool progress_shown = false;
  wait_options.on_poll = [&](const v1::AudiencePreview& preview, absl::Duration elapsed) {
    if (!progress) return;
    const std::string line =
        absl::StrCat("preview ", id, ": ", PreviewStatusName(preview.status()), " (",
                     elapsed < absl::Milliseconds(100)
                         ? "0s"
                         : absl::FormatDuration(absl::Trunc(elapsed, absl::Milliseconds(100))),
                     ")");
    if (c.err_tty) {
      std::cerr << "\r" << line << "\x1b[K" << std::flush;
      progress_shown = true;
    } else {
      std::cerr << line << "\n";
    }
  };
  v1::GetAudiencePreviewRequest get;
  get.set_space_id(req.space_id());
  get.set_id(id);
  absl::StatusOr<v1::AudiencePreview> done =
      c.client->WaitForAudiencePreview(get, wait_options, c.call);
  if (progress_shown) std::cerr << "\n";
  if (!done.ok()) {
    if (done.status().code() == absl::StatusCode::kDeadlineExceeded) {
      c.hint = absl::StrCat("Check later with: audiencesctl previews get --space ", req.space_id(),
                            " --id ", id);
    }
    return done.status();
  }
  v1::GetAudiencePreviewResponse resp;
  *resp.mutable_audience_preview() = *done;
  Print(c, resp, [](const Json& j) { return PreviewFields(j["audiencePreview"]); });
  if (done->status() == v1::AUDIENCE_PREVIEW_STATUS_FAILED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "preview ", id, " FAILED", done->has_failure_reason() ? ": " : "", done->failure_reason()));
  }
  return absl::OkStatus();
}

absl::Status PreviewsGet(Ctx& c) {
  v1::GetAudiencePreviewRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, nullptr));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "id", true, req.mutable_id()));
  CTL_ASSIGN_OR_RETURN(v1::GetAudiencePreviewResponse resp,
                       c.client->GetAudiencePreview(req, c.call));
  Print(c, resp, [](const Json& j) { return PreviewFields(j["audiencePreview"]); });
  return absl::OkStatus();
}

absl::Status ConsumersList(Ctx& c) {
  v1::ListAudienceConsumersFromSpaceAndAudienceRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, nullptr));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "audience", true, req.mutable_id(), "id"));
  CTL_RETURN_IF_ERROR(ApplySearch(c, req.mutable_search()));
  if (req.search().query().empty() && req.search().type() == 0) req.clear_search();
  CTL_RETURN_IF_ERROR(ApplyPagination(c, req.mutable_pagination()));
  if (!c.args.Has("count") && !c.args.Has("cursor") && req.pagination().ByteSizeLong() == 0) {
    req.clear_pagination();
  }
  if (c.args.Has("order") && !c.args.Has("sort")) return Usage("--order goes with --sort");
  if (c.args.Has("sort")) {
    v1::AudienceConsumersSortField field;
    CTL_ASSIGN_OR_RETURN(field, ParseEnum<v1::AudienceConsumersSortField>(
                                    v1::AudienceConsumersSortField_descriptor(), "sort",
                                    "AUDIENCE_CONSUMERS_SORT_FIELD_", c.args.Get("sort")));
    v1::SortDirection direction = v1::SORT_DIRECTION_ASC;
    if (c.args.Has("order")) {
      CTL_ASSIGN_OR_RETURN(direction,
                           ParseEnum<v1::SortDirection>(v1::SortDirection_descriptor(), "order",
                                                        "SORT_DIRECTION_", c.args.Get("order")));
    }
    req.mutable_sort()->set_field(field);
    req.mutable_sort()->set_direction(direction);
  }
  CTL_ASSIGN_OR_RETURN(v1::ListAudienceConsumersFromSpaceAndAudienceResponse resp,
                       OneOrAllPages(c, req, &sa::Client::ForEachAudienceConsumersPage,
                                     &sa::Client::ListAudienceConsumersFromSpaceAndAudience));
  if (c.format == Format::kTable && resp.audiences_size() == 0) {
    std::cerr << "No audiences consume audience " << req.id() << ".\n";
    return absl::OkStatus();
  }
  Print(c, resp, [](const Json& j) { return AudiencesTable(j["audiences"]); });
  NextPageHint(c, resp.pagination(), "consumers");
  return absl::OkStatus();
}

absl::Status RunsForce(Ctx& c) {
  v1::ForceExecuteAudienceRunRequest req;
  CTL_RETURN_IF_ERROR(ReadInput(c, &req, nullptr));
  CTL_RETURN_IF_ERROR(ApplySpace(c, req.mutable_space_id()));
  CTL_RETURN_IF_ERROR(ApplyId(c, "audience", true, req.mutable_audience_id(), "id"));
  CTL_ASSIGN_OR_RETURN(v1::ForceExecuteAudienceRunResponse resp,
                       c.client->ForceExecuteAudienceRun(req, c.call));
  Print(c, resp, [&req](const Json& j) {
    return RenderFields({{"Run ID", Cell(j, "/run/id")}, {"Audience", req.audience_id()}});
  });
  return absl::OkStatus();
}

absl::Status CallRpc(Ctx& c) {
  if (c.rest.empty()) return Usage("call needs an RPC name (see 'audiencesctl rpcs')");
  const std::string& rpc = c.rest[0];
  const auto* method = sa::Client::ServiceDescriptor()->FindMethodByName(rpc);
  if (method == nullptr) {
    return Usage(absl::StrCat("unknown RPC '", rpc, "'; see 'audiencesctl rpcs'"));
  }
  if (c.format == Format::kTable) return Usage("call prints json, yaml or id (-o json|yaml|id)");
  std::string json;
  if (c.rest.size() >= 2 && c.args.Has("file")) {
    return Usage("give the request as an argument or with -f, not both");
  }
  if (c.rest.size() >= 2) {
    CTL_ASSIGN_OR_RETURN(json, c.rest[1] == "-" ? ReadText("-") : c.rest[1]);
  } else if (c.args.Has("file")) {
    CTL_ASSIGN_OR_RETURN(json, ReadText(c.args.Get("file")));
  }
  if (absl::StripAsciiWhitespace(json).empty()) json = "{}";
  auto* factory = google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<Message> request(factory->GetPrototype(method->input_type())->New());
  std::unique_ptr<Message> response(factory->GetPrototype(method->output_type())->New());
  absl::Status parsed = ParseJsonInto(json, request.get());
  if (!parsed.ok()) {
    return Usage(absl::StrCat("the request is not valid proto3 JSON for ",
                              method->input_type()->full_name(), ": ", parsed.message()));
  }
  CTL_RETURN_IF_ERROR(c.client->Call(rpc, *request, response.get(), c.call));
  Print(c, *response, [](const Json& j) { return j.dump(2) + "\n"; });
  return absl::OkStatus();
}

absl::Status ListRpcs(Ctx&) {
  const auto* service = sa::Client::ServiceDescriptor();
  for (int i = 0; i < service->method_count(); ++i) {
    std::cout << service->method(i)->name() << "\n";
  }
  return absl::OkStatus();
}

absl::Status Completion(Ctx& c) {
  if (c.rest.empty() || c.rest[0] != "bash") {
    return Usage("completion needs a shell: bash");
  }
  std::cout << BashCompletion();
  return absl::OkStatus();
}

absl::Status Version(Ctx&) {
  std::cout << "audiencesctl " << AUDIENCESCTL_VERSION << "\n";
  return absl::OkStatus();
}

absl::Status HelpCommand(Ctx&) { return absl::OkStatus(); }  // Handled in Main.

// ---------------------------------------------------------------------------------------------
// The table of commands
// ---------------------------------------------------------------------------------------------

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {"audiences",
       "list",
       "--space ID [--count N] [--cursor C | --all]",
       "List the audiences of a space: one page, or every page with --all.",
       "Table columns: ID, NAME, TYPE, ENABLED, STATUS, KEY. Without --all, a table ends with\n"
       "the cursor of the next page on stderr; JSON/YAML carry it in pagination.next.",
       {{"space", nullptr},
        {"count", "Page size, 1-200 (default: the API's)."},
        {"cursor", nullptr},
        {"all", nullptr},
        {"search", nullptr},
        {"search-type", nullptr},
        {"include", nullptr},
        {"file", "Proto3 JSON of a ListAudiencesRequest ('-' = stdin)."}},
       "  audiencesctl audiences list --space spa_1 --count 50\n"
       "  audiencesctl audiences list --space spa_1 --all --search buyers -o json",
       AudiencesList},
      {"audiences",
       "get",
       "--space ID --id ID",
       "Show one audience (with --include schedules, its schedules too).",
       "",
       {{"space", nullptr},
        {"id", "Audience id (or give it as the argument)."},
        {"include", nullptr},
        {"file", "Proto3 JSON of a GetAudienceRequest ('-' = stdin)."}},
       "  audiencesctl audiences get --space spa_1 --id aud_1 --include schedules",
       AudiencesGet,
       1},
      {"audiences",
       "create",
       "--space ID --name NAME --query QUERY [--type TYPE]",
       "Create an audience.",
       "The body is a CreateAudienceInput: from -f (proto3 JSON), then the flags on top.\n"
       "--type defaults to users; linked audiences also need --target-entity.",
       {{"space", nullptr},
        {"name", nullptr},
        {"query", nullptr},
        {"type", nullptr},
        {"target-entity", nullptr},
        {"description", nullptr},
        {"enabled", nullptr},
        {"disabled", nullptr},
        {"external-ids", nullptr},
        {"backfill-days", nullptr},
        {"include-historical", nullptr},
        {"file", nullptr}},
       "  audiencesctl audiences create --space spa_1 --name Buyers \\\n"
       "      --query \"event('Order Completed').count() >= 1\" --enabled\n"
       "  echo '{\"name\":\"VIPs\",\"definition\":{\"query\":\"trait('vip') = true\"}}' |\n"
       "      audiencesctl audiences create --space spa_1 -f -",
       AudiencesCreate},
      {"audiences",
       "update",
       "--space ID --id ID [--name NAME] [--query QUERY] [--enabled=BOOL]",
       "Change an audience: only the fields given change.",
       "The body is an UpdateAudienceForSpaceInput: from -f (proto3 JSON), then the flags.",
       {{"space", nullptr},
        {"id", "Audience id (or give it as the argument)."},
        {"name", nullptr},
        {"query", nullptr},
        {"description", nullptr},
        {"enabled", nullptr},
        {"disabled", nullptr},
        {"external-ids", nullptr},
        {"backfill-days", nullptr},
        {"include-historical", nullptr},
        {"file", nullptr}},
       "  audiencesctl audiences update --space spa_1 --id aud_1 --name \"Big buyers\" "
       "--enabled=false",
       AudiencesUpdate,
       1},
      {"audiences",
       "delete",
       "--space ID --id ID",
       "Remove an audience from its space.",
       "",
       {{"space", nullptr}, {"id", "Audience id (or give it as the argument)."}},
       "  audiencesctl audiences delete --space spa_1 --id aud_1",
       AudiencesDelete,
       1},

      {"schedules",
       "list",
       "--space ID --audience ID",
       "List the schedules of a (LINKED) audience.",
       "",
       {{"space", nullptr}, {"audience", "Audience id (or give it as the argument)."}},
       "  audiencesctl schedules list --space spa_1 --audience aud_1",
       SchedulesList,
       1},
      {"schedules",
       "get",
       "--space ID --audience ID --id SCHEDULE",
       "Show one schedule.",
       "",
       {{"space", nullptr},
        {"audience", nullptr},
        {"id", "Schedule id (or give it as the argument)."}},
       "  audiencesctl schedules get --space spa_1 --audience aud_1 --id sch_1",
       SchedulesGet,
       1},
      {"schedules",
       "add",
       "--space ID --audience ID (--interval 1h | --days mon,wed --hours 9 --timezone TZ)",
       "Add a schedule to a LINKED audience.",
       "Periodic with --interval; on specific days with --days, --hours and --timezone. The\n"
       "body is an AddAudienceScheduleToAudienceAlphaInput: from -f, then the flags.",
       {{"space", nullptr},
        {"audience", "Audience id (or give it as the argument)."},
        {"interval", nullptr},
        {"days", nullptr},
        {"hours", nullptr},
        {"timezone", nullptr},
        {"strategy", nullptr},
        {"file", nullptr}},
       "  audiencesctl schedules add --space spa_1 --audience aud_1 --interval 1d\n"
       "  audiencesctl schedules add --space spa_1 --audience aud_1 --days mon,thu --hours 9,17 "
       "\\\n      --timezone America/New_York",
       SchedulesAdd,
       1},
      {"schedules",
       "update",
       "--space ID --audience ID --id SCHEDULE (--interval I | --days ...)",
       "Change a schedule.",
       "",
       {{"space", nullptr},
        {"audience", nullptr},
        {"id", "Schedule id (or give it as the argument)."},
        {"interval", nullptr},
        {"days", nullptr},
        {"hours", nullptr},
        {"timezone", nullptr},
        {"strategy", nullptr},
        {"file", nullptr}},
       "  audiencesctl schedules update --space spa_1 --audience aud_1 --id sch_1 --interval 12h",
       SchedulesUpdate,
       1},
      {"schedules",
       "delete",
       "--space ID --audience ID --id SCHEDULE",
       "Remove a schedule from an audience.",
       "",
       {{"space", nullptr},
        {"audience", nullptr},
        {"id", "Schedule id (or give it as the argument)."}},
       "  audiencesctl schedules delete --space spa_1 --audience aud_1 --id sch_1",
       SchedulesDelete,
       1},

      {"previews",
       "create",
       "--space ID --query QUERY [--type TYPE] [--wait]",
       "Start an audience preview; with --wait, poll until it is COMPLETED or FAILED.",
       "Without --wait, prints the preview id. With --wait, polls GetAudiencePreview (250ms,\n"
       "growing to 2s) showing progress on stderr when it is a terminal, then prints the\n"
       "preview; exit code 2 when it FAILED, 6 when --wait-timeout passes first.",
       {{"space", nullptr},
        {"query", nullptr},
        {"type", nullptr},
        {"target-entity", nullptr},
        {"external-ids", nullptr},
        {"backfill-days", nullptr},
        {"wait", nullptr},
        {"wait-timeout", nullptr},
        {"progress", nullptr},
        {"file", nullptr}},
       "  audiencesctl previews create --space spa_1 --type linked --target-entity accounts \\\n"
       "      --query \"entity('accounts').count() >= 1\" --wait --wait-timeout 2m",
       PreviewsCreate},
      {"previews",
       "get",
       "--space ID --id PREVIEW",
       "Show a preview: status, size, results.",
       "",
       {{"space", nullptr}, {"id", "Preview id (or give it as the argument)."}},
       "  audiencesctl previews get --space spa_1 --id prev_1",
       PreviewsGet,
       1},

      {"consumers",
       "list",
       "--space ID --audience ID [--all]",
       "List the audiences that reference (consume) an audience.",
       "",
       {{"space", nullptr},
        {"audience", "Audience id (also --id, or the argument)."},
        {"id", "Same as --audience."},
        {"count", "Page size, 1-1000 (default: the API's)."},
        {"cursor", nullptr},
        {"all", nullptr},
        {"search", nullptr},
        {"search-type", nullptr},
        {"sort", nullptr},
        {"order", nullptr},
        {"file", "Proto3 JSON of a ListAudienceConsumersFromSpaceAndAudienceRequest."}},
       "  audiencesctl consumers list --space spa_1 --audience aud_1 --sort name --order desc",
       ConsumersList,
       1},

      {"runs",
       "force",
       "--space ID --audience ID",
       "Start a run of a LINKED audience now (ForceExecuteAudienceRun).",
       "",
       {{"space", nullptr},
        {"audience", "Audience id (also --id, or the argument)."},
        {"id", "Same as --audience."}},
       "  audiencesctl runs force --space spa_1 --audience aud_1",
       RunsForce,
       1},

      {"call",
       "",
       "RPC ['{json}' | - | -f FILE]",
       "Call any RPC with a proto3 JSON request (the same JSON as grpcurl's).",
       "Prints the response as proto3 JSON (or -o yaml). Reads the request from the argument,\n"
       "from stdin ('-' or -f -), or from a file (-f FILE); none means {}.",
       {{"file", "Proto3 JSON of the request ('-' = stdin)."}},
       "  audiencesctl call ListAudiences "
       "'{\"spaceId\":\"spa_1\",\"pagination\":{\"count\":10}}'",
       CallRpc,
       2,
       true,
       true},
      {"rpcs",
       "",
       "",
       "List the RPCs of segment.audiences.v1.AudiencesService.",
       "",
       {},
       "  audiencesctl rpcs",
       ListRpcs,
       0,
       false},
      {"completion",
       "",
       "bash",
       "Print the bash completion script.",
       "Load it in the current shell with: source <(audiencesctl completion bash)\n"
       "or install it: audiencesctl completion bash > "
       "/usr/share/bash-completion/completions/audiencesctl",
       {},
       "  audiencesctl completion bash > ~/.local/share/bash-completion/completions/audiencesctl\n"
       "  source <(audiencesctl completion bash)",
       Completion,
       1,
       false},
      {"version",
       "",
       "",
       "Print the version.",
       "",
       {},
       "  audiencesctl version",
       Version,
       0,
       false},
      {"help",
       "",
       "[COMMAND]",
       "Help of a command.",
       "",
       {},
       "  audiencesctl help audiences list",
       HelpCommand,
       2,
       false},
  };
  return kCommands;
}

bool IsGroup(const std::string& word) {
  for (const Command& c : Commands()) {
    if (c.group == word && !c.verb.empty()) return true;
  }
  return false;
}

std::vector<std::string> VerbsOf(const std::string& group) {
  std::vector<std::string> verbs;
  for (const Command& c : Commands()) {
    if (c.group == group) verbs.push_back(c.verb);
  }
  return verbs;
}

std::vector<std::string> Groups() {
  std::vector<std::string> groups;
  for (const Command& c : Commands()) {
    if (groups.empty() || groups.back() != c.group) groups.push_back(c.group);
  }
  return groups;
}

// Finds the command named by the first positionals; `used` = how many words it took.
const Command* FindCommand(const std::vector<std::string>& words, size_t* used) {
  if (words.empty()) return nullptr;
  for (const Command& c : Commands()) {
    if (c.verb.empty() && c.group == words[0]) {
      *used = 1;
      return &c;
    }
    if (!c.verb.empty() && words.size() >= 2 && c.group == words[0] && c.verb == words[1]) {
      *used = 2;
      return &c;
    }
  }
  return nullptr;
}

int UsageExit(const std::string& message, const std::string& help_hint) {
  std::cerr << "audiencesctl: " << message << "\n"
            << "Run 'audiencesctl " << help_hint << (help_hint.empty() ? "" : " ")
            << "--help' for usage.\n";
  return kExitUsage;
}

// Prints help for `words` (a command, a group, or nothing = top).
int PrintHelp(const std::vector<std::string>& words) {
  size_t used = 0;
  if (words.empty()) {
    std::cout << TopHelp();
    return kExitOk;
  }
  if (const Command* c = FindCommand(words, &used); c != nullptr) {
    std::cout << CommandHelp(*c);
    return kExitOk;
  }
  if (IsGroup(words[0])) {
    std::cout << GroupHelp(words[0]);
    return kExitOk;
  }
  return UsageExit(absl::StrCat("no help for '", absl::StrJoin(words, " "), "'"), "");
}

}  // namespace

int ExitCodeFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 2;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
      return 3;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return 4;
    case absl::StatusCode::kResourceExhausted:
      return 5;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
      return 6;
    default:
      return 7;
  }
}

std::vector<std::string> CommandPaths() {
  std::vector<std::string> out;
  for (const Command& c : Commands()) out.push_back(c.Path());
  return out;
}

int Main(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> parsed = ParseArgs(argv, AllFlags());
  if (!parsed.ok()) return UsageExit(std::string(parsed.status().message()), "");
  Ctx c;
  c.args = std::move(*parsed);
  const std::vector<std::string>& words = c.args.positionals;
  const bool help = c.args.GetBool("help");

  if (words.empty()) {
    if (help) return PrintHelp({});
    std::cerr << TopHelp();
    return UsageExit("missing command", "");
  }
  size_t used = 0;
  const Command* command = FindCommand(words, &used);
  if (command == nullptr) {
    if (IsGroup(words[0])) {
      if (help || words.size() == 1) {
        if (help) return PrintHelp({words[0]});
        std::cerr << GroupHelp(words[0]);
        return UsageExit(
            absl::StrCat(words[0], " needs a verb: ", absl::StrJoin(VerbsOf(words[0]), ", ")),
            words[0]);
      }
      return UsageExit(absl::StrCat("unknown verb '", words[1], "' for ", words[0], " (",
                                    absl::StrJoin(VerbsOf(words[0]), ", "), ")"),
                       words[0]);
    }
    return UsageExit(absl::StrCat("unknown command '", words[0],
                                  "' (commands: ", absl::StrJoin(Groups(), ", "), ")"),
                     "");
  }
  c.command = command;
  c.rest.assign(words.begin() + used, words.end());
  if (command->group == "help") return help ? PrintHelp({"help"}) : PrintHelp(c.rest);
  if (help) return PrintHelp({words.begin(), words.begin() + used});

  // The flags given must be global or the command's own.
  std::set<std::string> allowed(GlobalFlags().begin(), GlobalFlags().end());
  for (const CommandFlag& f : command->flags) allowed.insert(f.name);
  for (const auto& [name, value] : c.args.flags) {
    if (allowed.count(name) == 0) {
      return UsageExit(absl::StrCat("flag --", name, " does not apply to '", command->Path(), "'"),
                       command->Path());
    }
  }
  if (static_cast<int>(c.rest.size()) > command->max_args) {
    return UsageExit(absl::StrCat("unexpected argument '", c.rest[command->max_args], "'"),
                     command->Path());
  }

  c.out_tty = isatty(STDOUT_FILENO) == 1;
  c.err_tty = isatty(STDERR_FILENO) == 1;
  if (c.args.Has("output")) {
    const std::string o = absl::AsciiStrToLower(c.args.Get("output"));
    if (o == "table") {
      c.format = Format::kTable;
    } else if (o == "json") {
      c.format = Format::kJson;
    } else if (o == "yaml" || o == "yml") {
      c.format = Format::kYaml;
    } else if (o == "id") {
      c.format = Format::kId;
    } else {
      return UsageExit(
          absl::StrCat("-o is table, json, yaml or id, not '", c.args.Get("output"), "'"),
          command->Path());
    }
  } else {
    c.format = c.out_tty && !command->default_json ? Format::kTable : Format::kJson;
  }

  if (command->uses_client) {
    sa::ClientOptions options;
    options.address = c.args.Get("addr");
    options.workspace = c.args.Get("workspace", Env("AUDIENCES_WORKSPACE"));
    options.user_agent = absl::StrCat("audiencesctl/", AUDIENCESCTL_VERSION);
    if (c.args.Has("timeout")) {
      absl::StatusOr<absl::Duration> t =
          AsUsage(ParseDurationFlag("timeout", c.args.Get("timeout")));
      if (!t.ok()) return UsageExit(std::string(t.status().message()), command->Path());
      options.timeout = *t;
    }
    const bool tls = c.args.GetBool("tls") || c.args.Has("ca-cert") || c.args.Has("cert") ||
                     c.args.Has("key") || c.args.Has("server-name");
    if (tls) {
      absl::StatusOr<sa::TlsOptions> t =
          sa::LoadTlsFiles(c.args.Get("ca-cert"), c.args.Get("cert"), c.args.Get("key"));
      if (!t.ok()) return UsageExit(std::string(t.status().message()), command->Path());
      options.tls = std::move(*t);
      options.tls.server_name_override = c.args.Get("server-name");
    }
    c.client = std::make_unique<sa::Client>(std::move(options));
    c.call.no_cache = c.args.GetBool("no-cache");
  }

  absl::Status status = command->run(c);
  if (status.ok()) return kExitOk;
  if (IsUsage(status)) return UsageExit(std::string(status.message()), command->Path());
  std::cout.flush();
  std::cerr << "Error: " << sa::FormatError(status);
  if (status.code() == absl::StatusCode::kUnavailable && c.client != nullptr) {
    std::cerr << "  (gateway " << c.client->address()
              << "; set --addr or $AUDIENCES_GATEWAY_ADDR)\n";
  }
  if (!c.hint.empty()) std::cerr << c.hint << "\n";
  return ExitCodeFor(status.code());
}

// ---------------------------------------------------------------------------------------------
// Bash completion, generated from the same tables.
// ---------------------------------------------------------------------------------------------

std::string BashCompletion() {
  std::vector<std::string> value_flags;
  for (const FlagSpec& f : AllFlags()) {
    if (!f.takes_value) continue;
    value_flags.push_back(absl::StrCat("--", f.name));
    if (f.short_name != 0) value_flags.push_back(absl::StrCat("-", std::string(1, f.short_name)));
  }
  std::vector<std::string> global;
  for (const std::string& name : GlobalFlags()) {
    global.push_back(absl::StrCat("--", name));
    const FlagSpec* f = Spec(name);
    if (f->short_name != 0) global.push_back(absl::StrCat("-", std::string(1, f->short_name)));
  }
  std::vector<std::string> rpcs;
  const auto* service = sa::Client::ServiceDescriptor();
  for (int i = 0; i < service->method_count(); ++i) rpcs.push_back(service->method(i)->name());

  std::string out =
      "# bash completion for audiencesctl (generated by `audiencesctl completion bash`).\n"
      "#   source <(audiencesctl completion bash)\n"
      "# or install: audiencesctl completion bash > "
      "/usr/share/bash-completion/completions/audiencesctl\n"
      "_audiencesctl() {\n"
      "  local cur prev i w\n"
      "  cur=\"${COMP_WORDS[COMP_CWORD]}\"\n"
      "  prev=\"\"\n"
      "  if ((COMP_CWORD > 0)); then prev=\"${COMP_WORDS[COMP_CWORD-1]}\"; fi\n"
      "  local value_flags=\" " +
      absl::StrJoin(value_flags, " ") +
      " \"\n"
      "  local words=()\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    w=\"${COMP_WORDS[i]}\"\n"
      "    if [[ \"$value_flags\" == *\" $w \"* ]]; then ((i++)); continue; fi\n"
      "    [[ \"$w\" == -* ]] && continue\n"
      "    words+=(\"$w\")\n"
      "  done\n"
      "  case \"$prev\" in\n"
      "    -o|--output) COMPREPLY=($(compgen -W \"table json yaml id\" -- \"$cur\")); return ;;\n"
      "    -f|--file|--ca-cert|--cert|--key) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
      "    --type) COMPREPLY=($(compgen -W \"users accounts linked\" -- \"$cur\")); return ;;\n"
      "    --include) COMPREPLY=($(compgen -W \"schedules\" -- \"$cur\")); return ;;\n"
      "    --search-type) COMPREPLY=($(compgen -W \"name key definition\" -- \"$cur\")); "
      "return ;;\n"
      "    --sort) COMPREPLY=($(compgen -W \"name created-at updated-at\" -- \"$cur\")); "
      "return ;;\n"
      "    --order) COMPREPLY=($(compgen -W \"asc desc\" -- \"$cur\")); return ;;\n"
      "    --strategy) COMPREPLY=($(compgen -W \"periodic specific-days\" -- \"$cur\")); "
      "return ;;\n"
      "    --interval) COMPREPLY=($(compgen -W \"15m 30m 1h 2h 4h 6h 8h 12h 1d\" -- \"$cur\")); "
      "return ;;\n"
      "    --days) COMPREPLY=($(compgen -W \"sun mon tue wed thu fri sat\" -- \"$cur\")); "
      "return ;;\n"
      "    --progress) COMPREPLY=($(compgen -W \"auto always never\" -- \"$cur\")); return ;;\n"
      "  esac\n"
      "  if [[ \"$value_flags\" == *\" $prev \"* ]]; then COMPREPLY=(); return; fi\n"
      "  local key=\"${words[0]}\"\n"
      "  case \"$key\" in\n";
  for (const std::string& group : Groups()) {
    if (IsGroup(group)) absl::StrAppend(&out, "    ", group, ") key=\"$key ${words[1]}\" ;;\n");
  }
  absl::StrAppend(&out,
                  "  esac\n"
                  "  if [[ \"$cur\" == -* ]]; then\n"
                  "    local flags=\"",
                  absl::StrJoin(global, " "),
                  "\"\n"
                  "    case \"$key\" in\n");
  for (const Command& c : Commands()) {
    std::vector<std::string> flags;
    for (const CommandFlag& f : c.flags) {
      flags.push_back(absl::StrCat("--", f.name));
      const FlagSpec* spec = Spec(f.name);
      if (spec->short_name != 0) {
        flags.push_back(absl::StrCat("-", std::string(1, spec->short_name)));
      }
    }
    if (flags.empty()) continue;
    absl::StrAppend(&out, "      \"", c.Path(), "\") flags=\"$flags ", absl::StrJoin(flags, " "),
                    "\" ;;\n");
  }
  absl::StrAppend(&out,
                  "    esac\n"
                  "    COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n"
                  "    return\n"
                  "  fi\n"
                  "  case \"${#words[@]}\" in\n"
                  "    0) COMPREPLY=($(compgen -W \"",
                  absl::StrJoin(Groups(), " "),
                  "\" -- \"$cur\")) ;;\n"
                  "    1)\n"
                  "      case \"${words[0]}\" in\n");
  for (const std::string& group : Groups()) {
    if (!IsGroup(group)) continue;
    absl::StrAppend(&out, "        ", group, ") COMPREPLY=($(compgen -W \"",
                    absl::StrJoin(VerbsOf(group), " "), "\" -- \"$cur\")) ;;\n");
  }
  absl::StrAppend(&out, "        call) COMPREPLY=($(compgen -W \"", absl::StrJoin(rpcs, " "),
                  "\" -- \"$cur\")) ;;\n"
                  "        completion) COMPREPLY=($(compgen -W \"bash\" -- \"$cur\")) ;;\n"
                  "        help) COMPREPLY=($(compgen -W \"",
                  absl::StrJoin(Groups(), " "),
                  "\" -- \"$cur\")) ;;\n"
                  "      esac ;;\n"
                  "    2)\n"
                  "      if [[ \"${words[0]}\" == help ]]; then\n"
                  "        case \"${words[1]}\" in\n");
  for (const std::string& group : Groups()) {
    if (!IsGroup(group)) continue;
    absl::StrAppend(&out, "          ", group, ") COMPREPLY=($(compgen -W \"",
                    absl::StrJoin(VerbsOf(group), " "), "\" -- \"$cur\")) ;;\n");
  }
  absl::StrAppend(&out,
                  "        esac\n"
                  "      fi ;;\n"
                  "  esac\n"
                  "}\n"
                  "complete -F _audiencesctl audiencesctl\n");
  return out;
}

}  // namespace audiencesctl
