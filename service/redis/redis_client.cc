#include "service/redis/redis_client.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace sag::redis {
namespace {

timeval ToTv(absl::Duration d) {
  if (d < absl::Milliseconds(1)) d = absl::Milliseconds(1);
  return absl::ToTimeval(d);
}

bool PercentDecode(absl::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int v = 0;
    for (int k = 1; k <= 2; ++k) {
      const char c = in[i + k];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v |= c - 'A' + 10;
      } else {
        return false;
      }
    }
    out->push_back(static_cast<char>(v));
    i += 2;
  }
  return true;
}

}  // namespace

RedisReply ToRedisReply(const ::redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(ToRedisReply(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

namespace {

// Runs one command on a raw context during connection setup.
absl::Status SetupCommand(redisContext* c, const std::vector<std::string>& args,
                          absl::string_view what) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (r == nullptr) {
    return absl::UnavailableError(absl::StrCat("redis ", what, ": ", c->errstr));
  }
  absl::Status s;
  if (r->type == REDIS_REPLY_ERROR) {
    s = absl::FailedPreconditionError(
        absl::StrCat("redis ", what, " refused: ", absl::string_view(r->str, r->len)));
  }
  freeReplyObject(r);
  return s;
}

bool IsTransientError(absl::string_view msg) {
  for (absl::string_view prefix :
       {"LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "NOAUTH", "CLUSTERDOWN"}) {
    if (absl::StartsWith(msg, prefix)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<RedisUrl> ParseRedisUrl(absl::string_view url) {
  constexpr absl::string_view kScheme = "redis://";
  if (!absl::StartsWithIgnoreCase(url, kScheme)) {
    return absl::InvalidArgumentError(
        "redis URL must look like redis://[[user]:password@]host[:port][/db]");
  }
  absl::string_view rest = url.substr(kScheme.size());
  RedisUrl out;
  // Userinfo: up to the LAST '@' (a password may contain '@' when not escaped).
  const size_t at = rest.rfind('@');
  if (at != absl::string_view::npos) {
    absl::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = userinfo.find(':');
    absl::string_view user = colon == absl::string_view::npos ? "" : userinfo.substr(0, colon);
    absl::string_view pass =
        colon == absl::string_view::npos ? userinfo : userinfo.substr(colon + 1);
    if (!PercentDecode(user, &out.username) || !PercentDecode(pass, &out.password)) {
      return absl::InvalidArgumentError("redis URL: bad percent-escape in the user or password");
    }
  }
  absl::string_view hostport = rest;
  const size_t slash = rest.find('/');
  if (slash != absl::string_view::npos) {
    hostport = rest.substr(0, slash);
    absl::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!absl::SimpleAtoi(db, &out.db) || out.db < 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis URL: database \"", db, "\" is not a non-negative integer"));
    }
  }
  absl::string_view port;
  if (absl::StartsWith(hostport, "[")) {
    const size_t close = hostport.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("redis URL: unterminated [IPv6] host");
    }
    out.host = std::string(hostport.substr(1, close - 1));
    absl::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return absl::InvalidArgumentError("redis URL: junk after [host]");
      port = after.substr(1);
    }
  } else {
    const size_t colon = hostport.rfind(':');
    if (colon != absl::string_view::npos) {
      out.host = std::string(hostport.substr(0, colon));
      port = hostport.substr(colon + 1);
    } else {
      out.host = std::string(hostport);
    }
  }
  if (out.host.empty()) return absl::InvalidArgumentError("redis URL: missing host");
  if (!port.empty() && (!absl::SimpleAtoi(port, &out.port) || out.port < 1 || out.port > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis URL: port \"", port, "\" is not in 1..65535"));
  }
  return out;
}

std::string RedactedUrl(const RedisUrl& url) {
  std::string auth;
  if (!url.password.empty()) auth = absl::StrCat(url.username, ":***@");
  const bool v6 = url.host.find(':') != std::string::npos;
  return absl::StrCat("redis://", auth, v6 ? "[" : "", url.host, v6 ? "]" : "", ":", url.port, "/",
                      url.db);
}

absl::StatusOr<redisContext*> Connect(const RedisUrl& url, absl::Duration connect_timeout,
                                      absl::Duration io_timeout) {
  redisContext* c = redisConnectWithTimeout(url.host.c_str(), url.port, ToTv(connect_timeout));
  if (c == nullptr) return absl::UnavailableError("redis: cannot allocate a connection");
  if (c->err) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("redis: cannot connect to ", url.host, ":", url.port, ": ", c->errstr));
    redisFree(c);
    return s;
  }
  if (redisSetTimeout(c, ToTv(io_timeout)) != REDIS_OK) {
    redisFree(c);
    return absl::UnavailableError("redis: cannot set the socket timeout");
  }
  redisEnableKeepAlive(c);
  absl::Status s;
  if (!url.password.empty()) {
    std::vector<std::string> args = {"AUTH"};
    if (!url.username.empty()) args.push_back(url.username);
    args.push_back(url.password);
    s = SetupCommand(c, args, "AUTH");
  }
  if (s.ok() && url.db != 0) s = SetupCommand(c, {"SELECT", absl::StrCat(url.db)}, "SELECT");
  // A server that accepts connections but answers nothing (stopped, hung) must not count as up:
  // every command would then wait out its timeout, and the pool would flap up and down.
  if (s.ok()) s = SetupCommand(c, {"PING"}, "PING");
  if (!s.ok()) {
    redisFree(c);
    return s;
  }
  return c;
}

