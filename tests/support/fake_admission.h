// FakeAdmission: a ratelimit::Admission (the admission stage, service/ratelimit/admission.h)
// that answers every Acquire and Requeue at once, inline, with the status the test sets, and
// records the lanes it was asked for. For testing a stage after admission without the Limiter.
#ifndef SAG_TESTS_SUPPORT_FAKE_ADMISSION_H_
#define SAG_TESTS_SUPPORT_FAKE_ADMISSION_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "service/ratelimit/admission.h"

namespace sag::testing {

class FakeAdmission final : public ratelimit::Admission {
 public:
  explicit FakeAdmission(absl::Status answer = absl::OkStatus()) : answer_(std::move(answer)) {}

  ratelimit::Ticket Acquire(const ratelimit::AcquireRequest& r, ratelimit::AdmitFn admit) override {
    absl::Status answer;
    {
      absl::MutexLock lock(&mu_);
      lanes_.push_back(r.lane);
      answer = answer_;
    }
    admit(answer);  // Outside the lock: `admit` may call back.
    return ratelimit::kNoTicket;
  }
  ratelimit::Ticket Requeue(const ratelimit::AcquireRequest& r, ratelimit::AdmitFn admit) override {
    return Acquire(r, std::move(admit));
  }
  bool Cancel(ratelimit::Ticket) override { return false; }  // Nothing ever waits.
  void Observe(absl::string_view, std::optional<int64_t>, std::optional<absl::Time>) override {}
  void OnTooManyRequests(absl::string_view, absl::Duration) override {}

  void Set(absl::Status answer) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(answer);
  }
  // The lanes of every Acquire and Requeue, in order.
  std::vector<std::string> lanes() const {
    absl::MutexLock lock(&mu_);
    return lanes_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Status answer_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> lanes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sag::testing

#endif  // SAG_TESTS_SUPPORT_FAKE_ADMISSION_H_
