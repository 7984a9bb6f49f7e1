// See windows.h.
#include "tests/support/windows.h"

#include <algorithm>

namespace sag::testing {

size_t MaxInWindow(std::vector<absl::Time> times, absl::Duration window, absl::Time from,
                   absl::Time to) {
  std::sort(times.begin(), times.end());
  size_t most = 0;
  auto end = times.begin();
  for (auto start = std::lower_bound(times.begin(), times.end(), from);
       start != times.end() && *start < to; ++start) {
    end = std::max(end, start);
    while (end != times.end() && *end < *start + window) ++end;
    most = std::max(most, static_cast<size_t>(end - start));
  }
  return most;
}

}  // namespace sag::testing
