// FakeTokenSource: an auth::TokenSource whose answer the test sets (a token, or an error), and
// which counts how often it was asked.
#ifndef SAG_TESTS_SUPPORT_FAKE_TOKEN_SOURCE_H_
#define SAG_TESTS_SUPPORT_FAKE_TOKEN_SOURCE_H_

#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "service/auth/token_source.h"

namespace sag::testing {

class FakeTokenSource final : public auth::TokenSource {
 public:
  explicit FakeTokenSource(std::string token = "test-token-0123456789") : answer_(token) {}

  absl::StatusOr<std::string> Token() override {
    absl::MutexLock lock(&mu_);
    ++asked_;
    return answer_;
  }
  void Set(absl::StatusOr<std::string> answer) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(answer);
  }
  int asked() const {
    absl::MutexLock lock(&mu_);
    return asked_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::StatusOr<std::string> answer_ ABSL_GUARDED_BY(mu_);
  int asked_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sag::testing

#endif  // SAG_TESTS_SUPPORT_FAKE_TOKEN_SOURCE_H_
