// Helpers shared by the ratelimit tests.
#ifndef SAG_TESTS_UNIT_RATELIMIT_TEST_UTIL_H_
#define SAG_TESTS_UNIT_RATELIMIT_TEST_UTIL_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"

namespace sag::ratelimit::testing {

// The google.rpc.RetryInfo delay attached to `s`, if any.
inline std::optional<absl::Duration> RetryDelay(const absl::Status& s) {
  auto payload = s.GetPayload("type.googleapis.com/google.rpc.RetryInfo");
  if (!payload.has_value()) return std::nullopt;
  google::rpc::RetryInfo info;
  if (!info.ParseFromString(std::string(*payload))) return std::nullopt;
  return absl::Seconds(info.retry_delay().seconds()) +
         absl::Nanoseconds(info.retry_delay().nanos());
}

// The google.rpc.QuotaFailure attached to `s`, if any.
inline std::optional<google::rpc::QuotaFailure> QuotaFailureOf(const absl::Status& s) {
  auto payload = s.GetPayload("type.googleapis.com/google.rpc.QuotaFailure");
  if (!payload.has_value()) return std::nullopt;
  google::rpc::QuotaFailure failure;
  if (!failure.ParseFromString(std::string(*payload))) return std::nullopt;
  return failure;
}

// Jain's fairness index of `x`: (sum x)^2 / (n * sum x^2); 1 is perfectly fair, 1/n the worst.
inline double JainIndex(const std::vector<double>& x) {
  double sum = 0;
  double sum_sq = 0;
  for (double v : x) {
    sum += v;
    sum_sq += v * v;
  }
  if (x.empty() || sum_sq == 0) return 1.0;
  return sum * sum / (static_cast<double>(x.size()) * sum_sq);
}

}  // namespace sag::ratelimit::testing

#endif  // SAG_TESTS_UNIT_RATELIMIT_TEST_UTIL_H_
