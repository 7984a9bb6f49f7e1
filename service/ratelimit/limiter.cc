#include "service/ratelimit/limiter.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <iterator>
#include <list>
#include <map>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "service/common/status_util.h"

namespace sag::ratelimit {

absl::string_view PriorityName(Priority p) {
  return p == Priority::kBatch ? "batch" : "interactive";
}

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

namespace {

// A ticket is the lane's index (from 1) in the high bits and the lane's own sequence number in
// the low ones, so Cancel finds the lane without a limiter-wide ticket table.
constexpr int kTicketSeqBits = 40;

// A weight-1 call's tag step; weight w steps kTagScale / w. Tags restart from 0 whenever a
// class has no call waiting, so 64 bits last billions of admissions of an always-busy class.
constexpr uint64_t kTagScale = 1'000'000'000;
// batch_min_share is kept in millionths.
constexpr int64_t kShareUnit = 1'000'000;

int64_t ShareUnits(double share) {
  if (!(share > 0)) return 0;  // NaN too.
  if (share >= 1) return kShareUnit;
  return static_cast<int64_t>(share * static_cast<double>(kShareUnit) + 0.5);
}

uint64_t StepFor(int weight) {
  return kTagScale / static_cast<uint64_t>(std::clamp(weight, 1, kMaxWeight));
}

size_t Class(Priority p) { return p == Priority::kBatch ? 1 : 0; }

struct AtomicStats {
  std::atomic<uint64_t> admitted{0}, admitted_at_once{0}, refused_queue_full{0},
      refused_deadline{0}, deadline_exceeded{0}, cancelled{0}, requeued{0}, upstream_blocks{0},
      remaining_zero_trusted{0};
  LimiterStats Snapshot() const {
    LimiterStats s;
    s.admitted = admitted.load();
    s.admitted_at_once = admitted_at_once.load();
    s.refused_queue_full = refused_queue_full.load();
    s.refused_deadline = refused_deadline.load();
    s.deadline_exceeded = deadline_exceeded.load();
    s.cancelled = cancelled.load();
    s.requeued = requeued.load();
    s.upstream_blocks = upstream_blocks.load();
    s.remaining_zero_trusted = remaining_zero_trusted.load();
    return s;
  }
};

}  // namespace

class Limiter::Impl : public std::enable_shared_from_this<Limiter::Impl> {
 public:
  Impl(BudgetStore* store, Clock* clock, Timers* timers, LimiterOptions options)
      : store_(store),
        clock_(clock),
        timers_(timers),
        options_(std::move(options)),
        batch_share_(ShareUnits(options_.batch_min_share)) {}

  Ticket Acquire(const AcquireRequest& r, AdmitFn admit, bool requeue);
  bool Cancel(Ticket ticket);
  void PauseLane(absl::string_view key, absl::Duration retry_after);
  void BlockExhaustedLane(absl::string_view key, std::optional<absl::Time> reset);
  void Shutdown();
  size_t QueueDepth(absl::string_view lane) const;
  std::vector<std::pair<std::string, size_t>> QueueDepths() const;
  LimiterStats Stats() const { return stats_.Snapshot(); }

