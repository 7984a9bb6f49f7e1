#include "service/server/gateway.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <atomic>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/cache/keys.h"
#include "service/common/status_util.h"
#include "service/idempotency/idempotency.h"
#include "service/server/trace_context.h"

namespace sag {
namespace {

std::string StringField(const google::protobuf::Message& m, const char* name) {
  const auto* f = m.GetDescriptor()->FindFieldByName(name);
  if (f == nullptr || f->type() != google::protobuf::FieldDescriptor::TYPE_STRING) return "";
  return m.GetReflection()->GetString(m, f);
}

// A write whose outcome is certain not to have changed anything upstream.
bool DefinitelyNotExecuted(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

std::string Metadata(const grpc::CallbackServerContext* context, absl::string_view key) {
  const auto& md = context->client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

// A unary call's reactor. Whoever claims the call first (the exchange's answer, or the caller's
// cancellation) finishes it; the other side then leaves it alone.
class Gateway::Call final : public grpc::ServerUnaryReactor {
 public:
  // Shared with work that may outlive the call (a keyed write): who wins it may still use the
  // call, since the call is only deleted after whoever claimed it finished it.
  using ClaimFlag = std::shared_ptr<std::atomic<bool>>;
  static bool Claim(const ClaimFlag& flag) {
    return !flag->exchange(true, std::memory_order_acq_rel);
  }
  bool Claim() { return Claim(claimed_); }
  ClaimFlag claim_flag() const { return claimed_; }

  // For a listing waiting in the cache: leaving means abandoning the wait.
  void SetAbandon(std::function<void(absl::Status)> abandon) {
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      abandon_ = abandon;
      cancelled = cancelled_;
    }
    if (cancelled) abandon(absl::CancelledError("call cancelled by the caller"));
  }

  void SetExchange(std::shared_ptr<Exchange> exchange) {
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      exchange_ = exchange;
      cancelled = cancelled_;
    }
    if (cancelled) exchange->Cancel();
  }

  void OnCancel() override {
    std::shared_ptr<Exchange> exchange;
    std::function<void(absl::Status)> abandon;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      exchange = exchange_;
      abandon = abandon_;
    }
    if (exchange != nullptr) exchange->Cancel();
    if (abandon) abandon(absl::CancelledError("call cancelled by the caller"));
    if (Claim()) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled by the caller"));
  }

  void OnDone() override { delete this; }

  // The parsed request of a raw (listing) call: lives as long as the call.
  std::unique_ptr<google::protobuf::Message> request;
  // What the call holds of the memory budget, until gRPC is done with it.
  MemoryBudget::Charge memory;

