#include "tests/common/admission_windows.h"

#include <algorithm>

namespace sag::testing {

std::vector<absl::Time> AdmittedAt(const nlohmann::json& request_log,
                                   const std::string& operation) {
  std::vector<absl::Time> out;
  if (!request_log.is_array()) return out;
  for (const nlohmann::json& entry : request_log) {
    if (entry.value("operation", nlohmann::json()) != operation) continue;
    if (entry.value("status", 0) == 429) continue;
    absl::Time t;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, entry.value("time", ""), &t, &err)) out.push_back(t);
  }
  std::sort(out.begin(), out.end());
  return out;
}

int MaxInWindow(const std::vector<absl::Time>& sorted, absl::Duration window, absl::Time from,
                absl::Time to) {
  int most = 0;
  auto end = sorted.begin();
  for (auto start = std::lower_bound(sorted.begin(), sorted.end(), from);
       start != sorted.end() && *start < to; ++start) {
    end = std::max(end, start);
    while (end != sorted.end() && *end < *start + window) ++end;
    most = std::max(most, static_cast<int>(end - start));
  }
  return most;
}

}  // namespace sag::testing
