#include "service/server/planning.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/operations/operation_table.h"

namespace sag {

absl::StatusOr<std::string> NormalizeBaseUrl(absl::string_view url) {
  std::string u(url);
  while (!u.empty() && u.back() == '/') u.pop_back();
  size_t scheme_end = u.find("://");
  if (scheme_end == std::string::npos ||
      (u.substr(0, scheme_end) != "http" && u.substr(0, scheme_end) != "https") ||
      u.size() == scheme_end + 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream URL must look like https://host[:port][/prefix], got '", url, "'"));
  }
  if (u.find_first_of("?# \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("upstream URL must not contain a query, fragment or spaces");
  }
  return u;
}

absl::StatusOr<std::unique_ptr<Planner>> Planner::Create(PlannerOptions options,
                                                         const std::vector<Workspace>& workspaces) {
  absl::StatusOr<std::string> base = NormalizeBaseUrl(options.upstream_url);
  if (!base.ok()) return base.status();
  options.upstream_url = *base;
  for (const Workspace& ws : workspaces) {
    if (ws.upstream_url.empty()) continue;
    if (absl::StatusOr<std::string> url = NormalizeBaseUrl(ws.upstream_url); !url.ok()) {
      return url.status();
    }
  }
  return std::unique_ptr<Planner>(new Planner(std::move(options)));
}

ratelimit::Limit Planner::LimitOf(absl::string_view rpc) const {
  const ops::Operation* op = ops::FindOperation(rpc);
  ops::RateLimit documented = op != nullptr ? op->limit : ops::RateLimit{};
  return ratelimit::LimitFor(rpc, documented, options_.rate_limits, options_.api_default);
}

absl::StatusOr<upstream::HttpRequest> Planner::Request(const Routed& routed, const CallInfo& info,
                                                       const google::protobuf::Message& request,
                                                       std::string& token) const {
  const Workspace& ws = *routed.workspace;
  absl::StatusOr<upstream::HttpRequest> http = routed.builder->Build(
      request, ws.upstream_url.empty() ? options_.upstream_url : ws.upstream_url);
  if (!http.ok()) return http.status();
  absl::StatusOr<std::string> read = ws.tokens->Token();
  if (!read.ok()) {
    return absl::UnavailableError(
        absl::StrCat("no Segment token for workspace '", ws.name, "': ", read.status().message()));
  }
  token = *std::move(read);
  http->headers.emplace_back("Authorization", absl::StrCat("Bearer ", token));
  http->headers.emplace_back("X-Request-Id", info.request_id);
  AddTraceHeaders(info.trace, &http->headers);
  return http;
}

absl::StatusOr<ExchangeParams> Planner::Plan(const Routed& routed, const CallInfo& info,
                                             const google::protobuf::Message& request) const {
  ExchangeParams params;
  absl::StatusOr<upstream::HttpRequest> http = Request(routed, info, request, params.secret);
  if (!http.ok()) return http.status();
  params.builder = routed.builder;
  params.http = *std::move(http);
  params.lane = absl::StrCat(routed.workspace->name, "/", info.rpc);
  params.limit = LimitOf(info.rpc);
  params.caller = info.caller;
  params.space = info.space;
  params.deadline = routed.deadline;
  return params;
}

}  // namespace sag
