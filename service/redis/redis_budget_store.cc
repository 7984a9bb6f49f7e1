#include "service/redis/redis_budget_store.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace sag::redis {
namespace {

using ratelimit::Limit;

// Lua 5.1 numbers are doubles: microseconds since the epoch (~1.8e15) are exact below 2^53.
// Numbers are written with string.format('%d') (Lua's tostring would keep only 14 digits).
//
// TryTake. KEYS[1] lane key. ARGV: T (us), tau (us), now (us; '' = use Redis TIME), n (the
// limit's requests: size of the admission record; 0 = keep none, see kMaxAdmissionRecord).
// Returns {1, 0} when taken, {0, wait_us} when not (allowed_at - now, > 0).
//   allowed_at = max(tat - tau, blk); now < allowed_at -> refuse;
//   else tat = max(tat, now) + T, and `now` goes into the admission record: the last n admission
//   times, a ring in fields r0 .. r<n-1> (rn = n, rc = admissions recorded; admission k is in
//   r<k mod n>; a change of n starts a new record). The key expires 1 s after the latest of tat,
//   blk and now + n * T (after that the record can no longer show a full window).
const RedisScript& TakeScript() {
  static const RedisScript* script = new RedisScript(R"lua(
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local T = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local n = tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 'tat', 'blk', 'rn', 'rc')
local tat = tonumber(v[1])
local blk = tonumber(v[2])
local allowed = nil
if tat then allowed = tat - tau end
if blk and (allowed == nil or blk > allowed) then allowed = blk end
if allowed and now < allowed then
  return {0, allowed - now}
end
local base = now
if tat and tat > now then base = tat end
local new_tat = base + T
local rn = tonumber(v[3])
local rc = tonumber(v[4]) or 0
if rn and rn ~= n then
  for j = n, rn - 1 do redis.call('HDEL', KEYS[1], 'r' .. string.format('%d', j)) end
  if n == 0 then redis.call('HDEL', KEYS[1], 'rn', 'rc') end
  rc = 0
end
if n > 0 then
  redis.call('HSET', KEYS[1], 'tat', string.format('%d', new_tat), 'rn', string.format('%d', n),
             'rc', string.format('%d', rc + 1), 'r' .. string.format('%d', rc % n),
             string.format('%d', now))
else
  redis.call('HSET', KEYS[1], 'tat', string.format('%d', new_tat))
end
local keep = new_tat
if blk and blk > keep then keep = blk end
if now + n * T > keep then keep = now + n * T end
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil((keep - now) / 1000) + 1000))
return {1, 0}
)lua");
  return *script;
}

// BlockUntil. KEYS[1] lane key. ARGV: delay (us, >= 0), now (us; '' = use Redis TIME).
// blk = max(blk, now + delay); returns 1 when it moved, 0 otherwise. The expiry only grows (the
// take script set it for the admission record too).
const RedisScript& BlockScript() {
  static const RedisScript* script = new RedisScript(R"lua(
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end
local until_us = now + tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'tat', 'blk')
local tat = tonumber(v[1])
local blk = tonumber(v[2])
if blk and blk >= until_us then return 0 end
redis.call('HSET', KEYS[1], 'blk', string.format('%d', until_us))
local keep = until_us
if tat and tat > keep then keep = tat end
local ms = math.ceil((keep - now) / 1000) + 1000
local pttl = redis.call('PTTL', KEYS[1])
if pttl > ms then ms = pttl end
redis.call('PEXPIRE', KEYS[1], string.format('%d', ms))
return 1
)lua");
  return *script;
}

// RecentAdmissionsFillWindow. KEYS[1] lane key. ARGV: n (the limit's requests), T (us).
// Returns 1 when the record holds n admissions and the newest minus the oldest of them is less
// than n * T (what Limiter::PacingExplainsExhaustion checks on one replica's own admissions), else
// 0. Reads only.
const RedisScript& AdmissionsScript() {
  static const RedisScript* script = new RedisScript(R"lua(
local n = tonumber(ARGV[1])
local T = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'rn', 'rc')
local rn = tonumber(v[1])
local rc = tonumber(v[2])
if rn ~= n or rc == nil or rc < n then return 0 end
local w = redis.call('HMGET', KEYS[1], 'r' .. string.format('%d', (rc - 1) % n),
                     'r' .. string.format('%d', rc % n))
local newest = tonumber(w[1])
local oldest = tonumber(w[2])
if newest and oldest and newest - oldest < n * T then return 1 end
return 0
)lua");
  return *script;
}

