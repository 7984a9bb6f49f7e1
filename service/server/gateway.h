// The gateway's request path, shared by all 14 RPCs: look the RPC up in the operation table,
// check and build the REST request, send it with the workspace's token within the caller's
// deadline, and turn the answer into the response or a gRPC error with google.rpc details.
//
// No thread waits on a call: Handle() returns a reactor at once; the upstream answer finishes it
// from the HTTP client's event loop; a caller that cancels (or whose deadline passes) aborts the
// upstream request.
//
// Thread-safe: Handle() may be called from any number of gRPC threads.
#ifndef SAG_SERVICE_SERVER_GATEWAY_H_
#define SAG_SERVICE_SERVER_GATEWAY_H_

#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include <google/protobuf/message.h>
#include <grpcpp/support/server_callback.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/auth/token_source.h"
#include "service/operations/request_builder.h"
#include "service/upstream/http.h"

namespace grpc {
class CallbackServerContext;
}

namespace sag {

struct GatewayOptions {
  std::string upstream_url = "https://api.segmentapis.com";  // No trailing slash.
  absl::Duration upstream_timeout = absl::Seconds(30);      // Per upstream request.
};

class Gateway {
 public:
  // Binds every row of the operation table to its method of
  // segment.audiences.v1.AudiencesService; fails when they disagree.
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(GatewayOptions options,
                                                         upstream::HttpClient* http,
                                                         auth::TokenSource* tokens);

  // Serves one call of `rpc`. `request` and `response` belong to gRPC and live until the
  // returned reactor is done.
  grpc::ServerUnaryReactor* Handle(absl::string_view rpc, grpc::CallbackServerContext* context,
                                   const google::protobuf::Message* request,
                                   google::protobuf::Message* response);

  // Validates a base URL: http(s)://host[:port][/prefix], returned without a trailing slash.
  static absl::StatusOr<std::string> NormalizeBaseUrl(absl::string_view url);

 private:
  Gateway(GatewayOptions options, upstream::HttpClient* http, auth::TokenSource* tokens)
      : options_(std::move(options)), http_(http), tokens_(tokens) {}

  const GatewayOptions options_;
  upstream::HttpClient* const http_;
  auth::TokenSource* const tokens_;
  absl::flat_hash_map<std::string, std::unique_ptr<ops::RequestBuilder>> builders_;
};

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_GATEWAY_H_
