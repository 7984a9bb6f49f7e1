// An audiencesctl command described as data, the context it runs in, and the generic runner.
//
// A command is a Command value: its path, help, the flags it takes, and either how it maps onto
// an RPC (the request field -f fills, the ids, which flag fills which field, which fields are
// required, how the answer prints) or a custom run function. RunRpcCommand() is the one runner
// of every RPC command: read -f, apply --space and the ids, apply the flags, check the required
// fields (a missing one is a usage error and nothing is sent), call, print.
#ifndef SAG_CLIENT_AUDIENCESCTL_COMMAND_H_
#define SAG_CLIENT_AUDIENCESCTL_COMMAND_H_

#include <google/protobuf/message.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "audiencesctl/args.h"
#include "audiencesctl/output.h"
#include "segment_audiences/client.h"

namespace audiencesctl {

struct Ctx;
using Json = nlohmann::json;
using google::protobuf::Message;
using Handler = absl::Status (*)(Ctx&);
// Extra request logic after the flags are applied (flags that depend on each other).
using Prepare = absl::Status (*)(Ctx&, Message* request, Message* body);
// The table form of an answer (the response and the request as JSON, defaults included).
using TableFn = std::string (*)(const Json& response, const Json& request);

// A flag a command takes; help == nullptr: the flag's own help.
struct FlagUse {
  const char* name;
  const char* help = nullptr;
};

// Flag `flag` fills field `field` (dotted proto names, from the body, else the request); enums
// read "users", "USERS" or "AUDIENCE_TYPE_USERS" with `enum_prefix` "AUDIENCE_TYPE_".
struct Fill {
  const char* flag;
  const char* field;
  const char* enum_prefix = "";
};

// An id: --flag (or --alias), or the positional argument when `positional`; into `field` of
// the request.
struct IdSpec {
  const char* flag;
  const char* field;
  bool positional = true;
  const char* alias = nullptr;
};

struct Command {
  explicit Command(std::string p) : path(std::move(p)) {}
  std::string path;  // "audiences list", "call"
  std::string synopsis;
  std::string summary;
  std::string description;
  std::vector<FlagUse> flags;
  std::string example;
  // An RPC command (run == nullptr):
  std::string rpc;   // "ListAudiences"
  std::string body;  // The request field -f (as the body) and the flags fill; "" = the request.
  std::vector<IdSpec> ids;
  std::vector<Fill> fills;
  std::vector<std::string> required;  // Fields of the body that must be set, by their flag.
  Prepare prepare = nullptr;
  TableFn table = nullptr;
  std::string listing;   // A listing's repeated field ("audiences"): --all, the next-page hint.
  std::string if_empty;  // Table mode, nothing listed: this on stderr ({space}, {id}).
  // A custom command:
  Handler run = nullptr;
  int max_args = 0;         // Positional arguments after the command words.
  bool uses_client = true;  // Calls the gateway.
  bool default_json = false;

  Command& Synopsis(std::string s) { return synopsis = std::move(s), *this; }
  Command& Summary(std::string s) { return summary = std::move(s), *this; }
  Command& Description(std::string s) { return description = std::move(s), *this; }
  Command& Flags(std::vector<FlagUse> f) { return flags = std::move(f), *this; }
  Command& Example(std::string e) { return example = std::move(e), *this; }
  Command& Rpc(std::string r, std::string b = "") {
    rpc = std::move(r);
    body = std::move(b);
    return *this;
  }
  Command& Ids(std::vector<IdSpec> i) { return ids = std::move(i), max_args = 1, *this; }
  Command& Fills(std::vector<Fill> f) { return fills = std::move(f), *this; }
  Command& Required(std::vector<std::string> r) { return required = std::move(r), *this; }
  Command& Then(Prepare p) { return prepare = p, *this; }
  Command& Table(TableFn t) { return table = t, *this; }
  Command& Listing(std::string field, std::string empty) {
    listing = std::move(field);
    if_empty = std::move(empty);
    return *this;
  }
  Command& Run(Handler h, int args = 0, bool client = false) {
    run = h;
    max_args = args;
    uses_client = client;
    return *this;
  }
  Command& DefaultJson() { return default_json = true, *this; }
  std::string Group() const { return path.substr(0, path.find(' ')); }
  bool HasVerb() const { return path.find(' ') != std::string::npos; }
};

// The commands of each group (commands_*.cc) and all of them, in help order.
std::vector<Command> AudienceCommands();
std::vector<Command> ScheduleCommands();
std::vector<Command> ConsumerCommands();
std::vector<Command> PreviewCommands();
std::vector<Command> RunCommands();
std::vector<Command> ToolCommands();
const std::vector<Command>& Commands();

struct Ctx {
  const Command* command = nullptr;
  Args args;
  std::vector<std::string> rest;  // Positionals after the command words.
  Format format = Format::kJson;
  bool out_tty = false;
  bool err_tty = false;
  std::unique_ptr<segment_audiences::Client> client;
  segment_audiences::CallOptions call;
  std::string hint;  // Printed after an error.
};

// A usage error: exit code 1, with a pointer to --help.
absl::Status Usage(absl::string_view message);
bool IsUsage(const absl::Status& status);
std::string Env(const char* name);

// Reads a file ("-" = stdin); a usage error saying why it cannot.
absl::StatusOr<std::string> ReadText(const std::string& path);
// Proto3 JSON into `message`; errors say where (line, column) and what was valid.
absl::Status ParseJsonInto(const std::string& text, Message* message);
// Enum value of `d` from "users", "USERS" or "AUDIENCE_TYPE_USERS" ('-' reads as '_').
absl::StatusOr<int> ParseEnumFlag(const google::protobuf::EnumDescriptor* d, const char* flag,
                                  const std::string& prefix, const std::string& text);

// The request of an RPC command built from -f and the flags, checked; `body` (out) is its body.
absl::StatusOr<std::unique_ptr<Message>> BuildRequest(Ctx& c, Message** body);
// One call, with a status line on a terminal while the call waits (rate-limit queue).
absl::Status CallRpc(Ctx& c, const std::string& rpc, const Message& request, Message* response);
// The generic runner of RPC commands.
absl::Status RunRpcCommand(Ctx& c);
// Prints `message` in the context's format (`table` for tables).
void Print(Ctx& c, const Message& message, const Json& request, TableFn table);

// A status line on stderr: "\r<text>\x1b[K", cut to the terminal's width.
void ShowStatusLine(const std::string& text);
int TerminalWidth();

// Help and completion (help.cc).
std::string TopHelp();
std::string GroupHelp(const std::string& group);
std::string CommandHelp(const Command& c);
const std::vector<FlagSpec>& AllFlags();
const FlagSpec* Spec(absl::string_view name);
const std::vector<std::string>& GlobalFlags();
std::vector<std::string> Groups();
std::vector<std::string> VerbsOf(const std::string& group);

}  // namespace audiencesctl

#endif  // SAG_CLIENT_AUDIENCESCTL_COMMAND_H_
