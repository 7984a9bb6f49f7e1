#include "service/operations/response_decoder.h"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/common/status_util.h"
#include "service/translate/json_proto.h"

namespace sag::ops {
namespace {

constexpr size_t kMaxMessageLength = 1024;

std::string Clip(std::string s) {
  if (s.size() > kMaxMessageLength) {
    s.resize(kMaxMessageLength);
    s += "...";
  }
  return s;
}

// The envelope's errors, or nothing when the body is not an envelope.
const nlohmann::json* Errors(const nlohmann::json& body) {
  if (!body.is_object()) return nullptr;
  auto it = body.find("errors");
  if (it == body.end() || !it->is_array()) return nullptr;
  return &*it;
}

std::string StringField(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

absl::StatusCode CodeFor(long status) {
  switch (status) {
    case 400:
    case 413:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    default:
      break;
  }
  if (status >= 500 && status <= 599) return absl::StatusCode::kUnavailable;
  if (status >= 400 && status <= 499) return absl::StatusCode::kFailedPrecondition;
  return absl::StatusCode::kUnknown;
}

}  // namespace

std::optional<absl::Time> ParseHttpDate(absl::string_view text) {
  absl::Time when;
  std::string err;
  if (text.size() < 25 ||
      !absl::ParseTime("%a, %d %b %Y %H:%M:%S", std::string(text.substr(0, 25)), &when, &err)) {
    return std::nullopt;
  }
  return when;
}

absl::Duration RetryAfter(const upstream::HttpResponse& response, absl::Time now) {
  nlohmann::json body = nlohmann::json::parse(response.body, nullptr, false);
  if (const nlohmann::json* errors = Errors(body)) {
    for (const auto& e : *errors) {
      if (!e.is_object()) continue;
      auto data = e.find("data");
      if (data == e.end() || !data->is_object()) continue;
      auto ms = data->find("msBeforeNext");
      if (ms != data->end() && ms->is_number() && ms->get<double>() >= 0 &&
          ms->get<double>() < 86400e3 * 62) {
        return absl::Milliseconds(ms->get<double>());
      }
    }
  }
  if (std::optional<absl::Time> when = ParseHttpDate(response.Header("x-ratelimit-reset"))) {
    absl::Duration d = *when - now;
    if (d > absl::ZeroDuration() && d < absl::Hours(24 * 62)) return d;
  }
  return absl::Seconds(1);
}

absl::Status ErrorFromResponse(const upstream::HttpResponse& response, absl::Time now) {
  absl::StatusCode code = CodeFor(response.status);
  nlohmann::json body = nlohmann::json::parse(response.body, nullptr, false);
  std::vector<std::string> messages;
  std::vector<FieldViolation> violations;
  if (const nlohmann::json* errors = Errors(body)) {
    for (const auto& e : *errors) {
      std::string msg = StringField(e, "message");
      std::string field = StringField(e, "field");
      if (msg.empty()) msg = StringField(e, "type");
      if (!msg.empty() && messages.size() < 10) messages.push_back(Clip(msg));
      if (!field.empty() && violations.size() < 100) {
        violations.push_back({Clip(field), Clip(msg)});
      }
    }
  }
  std::string text = absl::StrCat("Segment API answered HTTP ", response.status);
  if (!messages.empty()) absl::StrAppend(&text, ": ", absl::StrJoin(messages, "; "));
  absl::Status status(code, text);
  if (code == absl::StatusCode::kInvalidArgument && !violations.empty()) {
    return InvalidFields(text, violations);
  }
  if (code == absl::StatusCode::kResourceExhausted) {
    return RetryLater(text, RetryAfter(response, now));
  }
  return status;
}

absl::Status DecodeResponse(const upstream::HttpResponse& response, google::protobuf::Message* out,
                            absl::Time now) {
  out->Clear();
  if (response.status < 200 || response.status > 299) return ErrorFromResponse(response, now);
  // The body is {"data": <the message>}, parsed straight into `out` (no DOM of the body).
  translate::TextError error = translate::TextError::kNone;
  const absl::Status s = translate::JsonTextToMessage(response.body, "data", out, &error);
  if (s.ok()) return absl::OkStatus();
  out->Clear();
  switch (error) {
    case translate::TextError::kSyntax:
      return absl::UnavailableError(absl::StrCat("Segment API answered HTTP ", response.status,
                                                 " with a body that is not JSON (",
                                                 response.body.size(), " bytes)"));
    case translate::TextError::kNotAnObject:
      return absl::InternalError("Segment API answered with JSON that is not an object");
    default:
      return absl::InternalError(absl::StrCat("Segment API answer does not fit ",
                                              out->GetDescriptor()->name(), ": data.",
                                              s.message()));
  }
}

}  // namespace sag::ops
