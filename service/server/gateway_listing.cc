// The listing front end of the Gateway (gateway.h): a cacheable listing is parsed from its wire
// bytes, routed, then answered from the cache (a fresh hit: the stored bytes themselves, nothing
// planned), or planned and fetched once for every caller waiting on its key (singleflight),
// or fetched straight on the caller's deadline when no cache is configured.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/cache/keys.h"
#include "service/common/status_util.h"
#include "service/server/gateway.h"

namespace sag {

grpc::ServerUnaryReactor* Gateway::HandleListing(absl::string_view rpc,
                                                 grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  const ops::RequestBuilder* builder = router_->Builder(rpc);
  if (builder == nullptr) {
    return FinishedAtOnce(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, std::string(rpc)));
  }
  std::unique_ptr<google::protobuf::Message> parsed(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(builder->method()->input_type())
          ->New());
  grpc::ByteBuffer bytes(*request);  // Shares the slices; the reader consumes the copy.
  grpc::ProtoBufferReader reader(&bytes);
  if (!reader.status().ok() || !parsed->ParseFromZeroCopyStream(&reader)) {
    return FinishedAtOnce(context, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                                absl::StrCat("the request is not a valid ",
                                                             parsed->GetTypeName(), " message")));
  }
  auto info = std::make_shared<CallInfo>();
  MemoryBudget::Charge memory;
  Routed routed;
  if (absl::Status status = Routing(rpc, context, *parsed, *info, memory, routed); !status.ok()) {
    answer_.Report(*info, status, ExchangeReport{});
    return FinishedAtOnce(context, ToGrpcStatus(status));
  }
  ListingLookup lookup = LookUp(context, *info, *parsed);
  if (lookup.hit.has_value()) return AnswerFreshHit(context, response, *info, *lookup.hit);
  auto* call = new Call();
  call->request = std::move(parsed);
  call->memory = std::move(memory);
  ServeListing(context, call, std::move(info), *call->request, response, routed, std::move(lookup));
  return call;
}

grpc::ServerUnaryReactor* Gateway::FinishedAtOnce(grpc::CallbackServerContext* context,
                                                  const grpc::Status& status) {
  // gRPC's default reactor: nothing to cancel, and its completion runs inline (no executor hop).
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

Gateway::ListingLookup Gateway::LookUp(grpc::CallbackServerContext* context, const CallInfo& info,
                                       const google::protobuf::Message& request) {
  ListingLookup lookup;
  // A workspace whose token the API rejects gets no listing from the cache: its callers see the
  // real error (upstream_auth.h).
  lookup.bypass =
      parts_.cache == nullptr || auth_state_->Rejected(info.workspace) ||
      absl::StrContains(absl::AsciiStrToLower(Metadata(context, "cache-control")), "no-cache");
  if (parts_.cache == nullptr) return lookup;
  lookup.key = ListingKey(info, request);
  if (!lookup.bypass) lookup.hit = parts_.cache->FreshHit(lookup.key);
  return lookup;
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
                           grpc::ByteBuffer* response, const Routed& routed, ListingLookup lookup) {
  // Upstream planning, only now that the listing may be fetched.
  absl::StatusOr<ExchangeParams> params = planner_->Plan(routed, *info, request);
  if (!params.ok()) {
    Fail(call, *info, params.status());
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
    FetchUncached(call, *info, *std::move(params), std::move(finished), std::move(report));
    return;
  }
  cache::ListingCache::Lookup get;
  get.key = std::move(lookup.key);
  get.tags =
      cache::ListingTags(info->workspace, info->space, info->rpc,
                         info->rpc == cache::kListAudiences ? "" : StringField(request, "id"));
  get.bypass = lookup.bypass;
  cache::ListingCache::WaiterId waiter = parts_.cache->Get(
      get, SharedFetch(info->workspace, *std::move(params), report), std::move(finished));
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

void Gateway::ReportListing(CallInfo& info, cache::Outcome outcome, const absl::Status& status,
                            const ExchangeReport& report) {
  info.cache = std::string(cache::OutcomeName(outcome));
  answer_.CountCacheOutcome(info);
  const bool upstream = outcome == cache::Outcome::kMiss || outcome == cache::Outcome::kBypass;
  answer_.Report(info, status, upstream ? report : ExchangeReport{});
}

void Gateway::AnswerListing(grpc::CallbackServerContext* context, Call* call,
                            grpc::ByteBuffer* response, CallInfo& info,
                            absl::StatusOr<cache::ListingCache::Bytes> value,
                            cache::Outcome outcome, const ExchangeReport& report) {
  ReportListing(info, outcome, value.status(), report);
  if (!call->Claim()) return;
  context->AddInitialMetadata("x-cache", info.cache);
  if (value.ok()) ShareInto(*value, response);
  call->Finish(ToGrpcStatus(value.status()));
}

grpc::ServerUnaryReactor* Gateway::AnswerFreshHit(grpc::CallbackServerContext* context,
                                                  grpc::ByteBuffer* response, CallInfo& info,
                                                  const cache::ListingCache::Bytes& hit) {
  ReportListing(info, cache::Outcome::kHit, absl::OkStatus(), ExchangeReport{});
  context->AddInitialMetadata("x-cache", info.cache);
  ShareInto(hit, response);
  return FinishedAtOnce(context, grpc::Status::OK);
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

}  // namespace sag