 private:
  const ClaimFlag claimed_ = std::make_shared<std::atomic<bool>>(false);
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Exchange> exchange_ ABSL_GUARDED_BY(mu_);
  std::function<void(absl::Status)> abandon_ ABSL_GUARDED_BY(mu_);
};

struct Gateway::CallInfo {
  std::string rpc;
  std::string workspace;
  std::string caller;
  std::string space;
  std::string request_id;
  TraceContext trace;  // From the caller's traceparent/tracestate (trace_id "" when none).
  absl::Time start;
  std::string cache;  // x-cache value, for listings.
};

void Gateway::Report(const CallInfo& info, const absl::Status& status,
                     const ExchangeReport& report) {
  absl::Duration latency = env_->clock->Now() - info.start;
  absl::string_view code = telemetry::GrpcCodeName(static_cast<int>(status.code()));
  if (telemetry::GatewayMetrics* m = observers_.metrics) {
    m->calls->WithLabels({info.rpc, std::string(code)})->Increment();
    m->call_duration->WithLabels({info.rpc})->ObserveDuration(latency);
    m->calls_in_flight->Get()->Decrement();
    int retries = std::max(0, report.attempts - 1);
    if (retries > 0) m->upstream_retries->WithLabels({info.rpc})->Increment(retries);
  }
  if (telemetry::Logger* log = observers_.logger) {
    telemetry::CallLog line;
    line.level = status.ok() || status.code() == absl::StatusCode::kNotFound ||
                         status.code() == absl::StatusCode::kInvalidArgument
                     ? telemetry::LogLevel::kInfo
                     : telemetry::LogLevel::kWarn;
    if (!log->Enabled(line.level)) return;
    line.rpc = info.rpc;
    line.caller = info.caller;
    line.workspace = info.workspace;
    line.space = info.space;
    line.code = std::string(code);
    line.latency = latency;
    line.upstream_status = static_cast<int>(report.upstream_status);
    line.cache = info.cache;
    line.queue_wait = report.queue_wait;
    line.retries = std::max(0, report.attempts - 1);  // Every resend, 429s included.
    line.request_id = info.request_id;
    line.trace_id = info.trace.trace_id;
    if (!status.ok()) line.error = std::string(status.message());
    log->LogCall(line);
  }
}

Exchange::Done Gateway::WatchingAuth(std::string workspace, Exchange::Done done) {
  return [state = auth_state_, workspace = std::move(workspace), done = std::move(done)](
             absl::Status status, std::unique_ptr<google::protobuf::Message> answer,
             const ExchangeReport& report) {
    state->Record(workspace, report.upstream_status);
    done(std::move(status), std::move(answer), report);
  };
}

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
                                                         const ExchangeEnv* env,
                                                         std::vector<Workspace> workspaces,
                                                         GatewayParts parts,
                                                         GatewayObservers observers) {
  absl::StatusOr<std::string> base = NormalizeBaseUrl(options.upstream_url);
  if (!base.ok()) return base.status();
  options.upstream_url = *base;
  std::unique_ptr<Gateway> gw(
      new Gateway(std::move(options), env, std::move(workspaces), parts, observers));
  const auto* service =
      segment::audiences::v1::GetAudienceRequest::descriptor()->file()->FindServiceByName(
          "AudiencesService");
  for (const ops::Operation& op : ops::Operations()) {
    const auto* method = service->FindMethodByName(std::string(op.rpc));
    auto builder = ops::RequestBuilder::Create(op, method);
    if (!builder.ok()) return builder.status();
    gw->builders_.emplace(std::string(op.rpc), std::move(*builder));
  }
  if (gw->workspaces_.empty()) return absl::InvalidArgumentError("no workspace configured");
  for (const Workspace& ws : gw->workspaces_) {
    if (!ws.upstream_url.empty()) {
      absl::StatusOr<std::string> url = NormalizeBaseUrl(ws.upstream_url);
      if (!url.ok()) return url.status();
    }
  }
  if (static_cast<int>(gw->builders_.size()) != service->method_count()) {
    return absl::InternalError("the operation table does not cover every RPC of the service");
  }
  return gw;
}

void Gateway::InvalidateAfterWrite(const std::string& workspace, const ops::Operation& op,
                                   const google::protobuf::Message& request,
                                   const absl::Status& status) {
  if (parts_.cache == nullptr || op.invalidates.empty() || DefinitelyNotExecuted(status)) return;
  std::string audience = op.rpc == "CreateAudience" ? "" : StringField(request, "id");
  if (audience.empty()) audience = StringField(request, "audience_id");
  std::vector<std::string> tags = cache::InvalidationTags(
      workspace, StringField(request, "space_id"), audience, op.invalidates);
  for (const std::string& tag : tags) parts_.cache->Invalidate(tag);
  if (parts_.publish_invalidations) parts_.publish_invalidations(tags);
}

void Gateway::Audit(const CallInfo& info, const google::protobuf::Message& request,
                    const google::protobuf::Message* response, const absl::Status& status) {
  if (observers_.logger == nullptr) return;
  nlohmann::ordered_json fields = {
      {"caller", info.caller},
      {"rpc", info.rpc},
      {"workspace", info.workspace},
      {"space", info.space},
      {"code", std::string(telemetry::GrpcCodeName(static_cast<int>(status.code())))},
      {"request_id", info.request_id}};
  for (const char* id : {"id", "audience_id", "schedule_id"}) {
    std::string value = StringField(request, id);
    if (!value.empty() && value.size() <= ops::kMaxIdLength) fields[id] = value;
  }
  if (response != nullptr && status.ok()) {
    // The id a create made: the first `id` found one level down (audience, schedule, preview).
    const auto* d = response->GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const auto* f = d->field(i);
      if (f->message_type() == nullptr || f->is_repeated()) continue;
      if (!response->GetReflection()->HasField(*response, f)) continue;
      std::string created = StringField(response->GetReflection()->GetMessage(*response, f), "id");
      if (!created.empty()) {
        fields["result_id"] = created;
        break;
      }
    }
  }
  if (!status.ok()) fields["error"] = std::string(status.message());
  observers_.logger->Info("audit", fields);
}

