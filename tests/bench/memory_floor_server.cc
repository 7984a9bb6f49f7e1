// bench_memory's floor: a gRPC callback server that does nothing with a call but hold it, so that
// its RSS per held call is what gRPC itself costs (HTTP/2 stream, call arena, reactor, the parsed
// request and the response message), which no change to the gateway can remove.
//
// Built like the gateway's server (service/app/gateway_server.cc, StartGrpc): the same gRPC,
// the default health service and reflection, SO_REUSEPORT off and a ResourceQuota of
// --max_memory, serving HeldCallsService (held_calls.h): every GetAudience is held unanswered
// until its caller leaves; one of id "held?" answers how many are held.
//
//   bench_memory_floor [--max_memory=512Mi]
//
// Prints "listening on 127.0.0.1:PORT" when it serves, then runs until killed.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "service/common/memory_budget.h"
#include "tests/bench/held_calls.h"

ABSL_FLAG(std::string, max_memory, "512Mi", "Size of the server's gRPC ResourceQuota.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<int64_t> quota_bytes = sag::ParseByteSize(absl::GetFlag(FLAGS_max_memory));
  if (!quota_bytes.ok()) {
    std::fprintf(stderr, "--max_memory: %s\n", quota_bytes.status().ToString().c_str());
    return 2;
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  sag::bench::HeldCallsService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  grpc::ResourceQuota quota("bench-memory-floor");
  quota.Resize(static_cast<size_t>(*quota_bytes));
  builder.SetResourceQuota(quota);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "cannot listen\n");
    return 1;
  }
  std::printf("listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  server->Wait();
  return 0;
}