RedisScript::RedisScript(std::string source) : source_(std::move(source)) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(source_.data(), source_.size(), digest, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  sha1_.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    sha1_.push_back(kHex[digest[i] >> 4]);
    sha1_.push_back(kHex[digest[i] & 0xf]);
  }
}

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Create(RedisOptions options) {
  absl::StatusOr<RedisUrl> url = ParseRedisUrl(options.url);
  if (!url.ok()) return url.status();
  if (options.command_timeout <= absl::ZeroDuration() ||
      options.connect_timeout <= absl::ZeroDuration() ||
      options.min_backoff <= absl::ZeroDuration() || options.max_backoff < options.min_backoff ||
      options.health_interval <= absl::ZeroDuration() || options.connections < 1 ||
      options.checkout_timeout < absl::ZeroDuration() || options.connections > 64) {
    return absl::InvalidArgumentError(
        "redis options: timeouts, back-off and health interval must be > 0 (max_backoff >= "
        "min_backoff), connections 1..64");
  }
  // hiredis writes with write(2): a server that closed the connection would raise SIGPIPE and
  // kill the process. Ignore it (once, process-wide) unless someone installed a handler.
  static const bool sigpipe_ignored = [] {
    struct sigaction old {};
    if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
    return true;
  }();
  (void)sigpipe_ignored;
  std::unique_ptr<RedisClient> client(new RedisClient(std::move(options), *std::move(url)));
  client->thread_ = std::thread([c = client.get()] { c->Loop(); });
  return client;
}

RedisClient::RedisClient(RedisOptions options, RedisUrl url)
    : options_(std::move(options)), url_(std::move(url)) {}

RedisClient::~RedisClient() {
  {
    absl::MutexLock lock(&state_mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  DropPool(/*close=*/true);
}

void RedisClient::Notify(bool up, const std::string& detail) {
  // Only changes are reported (the first state too).
  if (last_state_.exchange(up ? 1 : 0, std::memory_order_acq_rel) == (up ? 1 : 0)) return;
  if (options_.on_state_change) options_.on_state_change(up, detail);
}

void RedisClient::Wake() {
  absl::MutexLock lock(&state_mu_);
  wake_ = true;
}

void RedisClient::DropPool(bool close) {
  std::vector<redisContext*> idle;
  {
    absl::MutexLock lock(&pool_mu_);
    if (close) closed_ = true;
    idle = DropLocked();
  }
  for (redisContext* c : idle) redisFree(c);
}

std::vector<redisContext*> RedisClient::DropLocked() {
  std::vector<redisContext*> idle;
  idle.swap(idle_);
  busy_ = 0;
  up_ = false;
  ++epoch_;
  connected_.store(false, std::memory_order_release);
  return idle;
}

absl::StatusOr<RedisClient::Lease> RedisClient::Checkout() {
  absl::MutexLock lock(&pool_mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
    return !up_ || closed_ || !idle_.empty();
  };
  const absl::Duration wait = options_.checkout_timeout > absl::ZeroDuration()
                                  ? options_.checkout_timeout
                                  : options_.command_timeout;
  pool_mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
  if (!up_ || closed_) {
    return absl::UnavailableError(
        absl::StrCat("redis ", RedactedUrl(url_), ": not connected (reconnecting)"));
  }
  if (idle_.empty()) {
    return absl::UnavailableError(absl::StrCat("redis ", RedactedUrl(url_), ": all ",
                                               options_.connections, " connections busy for ",
                                               absl::FormatDuration(wait)));
  }
  Lease lease{idle_.back(), epoch_};
  idle_.pop_back();
  ++busy_;
  return lease;
}

void RedisClient::Return(Lease lease) {
  {
    absl::MutexLock lock(&pool_mu_);
    if (lease.epoch == epoch_ && !closed_) {
      idle_.push_back(lease.ctx);
      --busy_;
      return;
    }
  }
  redisFree(lease.ctx);  // The pool was dropped while the command ran.
}

bool RedisClient::Drop(Lease lease) {
  std::vector<redisContext*> idle;
  bool dropped = false;
  {
    absl::MutexLock lock(&pool_mu_);
    if (lease.epoch == epoch_) {
      idle = DropLocked();
      dropped = true;
    }
  }
  redisFree(lease.ctx);
  for (redisContext* c : idle) redisFree(c);
  if (dropped) Wake();
  return dropped;
}

absl::StatusOr<RedisReply> RedisClient::Command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  absl::StatusOr<Lease> lease = Checkout();
  if (!lease.ok()) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return lease.status();
  }
  commands_.fetch_add(1, std::memory_order_relaxed);
  redisContext* ctx = lease->ctx;
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (r != nullptr) {
    RedisReply out = ToRedisReply(r);
    freeReplyObject(r);
    Return(*lease);
    return out;
  }
  failures_.fetch_add(1, std::memory_order_relaxed);
  const std::string why =
      absl::StrCat("redis ", RedactedUrl(url_), ": ",
                   ctx->err == REDIS_ERR_IO && absl::StrContains(ctx->errstr, "temporarily")
                       ? "command timed out"
                       : ctx->errstr,
                   " (connection dropped, reconnecting)");
  if (Drop(*lease)) Notify(false, why);
  return absl::UnavailableError(why);
}

