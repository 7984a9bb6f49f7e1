// A real segment-sim and a real audiences-gateway, started as processes on loopback ports for
// one test, and a gRPC stub to call the gateway. Stopped (and killed if need be) on destruction.
#ifndef SAG_TESTS_COMMON_STACK_H_
#define SAG_TESTS_COMMON_STACK_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/subprocess.h"

namespace sag::testing {

struct StackOptions {
  std::string token = "test-token-7f3a9c";   // What the gateway sends.
  std::string sim_token = "test-token-7f3a9c";  // What the simulator accepts ("" = any).
  std::vector<std::string> sim_args;        // Extra segment-sim flags.
  std::vector<std::string> gateway_args;    // Extra audiences-gateway flags.
  bool start_sim = true;
  std::string upstream_url;                 // When not starting the simulator.
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
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<segment::audiences::v1::AudiencesService::Stub> stub_;
};

// A context whose deadline is `timeout` from now.
std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(10));

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_STACK_H_
