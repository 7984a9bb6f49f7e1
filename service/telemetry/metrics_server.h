// MetricsServer: HTTP endpoint that Prometheus scrapes.
//
// Serves exactly one thing: `GET /metrics` (and HEAD) answering 200 with Registry::Serialize() as
// `text/plain; version=0.0.4; charset=utf-8`. Every other path is 404, other methods 405. Health
// is not served here: it is gRPC's grpc.health.v1 on the main port.
//
// Runs cpp-httplib with a small pool (default 2 threads) plus one accept thread; a slow scraper
// cannot hold a thread longer than the read/write timeout.
//
// Thread safety: Start/Stop/port may be called from any thread, but not concurrently with
// each other on the same object. Ownership: the Registry is not owned and must outlive the server.
#ifndef SAG_SERVICE_TELEMETRY_METRICS_SERVER_H_
#define SAG_SERVICE_TELEMETRY_METRICS_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/telemetry/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace sag {
namespace telemetry {

struct MetricsServerOptions {
  // host:port; "[::1]:9464" for IPv6; ":9464" means 0.0.0.0; port 0 picks a free port.
  std::string address = "0.0.0.0:9464";
  int threads = 2;
  // Longest wait for a request to arrive, or for the response to be taken, on a connection
  // (> 0); also the keep-alive idle timeout (whole seconds, at least 1).
  absl::Duration io_timeout = absl::Seconds(5);
};

class MetricsServer {
 public:
  MetricsServer(const Registry* registry, MetricsServerOptions options);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  // Stops the server if it runs.
  ~MetricsServer();

  // Binds and starts serving in the background; when it returns OK the port accepts connections.
  // InvalidArgument: the address does not parse. Unavailable: it cannot be bound (in use, no such
  // interface). FailedPrecondition: already started (a server starts at most once).
  absl::Status Start();
  // Stops accepting, finishes requests being served, joins the threads. Idempotent.
  void Stop();

  // The bound port once Start() succeeded (the real one when port 0 was asked); 0 before.
  int port() const { return port_; }
  // The host part of the address ("0.0.0.0", "::1", ...).
  const std::string& host() const { return host_; }

 private:
  const Registry* const registry_;
  const MetricsServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string host_;
  int port_ = 0;
  bool started_ = false;
};

// Splits "host:port" ("[v6]:port", ":port" = "0.0.0.0:port"). Port must be 0..65535.
// InvalidArgument, naming the address, otherwise.
absl::Status ParseHostPort(absl::string_view address, std::string* host, int* port);

}  // namespace telemetry
}  // namespace sag

#endif  // SAG_SERVICE_TELEMETRY_METRICS_SERVER_H_
