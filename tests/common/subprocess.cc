#include "tests/common/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

extern char** environ;

namespace sag::testing {

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(std::vector<std::string> argv,
                                                              std::vector<std::string> env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
  for (auto& e : env) envs.push_back(std::move(e));
  envs.push_back("SAG_TEST_CHILD=" SAG_TEST_MARKER);  // For tests/common/leftover_processes.py.
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    // Its own process group (killed as one), and killed if the test process dies first.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // The parent died before prctl took effect.
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    // Unblock signals the test runner may have blocked.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  setpgid(pid, pid);  // Also here: no race with a kill(-pid) before the child ran setpgid.
  close(fds[1]);
  std::unique_ptr<Subprocess> p(new Subprocess());
  p->pid_ = pid;
  p->out_fd_ = fds[0];
  p->reader_ = std::thread([raw = p.get()] { raw->ReadLoop(); });
  return p;
}

Subprocess::~Subprocess() {
  if (!reaped_) (void)Stop(SIGKILL, absl::Seconds(10));
  if (pid_ > 0) kill(-pid_, SIGKILL);  // Anything the child started and left behind.
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) close(out_fd_);
}

void Subprocess::ReadLoop() {
  char buf[4096];
  while (true) {
    ssize_t n = read(out_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    absl::MutexLock lock(&mu_);
    if (n <= 0) {
      eof_ = true;
      return;
    }
    output_.append(buf, static_cast<size_t>(n));
  }
}

absl::StatusOr<std::string> Subprocess::WaitForLine(absl::string_view needle,
                                                    absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  std::string line;
  auto found = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t pos = output_.find(needle.data(), 0, needle.size());
    if (pos == std::string::npos) return eof_;
    size_t start = output_.rfind('\n', pos);
    start = start == std::string::npos ? 0 : start + 1;
    size_t end = output_.find('\n', pos);
    if (end == std::string::npos) return eof_;  // Wait for the whole line.
    line = output_.substr(start, end - start);
    return true;
  };
  mu_.AwaitWithTimeout(absl::Condition(&found), timeout);
  if (!line.empty()) return line;
  return absl::DeadlineExceededError(absl::StrCat("no line with '", needle, "' within ",
                                                  absl::FormatDuration(timeout),
                                                  "; output so far:\n", output_));
}

std::string Subprocess::Output() {
  absl::MutexLock lock(&mu_);
  return output_;
}

bool Subprocess::Running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

absl::StatusOr<int> Subprocess::WaitExit(absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (!Running()) return exit_code_;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::DeadlineExceededError("child did not exit in time");
}

absl::StatusOr<int> Subprocess::Stop(int sig, absl::Duration timeout) {
  if (reaped_) return exit_code_;
  kill(pid_, sig);
  absl::StatusOr<int> code = WaitExit(timeout);
  if (!code.ok() && pid_ > 0) {
    kill(-pid_, SIGKILL);
    (void)WaitExit(absl::Seconds(10));
  }
  if (pid_ > 0) kill(-pid_, SIGKILL);  // The group: whatever the child started.
  return code;
}

absl::StatusOr<ProgramResult> RunProgram(std::vector<std::string> argv,
                                         std::vector<std::string> env, absl::Duration timeout) {
  auto p = Subprocess::Start(std::move(argv), std::move(env));
  if (!p.ok()) return p.status();
  absl::StatusOr<int> code = (*p)->WaitExit(timeout);
  if (!code.ok()) return code.status();  // The destructor kills it.
  // A needle that never appears: returns once the output reached end of file.
  (void)(*p)->WaitForLine("\x01\x02 no such line", absl::Seconds(5));
  return ProgramResult{*code, (*p)->Output()};
}

int PortFromLine(const std::string& line) {
  static const std::regex re(R"((?:127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0):(\d+))");
  std::smatch m;
  if (!std::regex_search(line, m, re)) return 0;
  return std::stoi(m[1].str());
}

namespace {

// The directories MakeTempDir() made, removed when the process exits.
absl::Mutex temp_dirs_mu;
std::vector<std::string>* temp_dirs ABSL_GUARDED_BY(temp_dirs_mu) = nullptr;

void RemoveTempDirs() {
  absl::MutexLock lock(&temp_dirs_mu);
  if (temp_dirs == nullptr) return;
  for (const std::string& dir : *temp_dirs) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  temp_dirs->clear();
}

}  // namespace

std::string MakeTempDir() {
  std::string tmpl = "/tmp/sag-test-XXXXXX";
  char* dir = mkdtemp(tmpl.data());
  if (dir == nullptr) return std::string();
  const char* keep = std::getenv("SAG_KEEP_TEST_DIRS");
  if (keep == nullptr || std::string(keep) != "1") {
    absl::MutexLock lock(&temp_dirs_mu);
    if (temp_dirs == nullptr) {
      temp_dirs = new std::vector<std::string>();
      std::atexit(RemoveTempDirs);
    }
    temp_dirs->push_back(dir);
  }
  return std::string(dir);
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

}  // namespace sag::testing
