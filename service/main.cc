// audiences-gateway: flags and wiring only.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "service/auth/token_source.h"
#include "service/server/audiences_service.h"
#include "service/server/gateway.h"
#include "service/upstream/curl_multi_client.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC listen address, host:port (port 0 picks a free port and prints it).");
ABSL_FLAG(std::string, upstream_url, "https://api.segmentapis.com",
          "Segment Public API base URL (EU workspaces: https://eu1.api.segmentapis.com).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the Segment bearer token, re-read when it changes. Without it the "
          "token comes from the SEGMENT_API_TOKEN environment variable.");
ABSL_FLAG(absl::Duration, upstream_timeout, absl::Seconds(30),
          "Longest wait for one upstream request (the caller's deadline may cut it shorter).");
ABSL_FLAG(int, upstream_max_connections, 64,
          "Most simultaneous connections to the upstream host (HTTP/2 multiplexes over fewer).");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(20),
          "On SIGTERM/SIGINT, how long in-flight calls may take to finish before exit.");

namespace {

constexpr char kServiceName[] = "segment.audiences.v1.AudiencesService";

void Die(const std::string& message, int code = 2) {
  std::cerr << "audiences-gateway: " << message << std::endl;
  std::exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "gRPC gateway to Segment's Public API Audiences operations.\n"
      "Usage: audiences-gateway [--listen=ADDR] [--upstream_url=URL] [--token_file=FILE]");
  absl::ParseCommandLine(argc, argv);

  // Signals are taken by a dedicated thread; block them everywhere else first.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<sag::auth::TokenSource> tokens;
  std::string token_file = absl::GetFlag(FLAGS_token_file);
  if (!token_file.empty()) {
    tokens = std::make_unique<sag::auth::FileTokenSource>(token_file);
  } else {
    const char* env = std::getenv("SEGMENT_API_TOKEN");
    tokens = std::make_unique<sag::auth::StaticTokenSource>(env != nullptr ? env : "");
  }

  sag::upstream::CurlOptions curl;
  curl.max_host_connections = absl::GetFlag(FLAGS_upstream_max_connections);
  if (curl.max_host_connections < 1) Die("--upstream_max_connections must be at least 1");
  sag::upstream::CurlMultiClient http(curl);

  sag::GatewayOptions options;
  options.upstream_url = absl::GetFlag(FLAGS_upstream_url);
  options.upstream_timeout = absl::GetFlag(FLAGS_upstream_timeout);
  if (options.upstream_timeout <= absl::ZeroDuration()) Die("--upstream_timeout must be positive");
  auto gateway = sag::Gateway::Create(options, &http, tokens.get());
  if (!gateway.ok()) Die(std::string(gateway.status().message()));
  sag::AudiencesServiceImpl service(gateway->get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) Die(absl::StrCat("cannot listen on ", listen), 1);
  auto* health = server->GetHealthCheckService();
  absl::Notification stopping;
  auto refresh_health = [&] {
    bool serving = !stopping.HasBeenNotified() && tokens->Token().ok();
    health->SetServingStatus("", serving);
    health->SetServingStatus(kServiceName, serving);
  };
  refresh_health();
  std::string host = listen.substr(0, listen.rfind(':'));
  std::cout << "audiences-gateway listening on " << host << ":" << port << " (upstream "
            << (*gateway)->NormalizeBaseUrl(options.upstream_url).value_or("?") << ")"
            << std::endl;

  std::thread health_thread([&] {
    while (!stopping.WaitForNotificationWithTimeout(absl::Seconds(1))) refresh_health();
  });

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::cerr << "audiences-gateway: signal " << sig << ", draining for up to "
              << absl::FormatDuration(absl::GetFlag(FLAGS_shutdown_grace)) << std::endl;
    stopping.Notify();
    health->SetServingStatus("", false);
    health->SetServingStatus(kServiceName, false);
    std::thread second([&] {
      int again = 0;
      sigwait(&signals, &again);
      std::cerr << "audiences-gateway: second signal, exiting now" << std::endl;
      _exit(1);
    });
    second.detach();
    server->Shutdown(std::chrono::system_clock::now() +
                     absl::ToChronoSeconds(absl::GetFlag(FLAGS_shutdown_grace)));
  });

  server->Wait();
  signal_thread.join();
  health_thread.join();
  std::cerr << "audiences-gateway: stopped" << std::endl;
  return 0;
}
