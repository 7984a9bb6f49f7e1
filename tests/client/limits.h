// Rate limits for test stacks: every operation at `per_minute`, for the gateway's and the
// simulator's --rate_limits, so that the documented limits (the gateway paces calls to them)
// do not slow the client tests down.
#ifndef SAG_TESTS_CLIENT_LIMITS_H_
#define SAG_TESTS_CLIENT_LIMITS_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "segment_audiences/client.h"

namespace sag::testing {

inline std::string AllOperationsLimit(int per_minute) {
  std::string flag = "--rate_limits=";
  const auto* service = segment_audiences::Client::ServiceDescriptor();
  for (int i = 0; i < service->method_count(); ++i) {
    absl::StrAppend(&flag, i == 0 ? "" : ",", service->method(i)->name(), "=", per_minute, "/1m");
  }
  return flag;
}

}  // namespace sag::testing

#endif  // SAG_TESTS_CLIENT_LIMITS_H_
