// segment_audiences_client: a C++ client of audiences-gateway (segment.audiences.v1).
//
//   segment_audiences::ClientOptions options;
//   options.address = "localhost:50051";      // default: $AUDIENCES_GATEWAY_ADDR, else this
//   options.workspace = "prod";               // sent as metadata x-segment-workspace
//   segment_audiences::Client client(options);
//
//   segment::audiences::v1::GetAudienceRequest request;
//   request.set_space_id("spa_1");
//   request.set_id("aud_1");
//   absl::StatusOr<segment::audiences::v1::GetAudienceResponse> got = client.GetAudience(request);
//   if (!got.ok()) std::cerr << segment_audiences::FormatError(got.status());
//
// Conventions:
// - Every RPC has a typed method returning absl::StatusOr<Response>. A failed call returns the
//   gRPC status as an absl::Status with the same code and message; the google.rpc details the
//   gateway attached (field violations, retry delay, quota) stay in the status as a payload, read
//   with GetErrorDetails() (errors.h).
// - Deadline: each call gets ClientOptions::timeout (30s) unless CallOptions::timeout says
//   otherwise. The deadline covers the whole call, retries and back-off included.
// - Retries: reads (Get*, List*) failing with UNAVAILABLE are retried with exponential back-off
//   (RetryPolicy: 4 attempts, 100ms doubling up to 2s, +-20% jitter) while the deadline allows.
//   Writes are never retried: a write that failed with UNAVAILABLE may still have happened.
// - The Client is thread-safe; share one per process (it holds one gRPC channel).
#ifndef SEGMENT_AUDIENCES_CLIENT_H_
#define SEGMENT_AUDIENCES_CLIENT_H_

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "segment_audiences/errors.h"

