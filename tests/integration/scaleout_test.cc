// Several gateway replicas sharing one Redis (--redis_url): one rate budget, one view of writes,
// and a conservative fallback while Redis is away. Real redis-server, segment-sim and gateways.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/stack.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kRedisBin[] = "/usr/bin/redis-server";

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

absl::StatusOr<std::unique_ptr<Subprocess>> StartRedis(int port) {
  auto redis = Subprocess::Start({kRedisBin, "--port", std::to_string(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"});
  if (!redis.ok()) return redis.status();
  auto line = (*redis)->WaitForLine("Ready to accept connections", absl::Seconds(10));
  if (!line.ok()) return line.status();
  return redis;
}

class ScaleOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kRedisBin, X_OK) != 0) GTEST_SKIP() << "redis-server is not installed";
    redis_port_ = FreePort();
    auto redis = StartRedis(redis_port_);
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = std::move(*redis);
  }

  // A simulator and `n` gateways sharing it and the Redis.
  void StartReplicas(int n, const std::string& limits) {
    StackOptions first;
    first.sim_args = {"--rate_limits=" + limits, "--threads=64"};
    first.gateway_args = {"--rate_limits=" + limits,
                          absl::StrCat("--redis_url=redis://127.0.0.1:", redis_port_),
                          absl::StrCat("--replicas=", n)};
    auto a = Stack::Start(first);
    ASSERT_TRUE(a.ok()) << a.status();
    replicas_.push_back(std::move(*a));
    for (int i = 1; i < n; ++i) {
      StackOptions o = first;
      o.start_sim = false;
      o.upstream_url = replicas_[0]->sim_url();
      auto r = Stack::Start(o);
      ASSERT_TRUE(r.ok()) << r.status();
      replicas_.push_back(std::move(*r));
    }
  }

  int redis_port_ = 0;
  std::unique_ptr<Subprocess> redis_;
  std::vector<std::unique_ptr<Stack>> replicas_;
};

TEST_F(ScaleOutTest, ThreeReplicasFloodingOneOperationStayWithinTheSharedLimit) {
  StartReplicas(3, "GetAudience=10/1s,CreateAudience=6000/1m");
  ASSERT_EQ(replicas_.size(), 3u);
  v1::CreateAudienceRequest create;
  create.set_space_id(kSpace);
  create.mutable_audience()->set_name("shared");
  create.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  create.mutable_audience()->mutable_definition()->set_query("event('x').count() >= 1");
  v1::CreateAudienceResponse created;
  ASSERT_TRUE(replicas_[0]->stub().CreateAudience(Context().get(), create, &created).ok());

  // 3 callers per replica, 5 calls each: 45 calls on a 10/1s budget (~4.5 s).
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> callers;
  for (auto& replica : replicas_) {
    for (int c = 0; c < 3; ++c) {
      callers.emplace_back([&, stub = &replica->stub(), c] {
        for (int i = 0; i < 5; ++i) {
          v1::GetAudienceRequest req;
          req.set_space_id(kSpace);
          req.set_id(created.audience().id());
          v1::GetAudienceResponse resp;
          auto ctx = Context(absl::Seconds(30));
          ctx->AddMetadata("x-caller-id", absl::StrCat("caller-", c));
          (stub->GetAudience(ctx.get(), req, &resp).ok() ? ok : failed)++;
        }
      });
    }
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(ok.load(), 45);
  EXPECT_EQ(failed.load(), 0);
  nlohmann::json stats = replicas_[0]->SimStats();
  EXPECT_EQ(stats.value("status_429", -1), 0) << stats.dump();
}

TEST_F(ScaleOutTest, AWriteThroughOneReplicaIsSeenThroughTheOthers) {
  StartReplicas(3, "CreateAudience=6000/1m,ListAudiences=6000/1m");
  auto list = [&](Stack& s) {
    v1::ListAudiencesRequest req;
    req.set_space_id(kSpace);
    v1::ListAudiencesResponse resp;
    grpc::Status st = s.stub().ListAudiences(Context().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.audiences_size();
  };
  // Warm every replica's cache with the empty listing.
  for (auto& r : replicas_) EXPECT_EQ(list(*r), 0);
  v1::CreateAudienceRequest create;
  create.set_space_id(kSpace);
  create.mutable_audience()->set_name("seen everywhere");
  create.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  create.mutable_audience()->mutable_definition()->set_query("event('x').count() >= 1");
  v1::CreateAudienceResponse created;
  ASSERT_TRUE(replicas_[0]->stub().CreateAudience(Context().get(), create, &created).ok());
  EXPECT_EQ(list(*replicas_[1]), 1);
  EXPECT_EQ(list(*replicas_[2]), 1);
}

TEST_F(ScaleOutTest, RedisDownFallsBackAndComesBackWithoutAnyCallerError) {
  StartReplicas(2, "GetAudience=10/1s,CreateAudience=6000/1m");
  ASSERT_EQ(replicas_.size(), 2u);
  v1::CreateAudienceRequest create;
  create.set_space_id(kSpace);
  create.mutable_audience()->set_name("outage");
  create.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  create.mutable_audience()->mutable_definition()->set_query("event('x').count() >= 1");
  v1::CreateAudienceResponse created;
  ASSERT_TRUE(replicas_[0]->stub().CreateAudience(Context().get(), create, &created).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> callers;
  for (auto& replica : replicas_) {
    callers.emplace_back([&, stub = &replica->stub()] {
      while (!stop.load()) {
        v1::GetAudienceRequest req;
        req.set_space_id(kSpace);
        req.set_id(created.audience().id());
        v1::GetAudienceResponse resp;
        (stub->GetAudience(Context(absl::Seconds(30)).get(), req, &resp).ok() ? ok : failed)++;
      }
    });
  }
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(redis_->Stop(SIGKILL, absl::Seconds(5)).ok());
  absl::SleepFor(absl::Seconds(3));
  auto back = StartRedis(redis_port_);
  ASSERT_TRUE(back.ok()) << back.status();
  redis_ = std::move(*back);
  absl::SleepFor(absl::Seconds(3));
  stop = true;
  for (auto& t : callers) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 20);
  nlohmann::json stats = replicas_[0]->SimStats();
  EXPECT_EQ(stats.value("status_429", -1), 0) << stats.dump();
  // The replicas said so in their logs.
  EXPECT_NE(replicas_[0]->gateway().Output().find("redis unreachable"), std::string::npos);
}

}  // namespace
}  // namespace sag::testing
