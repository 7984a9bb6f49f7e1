#include "service/common/status_util.h"

#include <utility>

#include <google/protobuf/any.pb.h>
#include <google/protobuf/duration.pb.h>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace sag {
namespace {
constexpr absl::string_view kTypeUrlPrefix = "type.googleapis.com/";
}  // namespace

absl::Status WithDetail(absl::Status status, const google::protobuf::Message& detail) {
  status.SetPayload(absl::StrCat(kTypeUrlPrefix, detail.GetDescriptor()->full_name()),
                    absl::Cord(detail.SerializeAsString()));
  return status;
}

absl::Status InvalidField(absl::string_view field, absl::string_view description) {
  return InvalidFields(absl::StrCat(field, ": ", description),
                       {{std::string(field), std::string(description)}});
}

absl::Status InvalidFields(absl::string_view message,
                           const std::vector<FieldViolation>& violations) {
  google::rpc::BadRequest bad;
  for (const auto& v : violations) {
    auto* fv = bad.add_field_violations();
    fv->set_field(v.field);
    fv->set_description(v.description);
  }
  return WithDetail(absl::InvalidArgumentError(message), bad);
}

absl::Status RetryLater(absl::string_view message, absl::Duration retry_after) {
  google::rpc::RetryInfo info;
  if (retry_after < absl::ZeroDuration()) retry_after = absl::ZeroDuration();
  int64_t nanos = absl::ToInt64Nanoseconds(retry_after);
  info.mutable_retry_delay()->set_seconds(nanos / 1000000000);
  info.mutable_retry_delay()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return WithDetail(absl::ResourceExhaustedError(message), info);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  google::rpc::Status rpc_status;
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    if (type_url.substr(0, kTypeUrlPrefix.size()) != kTypeUrlPrefix) return;
    auto* any = rpc_status.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::string(payload));
  });
  if (rpc_status.details_size() == 0) return grpc::Status(code, message);
  rpc_status.set_code(static_cast<int>(code));
  rpc_status.set_message(message);
  return grpc::Status(code, message, rpc_status.SerializeAsString());
}

bool ParseGrpcDetails(const grpc::Status& status, google::protobuf::Message* rpc_status) {
  if (status.error_details().empty()) return false;
  return rpc_status->ParseFromString(status.error_details());
}

}  // namespace sag
