// bench-floor-gateway: audiences-gateway (the same flags, server and components, run as
// service/main.cc runs them) plus one extra raw gRPC service, sag.bench.Floor, registered on the
// same server through GatewayServer::AddExtraService. Benchmarks only (bench_hits): it is not
// installed, and audiences-gateway has no way to register the service.
//
// Promises of sag.bench.Floor (request and response as raw bytes, callback API, gRPC's default
// reactor: the least a unary method can cost on this server):
//  - /sag.bench.Floor/Store keeps the request's bytes as the answer of Hit; answers zero bytes.
//  - /sag.bench.Floor/Hit answers the stored bytes (shared, as a cache hit shares its entry: one
//    reference-counted slice, no copy) with the two initial metadata entries a cache hit sends,
//    `x-request-id` (a fixed 32-hex-digit id, the size of the gateway's own) and `x-cache: hit`,
//    and status OK; FAILED_PRECONDITION before any Store.
//  - /sag.bench.Floor/HitOwnReactor answers as Hit, through a reactor of its own (new, deleted in
//    OnDone) instead of gRPC's default one, as the gateway's calls do: gRPC runs such a reactor's
//    OnDone on its executor (a thread hop per call), the default reactor's inline. The difference
//    to Hit is that cost (bench_hits --own_reactor_floor).
// So Hit is the floor of a cache hit: the same bytes on the wire, without the gateway's work.
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "service/app/gateway_server.h"
#include "service/app/server_config.h"
#include "service/common/cli.h"
#include "service/config/config.h"
#include "tests/bench/byte_buffer.h"

namespace {

using Bytes = std::shared_ptr<const std::string>;

class FloorService final : public grpc::Service {
 public:
  FloorService() {
    AddRaw("/sag.bench.Floor/Store", 0,
           [this](grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                  grpc::ByteBuffer* response) {
             std::atomic_store(
                 &stored_, std::make_shared<const std::string>(sag::bench::BufferBytes(*request)));
             grpc::Slice empty;  // The empty answer (an unset ByteBuffer is no message).
             grpc::ByteBuffer buffer(&empty, 1);
             response->Swap(&buffer);
             return Finish(context, grpc::Status::OK);
           });
    AddRaw("/sag.bench.Floor/Hit", 1,
           [this](grpc::CallbackServerContext* context, const grpc::ByteBuffer*,
                  grpc::ByteBuffer* response) { return Hit(context, response); });
    AddRaw("/sag.bench.Floor/HitOwnReactor", 2,
           [this](grpc::CallbackServerContext* context, const grpc::ByteBuffer*,
                  grpc::ByteBuffer* response) { return Hit(context, response, new OwnReactor()); });
  }

 private:
  using Handler = std::function<grpc::ServerUnaryReactor*(
      grpc::CallbackServerContext*, const grpc::ByteBuffer*, grpc::ByteBuffer*)>;

  // What the generated WithRawCallbackMethod_* classes do for a method of a .proto service.
  void AddRaw(const char* name, int index, Handler handler) {
    AddMethod(
        new grpc::internal::RpcServiceMethod(name, grpc::internal::RpcMethod::NORMAL_RPC, nullptr));
    MarkMethodRawCallback(
        index,
        new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>(handler));
  }

  // A reactor as an application writes one: nothing to do on cancellation, deleted when done.
  class OwnReactor final : public grpc::ServerUnaryReactor {
    void OnCancel() override {}
    void OnDone() override { delete this; }
  };

  // Finishes through `reactor` (null: the context's default reactor) and returns it.
  static grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                          const grpc::Status& status,
                                          grpc::ServerUnaryReactor* reactor = nullptr) {
    if (reactor == nullptr) reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  grpc::ServerUnaryReactor* Hit(grpc::CallbackServerContext* context, grpc::ByteBuffer* response,
                                grpc::ServerUnaryReactor* reactor = nullptr) {
    Bytes bytes = std::atomic_load(&stored_);
    if (bytes == nullptr) {
      return Finish(context, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "nothing stored"),
                    reactor);
    }
    context->AddInitialMetadata("x-request-id", "5f0c3e9a1b7d4c2e8a6f0b1d3c5e7a9f");
    context->AddInitialMetadata("x-cache", "hit");
    // As the gateway's ShareInto: the slice holds a reference to the bytes.
    auto* held = new Bytes(std::move(bytes));
    grpc::Slice slice(
        const_cast<char*>((*held)->data()), (*held)->size(),
        [](void* p) { delete static_cast<Bytes*>(p); }, held);
    grpc::ByteBuffer buffer(&slice, 1);
    response->Swap(&buffer);
    return Finish(context, grpc::Status::OK, reactor);
  }

  Bytes stored_;  // Through std::atomic_load / std::atomic_store only.
};

int Fail(absl::string_view message, int code) {
  std::cerr << "bench-floor-gateway: " << message << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  const sag::cli::Program program{
      "bench-floor-gateway",
      "bench-floor-gateway: audiences-gateway plus the sag.bench.Floor service (benchmarks only).\n"
      "Usage: bench-floor-gateway [audiences-gateway flags]",
      "bench", [](absl::string_view file) { return file == "app/flags.cc"; }};
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // As service/main.cc.
  const std::set<std::string> given = sag::config::FlagsSetOnCommandLine(argc, argv);
  sag::cli::ParseCommandLineOrExit(argc, argv, program);
  absl::StatusOr<sag::app::ServerConfig> config = sag::app::ServerConfigFromFlags(given);
  if (!config.ok()) return Fail(config.status().message(), sag::app::kConfigErrorExitCode);
  sag::app::GatewayServer::BlockShutdownSignals();  // Before any thread starts.
  FloorService floor;  // Outlives the server (declared first, destroyed last).
  auto server = sag::app::GatewayServer::Create(*std::move(config));
  if (!server.ok()) return Fail(server.status().message(), sag::app::kConfigErrorExitCode);
  (*server)->AddExtraService(&floor);
  if (absl::Status started = (*server)->Start(); !started.ok()) return Fail(started.message(), 1);
  return (*server)->Run();
}
