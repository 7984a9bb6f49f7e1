#include "service/redis/redis_idempotency_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sag::redis {
namespace {

using idempotency::Answer;

// KEYS[1] the key. ARGV: this call's claim, the answer value, its TTL in ms. Replaces only the
// call's own claim (or nothing: the claim expired and nobody took the key).
const RedisScript& RecordScript() {
  static const RedisScript* script = new RedisScript(R"lua(
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or not v then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
)lua");
  return *script;
}

// KEYS[1] the key. ARGV[1] this call's claim: deleted only when it is still there.
const RedisScript& ReleaseScript() {
  static const RedisScript* script = new RedisScript(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua");
  return *script;
}

int64_t Millis(absl::Duration d) { return std::max<int64_t>(1, absl::ToInt64Milliseconds(d)); }

absl::Status Unreachable(const absl::Status& why) {
  return absl::UnavailableError(
      absl::StrCat("the idempotency store (Redis) cannot be reached: ", why.message()));
}

}  // namespace

RedisIdempotencyStore::RedisIdempotencyStore(RedisClient* client, Clock* clock, Timers* timers,
                                             RedisIdempotencyOptions options)
    : client_(client), clock_(clock), timers_(timers), options_(std::move(options)) {}

RedisIdempotencyStore::~RedisIdempotencyStore() {
  std::vector<Timers::TimerId> timers;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, w] : waiters_) timers.push_back(w.timer);
  }
  for (Timers::TimerId t : timers) {
    if (t != 0) timers_->Cancel(t);
  }
}

absl::StatusOr<RedisIdempotencyStore::Found> RedisIdempotencyStore::Read(
    const std::string& key) const {
  absl::StatusOr<RedisReply> r = client_->Command({"GET", options_.prefix + key});
  if (!r.ok()) return Unreachable(r.status());
  Found found;
  if (r->type == RedisReply::Type::kNil) return found;
  found.kind = Found::Kind::kOther;
  if (r->type != RedisReply::Type::kString || r->str.size() < 3 || r->str[1] != ':') return found;
  size_t colon = r->str.find(':', 2);
  if (colon == std::string::npos) return found;
  found.fingerprint = r->str.substr(2, colon - 2);
  found.rest = r->str.substr(colon + 1);
  if (r->str[0] == 'P') found.kind = Found::Kind::kClaim;
  if (r->str[0] == 'D') found.kind = Found::Kind::kAnswer;
  return found;
}

absl::StatusOr<idempotency::Store::Begun> RedisIdempotencyStore::Begin(
    const std::string& key, const std::string& fingerprint, absl::Time wait_until,
    absl::Time hold_until, Ready ready) {
  std::string claim;
  {
    absl::MutexLock lock(&mu_);
    claim = absl::StrCat("P:", fingerprint, ":", absl::Hex(random_()));
  }
  absl::Duration hold = std::min(hold_until - clock_->Now(), options_.ttl) + options_.claim_margin;
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<RedisReply> r = client_->Command(
        {"SET", options_.prefix + key, claim, "NX", "PX", absl::StrCat(Millis(hold))});
    if (!r.ok()) return Unreachable(r.status());
    if (r->is_error()) return Unreachable(absl::InternalError(r->str));
    if (r->type == RedisReply::Type::kStatus && r->str == "OK") {
      absl::MutexLock lock(&mu_);
      claims_[key] = claim;
      return Begun{};
    }
    absl::StatusOr<Found> found = Read(key);
    if (!found.ok()) return found.status();
    if (found->kind == Found::Kind::kNone) continue;  // Freed in between: claim it again.
    return Inspect(key, fingerprint, *found, wait_until, std::move(ready));
  }
  return absl::UnavailableError("the idempotency-key kept changing hands; retry");
}

