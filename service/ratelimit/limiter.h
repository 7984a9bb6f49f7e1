// The limiter: calls over budget wait for their slot in a queue instead of being rejected.
//
// A lane is one budget: a workspace's token and one operation (key "workspace/rpc", also the
// BudgetStore key). Each lane paces its calls through the BudgetStore (GCRA, see
// budget_store.h) and keeps, per caller, a FIFO queue. Which queued call goes next:
//   1. calls put back by Requeue (after a 429), first come first served;
//   2. else a class: `interactive` before `batch`, except that while both have calls waiting,
//      batch gets `batch_min_share` of the admissions (a credit of that fraction per admission;
//      batch goes when it reaches one: 10% is every 10th admission), so it never starves;
//   3. within the class, weighted fair queuing across callers (self-clocked fair queuing): a
//      call gets the finish tag max(V, its caller's last tag) + 1/weight, where V is the tag of
//      the class's last admitted call, and the smallest tag goes (ties: the earlier call). Callers
//      that keep calls waiting are admitted in proportion to their weights (3:1 for weights 3
//      and 1); a caller's calls have increasing tags, so they keep their order. A call that leaves
//      without admission (cancel, deadline) gives its place back: its caller's later calls move
//      up one tag step.
// A caller's class and weight come from LimiterOptions::share_of (config `callers`); a caller it
// does not know is interactive with weight 1, so without configuration every caller is served
// round-robin.
//
// What a caller is promised:
//   - `admit` runs exactly once per Acquire/Requeue, with one of
//       OK                   the call may go now; its slot is already taken;
//       RESOURCE_EXHAUSTED   with google.rpc.RetryInfo: the queue is full, or the expected wait
//                            exceeds the remaining deadline (RetryInfo = the expected wait);
//       DEADLINE_EXCEEDED    the deadline passed (at Acquire, or while queued);
//       CANCELLED            Cancel() was called;
//       UNAVAILABLE          the Limiter was destroyed while the call waited, or the shared
//                            store could not be reached for an immediate answer;
//       INVALID_ARGUMENT     the request's limit is not valid (a configuration bug).
//     Only OK consumes budget: a refused, expired or cancelled call takes no slot.
//   - Where `admit` runs: an answer known at once (a free slot with an empty queue, any immediate
//     refusal) runs inline, on the thread calling Acquire/Requeue, before it returns (and the
//     returned Ticket is kNoTicket). An answer for a queued call runs on the Timers thread (slot,
//     deadline; on a thread of LimiterOptions::run_timer_work when set), or inline on the thread
//     calling Cancel (CANCELLED) or the destructor (UNAVAILABLE). `admit` never runs under the
//     limiter's lock: it may call back into the Limiter. It must not block.
//   - Waiting holds no thread: each lane with waiting calls has exactly one pending timer, at
//     its next slot or its earliest queued deadline, whichever comes first. No polling.
//   - Deadline-aware admission: a call that would wait estimates its wait as
//         wait = max(0, next_slot - now) + ahead * T
//     where T is the lane's emission interval (BudgetStore::Interval) and `ahead` the calls
//     already queued that the order above serves before it: the requeued ones; those of its
//     class with a smaller (or equal) tag, its own caller's included; and the other class's
//     calls the share interleaves before it (for interactive, the batch calls the credit lets
//     in first; for batch, every interactive call served until the credit reaches its turn), as
//     many as are queued. The estimate is exact for the calls queued now. When
//     now + wait + reserve > deadline it is refused at once with RetryInfo(wait). Calls arriving
//     later can still go ahead of a queued call (a smaller tag, a higher class); such a call then
//     leaves at its deadline with DEADLINE_EXCEEDED.
//   - Bounded: at most `max_queue` calls wait per lane (Requeue may exceed it: a requeued call
//     was already admitted once).
//
// Upstream feedback:
//   - Observe(): X-RateLimit-Remaining: 0 blocks the lane until X-RateLimit-Reset (another client
//     of the token may be spending the budget), at most `per` + 1 s from now (a window cannot
//     last longer; a bogus date must not freeze the lane). Exception (`trust_own_pacing`): when the
//     lane's own last N admissions (N = limit.requests) fit in N emission intervals, the lane
//     itself paced that window full, and the pacing already keeps the next call out of it; blocking
//     until the reset, which the API rounds up to a whole second, would only waste budget. With a
//     shared store (several replicas, Redis) "the lane's admissions" are every replica's: the
//     store's record is asked when this replica's own does not explain it
//     (BudgetStore::RecentAdmissionsFillWindow). The block stays for what it is for: the upstream
//     saying 0 before the pacing filled the window (another client of the token, or a configured
//     limit above the real one).
//   - OnTooManyRequests(): a 429 pauses the lane for `retry_after` (msBeforeNext), at least one
//     emission interval. Then Requeue() puts the call back at the HEAD of the lane, whatever its
//     class (a 429 means nothing executed): it goes next, after the calls requeued before it.
//     It does not count as its caller's turn (no tag): it had its turn when first admitted.
//
// Thread-safe. Each lane has its own lock and state, so lanes never wait on each other; a small
// directory lock only maps lane keys to lanes. No lock is held while the store is called (with
// Redis, a network round trip): a lane marks a take as under way, releases its lock, calls
// BudgetStore::TryTake, and re-locks to apply the answer; meanwhile its calls can still queue,
// cancel and expire, and other lanes go on. One take per lane is under way at a time. A slot
// taken for a queued call that left (cancel, deadline) while the take was under way is lost.
// Observe/OnTooManyRequests call the store (BlockUntil, RecentAdmissionsFillWindow) without
// any lock either.
// The Limiter does not own the store, clock or timers: they must outlive it and any
// timer callback it scheduled (a callback that fires after the Limiter is gone does nothing).
// Destroying the Limiter answers every waiting call with UNAVAILABLE.
#ifndef SAG_SERVICE_RATELIMIT_LIMITER_H_
#define SAG_SERVICE_RATELIMIT_LIMITER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/ratelimit/admission.h"
#include "service/ratelimit/budget_store.h"
#include "service/ratelimit/limits.h"