namespace segment_audiences {

namespace v1 = ::segment::audiences::v1;

// The address used when none is given: $AUDIENCES_GATEWAY_ADDR, else "localhost:50051".
std::string DefaultAddress();

// TLS towards the gateway. PEM contents, not file names (see LoadTlsFiles).
struct TlsOptions {
  // Use TLS. Implied when any PEM field below is set.
  bool enabled = false;
  // Trusted roots; empty = the system's roots (or $GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).
  std::string root_certs_pem;
  // Client certificate chain and private key, for mutual TLS. Both or neither.
  std::string client_cert_pem;
  std::string client_key_pem;
  // Name to verify the server certificate against instead of the address's host.
  std::string server_name_override;
};

// Reads PEM files into TlsOptions (enabled = true). Empty names are skipped.
absl::StatusOr<TlsOptions> LoadTlsFiles(const std::string& root_certs_file,
                                        const std::string& client_cert_file,
                                        const std::string& client_key_file);

// Retries of reads that fail with UNAVAILABLE.
struct RetryPolicy {
  int max_attempts = 4;  // Including the first; 1 disables retries.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  double multiplier = 2.0;
  double jitter = 0.2;  // Each pause is the back-off times a random factor in [1-j, 1+j].
};

struct ClientOptions {
  // host:port of the gateway; empty = DefaultAddress().
  std::string address;
  // Workspace name sent as metadata x-segment-workspace on every call; empty = none (the
  // gateway's default workspace).
  std::string workspace;
  // Default deadline of a call (retries included).
  absl::Duration timeout = absl::Seconds(30);
  RetryPolicy retry;
  TlsOptions tls;
  // Metadata added to every call.
  std::vector<std::pair<std::string, std::string>> metadata;
  // Prefix of the user-agent header (e.g. "my-service/1.2").
  std::string user_agent;
  // A ready channel to use instead of creating one from address and tls (tests, interceptors,
  // custom channel arguments). address/tls/user_agent are then ignored.
  std::shared_ptr<grpc::Channel> channel;
};

// What happened during one call (filled when CallOptions::info is set).
struct CallInfo {
  int attempts = 0;   // 1 + the retries made.
  std::string cache;  // Response metadata x-cache of listings (hit|miss|stale|bypass).
};

// Per-call settings; the defaults defer to ClientOptions.
struct CallOptions {
  absl::Duration timeout = absl::ZeroDuration();  // Zero = ClientOptions::timeout.
  std::string workspace;                          // Empty = ClientOptions::workspace.
  bool no_cache = false;                          // Send cache-control: no-cache (listings).
  std::vector<std::pair<std::string, std::string>> metadata;
  CallInfo* info = nullptr;  // Out: attempts, x-cache.
};

// How WaitForAudiencePreview polls.
struct WaitOptions {
  absl::Duration timeout = absl::Minutes(5);                  // Give up after this long.
  absl::Duration initial_interval = absl::Milliseconds(250);  // First pause between polls...
  absl::Duration max_interval = absl::Seconds(2);             // ...growing 1.5x up to this.
  // Called after every poll with the preview and the time waited so far.
  std::function<void(const v1::AudiencePreview&, absl::Duration)> on_poll;
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ClientOptions& options() const { return options_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // The address the client talks to (after DefaultAddress()).
  const std::string& address() const { return address_; }

  // ---- The 14 RPCs (see proto/segment/audiences/v1/audiences.proto). ----
  absl::StatusOr<v1::AddAudienceScheduleToAudienceResponse> AddAudienceScheduleToAudience(
      const v1::AddAudienceScheduleToAudienceRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::CreateAudienceResponse> CreateAudience(
      const v1::CreateAudienceRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::CreateAudiencePreviewResponse> CreateAudiencePreview(
      const v1::CreateAudiencePreviewRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::ForceExecuteAudienceRunResponse> ForceExecuteAudienceRun(
      const v1::ForceExecuteAudienceRunRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::GetAudienceResponse> GetAudience(const v1::GetAudienceRequest& request,
                                                      const CallOptions& options = {});
  absl::StatusOr<v1::GetAudiencePreviewResponse> GetAudiencePreview(
      const v1::GetAudiencePreviewRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::GetAudienceScheduleFromSpaceAndAudienceResponse>
  GetAudienceScheduleFromSpaceAndAudience(
      const v1::GetAudienceScheduleFromSpaceAndAudienceRequest& request,
      const CallOptions& options = {});
  absl::StatusOr<v1::ListAudienceConsumersFromSpaceAndAudienceResponse>
  ListAudienceConsumersFromSpaceAndAudience(
      const v1::ListAudienceConsumersFromSpaceAndAudienceRequest& request,
      const CallOptions& options = {});
  absl::StatusOr<v1::ListAudienceSchedulesFromSpaceAndAudienceResponse>
  ListAudienceSchedulesFromSpaceAndAudience(
      const v1::ListAudienceSchedulesFromSpaceAndAudienceRequest& request,
      const CallOptions& options = {});
  absl::StatusOr<v1::ListAudiencesResponse> ListAudiences(const v1::ListAudiencesRequest& request,
                                                          const CallOptions& options = {});
  absl::StatusOr<v1::RemoveAudienceFromSpaceResponse> RemoveAudienceFromSpace(
      const v1::RemoveAudienceFromSpaceRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::RemoveAudienceScheduleFromAudienceResponse> RemoveAudienceScheduleFromAudience(
      const v1::RemoveAudienceScheduleFromAudienceRequest& request,
      const CallOptions& options = {});
  absl::StatusOr<v1::UpdateAudienceForSpaceResponse> UpdateAudienceForSpace(
      const v1::UpdateAudienceForSpaceRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::UpdateAudienceScheduleForAudienceResponse> UpdateAudienceScheduleForAudience(
      const v1::UpdateAudienceScheduleForAudienceRequest& request, const CallOptions& options = {});

  // ---- Pages. ----
  // Page size used by the walkers when the request sets no pagination.count.
  static constexpr int kDefaultPageSize = 200;

  // Calls `visit` with every page, first to last, following pagination.next until it is absent
  // (each page is one call with its own deadline). `visit` returns false to stop early. The
  // request's pagination.cursor, if set, is the first page.
  absl::Status ForEachAudiencesPage(v1::ListAudiencesRequest request,
                                    absl::FunctionRef<bool(const v1::ListAudiencesResponse&)> visit,
                                    const CallOptions& options = {});
  absl::Status ForEachAudienceConsumersPage(
      v1::ListAudienceConsumersFromSpaceAndAudienceRequest request,
      absl::FunctionRef<bool(const v1::ListAudienceConsumersFromSpaceAndAudienceResponse&)> visit,
      const CallOptions& options = {});

  // Every item of every page.
  absl::StatusOr<std::vector<v1::AudienceSummaryWithAudienceTypeAndLookback>> ListAllAudiences(
      v1::ListAudiencesRequest request, const CallOptions& options = {});
  absl::StatusOr<std::vector<v1::AudienceSummary>> ListAllAudienceConsumers(
      v1::ListAudienceConsumersFromSpaceAndAudienceRequest request,
      const CallOptions& options = {});
  // The schedules listing has no pages in API v65; this is one call, for symmetry.
  absl::StatusOr<std::vector<v1::AudienceSchedule>> ListAllAudienceSchedules(
      const v1::ListAudienceSchedulesFromSpaceAndAudienceRequest& request,
      const CallOptions& options = {});

  // ---- Previews. ----
  // Polls GetAudiencePreview until the preview is COMPLETED or FAILED and returns it (check
  // status() and failure_reason()). DEADLINE_EXCEEDED when still running after wait.timeout.
  // Each poll is a read call with the usual deadline and retries; a poll refused with
  // RESOURCE_EXHAUSTED and a retry delay that fits in the wait is repeated after that delay.
  absl::StatusOr<v1::AudiencePreview> WaitForAudiencePreview(
      const v1::GetAudiencePreviewRequest& request, const WaitOptions& wait = {},
      const CallOptions& options = {});

  // ---- Any RPC by name, with messages of its request/response types (e.g. built from JSON
  // with the generated descriptors). Retries as the typed methods do. ----
  absl::Status Call(absl::string_view rpc, const google::protobuf::Message& request,
                    google::protobuf::Message* response, const CallOptions& options = {});

  // True for the RPCs that only read (Get*, List*): those are retried on UNAVAILABLE.
  static bool IsRead(absl::string_view rpc);

  // The AudiencesService descriptor (RPC names, request/response types).
  static const google::protobuf::ServiceDescriptor* ServiceDescriptor();

 private:
  // Runs `attempt` with a fresh context per attempt, retrying reads on UNAVAILABLE.
  absl::Status Run(absl::string_view rpc, const CallOptions& options,
                   absl::FunctionRef<grpc::Status(grpc::ClientContext*)> attempt);
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Invoke(absl::string_view rpc, Method method, const Request& request,
                                  const CallOptions& options);

  ClientOptions options_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AudiencesService::Stub> stub_;
};

}  // namespace segment_audiences

#endif  // SEGMENT_AUDIENCES_CLIENT_H_