 private:
  struct Waiter {
    Ticket id;
    AdmitFn admit;
    absl::Time deadline;
    absl::Time enqueued;
    bool requeued;
    std::string caller;
    Priority priority;
    uint64_t tag;  // Finish tag within its class (0 for a requeued call: it goes first anyway).
  };
  // One caller's waiting calls of one class (requeued ones wait in Lane::requeued).
  struct CallerQueue {
    std::string caller;
    Priority priority;
    uint64_t step;              // Tag increment per call: kTagScale / weight.
    uint64_t last_tag;          // The tag of its last queued call.
    std::list<Waiter> waiters;  // FIFO; tags head, head + step, head + 2 step, ...
  };
  using HeadKey = std::pair<uint64_t, Ticket>;  // (tag, ticket): ties go to the earlier call.
  struct ClassQueue {
    std::map<HeadKey, CallerQueue*> heads;  // Each waiting caller's first call, smallest first.
    uint64_t vtime = 0;  // The tag of the class's last admitted call (0 when none waits).
    size_t depth = 0;    // Calls waiting in the class.
  };
  struct TicketRef {
    CallerQueue* queue;  // Null: the call waits in Lane::requeued.
    std::list<Waiter>::iterator it;
  };
  // One budget: its own lock and state. Lanes live as long as the Impl.
  struct Lane {
    Lane(std::string k, uint64_t i) : key(std::move(k)), index(i) {}
    const std::string key;
    const uint64_t index;  // >= 1; the high bits of the lane's tickets.
    mutable absl::Mutex mu;
    Limit limit ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, std::unique_ptr<CallerQueue>> callers ABSL_GUARDED_BY(mu);
    std::list<Waiter> requeued ABSL_GUARDED_BY(mu);  // Served before any class, FIFO.
    ClassQueue classes[2] ABSL_GUARDED_BY(mu);       // [Priority]
    // Batch's credit, in kShareUnit: + share per admission while both classes wait.
    int64_t batch_credit ABSL_GUARDED_BY(mu) = 0;
    size_t depth ABSL_GUARDED_BY(mu) = 0;
    std::set<std::pair<absl::Time, Ticket>> deadlines ABSL_GUARDED_BY(mu);  // Finite ones.
    absl::flat_hash_map<Ticket, TicketRef> tickets ABSL_GUARDED_BY(mu);
    uint64_t next_seq ABSL_GUARDED_BY(mu) = 1;
    // Earliest slot, per the last store answer.
    absl::Time next_slot ABSL_GUARDED_BY(mu) = absl::InfinitePast();
    // A TryTake of this lane is under way (lock released): no other take starts meanwhile.
    bool taking ABSL_GUARDED_BY(mu) = false;
    bool has_timer ABSL_GUARDED_BY(mu) = false;
    Timers::TimerId timer ABSL_GUARDED_BY(mu) = 0;
    absl::Time timer_at ABSL_GUARDED_BY(mu);
    uint64_t timer_gen ABSL_GUARDED_BY(mu) = 0;
    std::deque<absl::Time> recent ABSL_GUARDED_BY(mu);  // Own admissions (<= limit.requests).
  };
  // An answer to deliver once every lock is released.
  struct Answer {
    AdmitFn admit;
    absl::Status status;
    std::string lane;
    std::string caller;
    Priority priority;
    Outcome outcome;
    absl::Duration waited;
    bool requeued;
  };
  using Answers = std::vector<Answer>;

