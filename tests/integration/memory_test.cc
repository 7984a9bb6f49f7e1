// The memory budget (--max_memory) with real processes: a gateway with a small budget gets a flood
// of calls parked on a slow lane. Some are refused at once with RESOURCE_EXHAUSTED ("memory
// budget is full"), every accepted call is answered, health answers throughout, and the metrics
// count the refusals and show the budget in use going back to the reserve.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/countdown.h"
#include "tests/common/health_probe.h"
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "spa_memory";

struct FloodCall {
  grpc::ClientContext context;
  v1::GetAudienceRequest request;
  v1::GetAudienceResponse response;
  grpc::Status status;
};

// The value of a label-less sample in an exposition text, or -1.
double Sample(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

TEST(MemoryBudgetIntegrationTest, AFloodPastTheBudgetIsRefusedAndEveryAcceptedCallAnswered) {
  constexpr int kCalls = 2000;
  StackOptions options;
  options.sim_args = {"--rate_limits=GetAudience=100/1s"};
  // 40Mi: the 32Mi reserve and 8Mi for calls, a few hundred parked calls.
  options.gateway_args = {"--max_memory=40Mi", "--rate_limits=GetAudience=100/1s"};
  auto stack = StartOrDie(options);
  ASSERT_NE(stack, nullptr);
  v1::CreateAudienceResponse created;
  grpc::Status st =
      stack->stub().CreateAudience(Context().get(), AudienceRequest(kSpace, "Flood"), &created);
  ASSERT_TRUE(st.ok()) << st.error_message();

  HealthProber prober(stack->gateway_address(), absl::Milliseconds(100), absl::Seconds(5));
  std::vector<std::shared_ptr<grpc::Channel>> channels;  // Several connections, as many callers.
  for (int i = 0; i < 8; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(grpc::CreateCustomChannel(stack->gateway_address(),
                                                 grpc::InsecureChannelCredentials(), args));
  }
  std::vector<std::unique_ptr<v1::AudiencesService::Stub>> stubs;
  for (auto& c : channels) stubs.push_back(v1::AudiencesService::NewStub(c));
  std::vector<std::unique_ptr<FloodCall>> calls;
  Countdown done(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<FloodCall>();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
    call->request.set_space_id(kSpace);
    call->request.set_id(created.audience().id());
    FloodCall* raw = call.get();
    stubs[i % stubs.size()]->async()->GetAudience(&raw->context, &raw->request, &raw->response,
                                                  [raw, &done](grpc::Status s) {
                                                    raw->status = std::move(s);
                                                    done.Done();
                                                  });
    calls.push_back(std::move(call));
  }
  ASSERT_TRUE(done.WaitFor(absl::Seconds(150))) << "not every call was answered";
  HealthProber::Result health = prober.Stop();

  int ok = 0, refused = 0;
  std::string other;
  for (const auto& c : calls) {
    if (c->status.ok() && c->response.audience().id() == created.audience().id()) {
      ++ok;
    } else if (c->status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
               absl::StrContains(c->status.error_message(), "memory budget is full")) {
      ++refused;
    } else if (other.empty()) {
      other = absl::StrCat(c->status.error_code(), ": ", c->status.error_message());
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(ok, 100);
  EXPECT_EQ(ok + refused, kCalls) << "a call neither answered nor refused for memory: " << other;
  EXPECT_GT(health.serving, 0);
  EXPECT_EQ(health.failed, 0) << health.first_error;

  absl::StatusOr<std::string> metrics = stack->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(Sample(*metrics, "audiences_gateway_memory_refused_total"), refused);
  EXPECT_EQ(Sample(*metrics, "audiences_gateway_memory_limit_bytes"), 40 << 20);
  // Every charge is given back once gRPC is done with the call (shortly after the caller sees it).
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  double in_use = -1;
  while (absl::Now() < give_up) {
    metrics = stack->ScrapeMetrics();
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    in_use = Sample(*metrics, "audiences_gateway_memory_in_use_bytes");
    if (in_use == 32 << 20) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(in_use, 32 << 20) << "the reserve alone, with the cache empty";
}

TEST(MemoryBudgetIntegrationTest, BadMaxMemoryStopsTheGatewayWithAConfigError) {
  for (const char* bad : {"-1", "1e99", "10XB", "", "99999999999999999999Gi", "16Mi"}) {
    absl::StatusOr<ProgramResult> run = RunProgram({SAG_GATEWAY_BIN, "--listen=127.0.0.1:0",
                                                    "--metrics_listen=", "--token_file=/dev/null",
                                                    absl::StrCat("--max_memory=", bad)});
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->code, 2) << bad << ": " << run->output;
    EXPECT_TRUE(absl::StrContains(run->output, "--max_memory: ")) << bad << ": " << run->output;
    EXPECT_FALSE(absl::StrContains(run->output, "listening on")) << run->output;
  }
}

}  // namespace
}  // namespace sag::testing
