// audiences-gateway: parses the command line, builds the server (service/app), runs it.
//
// Exit codes: 0 after a graceful shutdown (and after --help, --version); 1 when a port cannot be
// bound (the message names the address), a bad flag syntax (Abseil's), or a second signal; 2 for a
// configuration error (a bad flag value or --config file: the message names it).
#include <iostream>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "service/app/gateway_server.h"
#include "service/app/server_config.h"
#include "service/common/cli.h"
#include "service/config/config.h"

#ifndef SAG_VERSION
#define SAG_VERSION "0.0.0"
#endif

namespace {

int Fail(absl::string_view message, int code) {
  std::cerr << "audiences-gateway: " << message << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  const sag::cli::Program program{
      "audiences-gateway",
      "audiences-gateway: gRPC gateway to Segment's Public API Audiences operations.\n"
      "Usage: audiences-gateway [--config=FILE] [--listen=ADDR] [--upstream_url=URL]\n"
      "                         [--token_file=FILE] ...",
      SAG_VERSION,
      [](absl::string_view file) { return file == "app/flags.cc"; }};
  // Debian's Abseil checks every mutex acquisition for lock-order cycles (a debugging aid that
  // costs ~5% CPU on the hit path); the gateway's locks are tested by their own unit tests.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::set<std::string> given = sag::config::FlagsSetOnCommandLine(argc, argv);
  sag::cli::ParseCommandLineOrExit(argc, argv, program);

  absl::StatusOr<sag::app::ServerConfig> config = sag::app::ServerConfigFromFlags(given);
  if (!config.ok()) return Fail(config.status().message(), sag::app::kConfigErrorExitCode);
  sag::app::GatewayServer::BlockShutdownSignals();  // Before any thread starts.
  auto server = sag::app::GatewayServer::Create(*std::move(config));
  if (!server.ok()) return Fail(server.status().message(), sag::app::kConfigErrorExitCode);
  if (absl::Status started = (*server)->Start(); !started.ok()) {
    return Fail(started.message(), 1);
  }
  return (*server)->Run();
}
