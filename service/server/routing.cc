#include "service/server/routing.h"

#include <grpcpp/server_context.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/common/status_util.h"
#include "service/operations/operation_table.h"
#include "service/telemetry/logger.h"

namespace sag {

std::string Metadata(const grpc::CallbackServerContext* context, absl::string_view key) {
  const auto& md = context->client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

absl::StatusOr<std::unique_ptr<Router>> Router::Create(std::vector<Workspace> workspaces,
                                                       const auth::AccessPolicy* access,
                                                       Clock* clock) {
  if (workspaces.empty()) return absl::InvalidArgumentError("no workspace configured");
  std::unique_ptr<Router> router(new Router(std::move(workspaces), access, clock));
  const auto* service =
      segment::audiences::v1::GetAudienceRequest::descriptor()->file()->FindServiceByName(
          "AudiencesService");
  for (const ops::Operation& op : ops::Operations()) {
    const auto* method = service->FindMethodByName(std::string(op.rpc));
    auto builder = ops::RequestBuilder::Create(op, method);
    if (!builder.ok()) return builder.status();
    router->builders_.emplace(std::string(op.rpc), std::move(*builder));
  }
  if (static_cast<int>(router->builders_.size()) != service->method_count()) {
    return absl::InternalError("the operation table does not cover every RPC of the service");
  }
  return router;
}

const ops::RequestBuilder* Router::Builder(absl::string_view rpc) const {
  auto it = builders_.find(rpc);
  return it == builders_.end() ? nullptr : it->second.get();
}

void Router::Identify(absl::string_view rpc, grpc::CallbackServerContext* context,
                      const google::protobuf::Message& request, CallInfo& info) const {
  info.start = clock_->Now();
  info.rpc = std::string(rpc);
  info.caller = Metadata(context, "x-caller-id");
  if (info.caller.empty()) info.caller = context->peer();
  info.request_id = Metadata(context, "x-request-id");
  if (!telemetry::IsValidRequestId(info.request_id)) info.request_id = telemetry::NewRequestId();
  context->AddInitialMetadata("x-request-id", info.request_id);
  info.trace = TraceContextFromMetadata(context->client_metadata());
  const auto* space_field = request.GetDescriptor()->FindFieldByName("space_id");
  if (space_field != nullptr) {
    info.space = request.GetReflection()->GetString(request, space_field);
    if (info.space.size() > ops::kMaxIdLength) info.space.resize(ops::kMaxIdLength);
  }
}

absl::StatusOr<Routed> Router::Route(grpc::CallbackServerContext* context, CallInfo& info) const {
  Routed routed;
  routed.builder = Builder(info.rpc);
  if (routed.builder == nullptr) return absl::UnimplementedError(info.rpc);
  if (absl::Status who = IdentifyAndAuthorize(context, info); !who.ok()) return who;
  absl::StatusOr<const Workspace*> selected =
      SelectWorkspace(Metadata(context, "x-segment-workspace"), info.space);
  if (!selected.ok()) return selected.status();
  routed.workspace = *selected;
  info.workspace = routed.workspace->name;
  routed.deadline = absl::FromChrono(context->deadline());
  if (routed.deadline <= clock_->Now()) {
    return absl::DeadlineExceededError("the caller's deadline passed before the call");
  }
  return routed;
}

absl::Status Router::IdentifyAndAuthorize(grpc::CallbackServerContext* context,
                                          CallInfo& info) const {
  if (access_ == nullptr) return absl::OkStatus();
  auth::PeerInfo peer;
  auto auth_context = context->auth_context();
  if (auth_context != nullptr && auth_context->IsPeerAuthenticated()) {
    for (const char* property : {"x509_subject_alternative_name", "x509_common_name"}) {
      for (const auto& v : auth_context->FindPropertyValues(property)) {
        peer.cert_names.emplace_back(v.data(), v.size());
      }
    }
  }
  peer.api_key = Metadata(context, "x-api-key");
  peer.caller_id_hint = Metadata(context, "x-caller-id");
  peer.address = context->peer();
  absl::StatusOr<std::string> caller = access_->Identify(peer);
  if (!caller.ok()) return caller.status();
  info.caller = *caller;
  return access_->Authorize(*caller, info.rpc, info.space);
}

absl::StatusOr<const Workspace*> Router::NamedWorkspace(absl::string_view requested,
                                                        absl::string_view space) const {
  for (const Workspace& ws : workspaces_) {
    if (ws.name != requested) continue;
    if (!ws.spaces.empty() && !ws.spaces.contains(space)) {
      return absl::NotFoundError(
          absl::StrCat("space '", space, "' is not served by workspace '", ws.name, "'"));
    }
    return &ws;
  }
  std::string known;
  for (const Workspace& ws : workspaces_)
    absl::StrAppend(&known, known.empty() ? "" : ", ", ws.name);
  return InvalidField("x-segment-workspace",
                      absl::StrCat("unknown workspace; configured: ", known));
}

absl::StatusOr<const Workspace*> Router::SelectWorkspace(absl::string_view requested,
                                                         absl::string_view space) const {
  if (!requested.empty()) return NamedWorkspace(requested, space);
  const Workspace* match = nullptr;
  const Workspace* catch_all = nullptr;
  int catch_alls = 0;
  for (const Workspace& ws : workspaces_) {
    if (ws.spaces.contains(space)) {
      if (match != nullptr) {
        return InvalidField("x-segment-workspace",
                            absl::StrCat("space '", space, "' is served by workspaces '",
                                         match->name, "' and '", ws.name, "'; name one"));
      }
      match = &ws;
    } else if (ws.spaces.empty()) {
      catch_all = &ws;
      ++catch_alls;
    }
  }
  if (match != nullptr) return match;
  if (catch_alls == 1) return catch_all;
  if (catch_alls > 1) {
    return InvalidField("x-segment-workspace",
                        "several workspaces serve any space; name one with x-segment-workspace");
  }
  return absl::NotFoundError(
      absl::StrCat("space '", space, "' is not served by any configured workspace"));
}

}  // namespace sag