absl::StatusOr<const Workspace*> Gateway::SelectWorkspace(absl::string_view requested,
                                                          absl::string_view space) const {
  if (!requested.empty()) {
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

ratelimit::Limit Gateway::LimitOf(absl::string_view rpc) const {
  const ops::Operation* op = ops::FindOperation(rpc);
  ops::RateLimit documented = op != nullptr ? op->limit : ops::RateLimit{};
  return ratelimit::LimitFor(rpc, documented, options_.rate_limits, options_.api_default);
}

absl::Status Gateway::ChargeMemory(Call* call, size_t request_bytes) {
  if (env_->memory == nullptr) return absl::OkStatus();
  // The request is held twice while the call lives: parsed, and as the upstream request's body.
  const int64_t bytes = env_->costs.parked + 2 * static_cast<int64_t>(request_bytes);
  absl::StatusOr<MemoryBudget::Charge> charge = env_->memory->TryCharge(bytes);
  if (!charge.ok()) {
    if (observers_.metrics != nullptr) observers_.metrics->memory_refused->Get()->Increment();
    return charge.status();
  }
  call->memory = *std::move(charge);
  return absl::OkStatus();
}

bool Gateway::Route(absl::string_view rpc, grpc::CallbackServerContext* context,
                    const google::protobuf::Message& request, Call* call, CallInfo& info,
                    Routed& routed) {
  StartInfo(rpc, context, request, info);
  auto fail = [this, call, &info](const absl::Status& status) {
    Fail(call, info, status);
    return false;
  };
  if (absl::Status memory = ChargeMemory(call, request.ByteSizeLong()); !memory.ok()) {
    return fail(memory);
  }
  auto it = builders_.find(rpc);
  if (it == builders_.end()) return fail(absl::UnimplementedError(absl::StrCat(rpc)));
  routed.builder = it->second.get();
  if (absl::Status who = IdentifyAndAuthorize(context, info); !who.ok()) return fail(who);
  absl::StatusOr<const Workspace*> selected =
      SelectWorkspace(Metadata(context, "x-segment-workspace"), info.space);
  if (!selected.ok()) return fail(selected.status());
  routed.workspace = *selected;
  info.workspace = routed.workspace->name;
  routed.deadline = absl::FromChrono(context->deadline());
  if (routed.deadline <= env_->clock->Now()) {
    return fail(absl::DeadlineExceededError("the caller's deadline passed before the call"));
  }
  return true;
}

void Gateway::StartInfo(absl::string_view rpc, grpc::CallbackServerContext* context,
                        const google::protobuf::Message& request, CallInfo& info) {
  info.start = env_->clock->Now();
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
  if (observers_.metrics != nullptr) observers_.metrics->calls_in_flight->Get()->Increment();
}

absl::Status Gateway::IdentifyAndAuthorize(grpc::CallbackServerContext* context, CallInfo& info) {
  if (parts_.access == nullptr) return absl::OkStatus();
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
  absl::StatusOr<std::string> caller = parts_.access->Identify(peer);
  if (!caller.ok()) return caller.status();
  info.caller = *caller;
  return parts_.access->Authorize(*caller, info.rpc, info.space);
}

absl::Status Gateway::Plan(const Routed& routed, const CallInfo& info,
                           const google::protobuf::Message& request, ExchangeParams& params) {
  const Workspace& ws = *routed.workspace;
  absl::StatusOr<upstream::HttpRequest> http = routed.builder->Build(
      request, ws.upstream_url.empty() ? options_.upstream_url : ws.upstream_url);
  if (!http.ok()) return http.status();
  absl::StatusOr<std::string> token = ws.tokens->Token();
  if (!token.ok()) {
    return absl::UnavailableError(
        absl::StrCat("no Segment token for workspace '", ws.name, "': ", token.status().message()));
  }
  http->headers.emplace_back("Authorization", absl::StrCat("Bearer ", *token));
  http->headers.emplace_back("X-Request-Id", info.request_id);
  AddTraceHeaders(info.trace, &http->headers);
  params.builder = routed.builder;
  params.http = *std::move(http);
  params.secret = *std::move(token);
  params.lane = absl::StrCat(ws.name, "/", info.rpc);
  params.limit = LimitOf(info.rpc);
  params.caller = info.caller;
  params.space = info.space;
  params.deadline = routed.deadline;
  return absl::OkStatus();
}

bool Gateway::Admit(absl::string_view rpc, grpc::CallbackServerContext* context,
                    const google::protobuf::Message& request, Call* call, CallInfo& info,
                    ExchangeParams& params) {
  Routed routed;
  if (!Route(rpc, context, request, call, info, routed)) return false;
  absl::Status planned = Plan(routed, info, request, params);
  if (planned.ok()) return true;
  Fail(call, info, planned);
  return false;
}

void Gateway::Fail(Call* call, const CallInfo& info, const absl::Status& status) {
  Report(info, status, ExchangeReport{});
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
                     InvalidateAfterWrite(info->workspace, op, *request, status);
                     if (!op.idempotent) Audit(*info, *request, answer.get(), status);
                     Report(*info, status, report);
                     if (!call->Claim()) return;
                     if (status.ok() && answer != nullptr) {
                       response->GetReflection()->Swap(response, answer.get());
                     }
                     call->Finish(ToGrpcStatus(status));
                   }));
  call->SetExchange(std::move(exchange));
  return call;
}

