#include "tests/common/redis_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sag::testing {

bool RedisServerInstalled() { return ::access(kRedisServerBin, X_OK) == 0; }

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

RedisServer::RedisServer(int port) : port_(port != 0 ? port : FreePort()) {}

RedisServer::~RedisServer() { Kill().IgnoreError(); }

std::string RedisServer::url() const { return absl::StrCat("redis://127.0.0.1:", port_); }

absl::Status RedisServer::Start(absl::Duration timeout) {
  if (proc_ != nullptr) return absl::FailedPreconditionError("redis-server is already running");
  if (port_ == 0) return absl::UnavailableError("no free loopback port for redis-server");
  auto p = Subprocess::Start({kRedisServerBin, "--port", absl::StrCat(port_), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--protected-mode", "no"});
  if (!p.ok()) return p.status();
  std::unique_ptr<Subprocess> proc = *std::move(p);
  auto line = proc->WaitForLine("Ready to accept connections", timeout);
  if (!line.ok()) {
    return absl::InternalError(absl::StrCat("redis-server on port ", port_, " did not start: ",
                                            line.status().message(), "\n", proc->Output()));
  }
  proc_ = std::move(proc);
  return absl::OkStatus();
}

absl::Status RedisServer::Kill() {
  if (proc_ == nullptr) return absl::OkStatus();
  absl::StatusOr<int> code = proc_->Stop(SIGKILL, absl::Seconds(5));
  proc_.reset();  // The destructor reaps a child that outlived Stop's bound.
  return code.ok() ? absl::OkStatus() : code.status();
}

namespace {

absl::Status SignalServer(Subprocess* proc, int sig, const char* what) {
  if (proc == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("redis-server is not running (", what, ")"));
  }
  if (::kill(proc->pid(), sig) != 0) {
    return absl::InternalError(absl::StrCat(what, " of redis-server pid ", proc->pid(),
                                            " failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RedisServer::Freeze() { return SignalServer(proc_.get(), SIGSTOP, "SIGSTOP"); }

absl::Status RedisServer::Thaw() { return SignalServer(proc_.get(), SIGCONT, "SIGCONT"); }

ScopedRedisFreeze::ScopedRedisFreeze(RedisServer* redis)
    : redis_(redis), frozen_(redis->Freeze()) {}

ScopedRedisFreeze::~ScopedRedisFreeze() { Thaw().IgnoreError(); }

absl::Status ScopedRedisFreeze::Thaw() {
  if (thawed_ || !frozen_.ok()) return absl::OkStatus();
  thawed_ = true;
  return redis_->Thaw();
}

std::string RedisServer::Output() { return proc_ == nullptr ? std::string() : proc_->Output(); }

}  // namespace sag::testing
