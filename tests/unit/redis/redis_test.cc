// service/redis against a real redis-server (Debian's /usr/bin/redis-server), started by the
// fixture on a free loopback port without persistence. Skipped when redis-server is missing.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "service/ratelimit/budget_store.h"
#include "service/ratelimit/limiter.h"
#include "service/redis/redis_budget_store.h"
#include "service/redis/redis_client.h"
#include "service/redis/redis_invalidation.h"
#include "service/redis/redis_preview_quota.h"
#include "tests/common/redis_server.h"
#include "tests/support/fake_clock.h"
#include "tests/support/windows.h"

namespace sag::redis {
namespace {

using ratelimit::Limit;
using sag::testing::FreePort;
using sag::testing::MaxInWindow;
using sag::testing::RedisServer;

RedisOptions FastOptions(const std::string& url) {
  RedisOptions o;
  o.url = url;
  o.connect_timeout = absl::Milliseconds(200);
  o.command_timeout = absl::Milliseconds(100);
  o.min_backoff = absl::Milliseconds(10);
  o.max_backoff = absl::Milliseconds(200);
  o.health_interval = absl::Milliseconds(100);
  return o;
}

class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!sag::testing::RedisServerInstalled()) {
      GTEST_SKIP() << "no " << sag::testing::kRedisServerBin;
    }
    server_ = std::make_unique<RedisServer>();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  void TearDown() override {
    if (server_) {
      EXPECT_TRUE(server_->Kill().ok());
    }
  }

  std::unique_ptr<RedisClient> NewClient() {
    auto c = RedisClient::Create(FastOptions(server_->url()));
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE((*c)->WaitConnected(absl::Seconds(5)));
    return *std::move(c);
  }

  std::unique_ptr<RedisServer> server_;
};

// Records the times a store admitted calls.
class Admissions {
 public:
  void Add(absl::Time t) {
    absl::MutexLock lock(&mu_);
    times_.push_back(t);
  }
  std::vector<absl::Time> times() {
    absl::MutexLock lock(&mu_);
    return times_;
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::Time> times_;
};

// Offers calls as fast as the store lets them go until `end`, sleeping until the slot it names
// (at most 20 ms, so other takers get a chance to race).
void Flood(ratelimit::BudgetStore* store, const std::string& key, Limit limit, absl::Time end,
           Admissions* out, std::atomic<int>* errors = nullptr) {
  while (true) {
    const absl::Time now = absl::Now();
    if (now >= end) return;
    absl::StatusOr<absl::Time> r = store->TryTake(key, limit, now);
    if (!r.ok()) {
      if (errors) ++*errors;
      absl::SleepFor(absl::Milliseconds(5));
      continue;
    }
    if (*r <= now) {
      out->Add(now);
    } else {
      absl::SleepFor(std::min(*r - now, absl::Milliseconds(20)));
    }
  }
}

// --- URL parsing ---

TEST(RedisUrlTest, Parses) {
  auto u = ParseRedisUrl("redis://127.0.0.1:6380/2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 2);
  EXPECT_TRUE(u->password.empty());

  u = ParseRedisUrl("redis://:s%40cret@redis.internal");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "redis.internal");
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->password, "s@cret");
  EXPECT_EQ(u->db, 0);
  EXPECT_EQ(RedactedUrl(*u), "redis://:***@redis.internal:6379/0");

