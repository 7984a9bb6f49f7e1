#include "service/server/gateway.h"

#include <google/protobuf/message.h>
#include <grpcpp/server_context.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/status_util.h"
#include "service/idempotency/idempotency.h"

namespace sag {

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options,
                                                         const ExchangeEnv* env, GatewayParts parts,
                                                         GatewayObservers observers) {
  PlannerOptions planning{std::move(options.upstream_url), std::move(options.rate_limits),
                          options.api_default};
  absl::StatusOr<std::unique_ptr<Planner>> planner =
      Planner::Create(std::move(planning), options.workspaces);
  if (!planner.ok()) return planner.status();
  absl::StatusOr<std::unique_ptr<Router>> router =
      Router::Create(std::move(options.workspaces), parts.access, env->clock);
  if (!router.ok()) return router.status();
  return std::unique_ptr<Gateway>(
      new Gateway(env, *std::move(router), *std::move(planner), std::move(parts), observers));
}

Gateway::Gateway(const ExchangeEnv* env, std::unique_ptr<Router> router,
                 std::unique_ptr<Planner> planner, GatewayParts parts, GatewayObservers observers)
    : env_(env),
      router_(std::move(router)),
      planner_(std::move(planner)),
      parts_(std::move(parts)),
      answer_(AnswerParts{env->clock, observers.metrics, observers.logger, parts_.cache,
                          parts_.publish_invalidations}),
      auth_state_(std::make_shared<UpstreamAuthState>(observers.upstream_auth)) {}

Exchange::Done Gateway::WatchingAuth(std::string workspace, Exchange::Done done) {
  return [state = auth_state_, workspace = std::move(workspace), done = std::move(done)](
             absl::Status status, std::unique_ptr<google::protobuf::Message> answer,
             const ExchangeReport& report) {
    state->Record(workspace, report.upstream_status);
    done(std::move(status), std::move(answer), report);
  };
}

absl::Status Gateway::ChargeMemory(size_t request_bytes, MemoryBudget::Charge& into) {
  if (env_->memory == nullptr) return absl::OkStatus();
  // The request is held twice while the call lives: parsed, and as the upstream request's body.
  const int64_t bytes = env_->costs.parked + 2 * static_cast<int64_t>(request_bytes);
  absl::StatusOr<MemoryBudget::Charge> charge = env_->memory->TryCharge(bytes);
  if (!charge.ok()) {
    answer_.CountMemoryRefusal();
    return charge.status();
  }
  into = *std::move(charge);
  return absl::OkStatus();
}

absl::Status Gateway::Routing(absl::string_view rpc, grpc::CallbackServerContext* context,
                              const google::protobuf::Message& request, CallInfo& info,
                              MemoryBudget::Charge& memory, Routed& routed) {
  router_->Identify(rpc, context, request, info);
  answer_.Started();
  if (absl::Status charged = ChargeMemory(request.ByteSizeLong(), memory); !charged.ok()) {
    return charged;
  }
  absl::StatusOr<Routed> route = router_->Route(context, info);
  if (!route.ok()) return route.status();
  routed = *route;
  return absl::OkStatus();
}

bool Gateway::Admit(absl::string_view rpc, grpc::CallbackServerContext* context,
                    const google::protobuf::Message& request, Call* call, CallInfo& info,
                    ExchangeParams& params) {
  Routed routed;
  absl::Status status = Routing(rpc, context, request, info, call->memory, routed);
  if (status.ok()) {
    absl::StatusOr<ExchangeParams> planned = planner_->Plan(routed, info, request);
    if (planned.ok()) {
      params = *std::move(planned);
      return true;
    }
    status = planned.status();
  }
  Fail(call, info, status);
  return false;
}

void Gateway::Fail(Call* call, const CallInfo& info, const absl::Status& status) {
  answer_.Report(info, status, ExchangeReport{});
  if (call->Claim()) call->Finish(ToGrpcStatus(status));
}

grpc::ServerUnaryReactor* Gateway::Handle(absl::string_view rpc,
                                          grpc::CallbackServerContext* context,
                                          const google::protobuf::Message* request,
                                          google::protobuf::Message* response) {
  auto info = std::make_shared<CallInfo>();
  auto* call = new Call();
  ExchangeParams params;
  if (!Admit(rpc, context, *request, call, *info, params)) return call;
  const ops::Operation& op = params.builder->op();
  if (!op.idempotent && parts_.idempotency != nullptr &&
      context->client_metadata().count(idempotency::kKeyMetadata) > 0) {
    ServeKeyedWrite(context, call, std::move(info), *request, response, std::move(params));
    return call;
  }
  auto exchange = Exchange::Start(
      env_, std::move(params),
      WatchingAuth(info->workspace,
                   [this, call, request, response, info, &op](
                       absl::Status status, std::unique_ptr<google::protobuf::Message> answer,
                       const ExchangeReport& report) {
                     answer_.InvalidateAfterWrite(info->workspace, op, *request, status);
                     if (!op.idempotent) answer_.Audit(*info, *request, answer.get(), status);
                     answer_.Report(*info, status, report);
                     if (!call->Claim()) return;
                     if (status.ok() && answer != nullptr) {
                       response->GetReflection()->Swap(response, answer.get());
                     }
                     call->Finish(ToGrpcStatus(status));
                   }));
  call->SetExchange(std::move(exchange));
  return call;
}

}  // namespace sag