absl::StatusOr<idempotency::Store::Begun> RedisIdempotencyStore::Inspect(
    const std::string& key, const std::string& fingerprint, const Found& found,
    absl::Time wait_until, Ready ready) {
  if (found.kind == Found::Kind::kOther) {
    return absl::InternalError("the idempotency store holds a value it did not write");
  }
  if (found.fingerprint != fingerprint) {
    return absl::InvalidArgumentError("the key was used for a different request");
  }
  Begun begun;
  if (found.kind == Found::Kind::kAnswer) {
    absl::StatusOr<Answer> answer = idempotency::DecodeAnswer(found.rest);
    if (!answer.ok()) return answer.status();
    begun.state = State::kReplay;
    begun.answer = *std::move(answer);
    return begun;
  }
  {
    absl::MutexLock lock(&mu_);
    begun.state = State::kWait;
    begun.waiter = next_waiter_++;
    waiters_[begun.waiter] = Waiter{key, fingerprint, wait_until, std::move(ready), 0};
  }
  SchedulePoll(begun.waiter, std::min(clock_->Now() + options_.poll_interval, wait_until));
  return begun;
}

void RedisIdempotencyStore::SchedulePoll(WaiterId id, absl::Time at) {
  Timers::TimerId t = timers_->Schedule(at, [this, id] { Poll(id); });
  bool parked;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiters_.find(id);
    parked = it != waiters_.end();
    if (parked) it->second.timer = t;
  }
  if (!parked) timers_->Cancel(t);
}

void RedisIdempotencyStore::Poll(WaiterId id) {
  std::string key, fingerprint;
  absl::Time wait_until;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;
    it->second.timer = 0;
    key = it->second.key;
    fingerprint = it->second.fingerprint;
    wait_until = it->second.wait_until;
  }
  absl::StatusOr<Found> found = Read(key);  // No lock held.
  absl::Time now = clock_->Now();
  if (found.ok() && found->kind == Found::Kind::kAnswer && found->fingerprint == fingerprint) {
    return Reply(id, idempotency::DecodeAnswer(found->rest));
  }
  if (found.ok() && found->kind != Found::Kind::kClaim) {
    return Reply(id, absl::AbortedError("the first call with this idempotency-key ended without "
                                        "being sent (or its replica stopped); retry the call"));
  }
  if (now >= wait_until) {
    return Reply(
        id, absl::DeadlineExceededError("the deadline passed waiting for the first call with this "
                                        "idempotency-key"));
  }
  SchedulePoll(id, std::min(now + options_.poll_interval, wait_until));
}

void RedisIdempotencyStore::Reply(WaiterId id, absl::StatusOr<idempotency::Answer> answer) {
  Waiter w;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;
    w = std::move(it->second);
    waiters_.erase(it);
  }
  if (w.timer != 0) timers_->Cancel(w.timer);
  w.ready(std::move(answer));
}

void RedisIdempotencyStore::Finish(const std::string& key, const idempotency::Answer& answer,
                                   bool record) {
  std::string claim;
  std::vector<WaiterId> local;
  {
    absl::MutexLock lock(&mu_);
    auto it = claims_.find(key);
    if (it == claims_.end()) return;
    claim = std::move(it->second);
    claims_.erase(it);
    for (const auto& [id, w] : waiters_) {
      if (w.key == key) local.push_back(id);
    }
  }
  std::string rkey = options_.prefix + key;
  if (record) {
    std::string fingerprint = claim.substr(2, claim.rfind(':') - 2);
    (void)client_->Eval(
        RecordScript(), {rkey},
        {claim, absl::StrCat("D:", fingerprint, ":", idempotency::EncodeAnswer(answer)),
         absl::StrCat(Millis(options_.ttl))});
  } else {
    (void)client_->Eval(ReleaseScript(), {rkey}, {claim});
  }
  for (WaiterId id : local) Reply(id, answer);  // Repeats on this replica: no poll needed.
}

void RedisIdempotencyStore::Abandon(WaiterId waiter, absl::Status why) {
  Reply(waiter, std::move(why));
}

size_t RedisIdempotencyStore::waiters() const {
  absl::MutexLock lock(&mu_);
  return waiters_.size();
}

}  // namespace sag::redis