  u = ParseRedisUrl("redis://gw:pw@[::1]:7000/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 7000);
  EXPECT_EQ(u->username, "gw");
  EXPECT_EQ(u->password, "pw");

  for (const char* bad :
       {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h:port", "redis://h/-1",
        "redis://h/x", "redis://[::1", "redis://:%zz@h"}) {
    EXPECT_FALSE(ParseRedisUrl(bad).ok()) << bad;
  }
  // The password never appears in errors.
  auto e = ParseRedisUrl("redis://:topsecret@h:bad");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(std::string(e.status().message()).find("topsecret"), std::string::npos);
}

TEST(RedisClientTest, NotConnectedFailsFast) {
  RedisOptions o = FastOptions(absl::StrCat("redis://127.0.0.1:", FreePort()));
  auto c = RedisClient::Create(o);
  ASSERT_TRUE(c.ok());
  const absl::Time start = absl::Now();
  auto r = (*c)->Command({"PING"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(20));
  EXPECT_FALSE((*c)->connected());
}

TEST_F(RedisTest, CommandsAndScripts) {
  auto c = NewClient();
  auto r = c->Command({"SET", "k", std::string("a\0b", 3)});
  ASSERT_TRUE(r.ok());
  r = c->Command({"GET", "k"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->str, std::string("a\0b", 3));
  RedisScript script("return tonumber(ARGV[1]) + 1");
  // First run: NOSCRIPT, then EVAL loads it; second run: EVALSHA.
  for (int i = 0; i < 2; ++i) {
    r = c->Eval(script, {}, {"41"});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->integer, 42);
  }
  RedisScript broken("return redis.call('NOPE')");
  EXPECT_EQ(c->Eval(broken, {}, {}).status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(c->generation(), 1u);
}

// --- The connection pool ---

// Waits (bounded) until Redis reports `n` clients blocked in a command such as BLPOP.
bool WaitForBlockedClients(RedisClient* observer, int n) {
  const absl::Time limit = absl::Now() + absl::Seconds(10);
  const std::string want = absl::StrCat("blocked_clients:", n, "\r\n");
  while (absl::Now() < limit) {
    auto info = observer->Command({"INFO", "clients"});
    if (info.ok() && absl::StrContains(info->str, want)) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return false;
}

// Starts BLPOP q (which waits until something is pushed) on one of `c`'s connections and returns
// once Redis reports it blocked (`observer` asks); its answer comes in the future.
std::future<absl::StatusOr<RedisReply>> BlockOneConnection(RedisClient* c, RedisClient* observer) {
  auto blpop = std::async(std::launch::async, [c] { return c->Command({"BLPOP", "q", "0"}); });
  EXPECT_TRUE(WaitForBlockedClients(observer, 1));
  return blpop;
}

// A command that waits on one connection (BLPOP until a push) does not hold up another: PING
// answers while BLPOP still waits.
TEST_F(RedisTest, ACommandThatWaitsDoesNotHoldUpTheOthers) {
  RedisOptions o = FastOptions(server_->url());
  o.command_timeout = absl::Seconds(20);  // BLPOP waits for the push below.
  o.connections = 2;
  auto c = RedisClient::Create(o);
  ASSERT_TRUE(c.ok() && (*c)->WaitConnected(absl::Seconds(5)));
  auto pusher = NewClient();
  auto blpop = BlockOneConnection(c->get(), pusher.get());
  auto ping = (*c)->Command({"PING"});
  ASSERT_TRUE(ping.ok()) << ping.status();
  EXPECT_EQ(ping->str, "PONG");
  EXPECT_EQ(blpop.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  ASSERT_TRUE(pusher->Command({"LPUSH", "q", "x"}).ok());
  auto popped = blpop.get();
  ASSERT_TRUE(popped.ok()) << popped.status();
  ASSERT_EQ(popped->elements.size(), 2u);
  EXPECT_EQ(popped->elements[1].str, "x");
}

// With every connection busy a command waits checkout_timeout for one, then fails UNAVAILABLE
// naming the busy pool; the pool itself stays up.
TEST_F(RedisTest, WhenEveryConnectionIsBusyACommandWaitsThenFailsNamingThePool) {
  RedisOptions o = FastOptions(server_->url());
  o.command_timeout = absl::Seconds(20);
  o.checkout_timeout = absl::Milliseconds(100);
  o.connections = 1;
  auto c = RedisClient::Create(o);
  ASSERT_TRUE(c.ok() && (*c)->WaitConnected(absl::Seconds(5)));
  auto pusher = NewClient();
  auto blpop = BlockOneConnection(c->get(), pusher.get());
  auto ping = (*c)->Command({"PING"});
  EXPECT_EQ(ping.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(ping.status().message(), "all 1 connections busy"))
      << ping.status();
  EXPECT_TRUE((*c)->connected());
  ASSERT_TRUE(pusher->Command({"LPUSH", "q", "x"}).ok());
  EXPECT_TRUE(blpop.get().ok());
  EXPECT_TRUE((*c)->Command({"PING"}).ok());
  EXPECT_EQ((*c)->generation(), 1u);
}

// The pool is one unit: when the server drops every connection, the first command to notice
// drops them all, so it costs one failure (not one per connection), and the pool comes back as
// one new generation.
TEST_F(RedisTest, ABrokenConnectionDropsThePoolOnce) {
  RedisOptions o = FastOptions(server_->url());
  o.connections = 4;
  auto c = RedisClient::Create(o);
  ASSERT_TRUE(c.ok() && (*c)->WaitConnected(absl::Seconds(5)));
  ASSERT_EQ((*c)->generation(), 1u);
  auto killer = NewClient();
  auto killed = killer->Command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  ASSERT_TRUE(killed.ok()) << killed.status();
  ASSERT_GE(killed->integer, 4);  // The pool's four (and killer's other pooled connections).
  int dropped = 0;
  const absl::Time limit = absl::Now() + absl::Seconds(10);
  absl::StatusOr<RedisReply> r = absl::UnknownError("not run");
  while (!r.ok() && absl::Now() < limit) {
    r = (*c)->Command({"PING"});
    if (!r.ok() && absl::StrContains(r.status().message(), "connection dropped")) ++dropped;
    if (!r.ok()) absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(dropped, 1);
  EXPECT_EQ((*c)->generation(), 2u);
}

TEST(RedisClientTest, ConnectionsOutOfRangeAreRefused) {
  for (int n : {0, -1, 65}) {
    RedisOptions o = FastOptions("redis://127.0.0.1:6379");
    o.connections = n;
    EXPECT_EQ(RedisClient::Create(o).status().code(), absl::StatusCode::kInvalidArgument) << n;
  }
}

// --- GCRA ---

TEST_F(RedisTest, GcraArithmeticEqualsInProcess) {
  auto c = NewClient();
  for (int burst : {1, 3}) {
    for (Limit limit : {Limit{10, absl::Seconds(1)}, Limit{4, absl::Seconds(1)},
                        Limit{60, absl::Minutes(1)}, Limit{5, absl::Milliseconds(100)}}) {
      ratelimit::GcraOptions g;
      g.burst = burst;
      FakeClock clock;
      RedisBudgetOptions ro;
      ro.gcra = g;
      ro.clock_source = ClockSource::kCaller;
      ro.clock = &clock;
      ro.prefix = absl::StrCat("test:", burst, ":", ratelimit::FormatLimit(limit), ":");
      RedisBudgetStore redis(c.get(), ro);
      ratelimit::InProcessBudgetStore local(g);
      ASSERT_EQ(redis.Interval(limit), local.Interval(limit));
      std::mt19937 rng(7);
      const absl::Duration max_step = local.Interval(limit) * 2;
      absl::Time t = clock.Now();
      int taken = 0;
      for (int i = 0; i < 300; ++i) {
        const std::string key = (i % 3 == 0) ? "ws/A" : "ws/B";
        if (i == 100 || i == 200) {
          // A Retry-After from the upstream, in the middle of the sequence.
          const absl::Time until = t + local.Interval(limit) * 5 + absl::Microseconds(i);
          clock.Advance(t - clock.Now());
          redis.BlockUntil(key, until);
          local.BlockUntil(key, until);
        }
        auto a = redis.TryTake(key, limit, t);
        auto b = local.TryTake(key, limit, t);
        ASSERT_TRUE(a.ok()) << a.status();
        ASSERT_TRUE(b.ok());
        ASSERT_EQ(*a, *b) << "step " << i << " burst " << burst << " "
                          << ratelimit::FormatLimit(limit);
        if (*a <= t) ++taken;
        t += absl::Microseconds(
            std::uniform_int_distribution<int64_t>(0, absl::ToInt64Microseconds(max_step))(rng));
      }
      EXPECT_GT(taken, 50);
    }
  }
}

TEST_F(RedisTest, InvalidLimitAndKeyExpiry) {
  auto c = NewClient();
  RedisBudgetStore store(c.get());
  EXPECT_EQ(store.TryTake("k", Limit{0, absl::Seconds(1)}, absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store.TryTake("k", Limit{10, absl::Seconds(1)}, absl::Now()).ok());
  // The key lives 1 s after the admission record stops mattering: 10 x 102 ms after the take.
  auto ttl = c->Command({"PTTL", "sag:rl:k"});
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(ttl->integer, 1900);
  EXPECT_LE(ttl->integer, 2020);
  // A short block does not shorten it (the record outlives the block); a long one lengthens it.
  ASSERT_TRUE(store.BlockUntilOrError("k", absl::Now() + absl::Milliseconds(10)).ok());
  ttl = c->Command({"PTTL", "sag:rl:k"});
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(ttl->integer, 1800);
  ASSERT_TRUE(store.BlockUntilOrError("k", absl::Now() + absl::Seconds(5)).ok());
  ttl = c->Command({"PTTL", "sag:rl:k"});
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(ttl->integer, 5900);
  EXPECT_LE(ttl->integer, 6000);
  // The record's size is the limit's: at most N + 4 fields (tat, blk, rn, rc). A smaller N
  // drops the slots beyond it; a limit above 1000 requests keeps no record at all.
  auto hlen = [&](const std::string& key) {
    auto fields = c->Command({"HLEN", key});
    EXPECT_TRUE(fields.ok());
    return fields.ok() ? fields->integer : -1;
  };
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(store.TryTake("big", Limit{1000, absl::Milliseconds(1)}, absl::Now()).ok());
  }
  EXPECT_EQ(hlen("sag:rl:big"), 30 + 3);
  ASSERT_TRUE(store.TryTake("big", Limit{4, absl::Milliseconds(1)}, absl::Now()).ok());
  EXPECT_EQ(hlen("sag:rl:big"), 4 + 3);
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(store.TryTake("huge", Limit{1000000, absl::Seconds(1)}, absl::Now()).ok());
  }
  EXPECT_EQ(hlen("sag:rl:huge"), 1);
  EXPECT_EQ(store.RecentAdmissionsFillWindowOrError("huge", Limit{1000000, absl::Seconds(1)})
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store.TryTake("big", Limit{1000000, absl::Seconds(1)}, absl::Now()).ok());
  EXPECT_EQ(hlen("sag:rl:big"), 1);
}

// The admission record (every taker's admissions, in Redis) answers what the Limiter asks of its
// own admissions: do the last N fit in N emission intervals? Against that test computed here over
// the times the store admitted, for random sequences, limits changing midway, several keys.
TEST_F(RedisTest, AdmissionRecordAnswersLikeTheLimitersOwnTest) {
  auto c = NewClient();
  FakeClock clock;
  RedisBudgetOptions ro;
  ro.clock_source = ClockSource::kCaller;
  ro.clock = &clock;
  ro.prefix = "test:record:";
  RedisBudgetStore store(c.get(), ro);
  const std::vector<Limit> limits = {Limit{10, absl::Seconds(1)}, Limit{4, absl::Seconds(1)},
                                     Limit{1, absl::Seconds(1)}};
  struct Key {
    size_t limit = 0;  // Index in `limits`.
    int steps = 0;
    int record_n = 0;                  // The N of the record (0: none yet).
    std::vector<absl::Time> admitted;  // Since the record started.
  };
  std::map<std::string, Key> keys;
  std::mt19937 rng(11);
  absl::Time t = clock.Now();
  int full = 0, not_full = 0;
  for (int i = 0; i < 600; ++i) {
    const std::string name = (i % 2 == 0) ? "ws/A" : "ws/B";
    Key& k = keys[name];
    if (++k.steps % 100 == 0) k.limit = (k.limit + 1) % limits.size();  // The limit changes.
    const Limit limit = limits[k.limit];
    const absl::Duration interval = store.Interval(limit);
    auto r = store.TryTake(name, limit, t);
    ASSERT_TRUE(r.ok()) << r.status();
    if (*r <= t) {
      if (k.record_n != limit.requests) {  // A change of N starts a new record.
        k.record_n = limit.requests;
        k.admitted.clear();
      }
      k.admitted.push_back(t);
    }
    const std::vector<absl::Time>& a = k.admitted;
    const size_t n = static_cast<size_t>(limit.requests);
    const bool expected = k.record_n == limit.requests && a.size() >= n &&
                          a.back() - a[a.size() - n] < interval * static_cast<int64_t>(n);
    auto answer = store.RecentAdmissionsFillWindowOrError(name, limit);
    ASSERT_TRUE(answer.ok()) << answer.status();
    ASSERT_EQ(*answer, expected) << "step " << i << " " << name << " "
                                 << ratelimit::FormatLimit(limit);
    (expected ? full : not_full)++;
    // Mostly on the slot or a little after it, sometimes much later.
    const int64_t us = absl::ToInt64Microseconds(interval);
    t = std::max(t, *r) + absl::Microseconds(std::uniform_int_distribution<int64_t>(
                              0, (i % 7 == 0) ? us * 3 : us / 20)(rng));
  }
  EXPECT_GT(full, 100);
  EXPECT_GT(not_full, 20);
  EXPECT_EQ(store.RecentAdmissionsFillWindowOrError("ws/none", limits[0]).value_or(true), false);
  EXPECT_EQ(
      store.RecentAdmissionsFillWindowOrError("ws/A", Limit{0, absl::Seconds(1)}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// Three replicas (a Limiter on a FallbackBudgetStore each, as audiences-gateway wires them) share
// one 10/1s lane through Redis, on one fake clock. The upstream answers the 10th call of its window
// with X-RateLimit-Remaining: 0 and a reset rounded up to the next whole second. The shared pacing
// filled that window (10 calls, 102 ms apart, by 3 replicas): the lane must not stop until the
// reset, on any replica. (It did: each replica judged by its own third of the admissions, blocked
// the shared lane in Redis until the reset, and every window took ~2 s: 50% of the budget.)
TEST_F(RedisTest, RemainingZeroAfterTheSharedPacingFilledTheWindowBlocksNoReplica) {
  constexpr int kReplicas = 3;
  const Limit limit{10, absl::Seconds(1)};
  const std::string lane = "ws/GetAudience";
  FakeClock clock;
  const absl::Time t0 = clock.Now();
  struct Replica {
    std::unique_ptr<RedisClient> client;
    std::unique_ptr<RedisBudgetStore> shared;
    std::unique_ptr<FallbackBudgetStore> store;
    std::unique_ptr<ratelimit::Limiter> limiter;
  };
  std::vector<Replica> replicas(kReplicas);
  for (Replica& r : replicas) {
    r.client = NewClient();
    RedisBudgetOptions ro;
    ro.clock_source = ClockSource::kCaller;
    ro.clock = &clock;
    r.shared = std::make_unique<RedisBudgetStore>(r.client.get(), ro);
    FallbackOptions fo;
    fo.replicas = kReplicas;
    fo.clock = &clock;
    r.store = std::make_unique<FallbackBudgetStore>(r.shared.get(), fo);
    r.limiter = std::make_unique<ratelimit::Limiter>(r.store.get(), &clock, &clock);
  }
  // Every replica has callers waiting: 8 calls each.
  std::vector<std::pair<int, absl::Time>> admitted;  // (replica, when)
  for (int i = 0; i < kReplicas; ++i) {
    for (int k = 0; k < 8; ++k) {
      replicas[i].limiter->Acquire(ratelimit::AcquireRequest{lane, limit, "caller"},
                                   [&admitted, &clock, i](absl::Status s) {
                                     ASSERT_TRUE(s.ok()) << s;
                                     admitted.emplace_back(i, clock.Now());
                                   });
    }
  }
  const absl::Duration interval = replicas[0].store->Interval(limit);  // 102 ms
  clock.Advance(interval * 9);
  ASSERT_EQ(admitted.size(), 10u);
  int own_max = 0;
  for (int i = 0; i < kReplicas; ++i) {
    own_max = std::max<int>(own_max, std::count_if(admitted.begin(), admitted.end(),
                                                   [i](const auto& a) { return a.first == i; }));
  }
  EXPECT_LT(own_max, 10);  // No replica sent the window by itself.
  // The 10th call's response: Remaining 0, reset rounded up to the next second.
  const int observer = admitted.back().first;
  replicas[observer].limiter->Observe(lane, 0, t0 + absl::Seconds(2));
  EXPECT_EQ(replicas[observer].limiter->Stats().remaining_zero_trusted, 1u);
  EXPECT_EQ(replicas[observer].limiter->Stats().upstream_blocks, 0u);
  clock.Advance(interval * 5);
  ASSERT_EQ(admitted.size(), 15u);
  // The 11th call went at its paced slot (t0 + 10 x 102 ms), not at the reset (t0 + 2 s).
  EXPECT_EQ(admitted[10].second, t0 + interval * 10);
  for (size_t k = 1; k < admitted.size(); ++k) {
    EXPECT_EQ(admitted[k].second - admitted[k - 1].second, interval) << k;
  }
  for (Replica& r : replicas) EXPECT_FALSE(r.store->degraded());

  // The block is still there for what it is for: Remaining 0 when the shared pacing did not fill
  // the window (another client of the token spends it). After a pause, 3 calls, then Remaining 0:
  // every replica stops until the reset.
  clock.Advance(absl::Seconds(5));
  const size_t before = admitted.size();
  const absl::Time t1 = clock.Now();
  for (int i = 0; i < kReplicas; ++i) {
    replicas[i].limiter->Acquire(ratelimit::AcquireRequest{lane, limit, "caller"},
                                 [&admitted, &clock, i](absl::Status s) {
                                   ASSERT_TRUE(s.ok()) << s;
                                   admitted.emplace_back(i, clock.Now());
                                 });
  }
  ASSERT_EQ(admitted.size(), before + 1);  // Taken at once; the others wait for their slot.
  clock.Advance(interval * 2);
  ASSERT_EQ(admitted.size(), before + 3);
  const int second_observer = admitted.back().first;
  replicas[second_observer].limiter->Observe(lane, 0, t1 + absl::Seconds(1));
  EXPECT_EQ(replicas[second_observer].limiter->Stats().upstream_blocks, 1u);
  for (int i = 0; i < kReplicas; ++i) {
    replicas[i].limiter->Acquire(ratelimit::AcquireRequest{lane, limit, "caller"},
                                 [&admitted, &clock, i](absl::Status s) {
                                   ASSERT_TRUE(s.ok()) << s;
                                   admitted.emplace_back(i, clock.Now());
                                 });
  }
  EXPECT_EQ(admitted.size(), before + 3);
  clock.Advance(t1 + absl::Seconds(1) - interval / 2 - clock.Now());
  EXPECT_EQ(admitted.size(), before + 3);  // Every replica waits for the reset...
  clock.Advance(interval / 2);
  ASSERT_EQ(admitted.size(), before + 4);  // ...and the lane goes on from there.
  EXPECT_EQ(admitted[before + 3].second, t1 + absl::Seconds(1));
  clock.Advance(interval * 2);
  EXPECT_EQ(admitted.size(), before + 6);
}

// A replica that took the whole budget through Redis for a minute (the others idle) must not lock
// itself out when Redis then goes away: its local 1/N state (charged on every shared admission as
// a mirror) carries at most one window of debt. (Uncapped, 60 s at 10/s charged at 1 per 306 ms ran
// its local tat ~2 minutes ahead.)
TEST_F(RedisTest, FallbackDebtIsCappedAtOneWindow) {
  const Limit limit{10, absl::Seconds(1)};
  FakeClock clock;
  auto c = NewClient();
  RedisBudgetOptions ro;
  ro.clock_source = ClockSource::kCaller;
  ro.clock = &clock;
  RedisBudgetStore shared(c.get(), ro);
  FallbackOptions fo;
  fo.replicas = 3;
  fo.clock = &clock;
  FallbackBudgetStore store(&shared, fo);
  const absl::Time end = clock.Now() + absl::Seconds(60);
  absl::Time now = clock.Now();
  absl::Time last = absl::InfinitePast();
  int taken = 0;
  while (now < end) {
    auto r = store.TryTake("ws/Op", limit, now);
    ASSERT_TRUE(r.ok()) << r.status();
    if (*r <= now) {
      last = now;
      ++taken;
    } else {
      now = *r;
    }
  }
  EXPECT_GE(taken, 585);  // The whole budget: 60 s / 102 ms.
  EXPECT_EQ(store.stats().shared_admits, static_cast<uint64_t>(taken));
  clock.Advance(now - clock.Now());

  ASSERT_TRUE(server_->Kill().ok());
  auto r = store.TryTake("ws/Op", limit, now);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(store.degraded());
  // Its next local slot: one window after its last call, not minutes away.
  EXPECT_EQ(*r, last + limit.per);
  // From there, 1/N of the limit: one call per 306 ms.
  now = *r;
  r = store.TryTake("ws/Op", limit, now);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, now);
  r = store.TryTake("ws/Op", limit, now);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, now + store.Interval(limit));
  EXPECT_EQ(store.Interval(limit), absl::Milliseconds(306));
  EXPECT_EQ(store.stats().fallback_admits, 1u);
}

// The guard the frozen-Redis tests rely on: nothing is answered while it lives, and the server
// answers again once it is gone, without an explicit Thaw().
TEST_F(RedisTest, ScopedRedisFreezeThawsWhenItGoesOutOfScope) {
  auto c = NewClient();
  {
    sag::testing::ScopedRedisFreeze freeze(server_.get());
    ASSERT_TRUE(freeze.frozen().ok()) << freeze.frozen();
    absl::StatusOr<RedisReply> pong = c->Command({"PING"});
    EXPECT_TRUE(absl::IsUnavailable(pong.status())) << pong.status();  // Timed out.
  }
  // The client reconnects in the background: the first PING may find it between connections.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  absl::StatusOr<RedisReply> pong = c->Command({"PING"});
  while (!(pong.ok() && pong->str == "PONG") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
    pong = c->Command({"PING"});
  }
  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->str, "PONG");
}

// A stopped server still accepts TCP connections: the client's reconnection must not count that
// as up (its PING goes unanswered), so commands fail at once ("not connected") instead of each
// waiting out the command timeout, and the state does not flap.
TEST_F(RedisTest, AServerThatAnswersNothingIsNotConnected) {
  auto c = NewClient();
  const uint64_t connects = c->stats().connects;  // The pool's connections.
  sag::testing::ScopedRedisFreeze freeze(server_.get());
  ASSERT_TRUE(freeze.frozen().ok()) << freeze.frozen();
  EXPECT_TRUE(absl::IsUnavailable(c->Command({"PING"}).status()));  // Times out, drops the pool.
  const absl::Time limit = absl::Now() + absl::Seconds(10);
  while (c->stats().connect_errors == 0 && c->stats().connects == connects && absl::Now() < limit) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_GE(c->stats().connect_errors, 1u);
  EXPECT_EQ(c->stats().connects, connects);
  EXPECT_FALSE(c->connected());
  const absl::Time start = absl::Now();
  auto r = c->Command({"PING"});
  EXPECT_TRUE(absl::StrContains(r.status().message(), "not connected")) << r.status();
  EXPECT_LT(absl::Now() - start, c->options().command_timeout);
}

// Redis hung (SIGSTOP: connected, nothing answered): a call waits out the command timeout before
// the fallback admits it, so it goes out that much later than the `now` it was asked at. The next
// local slot must be one local interval after the call went out, not after `now`. (It was after
// `now`: with two replicas at 1/2 of 10/1s, the upstream saw 11 calls in one second when the calls
// before the thaw had waited for Redis and the first after it had not.)
TEST_F(RedisTest, FallbackPacesFromWhenACallWentOutAfterARedisTimeout) {
  const Limit limit{10, absl::Seconds(1)};
  RedisOptions o = FastOptions(server_->url());
  o.health_interval = absl::Hours(1);  // No PING meets the freeze first: the take does.
  auto c = RedisClient::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->WaitConnected(absl::Seconds(5)));
  RedisBudgetStore shared(c->get());
  FallbackOptions fo;
  // One replica: with more, the first local call of an episode also waits one local interval
  // (NoCallOverTheLimitWhenRedisGoesAwayAfterAFullWindow); here the first goes at once.
  fo.replicas = 1;
  FallbackBudgetStore store(&shared, fo);
  sag::testing::ScopedRedisFreeze freeze(server_.get());
  ASSERT_TRUE(freeze.frozen().ok()) << freeze.frozen();

  const absl::Time asked = absl::Now();
  auto r = store.TryTake("ws/Op", limit, asked);
  const absl::Time went_out = absl::Now();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, asked);  // Admitted (the local share), after the Redis timeout:
  EXPECT_GE(went_out - asked, o.command_timeout);
  EXPECT_EQ(store.stats().fallback_admits, 1u);
  ASSERT_TRUE(store.degraded());
  r = store.TryTake("ws/Op", limit, went_out);
  ASSERT_TRUE(r.ok()) << r.status();
  // One local interval (102 ms) from when it went out, give or take the scheduler (not ~2 ms:
  // one interval from `asked`, which was the command timeout, 100 ms, earlier).
  EXPECT_GE(*r, went_out + store.Interval(limit) - o.command_timeout / 2)
      << "next slot " << absl::FormatDuration(*r - went_out) << " after the call went out";
}

TEST_F(RedisTest, TwoReplicasTogetherAdmitAtMostTheLimit) {
  auto c1 = NewClient();
  auto c2 = NewClient();
  RedisBudgetStore a(c1.get());
  RedisBudgetStore b(c2.get());
  const Limit limit{10, absl::Seconds(1)};
  Admissions admitted;
  const absl::Time end = absl::Now() + absl::Milliseconds(2500);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] { Flood(&a, "ws/Op", limit, end, &admitted); });
    threads.emplace_back([&] { Flood(&b, "ws/Op", limit, end, &admitted); });
  }
  for (auto& t : threads) t.join();
  const auto times = admitted.times();
  EXPECT_LE(MaxInWindow(times, absl::Seconds(1)), 10u);
  // Utilisation: 2.5 s at one call per 102 ms is 25 calls (24 or 25 depending on alignment).
  EXPECT_GE(times.size(), 23u);
  EXPECT_LE(times.size(), 26u);
}

