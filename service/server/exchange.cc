#include "service/server/exchange.h"

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "service/common/status_util.h"
#include "service/operations/response_decoder.h"

namespace sag {
namespace {

absl::Status Scrub(absl::Status status, const std::string& secret) {
  if (status.ok() || secret.size() < 4 || !absl::StrContains(status.message(), secret)) {
    return status;
  }
  absl::Status scrubbed(status.code(),
                        absl::StrReplaceAll(status.message(), {{secret, "[redacted]"}}));
  status.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { scrubbed.SetPayload(url, payload); });
  return scrubbed;
}

bool Retryable(const absl::Status& transport_error) {
  return absl::IsUnavailable(transport_error) || absl::IsDeadlineExceeded(transport_error);
}

}  // namespace

Exchange::Exchange(const ExchangeEnv* env, ExchangeParams params, Done done)
    : env_(env), params_(std::move(params)), done_(std::move(done)) {}

std::shared_ptr<Exchange> Exchange::Start(const ExchangeEnv* env, ExchangeParams params,
                                          Done done) {
  auto ex = std::make_shared<Exchange>(env, std::move(params), std::move(done));
  const ops::Operation& op = ex->params_.builder->op();
  if (op.space_monthly_quota && env->quota != nullptr) {
    absl::Time now = env->clock->Now();
    absl::Status quota = env->quota->TryTake(ex->params_.space, now);
    if (!quota.ok()) {
      ex->Finish(quota, nullptr);
      return ex;
    }
    absl::MutexLock lock(&ex->mu_);
    ex->quota_taken_ = true;
    ex->quota_month_ = ratelimit::UtcMonthOf(now);
  }
  if (env->retry_budget != nullptr && op.idempotent) env->retry_budget->OnRequest();
  ex->Admit(/*requeue=*/false);
  return ex;
}

ratelimit::AcquireRequest Exchange::AcquireRequestFor() const {
  ratelimit::AcquireRequest r;
  r.lane = params_.lane;
  r.limit = params_.limit;
  r.caller = params_.caller;
  r.deadline = params_.deadline;
  return r;
}

void Exchange::Admit(bool requeue) {
  absl::Time queued_at = env_->clock->Now();
  auto self = shared_from_this();
  auto admit = [self, queued_at](absl::Status status) {
    self->OnAdmitted(std::move(status), queued_at);
  };
  ratelimit::Ticket ticket = requeue ? env_->limiter->Requeue(AcquireRequestFor(), admit)
                                     : env_->limiter->Acquire(AcquireRequestFor(), admit);
  bool cancelled;
  {
    absl::MutexLock lock(&mu_);
    ticket_ = ticket;
    cancelled = cancelled_;
  }
  if (cancelled && ticket != ratelimit::kNoTicket) env_->limiter->Cancel(ticket);
}

void Exchange::OnAdmitted(absl::Status status, absl::Time queued_at) {
  {
    absl::MutexLock lock(&mu_);
    ticket_ = ratelimit::kNoTicket;
    report_.queue_wait += env_->clock->Now() - queued_at;
  }
  if (finished_.load()) return;
  if (!status.ok()) {
    Finish(std::move(status), nullptr);
    return;
  }
  Send();
}

void Exchange::Send() {
  upstream::HttpRequest http = params_.http;
  absl::Time now = env_->clock->Now();
  absl::Duration left = params_.deadline - now;
  bool deadline_bound = left < env_->upstream_timeout;
  http.timeout = deadline_bound ? left : env_->upstream_timeout;
  if (http.timeout <= absl::ZeroDuration()) {
    Finish(params_.deadline_is_callers
               ? absl::DeadlineExceededError("the caller's deadline passed in the queue")
               : absl::UnavailableError("no time left for the Segment API"),
           nullptr);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    if (!sent_ && env_->memory != nullptr && !finished_.load()) {
      upstream_memory_ = env_->memory->ForceCharge(env_->costs.upstream);
    }
    sent_ = true;
    ++report_.attempts;
  }
  auto self = shared_from_this();
  uint64_t id = env_->http->Send(
      std::move(http),
      [self, now](absl::StatusOr<upstream::HttpResponse> a) { self->OnAnswer(std::move(a), now); });
  bool cancelled;
  {
    absl::MutexLock lock(&mu_);
    upstream_id_ = id;
    cancelled = cancelled_;
  }
  if (cancelled) env_->http->Cancel(id);
}

