// One operation's trip to the Segment API, from admission to a decoded answer:
//
//   [monthly quota] -> limiter queue (no thread held) -> HTTP request -> rate-limit feedback
//        ^                                                   |
//        +---- 429: pause the lane, back to the queue head <-+
//        +---- GET on 5xx / connection failure / upstream timeout: back-off, retry budget <-+
//
// A 429 means nothing executed, so every method goes back to the queue while its deadline
// allows. Only idempotent operations (GETs) are retried after a failure that may have reached
// the upstream; writes never are (no duplicate audiences).
//
// `done` runs exactly once: with OK and the decoded response, or an error (absl::Status with
// google.rpc details). Cancel() makes it run with CANCELLED at once and aborts whatever is under
// way (queue place, HTTP request, back-off timer). A monthly-quota count is given back when the
// call never reached the upstream.
//
// Thread-safe. `done` runs on a limiter, timer or HTTP thread (or inline in Start) and must not
// block.
#ifndef SAG_SERVICE_SERVER_EXCHANGE_H_
#define SAG_SERVICE_SERVER_EXCHANGE_H_

#include <google/protobuf/message.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/common/memory_budget.h"
#include "service/operations/request_builder.h"
#include "service/ratelimit/admission.h"
#include "service/ratelimit/preview_quota.h"
#include "service/ratelimit/retry.h"
#include "service/upstream/http.h"

namespace sag {

// What an Exchange needs from the gateway; none of it owned.
struct ExchangeEnv {
  upstream::HttpClient* http = nullptr;
  Clock* clock = nullptr;
  Timers* timers = nullptr;
  ratelimit::Admission* limiter = nullptr;   // The admission stage (a ratelimit::Limiter).
  ratelimit::PreviewQuota* quota = nullptr;  // May be null: no monthly quota.
  ratelimit::RetryBudget* retry_budget = nullptr;
  const ratelimit::Backoff* backoff = nullptr;
  absl::Duration upstream_timeout = absl::Seconds(30);
  // First try included, for retried (idempotent) operations; resends after a 429 (nothing
  // executed) do not count.
  int max_attempts = 4;
  // Observes every upstream attempt (for metrics/logs): status 0 = transport failure.
  std::function<void(absl::string_view rpc, long status, absl::Duration took)> on_attempt;
  // The process's memory bound; null: none. The Gateway charges costs.parked per accepted call;
  // an Exchange adds costs.upstream (never refused) from its first send until it finishes.
  MemoryBudget* memory = nullptr;
  CallCosts costs;
};

struct ExchangeParams {
  const ops::RequestBuilder* builder = nullptr;
  upstream::HttpRequest http;  // Built, with Authorization; the timeout is set per attempt.
  std::string secret;          // Scrubbed from every error message.
  std::string lane;            // workspace + "/" + rpc
  ratelimit::Limit limit;
  std::string caller;
  std::string space;  // For the monthly quota.
  absl::Time deadline = absl::InfiniteFuture();
  bool deadline_is_callers = true;  // Timing out on it is DEADLINE_EXCEEDED (else UNAVAILABLE).
};

// What happened, for the call's log line.
struct ExchangeReport {
  long upstream_status = 0;
  int attempts = 0;            // Upstream requests sent, the resends after a 429 included.
  int requeues_after_429 = 0;  // Of those, resends after a 429: outside the attempt limit.
  absl::Duration queue_wait = absl::ZeroDuration();
};

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  using Done = std::function<void(absl::Status, std::unique_ptr<google::protobuf::Message>,
                                  const ExchangeReport&)>;

  static std::shared_ptr<Exchange> Start(const ExchangeEnv* env, ExchangeParams params, Done done);
  void Cancel();

  Exchange(const ExchangeEnv* env, ExchangeParams params, Done done);

 private:
  void Admit(bool requeue);
  void OnAdmitted(absl::Status status, absl::Time queued_at);
  void Send();
  void OnAnswer(absl::StatusOr<upstream::HttpResponse> answer, absl::Time sent_at);
  bool RetryLater(const absl::Status& why);
  void Finish(absl::Status status, std::unique_ptr<google::protobuf::Message> response);
  void ReleaseQuotaIfUnsent();
  ratelimit::AcquireRequest AcquireRequestFor() const;

  const ExchangeEnv* const env_;
  const ExchangeParams params_;
  const Done done_;
  std::atomic<bool> finished_{false};

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  ratelimit::Ticket ticket_ ABSL_GUARDED_BY(mu_) = ratelimit::kNoTicket;
  uint64_t upstream_id_ ABSL_GUARDED_BY(mu_) = 0;
  Timers::TimerId retry_timer_ ABSL_GUARDED_BY(mu_) = 0;
  bool sent_ ABSL_GUARDED_BY(mu_) = false;
  bool quota_taken_ ABSL_GUARDED_BY(mu_) = false;
  absl::CivilMonth quota_month_ ABSL_GUARDED_BY(mu_);
  ExchangeReport report_ ABSL_GUARDED_BY(mu_);
  MemoryBudget::Charge upstream_memory_ ABSL_GUARDED_BY(mu_);  // From the first send to Finish.
};

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_EXCHANGE_H_
