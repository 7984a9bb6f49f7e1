// A small, synchronous Redis client over hiredis for the gateway's shared state (rate budget,
// preview quota, cache invalidations).
//
// Connection handling is off the request path: a background thread connects (with a connect
// timeout), authenticates, selects the database and, when the connection breaks, reconnects with
// exponential back-off. Command() never connects: without a live connection it fails at once with
// UNAVAILABLE, so a Redis that is down costs a caller nothing but a mutex. A command that does not
// complete within `command_timeout` (or hits any I/O error) fails with UNAVAILABLE and drops the
// connection (its reply could otherwise arrive later and desynchronise the stream); the background
// thread then reconnects.
//
// URL: redis://[[user]:password@]host[:port][/db]   (port 6379, db 0 by default; IPv6 hosts in
// brackets). `rediss://` (TLS) and unix sockets are not supported by this build.
//
// Side effect: the first RedisClient::Create sets SIGPIPE to SIG_IGN when it still has the default
// action (hiredis writes with write(2); a closed server connection must give EPIPE, not kill the
// process).
//
// Connections: a pool of `connections` (default 8). A command checks one out, runs on it with no
// lock held, and gives it back, so commands from different threads overlap: with a Redis 40 ms
// away, four lanes' round trips take 40 ms, not 160. When every connection is busy a command
// waits (no lock held) up to `checkout_timeout` for one, then fails with UNAVAILABLE. The pool is
// one unit: a command that fails (I/O error, timeout) drops every connection, the ones in use when
// they come back, so a dead or frozen server costs one timeout, not one per connection; the
// background thread then connects the whole pool again.
//
// Thread safety: every method of RedisClient is thread-safe.
#ifndef SAG_SERVICE_REDIS_REDIS_CLIENT_H_
#define SAG_SERVICE_REDIS_REDIS_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct redisContext;  // hiredis
struct redisReply;    // hiredis

namespace sag::redis {

struct RedisUrl {
  std::string host;
  int port = 6379;
  std::string username;  // Empty: AUTH <password> (Redis < 6 style); else AUTH <user> <password>.
  std::string password;  // Empty: no AUTH.
  int db = 0;
};

// Parses `redis://[[user]:password@]host[:port][/db]`. Percent-escapes in user and password are
// decoded. InvalidArgument naming the problem otherwise (the password is never echoed).
absl::StatusOr<RedisUrl> ParseRedisUrl(absl::string_view url);

// "redis://host:port/db" with any password masked, for logs.
std::string RedactedUrl(const RedisUrl& url);

// One reply, decoupled from hiredis.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError.
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::kError; }
};

// Copies a hiredis reply (not null).
RedisReply ToRedisReply(const ::redisReply* reply);

// Makes the low-level connection used by RedisClient and by the pub/sub subscriber: TCP connect
// with `connect_timeout`, socket timeouts of `io_timeout`, AUTH, SELECT, and a PING answered
// within `io_timeout` (a stopped server accepts connections but answers nothing). Returns
// UNAVAILABLE (cannot connect, I/O error) or FAILED_PRECONDITION (AUTH/SELECT refused). The caller
// owns the context (free with redisFree).
absl::StatusOr<redisContext*> Connect(const RedisUrl& url, absl::Duration connect_timeout,
                                      absl::Duration io_timeout);

// A Lua script for Eval(): the source and its SHA1 (computed once).
class RedisScript {
 public:
  explicit RedisScript(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;
};

struct RedisOptions {
  std::string url = "redis://127.0.0.1:6379";
  absl::Duration connect_timeout = absl::Milliseconds(500);
  // Per command (socket send and receive timeout).
  absl::Duration command_timeout = absl::Milliseconds(50);
  // Reconnect back-off: doubles from min to max after each failed attempt; reset on success.
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // While connected, the background thread PINGs this often, so a dead server is noticed (and
  // degraded state reported) even when no commands are sent.
  absl::Duration health_interval = absl::Seconds(1);
  // Connections in the pool (1..64): how many commands can be under way at once.
  int connections = 8;
  // How long a command waits for a connection when every one is busy; zero: command_timeout.
  absl::Duration checkout_timeout = absl::ZeroDuration();
  // Called from the background thread (or, for a disconnect, from the thread whose command
  // failed) whenever the connection comes up or goes down; `detail` says why. Must not block and
  // must not call back into the client. Optional.
  std::function<void(bool connected, const std::string& detail)> on_state_change;
};

class RedisClient {
 public:
  struct Stats {
    uint64_t commands = 0;        // Commands attempted on a live connection.
    uint64_t failures = 0;        // Commands failed: not connected, I/O error or timeout.
    uint64_t connects = 0;        // Successful (re)connections.
    uint64_t connect_errors = 0;  // Failed connection attempts.
  };

