// Writes sent with `idempotency-key` (gateway.h; the store's contract is in
// service/idempotency/idempotency.h): the first call with a key runs on its own deadline and
// records its answer; a repeat replays it, or waits for it, parked.
#include <grpcpp/server_context.h>

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/status_util.h"
#include "service/server/gateway.h"

namespace sag {

namespace {

// The caller a key belongs to: the identity the gateway derived, unless that is only the peer
// address (a retry comes from another connection, so another port).
std::string KeyCaller(const grpc::CallbackServerContext* context, const std::string& caller) {
  return caller == context->peer() ? "" : caller;
}

idempotency::Answer ToAnswer(const absl::Status& status,
                             const std::unique_ptr<google::protobuf::Message>& answer) {
  grpc::Status g = ToGrpcStatus(status);
  idempotency::Answer a{static_cast<int>(g.error_code()), g.error_message(), g.error_details(), ""};
  if (status.ok() && answer != nullptr) a.body = answer->SerializeAsString();
  return a;
}

}  // namespace

void Gateway::ServeKeyedWrite(grpc::CallbackServerContext* context, Call* call,
                              std::shared_ptr<CallInfo> info,
                              const google::protobuf::Message& request,
                              google::protobuf::Message* response, ExchangeParams params) {
  idempotency::Store* store = parts_.idempotency;
  auto range = context->client_metadata().equal_range(idempotency::kKeyMetadata);
  std::string key(range.first->second.data(), range.first->second.size());
  absl::Status valid = std::next(range.first) != range.second
                           ? InvalidField(idempotency::kKeyMetadata, "must be sent once")
                           : idempotency::ValidateKey(key);
  Call::ClaimFlag claim = call->claim_flag();
  auto fail = [this, call, claim, info](const absl::Status& status) {
    answer_.Report(*info, status, ExchangeReport{});
    if (Call::Claim(claim)) call->Finish(ToGrpcStatus(status));
  };
  if (!valid.ok()) return fail(valid);
  std::string scope = idempotency::ScopeKey(info->workspace, KeyCaller(context, info->caller), key);
  absl::Time hold_until = std::max(params.deadline, env_->clock->Now() + env_->upstream_timeout);
  auto ready = [this, call, claim, context, response,
                info](absl::StatusOr<idempotency::Answer> answer) {
    Replay(context, call, claim, *info, response, std::move(answer));
  };
  absl::StatusOr<idempotency::Store::Begun> begun = store->Begin(
      scope, idempotency::Fingerprint(info->rpc, request), params.deadline, hold_until, ready);
  if (absl::IsInvalidArgument(begun.status())) {
    return fail(InvalidField(idempotency::kKeyMetadata,
                             absl::StrCat("'", key,
                                          "' was already used for a different request "
                                          "(within its TTL); use a new key")));
  }
  if (!begun.ok()) return fail(begun.status());
  if (begun->state == idempotency::Store::State::kReplay) return ready(begun->answer);
  if (begun->state == idempotency::Store::State::kWait) {
    idempotency::Store::WaiterId waiter = begun->waiter;
    call->SetAbandon([store, waiter](absl::Status why) { store->Abandon(waiter, std::move(why)); });
    return;
  }
  params.deadline = hold_until;  // Completed upstream even when the caller leaves.
  params.deadline_is_callers = false;
  StartKeyedWrite(call, std::move(info), request, response, std::move(params), std::move(scope));
}

void Gateway::Replay(grpc::CallbackServerContext* context, Call* call,
                     const std::shared_ptr<std::atomic<bool>>& claim, const CallInfo& info,
                     google::protobuf::Message* response,
                     absl::StatusOr<idempotency::Answer> answer) {
  absl::Status status = answer.status();
  if (answer.ok()) {
    status = absl::Status(static_cast<absl::StatusCode>(answer->code), answer->message);
  }
  answer_.Report(info, status, ExchangeReport{});
  // The call may be gone (its caller left and it was finished): only the claim's winner uses it.
  if (!Call::Claim(claim)) return;
  if (!answer.ok()) return call->Finish(ToGrpcStatus(answer.status()));
  context->AddInitialMetadata(idempotency::kReplayedMetadata, "true");
  if (answer->code == 0 && !response->ParseFromString(answer->body)) {
    return call->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "a recorded answer is corrupt"));
  }
  call->Finish(
      grpc::Status(static_cast<grpc::StatusCode>(answer->code), answer->message, answer->details));
}

void Gateway::StartKeyedWrite(Call* call, std::shared_ptr<CallInfo> info,
                              const google::protobuf::Message& request,
                              google::protobuf::Message* response, ExchangeParams params,
                              std::string scope) {
  // The exchange may outlive the call (and gRPC's request): it keeps its own copy.
  std::shared_ptr<google::protobuf::Message> owned(request.New());
  owned->CopyFrom(request);
  const ops::Operation& op = params.builder->op();
  Call::ClaimFlag claim = call->claim_flag();
  // Not given to the call (SetExchange): the caller leaving does not abort a keyed write.
  Exchange::Start(
      env_, std::move(params),
      WatchingAuth(info->workspace,
                   [this, call, claim, owned, response, info, &op, scope](
                       absl::Status status, std::unique_ptr<google::protobuf::Message> answer,
                       const ExchangeReport& report) {
                     answer_.InvalidateAfterWrite(info->workspace, op, *owned, status);
                     answer_.Audit(*info, *owned, answer.get(), status);
                     answer_.Report(*info, status, report);
                     // Sent and not refused by a 429: the write may have executed, or was
                     // answered; otherwise the key is free for a retry.
                     bool record = report.attempts > report.requeues_after_429;
                     parts_.idempotency->Finish(scope, ToAnswer(status, answer), record);
                     if (!Call::Claim(claim)) return;
                     if (status.ok() && answer != nullptr) {
                       response->GetReflection()->Swap(response, answer.get());
                     }
                     call->Finish(ToGrpcStatus(status));
                   }));
}

}  // namespace sag
