// Lanes behind a slow Redis: how many admissions does the limiter give `--lanes` lanes of
// `--limit` each when every BudgetStore round trip crosses a TCP proxy that delays each
// direction by `--delay`? The store is the gateway's (FallbackBudgetStore over RedisBudgetStore
// over a RedisClient); the Redis is a real redis-server child; the proxy is a thread of this
// program. Every lane is kept flooded (`--waiting` calls queued at all times, no deadline), so
// the ideal is lanes x limit admissions per second. Two runs in one process: the baseline (one
// Redis connection, every lane's round trip on the timer thread: how the gateway worked before
// the connection pool) and the gateway's way (`--connections` connections, the limiter's timer
// work on as many threads). Prints each aggregate and lane rate, and their ratio.
// Exit 77 when redis-server is not installed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/common/work_queue.h"
#include "service/ratelimit/limiter.h"
#include "service/redis/redis_budget_store.h"
#include "service/redis/redis_client.h"
#include "tests/common/redis_server.h"

ABSL_FLAG(int, lanes, 6, "lanes (one operation of one workspace each)");
ABSL_FLAG(int, requests, 10, "each lane's limit: requests per second");
ABSL_FLAG(absl::Duration, delay, absl::Milliseconds(20), "proxy delay, each direction");
ABSL_FLAG(absl::Duration, seconds, absl::Seconds(5), "measured window");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "before the window");
ABSL_FLAG(int, waiting, 20, "calls kept queued per lane");
ABSL_FLAG(int, connections, 8,
          "Redis connections of the pooled run, and threads running the limiter's timer work");
ABSL_FLAG(absl::Duration, command_timeout, absl::Milliseconds(200),
          "Redis command timeout (above the proxy's round trip)");

namespace {

// A TCP proxy to 127.0.0.1:target that holds every chunk `delay` before passing it on.
class DelayProxy {
 public:
  DelayProxy(int target, absl::Duration delay) : target_(target), delay_(delay) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    threads_.emplace_back([this] { AcceptLoop(); });
  }
  ~DelayProxy() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    for (auto& t : threads_) t.join();
    for (int fd : fds_) ::close(fd);
  }
  int port() const { return port_; }

 private:
  struct Direction {
    absl::Mutex mu;
    std::deque<std::pair<absl::Time, std::string>> chunks ABSL_GUARDED_BY(mu);
    bool closed ABSL_GUARDED_BY(mu) = false;
  };

  void AcceptLoop() {
    while (true) {
      int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      int server = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(target_));
      ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a);
      absl::MutexLock lock(&mu_);
      if (stop_) {
        ::close(client);
        ::close(server);
        return;
      }
      fds_.push_back(client);
      fds_.push_back(server);
      for (auto [from, to] : {std::pair{client, server}, std::pair{server, client}}) {
        auto dir = std::make_shared<Direction>();
        threads_.emplace_back([this, from = from, dir] { Read(from, dir.get()); });
        threads_.emplace_back([this, to = to, dir] { Write(to, dir.get()); });
      }
    }
  }
  void Read(int fd, Direction* d) {
    char buf[16384];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      absl::MutexLock lock(&d->mu);
      if (n <= 0) {
        d->closed = true;
        return;
      }
      d->chunks.emplace_back(absl::Now() + delay_, std::string(buf, static_cast<size_t>(n)));
    }
  }
  void Write(int fd, Direction* d) {
    while (true) {
      std::string data;
      {
        absl::MutexLock lock(&d->mu);
        auto ready = [d]() ABSL_SHARED_LOCKS_REQUIRED(d->mu) {
          return d->closed || !d->chunks.empty();
        };
        d->mu.Await(absl::Condition(&ready));
        if (d->chunks.empty()) return;
        absl::Time due = d->chunks.front().first;
        if (absl::Now() < due) {
          d->mu.Unlock();
          absl::SleepFor(due - absl::Now());
          d->mu.Lock();
        }
        data = std::move(d->chunks.front().second);
        d->chunks.pop_front();
      }
      for (size_t off = 0; off < data.size();) {
        ssize_t w = ::write(fd, data.data() + off, data.size() - off);
        if (w <= 0) return;
        off += static_cast<size_t>(w);
      }
    }
  }

  const int target_;
  const absl::Duration delay_;
  int listen_fd_ = -1;
  int port_ = 0;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;  // Only AcceptLoop adds (before the destructor joins).
};

struct Result {
  double per_second = 0;  // Aggregate admissions.
  std::string per_lane;
  int64_t refusals = 0;
  uint64_t fallback_admits = 0;
};

