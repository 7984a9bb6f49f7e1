// The commands that are not one RPC each: call (any RPC from proto3 JSON), rpcs, completion,
// version, help.
#include <google/protobuf/descriptor.h>

#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "audiencesctl/command.h"
#include "audiencesctl/commands.h"

#ifndef AUDIENCESCTL_VERSION
#define AUDIENCESCTL_VERSION "dev"
#endif

namespace audiencesctl {
namespace {

namespace sa = ::segment_audiences;

std::vector<std::string> RpcNames() {
  std::vector<std::string> names;
  const auto* service = sa::Client::ServiceDescriptor();
  for (int i = 0; i < service->method_count(); ++i) names.push_back(service->method(i)->name());
  return names;
}

absl::Status CallAny(Ctx& c) {
  if (c.rest.empty()) return Usage("call needs an RPC name (see 'audiencesctl rpcs')");
  const std::string& rpc = c.rest[0];
  const auto* method = sa::Client::ServiceDescriptor()->FindMethodByName(rpc);
  if (method == nullptr) {
    return Usage(absl::StrCat("unknown RPC '", rpc, "'", DidYouMean(rpc, RpcNames()),
                              "; see 'audiencesctl rpcs'"));
  }
  if (c.format == Format::kTable) return Usage("call prints json, yaml or id (-o json|yaml|id)");
  if (c.rest.size() >= 2 && c.args.Has("file")) {
    return Usage("give the request as an argument or with -f, not both");
  }
  std::string json;
  if (c.rest.size() >= 2 || c.args.Has("file")) {
    const bool from_arg = c.rest.size() >= 2 && c.rest[1] != "-";
    absl::StatusOr<std::string> text =
        from_arg ? c.rest[1] : ReadText(c.rest.size() >= 2 ? "-" : c.args.Get("file"));
    if (!text.ok()) return text.status();
    json = *text;
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
  absl::Status s = CallRpc(c, rpc, *request, response.get());
  if (!s.ok()) return s;
  Print(c, *response, Json::object(), nullptr);
  return absl::OkStatus();
}

absl::Status ListRpcs(Ctx&) {
  for (const std::string& name : RpcNames()) std::cout << name << "\n";
  return absl::OkStatus();
}

absl::Status Completion(Ctx& c) {
  if (c.rest.empty() || c.rest[0] != "bash") {
    return Usage(absl::StrCat("completion needs a shell: bash",
                              c.rest.empty() ? "" : absl::StrCat(", not '", c.rest[0], "'")));
  }
  std::cout << BashCompletion();
  return absl::OkStatus();
}

absl::Status Version(Ctx&) {
  std::cout << "audiencesctl " << AUDIENCESCTL_VERSION << "\n";
  return absl::OkStatus();
}

absl::Status HelpCommand(Ctx&) { return absl::OkStatus(); }  // Handled in Main.

}  // namespace

std::string VersionString() { return AUDIENCESCTL_VERSION; }

std::vector<Command> ToolCommands() {
  Command call =
      Command("call")
          .Synopsis("RPC ['{json}' | - | -f FILE]")
          .Summary("Call any RPC with a proto3 JSON request (the same JSON as grpcurl's).")
          .Description(
              "Prints the response as proto3 JSON (or -o yaml). Reads the request from the "
              "argument,\n"
              "from stdin ('-' or -f -), or from a file (-f FILE); none means {}. RPC names are\n"
              "those of 'audiencesctl rpcs'; enum values are full names (AUDIENCE_TYPE_USERS).")
          .Flags({{"file", "Proto3 JSON of the request ('-' = stdin)."}})
          .Example(
              "  audiencesctl call ListAudiences "
              "'{\"spaceId\":\"spa_1\",\"pagination\":{\"count\":10}}'")
          .Run(CallAny, 2, true)
          .DefaultJson();
  return {
      call,
      Command("rpcs")
          .Summary("List the RPCs of segment.audiences.v1.AudiencesService.")
          .Example("  audiencesctl rpcs")
          .Run(ListRpcs),
      Command("completion")
          .Synopsis("bash")
          .Summary("Print the bash completion script.")
          .Description("Load it in the current shell with: source <(audiencesctl completion bash)\n"
                       "or install it: audiencesctl completion bash > "
                       "/usr/share/bash-completion/completions/audiencesctl")
          .Example("  audiencesctl completion bash > ~/.local/share/bash-completion/completions/"
                   "audiencesctl\n"
                   "  source <(audiencesctl completion bash)")
          .Run(Completion, 1),
      Command("version")
          .Summary("Print the version.")
          .Example("  audiencesctl version")
          .Run(Version),
      Command("help")
          .Synopsis("[COMMAND]")
          .Summary("Help of a command.")
          .Example("  audiencesctl help audiences list")
          .Run(HelpCommand, 2),
  };
}

}  // namespace audiencesctl
