#include "segment_audiences/errors.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace segment_audiences {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  if (!status.error_details().empty()) {
    out.SetPayload(kStatusDetailsUrl, absl::Cord(status.error_details()));
  }
  return out;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string details;
  if (auto payload = status.GetPayload(kStatusDetailsUrl); payload.has_value()) {
    details = std::string(*payload);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      details);
}

ErrorDetails GetErrorDetails(const absl::Status& status) {
  ErrorDetails out;
  auto payload = status.GetPayload(kStatusDetailsUrl);
  if (!payload.has_value()) return out;
  google::rpc::Status rpc_status;
  if (!rpc_status.ParseFromString(std::string(*payload))) return out;
  for (const auto& any : rpc_status.details()) {
    google::rpc::BadRequest bad;
    google::rpc::RetryInfo retry;
    google::rpc::QuotaFailure quota;
    google::rpc::PreconditionFailure precondition;
    google::rpc::ErrorInfo info;
    google::rpc::Help help;
    google::rpc::RequestInfo request;
    google::rpc::LocalizedMessage localized;
    if (any.Is<google::rpc::BadRequest>() && any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations()) {
        out.field_violations.push_back({v.field(), v.description()});
      }
    } else if (any.Is<google::rpc::RetryInfo>() && any.UnpackTo(&retry)) {
      out.retry_delay = absl::Seconds(retry.retry_delay().seconds()) +
                        absl::Nanoseconds(retry.retry_delay().nanos());
    } else if (any.Is<google::rpc::QuotaFailure>() && any.UnpackTo(&quota)) {
      for (const auto& v : quota.violations()) {
        out.quota_violations.push_back({v.subject(), v.description()});
      }
    } else if (any.Is<google::rpc::PreconditionFailure>() && any.UnpackTo(&precondition)) {
      for (const auto& v : precondition.violations()) {
        out.precondition_violations.push_back(
            {v.type().empty() ? v.subject() : absl::StrCat(v.type(), " ", v.subject()),
             v.description()});
      }
    } else if (any.Is<google::rpc::ErrorInfo>() && any.UnpackTo(&info)) {
      out.reason = info.reason();
      out.domain = info.domain();
    } else if (any.Is<google::rpc::Help>() && any.UnpackTo(&help)) {
      for (const auto& link : help.links()) {
        out.help_links.push_back(link.description().empty()
                                     ? link.url()
                                     : absl::StrCat(link.description(), ": ", link.url()));
      }
    } else if (any.Is<google::rpc::RequestInfo>() && any.UnpackTo(&request)) {
      out.request_id = request.request_id();
    } else if (any.Is<google::rpc::LocalizedMessage>() && any.UnpackTo(&localized)) {
      out.localized_message = localized.message();
    } else {
      out.other.push_back(any.type_url());
    }
  }
  return out;
}

std::string FormatError(const absl::Status& status) {
  std::string out =
      absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message(), "\n");
  const ErrorDetails d = GetErrorDetails(status);
  for (const auto& v : d.field_violations) {
    absl::StrAppend(&out, "  field ", v.field.empty() ? "(request)" : v.field, ": ", v.description,
                    "\n");
  }
  if (d.retry_delay.has_value()) {
    absl::StrAppend(&out, "  retry after ", absl::FormatDuration(*d.retry_delay), "\n");
  }
  for (const auto& v : d.quota_violations) {
    absl::StrAppend(&out, "  quota ", v.subject, ": ", v.description, "\n");
  }
  for (const auto& v : d.precondition_violations) {
    absl::StrAppend(&out, "  precondition ", v.subject, ": ", v.description, "\n");
  }
  if (!d.reason.empty()) {
    absl::StrAppend(&out, "  reason ", d.reason, d.domain.empty() ? "" : " (", d.domain,
                    d.domain.empty() ? "" : ")", "\n");
  }
  if (!d.localized_message.empty()) absl::StrAppend(&out, "  ", d.localized_message, "\n");
  for (const auto& link : d.help_links) absl::StrAppend(&out, "  see ", link, "\n");
  if (!d.request_id.empty()) absl::StrAppend(&out, "  request id ", d.request_id, "\n");
  for (const auto& url : d.other) absl::StrAppend(&out, "  (detail ", url, ")\n");
  return out;
}

}  // namespace segment_audiences