  void Deliver(Answers& answers);
  Lane& GetLane(absl::string_view key) ABSL_LOCKS_EXCLUDED(lanes_mu_);
  Lane* FindLane(absl::string_view key) const ABSL_LOCKS_EXCLUDED(lanes_mu_);
  absl::Duration Interval(const Lane& lane) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // Refusals that need no lane: shutdown, an invalid limit, a deadline already passed.
  absl::Status CheckRequest(const AcquireRequest& r, absl::Time now, Outcome* outcome);
  Ticket AcquireInLane(Lane& lane, const AcquireRequest& r, const CallerShare& share,
                       AdmitFn& admit, bool requeue, Answers& out) ABSL_LOCKS_EXCLUDED(lane.mu);
  // Asks the store for a slot with the lane's lock released; `lane.taking` is set meantime.
  absl::StatusOr<absl::Time> TakeUnlocked(Lane& lane, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // The wait of a call that cannot go now: refused at once, or queued (returns its Ticket).
  Ticket QueueOrRefuse(Lane& lane, const AcquireRequest& r, const CallerShare& share,
                       AdmitFn& admit, bool requeue, absl::Time now, absl::Time first, Answers& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // Queued calls the order serves before a new call of `r.caller` (see the file comment).
  size_t Ahead(const Lane& lane, const AcquireRequest& r, const CallerShare& share,
               bool requeue) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // Of the other class's queued calls, those the batch share serves before the k-th (from 1)
  // call of class `cls`.
  size_t OtherClassAhead(const Lane& lane, Priority cls, int64_t k) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  Ticket Enqueue(Lane& lane, const AcquireRequest& r, const CallerShare& share, AdmitFn& admit,
                 bool requeue, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // Appends `w` to its caller's queue with its finish tag.
  TicketRef AppendToCaller(Lane& lane, const CallerShare& share, Waiter w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // Removes the waiter of `ref` from every structure; returns it. `gives_back`: it leaves
  // without admission, and its caller's later calls move up one tag step.
  Waiter Remove(Lane& lane, const TicketRef& ref, bool gives_back)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  void RemoveFromCaller(Lane& lane, CallerQueue& cq, std::list<Waiter>::iterator it,
                        bool gives_back) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // The waiter the order serves next (the lane has one); charges the batch credit and the
  // class's virtual time when `admitting`.
  TicketRef NextToServe(Lane& lane, bool admitting) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  void ExpireDeadlines(Lane& lane, absl::Time now, Answers& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // Admits the waiter the order serves next (its slot is taken).
  void AdmitNext(Lane& lane, absl::Time now, Answers& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // Expires due deadlines, admits the next waiter when the store allows, re-arms the timer.
  void Pump(Lane& lane, Answers& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  // One take for the queue's next waiter (lock released meanwhile); sets the lane's next slot.
  void TakeForQueue(Lane& lane, Answers& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  void Rearm(Lane& lane) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  void OnTimer(Lane& lane, uint64_t gen) ABSL_LOCKS_EXCLUDED(lane.mu);
  // Applies an upstream block of `key` until `until`: the store, then the lane's timer.
  void ApplyBlock(absl::string_view key, Lane* lane, absl::Time until);
  void RecordAdmission(Lane& lane, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  bool PacingExplainsExhaustion(const Lane& lane) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane.mu);
  Answer Answered(Waiter& w, const Lane& lane, absl::Status status, Outcome outcome,
                  absl::Time now);
  CallerShare ShareOf(absl::string_view caller) const;

  BudgetStore* const store_;
  Clock* const clock_;
  Timers* const timers_;
  const LimiterOptions options_;
  const int64_t batch_share_;  // options_.batch_min_share in kShareUnit, 0..kShareUnit.
  std::atomic<bool> closed_{false};
  AtomicStats stats_;

  // Guards the lane directory only; never held with a lane's lock or across the store.
  mutable absl::Mutex lanes_mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Lane>> lanes_ ABSL_GUARDED_BY(lanes_mu_);
  std::vector<Lane*> by_index_ ABSL_GUARDED_BY(lanes_mu_);  // by_index_[i - 1]: lane i.
};

void Limiter::Impl::Deliver(Answers& answers) {
  for (Answer& a : answers) {
    if (options_.on_answer) {
      options_.on_answer(
          AnswerEvent{a.lane, a.caller, a.priority, a.outcome, a.waited, a.requeued});
    }
    a.admit(std::move(a.status));
  }
}

Limiter::Impl::Answer Limiter::Impl::Answered(Waiter& w, const Lane& lane, absl::Status status,
                                              Outcome outcome, absl::Time now) {
  return Answer{std::move(w.admit), std::move(status), lane.key,         w.caller,
                w.priority,         outcome,           now - w.enqueued, w.requeued};
}

CallerShare Limiter::Impl::ShareOf(absl::string_view caller) const {
  CallerShare share = options_.share_of ? options_.share_of(caller) : CallerShare{};
  share.weight = std::clamp(share.weight, 1, kMaxWeight);
  return share;
}

Limiter::Impl::Lane& Limiter::Impl::GetLane(absl::string_view key) {
  absl::MutexLock lock(&lanes_mu_);
  std::unique_ptr<Lane>& slot = lanes_[key];
  if (slot == nullptr) {
    slot = std::make_unique<Lane>(std::string(key), by_index_.size() + 1);
    by_index_.push_back(slot.get());
  }
  return *slot;
}

Limiter::Impl::Lane* Limiter::Impl::FindLane(absl::string_view key) const {
  absl::MutexLock lock(&lanes_mu_);
  auto it = lanes_.find(key);
  return it == lanes_.end() ? nullptr : it->second.get();
}

absl::Duration Limiter::Impl::Interval(const Lane& lane) const {
  return lane.limit.valid() ? store_->Interval(lane.limit) : absl::ZeroDuration();
}

absl::Status Limiter::Impl::CheckRequest(const AcquireRequest& r, absl::Time now,
                                         Outcome* outcome) {
  *outcome = Outcome::kError;
  if (closed_.load()) {
    *outcome = Outcome::kShutdown;
    return absl::UnavailableError("rate limiter is shutting down");
  }
  if (!r.limit.valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid rate limit ", FormatLimit(r.limit), " for lane ", r.lane));
  }
  if (r.deadline <= now) {
    ++stats_.deadline_exceeded;
    *outcome = Outcome::kDeadlineExceeded;
    return absl::DeadlineExceededError(
        absl::StrCat("deadline passed before a rate-limit slot of ", r.lane));
  }
  return absl::OkStatus();
}

Ticket Limiter::Impl::Acquire(const AcquireRequest& r, AdmitFn admit, bool requeue) {
  if (requeue) ++stats_.requeued;
  Answers out;
  Ticket ticket = kNoTicket;
  Outcome outcome;
  const CallerShare share = ShareOf(r.caller);  // Outside any lock.
  absl::Status refused = CheckRequest(r, clock_->Now(), &outcome);
  if (refused.ok()) {
    ticket = AcquireInLane(GetLane(r.lane), r, share, admit, requeue, out);
  } else {
    out.push_back(Answer{std::move(admit), std::move(refused), r.lane, r.caller, share.priority,
                         outcome, absl::ZeroDuration(), requeue});
  }
  Deliver(out);
  return ticket;
}

Ticket Limiter::Impl::AcquireInLane(Lane& lane, const AcquireRequest& r, const CallerShare& share,
                                    AdmitFn& admit, bool requeue, Answers& out) {
  auto answer_now = [&](absl::Status status, Outcome outcome) {
    out.push_back(Answer{std::move(admit), std::move(status), r.lane, r.caller, share.priority,
                         outcome, absl::ZeroDuration(), requeue});
    return kNoTicket;
  };
  absl::MutexLock lock(&lane.mu);
  lane.limit = r.limit;  // The latest configuration wins.
  const absl::Time now = clock_->Now();
  absl::Time first = std::max(now, lane.next_slot);  // When the lane's first waiter may go.
  if (lane.depth == 0 && !lane.taking) {
    absl::StatusOr<absl::Time> slot = TakeUnlocked(lane, now);
    if (slot.ok() && *slot > now) lane.next_slot = *slot;
    Rearm(lane);  // Calls may have queued during the take.
    if (closed_.load()) {
      return answer_now(absl::UnavailableError("rate limiter is shutting down"),
                        Outcome::kShutdown);
    }
    if (!slot.ok()) {
      return answer_now(
          absl::UnavailableError(absl::StrCat("rate limit store: ", slot.status().message())),
          Outcome::kError);
    }
    if (*slot <= now) {
      ++stats_.admitted;
      ++stats_.admitted_at_once;
      RecordAdmission(lane, now);
      return answer_now(absl::OkStatus(), Outcome::kAdmitted);
    }
    first = *slot;
  }
  return QueueOrRefuse(lane, r, share, admit, requeue, now, first, out);
}

absl::StatusOr<absl::Time> Limiter::Impl::TakeUnlocked(Lane& lane, absl::Time now) {
  lane.taking = true;
  const Limit limit = lane.limit;
  lane.mu.Unlock();
  absl::StatusOr<absl::Time> slot = store_->TryTake(lane.key, limit, now);
  lane.mu.Lock();
  lane.taking = false;
  return slot;
}

size_t Limiter::Impl::Ahead(const Lane& lane, const AcquireRequest& r, const CallerShare& share,
                            bool requeue) const {
  const size_t requeued = lane.requeued.size();
  if (requeue) return requeued;  // FIFO among the requeued, before everything else.
  auto found = lane.callers.find(r.caller);
  const CallerQueue* cq = found == lane.callers.end() ? nullptr : found->second.get();
  const Priority cls = cq != nullptr ? cq->priority : share.priority;
  const ClassQueue& own = lane.classes[Class(cls)];
  // The tag the call would get (Enqueue); every call of its class with a tag up to it goes first.
  const uint64_t tag = std::max(own.vtime, cq != nullptr ? cq->last_tag : 0) +
                       (cq != nullptr ? cq->step : StepFor(share.weight));
  size_t in_class = cq != nullptr ? cq->waiters.size() : 0;
  for (const auto& [head, other] : own.heads) {
    if (other == cq || head.first > tag) continue;
    // The other caller's tags are head.first + i * step, i < its queue.
    in_class += static_cast<size_t>(
        std::min<uint64_t>(other->waiters.size(), (tag - head.first) / other->step + 1));
  }
  return requeued + in_class + OtherClassAhead(lane, cls, static_cast<int64_t>(in_class) + 1);
}

size_t Limiter::Impl::OtherClassAhead(const Lane& lane, Priority cls, int64_t k) const {
  // While both classes wait, admission j (from 1) is batch when the credit c0 + j * s crosses
  // another multiple of M: after n admissions, batch had floor((c0 + n s) / M) of them.
  const int64_t s = batch_share_, m = kShareUnit, c0 = lane.batch_credit;
  if (cls == Priority::kInteractive) {
    const size_t batch = lane.classes[Class(Priority::kBatch)].depth;
    if (batch == 0 || s == 0) return 0;
    if (s >= m) return batch;
    // The k-th interactive call comes after the least b batch calls with
    // floor((c0 + (k + b) s) / M) == b, i.e. b > (c0 + k s - M) / (M - s).
    const int64_t x = c0 + k * s - m;
    const int64_t b = x < 0 ? 0 : x / (m - s) + 1;
    return std::min(batch, static_cast<size_t>(b));
  }
  const size_t interactive = lane.classes[Class(Priority::kInteractive)].depth;
  if (interactive == 0) return 0;
  if (s == 0) return interactive;
  // The k-th batch call is admission n, the least n with c0 + n s >= k M.
  const int64_t n = (k * m - c0 + s - 1) / s;
  return std::min(interactive, static_cast<size_t>(n - k));
}

Ticket Limiter::Impl::QueueOrRefuse(Lane& lane, const AcquireRequest& r, const CallerShare& share,
                                    AdmitFn& admit, bool requeue, absl::Time now, absl::Time first,
                                    Answers& out) {
  const absl::Duration wait =
      (first - now) + Interval(lane) * static_cast<int64_t>(Ahead(lane, r, share, requeue));
  auto refuse = [&](std::string why, Outcome outcome) {
    out.push_back(Answer{std::move(admit), RetryLater(std::move(why), wait), r.lane, r.caller,
                         share.priority, outcome, absl::ZeroDuration(), requeue});
    return kNoTicket;
  };
  if (!requeue && lane.depth >= options_.max_queue) {
    ++stats_.refused_queue_full;
    return refuse(absl::StrCat("rate limit queue of ", r.lane, " is full (", options_.max_queue,
                               " calls waiting)"),
                  Outcome::kQueueFull);
  }
  if (now + wait + options_.reserve > r.deadline) {
    ++stats_.refused_deadline;
    return refuse(
        absl::StrCat(requeue ? "upstream rate limit of " : "rate limit of ", r.lane, " (",
                     FormatLimit(lane.limit), "): expected wait ", absl::FormatDuration(wait),
                     " exceeds the remaining deadline ", absl::FormatDuration(r.deadline - now)),
        Outcome::kDeadlineRefused);
  }
  return Enqueue(lane, r, share, admit, requeue, now);
}

Ticket Limiter::Impl::Enqueue(Lane& lane, const AcquireRequest& r, const CallerShare& share,
                              AdmitFn& admit, bool requeue, absl::Time now) {
  const Ticket ticket = (lane.index << kTicketSeqBits) | lane.next_seq++;
  Waiter w{ticket, std::move(admit), r.deadline, now, requeue, r.caller, share.priority, 0};
  TicketRef ref{nullptr, {}};
  if (requeue) {  // At the head of the lane, after the calls requeued before it.
    ref.it = lane.requeued.insert(lane.requeued.end(), std::move(w));
  } else {
    ref = AppendToCaller(lane, share, std::move(w));
  }
  ++lane.depth;
  if (r.deadline < absl::InfiniteFuture()) lane.deadlines.emplace(r.deadline, ticket);
  lane.tickets.emplace(ticket, ref);
  Rearm(lane);
  return ticket;
}

Limiter::Impl::TicketRef Limiter::Impl::AppendToCaller(Lane& lane, const CallerShare& share,
                                                       Waiter w) {
  std::unique_ptr<CallerQueue>& owned = lane.callers[w.caller];
  if (owned == nullptr) {
    owned = std::make_unique<CallerQueue>(
        CallerQueue{w.caller, share.priority, StepFor(share.weight), 0, {}});
  }
  CallerQueue* cq = owned.get();
  ClassQueue& cls = lane.classes[Class(cq->priority)];
  w.priority = cq->priority;
  w.tag = std::max(cls.vtime, cq->last_tag) + cq->step;
  cq->last_tag = w.tag;
  const bool was_empty = cq->waiters.empty();
  auto it = cq->waiters.insert(cq->waiters.end(), std::move(w));
  if (was_empty) cls.heads.emplace(HeadKey{it->tag, it->id}, cq);
  ++cls.depth;
  return TicketRef{cq, it};
}

Limiter::Impl::Waiter Limiter::Impl::Remove(Lane& lane, const TicketRef& ref, bool gives_back) {
  Waiter w = std::move(*ref.it);
  if (ref.queue != nullptr) {
    RemoveFromCaller(lane, *ref.queue, ref.it, gives_back);
  } else {
    lane.requeued.erase(ref.it);
  }
  --lane.depth;
  if (w.deadline < absl::InfiniteFuture()) lane.deadlines.erase({w.deadline, w.id});
  lane.tickets.erase(w.id);
  return w;
}

void Limiter::Impl::RemoveFromCaller(Lane& lane, CallerQueue& cq, std::list<Waiter>::iterator it,
                                     bool gives_back) {
  ClassQueue& cls = lane.classes[Class(cq.priority)];
  const bool was_head = it == cq.waiters.begin();
  if (was_head) cls.heads.erase(HeadKey{it->tag, it->id});
  if (gives_back) {  // The later calls keep the progression head + i * step.
    for (auto later = std::next(it); later != cq.waiters.end(); ++later) later->tag -= cq.step;
    cq.last_tag -= cq.step;
  }
  cq.waiters.erase(it);
  if (--cls.depth == 0) cls.vtime = 0;  // No caller of the class is left: tags restart.
  if (cq.waiters.empty()) {
    lane.callers.erase(cq.caller);  // Destroys cq.
  } else if (was_head) {
    cls.heads.emplace(HeadKey{cq.waiters.front().tag, cq.waiters.front().id}, &cq);
  }
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

void Limiter::Impl::ExpireDeadlines(Lane& lane, absl::Time now, Answers& out) {
  // A call whose deadline has come is never admitted.
  while (!lane.deadlines.empty() && lane.deadlines.begin()->first <= now) {
    Waiter w = Remove(lane, lane.tickets.at(lane.deadlines.begin()->second), true);
    ++stats_.deadline_exceeded;
    out.push_back(Answered(w, lane,
                           absl::DeadlineExceededError(absl::StrCat(
                               "deadline passed while waiting for a rate-limit slot of ", lane.key,
                               " (", FormatLimit(lane.limit), ")")),
                           Outcome::kDeadlineExceeded, now));
  }
}

Limiter::Impl::TicketRef Limiter::Impl::NextToServe(Lane& lane, bool admitting) {
  if (!lane.requeued.empty()) return TicketRef{nullptr, lane.requeued.begin()};
  ClassQueue& interactive = lane.classes[Class(Priority::kInteractive)];
  ClassQueue& batch = lane.classes[Class(Priority::kBatch)];
  ClassQueue* from = interactive.depth > 0 ? &interactive : &batch;
  if (admitting && interactive.depth > 0 && batch.depth > 0) {
    lane.batch_credit += batch_share_;
    if (lane.batch_credit >= kShareUnit) {
      lane.batch_credit -= kShareUnit;
      from = &batch;
    }
  }
  CallerQueue* cq = from->heads.begin()->second;
  if (admitting) from->vtime = cq->waiters.front().tag;
  return TicketRef{cq, cq->waiters.begin()};
}

void Limiter::Impl::AdmitNext(Lane& lane, absl::Time now, Answers& out) {
  Waiter w = Remove(lane, NextToServe(lane, /*admitting=*/true), /*gives_back=*/false);
  ++stats_.admitted;
  RecordAdmission(lane, now);
  out.push_back(Answered(w, lane, absl::OkStatus(), Outcome::kAdmitted, now));
}

void Limiter::Impl::Pump(Lane& lane, Answers& out) {
  ExpireDeadlines(lane, clock_->Now(), out);
  if (lane.depth > 0 && !lane.taking && !closed_.load()) TakeForQueue(lane, out);
  Rearm(lane);
}

void Limiter::Impl::TakeForQueue(Lane& lane, Answers& out) {
  const absl::Time now = clock_->Now();
  absl::StatusOr<absl::Time> slot = TakeUnlocked(lane, now);
  if (!slot.ok()) {
    lane.next_slot = now + options_.store_retry;
    return;
  }
  if (*slot > now) {
    lane.next_slot = *slot;
    return;
  }
  // Waiters may have left during the take: a slot taken for none of them is lost.
  ExpireDeadlines(lane, now, out);
  if (lane.depth == 0 || closed_.load()) return;
  AdmitNext(lane, now, out);
  // The next slot is one emission interval away (burst 1, the gateway's setting): asking the
  // store again at once would only say so, at the cost of a round trip per admission.
  lane.next_slot = now + Interval(lane);
}

void Limiter::Impl::Rearm(Lane& lane) {
  // While a take is under way its thread re-arms when done; only deadlines need the timer.
  absl::Time when = absl::InfiniteFuture();
  if (lane.depth > 0) {
    if (!lane.taking) when = lane.next_slot;
    if (!lane.deadlines.empty()) when = std::min(when, lane.deadlines.begin()->first);
  }
  const bool wanted = when < absl::InfiniteFuture() && !closed_.load();
  if (lane.has_timer) {
    if (wanted && lane.timer_at == when) return;
    timers_->Cancel(lane.timer);  // If it is already running, its generation is stale.
    lane.has_timer = false;
  }
  if (!wanted) return;
  const uint64_t gen = ++lane.timer_gen;
  std::weak_ptr<Impl> weak = weak_from_this();
  Lane* target = &lane;
  auto work = [weak, target, gen] {
    if (std::shared_ptr<Impl> self = weak.lock()) self->OnTimer(*target, gen);
  };
  lane.timer = timers_->Schedule(when, [this, weak, work] {
    if (std::shared_ptr<Impl> self = weak.lock(); self && options_.run_timer_work) {
      options_.run_timer_work(work);
    } else {
      work();
    }
  });
  lane.timer_at = when;
  lane.has_timer = true;
}

void Limiter::Impl::OnTimer(Lane& lane, uint64_t gen) {
  Answers out;
  {
    absl::MutexLock lock(&lane.mu);
    if (closed_.load() || !lane.has_timer || lane.timer_gen != gen) return;  // Superseded.
    lane.has_timer = false;
    Pump(lane, out);
  }
  Deliver(out);
}

bool Limiter::Impl::Cancel(Ticket ticket) {
  const uint64_t index = ticket >> kTicketSeqBits;
  Lane* lane = nullptr;
  {
    absl::MutexLock lock(&lanes_mu_);
    if (index == 0 || index > by_index_.size()) return false;
    lane = by_index_[index - 1];
  }
  Answers out;
  {
    absl::MutexLock lock(&lane->mu);
    auto it = lane->tickets.find(ticket);
    if (it == lane->tickets.end()) return false;
    Waiter w = Remove(*lane, it->second, /*gives_back=*/true);
    ++stats_.cancelled;
    Rearm(*lane);
    out.push_back(Answered(w, *lane,
                           absl::CancelledError("cancelled while waiting for a rate-limit slot"),
                           Outcome::kCancelled, clock_->Now()));
  }
  Deliver(out);
  return true;
}

void Limiter::Impl::PauseLane(absl::string_view key, absl::Duration retry_after) {
  if (closed_.load()) return;
  const absl::Time now = clock_->Now();
  Lane* lane = FindLane(key);
  absl::Duration pause = retry_after;
  if (lane != nullptr) {
    absl::MutexLock lock(&lane->mu);
    pause = std::max(pause, Interval(*lane));
  }
  if (pause <= absl::ZeroDuration()) return;
  ApplyBlock(key, lane, now + pause);
}

void Limiter::Impl::BlockExhaustedLane(absl::string_view key, std::optional<absl::Time> reset) {
  if (closed_.load()) return;
  const absl::Time now = clock_->Now();
  Lane* lane = FindLane(key);
  if (lane == nullptr && !reset.has_value()) return;
  std::optional<absl::Time> until = reset;
  std::optional<Limit> ask_store;  // The lane's limit, when the store's record must be asked.
  if (lane != nullptr) {
    absl::MutexLock lock(&lane->mu);
    const bool valid = lane->limit.valid();
    // A window ends at most `per` from now (plus the header's 1 s rounding): a reset further
    // away is bogus and must not freeze the lane. Without a reset: the whole window.
    if (valid) {
      until = std::min(
          until.value_or(absl::InfiniteFuture()),
          now + lane->limit.per + (reset.has_value() ? absl::Seconds(1) : absl::ZeroDuration()));
    }
    if (!until.has_value()) return;
    if (options_.trust_own_pacing && PacingExplainsExhaustion(*lane)) {
      ++stats_.remaining_zero_trusted;
      return;
    }
    if (options_.trust_own_pacing && valid) ask_store = lane->limit;
  }
  if (*until <= now) return;
  // With a budget shared by several replicas (Redis), this replica's own admissions are only its
  // share of the window, so PacingExplainsExhaustion rarely holds; the shared store keeps the
  // same record over every replica's admissions and is asked (without any lock) instead. Stores
  // used by one process keep none (nullopt); when the store cannot answer, the lane blocks.
  if (ask_store.has_value() &&
      store_->RecentAdmissionsFillWindow(key, *ask_store).value_or(false)) {
    ++stats_.remaining_zero_trusted;
    return;
  }
  ApplyBlock(key, lane, *until);
}

void Limiter::Impl::ApplyBlock(absl::string_view key, Lane* lane, absl::Time until) {
  store_->BlockUntil(key, until);  // Without any lock: with Redis, a round trip.
  ++stats_.upstream_blocks;
  if (lane == nullptr || closed_.load()) return;
  absl::MutexLock lock(&lane->mu);
  if (lane->depth == 0) return;
  // The lane's timer moves to the new slot (or an earlier queued deadline); answers for queued
  // calls stay on the timer thread.
  lane->next_slot = std::max(lane->next_slot, until);
  Rearm(*lane);
}

void Limiter::Impl::Shutdown() {
  closed_.store(true);
  std::vector<Lane*> lanes;
  {
    absl::MutexLock lock(&lanes_mu_);
    lanes = by_index_;
  }
  Answers out;
  const absl::Time now = clock_->Now();
  for (Lane* lane : lanes) {
    absl::MutexLock lock(&lane->mu);
    if (lane->has_timer) timers_->Cancel(lane->timer);
    lane->has_timer = false;
    while (lane->depth > 0) {
      Waiter w = Remove(*lane, NextToServe(*lane, /*admitting=*/false), /*gives_back=*/false);
      out.push_back(Answered(w, *lane, absl::UnavailableError("rate limiter is shutting down"),
                             Outcome::kShutdown, now));
    }
  }
  Deliver(out);
}

size_t Limiter::Impl::QueueDepth(absl::string_view key) const {
  Lane* lane = FindLane(key);
  if (lane == nullptr) return 0;
  absl::MutexLock lock(&lane->mu);
  return lane->depth;
}

std::vector<std::pair<std::string, size_t>> Limiter::Impl::QueueDepths() const {
  std::vector<Lane*> lanes;
  {
    absl::MutexLock lock(&lanes_mu_);
    lanes = by_index_;
  }
  std::vector<std::pair<std::string, size_t>> out;
  out.reserve(lanes.size());
  for (Lane* lane : lanes) {
    absl::MutexLock lock(&lane->mu);
    out.emplace_back(lane->key, lane->depth);
  }
  std::sort(out.begin(), out.end());
  return out;
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
  if (remaining.has_value() && *remaining <= 0) impl_->BlockExhaustedLane(lane, reset);
}

void Limiter::OnTooManyRequests(absl::string_view lane, absl::Duration retry_after) {
  impl_->PauseLane(lane, retry_after);
}

size_t Limiter::QueueDepth(absl::string_view lane) const { return impl_->QueueDepth(lane); }

std::vector<std::pair<std::string, size_t>> Limiter::QueueDepths() const {
  return impl_->QueueDepths();
}

LimiterStats Limiter::Stats() const { return impl_->Stats(); }

}  // namespace sag::ratelimit
