#include "segment_audiences/client.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iterator>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace segment_audiences {
namespace {

constexpr char kServiceName[] = "segment.audiences.v1.AudiencesService";

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const TlsOptions& tls,
                                           const std::string& user_agent) {
  grpc::ChannelArguments args;
  if (!user_agent.empty()) args.SetUserAgentPrefix(user_agent);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  const bool use_tls = tls.enabled || !tls.root_certs_pem.empty() || !tls.client_cert_pem.empty() ||
                       !tls.client_key_pem.empty();
  if (use_tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = tls.root_certs_pem;
    ssl.pem_cert_chain = tls.client_cert_pem;
    ssl.pem_private_key = tls.client_key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!tls.server_name_override.empty()) {
      args.SetSslTargetNameOverride(tls.server_name_override);
    }
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  return grpc::CreateCustomChannel(address, credentials, args);
}

// A uniformly random factor in [1-jitter, 1+jitter].
double JitterFactor(double jitter) {
  if (jitter <= 0) return 1.0;
  thread_local std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> dist(1.0 - jitter, 1.0 + jitter);
  return dist(rng);
}

std::string MetadataValue(const std::multimap<grpc::string_ref, grpc::string_ref>& md,
                          const char* key) {
  auto it = md.find(key);
  return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

}  // namespace

std::string DefaultAddress() {
  const char* env = std::getenv("AUDIENCES_GATEWAY_ADDR");
  return env != nullptr && *env != '\0' ? env : "localhost:50051";
}

absl::StatusOr<TlsOptions> LoadTlsFiles(const std::string& root_certs_file,
                                        const std::string& client_cert_file,
                                        const std::string& client_key_file) {
  TlsOptions tls;
  tls.enabled = true;
  if (client_cert_file.empty() != client_key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate and its key go together: give both or neither");
  }
  struct Item {
    const std::string& file;
    std::string* pem;
  };
  for (const Item& item :
       {Item{root_certs_file, &tls.root_certs_pem}, Item{client_cert_file, &tls.client_cert_pem},
        Item{client_key_file, &tls.client_key_pem}}) {
    if (item.file.empty()) continue;
    absl::StatusOr<std::string> pem = ReadFile(item.file);
    if (!pem.ok()) return pem.status();
    if (pem->find("-----BEGIN") == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(item.file, " is not a PEM file"));
    }
    *item.pem = std::move(*pem);
  }
  return tls;
}

Client::Client(ClientOptions options) : options_(std::move(options)) {
  address_ = options_.address.empty() ? DefaultAddress() : options_.address;
  channel_ = options_.channel != nullptr ? options_.channel
                                         : MakeChannel(address_, options_.tls, options_.user_agent);
  stub_ = v1::AudiencesService::NewStub(channel_);
}

bool Client::IsRead(absl::string_view rpc) {
  return absl::StartsWith(rpc, "Get") || absl::StartsWith(rpc, "List");
}

const google::protobuf::ServiceDescriptor* Client::ServiceDescriptor() {
  return v1::GetAudienceRequest::descriptor()->file()->FindServiceByName("AudiencesService");
}

absl::Status Client::Run(absl::string_view rpc, const CallOptions& options,
                         absl::FunctionRef<grpc::Status(grpc::ClientContext*)> attempt) {
  const absl::Duration timeout =
      options.timeout > absl::ZeroDuration() ? options.timeout : options_.timeout;
  const absl::Time deadline = absl::Now() + timeout;
  const RetryPolicy& retry = options_.retry;
  const int max_attempts = IsRead(rpc) ? std::max(1, retry.max_attempts) : 1;
  const std::string& workspace = options.workspace.empty() ? options_.workspace : options.workspace;
  absl::Duration backoff = retry.initial_backoff;
  for (int n = 1;; ++n) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    if (!workspace.empty()) context.AddMetadata("x-segment-workspace", workspace);
    if (options.no_cache) context.AddMetadata("cache-control", "no-cache");
    for (const auto& [key, value] : options_.metadata) context.AddMetadata(key, value);
    for (const auto& [key, value] : options.metadata) context.AddMetadata(key, value);
    grpc::Status status = attempt(&context);
    if (options.info != nullptr) {
      options.info->attempts = n;
      std::string cache = MetadataValue(context.GetServerInitialMetadata(), "x-cache");
      if (cache.empty()) cache = MetadataValue(context.GetServerTrailingMetadata(), "x-cache");
      options.info->cache = cache;
    }
    if (status.ok()) return absl::OkStatus();
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || n >= max_attempts) {
      return FromGrpcStatus(status);
    }
    const absl::Duration pause = backoff * JitterFactor(retry.jitter);
    if (absl::Now() + pause >= deadline) return FromGrpcStatus(status);
    absl::SleepFor(pause);
    backoff = std::min(backoff * retry.multiplier, retry.max_backoff);
  }
}

