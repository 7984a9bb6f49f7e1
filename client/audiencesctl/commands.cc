#include "audiencesctl/commands.h"

#include <grpc/support/log.h>
#include <unistd.h>

#include <iostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "audiencesctl/args.h"
#include "audiencesctl/command.h"
#include "segment_audiences/client.h"

namespace audiencesctl {
namespace {

namespace sa = ::segment_audiences;

// gRPC core's own log lines (e.g. a TLS handshake failing) are not for audiencesctl's users:
// the error that follows says what happened.
void DropGrpcLog(gpr_log_func_args*) {}

// Finds the command named by the first positionals; `used` = how many words it took.
const Command* FindCommand(const std::vector<std::string>& words, size_t* used) {
  if (words.empty()) return nullptr;
  for (const Command& c : Commands()) {
    if (!c.HasVerb() && c.path == words[0]) {
      *used = 1;
      return &c;
    }
    if (c.HasVerb() && words.size() >= 2 && c.path == words[0] + " " + words[1]) {
      *used = 2;
      return &c;
    }
  }
  return nullptr;
}

bool IsGroup(const std::string& word) {
  for (const Command& c : Commands()) {
    if (c.HasVerb() && c.Group() == word) return true;
  }
  return false;
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
  return UsageExit(
      absl::StrCat("no help for '", absl::StrJoin(words, " "), "'", DidYouMean(words[0], Groups())),
      "");
}

// Words that name no command: which group or verb was meant.
int UnknownCommand(const std::vector<std::string>& words, bool help) {
  if (!IsGroup(words[0])) {
    return UsageExit(
        absl::StrCat("unknown command '", words[0], "'", DidYouMean(words[0], Groups()),
                     " (commands: ", absl::StrJoin(Groups(), ", "), ")"),
        "");
  }
  if (help) return PrintHelp({words[0]});
  const std::vector<std::string> verbs = VerbsOf(words[0]);
  if (words.size() == 1) {
    std::cerr << GroupHelp(words[0]);
    return UsageExit(absl::StrCat(words[0], " needs a verb: ", absl::StrJoin(verbs, ", ")),
                     words[0]);
  }
  return UsageExit(absl::StrCat("unknown verb '", words[1], "' for ", words[0],
                                DidYouMean(words[1], verbs), " (", absl::StrJoin(verbs, ", "), ")"),
                   words[0]);
}

// Flags given that are not the command's: which was meant, or that it belongs elsewhere.
std::string CheckFlags(const Command& command, const Args& args) {
  std::vector<std::string> allowed(GlobalFlags().begin(), GlobalFlags().end());
  for (const FlagUse& f : command.flags) allowed.push_back(f.name);
  std::vector<std::string> dashed;
  for (const std::string& name : allowed) dashed.push_back("--" + name);
  for (const std::string& typed : args.unknown) {
    return absl::StrCat("unknown flag ", typed, " for '", command.path, "'",
                        DidYouMean(typed, dashed));
  }
  for (const auto& [name, value] : args.flags) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return absl::StrCat("flag --", name, " does not apply to '", command.path, "'");
    }
  }
  return "";
}

absl::Status SetFormat(Ctx& c) {
  if (!c.args.Has("output")) {
    c.format = c.out_tty && !c.command->default_json ? Format::kTable : Format::kJson;
    return absl::OkStatus();
  }
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
    return Usage(absl::StrCat("-o is table, json, yaml or id, not '", c.args.Get("output"), "'",
                              DidYouMean(o, {"table", "json", "yaml", "id"})));
  }
  return absl::OkStatus();
}

absl::Status MakeClient(Ctx& c) {
  sa::ClientOptions options;
  options.address = c.args.Get("addr");
  options.workspace = c.args.Get("workspace", Env("AUDIENCES_WORKSPACE"));
  options.user_agent = absl::StrCat("audiencesctl/", VersionString());
  if (c.args.Has("timeout")) {
    absl::StatusOr<absl::Duration> t = ParseDurationFlag("timeout", c.args.Get("timeout"));
    if (!t.ok()) return Usage(t.status().message());
    options.timeout = *t;
  }
  const bool tls = c.args.GetBool("tls") || c.args.Has("ca-cert") || c.args.Has("cert") ||
                   c.args.Has("key") || c.args.Has("server-name");
  if (tls) {
    absl::StatusOr<sa::TlsOptions> t =
        sa::LoadTlsFiles(c.args.Get("ca-cert"), c.args.Get("cert"), c.args.Get("key"));
    if (!t.ok()) return Usage(t.status().message());
    options.tls = std::move(*t);
    options.tls.server_name_override = c.args.Get("server-name");
  }
  gpr_set_log_function(DropGrpcLog);
  c.client = std::make_unique<sa::Client>(std::move(options));
  c.call.no_cache = c.args.GetBool("no-cache");
  if (c.args.Has("idempotency-key")) {
    c.call.metadata.emplace_back("idempotency-key", c.args.Get("idempotency-key"));
  }
  return absl::OkStatus();
}