void Exchange::OnAnswer(absl::StatusOr<upstream::HttpResponse> answer, absl::Time sent_at) {
  if (finished_.load()) return;
  absl::Time now = env_->clock->Now();
  const ops::Operation& op = params_.builder->op();
  if (env_->on_attempt) env_->on_attempt(op.rpc, answer.ok() ? answer->status : 0, now - sent_at);
  {
    absl::MutexLock lock(&mu_);
    upstream_id_ = 0;
    if (answer.ok()) report_.upstream_status = answer->status;
  }
  if (!answer.ok()) {
    absl::Status error = answer.status();
    if (absl::IsCancelled(error)) {
      Finish(error, nullptr);
      return;
    }
    // When the attempt's timeout was the caller's remaining time (see Send), its expiry is the
    // caller's deadline, even if curl's millisecond timer fires a hair before it.
    bool callers_deadline =
        params_.deadline_is_callers &&
        (now >= params_.deadline || params_.deadline - sent_at < env_->upstream_timeout);
    if (absl::IsDeadlineExceeded(error) && callers_deadline) {
      Finish(absl::DeadlineExceededError(
                 "the caller's deadline passed while waiting for the Segment API"),
             nullptr);
      return;
    }
    if (absl::IsDeadlineExceeded(error)) {
      error = absl::UnavailableError(absl::StrCat("Segment API timeout: ", error.message()));
    }
    if (op.idempotent && Retryable(error) && RetryLater(error)) return;
    Finish(error, nullptr);
    return;
  }

  const upstream::HttpResponse& r = *answer;
  std::optional<int64_t> remaining;
  int64_t n = 0;
  if (absl::SimpleAtoi(r.Header("x-ratelimit-remaining"), &n)) remaining = n;
  env_->limiter->Observe(params_.lane, remaining,
                         ops::ParseHttpDate(r.Header("x-ratelimit-reset")));

  if (r.status == 429) {
    absl::Duration wait = ops::RetryAfter(r, now);
    env_->limiter->OnTooManyRequests(params_.lane, wait);
    {
      absl::MutexLock lock(&mu_);
      ++report_.requeues_after_429;
    }
    Admit(/*requeue=*/true);  // Nothing executed: safe for every method.
    return;
  }
  if (r.status >= 500 && op.idempotent &&
      RetryLater(absl::UnavailableError(absl::StrCat("Segment API answered HTTP ", r.status)))) {
    return;
  }
  std::unique_ptr<google::protobuf::Message> response(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(params_.builder->method()->output_type())
          ->New());
  absl::Status status = ops::DecodeResponse(r, response.get(), now);
  Finish(std::move(status), status.ok() ? std::move(response) : nullptr);
}

bool Exchange::RetryLater(const absl::Status& why) {
  int attempt;  // Attempts that failed: resends after a 429 (nothing executed) do not count.
  {
    absl::MutexLock lock(&mu_);
    attempt = report_.attempts - report_.requeues_after_429;
  }
  if (attempt >= env_->max_attempts) return false;
  absl::Duration delay = env_->backoff->Delay(attempt);
  absl::Time at = env_->clock->Now() + delay;
  if (at >= params_.deadline) return false;
  if (env_->retry_budget != nullptr && !env_->retry_budget->TryRetry()) return false;
  auto self = shared_from_this();
  absl::MutexLock lock(&mu_);
  if (cancelled_) return true;  // Cancel() finishes the call.
  retry_timer_ = env_->timers->Schedule(at, [self] {
    {
      absl::MutexLock lock(&self->mu_);
      self->retry_timer_ = 0;
    }
    if (!self->finished_.load()) self->Admit(/*requeue=*/true);
  });
  return true;
}

void Exchange::Cancel() {
  ratelimit::Ticket ticket;
  uint64_t upstream;
  Timers::TimerId timer;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    cancelled_ = true;
    ticket = ticket_;
    upstream = upstream_id_;
    timer = retry_timer_;
  }
  if (ticket != ratelimit::kNoTicket) env_->limiter->Cancel(ticket);
  if (upstream != 0) env_->http->Cancel(upstream);
  if (timer != 0) env_->timers->Cancel(timer);
  Finish(absl::CancelledError("call cancelled by the caller"), nullptr);
}

void Exchange::ReleaseQuotaIfUnsent() {
  absl::CivilMonth month;
  {
    absl::MutexLock lock(&mu_);
    if (!quota_taken_ || sent_) return;
    quota_taken_ = false;
    month = quota_month_;
  }
  (void)env_->quota->Release(params_.space, month);
}

void Exchange::Finish(absl::Status status, std::unique_ptr<google::protobuf::Message> response) {
  if (finished_.exchange(true)) return;
  if (!status.ok()) ReleaseQuotaIfUnsent();
  ExchangeReport report;
  MemoryBudget::Charge memory;  // Given back when this returns.
  {
    absl::MutexLock lock(&mu_);
    report = report_;
    memory = std::move(upstream_memory_);
  }
  done_(Scrub(std::move(status), params_.secret), std::move(response), report);
}

}  // namespace sag