template <typename Response, typename Request, typename Method>
absl::StatusOr<Response> Client::Invoke(absl::string_view rpc, Method method,
                                        const Request& request, const CallOptions& options) {
  Response response;
  absl::Status status = Run(rpc, options, [&](grpc::ClientContext* context) {
    response.Clear();
    return ((*stub_).*method)(context, request, &response);
  });
  if (!status.ok()) return status;
  return response;
}

#define SAG_CLIENT_RPC(Rpc)                                                                     \
  absl::StatusOr<v1::Rpc##Response> Client::Rpc(const v1::Rpc##Request& request,                \
                                                const CallOptions& options) {                   \
    return Invoke<v1::Rpc##Response>(#Rpc, &v1::AudiencesService::Stub::Rpc, request, options); \
  }

SAG_CLIENT_RPC(AddAudienceScheduleToAudience)
SAG_CLIENT_RPC(CreateAudience)
SAG_CLIENT_RPC(CreateAudiencePreview)
SAG_CLIENT_RPC(ForceExecuteAudienceRun)
SAG_CLIENT_RPC(GetAudience)
SAG_CLIENT_RPC(GetAudiencePreview)
SAG_CLIENT_RPC(GetAudienceScheduleFromSpaceAndAudience)
SAG_CLIENT_RPC(ListAudienceConsumersFromSpaceAndAudience)
SAG_CLIENT_RPC(ListAudienceSchedulesFromSpaceAndAudience)
SAG_CLIENT_RPC(ListAudiences)
SAG_CLIENT_RPC(RemoveAudienceFromSpace)
SAG_CLIENT_RPC(RemoveAudienceScheduleFromAudience)
SAG_CLIENT_RPC(UpdateAudienceForSpace)
SAG_CLIENT_RPC(UpdateAudienceScheduleForAudience)

#undef SAG_CLIENT_RPC

namespace {

// Follows pagination.next from page to page. `call` makes one call for a request.
template <typename Request, typename Response, typename CallFn>
absl::Status WalkPages(Request request, CallFn call,
                       absl::FunctionRef<bool(const Response&)> visit) {
  if (request.pagination().count() == 0) {
    request.mutable_pagination()->set_count(Client::kDefaultPageSize);
  }
  for (;;) {
    absl::StatusOr<Response> page = call(request);
    if (!page.ok()) return page.status();
    if (!visit(*page)) return absl::OkStatus();
    if (!page->pagination().has_next() || page->pagination().next().empty()) {
      return absl::OkStatus();
    }
    if (request.pagination().has_cursor() &&
        page->pagination().next() == request.pagination().cursor()) {
      return absl::InternalError(absl::StrCat("pagination does not advance: next cursor ",
                                              page->pagination().next(),
                                              " is the cursor just read"));
    }
    request.mutable_pagination()->set_cursor(page->pagination().next());
  }
}

}  // namespace

absl::Status Client::ForEachAudiencesPage(
    v1::ListAudiencesRequest request,
    absl::FunctionRef<bool(const v1::ListAudiencesResponse&)> visit, const CallOptions& options) {
  return WalkPages<v1::ListAudiencesRequest, v1::ListAudiencesResponse>(
      std::move(request),
      [&](const v1::ListAudiencesRequest& r) { return ListAudiences(r, options); }, visit);
}

absl::Status Client::ForEachAudienceConsumersPage(
    v1::ListAudienceConsumersFromSpaceAndAudienceRequest request,
    absl::FunctionRef<bool(const v1::ListAudienceConsumersFromSpaceAndAudienceResponse&)> visit,
    const CallOptions& options) {
  return WalkPages<v1::ListAudienceConsumersFromSpaceAndAudienceRequest,
                   v1::ListAudienceConsumersFromSpaceAndAudienceResponse>(
      std::move(request),
      [&](const v1::ListAudienceConsumersFromSpaceAndAudienceRequest& r) {
        return ListAudienceConsumersFromSpaceAndAudience(r, options);
      },
      visit);
}

absl::StatusOr<std::vector<v1::AudienceSummaryWithAudienceTypeAndLookback>>
Client::ListAllAudiences(v1::ListAudiencesRequest request, const CallOptions& options) {
  std::vector<v1::AudienceSummaryWithAudienceTypeAndLookback> all;
  absl::Status status = ForEachAudiencesPage(
      std::move(request),
      [&all](const v1::ListAudiencesResponse& page) {
        all.insert(all.end(), page.audiences().begin(), page.audiences().end());
        return true;
      },
      options);
  if (!status.ok()) return status;
  return all;
}

