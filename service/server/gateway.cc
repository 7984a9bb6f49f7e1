#include "service/server/gateway.h"

#include <atomic>
#include <utility>

#include <grpcpp/server_context.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/common/status_util.h"
#include "service/operations/response_decoder.h"

namespace sag {
namespace {

// One call's shared state. Whoever claims it first (the upstream answer, or the caller's
// cancellation) finishes the reactor; the other side then leaves the call alone.
class UnaryCall;
struct CallState {
  UnaryCall* reactor = nullptr;
  std::atomic<bool> claimed{false};
  absl::Mutex mu;
  uint64_t upstream_id ABSL_GUARDED_BY(mu) = 0;
  bool cancelled ABSL_GUARDED_BY(mu) = false;
  upstream::HttpClient* http = nullptr;

  bool Claim() { return !claimed.exchange(true, std::memory_order_acq_rel); }
};

class UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  explicit UnaryCall(std::shared_ptr<CallState> state) : state_(std::move(state)) {
    state_->reactor = this;
  }
  void OnCancel() override {
    if (!state_->Claim()) return;
    uint64_t id;
    {
      absl::MutexLock lock(&state_->mu);
      state_->cancelled = true;
      id = state_->upstream_id;
    }
    if (id != 0) state_->http->Cancel(id);
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled by the caller"));
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<CallState> state_;
};

std::string Redact(std::string text, const std::string& secret) {
  if (secret.size() >= 4 && absl::StrContains(text, secret)) {
    text = absl::StrReplaceAll(text, {{secret, "[redacted]"}});
  }
  return text;
}

}  // namespace

absl::StatusOr<std::string> Gateway::NormalizeBaseUrl(absl::string_view url) {
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

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options,
                                                         upstream::HttpClient* http,
                                                         auth::TokenSource* tokens) {
  absl::StatusOr<std::string> base = NormalizeBaseUrl(options.upstream_url);
  if (!base.ok()) return base.status();
  options.upstream_url = *base;
  std::unique_ptr<Gateway> gw(new Gateway(std::move(options), http, tokens));
  const auto* service = segment::audiences::v1::GetAudienceRequest::descriptor()->file()->FindServiceByName("AudiencesService");
  for (const ops::Operation& op : ops::Operations()) {
    const auto* method = service->FindMethodByName(std::string(op.rpc));
    auto builder = ops::RequestBuilder::Create(op, method);
    if (!builder.ok()) return builder.status();
    gw->builders_.emplace(std::string(op.rpc), std::move(*builder));
  }
  if (static_cast<int>(gw->builders_.size()) != service->method_count()) {
    return absl::InternalError("the operation table does not cover every RPC of the service");
  }
  return gw;
}

grpc::ServerUnaryReactor* Gateway::Handle(absl::string_view rpc,
                                          grpc::CallbackServerContext* context,
                                          const google::protobuf::Message* request,
                                          google::protobuf::Message* response) {
  auto state = std::make_shared<CallState>();
  state->http = http_;
  auto* call = new UnaryCall(state);
  auto fail = [&](const absl::Status& status) {
    if (state->Claim()) call->Finish(ToGrpcStatus(status));
    return call;
  };

  auto it = builders_.find(rpc);
  if (it == builders_.end()) return fail(absl::UnimplementedError(absl::StrCat(rpc)));
  const ops::RequestBuilder& builder = *it->second;

  absl::StatusOr<upstream::HttpRequest> http = builder.Build(*request, options_.upstream_url);
  if (!http.ok()) return fail(http.status());

  absl::StatusOr<std::string> token = tokens_->Token();
  if (!token.ok()) {
    return fail(absl::UnavailableError(
        absl::StrCat("no Segment token for the workspace: ", token.status().message())));
  }
  http->headers.emplace_back("Authorization", absl::StrCat("Bearer ", *token));

  absl::Time now = absl::Now();
  absl::Time deadline = absl::FromChrono(context->deadline());
  bool deadline_bound = deadline - now < options_.upstream_timeout;
  http->timeout = deadline_bound ? deadline - now : options_.upstream_timeout;
  if (http->timeout <= absl::ZeroDuration()) {
    return fail(absl::DeadlineExceededError("the caller's deadline passed before the call"));
  }

  std::unique_ptr<google::protobuf::Message> scratch(response->New());
  auto on_answer = [state, response, secret = *token, deadline_bound,
                    scratch = std::shared_ptr<google::protobuf::Message>(std::move(scratch))](
                       absl::StatusOr<upstream::HttpResponse> answer) {
    if (state->claimed.load(std::memory_order_acquire)) return;  // Cancelled meanwhile.
    absl::Status status;
    if (!answer.ok()) {
      status = answer.status();
      if (absl::IsDeadlineExceeded(status) && !deadline_bound) {
        status = absl::UnavailableError(absl::StrCat("Segment API timeout: ", status.message()));
      } else if (absl::IsDeadlineExceeded(status)) {
        status = absl::DeadlineExceededError(
            absl::StrCat("the caller's deadline passed while waiting for the Segment API")) ;
      }
    } else {
      status = ops::DecodeResponse(*answer, scratch.get(), absl::Now());
    }
    if (!status.ok()) {
      absl::Status redacted(status.code(), Redact(std::string(status.message()), secret));
      status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
        redacted.SetPayload(url, payload);
      });
      status = redacted;
    }
    if (!state->Claim()) return;
    if (status.ok()) response->GetReflection()->Swap(response, scratch.get());
    state->reactor->Finish(ToGrpcStatus(status));
  };

  uint64_t id = http_->Send(*std::move(http), std::move(on_answer));
  bool cancelled;
  {
    absl::MutexLock lock(&state->mu);
    state->upstream_id = id;
    cancelled = state->cancelled;
  }
  if (cancelled) http_->Cancel(id);
  return call;
}

}  // namespace sag
