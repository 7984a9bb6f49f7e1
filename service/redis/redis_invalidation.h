// Cross-replica cache invalidation over Redis pub/sub.
//
// Design: every replica keeps its listing-cache entries in memory (a hit costs no round trip);
// a replica that completed a write invalidates its own cache, then Publish()es the tags on one
// channel; every other replica's subscriber thread receives them and calls `on_tag` for each,
// which the gateway wires to ListingCache::Invalidate(tag). Publish() returns after Redis has
// accepted the message, i.e. after Redis has written it to every subscriber's socket, so a caller
// that wrote through replica A and then lists through B almost always finds B invalidated already
// (B's subscriber thread is one socket read behind; see the measured delay in the tests).
//
// Message format (binary safe): "sag-inv1\n<origin>\n" followed by each tag as "<len>:<bytes>".
// <origin> is a random id per instance; a replica ignores its own messages unless
// `deliver_own` is set.
//
// Failure: Publish() returns UNAVAILABLE when Redis is down (the write itself succeeded; other
// replicas then serve what they have until their cache ttl passes). The subscriber reconnects
// with back-off; messages published while it was disconnected are lost, so after every
// re-subscription `on_resubscribed` runs (the gateway may drop its whole cache, or accept
// staleness bounded by the cache ttl).
//
// Thread safety: Publish() and the accessors are thread-safe. Callbacks run on the subscriber
// thread, one at a time; they must not block for long and must not destroy this object.
#ifndef SAG_SERVICE_REDIS_REDIS_INVALIDATION_H_
#define SAG_SERVICE_REDIS_REDIS_INVALIDATION_H_

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
#include "service/redis/redis_client.h"

namespace sag::redis {

struct InvalidationOptions {
  std::string channel = "sag:inv";
  bool deliver_own = false;
  // One call per tag received.
  std::function<void(const std::string& tag)> on_tag;
  // After the subscriber subscribed again following a disconnect (NOT after the first
  // subscription). Optional.
  std::function<void()> on_resubscribed;
  // On every change of subscribed(). Optional.
  std::function<void(bool subscribed, const std::string& detail)> on_state_change;
};

class RedisInvalidation {
 public:
  struct Stats {
    uint64_t published = 0;        // Messages accepted by Redis.
    uint64_t publish_errors = 0;   // Publish() calls that failed.
    uint64_t received = 0;         // Messages received from other instances (or own, if asked).
    uint64_t tags_received = 0;    // Tags passed to on_tag.
    uint64_t malformed = 0;        // Messages on the channel that did not parse.
    uint64_t resubscriptions = 0;  // Subscriptions after the first.
  };

  // `publisher` (not owned, must outlive this) sends PUBLISH; the subscriber uses its own
  // connection to the same URL with the client's timeouts and back-off. Starts the subscriber
  // thread; does not wait for the subscription (WaitSubscribed).
  static absl::StatusOr<std::unique_ptr<RedisInvalidation>> Create(RedisClient* publisher,
                                                                   InvalidationOptions options);
  ~RedisInvalidation();  // Stops the subscriber (within ~100 ms).
  RedisInvalidation(const RedisInvalidation&) = delete;
  RedisInvalidation& operator=(const RedisInvalidation&) = delete;

  // Publishes `tags` in one message. OK when Redis accepted it; UNAVAILABLE otherwise. Empty
  // `tags`: nothing is sent.
  absl::Status Publish(const std::vector<std::string>& tags);

  bool subscribed() const { return subscribed_.load(std::memory_order_acquire); }
  bool WaitSubscribed(absl::Duration timeout) const;
  Stats stats() const;
  const std::string& origin() const { return origin_; }

  // Encoding, exposed for tests.
  static std::string Encode(absl::string_view origin, const std::vector<std::string>& tags);
  // False when `message` is not in the format.
  static bool Decode(absl::string_view message, std::string* origin,
                     std::vector<std::string>* tags);

 private:
  RedisInvalidation(RedisClient* publisher, InvalidationOptions options);
  void Loop();
  // Subscribes on `c` and reads until an error or stop; returns why it ended.
  std::string Serve(struct redisContext* c);
  void HandleReply(const RedisReply& reply);
  bool stopping() const { return stop_.load(std::memory_order_acquire); }

  RedisClient* const publisher_;
  const InvalidationOptions options_;
  const std::string origin_;

  bool subscribed_before_ = false;  // Subscriber thread only.
  std::atomic<bool> stop_{false};
  std::atomic<bool> subscribed_{false};
  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> publish_errors_{0};
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> tags_received_{0};
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> resubscriptions_{0};
  std::thread thread_;
};

}  // namespace sag::redis

#endif  // SAG_SERVICE_REDIS_REDIS_INVALIDATION_H_
