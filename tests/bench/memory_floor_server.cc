// bench_memory's floor: a gRPC callback server that does nothing with a call but hold it, so that
// its RSS per held call is what gRPC itself costs (HTTP/2 stream, call arena, reactor, the parsed
// request and the response message), which no change to the gateway can remove.
//
// Built like the gateway's server (service/app/gateway_server.cc, StartGrpc): the same gRPC,
// the default health service and reflection, SO_REUSEPORT off and a ResourceQuota of
// --max_memory. GetAudience is held unanswered until the caller cancels or its deadline passes
// (then answered CANCELLED), except a call with id "held?": answered at once with the number of
// calls held in its audience's name, so that the benchmark can wait until every call is held.
//
//   bench_memory_floor [--max_memory=512Mi]
//
// Prints "listening on 127.0.0.1:PORT" when it serves, then runs until killed.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/common/memory_budget.h"

ABSL_FLAG(std::string, max_memory, "512Mi", "Size of the server's gRPC ResourceQuota.");

namespace {

namespace v1 = segment::audiences::v1;
constexpr char kHeldQuery[] = "held?";

// A held call: finished only when its caller leaves.
class Held final : public grpc::ServerUnaryReactor {
 public:
  explicit Held(std::atomic<int>* held) : held_(held) { held_->fetch_add(1); }
  void OnCancel() override { Finish(grpc::Status::CANCELLED); }
  void OnDone() override {
    held_->fetch_sub(1);
    delete this;
  }

 private:
  std::atomic<int>* const held_;
};

class FloorService final : public v1::AudiencesService::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetAudience(grpc::CallbackServerContext* context,
                                        const v1::GetAudienceRequest* request,
                                        v1::GetAudienceResponse* response) override {
    if (request->id() != kHeldQuery) return new Held(&held_);
    response->mutable_audience()->set_name(std::to_string(held_.load()));
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  std::atomic<int> held_{0};
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<int64_t> quota_bytes = sag::ParseByteSize(absl::GetFlag(FLAGS_max_memory));
  if (!quota_bytes.ok()) {
    std::fprintf(stderr, "--max_memory: %s\n", quota_bytes.status().ToString().c_str());
    return 2;
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  FloorService service;
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
