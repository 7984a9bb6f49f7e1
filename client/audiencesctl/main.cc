// audiencesctl: the command-line client of audiences-gateway. See `audiencesctl --help`.
//
//   audiencesctl audiences list|get|create|update|delete [flags]
//   audiencesctl schedules list|get|add|update|delete [flags]
//   audiencesctl previews create|get [flags]      (create --wait polls until done)
//   audiencesctl consumers list [flags]
//   audiencesctl runs force [flags]
//   audiencesctl call RPC ['{proto3 JSON}' | -f FILE | -]
//   audiencesctl rpcs | completion bash | version | help [COMMAND]
#include <string>
#include <vector>

#include "audiencesctl/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return audiencesctl::Main(args);
}