grpc::ServerUnaryReactor* Gateway::HandleListing(absl::string_view rpc,
                                                 grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  auto* call = new Call();
  auto it = builders_.find(rpc);
  if (it == builders_.end()) {
    call->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, std::string(rpc)));
    return call;
  }
  call->request.reset(google::protobuf::MessageFactory::generated_factory()
                          ->GetPrototype(it->second->method()->input_type())
                          ->New());
  grpc::ByteBuffer bytes(*request);  // Shares the slices; the reader consumes the copy.
  grpc::ProtoBufferReader reader(&bytes);
  if (!reader.status().ok() || !call->request->ParseFromZeroCopyStream(&reader)) {
    call->Finish(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("the request is not a valid ", call->request->GetTypeName(), " message")));
    return call;
  }
  auto info = std::make_shared<CallInfo>();
  Routed routed;
  if (!Route(rpc, context, *call->request, call, *info, routed)) return call;
  ServeListing(context, call, std::move(info), *call->request, response, routed);
  return call;
}

namespace {

// Points `out` at `bytes` without copying them: the slice holds a reference to the string.
void ShareInto(const cache::ListingCache::Bytes& bytes, grpc::ByteBuffer* out) {
  auto* held = new cache::ListingCache::Bytes(bytes);
  grpc::Slice slice(
      const_cast<char*>((*held)->data()), (*held)->size(),
      [](void* p) { delete static_cast<cache::ListingCache::Bytes*>(p); }, held);
  grpc::ByteBuffer buffer(&slice, 1);
  out->Swap(&buffer);
}

// An exchange's answer as the bytes of its response message.
absl::StatusOr<std::string> Serialized(absl::Status status,
                                       const std::unique_ptr<google::protobuf::Message>& answer) {
  if (!status.ok()) return status;
  if (answer == nullptr) return absl::InternalError("the upstream call produced no answer");
  std::string bytes;
  if (!answer->SerializeToString(&bytes)) return absl::InternalError("answer does not serialize");
  return bytes;
}

}  // namespace

void Gateway::ServeListing(grpc::CallbackServerContext* context, Call* call,
                           std::shared_ptr<CallInfo> info, const google::protobuf::Message& request,
                           grpc::ByteBuffer* response, const Routed& routed) {
  // A workspace whose token the API rejects gets no listing from the cache: its callers see the
  // real error (upstream_auth.h).
  const bool bypass =
      parts_.cache == nullptr || auth_state_->Rejected(info->workspace) ||
      absl::StrContains(absl::AsciiStrToLower(Metadata(context, "cache-control")), "no-cache");
  std::string key;
  if (parts_.cache != nullptr) {
    key = ListingKey(*info, request);
    // The common case first, with nothing built for a fetch that will not happen.
    if (!bypass) {
      if (std::optional<cache::ListingCache::Bytes> hit = parts_.cache->FreshHit(key)) {
        AnswerListing(context, call, response, *info, *std::move(hit), cache::Outcome::kHit,
                      ExchangeReport{});
        return;
      }
    }
  }
  // Upstream planning, only now that the listing may be fetched.
  ExchangeParams params;
  if (absl::Status planned = Plan(routed, *info, request, params); !planned.ok()) {
    Fail(call, *info, planned);
    return;
  }
  auto report = std::make_shared<ExchangeReport>();
  auto timer = std::make_shared<std::atomic<Timers::TimerId>>(0);
  Timers* timers = env_->timers;
  cache::ListingCache::Done finished = [this, context, call, response, info, report, timer, timers](
                                           absl::StatusOr<cache::ListingCache::Bytes> value,
                                           cache::Outcome outcome) {
    if (Timers::TimerId t = timer->exchange(0); t != 0) timers->Cancel(t);
    AnswerListing(context, call, response, *info, std::move(value), outcome, *report);
  };
  if (parts_.cache == nullptr) {
    FetchUncached(call, *info, std::move(params), std::move(finished), std::move(report));
    return;
  }
  cache::ListingCache::Lookup lookup;
  lookup.key = std::move(key);
  lookup.tags =
      cache::ListingTags(info->workspace, info->space, info->rpc,
                         info->rpc == cache::kListAudiences ? "" : StringField(request, "id"));
  lookup.bypass = bypass;
  cache::ListingCache::WaiterId waiter = parts_.cache->Get(
      lookup, SharedFetch(info->workspace, std::move(params), report), std::move(finished));
  if (waiter != cache::ListingCache::kNoWaiter) WatchListingWait(context, call, waiter, timer);
}

