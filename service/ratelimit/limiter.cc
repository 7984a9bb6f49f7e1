#include "service/ratelimit/limiter.h"

#include <algorithm>
#include <deque>
#include <iterator>
#include <list>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "service/common/status_util.h"

namespace sag::ratelimit {

absl::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kAdmitted:
      return "admitted";
    case Outcome::kQueueFull:
      return "queue_full";
    case Outcome::kDeadlineRefused:
      return "deadline_refused";
    case Outcome::kDeadlineExceeded:
      return "deadline_exceeded";
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kShutdown:
      return "shutdown";
    case Outcome::kError:
      return "error";
  }
  return "error";
}

class Limiter::Impl : public std::enable_shared_from_this<Limiter::Impl> {
 public:
  Impl(BudgetStore* store, Clock* clock, Timers* timers, LimiterOptions options)
      : store_(store), clock_(clock), timers_(timers), options_(std::move(options)) {}

  Ticket Acquire(const AcquireRequest& r, AdmitFn admit, bool requeue);
  bool Cancel(Ticket ticket);
  void Block(absl::string_view lane, std::optional<int64_t> remaining,
             std::optional<absl::Time> reset, std::optional<absl::Duration> retry_after);
  void Shutdown();
  size_t QueueDepth(absl::string_view lane) const;
  std::vector<std::pair<std::string, size_t>> QueueDepths() const;
  LimiterStats Stats() const;

 private:
  struct CallerQueue;
  struct Waiter {
    Ticket id;
    AdmitFn admit;
    absl::Time deadline;
    absl::Time enqueued;
    bool requeued;
  };
  struct CallerQueue {
    std::string caller;
    std::list<Waiter> waiters;
    size_t requeued_at_head = 0;               // Requeued waiters at the head (FIFO among them).
    std::list<CallerQueue*>::iterator rr_pos;  // Valid while `waiters` is not empty.
  };
  struct Lane {
    std::string key;
    Limit limit;
    absl::flat_hash_map<std::string, std::unique_ptr<CallerQueue>> callers;
    std::list<CallerQueue*> rr;  // Callers with waiting calls, in serving order.
    size_t depth = 0;
    std::set<std::pair<absl::Time, Ticket>> deadlines;  // Finite deadlines of waiters.
    absl::Time next_slot = absl::InfinitePast();        // Earliest slot, per the last store answer.
    bool has_timer = false;
    Timers::TimerId timer = 0;
    absl::Time timer_at;
    uint64_t timer_gen = 0;
    std::deque<absl::Time> recent;  // Own admissions (at most limit.requests of them).
  };
  struct TicketRef {
    Lane* lane;
    CallerQueue* queue;
    std::list<Waiter>::iterator it;
  };
  // An answer to deliver once the lock is released.
  struct Answer {
    AdmitFn admit;
    absl::Status status;
    std::string lane;
    std::string caller;
    Outcome outcome;
    absl::Duration waited;
    bool requeued;
  };
  using Answers = std::vector<Answer>;

