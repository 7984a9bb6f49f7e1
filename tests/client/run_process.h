// Runs a program to completion for a test: stdin from a string, stdout and stderr captured
// separately, the exit code, a bound on the time (the child is killed past it).
#ifndef SAG_TESTS_CLIENT_RUN_PROCESS_H_
#define SAG_TESTS_CLIENT_RUN_PROCESS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace sag::testing {

struct ProcessResult {
  int exit_code = -1;  // 128+signal when killed by a signal.
  bool timed_out = false;
  std::string out;
  std::string err;
};

struct ProcessOptions {
  std::string stdin_data;
  // "K=V" entries added to (or replacing in) the environment. The variables audiencesctl reads
  // (AUDIENCES_GATEWAY_ADDR, AUDIENCES_SPACE, AUDIENCES_WORKSPACE) are never inherited.
  std::vector<std::string> env;
  std::string cwd;
  absl::Duration timeout = absl::Seconds(60);
};

ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// A shell-readable rendering of the result, for failure messages.
std::string Describe(const ProcessResult& result);

}  // namespace sag::testing

#endif  // SAG_TESTS_CLIENT_RUN_PROCESS_H_