std::string Gateway::ListingKey(const CallInfo& info, const google::protobuf::Message& request) {
  std::string canonical;
  {
    google::protobuf::io::StringOutputStream out(&canonical);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    request.SerializeToCodedStream(&coded);
  }
  return cache::MakeKey(info.workspace, info.space, info.rpc, canonical);
}

void Gateway::AnswerListing(grpc::CallbackServerContext* context, Call* call,
                            grpc::ByteBuffer* response, CallInfo& info,
                            absl::StatusOr<cache::ListingCache::Bytes> value,
                            cache::Outcome outcome, const ExchangeReport& report) {
  info.cache = std::string(cache::OutcomeName(outcome));
  if (observers_.metrics != nullptr && parts_.cache != nullptr) {
    observers_.metrics->cache_requests->WithLabels({info.rpc, info.cache})->Increment();
  }
  const bool upstream = outcome == cache::Outcome::kMiss || outcome == cache::Outcome::kBypass;
  Report(info, value.status(), upstream ? report : ExchangeReport{});
  if (!call->Claim()) return;
  context->AddInitialMetadata("x-cache", info.cache);
  if (value.ok()) ShareInto(*value, response);
  call->Finish(ToGrpcStatus(value.status()));
}

void Gateway::FetchUncached(Call* call, const CallInfo& info, ExchangeParams params,
                            cache::ListingCache::Done finished,
                            std::shared_ptr<ExchangeReport> report) {
  // No cache configured: a plain exchange on the caller's deadline, answered as a bypass.
  auto exchange = Exchange::Start(
      env_, std::move(params),
      WatchingAuth(info.workspace, [finished = std::move(finished), report](
                                       absl::Status status,
                                       std::unique_ptr<google::protobuf::Message> answer,
                                       const ExchangeReport& r) {
        *report = r;
        absl::StatusOr<std::string> bytes = Serialized(std::move(status), answer);
        if (!bytes.ok()) return finished(bytes.status(), cache::Outcome::kBypass);
        finished(std::make_shared<const std::string>(*std::move(bytes)), cache::Outcome::kBypass);
      }));
  call->SetExchange(std::move(exchange));
}

cache::ListingCache::Fetch Gateway::SharedFetch(std::string workspace, ExchangeParams params,
                                                std::shared_ptr<ExchangeReport> report) {
  // The shared upstream call: not bound to any one caller's deadline or cancellation.
  params.deadline = env_->clock->Now() + env_->upstream_timeout;
  params.deadline_is_callers = false;
  return [this, params = std::move(params), report,
          workspace = std::move(workspace)](cache::ListingCache::FetchDone done) {
    Exchange::Start(
        env_, params,
        WatchingAuth(workspace, [done, report](absl::Status status,
                                               std::unique_ptr<google::protobuf::Message> answer,
                                               const ExchangeReport& r) {
          *report = r;
          done(Serialized(std::move(status), answer));
        }));
  };
}

void Gateway::WatchListingWait(grpc::CallbackServerContext* context, Call* call,
                               cache::ListingCache::WaiterId waiter,
                               const std::shared_ptr<std::atomic<Timers::TimerId>>& timer) {
  // Leave the wait at the caller's deadline (a stale answer beats none) or on cancellation.
  cache::ListingCache* listing_cache = parts_.cache;
  absl::Time deadline = absl::FromChrono(context->deadline());
  absl::Duration left = deadline - env_->clock->Now();
  absl::Duration margin = std::min(absl::Milliseconds(100), left / 10);
  if (deadline != absl::InfiniteFuture()) {
    timer->store(env_->timers->Schedule(deadline - margin, [listing_cache, waiter] {
      listing_cache->Abandon(waiter, absl::DeadlineExceededError(
                                         "the caller's deadline passed waiting for the listing"));
    }));
  }
  call->SetAbandon([listing_cache, waiter](absl::Status why) {
    listing_cache->Abandon(waiter, std::move(why));
  });
}

// --- Idempotent writes (idempotency-key); see service/idempotency/idempotency.h. ---

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
    Report(*info, status, ExchangeReport{});
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
  Report(info, status, ExchangeReport{});
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
                     InvalidateAfterWrite(info->workspace, op, *owned, status);
                     Audit(*info, *owned, answer.get(), status);
                     Report(*info, status, report);
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
