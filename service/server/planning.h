// Stage 2 of the request path, upstream planning: the REST request an admitted route becomes,
// with its workspace's token, and what the exchange needs to pace it (lane, limit, deadline).
//
// Promises:
//  - Plan() runs only for a call that will go upstream (a listing: only on a cache miss), so a
//    cache hit reads no token and builds nothing.
//  - Its errors: INVALID_ARGUMENT when the request cannot be a REST request (the builder's
//    checks: ids, sizes, required fields), UNAVAILABLE when the workspace's token cannot be read
//    (the message names the workspace, never the token).
//  - The request carries `Authorization: Bearer <token>`, the call's X-Request-Id and its trace
//    headers (traceparent, tracestate); ExchangeParams::secret holds the token so that error
//    messages can scrub it. The lane is "workspace/rpc"; the limit is LimitOf(rpc).
//  - Create() validates the default base URL and every workspace's own.
//
// Thread-safe and immutable after Create().
#ifndef SAG_SERVICE_SERVER_PLANNING_H_
#define SAG_SERVICE_SERVER_PLANNING_H_

#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/ratelimit/limits.h"
#include "service/server/call.h"
#include "service/server/exchange.h"
#include "service/server/routing.h"

namespace sag {

struct PlannerOptions {
  std::string upstream_url = "https://api.segmentapis.com";  // Default for every workspace.
  ratelimit::LimitOverrides rate_limits;                     // --rate_limits
  ratelimit::Limit api_default{60, absl::Minutes(1)};        // Ops without a documented limit.
};

// Validates a base URL: http(s)://host[:port][/prefix], returned without a trailing slash.
absl::StatusOr<std::string> NormalizeBaseUrl(absl::string_view url);

class Planner {
 public:
  static absl::StatusOr<std::unique_ptr<Planner>> Create(PlannerOptions options,
                                                         const std::vector<Workspace>& workspaces);

  // The exchange's parameters for a routed call (see the promises above).
  absl::StatusOr<ExchangeParams> Plan(const Routed& routed, const CallInfo& info,
                                      const google::protobuf::Message& request) const;

  // The limit the gateway applies to `rpc` (documented, overridden, or the API default).
  ratelimit::Limit LimitOf(absl::string_view rpc) const;

 private:
  explicit Planner(PlannerOptions options) : options_(std::move(options)) {}
  // The REST request with its headers, and the token it carries.
  absl::StatusOr<upstream::HttpRequest> Request(const Routed& routed, const CallInfo& info,
                                                const google::protobuf::Message& request,
                                                std::string& token) const;

  const PlannerOptions options_;
};

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_PLANNING_H_