absl::StatusOr<std::vector<v1::AudienceSummary>> Client::ListAllAudienceConsumers(
    v1::ListAudienceConsumersFromSpaceAndAudienceRequest request, const CallOptions& options) {
  std::vector<v1::AudienceSummary> all;
  absl::Status status = ForEachAudienceConsumersPage(
      std::move(request),
      [&all](const v1::ListAudienceConsumersFromSpaceAndAudienceResponse& page) {
        all.insert(all.end(), page.audiences().begin(), page.audiences().end());
        return true;
      },
      options);
  if (!status.ok()) return status;
  return all;
}

absl::StatusOr<std::vector<v1::AudienceSchedule>> Client::ListAllAudienceSchedules(
    const v1::ListAudienceSchedulesFromSpaceAndAudienceRequest& request,
    const CallOptions& options) {
  absl::StatusOr<v1::ListAudienceSchedulesFromSpaceAndAudienceResponse> page =
      ListAudienceSchedulesFromSpaceAndAudience(request, options);
  if (!page.ok()) return page.status();
  return std::vector<v1::AudienceSchedule>(page->audience_schedules().begin(),
                                           page->audience_schedules().end());
}

absl::StatusOr<v1::AudiencePreview> Client::WaitForAudiencePreview(
    const v1::GetAudiencePreviewRequest& request, const WaitOptions& wait,
    const CallOptions& options) {
  const absl::Time start = absl::Now();
  const absl::Time give_up = start + wait.timeout;
  absl::Duration interval = wait.initial_interval;
  for (;;) {
    absl::StatusOr<v1::GetAudiencePreviewResponse> got = GetAudiencePreview(request, options);
    absl::Duration pause = interval;
    if (!got.ok()) {
      // Rate limited: wait as told, if that fits in the wait.
      const ErrorDetails details = GetErrorDetails(got.status());
      if (got.status().code() != absl::StatusCode::kResourceExhausted ||
          !details.retry_delay.has_value() || absl::Now() + *details.retry_delay >= give_up) {
        return got.status();
      }
      pause = std::max(*details.retry_delay, interval);
    } else {
      const v1::AudiencePreview& preview = got->audience_preview();
      if (wait.on_poll) wait.on_poll(preview, absl::Now() - start);
      if (preview.status() == v1::AUDIENCE_PREVIEW_STATUS_COMPLETED ||
          preview.status() == v1::AUDIENCE_PREVIEW_STATUS_FAILED) {
        return preview;
      }
      const absl::Time now = absl::Now();
      if (now >= give_up) {
        return absl::DeadlineExceededError(absl::StrCat(
            "audience preview ", request.id(), " is still ",
            absl::StripPrefix(v1::AudiencePreviewStatus_Name(preview.status()),
                              "AUDIENCE_PREVIEW_STATUS_"),
            " after ", absl::FormatDuration(absl::Trunc(now - start, absl::Milliseconds(1))),
            " (wait timeout ", absl::FormatDuration(wait.timeout), ")"));
      }
      interval = std::min(interval * 1.5, wait.max_interval);
    }
    // The last poll happens at give_up (a poll may take longer: it has the call's own deadline).
    absl::SleepFor(std::min(pause, std::max(give_up - absl::Now(), absl::ZeroDuration())));
  }
}

absl::Status Client::Call(absl::string_view rpc, const google::protobuf::Message& request,
                          google::protobuf::Message* response, const CallOptions& options) {
  const google::protobuf::MethodDescriptor* method =
      ServiceDescriptor()->FindMethodByName(std::string(rpc));
  if (method == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown RPC ", rpc));
  }
  if (request.GetDescriptor() != method->input_type() ||
      response->GetDescriptor() != method->output_type()) {
    return absl::InvalidArgumentError(
        absl::StrCat(rpc, " takes ", method->input_type()->full_name(), " and returns ",
                     method->output_type()->full_name()));
  }
  const std::string path = absl::StrCat("/", kServiceName, "/", rpc);
  const std::string bytes = request.SerializeAsString();
  grpc::GenericStub generic(channel_);
  std::string raw;
  absl::Status status = Run(rpc, options, [&](grpc::ClientContext* context) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer in(&slice, 1);
    grpc::ByteBuffer out;
    std::promise<grpc::Status> done;
    generic.UnaryCall(context, path, grpc::StubOptions(), &in, &out,
                      [&done](grpc::Status s) { done.set_value(std::move(s)); });
    grpc::Status s = done.get_future().get();
    raw.clear();
    if (s.ok()) {
      std::vector<grpc::Slice> slices;
      if (!out.Dump(&slices).ok()) {
        return grpc::Status(grpc::StatusCode::INTERNAL, "cannot read the response");
      }
      for (const auto& piece : slices) {
        raw.append(reinterpret_cast<const char*>(piece.begin()), piece.size());
      }
    }
    return s;
  });
  if (!status.ok()) return status;
  response->Clear();
  if (!response->ParseFromString(raw)) {
    return absl::InternalError(
        absl::StrCat("the response does not parse as ", method->output_type()->full_name()));
  }
  return absl::OkStatus();
}

}  // namespace segment_audiences