namespace sag::ratelimit {

// A caller's priority class within each lane.
enum class Priority { kInteractive = 0, kBatch = 1 };
absl::string_view PriorityName(Priority p);  // "interactive" / "batch"

// How a caller shares every lane with the others (config `callers[i].priority` / `.weight`).
struct CallerShare {
  Priority priority = Priority::kInteractive;
  int weight = 1;  // 1..kMaxWeight; larger values are clamped to it, smaller to 1.
};
inline constexpr int kMaxWeight = 1000;

// How a call left the limiter (for metrics).
enum class Outcome {
  kAdmitted,          // OK
  kQueueFull,         // RESOURCE_EXHAUSTED at once
  kDeadlineRefused,   // RESOURCE_EXHAUSTED at once: expected wait > remaining deadline
  kDeadlineExceeded,  // DEADLINE_EXCEEDED (at Acquire or while queued)
  kCancelled,         // CANCELLED
  kShutdown,          // UNAVAILABLE: the Limiter was destroyed
  kError,             // INVALID_ARGUMENT / UNAVAILABLE from the store
};
absl::string_view OutcomeName(Outcome o);

// One answer, reported to LimiterOptions::on_answer just before `admit` runs.
struct AnswerEvent {
  absl::string_view lane;
  absl::string_view caller;
  Priority priority;  // The caller's class.
  Outcome outcome;
  absl::Duration waited;  // Time spent queued (zero for an answer given at once).
  bool requeued;          // The call came through Requeue.
};

struct LimiterOptions {
  size_t max_queue = 10000;  // Calls waiting per lane.
  // Time a call needs after admission; a call whose wait + reserve exceeds its remaining
  // deadline is refused at once. A call whose slot is free now is always admitted.
  absl::Duration reserve = absl::ZeroDuration();
  bool trust_own_pacing = true;  // See Observe() in the file comment.
  // When the store fails while calls wait, the lane tries again after this long.
  absl::Duration store_retry = absl::Milliseconds(100);
  // Each caller's class and weight (see the file comment); unset: every caller interactive,
  // weight 1. Called on the thread of Acquire/Requeue, outside any lock; must not block and must
  // not call back into the Limiter.
  std::function<CallerShare(absl::string_view caller)> share_of;
  // The fraction of a lane's admissions batch callers get while interactive calls wait too,
  // 0..1 (clamped). 0: batch goes only when no interactive call waits.
  double batch_min_share = 0.1;
  // Where a lane's timer work runs: it asks the store for the next slot, with Redis a network
  // round trip. Unset: on the Timers thread itself, so lanes' round trips queue behind each
  // other there (fine for an in-process store). Given (e.g. WorkQueue::Run on a few threads),
  // the timer thread only hands the work over and several lanes' round trips overlap. Must
  // not run the function inline; may drop it when shutting down.
  std::function<void(std::function<void()>)> run_timer_work;
  // Called once per answer, outside the lock, on the thread that runs `admit`, just before it
  // (e.g. a queue-wait histogram). Must not block; must not call back into the Limiter.
  std::function<void(const AnswerEvent&)> on_answer;
};

// Cumulative counters.
struct LimiterStats {
  uint64_t admitted = 0;          // OK answers (at once or after waiting)
  uint64_t admitted_at_once = 0;  // OK answers given inline without waiting
  uint64_t refused_queue_full = 0;
  uint64_t refused_deadline = 0;   // refused at once: expected wait > deadline
  uint64_t deadline_exceeded = 0;  // deadline passed (at Acquire or while queued)
  uint64_t cancelled = 0;
  uint64_t requeued = 0;                // Requeue calls
  uint64_t upstream_blocks = 0;         // Observe/OnTooManyRequests that blocked a lane
  uint64_t remaining_zero_trusted = 0;  // Observe(0) ignored because the pacing explains it
};

class Limiter final : public Admission {
 public:
  // `store`, `clock` and `timers` are not owned and must outlive the Limiter.
  Limiter(BudgetStore* store, Clock* clock, Timers* timers, LimiterOptions options = {});
  ~Limiter() override;
  Limiter(const Limiter&) = delete;
  Limiter& operator=(const Limiter&) = delete;