absl::StatusOr<RedisReply> RedisClient::Eval(const RedisScript& script,
                                             const std::vector<std::string>& keys,
                                             const std::vector<std::string>& args) {
  std::vector<std::string> cmd;
  cmd.reserve(3 + keys.size() + args.size());
  cmd.push_back("EVALSHA");
  cmd.push_back(script.sha1());
  cmd.push_back(absl::StrCat(keys.size()));
  cmd.insert(cmd.end(), keys.begin(), keys.end());
  cmd.insert(cmd.end(), args.begin(), args.end());
  absl::StatusOr<RedisReply> r = Command(cmd);
  if (r.ok() && r->is_error() && absl::StartsWith(r->str, "NOSCRIPT")) {
    cmd[0] = "EVAL";
    cmd[1] = script.source();
    r = Command(cmd);
  }
  if (!r.ok()) return r.status();
  if (r->is_error()) {
    if (IsTransientError(r->str)) return absl::UnavailableError(absl::StrCat("redis: ", r->str));
    return absl::InternalError(absl::StrCat("redis script: ", r->str));
  }
  return r;
}

bool RedisClient::WaitConnected(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!connected()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

RedisClient::Stats RedisClient::stats() const {
  Stats s;
  s.commands = commands_.load(std::memory_order_relaxed);
  s.failures = failures_.load(std::memory_order_relaxed);
  s.connects = connects_.load(std::memory_order_relaxed);
  s.connect_errors = connect_errors_.load(std::memory_order_relaxed);
  return s;
}

bool RedisClient::Fill() {
  int missing;
  {
    absl::MutexLock lock(&pool_mu_);
    if (closed_) return false;
    missing = options_.connections - (up_ ? static_cast<int>(idle_.size()) + busy_ : 0);
  }
  std::vector<redisContext*> made;  // Connected without any lock, published in one step.
  std::string error;
  for (int i = 0; i < missing; ++i) {
    absl::StatusOr<redisContext*> c =
        Connect(url_, options_.connect_timeout, options_.command_timeout);
    if (!c.ok()) {
      connect_errors_.fetch_add(1, std::memory_order_relaxed);
      error = std::string(c.status().message());
      break;
    }
    connects_.fetch_add(1, std::memory_order_relaxed);
    made.push_back(*c);
  }
  if (made.empty()) {
    if (!error.empty()) Notify(false, error);
    return connected();
  }
  {
    absl::MutexLock lock(&pool_mu_);
    if (!closed_) {
      // New connections (the pool coming up, or ones added to a pool left short) may reach a
      // restarted server: a new generation either way. (No lease holds the current epoch while
      // the pool is down: the drop moved it on.)
      up_ = true;
      idle_.insert(idle_.end(), made.begin(), made.end());
      made.clear();
      generation_.fetch_add(1, std::memory_order_acq_rel);
      connected_.store(true, std::memory_order_release);
    }
  }
  for (redisContext* c : made) redisFree(c);  // Closed meanwhile.
  Notify(true, absl::StrCat("connected to ", RedactedUrl(url_)));
  return true;
}

void RedisClient::Loop() {
  absl::Duration backoff = options_.min_backoff;
  // Waits up to `d` for a wake-up or stop; returns false when stopping.
  auto wait = [this](absl::Duration d) {
    absl::MutexLock lock(&state_mu_);
    state_mu_.AwaitWithTimeout(absl::Condition(
                                   +[](RedisClient* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->state_mu_) {
                                     return c->wake_ || c->stop_;
                                   },
                                   this),
                               d);
    wake_ = false;
    return !stop_;
  };
  while (true) {
    {
      absl::MutexLock lock(&state_mu_);
      if (stop_) return;
    }
    if (!connected()) {
      if (Fill()) {
        backoff = options_.min_backoff;
        continue;
      }
      if (!wait(backoff)) return;
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    if (!wait(options_.health_interval)) return;
    if (connected()) CheckHealth();
  }
}

void RedisClient::CheckHealth() {
  Fill();  // A pool left short by a failed connect gets its connections back.
  absl::StatusOr<RedisReply> pong = Command({"PING"});
  if (!pong.ok() || !pong->is_error() || !IsTransientError(pong->str)) return;
  // The server answers but cannot serve (loading, replica, ...): treat as down.
  DropPool(/*close=*/false);
  Notify(false, absl::StrCat("redis: ", pong->str));
}

}  // namespace sag::redis
