// Upstream admissions as segment-sim logged them (GET /__sim/requests), for counting in sliding
// windows (MaxInWindow, tests/support/windows.h): how the tests and benchmarks check that a rate
// limit held in EVERY window of its length (a burst), not only in the simulator's own fixed windows
// (which answer 429 when exceeded, counted by /__sim/stats).
#ifndef SAG_TESTS_COMMON_ADMISSION_WINDOWS_H_
#define SAG_TESTS_COMMON_ADMISSION_WINDOWS_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tests/support/windows.h"  // MaxInWindow

namespace sag::testing {

// The times (millisecond resolution, the simulator's clock) at which the simulator answered
// `operation` with anything but 429, sorted. The simulator keeps only its last 1000 requests:
// compare the count with /__sim/stats when the log may have overflowed.
std::vector<absl::Time> AdmittedAt(const nlohmann::json& request_log, const std::string& operation);

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_ADMISSION_WINDOWS_H_