  void Deliver(Answers& answers);
  Lane& GetLane(const AcquireRequest& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration Interval(const Lane& lane) const;
  // Removes the waiter of `ref` from every structure; returns it.
  Waiter Remove(const TicketRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Expires due deadlines, admits as many waiters as the store allows, re-arms the timer.
  void Pump(Lane& lane, absl::Time now, Answers& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Rearm(Lane& lane) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnTimer(const std::string& key, uint64_t gen);
  void RecordAdmission(Lane& lane, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool PacingExplainsExhaustion(const Lane& lane) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  BudgetStore* const store_;
  Clock* const clock_;
  Timers* const timers_;
  const LimiterOptions options_;

  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  Ticket next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, std::unique_ptr<Lane>> lanes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Ticket, TicketRef> tickets_ ABSL_GUARDED_BY(mu_);
  LimiterStats stats_ ABSL_GUARDED_BY(mu_);
};

void Limiter::Impl::Deliver(Answers& answers) {
  for (Answer& a : answers) {
    if (options_.on_answer) {
      options_.on_answer(AnswerEvent{a.lane, a.caller, a.outcome, a.waited, a.requeued});
    }
    a.admit(std::move(a.status));
  }
}

Limiter::Impl::Lane& Limiter::Impl::GetLane(const AcquireRequest& r) {
  std::unique_ptr<Lane>& slot = lanes_[r.lane];
  if (slot == nullptr) {
    slot = std::make_unique<Lane>();
    slot->key = r.lane;
  }
  slot->limit = r.limit;  // The latest configuration wins.
  return *slot;
}

absl::Duration Limiter::Impl::Interval(const Lane& lane) const {
  return lane.limit.valid() ? store_->Interval(lane.limit) : absl::ZeroDuration();
}

Ticket Limiter::Impl::Acquire(const AcquireRequest& r, AdmitFn admit, bool requeue) {
  Answers out;
  auto answer_now = [&](absl::Status status, Outcome outcome) {
    out.push_back(Answer{std::move(admit), std::move(status), r.lane, r.caller, outcome,
                         absl::ZeroDuration(), requeue});
  };
  Ticket ticket = kNoTicket;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    if (requeue) ++stats_.requeued;
    if (closed_) {
      answer_now(absl::UnavailableError("rate limiter is shutting down"), Outcome::kShutdown);
    } else if (!r.limit.valid()) {
      answer_now(absl::InvalidArgumentError(absl::StrCat(
                     "invalid rate limit ", FormatLimit(r.limit), " for lane ", r.lane)),
                 Outcome::kError);
    } else if (r.deadline <= now) {
      ++stats_.deadline_exceeded;
      answer_now(absl::DeadlineExceededError(
                     absl::StrCat("deadline passed before a rate-limit slot of ", r.lane)),
                 Outcome::kDeadlineExceeded);
    } else {
      Lane& lane = GetLane(r);
      auto found = lane.callers.find(r.caller);
      CallerQueue* cq = found == lane.callers.end() ? nullptr : found->second.get();
      absl::Time first = now;  // When the first waiting call of the lane may go.
      bool ready = false;
      if (lane.depth == 0) {
        absl::StatusOr<absl::Time> slot = store_->TryTake(lane.key, lane.limit, now);
        if (!slot.ok()) {
          answer_now(
              absl::UnavailableError(absl::StrCat("rate limit store: ", slot.status().message())),
              Outcome::kError);
          ready = true;
        } else if (*slot <= now) {
          ++stats_.admitted;
          ++stats_.admitted_at_once;
          RecordAdmission(lane, now);
          answer_now(absl::OkStatus(), Outcome::kAdmitted);
          ready = true;
        } else {
          lane.next_slot = *slot;
          first = *slot;
        }
      } else {
        first = std::max(now, lane.next_slot);
      }
      if (!ready) {
        // Calls the round-robin serves before this one.
        size_t ahead = 0;
        const size_t q_c = cq == nullptr ? 0 : cq->waiters.size();
        if (requeue) {
          ahead = cq == nullptr ? 0 : cq->requeued_at_head;
        } else {
          ahead = q_c;
          for (const CallerQueue* other : lane.rr) {
            if (other != cq) ahead += std::min(other->waiters.size(), q_c + 1);
          }
        }
        const absl::Duration wait = (first - now) + Interval(lane) * static_cast<int64_t>(ahead);
        if (!requeue && lane.depth >= options_.max_queue) {
          ++stats_.refused_queue_full;
          answer_now(RetryLater(absl::StrCat("rate limit queue of ", r.lane, " is full (",
                                             options_.max_queue, " calls waiting)"),
                                wait),
                     Outcome::kQueueFull);
        } else if (now + wait + options_.reserve > r.deadline) {
          ++stats_.refused_deadline;
          answer_now(RetryLater(absl::StrCat(requeue ? "upstream rate limit of " : "rate limit of ",
                                             r.lane, " (", FormatLimit(lane.limit),
                                             "): expected wait ", absl::FormatDuration(wait),
                                             " exceeds the remaining deadline ",
                                             absl::FormatDuration(r.deadline - now)),
                                wait),
                     Outcome::kDeadlineRefused);
        } else {
          // Queue it.
          if (cq == nullptr) {
            auto owned = std::make_unique<CallerQueue>();
            owned->caller = r.caller;
            cq = owned.get();
            lane.callers.emplace(r.caller, std::move(owned));
          }
          const bool was_empty = cq->waiters.empty();
          ticket = next_ticket_++;
          Waiter w{ticket, std::move(admit), r.deadline, now, requeue};
          std::list<Waiter>::iterator it;
          if (requeue) {
            it = cq->waiters.insert(
                std::next(cq->waiters.begin(), static_cast<ptrdiff_t>(cq->requeued_at_head)),
                std::move(w));
            ++cq->requeued_at_head;
            if (!was_empty) lane.rr.erase(cq->rr_pos);
            lane.rr.push_front(cq);
            cq->rr_pos = lane.rr.begin();
          } else {
            it = cq->waiters.insert(cq->waiters.end(), std::move(w));
            if (was_empty) {
              lane.rr.push_back(cq);
              cq->rr_pos = std::prev(lane.rr.end());
            }
          }
          ++lane.depth;
          if (r.deadline < absl::InfiniteFuture()) lane.deadlines.emplace(r.deadline, ticket);
          tickets_.emplace(ticket, TicketRef{&lane, cq, it});
          Rearm(lane);
        }
      }
    }
  }
  Deliver(out);
  return ticket;
}

Limiter::Impl::Waiter Limiter::Impl::Remove(const TicketRef& ref) {
  Lane& lane = *ref.lane;
  CallerQueue* cq = ref.queue;
  Waiter w = std::move(*ref.it);
  if (w.requeued) --cq->requeued_at_head;
  cq->waiters.erase(ref.it);
  --lane.depth;
  if (w.deadline < absl::InfiniteFuture()) lane.deadlines.erase({w.deadline, w.id});
  tickets_.erase(w.id);
  if (cq->waiters.empty()) {
    lane.rr.erase(cq->rr_pos);
    lane.callers.erase(cq->caller);  // Destroys *cq.
  }
  return w;
}

void Limiter::Impl::RecordAdmission(Lane& lane, absl::Time now) {
  lane.recent.push_back(now);
  while (lane.recent.size() > static_cast<size_t>(std::max(1, lane.limit.requests))) {
    lane.recent.pop_front();
  }
}

bool Limiter::Impl::PacingExplainsExhaustion(const Lane& lane) const {
  if (!lane.limit.valid()) return false;
  const size_t n = static_cast<size_t>(lane.limit.requests);
  if (lane.recent.size() < n) return false;
  // The last n admissions fit in n emission intervals: the lane paced this window full itself.
  return lane.recent.back() - lane.recent[lane.recent.size() - n] <
         Interval(lane) * static_cast<int64_t>(n);
}

void Limiter::Impl::Pump(Lane& lane, absl::Time now, Answers& out) {
  // Deadlines first: a call whose deadline has come is never admitted.
  while (!lane.deadlines.empty() && lane.deadlines.begin()->first <= now) {
    const Ticket id = lane.deadlines.begin()->second;
    auto ref = tickets_.find(id);
    const std::string caller = ref->second.queue->caller;
    Waiter w = Remove(ref->second);
    ++stats_.deadline_exceeded;
    out.push_back(Answer{std::move(w.admit),
                         absl::DeadlineExceededError(
                             absl::StrCat("deadline passed while waiting for a rate-limit slot of ",
                                          lane.key, " (", FormatLimit(lane.limit), ")")),
                         lane.key, caller, Outcome::kDeadlineExceeded, now - w.enqueued,
                         w.requeued});
  }
  while (lane.depth > 0) {
    absl::StatusOr<absl::Time> slot = store_->TryTake(lane.key, lane.limit, now);
    if (!slot.ok()) {
      lane.next_slot = now + options_.store_retry;
      break;
    }
    if (*slot > now) {
      lane.next_slot = *slot;
      break;
    }
    CallerQueue* cq = lane.rr.front();
    const std::string caller = cq->caller;
    Waiter w = Remove(TicketRef{&lane, cq, cq->waiters.begin()});
    // Round-robin: the caller, if it still has calls, goes to the back.
    if (auto it = lane.callers.find(caller); it != lane.callers.end()) {
      CallerQueue* still = it->second.get();
      lane.rr.erase(still->rr_pos);
      lane.rr.push_back(still);
      still->rr_pos = std::prev(lane.rr.end());
    }
    ++stats_.admitted;
    RecordAdmission(lane, now);
    out.push_back(Answer{std::move(w.admit), absl::OkStatus(), lane.key, caller, Outcome::kAdmitted,
                         now - w.enqueued, w.requeued});
  }
  Rearm(lane);
}

void Limiter::Impl::Rearm(Lane& lane) {
  absl::Time when = absl::InfiniteFuture();
  if (lane.depth > 0) {
    when = lane.next_slot;
    if (!lane.deadlines.empty()) when = std::min(when, lane.deadlines.begin()->first);
  }
  if (lane.has_timer) {
    if (lane.depth > 0 && lane.timer_at == when) return;
    timers_->Cancel(lane.timer);  // If it is already running, its generation is stale.
    lane.has_timer = false;
  }
  if (lane.depth == 0) return;
  const uint64_t gen = ++lane.timer_gen;
  std::weak_ptr<Impl> weak = weak_from_this();
  lane.timer = timers_->Schedule(when, [weak, key = lane.key, gen] {
    if (std::shared_ptr<Impl> self = weak.lock()) self->OnTimer(key, gen);
  });
  lane.timer_at = when;
  lane.has_timer = true;
}

void Limiter::Impl::OnTimer(const std::string& key, uint64_t gen) {
  Answers out;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    auto it = lanes_.find(key);
    if (it == lanes_.end()) return;
    Lane& lane = *it->second;
    if (!lane.has_timer || lane.timer_gen != gen) return;  // Superseded.
    lane.has_timer = false;
    Pump(lane, clock_->Now(), out);
  }
  Deliver(out);
}

bool Limiter::Impl::Cancel(Ticket ticket) {
  Answers out;
  {
    absl::MutexLock lock(&mu_);
    auto it = tickets_.find(ticket);
    if (it == tickets_.end()) return false;
    Lane& lane = *it->second.lane;
    const std::string caller = it->second.queue->caller;
    Waiter w = Remove(it->second);
    ++stats_.cancelled;
    Rearm(lane);
    out.push_back(Answer{
        std::move(w.admit), absl::CancelledError("cancelled while waiting for a rate-limit slot"),
        lane.key, caller, Outcome::kCancelled, clock_->Now() - w.enqueued, w.requeued});
  }
  Deliver(out);
  return true;
}

void Limiter::Impl::Block(absl::string_view key, std::optional<int64_t> remaining,
                          std::optional<absl::Time> reset,
                          std::optional<absl::Duration> retry_after) {
  absl::Time until;
  std::optional<Limit> ask_store;  // The lane's limit, when the store's record must be asked.
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    const absl::Time now = clock_->Now();
    auto found = lanes_.find(key);
    Lane* lane = found == lanes_.end() ? nullptr : found->second.get();
    if (retry_after.has_value()) {
      absl::Duration pause = *retry_after;
      if (lane != nullptr) pause = std::max(pause, Interval(*lane));
      until = now + pause;
    } else {
      if (!remaining.has_value() || *remaining > 0) return;
      if (reset.has_value()) {
        until = *reset;
        // A window ends at most `per` from now (plus the header's 1 s rounding): a reset further
        // away is bogus and must not freeze the lane.
        if (lane != nullptr && lane->limit.valid()) {
          until = std::min(until, now + lane->limit.per + absl::Seconds(1));
        }
      } else if (lane != nullptr && lane->limit.valid()) {
        until = now + lane->limit.per;
      } else {
        return;
      }
      if (options_.trust_own_pacing && lane != nullptr) {
        if (PacingExplainsExhaustion(*lane)) {
          ++stats_.remaining_zero_trusted;
          return;
        }
        if (lane->limit.valid()) ask_store = lane->limit;
      }
    }
    if (until <= now) return;
  }
  // The store is called without the lock (with Redis, up to two round trips): admissions,
  // cancels and metrics of every lane go on meanwhile. A call this replica admits in between
  // behaves as if this response had arrived a moment later.
  //
  // With a budget shared by several replicas (Redis), this replica's own admissions are only its
  // share of the window (a third of it with 3 replicas), so PacingExplainsExhaustion never holds
  // and every replica would stop until the reset (~2 s per window of 1 s: half the budget lost).
  // The shared store keeps the same record over every replica's admissions (next to the GCRA
  // state, written by the same atomic take): the same test, on the whole lane. Stores used by one
  // process (in-process) keep none (nullopt), so a single replica is judged exactly as before.
  // When the store cannot answer (Redis away) only this replica's own record counts: the lane
  // blocks.
  if (ask_store.has_value() &&
      store_->RecentAdmissionsFillWindow(key, *ask_store).value_or(false)) {
    absl::MutexLock lock(&mu_);
    ++stats_.remaining_zero_trusted;
    return;
  }
  store_->BlockUntil(key, until);
  absl::MutexLock lock(&mu_);
  ++stats_.upstream_blocks;
  if (closed_) return;
  auto found = lanes_.find(key);
  if (found != lanes_.end() && found->second->depth > 0) {
    // The lane's timer moves to the new slot (or an earlier queued deadline); answers for
    // queued calls stay on the timer thread.
    Lane& lane = *found->second;
    lane.next_slot = std::max(lane.next_slot, until);
    Rearm(lane);
  }
}

void Limiter::Impl::Shutdown() {
  Answers out;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    const absl::Time now = clock_->Now();
    for (auto& [key, lane] : lanes_) {
      if (lane->has_timer) timers_->Cancel(lane->timer);
      lane->has_timer = false;
      while (lane->depth > 0) {
        CallerQueue* cq = lane->rr.front();
        const std::string caller = cq->caller;
        Waiter w = Remove(TicketRef{lane.get(), cq, cq->waiters.begin()});
        out.push_back(Answer{std::move(w.admit),
                             absl::UnavailableError("rate limiter is shutting down"), key, caller,
                             Outcome::kShutdown, now - w.enqueued, w.requeued});
      }
    }
  }
  Deliver(out);
}

