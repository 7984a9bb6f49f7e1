#include "service/telemetry/metrics_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace sag {
namespace telemetry {

absl::Status ParseHostPort(absl::string_view address, std::string* host, int* port) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address '", address, "': ", why, " (want host:port)"));
  };
  absl::string_view h;
  absl::string_view p;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos) return bad("missing ']'");
    h = address.substr(1, close - 1);
    absl::string_view rest = address.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return bad("missing ':port'");
    p = rest.substr(1);
    if (h.empty()) return bad("empty IPv6 host");
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return bad("missing ':port'");
    h = address.substr(0, colon);
    p = address.substr(colon + 1);
    if (h.find(':') != absl::string_view::npos) return bad("IPv6 hosts go in brackets");
  }
  int value = -1;
  if (p.empty() || !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      p.size() > 5 || !absl::SimpleAtoi(p, &value) || value > 65535) {
    return bad("port must be a number from 0 to 65535");
  }
  *host = h.empty() ? "0.0.0.0" : std::string(h);
  *port = value;
  return absl::OkStatus();
}

MetricsServer::MetricsServer(const Registry* registry, MetricsServerOptions options)
    : registry_(registry), options_(std::move(options)) {}

MetricsServer::~MetricsServer() { Stop(); }

absl::Status MetricsServer::Start() {
  if (started_) return absl::FailedPreconditionError("metrics server: already started");
  int requested_port = 0;
  absl::Status parsed = ParseHostPort(options_.address, &host_, &requested_port);
  if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("metrics: ", parsed.message()));
  started_ = true;

  server_ = std::make_unique<httplib::Server>();
  const int threads = std::max(1, options_.threads);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  const auto io_timeout = std::chrono::microseconds(absl::ToInt64Microseconds(options_.io_timeout));
  server_->set_read_timeout(io_timeout);
  server_->set_write_timeout(io_timeout);
  server_->set_keep_alive_timeout(std::max<time_t>(1, absl::ToInt64Seconds(options_.io_timeout)));
  server_->set_payload_max_length(64 * 1024);
  // httplib's default also sets SO_REUSEPORT, which lets a second process bind the same port and
  // silently steal half the scrapes. SO_REUSEADDR only: restarts still rebind at once.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  const Registry* registry = registry_;
  server_->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Serialize(), kExpositionContentType);
  });
  const auto not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/metrics") {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
      res.set_content("method not allowed\n", "text/plain; charset=utf-8");
    } else {
      res.status = 404;
      res.set_content("not found: only GET /metrics is served here\n", "text/plain; charset=utf-8");
    }
  };
  server_->Post(".*", not_allowed);
  server_->Put(".*", not_allowed);
  server_->Patch(".*", not_allowed);
  server_->Delete(".*", not_allowed);
  server_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      res.set_content("not found: only GET /metrics is served here\n", "text/plain; charset=utf-8");
    }
  });

  if (requested_port == 0) {
    port_ = server_->bind_to_any_port(host_);
    if (port_ < 0) {
      port_ = 0;
      return absl::UnavailableError(
          absl::StrCat("metrics: cannot bind ", options_.address, " (", host_, ")"));
    }
  } else {
    errno = 0;
    if (!server_->bind_to_port(host_, requested_port)) {
      // httplib closes the socket after a failed bind(); errno still tells why.
      return absl::UnavailableError(
          absl::StrCat("metrics: cannot bind ", options_.address,
                       errno == EADDRINUSE ? ": address already in use" : " (address in use?)"));
    }
    port_ = requested_port;
  }
  httplib::Server* server = server_.get();
  thread_ = std::thread([server] { server->listen_after_bind(); });
  // The socket already listens (connections queue in the backlog); also wait for the accept loop,
  // so that a Stop() right after Start() is not lost (httplib's stop() is a no-op before it).
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!server_->is_running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  return absl::OkStatus();
}

void MetricsServer::Stop() {
  if (server_ == nullptr) return;
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
  server_.reset();
}

}  // namespace telemetry
}  // namespace sag
