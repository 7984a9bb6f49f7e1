// Errors are values: absl::Status inside the gateway, converted to grpc::Status once, at the
// edge. google.rpc error details (BadRequest, RetryInfo, QuotaFailure, ...) travel as typed
// payloads of the absl::Status, keyed by their type URL, and become the `details` of the
// google.rpc.Status that gRPC sends in the `grpc-status-details-bin` trailer.
//
// Thread-safe: all functions are pure.
#ifndef SAG_SERVICE_COMMON_STATUS_UTIL_H_
#define SAG_SERVICE_COMMON_STATUS_UTIL_H_

#include <google/protobuf/message.h>
#include <grpcpp/support/status.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sag {

// Returns `status` with `detail` attached as a google.rpc error detail.
absl::Status WithDetail(absl::Status status, const google::protobuf::Message& detail);

// INVALID_ARGUMENT with a google.rpc.BadRequest naming one field.
absl::Status InvalidField(absl::string_view field, absl::string_view description);

// INVALID_ARGUMENT with a google.rpc.BadRequest naming several fields.
struct FieldViolation {
  std::string field;
  std::string description;
};
absl::Status InvalidFields(absl::string_view message,
                           const std::vector<FieldViolation>& violations);

// RESOURCE_EXHAUSTED with a google.rpc.RetryInfo carrying `retry_after`.
absl::Status RetryLater(absl::string_view message, absl::Duration retry_after);

// Converts to a grpc::Status; payloads become google.rpc.Status details.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Reads the google.rpc.Status details back from a grpc::Status (for clients and tests).
// Returns false when there are none or they do not parse.
bool ParseGrpcDetails(const grpc::Status& status, google::protobuf::Message* rpc_status);

}  // namespace sag

#endif  // SAG_SERVICE_COMMON_STATUS_UTIL_H_