  // Parses the URL and starts the background connector; does NOT wait for Redis (use
  // WaitConnected()). InvalidArgument when the URL or options are bad.
  static absl::StatusOr<std::unique_ptr<RedisClient>> Create(RedisOptions options);
  ~RedisClient();  // Stops the background thread and closes the connection.
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs one command (binary-safe arguments). Redis error replies (e.g. "ERR ...") are returned as
  // a RedisReply of type kError, not as a status. UNAVAILABLE: no live connection, I/O error or
  // timeout (nothing is known about whether the server executed it).
  absl::StatusOr<RedisReply> Command(const std::vector<std::string>& args)
      ABSL_LOCKS_EXCLUDED(pool_mu_);

  // EVALSHA, falling back to EVAL (which loads the script) on NOSCRIPT. Error replies become
  // UNAVAILABLE when they mean the server cannot serve now (LOADING, READONLY, MASTERDOWN, BUSY,
  // TRYAGAIN, NOAUTH) and INTERNAL otherwise (a script bug).
  absl::StatusOr<RedisReply> Eval(const RedisScript& script, const std::vector<std::string>& keys,
                                  const std::vector<std::string>& args);

  // Whether a connection is up now (cheap, lock-free).
  bool connected() const { return connected_.load(std::memory_order_acquire); }
  // Incremented every time the pool comes up (first connection, and every reconnection after a
  // drop, or a connection added later to a partly filled pool): a change means the server may
  // have restarted (state lost) and that any command after the change ran on a new connection.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // Blocks until connected or `timeout` passes; returns connected().
  bool WaitConnected(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(state_mu_);

  Stats stats() const;
  const RedisUrl& url() const { return url_; }
  const RedisOptions& options() const { return options_; }

 private:
  RedisClient(RedisOptions options, RedisUrl url);
  // A connection checked out of the pool, with the pool's epoch when it was taken.
  struct Lease {
    redisContext* ctx = nullptr;
    uint64_t epoch = 0;
  };
  void Loop() ABSL_LOCKS_EXCLUDED(pool_mu_, state_mu_);
  // Connects until the pool holds `connections`; returns false when not one could be made.
  bool Fill() ABSL_LOCKS_EXCLUDED(pool_mu_);
  // Tops the pool up and PINGs; a server that answers but cannot serve drops the pool.
  void CheckHealth() ABSL_LOCKS_EXCLUDED(pool_mu_);
  // An idle connection, waiting up to command_timeout for one; UNAVAILABLE when the pool is down
  // or stays busy.
  absl::StatusOr<Lease> Checkout() ABSL_LOCKS_EXCLUDED(pool_mu_);
  // Gives a healthy connection back (freed instead when the pool was dropped meanwhile).
  void Return(Lease lease) ABSL_LOCKS_EXCLUDED(pool_mu_);
  // A command failed on `lease`: frees it, drops the pool (unless already dropped since the lease
  // was taken) and wakes the connector. Returns whether this call dropped it.
  bool Drop(Lease lease) ABSL_LOCKS_EXCLUDED(pool_mu_);
  // Drops the pool and frees its idle connections (the busy ones when they come back); with
  // `close`, for good.
  void DropPool(bool close) ABSL_LOCKS_EXCLUDED(pool_mu_);
  // Drops the pool (pool_mu_ held); returns the idle connections for the caller to free unlocked.
  std::vector<redisContext*> DropLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_);
  void Wake() ABSL_LOCKS_EXCLUDED(state_mu_);
  void Notify(bool up, const std::string& detail);

  const RedisOptions options_;
  const RedisUrl url_;

  absl::Mutex pool_mu_;
  std::vector<redisContext*> idle_ ABSL_GUARDED_BY(pool_mu_);
  int busy_ ABSL_GUARDED_BY(pool_mu_) = 0;  // Checked out in the current epoch.
  bool up_ ABSL_GUARDED_BY(pool_mu_) = false;
  bool closed_ ABSL_GUARDED_BY(pool_mu_) = false;
  uint64_t epoch_ ABSL_GUARDED_BY(pool_mu_) = 0;  // +1 on every drop: old leases are stale.

  absl::Mutex state_mu_;
  bool stop_ ABSL_GUARDED_BY(state_mu_) = false;
  bool wake_ ABSL_GUARDED_BY(state_mu_) = false;

  std::atomic<int> last_state_{-1};  // Last state reported by Notify: -1 none, 0 down, 1 up.
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> commands_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> connects_{0};
  std::atomic<uint64_t> connect_errors_{0};
  std::thread thread_;
};

}  // namespace sag::redis

#endif  // SAG_SERVICE_REDIS_REDIS_CLIENT_H_
