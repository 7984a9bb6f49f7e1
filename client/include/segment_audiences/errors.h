// Errors of segment_audiences_client: gRPC statuses as absl::Status, with the google.rpc
// details the gateway attaches (BadRequest, RetryInfo, QuotaFailure, ErrorInfo) readable.
#ifndef SEGMENT_AUDIENCES_ERRORS_H_
#define SEGMENT_AUDIENCES_ERRORS_H_

#include <grpcpp/support/status.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace segment_audiences {

// The absl::Status payload holding the serialized google.rpc.Status of a failed call.
inline constexpr char kStatusDetailsUrl[] = "type.googleapis.com/google.rpc.Status";

// grpc::Status -> absl::Status: same code and message; the details as kStatusDetailsUrl payload.
absl::Status FromGrpcStatus(const grpc::Status& status);
// absl::Status -> grpc::Status, details included.
grpc::Status ToGrpcStatus(const absl::Status& status);

struct FieldViolation {
  std::string field;
  std::string description;
};
struct QuotaViolation {
  std::string subject;
  std::string description;
};

// The google.rpc details of a status, decoded.
struct ErrorDetails {
  std::vector<FieldViolation> field_violations;         // google.rpc.BadRequest
  std::optional<absl::Duration> retry_delay;            // google.rpc.RetryInfo
  std::vector<QuotaViolation> quota_violations;         // google.rpc.QuotaFailure
  std::vector<QuotaViolation> precondition_violations;  // google.rpc.PreconditionFailure
  std::string reason;                                   // google.rpc.ErrorInfo
  std::string domain;
  std::vector<std::string> help_links;  // google.rpc.Help ("description: url")
  std::string request_id;               // google.rpc.RequestInfo
  std::string localized_message;        // google.rpc.LocalizedMessage
  std::vector<std::string> other;       // Type URLs of details not decoded above.
};
ErrorDetails GetErrorDetails(const absl::Status& status);

// "CODE: message" then one indented line per detail, e.g.
//   INVALID_ARGUMENT: Segment API answered HTTP 422: ...
//     field definition.query: is required
//     retry after 1.5s
// Ends with a newline.
std::string FormatError(const absl::Status& status);

}  // namespace segment_audiences

#endif  // SEGMENT_AUDIENCES_ERRORS_H_
