// A real segment-sim and a real audiences-gateway, started as processes on loopback ports for
// one test, and a gRPC stub to call the gateway. Stopped (and killed if need be) on destruction.
#ifndef SAG_TESTS_COMMON_STACK_H_
#define SAG_TESTS_COMMON_STACK_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/subprocess.h"

namespace sag::testing {

struct StackOptions {
  std::string token = "test-token-7f3a9c";      // What the gateway sends ("" = no --token_file).
  std::string sim_token = "test-token-7f3a9c";  // What the simulator accepts ("" = any).
  std::vector<std::string> sim_args;            // Extra segment-sim flags.
  std::vector<std::string> gateway_args;        // Extra audiences-gateway flags.
  // The gateway executable ("" = audiences-gateway); another one must take the same flags and
  // print the same "listening on" line (bench_hits: bench-floor-gateway).
  std::string gateway_bin;
  // A command that runs the gateway, e.g. {"taskset", "-c", "0"}: it must exec the gateway (same
  // pid). Empty = the gateway itself.
  std::vector<std::string> gateway_launcher;
  bool start_sim = true;
  std::string upstream_url;  // When not starting the simulator.
  // The gateway serves TLS (its flags in gateway_args): do not wait for a plaintext connection.
  std::string tls_root;
  // Passed as --metrics_listen before gateway_args (which may override it); std::nullopt = not
  // passed (the gateway's default, or a --config file, decides).
  std::optional<std::string> metrics_listen = "127.0.0.1:0";
};

class Stack {
 public:
  static absl::StatusOr<std::unique_ptr<Stack>> Start(StackOptions options = {});
  ~Stack();

  segment::audiences::v1::AudiencesService::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  std::string gateway_address() const;
  std::string sim_url() const;
  Subprocess& gateway() { return *gateway_; }
  Subprocess* sim() { return sim_.get(); }
  const std::string& dir() const { return dir_; }
  // The file holding the gateway's token (rewrite it to rotate the token).
  std::string token_file() const { return dir_ + "/token"; }

  // The gateway's /metrics port, read from the "metrics" field of its JSON "started" log line
  // (waits up to 10 s for it); 0 when there is none (metrics disabled, or --log_level above info).
  int metrics_port();
  // GET /metrics on metrics_port(): the exposition text, or an error (no port, HTTP failure).
  absl::StatusOr<std::string> ScrapeMetrics();

  // The simulator's debug endpoints.
  nlohmann::json SimStats();
  nlohmann::json SimRequests();
  void SimReset();

 private:
  Stack() = default;
  std::string dir_;
  std::unique_ptr<Subprocess> sim_;
  std::unique_ptr<Subprocess> gateway_;
  int sim_port_ = 0;
  int gateway_port_ = 0;
  int metrics_port_ = -1;  // -1: not looked up yet.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<segment::audiences::v1::AudiencesService::Stub> stub_;
};

// Stack::Start, failing the current test (and returning nullptr) when the stack cannot start.
std::unique_ptr<Stack> StartOrDie(StackOptions options = {});

// A CreateAudience request for a test audience `name` in `space`, of `type` (a LINKED one
// targets "profile"), defined by `query`.
segment::audiences::v1::CreateAudienceRequest AudienceRequest(
    const std::string& space, const std::string& name,
    segment::audiences::v1::AudienceType type = segment::audiences::v1::AUDIENCE_TYPE_USERS,
    const std::string& query = "event('Purchased').count() >= 1");

// A context whose deadline is `timeout` from now.
std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(10));

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_STACK_H_