TEST_F(RedisTest, BlockUntilIsShared) {
  auto c1 = NewClient();
  auto c2 = NewClient();
  RedisBudgetStore a(c1.get());
  RedisBudgetStore b(c2.get());
  const Limit limit{10, absl::Seconds(1)};
  const absl::Time now = absl::Now();
  a.BlockUntil("ws/Op", now + absl::Milliseconds(500));
  auto r = b.TryTake("ws/Op", limit, absl::Now());
  ASSERT_TRUE(r.ok());
  EXPECT_GT(*r, now + absl::Milliseconds(400));
  EXPECT_LT(*r, now + absl::Milliseconds(600));
  // A block never moves earlier.
  ASSERT_TRUE(b.BlockUntilOrError("ws/Op", now + absl::Milliseconds(100)).ok());
  r = a.TryTake("ws/Op", limit, absl::Now());
  ASSERT_TRUE(r.ok());
  EXPECT_GT(*r, now + absl::Milliseconds(400));
  absl::SleepFor(*r - absl::Now());
  r = a.TryTake("ws/Op", limit, absl::Now());
  ASSERT_TRUE(r.ok());
  EXPECT_LE(*r, absl::Now());
}

// --- Preview quota ---

TEST_F(RedisTest, QuotaSharedAcrossInstancesAndRestarts) {
  auto c1 = NewClient();
  auto c2 = NewClient();
  RedisPreviewQuotaOptions o;
  o.limit = 5;
  RedisPreviewQuota a(c1.get(), o);
  RedisPreviewQuota b(c2.get(), o);
  const absl::Time now = absl::FromUnixSeconds(1795000000);  // 2026-11
  const absl::CivilMonth month = ratelimit::UtcMonthOf(now);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(a.TryTake("sp1", now).ok());
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(b.TryTake("sp1", now).ok());
  absl::Status refused = a.TryTake("sp1", now);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  auto payload = refused.GetPayload("type.googleapis.com/google.rpc.QuotaFailure");
  ASSERT_TRUE(payload.has_value());
  google::rpc::QuotaFailure failure;
  ASSERT_TRUE(failure.ParseFromString(std::string(*payload)));
  ASSERT_EQ(failure.violations_size(), 1);
  EXPECT_EQ(failure.violations(0).subject(), "spaces/sp1");
  EXPECT_NE(failure.violations(0).description().find("2026-11"), std::string::npos);
  EXPECT_NE(failure.violations(0).description().find("2026-12-01"), std::string::npos);
  EXPECT_EQ(a.Used("sp1", month), 5);
  EXPECT_EQ(b.Used("sp1", month), 5);
  EXPECT_EQ(a.Used("sp2", month), 0);

  // "Restart": a new object (and a new connection) sees the same count.
  auto c3 = NewClient();
  RedisPreviewQuota restarted(c3.get(), o);
  EXPECT_EQ(restarted.Used("sp1", month), 5);
  EXPECT_EQ(restarted.TryTake("sp1", now).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(restarted.Release("sp1", month).ok());
  EXPECT_EQ(a.Used("sp1", month), 4);
  EXPECT_TRUE(b.TryTake("sp1", now).ok());
  // Another month is another count; Release floors at 0.
  EXPECT_TRUE(a.TryTake("sp1", now + absl::Hours(24 * 31)).ok());
  EXPECT_TRUE(a.Release("sp2", month).ok());
  EXPECT_EQ(a.Used("sp2", month), 0);
  // Expires at the start of the month after next (2027-01-01 00:00 UTC).
  auto ttl = c1->Command({"EXPIRETIME", a.Key("sp1", month)});
  ASSERT_TRUE(ttl.ok());
  EXPECT_EQ(ttl->integer, absl::ToUnixSeconds(
                              absl::FromCivil(absl::CivilSecond(2027, 1, 1), absl::UTCTimeZone())));
}

TEST_F(RedisTest, QuotaNeverExceedsTheLimitUnderRaces) {
  RedisPreviewQuotaOptions o;
  o.limit = 25;
  std::vector<std::unique_ptr<RedisClient>> clients;
  std::vector<std::unique_ptr<RedisPreviewQuota>> quotas;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(NewClient());
    quotas.push_back(std::make_unique<RedisPreviewQuota>(clients.back().get(), o));
  }
  std::atomic<int> ok{0};
  std::atomic<int> exhausted{0};
  std::vector<std::thread> threads;
  const absl::Time now = absl::Now();
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 10; ++k) {
        absl::Status s = quotas[i % 4]->TryTake("race", now);
        if (s.ok()) {
          ++ok;
        } else if (s.code() == absl::StatusCode::kResourceExhausted) {
          ++exhausted;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 25);
  EXPECT_EQ(exhausted.load(), 55);
  EXPECT_EQ(quotas[0]->Used("race", ratelimit::UtcMonthOf(now)), 25);
}