  // Asks for a slot of `r.lane` under `r.limit` for `r.caller`. `admit` runs exactly once (see
  // the file comment for when and where). Returns the Ticket of the queued call, or kNoTicket
  // when `admit` already ran.
  Ticket Acquire(const AcquireRequest& r, AdmitFn admit) override;

  // Like Acquire, for a call whose upstream attempt was answered 429 (nothing executed): it goes
  // back to the head of the lane, and is refused at once (RESOURCE_EXHAUSTED +
  // RetryInfo) when the lane's pause leaves no time before its deadline. Not bounded by
  // max_queue.
  Ticket Requeue(const AcquireRequest& r, AdmitFn admit) override;

  // Removes a queued call: its `admit` runs with CANCELLED on this thread before Cancel returns,
  // and its place is free at once. Returns false (and does nothing) when the ticket is
  // kNoTicket or its call was already answered.
  bool Cancel(Ticket ticket) override;

  // Rate-limit headers of an upstream response of `lane`. remaining == 0 blocks the lane until
  // `reset` (capped at `per` + 1 s; without `reset`: for the lane's `per`), unless the pacing
  // explains it (see above).
  // Other values are ignored.
  void Observe(absl::string_view lane, std::optional<int64_t> remaining,
               std::optional<absl::Time> reset) override;

  // An upstream 429 on `lane`: no slot for max(retry_after, one emission interval).
  void OnTooManyRequests(absl::string_view lane, absl::Duration retry_after) override;

  // Calls waiting in `lane` (0 for an unknown lane).
  size_t QueueDepth(absl::string_view lane) const;
  // Every known lane with its queue depth.
  std::vector<std::pair<std::string, size_t>> QueueDepths() const;
  LimiterStats Stats() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // Shared with pending timer callbacks (weakly).
};

}  // namespace sag::ratelimit

#endif  // SAG_SERVICE_RATELIMIT_LIMITER_H_