// The status as FormatError prints it, each fact once: what a field line says is cut from the
// message ("...HTTP 422: name is required" + "field name: name is required"), and durations
// are rounded for people.
std::string ErrorText(const absl::Status& status) {
  std::string message(status.message());
  for (const sa::FieldViolation& v : sa::GetErrorDetails(status).field_violations) {
    for (const std::string& said : {absl::StrCat(v.field, ": ", v.description), v.description}) {
      const size_t at = said.empty() ? std::string::npos : message.find(said);
      if (at == std::string::npos) continue;
      message.erase(at, said.size());
      break;
    }
  }
  for (bool again = true; again;) {
    const std::string before = message;
    absl::StrReplaceAll({{"; ; ", "; "}, {": ; ", ": "}}, &message);
    message = std::string(absl::StripSuffix(absl::StripSuffix(message, " "), ";"));
    message = std::string(absl::StripSuffix(absl::StripPrefix(message, "; "), ":"));
    again = message != before;
  }
  if (message.empty()) message = "invalid fields";
  absl::Status shown(status.code(), message);
  status.ForEachPayload([&shown](absl::string_view url, const absl::Cord& payload) {
    shown.SetPayload(url, payload);
  });
  return HumanizeDurations(sa::FormatError(shown));
}

// The error of a failed call: the status, the gateway, the hint.
int CallFailed(const Ctx& c, const absl::Status& status) {
  std::cout.flush();
  std::cerr << "Error: " << ErrorText(status);
  if (status.code() == absl::StatusCode::kUnavailable && c.client != nullptr) {
    std::cerr << "  (gateway " << c.client->address()
              << (c.args.GetBool("tls") ? "; is it serving TLS?" : "")
              << "; set --addr or $AUDIENCES_GATEWAY_ADDR)\n";
  }
  if (!c.hint.empty()) std::cerr << c.hint << "\n";
  return ExitCodeFor(status.code());
}

}  // namespace

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = [] {
    std::vector<Command> all;
    for (auto group : {AudienceCommands, ScheduleCommands, PreviewCommands, ConsumerCommands,
                       RunCommands, ToolCommands}) {
      std::vector<Command> more = group();
      all.insert(all.end(), more.begin(), more.end());
    }
    return all;
  }();
  return kCommands;
}

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
  for (const Command& c : Commands()) out.push_back(c.path);
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
    if (!c.args.unknown.empty()) {
      return UsageExit(absl::StrCat("unknown flag ", c.args.unknown[0]), "");
    }
    std::cerr << TopHelp();
    return UsageExit("missing command", "");
  }
  size_t used = 0;
  const Command* command = FindCommand(words, &used);
  if (command == nullptr) return UnknownCommand(words, help);
  c.command = command;
  c.rest.assign(words.begin() + used, words.end());
  if (command->path == "help") return help ? PrintHelp({"help"}) : PrintHelp(c.rest);
  if (help) return PrintHelp({words.begin(), words.begin() + used});
  if (std::string bad = CheckFlags(*command, c.args); !bad.empty()) {
    return UsageExit(bad, command->path);
  }
  if (static_cast<int>(c.rest.size()) > command->max_args) {
    return UsageExit(absl::StrCat("unexpected argument '", c.rest[command->max_args], "'"),
                     command->path);
  }
  c.out_tty = isatty(STDOUT_FILENO) == 1;
  c.err_tty = isatty(STDERR_FILENO) == 1;
  absl::Status status = SetFormat(c);
  if (status.ok() && command->uses_client) status = MakeClient(c);
  if (status.ok()) status = command->run != nullptr ? command->run(c) : RunRpcCommand(c);
  if (status.ok()) return kExitOk;
  if (IsUsage(status)) return UsageExit(std::string(status.message()), command->path);
  return CallFailed(c, status);
}

}  // namespace audiencesctl
