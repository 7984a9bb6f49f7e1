// Starts a program as a child process for integration tests, captures its stdout and stderr,
// waits (with a bound) for a line it prints, and stops it.
//
// Cleanup promise: the child runs in a process group of its own, which the destructor kills
// (SIGKILL) whether the test passed, failed or threw, so nothing it started outlives it either.
// If the test process itself dies (a crash, SIGKILL, a sanitizer abort), the kernel kills the
// child (PR_SET_PDEATHSIG; it fires when the thread that started the child exits, so start
// children from the test's main thread). Every child carries SAG_TEST_CHILD=<build directory> in
// its environment: tests/common/leftover_processes.py finds any left running.
#ifndef SAG_TESTS_COMMON_SUBPROCESS_H_
#define SAG_TESTS_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sag::testing {

class Subprocess {
 public:
  // Starts argv[0] with the arguments; `env` entries ("K=V") are added to the environment.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(std::vector<std::string> argv,
                                                           std::vector<std::string> env = {});
  ~Subprocess();

  // Waits until the output holds a line containing `needle`; returns that line.
  absl::StatusOr<std::string> WaitForLine(absl::string_view needle, absl::Duration timeout);
  // Sends `sig` to the child and waits up to `timeout` for the exit; returns the exit code
  // (128+signal when killed by a signal), or DEADLINE_EXCEEDED (the child is then killed).
  // Whatever is left of its process group is killed afterwards.
  absl::StatusOr<int> Stop(int sig, absl::Duration timeout);
  // Everything the child printed so far.
  std::string Output();
  pid_t pid() const { return pid_; }
  bool Running();
  // Waits up to `timeout` for the child to exit by itself; its exit code, or DEADLINE_EXCEEDED.
  absl::StatusOr<int> WaitExit(absl::Duration timeout);

 private:
  Subprocess() = default;
  void ReadLoop();

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
  absl::Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  bool reaped_ = false;
  int exit_code_ = -1;
};

// What a program printed (stdout and stderr together) and its exit code (128+signal if killed).
struct ProgramResult {
  int code = -1;
  std::string output;
};
// Runs argv to its exit, at most `timeout` (then kills it: DEADLINE_EXCEEDED), and reads all
// its output.
absl::StatusOr<ProgramResult> RunProgram(std::vector<std::string> argv,
                                         std::vector<std::string> env = {},
                                         absl::Duration timeout = absl::Seconds(30));

// The port in a line like "... listening on http://127.0.0.1:PORT ..." or "...on 127.0.0.1:PORT".
int PortFromLine(const std::string& line);

// A fresh temporary directory under /tmp (sag-test-*), removed with its contents when the process
// exits (kept when SAG_KEEP_TEST_DIRS=1).
std::string MakeTempDir();
// Writes `content` to `path`.
void WriteFile(const std::string& path, const std::string& content);

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_SUBPROCESS_H_