constexpr size_t kSweepThreshold = 4096;
// Limits of more requests than this keep no admission record (its size is the limit's requests:
// Segment's documented limits are 5 to 300 a minute; a lane configured at 1,000,000/1s must not
// cost a million hash fields). Such lanes are judged by each replica's own admissions.
constexpr int kMaxAdmissionRecord = 1000;
// A BlockUntil further away than this is clamped (a Retry-After of days is a bug upstream).
constexpr absl::Duration kMaxBlock = absl::Hours(24);

ratelimit::GcraOptions Normalized(ratelimit::GcraOptions o) {
  o.burst = std::max(1, o.burst);
  o.pacing_margin = std::max(0.0, o.pacing_margin);
  return o;
}

}  // namespace

RedisBudgetStore::RedisBudgetStore(RedisClient* client, RedisBudgetOptions options)
    : client_(client), options_([&] {
        options.gcra = Normalized(options.gcra);
        if (options.clock == nullptr) options.clock = RealClock();
        return std::move(options);
      }()) {}

absl::Duration RedisBudgetStore::Interval(const Limit& limit) const {
  return absl::Ceil(ratelimit::EmissionInterval(limit, options_.gcra), absl::Microseconds(1));
}

absl::StatusOr<absl::Time> RedisBudgetStore::TryTake(absl::string_view key, Limit limit,
                                                     absl::Time now) {
  if (!limit.valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid rate limit ", ratelimit::FormatLimit(limit), " for ", key));
  }
  const int64_t t = absl::ToInt64Microseconds(Interval(limit));
  const int64_t tau = t * (options_.gcra.burst - 1);
  const bool caller = options_.clock_source == ClockSource::kCaller;
  // In kCaller mode `now` is truncated to whole microseconds (the script's unit).
  const int64_t now_us = absl::ToUnixMicros(now);
  absl::StatusOr<RedisReply> r = client_->Eval(
      TakeScript(), {absl::StrCat(options_.prefix, key)},
      {absl::StrCat(t), absl::StrCat(tau), caller ? absl::StrCat(now_us) : std::string(),
       absl::StrCat(limit.requests <= kMaxAdmissionRecord ? limit.requests : 0)});
  if (!r.ok()) return r.status();
  if (r->type != RedisReply::Type::kArray || r->elements.size() != 2 ||
      r->elements[0].type != RedisReply::Type::kInteger ||
      r->elements[1].type != RedisReply::Type::kInteger) {
    return absl::InternalError("redis budget script: unexpected reply");
  }
  if (r->elements[0].integer == 1) return now;
  const absl::Duration wait = absl::Microseconds(std::max<int64_t>(1, r->elements[1].integer));
  return caller ? absl::FromUnixMicros(now_us) + wait : now + wait;
}

absl::Status RedisBudgetStore::BlockUntilOrError(absl::string_view key, absl::Time until) {
  const absl::Time now = options_.clock->Now();
  if (until <= now) return absl::OkStatus();
  const int64_t now_us = absl::ToUnixMicros(now);
  const absl::Time capped = std::min(until, now + kMaxBlock);
  const int64_t delay_us = std::max<int64_t>(0, absl::ToUnixMicros(capped) - now_us);
  const bool caller = options_.clock_source == ClockSource::kCaller;
  absl::StatusOr<RedisReply> r =
      client_->Eval(BlockScript(), {absl::StrCat(options_.prefix, key)},
                    {absl::StrCat(delay_us), caller ? absl::StrCat(now_us) : std::string()});
  return r.status();
}

