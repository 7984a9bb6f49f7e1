// Starts a program as a child process for integration tests, captures its stdout and stderr,
// waits (with a bound) for a line it prints, and stops it. The destructor kills a child that is
// still running, so a failing test never leaves processes behind.
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
  // Sends `sig` and waits up to `timeout` for the exit; returns the exit code (128+signal when
  // killed by a signal), or DEADLINE_EXCEEDED (the child is then killed).
  absl::StatusOr<int> Stop(int sig, absl::Duration timeout);
  // Everything the child printed so far.
  std::string Output();
  pid_t pid() const { return pid_; }
  bool Running();

 private:
  Subprocess() = default;
  void ReadLoop();
  absl::StatusOr<int> WaitExit(absl::Duration timeout);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
  absl::Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  bool reaped_ = false;
  int exit_code_ = -1;
};

// The port in a line like "... listening on http://127.0.0.1:PORT ..." or "...on 127.0.0.1:PORT".
int PortFromLine(const std::string& line);

// A fresh temporary directory under /tmp (sag-test-*), removed with its contents when the process
// exits (kept when SAG_KEEP_TEST_DIRS=1).
std::string MakeTempDir();
// Writes `content` to `path`.
void WriteFile(const std::string& path, const std::string& content);

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_SUBPROCESS_H_
