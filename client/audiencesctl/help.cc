// audiencesctl's flags, help texts and bash completion, all generated from the command table.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "audiencesctl/command.h"
#include "audiencesctl/commands.h"
#include "segment_audiences/client.h"

namespace audiencesctl {
namespace {

namespace sa = ::segment_audiences;

bool IsGroupName(const std::string& word) {
  for (const Command& c : Commands()) {
    if (c.Group() == word && c.HasVerb()) return true;
  }
  return false;
}

}  // namespace

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
      {"idempotency-key", 0, true, "KEY",
       "Writes: metadata idempotency-key; the same command again with the same KEY gets the "
       "first answer instead of writing twice."},
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
  static const std::vector<std::string> kGlobal = {
      "addr", "workspace",   "timeout",  "output",          "tls", "ca-cert", "cert",
      "key",  "server-name", "no-cache", "idempotency-key", "help"};
  return kGlobal;
}

std::vector<std::string> VerbsOf(const std::string& group) {
  std::vector<std::string> verbs;
  for (const Command& c : Commands()) {
    if (c.Group() == group && c.HasVerb()) verbs.push_back(c.path.substr(group.size() + 1));
  }
  return verbs;
}

std::vector<std::string> Groups() {
  std::vector<std::string> groups;
  for (const Command& c : Commands()) {
    if (groups.empty() || groups.back() != c.Group()) groups.push_back(c.Group());
  }
  return groups;
}

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
    if (c.path == "help") continue;
    lines.emplace_back(c.HasVerb() ? c.path : absl::StrCat(c.path, " ", c.synopsis), c.summary);
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
      "  AUDIENCE_ID=$(audiencesctl audiences list --space spa_1 --count 1 -o id)\n"
      "  audiencesctl call GetAudience "
      "\"{\\\"spaceId\\\":\\\"spa_1\\\",\\\"id\\\":\\\"$AUDIENCE_ID\\\"}\"\n"
      "\nThe examples of each command use $AUDIENCE_ID, $SCHEDULE_ID and $PREVIEW_ID: set them\n"
      "to ids of yours (as above, with -o id).\n");
  return out;
}

std::string GroupHelp(const std::string& group) {
  std::string out = absl::StrCat("Usage: audiencesctl ", group, " VERB [flags]\n\nVerbs:\n");
  for (const Command& c : Commands()) {
    if (c.Group() != group || !c.HasVerb()) continue;
    std::string left = c.path.substr(group.size() + 1);
    if (left.size() < 10) left.append(10 - left.size(), ' ');
    absl::StrAppend(&out, "  ", left, c.summary, "\n      audiencesctl ", c.path, " ", c.synopsis,
                    "\n");
  }
  absl::StrAppend(&out, "\nRun 'audiencesctl ", group, " VERB --help' for a verb's flags.\n");
  return out;
}

std::string CommandHelp(const Command& c) {
  std::string out = absl::StrCat("Usage: audiencesctl ", c.path, c.synopsis.empty() ? "" : " ",
                                 c.synopsis, "\n\n", c.summary, "\n");
  if (!c.description.empty()) absl::StrAppend(&out, "\n", c.description, "\n");
  if (!c.flags.empty()) {
    out += "\nFlags:\n";
    for (const FlagUse& f : c.flags) out += FlagLine(*Spec(f.name), f.help);
  }
  absl::StrAppend(&out, "\n", GlobalFlagsHelp(), "\nExample:\n", c.example, "\n\n", kExitCodesHelp);
  return out;
}

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
    if (IsGroupName(group)) absl::StrAppend(&out, "    ", group, ") key=\"$key ${words[1]}\" ;;\n");
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
    for (const FlagUse& f : c.flags) {
      flags.push_back(absl::StrCat("--", f.name));
      const FlagSpec* spec = Spec(f.name);
      if (spec->short_name != 0) {
        flags.push_back(absl::StrCat("-", std::string(1, spec->short_name)));
      }
    }
    if (flags.empty()) continue;
    absl::StrAppend(&out, "      \"", c.path, "\") flags=\"$flags ", absl::StrJoin(flags, " "),
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
    if (!IsGroupName(group)) continue;
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
    if (!IsGroupName(group)) continue;
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
