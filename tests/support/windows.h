// MaxInWindow: how the tests and benchmarks check that a rate limit held in EVERY window of its
// length (a burst shows there), not only in some fixed windows.
#ifndef SAG_TESTS_SUPPORT_WINDOWS_H_
#define SAG_TESTS_SUPPORT_WINDOWS_H_

#include <cstddef>
#include <vector>

#include "absl/time/time.h"

namespace sag::testing {

// The most of `times` (any order) in one half-open window [t, t + window) that starts at one of
// them, with from <= t < to; 0 when none is in [from, to).
size_t MaxInWindow(std::vector<absl::Time> times, absl::Duration window,
                   absl::Time from = absl::InfinitePast(), absl::Time to = absl::InfiniteFuture());

}  // namespace sag::testing

#endif  // SAG_TESTS_SUPPORT_WINDOWS_H_