void RedisBudgetStore::BlockUntil(absl::string_view key, absl::Time until) {
  BlockUntilOrError(key, until).IgnoreError();
}

absl::StatusOr<bool> RedisBudgetStore::RecentAdmissionsFillWindowOrError(absl::string_view key,
                                                                         const Limit& limit) {
  if (!limit.valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid rate limit ", ratelimit::FormatLimit(limit), " for ", key));
  }
  if (limit.requests > kMaxAdmissionRecord) {
    return absl::FailedPreconditionError(absl::StrCat("no admission record for limits above ",
                                                      kMaxAdmissionRecord, " requests: ", key));
  }
  absl::StatusOr<RedisReply> r = client_->Eval(
      AdmissionsScript(), {absl::StrCat(options_.prefix, key)},
      {absl::StrCat(limit.requests), absl::StrCat(absl::ToInt64Microseconds(Interval(limit)))});
  if (!r.ok()) return r.status();
  if (r->type != RedisReply::Type::kInteger) {
    return absl::InternalError("redis admission record script: unexpected reply");
  }
  return r->integer == 1;
}

std::optional<bool> RedisBudgetStore::RecentAdmissionsFillWindow(absl::string_view key,
                                                                 const Limit& limit) {
  absl::StatusOr<bool> r = RecentAdmissionsFillWindowOrError(key, limit);
  if (!r.ok()) return std::nullopt;
  return *r;
}

// --- FallbackBudgetStore ---

FallbackBudgetStore::FallbackBudgetStore(RedisBudgetStore* shared, FallbackOptions options)
    : shared_(shared),
      replicas_(std::max(1, options.replicas)),
      options_(std::move(options)),
      local_gcra_([this] {
        ratelimit::GcraOptions g = Normalized(options_.gcra);
        g.burst = std::max(1, g.burst / replicas_);
        return g;
      }()) {}

Limit FallbackBudgetStore::Scaled(const Limit& limit) const {
  return Limit{limit.requests, limit.per * replicas_};
}

absl::Duration FallbackBudgetStore::Interval(const Limit& limit) const {
  return degraded() ? ratelimit::EmissionInterval(Scaled(limit), local_gcra_)
                    : shared_->Interval(limit);
}

bool FallbackBudgetStore::degraded() const {
  return degraded_.load(std::memory_order_acquire) || !shared_->client()->connected();
}

FallbackBudgetStore::Stats FallbackBudgetStore::stats() const {
  Stats s;
  s.shared_admits = shared_admits_.load(std::memory_order_relaxed);
  s.fallback_admits = fallback_admits_.load(std::memory_order_relaxed);
  s.shared_errors = shared_errors_.load(std::memory_order_relaxed);
  s.degraded_episodes = degraded_episodes_.load(std::memory_order_relaxed);
  s.recoveries = recoveries_.load(std::memory_order_relaxed);
  return s;
}

absl::Time FallbackBudgetStore::LocalAllowedAt(absl::string_view key, const Limit& local_limit) {
  auto it = local_.find(key);
  if (it == local_.end()) return absl::InfinitePast();
  const absl::Duration t = ratelimit::EmissionInterval(local_limit, local_gcra_);
  const absl::Duration tau = t * (local_gcra_.burst - 1);
  return std::max(it->second.tat - tau, it->second.blocked);
}