size_t Limiter::Impl::QueueDepth(absl::string_view lane) const {
  absl::MutexLock lock(&mu_);
  auto it = lanes_.find(lane);
  return it == lanes_.end() ? 0 : it->second->depth;
}

std::vector<std::pair<std::string, size_t>> Limiter::Impl::QueueDepths() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, size_t>> out;
  out.reserve(lanes_.size());
  for (const auto& [key, lane] : lanes_) out.emplace_back(key, lane->depth);
  std::sort(out.begin(), out.end());
  return out;
}

LimiterStats Limiter::Impl::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

Limiter::Limiter(BudgetStore* store, Clock* clock, Timers* timers, LimiterOptions options)
    : impl_(std::make_shared<Impl>(store, clock, timers, std::move(options))) {}

Limiter::~Limiter() { impl_->Shutdown(); }

Ticket Limiter::Acquire(const AcquireRequest& r, AdmitFn admit) {
  return impl_->Acquire(r, std::move(admit), /*requeue=*/false);
}

Ticket Limiter::Requeue(const AcquireRequest& r, AdmitFn admit) {
  return impl_->Acquire(r, std::move(admit), /*requeue=*/true);
}

bool Limiter::Cancel(Ticket ticket) { return impl_->Cancel(ticket); }

void Limiter::Observe(absl::string_view lane, std::optional<int64_t> remaining,
                      std::optional<absl::Time> reset) {
  impl_->Block(lane, remaining, reset, std::nullopt);
}

void Limiter::OnTooManyRequests(absl::string_view lane, absl::Duration retry_after) {
  impl_->Block(lane, std::nullopt, std::nullopt, retry_after);
}

size_t Limiter::QueueDepth(absl::string_view lane) const { return impl_->QueueDepth(lane); }

std::vector<std::pair<std::string, size_t>> Limiter::QueueDepths() const {
  return impl_->QueueDepths();
}

LimiterStats Limiter::Stats() const { return impl_->Stats(); }

}  // namespace sag::ratelimit
