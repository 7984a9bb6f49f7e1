// HttpClient on libcurl's multi interface: one event-loop thread drives every transfer, so an
// in-flight request costs a curl easy handle and a few buffers, never a thread. Connections are
// kept alive and reused; HTTP/2 is negotiated over TLS where the upstream offers it, and then
// requests to one host are multiplexed on one connection.
//
// Redirects are never followed (a redirect must not carry the bearer token elsewhere), only
// http and https are allowed, and response bodies are capped.
#ifndef SAG_SERVICE_UPSTREAM_CURL_MULTI_CLIENT_H_
#define SAG_SERVICE_UPSTREAM_CURL_MULTI_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "service/upstream/http.h"

namespace sag::upstream {

struct CurlOptions {
  int max_host_connections = 64;  // Per upstream host; more requests wait inside curl.
  absl::Duration connect_timeout = absl::Seconds(10);
  size_t max_response_bytes = 32 << 20;  // Larger bodies fail with UNAVAILABLE.
  std::string user_agent = "segment-audiences-gateway";
};

class CurlMultiClient final : public HttpClient {
 public:
  explicit CurlMultiClient(CurlOptions options = {});
  // Fails every request still in flight with CANCELLED, then joins the loop thread.
  ~CurlMultiClient() override;
  CurlMultiClient(const CurlMultiClient&) = delete;
  CurlMultiClient& operator=(const CurlMultiClient&) = delete;

  uint64_t Send(HttpRequest request, Callback done) override;
  void Cancel(uint64_t handle) override;

  // Requests in flight (for tests and metrics).
  size_t InFlight() const { return in_flight_.load(std::memory_order_relaxed); }

  struct Transfer;  // One request's state; internal.

 private:
  void Loop();
  void Start(std::unique_ptr<Transfer> t);
  void Complete(uint64_t id, absl::StatusOr<HttpResponse> result);
  void Drain(bool* stop);

  const CurlOptions options_;
  void* multi_ = nullptr;  // CURLM*
  std::atomic<uint64_t> next_id_{1};
  std::atomic<size_t> in_flight_{0};

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Transfer>> incoming_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancels_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  // Loop thread only.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Transfer>> active_;
  std::thread thread_;
};

}  // namespace sag::upstream

#endif  // SAG_SERVICE_UPSTREAM_CURL_MULTI_CLIENT_H_