TEST_F(RedisTest, QuotaFailsClosedWhenRedisIsDown) {
  auto c = NewClient();
  RedisPreviewQuota q(c.get());
  ASSERT_TRUE(server_->Kill().ok());
  absl::Status s = q.TryTake("sp", absl::Now());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(q.Release("sp", ratelimit::UtcMonthOf(absl::Now())).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(q.UsedOrError("sp", ratelimit::UtcMonthOf(absl::Now())).ok());
}

// --- Invalidation ---

class TagSink {
 public:
  void Add(const std::string& tag) {
    absl::MutexLock lock(&mu_);
    tags_.push_back(tag);
  }
  bool WaitFor(size_t n, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (tags().size() < n) {
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Microseconds(200));
    }
    return true;
  }
  std::vector<std::string> tags() {
    absl::MutexLock lock(&mu_);
    return tags_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> tags_;
};

TEST(RedisInvalidationCodecTest, RoundTrips) {
  const std::vector<std::string> tags = {"", "a", std::string("x:\n\0y", 5), "4:ws-3:sp_1"};
  std::string origin;
  std::vector<std::string> out;
  ASSERT_TRUE(RedisInvalidation::Decode(RedisInvalidation::Encode("o1", tags), &origin, &out));
  EXPECT_EQ(origin, "o1");
  EXPECT_EQ(out, tags);
  EXPECT_FALSE(RedisInvalidation::Decode("junk", &origin, &out));
  EXPECT_FALSE(RedisInvalidation::Decode("sag-inv1\no\n9:abc", &origin, &out));
}

TEST_F(RedisTest, InvalidationPublishedByAReachesB) {
  auto ca = NewClient();
  auto cb = NewClient();
  TagSink at_a, at_b;
  InvalidationOptions oa;
  oa.on_tag = [&](const std::string& t) { at_a.Add(t); };
  InvalidationOptions ob;
  ob.on_tag = [&](const std::string& t) { at_b.Add(t); };
  auto a = RedisInvalidation::Create(ca.get(), oa);
  auto b = RedisInvalidation::Create(cb.get(), ob);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->WaitSubscribed(absl::Seconds(5)));
  ASSERT_TRUE((*b)->WaitSubscribed(absl::Seconds(5)));

  const absl::Time start = absl::Now();
  ASSERT_TRUE((*a)->Publish({"tag-1", "tag-2"}).ok());
  ASSERT_TRUE(at_b.WaitFor(2, absl::Seconds(2)));
  const absl::Duration delay = absl::Now() - start;
  EXPECT_LT(delay, absl::Milliseconds(200));
  std::cout << "invalidation A->B delay (incl. PUBLISH round trip): " << delay << "\n";
  EXPECT_EQ(at_b.tags(), (std::vector<std::string>{"tag-1", "tag-2"}));
  // A does not hear its own message.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_TRUE(at_a.tags().empty());
  EXPECT_EQ((*b)->stats().tags_received, 2u);
  EXPECT_EQ((*a)->stats().published, 1u);
}

