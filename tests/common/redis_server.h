// A real redis-server (Debian's /usr/bin/redis-server) as a child process for tests and
// benchmarks: loopback only, no persistence (a restart starts empty, like a Redis that lost its
// state), on a fixed port so that it can be killed and started again where clients reconnect.
#ifndef SAG_TESTS_COMMON_REDIS_SERVER_H_
#define SAG_TESTS_COMMON_REDIS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tests/common/subprocess.h"

namespace sag::testing {

inline constexpr char kRedisServerBin[] = "/usr/bin/redis-server";

// Whether kRedisServerBin is installed (tests skip, benchmarks exit 77, when it is not).
bool RedisServerInstalled();

// A free loopback TCP port: bound to 127.0.0.1:0, read, closed (another process may still take
// it before it is used). 0 when no socket could be bound.
int FreePort();

// One redis-server on 127.0.0.1:port. Not thread-safe. The destructor kills a running server
// (frozen or not).
class RedisServer {
 public:
  // port 0: a FreePort().
  explicit RedisServer(int port = 0);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts the server (again, on the same port, after Kill) and waits, at most `timeout`, until
  // it accepts connections. The error carries what the server printed.
  absl::Status Start(absl::Duration timeout = absl::Seconds(10));
  // SIGKILL (no goodbye to clients), and waits until it is gone. Nothing when not running.
  absl::Status Kill();

  // SIGSTOP: the process stays alive and its port keeps accepting TCP connections (the kernel
  // completes the handshakes and queues what clients send), but nothing is answered until Thaw()
  // (SIGCONT): a hung Redis, not a dead one. Prefer ScopedRedisFreeze, which always thaws.
  // FailedPrecondition when not running; Internal when kill(2) fails.
  absl::Status Freeze();
  absl::Status Thaw();

  bool running() const { return proc_ != nullptr; }
  int port() const { return port_; }
  std::string url() const;  // redis://127.0.0.1:PORT
  // What the server printed (empty when not running).
  std::string Output();

 private:
  int port_;
  std::unique_ptr<Subprocess> proc_;
};

// Freezes `redis` (RedisServer::Freeze) for its lifetime, so that a test whose assertion fails
// mid-freeze never leaves a stopped redis-server behind. Thaw() ends the freeze early (and says
// whether SIGCONT was delivered); the destructor thaws when that has not been done yet.
class ScopedRedisFreeze {
 public:
  explicit ScopedRedisFreeze(RedisServer* redis);  // Not owned; must outlive this.
  ~ScopedRedisFreeze();
  ScopedRedisFreeze(const ScopedRedisFreeze&) = delete;
  ScopedRedisFreeze& operator=(const ScopedRedisFreeze&) = delete;

  // What Freeze() returned: the server is frozen only when this is OK.
  const absl::Status& frozen() const { return frozen_; }
  absl::Status Thaw();

 private:
  RedisServer* const redis_;
  absl::Status frozen_;
  bool thawed_ = false;
};

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_REDIS_SERVER_H_
