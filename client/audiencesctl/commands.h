// audiencesctl's commands: the resource-style subcommands, `call`, `rpcs`, help and completion.
#ifndef SAG_CLIENT_AUDIENCESCTL_COMMANDS_H_
#define SAG_CLIENT_AUDIENCESCTL_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace audiencesctl {

// Exit codes: 0 ok, 1 usage, then one per class of gRPC status (see kExitCodesHelp).
constexpr int kExitOk = 0;
constexpr int kExitUsage = 1;
int ExitCodeFor(absl::StatusCode code);

// Runs audiencesctl with argv (without the program name); returns the exit code.
int Main(const std::vector<std::string>& argv);

// The bash completion script (`audiencesctl completion bash`).
std::string BashCompletion();

// The version printed by `audiencesctl version` (and sent in the user-agent).
std::string VersionString();

// Every command as it is typed ("audiences list", "call", ...).
std::vector<std::string> CommandPaths();

}  // namespace audiencesctl

#endif  // SAG_CLIENT_AUDIENCESCTL_COMMANDS_H_
