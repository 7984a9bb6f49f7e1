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

}  // namespace sag::testing