TEST_F(RedisTest, InvalidationResubscribesAfterRedisRestart) {
  auto ca = NewClient();
  auto cb = NewClient();
  TagSink at_b;
  std::atomic<int> resubscribed{0};
  InvalidationOptions ob;
  ob.on_tag = [&](const std::string& t) { at_b.Add(t); };
  ob.on_resubscribed = [&] { ++resubscribed; };
  auto a = RedisInvalidation::Create(ca.get(), {});
  auto b = RedisInvalidation::Create(cb.get(), ob);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*b)->WaitSubscribed(absl::Seconds(5)));

  ASSERT_TRUE(server_->Kill().ok());
  EXPECT_EQ((*a)->Publish({"lost"}).code(), absl::StatusCode::kUnavailable);
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  while ((*b)->subscribed() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_FALSE((*b)->subscribed());
  ASSERT_TRUE(server_->Start().ok());
  ASSERT_TRUE(ca->WaitConnected(absl::Seconds(5)));
  ASSERT_TRUE((*b)->WaitSubscribed(absl::Seconds(5)));
  EXPECT_EQ(resubscribed.load(), 1);
  ASSERT_TRUE((*a)->Publish({"after"}).ok());
  ASSERT_TRUE(at_b.WaitFor(1, absl::Seconds(2)));
  EXPECT_EQ(at_b.tags(), std::vector<std::string>{"after"});
}