// Floods `--lanes` lanes through a limiter whose store is Redis at `redis_port` with
// `connections` connections; lane keys start with `prefix` (each run its own).
std::optional<Result> Measure(int redis_port, int connections, const std::string& prefix) {
  using namespace sag;
  const int lanes = absl::GetFlag(FLAGS_lanes);
  const ratelimit::Limit limit{absl::GetFlag(FLAGS_requests), absl::Seconds(1)};
  redis::RedisOptions ro;
  ro.url = absl::StrCat("redis://127.0.0.1:", redis_port);
  ro.command_timeout = absl::GetFlag(FLAGS_command_timeout);
  ro.connections = connections;
  ro.connect_timeout = absl::Seconds(2);
  auto client = redis::RedisClient::Create(ro);
  if (!client.ok() || !(*client)->WaitConnected(absl::Seconds(10))) return std::nullopt;
  redis::RedisBudgetStore shared(client->get());
  redis::FallbackBudgetStore store(&shared, {});
  RealTimers timers;
  // As the gateway does with Redis: the limiter's timer work on one thread per connection.
  WorkQueue store_work(connections);
  std::atomic<bool> stop{false};
  std::vector<std::atomic<int64_t>> admitted(static_cast<size_t>(lanes));
  std::atomic<int64_t> errors{0};
  absl::Time window_start = absl::Now() + absl::GetFlag(FLAGS_warmup);
  absl::Time window_end = window_start + absl::GetFlag(FLAGS_seconds);
  {
    ratelimit::LimiterOptions lo;
    if (connections > 1) {
      lo.run_timer_work = [&store_work](std::function<void()> fn) {
        store_work.Run(std::move(fn));
      };
    }
    ratelimit::Limiter limiter(&store, RealClock(), &timers, lo);
    std::function<void(int)> issue = [&](int lane) {
      ratelimit::AcquireRequest r{absl::StrCat(prefix, lane), limit, "bench"};
      limiter.Acquire(r, [&, lane](absl::Status s) {
        absl::Time now = absl::Now();
        if (s.ok() && now >= window_start && now < window_end) ++admitted[lane];
        if (!s.ok() && now < window_end) ++errors;
        if (stop.load()) return;
        if (s.ok()) return issue(lane);
        timers.Schedule(now + absl::Milliseconds(10), [&, lane] { issue(lane); });
      });
    };
    for (int lane = 0; lane < lanes; ++lane) {
      for (int i = 0; i < absl::GetFlag(FLAGS_waiting); ++i) issue(lane);
    }
    absl::SleepFor(window_end - absl::Now());
    stop.store(true);
    timers.Stop();      // No more retries of refused calls...
    store_work.Stop();  // ...and no timer work once the limiter goes.
  }                     // The limiter answers the calls still queued (UNAVAILABLE) and is gone.
  const double secs = absl::ToDoubleSeconds(window_end - window_start);
  Result r;
  int64_t total = 0;
  for (auto& a : admitted) {
    total += a.load();
    absl::StrAppend(&r.per_lane, r.per_lane.empty() ? "" : " ", a.load() / secs);
  }
  r.per_second = total / secs;
  r.refusals = errors.load();
  r.fallback_admits = store.stats().fallback_admits;
  return r;
}

void Print(const char* what, int connections, const Result& r) {
  const double ideal = absl::GetFlag(FLAGS_lanes) * absl::GetFlag(FLAGS_requests);
  std::printf(
      "%s: lanes=%d limit=%d/1s delay=%s each way, %d connection(s): %.1f admissions/s of %.0f "
      "(%.0f%%); per lane: %s; refusals: %lld; fallback admissions: %llu\n",
      what, absl::GetFlag(FLAGS_lanes), absl::GetFlag(FLAGS_requests),
      absl::FormatDuration(absl::GetFlag(FLAGS_delay)).c_str(), connections, r.per_second, ideal,
      100.0 * r.per_second / ideal, r.per_lane.c_str(), static_cast<long long>(r.refusals),
      static_cast<unsigned long long>(r.fallback_admits));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!sag::testing::RedisServerInstalled()) return 77;
  sag::testing::RedisServer redis;
  if (absl::Status s = redis.Start(); !s.ok()) {
    std::fprintf(stderr, "redis-server: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  DelayProxy proxy(redis.port(), absl::GetFlag(FLAGS_delay));
  const int pooled = absl::GetFlag(FLAGS_connections);
  // Baseline in the same run: one connection, the timer thread doing every lane's round trip.
  std::optional<Result> base = Measure(proxy.port(), 1, "bench/base/op");
  std::optional<Result> pool = Measure(proxy.port(), pooled, "bench/pool/op");
  if (!base || !pool) {
    std::fprintf(stderr, "cannot reach redis through the proxy\n");
    return 1;
  }
  Print("baseline", 1, *base);
  Print("pooled", pooled, *pool);
  std::printf("pooled / baseline admissions: %.2fx\n",
              base->per_second > 0 ? pool->per_second / base->per_second : 0.0);
  return 0;
}
