// Idempotent writes end to end (metadata `idempotency-key`): real segment-sim (1 s upstream
// latency), real gateways, and for the shared case a real redis-server and three replicas.
// The caller gives up after 200 ms; the write still completes upstream, and a retry with the key
// (on the same or another replica) gets the created audience while segment-sim saw one POST.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/redis_server.h"
#include "tests/common/stack.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";

// POST requests segment-sim received for CreateAudience.
int CreatePosts(Stack& sim_owner) {
  int n = 0;
  for (const auto& r : sim_owner.SimRequests()) {
    if (r.value("method", "") == "POST" && absl::EndsWith(r.value("path", ""), "/audiences")) ++n;
  }
  return n;
}

// Waits (bounded) until segment-sim has answered `n` CreateAudience POSTs.
bool WaitForPosts(Stack& sim_owner, int n) {
  absl::Time until = absl::Now() + absl::Seconds(10);
  while (CreatePosts(sim_owner) < n) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return true;
}

struct Result {
  grpc::Status status;
  v1::CreateAudienceResponse response;
  std::string replayed;
};

Result CreateWithKey(Stack& gateway, const std::string& key, absl::Duration deadline) {
  Result r;
  auto ctx = Context(deadline);
  ctx->AddMetadata("idempotency-key", key);
  r.status =
      gateway.stub().CreateAudience(ctx.get(), AudienceRequest(kSpace, "idempotent"), &r.response);
  auto it = ctx->GetServerInitialMetadata().find("idempotent-replayed");
  if (it != ctx->GetServerInitialMetadata().end())
    r.replayed.assign(it->second.data(), it->second.size());
  return r;
}

TEST(IdempotencyIntegrationTest, RetryAfterTheCallerGaveUpGetsTheAudienceCreatedOnce) {
  StackOptions o;
  o.sim_args = {"--latency=1s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);

  Result first = CreateWithKey(*stack, "order-4711", absl::Milliseconds(200));
  EXPECT_EQ(first.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << first.status.error_message();
  ASSERT_TRUE(WaitForPosts(*stack, 1));  // The write went on without its caller.
  absl::SleepFor(absl::Seconds(1));      // "2 s later" (the retry would wait for it anyway).

  Result retry = CreateWithKey(*stack, "order-4711", absl::Seconds(5));
  ASSERT_TRUE(retry.status.ok()) << retry.status.error_message();
  EXPECT_FALSE(retry.response.audience().id().empty());
  EXPECT_EQ(retry.response.audience().name(), "idempotent");
  EXPECT_EQ(retry.replayed, "true");
  EXPECT_EQ(CreatePosts(*stack), 1);
}

class SharedIdempotencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServerInstalled()) GTEST_SKIP() << "redis-server is not installed";
    absl::Status started = redis_.Start();
    ASSERT_TRUE(started.ok()) << started;
    StackOptions first;
    first.sim_args = {"--latency=1s", "--threads=16"};
    first.gateway_args = {"--redis_url=" + redis_.url(), "--replicas=3"};
    auto a = Stack::Start(first);
    ASSERT_TRUE(a.ok()) << a.status();
    replicas_.push_back(std::move(*a));
    for (int i = 1; i < 3; ++i) {
      StackOptions o = first;
      o.start_sim = false;
      o.upstream_url = replicas_[0]->sim_url();
      auto r = Stack::Start(o);
      ASSERT_TRUE(r.ok()) << r.status();
      replicas_.push_back(std::move(*r));
    }
  }

  RedisServer redis_;
  std::vector<std::unique_ptr<Stack>> replicas_;
};

TEST_F(SharedIdempotencyTest, RetryOnAnotherReplicaGetsTheAudienceCreatedOnce) {
  Result first = CreateWithKey(*replicas_[0], "order-4711", absl::Milliseconds(200));
  EXPECT_EQ(first.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << first.status.error_message();
  ASSERT_TRUE(WaitForPosts(*replicas_[0], 1));
  absl::SleepFor(absl::Seconds(1));

  Result retry = CreateWithKey(*replicas_[1], "order-4711", absl::Seconds(5));
  ASSERT_TRUE(retry.status.ok()) << retry.status.error_message();
  EXPECT_FALSE(retry.response.audience().id().empty());
  EXPECT_EQ(retry.replayed, "true");
  EXPECT_EQ(CreatePosts(*replicas_[0]), 1);
}

TEST_F(SharedIdempotencyTest, RepeatOnAnotherReplicaWhileTheFirstRunsWaitsForIt) {
  Result first = CreateWithKey(*replicas_[0], "order-4712", absl::Milliseconds(200));
  EXPECT_EQ(first.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // At once: the write is still upstream (~800 ms to go); replica 2 waits for its answer.
  Result waiting = CreateWithKey(*replicas_[2], "order-4712", absl::Seconds(5));
  ASSERT_TRUE(waiting.status.ok()) << waiting.status.error_message();
  EXPECT_EQ(waiting.replayed, "true");
  Result later = CreateWithKey(*replicas_[1], "order-4712", absl::Seconds(5));
  ASSERT_TRUE(later.status.ok()) << later.status.error_message();
  EXPECT_EQ(later.response.audience().id(), waiting.response.audience().id());
  EXPECT_EQ(CreatePosts(*replicas_[0]), 1);
}

}  // namespace
}  // namespace sag::testing