// --- Fallback ---

// Entering degraded just after the shared pacing filled the window, unevenly (one replica took
// the first 4 calls, the other the last 6): the replica that took less, whose own calls are
// long enough ago for its 1/N pacing, must not take a local call at once, or the window ending
// then holds 11. Time is the callers' (kCaller), stepped by hand.
TEST_F(RedisTest, NoCallOverTheLimitWhenRedisGoesAwayAfterAFullWindow) {
  const Limit limit{10, absl::Seconds(1)};
  RedisBudgetOptions ro;
  ro.clock_source = ClockSource::kCaller;
  std::vector<std::unique_ptr<RedisClient>> clients;
  std::vector<std::unique_ptr<RedisBudgetStore>> shared;
  std::vector<std::unique_ptr<FallbackBudgetStore>> stores;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(NewClient());
    shared.push_back(std::make_unique<RedisBudgetStore>(clients.back().get(), ro));
    FallbackOptions fo;
    fo.replicas = 2;
    stores.push_back(std::make_unique<FallbackBudgetStore>(shared.back().get(), fo));
  }
  const absl::Duration t = shared[0]->Interval(limit);
  absl::Time now = absl::Now();
  std::vector<absl::Time> admitted;
  for (int k = 0; k < 10; ++k) {  // Replica 1 takes the first 4, replica 0 the last 6.
    if (k > 0) now += t;
    auto r = stores[k < 4 ? 1 : 0]->TryTake("ws/Op", limit, now);
    ASSERT_TRUE(r.ok() && *r <= now) << k;
    admitted.push_back(now);
  }
  ASSERT_TRUE(server_->Kill().ok());  // Just after the 10th call: the outage begins.
  now += absl::Milliseconds(1);
  const absl::Time end = now + absl::Seconds(2);
  for (; now < end; now += absl::Milliseconds(1)) {
    for (auto& store : stores) {
      auto r = store->TryTake("ws/Op", limit, now);
      ASSERT_TRUE(r.ok()) << r.status();
      if (*r <= now) admitted.push_back(now);
    }
  }
  EXPECT_TRUE(stores[1]->degraded());
  EXPECT_GE(admitted.size(), 10u + 16u);  // About 2 s at 2 x 1 per 204 ms, less the first wait.
  EXPECT_LE(MaxInWindow(admitted, absl::Seconds(1)), 10u);
}

