// Plain HTTP request/response values exchanged with the upstream client, and the client
// interface. Nothing here knows about Segment or gRPC.
#ifndef SAG_SERVICE_UPSTREAM_HTTP_H_
#define SAG_SERVICE_UPSTREAM_HTTP_H_

#include <cstdint>
#include <functional>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sag::upstream {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string url;     // Absolute, already percent-encoded.
  Headers headers;     // Sent as given.
  std::string body;    // Sent when `has_body`.
  bool has_body = false;
  absl::Duration timeout = absl::Seconds(30);  // Whole exchange, connect included.
};

struct HttpResponse {
  long status = 0;
  Headers headers;  // Names in lower case, in arrival order.
  std::string body;

  // First header named `name` (lower case), or empty.
  absl::string_view Header(absl::string_view name) const;
};

// An asynchronous HTTP client. Send() never blocks on the network; `done` runs exactly once,
// on a thread owned by the client, with the response (any status) or a transport error:
//   DEADLINE_EXCEEDED  the request's timeout passed;
//   UNAVAILABLE        connection failures, resets, malformed HTTP, a response over the size cap;
//   CANCELLED          Cancel() was called or the client is shutting down.
// `done` must not block: it runs on the client's event loop.
class HttpClient {
 public:
  using Callback = std::function<void(absl::StatusOr<HttpResponse>)>;
  virtual ~HttpClient() = default;
  // Returns a handle for Cancel(). Thread-safe.
  virtual uint64_t Send(HttpRequest request, Callback done) = 0;
  // Aborts the request if it is still in flight (its callback then gets CANCELLED). Cancelling a
  // finished or unknown handle does nothing. Thread-safe.
  virtual void Cancel(uint64_t handle) = 0;
};

}  // namespace sag::upstream

#endif  // SAG_SERVICE_UPSTREAM_HTTP_H_
