// The request path in process, for tests that call it through the generated stub: a Gateway over
// the fakes of tests/support (clock and timers, HTTP client, token source, budget store) and a
// JSON logger writing to `log_`, served by an in-process gRPC server (no port, no child process).
//
// A fixture derives from it, builds its optional parts (cache, idempotency store, observers) in
// its constructor and then calls Serve(). A fixture that owns parts the gateway uses calls
// StopServing() in its destructor, so the server and the gateway go before those parts.
#ifndef SAG_TESTS_UNIT_SERVER_IN_PROCESS_GATEWAY_H_
#define SAG_TESTS_UNIT_SERVER_IN_PROCESS_GATEWAY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/ratelimit/limiter.h"
#include "service/ratelimit/retry.h"
#include "service/server/audiences_service.h"
#include "service/server/gateway.h"
#include "service/telemetry/logger.h"
#include "tests/support/fake_budget_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_http_client.h"
#include "tests/support/fake_token_source.h"

namespace sag::testing {

class InProcessGatewayTest : public ::testing::Test {
 protected:
  InProcessGatewayTest() : clock_(absl::Now()), logger_(&log_, telemetry::LogLevel::kInfo) {
    env_.http = &http_;
    env_.clock = &clock_;
    env_.timers = &clock_;
    env_.limiter = &limiter_;
    env_.retry_budget = &retry_budget_;
    env_.backoff = &backoff_;
    env_.max_attempts = 3;
  }
  ~InProcessGatewayTest() override { StopServing(); }

  // Builds the gateway (one workspace "ws" on tokens_, upstream https://api.example) with `parts`
  // and `observers` (the logger is logger_ when none is given) and serves it.
  void Serve(GatewayParts parts = {}, GatewayObservers observers = {}) {
    Workspace ws;
    ws.name = "ws";
    ws.tokens = &tokens_;
    GatewayOptions options;
    options.upstream_url = "https://api.example";
    if (observers.logger == nullptr) observers.logger = &logger_;
    options.workspaces = {ws};
    gateway_ = *Gateway::Create(options, &env_, parts, observers);
    service_ = std::make_unique<AudiencesServiceImpl>(gateway_.get());
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    channel_ = server_->InProcessChannel(grpc::ChannelArguments());
    stub_ = segment::audiences::v1::AudiencesService::NewStub(channel_);
  }

  // Ends the calls in flight (bounded) and destroys the server and the gateway.
  void StopServing() {
    if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    stub_.reset();
    channel_.reset();
    server_.reset();
    service_.reset();
    gateway_.reset();
  }

  FakeClock clock_;
  FakeHttpClient http_;
  FakeTokenSource tokens_;
  FakeBudgetStore budget_;
  ratelimit::Limiter limiter_{&budget_, &clock_, &clock_};
  ratelimit::RetryBudget retry_budget_{&clock_};
  ratelimit::Backoff backoff_{{}, [] { return 0.5; }};
  std::ostringstream log_;
  telemetry::Logger logger_;
  ExchangeEnv env_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<AudiencesServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<segment::audiences::v1::AudiencesService::Stub> stub_;
};

}  // namespace sag::testing

#endif  // SAG_TESTS_UNIT_SERVER_IN_PROCESS_GATEWAY_H_
