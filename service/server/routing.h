// Stage 1 of the request path, routing: which operation a call is, who is calling, whether they
// may, which Segment workspace serves it, and by when it must be answered.
//
// Promises:
//  - Identify() never fails: every call, even one refused next, gets a start time, a request id
//    (the caller's x-request-id when valid, else a new one, echoed in the initial metadata), its
//    W3C trace context and its space id (cut to the longest valid id), for its log line.
//  - Route() answers from the call's metadata and the configuration only: it reads no token,
//    builds nothing for the upstream and does no I/O. Its errors are the caller's to fix:
//    UNIMPLEMENTED (an RPC with no operation), UNAUTHENTICATED / PERMISSION_DENIED (access
//    rules), INVALID_ARGUMENT / NOT_FOUND (workspace selection, SelectWorkspace), and
//    DEADLINE_EXCEEDED (the caller's deadline already passed).
//  - Create() binds every row of the operation table to its method of
//    segment.audiences.v1.AudiencesService and fails when they disagree, when no workspace is
//    configured, or when a workspace's upstream URL is malformed.
//
// Thread-safe and immutable after Create().
#ifndef SAG_SERVICE_SERVER_ROUTING_H_
#define SAG_SERVICE_SERVER_ROUTING_H_

#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/auth/access.h"
#include "service/auth/token_source.h"
#include "service/common/clock.h"
#include "service/operations/request_builder.h"
#include "service/server/call.h"

namespace grpc {
class CallbackServerContext;
}  // namespace grpc

namespace sag {

// A Segment workspace: its token and the spaces it serves.
struct Workspace {
  std::string name;
  auth::TokenSource* tokens = nullptr;      // Not owned.
  absl::flat_hash_set<std::string> spaces;  // Empty: any space.
  std::string upstream_url;                 // Empty: GatewayOptions::upstream_url.
};

// What routing decided for a call.
struct Routed {
  const ops::RequestBuilder* builder = nullptr;
  const Workspace* workspace = nullptr;
  absl::Time deadline = absl::InfiniteFuture();
};

class Router {
 public:
  // `access` may be null (every caller may call everything); `access` and `clock` are not owned
  // and must outlive the Router.
  static absl::StatusOr<std::unique_ptr<Router>> Create(std::vector<Workspace> workspaces,
                                                        const auth::AccessPolicy* access,
                                                        Clock* clock);

  // The operation bound to `rpc`, or null.
  const ops::RequestBuilder* Builder(absl::string_view rpc) const;

  // The call's identity for its log line (see the promises above).
  void Identify(absl::string_view rpc, grpc::CallbackServerContext* context,
                const google::protobuf::Message& request, CallInfo& info) const;

  // The operation, the caller's identity (into info.caller) and access, the workspace (into
  // info.workspace), the deadline. `info` must have been through Identify().
  absl::StatusOr<Routed> Route(grpc::CallbackServerContext* context, CallInfo& info) const;

  // Picks the workspace of a call: by `requested` name (x-segment-workspace) when given, else
  // by the space id. INVALID_ARGUMENT for an unknown name or an ambiguous space, NOT_FOUND for a
  // space no workspace serves.
  absl::StatusOr<const Workspace*> SelectWorkspace(absl::string_view requested,
                                                   absl::string_view space) const;

  const std::vector<Workspace>& workspaces() const { return workspaces_; }

 private:
  Router(std::vector<Workspace> workspaces, const auth::AccessPolicy* access, Clock* clock)
      : workspaces_(std::move(workspaces)), access_(access), clock_(clock) {}
  // With access control: the caller's identity (into info.caller) and whether it may call.
  absl::Status IdentifyAndAuthorize(grpc::CallbackServerContext* context, CallInfo& info) const;
  // The workspace named `requested`, if it serves `space`.
  absl::StatusOr<const Workspace*> NamedWorkspace(absl::string_view requested,
                                                  absl::string_view space) const;

  const std::vector<Workspace> workspaces_;
  const auth::AccessPolicy* const access_;
  Clock* const clock_;
  absl::flat_hash_map<std::string, std::unique_ptr<ops::RequestBuilder>> builders_;
};

// The value of the caller's metadata `key` ("" when absent; the first when repeated).
std::string Metadata(const grpc::CallbackServerContext* context, absl::string_view key);

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_ROUTING_H_
