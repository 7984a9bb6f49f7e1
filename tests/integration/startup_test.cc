// The programs' front door, as real processes: a busy port is an error naming the address (the
// gateway's gRPC port, its metrics port, segment-sim's port), --help exits 0 listing every flag
// without build-machine paths, and an unknown flag is answered with the nearest valid one.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/subprocess.h"

namespace sag::testing {
namespace {

// A loopback port held by a bound, listening socket for the life of the object.
class BusyPort {
 public:
  BusyPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::listen(fd_, 16) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~BusyPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  BusyPort(const BusyPort&) = delete;
  BusyPort& operator=(const BusyPort&) = delete;

  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A token file in a fresh directory, so that the gateway has what it needs to start.
std::string TokenFlag() {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/token", "startup-test-token\n");
  return "--token_file=" + dir + "/token";
}

constexpr absl::Duration kBound = absl::Seconds(30);

TEST(StartupTest, GatewayRefusesABusyGrpcPort) {
  BusyPort busy;
  ASSERT_NE(busy.port(), 0);
  auto run =
      RunProgram({SAG_GATEWAY_BIN, "--listen=" + busy.address(), "--metrics_listen=127.0.0.1:0",
                  "--upstream_url=http://127.0.0.1:9", TokenFlag()},
                 {}, kBound);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_NE(run->code, 0) << run->output;
  EXPECT_TRUE(absl::StrContains(run->output, "cannot listen on " + busy.address())) << run->output;
  EXPECT_TRUE(absl::StrContains(run->output, "address already in use")) << run->output;
  EXPECT_FALSE(absl::StrContains(run->output, "listening on")) << run->output;
  // One line of ours, no gRPC core log line before it.
  EXPECT_FALSE(absl::StrContains(run->output, "chttp2_server")) << run->output;
}

TEST(StartupTest, GatewayRefusesABusyMetricsPort) {
  BusyPort busy;
  ASSERT_NE(busy.port(), 0);
  auto run =
      RunProgram({SAG_GATEWAY_BIN, "--listen=127.0.0.1:0", "--metrics_listen=" + busy.address(),
                  "--upstream_url=http://127.0.0.1:9", TokenFlag()},
                 {}, kBound);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_NE(run->code, 0) << run->output;
  EXPECT_TRUE(absl::StrContains(run->output, "cannot bind " + busy.address())) << run->output;
  EXPECT_FALSE(absl::StrContains(run->output, "listening on")) << run->output;
}

TEST(StartupTest, SimRefusesABusyPort) {
  BusyPort busy;
  ASSERT_NE(busy.port(), 0);
  auto run = RunProgram({SAG_SIM_BIN, "--listen=" + busy.address()}, {}, kBound);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_NE(run->code, 0) << run->output;
  EXPECT_TRUE(absl::StrContains(run->output, "cannot bind " + busy.address())) << run->output;
  EXPECT_TRUE(absl::StrContains(run->output, "address already in use")) << run->output;
  EXPECT_FALSE(absl::StrContains(run->output, "listening on")) << run->output;
}

// A path to a source file, as Abseil's default help prints ("Flags from /src/.../main.cc").
const std::regex kSourcePath(R"([^\s"]*/[^\s"]*\.(cc|h|cpp)\b)");

void ExpectHelp(const std::string& bin, const std::vector<std::string>& flags) {
  for (const char* help : {"--help", "-h", "--helpfull"}) {
    auto run = RunProgram({bin, help}, {}, kBound);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->code, 0) << help << ":\n" << run->output;
    EXPECT_TRUE(absl::StrContains(run->output, "Usage: ")) << run->output;
    for (const std::string& flag : flags) {
      EXPECT_TRUE(absl::StrContains(run->output, "--" + flag + " (")) << flag << run->output;
    }
    std::smatch m;
    EXPECT_FALSE(std::regex_search(run->output, m, kSourcePath)) << m.str(0) << run->output;
    EXPECT_FALSE(absl::StrContains(run->output, "Try --helpfull")) << run->output;
    EXPECT_FALSE(absl::StrContains(run->output, "listening on http://127.0.0.1:")) << run->output;
    EXPECT_FALSE(absl::StrContains(run->output, "listening on 0.0.0.0:")) << run->output;
  }
}

TEST(StartupTest, GatewayHelpListsEveryFlagAndExitsZero) {
  ExpectHelp(SAG_GATEWAY_BIN, {"listen",
                               "upstream_url",
                               "token_file",
                               "config",
                               "metrics_listen",
                               "rate_limits",
                               "cache_ttl",
                               "cache_max_bytes",
                               "cache_stale_while_revalidate",
                               "cache_stale_if_error",
                               "redis_url",
                               "tls_cert",
                               "tls_key",
                               "client_ca",
                               "replicas",
                               "upstream_timeout",
                               "upstream_max_connections",
                               "queue_max",
                               "batch_min_share",
                               "max_memory",
                               "upstream_max_attempts",
                               "preview_monthly_quota",
                               "preview_quota_file",
                               "idempotency_ttl",
                               "idempotency_max_entries",
                               "shutdown_grace",
                               "log_level"});
}

TEST(StartupTest, SimHelpListsEveryFlagAndExitsZero) {
  ExpectHelp(SAG_SIM_BIN,
             {"listen", "rate_limits", "token", "preview_duration", "latency", "threads",
              "preview_monthly_quota", "fault_5xx_rate", "fault_5xx_after_rate", "fault_reset_rate",
              "fault_malformed_rate", "fault_latency", "fault_ops", "fault_seed"});
}

TEST(StartupTest, UnknownFlagNamesTheNearestOne) {
  for (const char* bin : {SAG_GATEWAY_BIN, SAG_SIM_BIN}) {
    auto run = RunProgram({bin, "--lisen=127.0.0.1:0"}, {}, kBound);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_NE(run->code, 0) << run->output;
    EXPECT_TRUE(absl::StrContains(run->output, "unknown flag --lisen (did you mean --listen?)"))
        << run->output;
    EXPECT_FALSE(absl::StrContains(run->output, "listening on")) << run->output;
  }
}

TEST(StartupTest, HostileUnknownFlagIsRefusedWithoutEchoingItAll) {
  const std::string huge(100000, 'x');
  auto run = RunProgram({SAG_SIM_BIN, "--" + huge + "=1"}, {}, kBound);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_NE(run->code, 0) << run->output.substr(0, 2000);
  EXPECT_TRUE(absl::StrContains(run->output, "unknown flag --" + huge.substr(0, 64) + "\n"))
      << run->output.substr(0, 2000);
}

// True while `pid` exists and is not a zombie (an orphan's zombie may wait for a busy init).
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return false;
  const size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

TEST(StartupTest, DestroyingASubprocessKillsWhatItStarted) {
  pid_t grandchild = 0;
  {
    auto p = Subprocess::Start({"/bin/sh", "-c", "sleep 300 & echo child $!; wait"});
    ASSERT_TRUE(p.ok()) << p.status();
    auto line = (*p)->WaitForLine("child ", absl::Seconds(10));
    ASSERT_TRUE(line.ok()) << line.status();
    grandchild = std::stoi(line->substr(line->find("child ") + 6));
    ASSERT_TRUE(Alive(grandchild));
  }  // The Subprocess is destroyed with its child running: the whole group goes.
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (Alive(grandchild) && absl::Now() < end) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_FALSE(Alive(grandchild)) << "pid " << grandchild << " outlived its Subprocess";
}

}  // namespace
}  // namespace sag::testing