TEST_F(RedisTest, FallbackWhileRedisIsDownAndNoBurstWhenItReturns) {
  constexpr int kReplicas = 2;
  const Limit limit{10, absl::Seconds(1)};
  struct Replica {
    std::unique_ptr<RedisClient> client;
    std::unique_ptr<RedisBudgetStore> shared;
    std::unique_ptr<FallbackBudgetStore> store;
    std::atomic<int> transitions{0};
  };
  std::vector<std::unique_ptr<Replica>> replicas;
  for (int i = 0; i < kReplicas; ++i) {
    auto r = std::make_unique<Replica>();
    r->client = NewClient();
    // The caller's clock judges every take, so the times Flood records are the times the store
    // judged: with Redis's own clock (kServer) a take is judged a variable moment after Flood
    // read the time, and on a loaded machine two recorded admissions can look closer than the
    // store saw them (an 11th call in a 1 s window that the store never admitted).
    RedisBudgetOptions ro;
    ro.clock_source = ClockSource::kCaller;
    r->shared = std::make_unique<RedisBudgetStore>(r->client.get(), ro);
    FallbackOptions fo;
    fo.replicas = kReplicas;
    fo.on_state_change = [rp = r.get()](bool, const std::string&) { ++rp->transitions; };
    r->store = std::make_unique<FallbackBudgetStore>(r->shared.get(), fo);
    replicas.push_back(std::move(r));
  }
  Admissions all;
  std::vector<Admissions> per_replica(kReplicas);
  auto run = [&](absl::Duration d) {
    const absl::Time end = absl::Now() + d;
    std::vector<std::thread> threads;
    for (int i = 0; i < kReplicas; ++i) {
      for (int k = 0; k < 2; ++k) {
        threads.emplace_back([&, i] {
          Admissions mine;
          Flood(replicas[i]->store.get(), "ws/Op", limit, end, &mine);
          for (absl::Time t : mine.times()) {
            all.Add(t);
            per_replica[i].Add(t);
          }
        });
      }
    }
    for (auto& t : threads) t.join();
  };

  // Healthy.
  run(absl::Milliseconds(1500));
  for (auto& r : replicas) EXPECT_FALSE(r->store->degraded());
  const size_t healthy = all.times().size();

  // Redis killed: each replica paces at 1/N locally.
  ASSERT_TRUE(server_->Kill().ok());
  const absl::Time down_from = absl::Now();
  run(absl::Milliseconds(2000));
  for (auto& r : replicas) {
    EXPECT_TRUE(r->store->degraded());
    EXPECT_GT(r->store->stats().fallback_admits, 0u);
    EXPECT_EQ(r->store->stats().degraded_episodes, 1u);
    EXPECT_EQ(r->store->Interval(limit), r->shared->Interval(limit) * kReplicas);
  }
  size_t during_outage = 0;
  for (absl::Time t : all.times()) during_outage += t >= down_from;
  // 2 s at 2 x (1 per 204 ms), less what the mirrored pre-outage calls had used: ~14-20.
  EXPECT_GE(during_outage, 12u);

  // Redis back (empty: no persistence): reconnect, degraded() false, no burst.
  ASSERT_TRUE(server_->Start().ok());
  const absl::Time up_at = absl::Now();
  for (auto& r : replicas) ASSERT_TRUE(r->client->WaitConnected(absl::Seconds(5)));
  run(absl::Milliseconds(3500));
  for (auto& r : replicas) {
    EXPECT_FALSE(r->store->degraded());
    EXPECT_EQ(r->store->stats().recoveries, 1u);
    EXPECT_EQ(r->transitions.load(), 2);
  }
  const auto times = all.times();
  EXPECT_LE(MaxInWindow(times, absl::Seconds(1)), 10u);
  if (getenv("SAG_DEBUG_TIMES")) {
    for (int i = 0; i < kReplicas; ++i) {
      auto ts = per_replica[i].times();
      std::sort(ts.begin(), ts.end());
      for (absl::Time t : ts)
        std::cout << i << " " << absl::ToDoubleMilliseconds(t - down_from) << "\n";
    }
    std::cout << "up at " << absl::ToDoubleMilliseconds(up_at - down_from) << "\n";
  }
  // The shared budget is used again at the end: the last second has ~9-10 calls.
  const absl::Time last = *std::max_element(times.begin(), times.end());
  size_t last_second = 0;
  for (absl::Time t : times) last_second += t > last - absl::Seconds(1);
  EXPECT_GE(last_second, 8u);
  std::cout << "healthy " << healthy << ", during outage " << during_outage << ", total "
            << times.size() << ", max in 1 s " << MaxInWindow(times, absl::Seconds(1)) << "\n";
}

}  // namespace
}  // namespace sag::redis
