#include "service/redis/redis_invalidation.h"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sag::redis {
namespace {

constexpr absl::string_view kMagic = "sag-inv1\n";
constexpr int kPollMs = 50;

std::string RandomOrigin() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  return absl::StrFormat("%016x", gen());
}

// Sleeps up to `d`, in short steps, returning early when `stop` is set.
void SleepUnlessStopped(absl::Duration d, const std::atomic<bool>& stop) {
  const absl::Time end = absl::Now() + d;
  while (!stop.load(std::memory_order_acquire) && absl::Now() < end) {
    absl::SleepFor(std::min(absl::Milliseconds(10), end - absl::Now()));
  }
}

}  // namespace

std::string RedisInvalidation::Encode(absl::string_view origin,
                                      const std::vector<std::string>& tags) {
  std::string out = absl::StrCat(kMagic, origin, "\n");
  for (const auto& t : tags) absl::StrAppend(&out, t.size(), ":", t);
  return out;
}

bool RedisInvalidation::Decode(absl::string_view message, std::string* origin,
                               std::vector<std::string>* tags) {
  tags->clear();
  if (message.substr(0, kMagic.size()) != kMagic) return false;
  message.remove_prefix(kMagic.size());
  const size_t nl = message.find('\n');
  if (nl == absl::string_view::npos) return false;
  *origin = std::string(message.substr(0, nl));
  message.remove_prefix(nl + 1);
  while (!message.empty()) {
    const size_t colon = message.find(':');
    if (colon == absl::string_view::npos) return false;
    size_t len = 0;
    if (!absl::SimpleAtoi(message.substr(0, colon), &len)) return false;
    message.remove_prefix(colon + 1);
    if (len > message.size()) return false;
    tags->emplace_back(message.substr(0, len));
    message.remove_prefix(len);
  }
  return true;
}

absl::StatusOr<std::unique_ptr<RedisInvalidation>> RedisInvalidation::Create(
    RedisClient* publisher, InvalidationOptions options) {
  if (publisher == nullptr) return absl::InvalidArgumentError("invalidation: no Redis client");
  if (options.channel.empty()) return absl::InvalidArgumentError("invalidation: empty channel");
  std::unique_ptr<RedisInvalidation> inv(new RedisInvalidation(publisher, std::move(options)));
  inv->thread_ = std::thread([p = inv.get()] { p->Loop(); });
  return inv;
}

RedisInvalidation::RedisInvalidation(RedisClient* publisher, InvalidationOptions options)
    : publisher_(publisher), options_(std::move(options)), origin_(RandomOrigin()) {}

RedisInvalidation::~RedisInvalidation() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

absl::Status RedisInvalidation::Publish(const std::vector<std::string>& tags) {
  if (tags.empty()) return absl::OkStatus();
  absl::StatusOr<RedisReply> r =
      publisher_->Command({"PUBLISH", options_.channel, Encode(origin_, tags)});
  if (r.ok() && r->is_error()) r = absl::UnavailableError(absl::StrCat("redis: ", r->str));
  if (!r.ok()) {
    publish_errors_.fetch_add(1, std::memory_order_relaxed);
    return absl::UnavailableError(
        absl::StrCat("cache invalidation not shared with other replicas: ", r.status().message()));
  }
  published_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

bool RedisInvalidation::WaitSubscribed(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (!subscribed()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

RedisInvalidation::Stats RedisInvalidation::stats() const {
  Stats s;
  s.published = published_.load(std::memory_order_relaxed);
  s.publish_errors = publish_errors_.load(std::memory_order_relaxed);
  s.received = received_.load(std::memory_order_relaxed);
  s.tags_received = tags_received_.load(std::memory_order_relaxed);
  s.malformed = malformed_.load(std::memory_order_relaxed);
  s.resubscriptions = resubscriptions_.load(std::memory_order_relaxed);
  return s;
}

void RedisInvalidation::HandleReply(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 3 ||
      reply.elements[0].str != "message") {
    return;  // "subscribe" confirmations, PING answers.
  }
  std::string origin;
  std::vector<std::string> tags;
  if (!Decode(reply.elements[2].str, &origin, &tags)) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (origin == origin_ && !options_.deliver_own) return;
  received_.fetch_add(1, std::memory_order_relaxed);
  for (const auto& tag : tags) {
    tags_received_.fetch_add(1, std::memory_order_relaxed);
    if (options_.on_tag) options_.on_tag(tag);
  }
}

std::string RedisInvalidation::Serve(redisContext* c) {
  auto* r = static_cast<redisReply*>(
      redisCommand(c, "SUBSCRIBE %b", options_.channel.data(), options_.channel.size()));
  if (r == nullptr) return absl::StrCat("SUBSCRIBE failed: ", c->errstr);
  const bool ok = r->type == REDIS_REPLY_ARRAY;
  std::string err = r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "bad reply";
  freeReplyObject(r);
  if (!ok) return absl::StrCat("SUBSCRIBE refused: ", err);

  const bool again = subscribed_before_;
  subscribed_before_ = true;
  subscribed_.store(true, std::memory_order_release);
  if (options_.on_state_change) {
    options_.on_state_change(true, absl::StrCat("subscribed to ", options_.channel));
  }
  if (again) {
    resubscriptions_.fetch_add(1, std::memory_order_relaxed);
    if (options_.on_resubscribed) options_.on_resubscribed();
  }

  const absl::Duration health = publisher_->options().health_interval;
  absl::Time last_rx = absl::Now();
  absl::Time last_ping = last_rx;
  while (true) {
    void* reply = nullptr;
    if (redisGetReplyFromReader(c, &reply) != REDIS_OK) return c->errstr;
    if (reply != nullptr) {
      last_rx = absl::Now();
      RedisReply copy = ToRedisReply(static_cast<redisReply*>(reply));
      freeReplyObject(reply);
      HandleReply(copy);
      continue;
    }
    if (stopping()) return "stopping";
    const absl::Time now = absl::Now();
    if (now - last_rx > 3 * health) return "no answer to PING";
    if (now - last_ping >= health) {
      // PING is allowed in subscribed mode; its answer (["pong", ""]) proves the link is alive.
      last_ping = now;
      if (redisAppendCommand(c, "PING") != REDIS_OK) return c->errstr;
      int done = 0;
      while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK) return c->errstr;
      }
    }
    pollfd p{c->fd, POLLIN, 0};
    const int n = ::poll(&p, 1, kPollMs);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::StrCat("poll: ", std::strerror(errno));
    }
    if (n == 0) continue;
    if (redisBufferRead(c) != REDIS_OK) return c->errstr;
  }
}

void RedisInvalidation::Loop() {
  const RedisOptions& o = publisher_->options();
  absl::Duration backoff = o.min_backoff;
  bool reported_down = false;
  while (!stopping()) {
    absl::StatusOr<redisContext*> c =
        Connect(publisher_->url(), o.connect_timeout, o.command_timeout);
    if (!c.ok()) {
      if (!reported_down && options_.on_state_change) {
        options_.on_state_change(false, std::string(c.status().message()));
      }
      reported_down = true;
      SleepUnlessStopped(backoff, stop_);
      backoff = std::min(backoff * 2, o.max_backoff);
      continue;
    }
    backoff = o.min_backoff;
    reported_down = false;
    const std::string why = Serve(*c);
    redisFree(*c);
    if (subscribed_.exchange(false, std::memory_order_acq_rel) && !stopping()) {
      reported_down = true;
      if (options_.on_state_change) {
        options_.on_state_change(false, absl::StrCat("invalidation subscriber lost: ", why));
      }
    }
  }
}

}  // namespace sag::redis
