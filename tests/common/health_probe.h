// grpc.health.v1.Health/Check made the way a Kubernetes gRPC probe makes it (a new connection per
// probe, a deadline), once or every `period` in the background, with each probe's latency.
#ifndef SAG_TESTS_COMMON_HEALTH_PROBE_H_
#define SAG_TESTS_COMMON_HEALTH_PROBE_H_

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sag::testing {

// The ServingStatus (1 SERVING, 2 NOT_SERVING) of `service` at `address`, on a new connection,
// or the call's error (DEADLINE_EXCEEDED after `timeout`).
absl::StatusOr<int> ProbeHealth(const std::string& address, const std::string& service,
                                absl::Duration timeout);

// Probes every `period` until Stop(); each probe waits at most `timeout`.
class HealthProber {
 public:
  struct Result {
    std::vector<double> latency_ms;  // Every probe, answered or not.
    int serving = 0;                 // Probes answered SERVING.
    int failed = 0;                  // Probes with an error or another status.
    std::string first_error;
  };

  HealthProber(std::string address, absl::Duration period, absl::Duration timeout);
  ~HealthProber() { Stop(); }
  HealthProber(const HealthProber&) = delete;
  HealthProber& operator=(const HealthProber&) = delete;

  // Stops probing (after the probe under way) and returns what was seen.
  Result Stop();

 private:
  const std::string address_;
  const absl::Duration period_, timeout_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  Result result_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_HEALTH_PROBE_H_