void FallbackBudgetStore::LocalCharge(absl::string_view key, const Limit& limit,
                                      const Limit& local_limit, absl::Time now) {
  if (local_.size() >= kSweepThreshold) {
    for (auto it = local_.begin(); it != local_.end();) {
      // An entry whose times have both passed behaves exactly like a missing one.
      if (it->second.tat <= now && it->second.blocked <= now) {
        local_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  LocalState& s = local_.try_emplace(key).first->second;
  const absl::Duration t = ratelimit::EmissionInterval(local_limit, local_gcra_);
  const absl::Duration tau = t * (local_gcra_.burst - 1);
  // The debt is capped: the next local slot is never further than max(per, T_local) away (the
  // window of the lane's limit, or one local interval when that is longer). Uncapped, a replica
  // that took more than its 1/N through Redis (one replica may take the whole budget) would run
  // its local tat ahead by (its share - 1/N) of all the time it did so: after 60 s alone on a 10/1s
  // lane with N = 3, its first local slot was 2 minutes away once Redis went down. The cap loses
  // nothing the mirror is for: a local admission still never puts more of this replica's calls
  // in a window of length `per` than 1/N pacing allows, because capped or not, tat stays
  // >= a(k-m+1) + m * T_local for every m with m * T_local <= per (a(k) = the k-th charged call;
  // capped: tat >= a(k) + per >= a(k-m+1) + m * T_local). With T_local > per only m = 1 matters,
  // and tat >= a(k) + T_local still holds.
  const absl::Time cap = now + std::max(limit.per, t) + tau;
  s.tat = std::min(std::max(s.tat, now) + t, cap);
}

absl::Time FallbackBudgetStore::LocalTake(absl::string_view key, const Limit& limit,
                                          const Limit& local_limit, absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (degraded_from_ == absl::InfinitePast()) degraded_from_ = now;  // The episode's first.
    absl::Time allowed = LocalAllowedAt(key, local_limit);
    if (replicas_ > 1) {
      allowed =
          std::max(allowed, degraded_from_ + ratelimit::EmissionInterval(local_limit, local_gcra_));
    }
    if (now < allowed) return allowed;
    LocalCharge(key, limit, local_limit, now);
  }
  fallback_admits_.fetch_add(1, std::memory_order_relaxed);
  return now;
}

absl::Time FallbackBudgetStore::AfterShared(absl::Time now) const {
  return options_.clock == nullptr ? now : std::max(now, options_.clock->Now());
}

absl::Time FallbackBudgetStore::LocalTakeAfterShared(absl::string_view key, const Limit& limit,
                                                     const Limit& local_limit, absl::Time now) {
  // A call that waited for Redis goes out now, not at `now`: pacing the next local slot from
  // `now` would let it follow this one by less than the local interval (by up to the command
  // timeout), and N replicas could then put more than the limit in one window.
  const absl::Time out = AfterShared(now);
  const absl::Time r = LocalTake(key, limit, local_limit, out);
  return r <= out ? now : r;
}

void FallbackBudgetStore::MarkDegraded(const std::string& why) {
  bool changed = false;
  {
    absl::MutexLock lock(&mu_);
    if (!degraded_flag_) {
      degraded_flag_ = true;
      changed = true;
    }
    degraded_.store(true, std::memory_order_release);
  }
  if (changed) {
    degraded_episodes_.fetch_add(1, std::memory_order_relaxed);
    if (options_.on_state_change) {
      options_.on_state_change(
          true, absl::StrCat("shared rate budget unavailable (", why,
                             "); each replica now takes 1/", replicas_, " of every limit locally"));
    }
  }
}

void FallbackBudgetStore::MarkHealthy(uint64_t generation, absl::Time now) {
  bool changed = false;
  bool was_degraded = false;
  {
    absl::MutexLock lock(&mu_);
    const bool reconnected = seen_generation_ != 0 && generation != seen_generation_;
    if (degraded_flag_ || reconnected) {
      was_degraded = degraded_flag_;
      recovery_from_ = now;
      changed = true;
    }
    degraded_flag_ = false;
    degraded_from_ = absl::InfinitePast();
    seen_generation_ = generation;
    degraded_.store(false, std::memory_order_release);
  }
  if (changed) {
    recoveries_.fetch_add(1, std::memory_order_relaxed);
    if (was_degraded && options_.on_state_change) {
      options_.on_state_change(false,
                               "shared rate budget reachable again; local 1/N pacing continues for "
                               "the recovery windows of each limit");
    }
  }
}

bool FallbackBudgetStore::InRecovery(uint64_t generation, const Limit& limit, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (degraded_flag_) return true;
  if (seen_generation_ != 0 && generation != seen_generation_) return true;
  return recovery_from_ != absl::InfinitePast() &&
         now < recovery_from_ + limit.per * std::max(1, options_.recovery_windows);
}

absl::StatusOr<absl::Time> FallbackBudgetStore::TryTake(absl::string_view key, Limit limit,
                                                        absl::Time now) {
  if (!limit.valid()) return shared_->TryTake(key, limit, now);  // InvalidArgument.
  const Limit local_limit = Scaled(limit);
  RedisClient* client = shared_->client();
  const uint64_t generation = client->generation();

  if (!client->connected()) {
    MarkDegraded("not connected to Redis");
    return LocalTake(key, limit, local_limit, now);
  }

  if (InRecovery(generation, limit, now)) {
    // Local 1/N check first (without taking), then Redis; charge locally only what Redis admits.
    // One such take per key at a time (the key is marked, no lock is held across Redis).
    const std::string marked(key);
    {
      absl::MutexLock lock(&mu_);
      auto free = [this, &marked]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return !recovering_keys_.contains(marked);
      };
      mu_.Await(absl::Condition(&free));
      const absl::Time allowed = LocalAllowedAt(key, local_limit);
      if (now < allowed) return allowed;
      recovering_keys_.insert(marked);
    }
    auto unmark = absl::MakeCleanup([this, &marked] {
      absl::MutexLock lock(&mu_);
      recovering_keys_.erase(marked);
    });
    absl::StatusOr<absl::Time> r = shared_->TryTake(key, limit, now);
    if (!r.ok()) {
      shared_errors_.fetch_add(1, std::memory_order_relaxed);
      MarkDegraded(std::string(r.status().message()));
      return LocalTakeAfterShared(key, limit, local_limit, now);
    }
    MarkHealthy(generation, now);
    if (*r > now) return r;
    {
      absl::MutexLock lock(&mu_);
      LocalCharge(key, limit, local_limit, AfterShared(now));
    }
    shared_admits_.fetch_add(1, std::memory_order_relaxed);
    return now;
  }

  absl::StatusOr<absl::Time> r = shared_->TryTake(key, limit, now);
  if (!r.ok()) {
    shared_errors_.fetch_add(1, std::memory_order_relaxed);
    MarkDegraded(std::string(r.status().message()));
    return LocalTakeAfterShared(key, limit, local_limit, now);
  }
  MarkHealthy(generation, now);
  if (*r <= now) {
    {
      absl::MutexLock lock(&mu_);
      LocalCharge(key, limit, local_limit, AfterShared(now));  // The mirror.
    }
    shared_admits_.fetch_add(1, std::memory_order_relaxed);
  }
  return r;
}

std::optional<bool> FallbackBudgetStore::RecentAdmissionsFillWindow(absl::string_view key,
                                                                    const Limit& limit) {
  // Degraded: calls are admitted locally and Redis records none of them; the Limiter's own
  // record, judged at the local 1/N interval (Interval() while degraded), is the one that applies.
  // Recovering: every admission goes through Redis again; what its record misses (the outage's
  // local admissions, or everything before a restart) can only make it answer "not full", the
  // conservative answer (the lane blocks until the reset, as before this record existed).
  if (degraded()) return std::nullopt;
  absl::StatusOr<bool> r = shared_->RecentAdmissionsFillWindowOrError(key, limit);
  if (!r.ok()) {
    if (!absl::IsInvalidArgument(r.status()) && !absl::IsFailedPrecondition(r.status())) {
      shared_errors_.fetch_add(1, std::memory_order_relaxed);
      MarkDegraded(std::string(r.status().message()));
    }
    return std::nullopt;
  }
  return *r;
}

void FallbackBudgetStore::BlockUntil(absl::string_view key, absl::Time until) {
  {
    absl::MutexLock lock(&mu_);
    LocalState& s = local_.try_emplace(key).first->second;
    s.blocked = std::max(s.blocked, until);
  }
  if (!shared_->client()->connected()) return;
  absl::Status s = shared_->BlockUntilOrError(key, until);
  if (!s.ok()) {
    shared_errors_.fetch_add(1, std::memory_order_relaxed);
    MarkDegraded(std::string(s.message()));
  }
}

}  // namespace sag::redis
