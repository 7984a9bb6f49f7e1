#include "service/operations/request_builder.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/common/status_util.h"
#include "service/translate/json_proto.h"

namespace sag::ops {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

std::string PercentEncode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

absl::Status ValidateId(absl::string_view field, absl::string_view value) {
  if (value.empty()) return InvalidField(field, "is required");
  if (value.size() > kMaxIdLength) {
    return InvalidField(field, absl::StrCat("is longer than ", kMaxIdLength, " characters"));
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(value[0]))) {
    return InvalidField(field, "must start with a letter or a digit");
  }
  for (unsigned char c : value) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-' && c != '.') {
      return InvalidField(field, "may contain only letters, digits, '_', '-' and '.'");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RequestBuilder>> RequestBuilder::Create(
    const Operation& op, const google::protobuf::MethodDescriptor* method) {
  if (method == nullptr) return absl::InvalidArgumentError(absl::StrCat(op.rpc, ": no method"));
  const auto* in = method->input_type();
  std::unique_ptr<RequestBuilder> b(new RequestBuilder(op, method));
  std::vector<const FieldDescriptor*> path_fields;
  for (absl::string_view part : absl::StrSplit(op.path.substr(1), '/')) {
    Segment seg;
    if (part.size() > 2 && part.front() == '{' && part.back() == '}') {
      absl::string_view name = part.substr(1, part.size() - 2);
      for (int i = 0; i < in->field_count(); ++i) {
        if (in->field(i)->json_name() == name) seg.field = in->field(i);
      }
      if (seg.field == nullptr || seg.field->type() != FieldDescriptor::TYPE_STRING ||
          seg.field->is_repeated()) {
        return absl::InvalidArgumentError(
            absl::StrCat(op.rpc, ": path parameter {", name, "} has no string field"));
      }
      path_fields.push_back(seg.field);
    } else {
      seg.literal = std::string(part);
    }
    b->segments_.push_back(std::move(seg));
  }
  if (!op.body_field.empty()) {
    b->body_field_ = in->FindFieldByName(std::string(op.body_field));
    if (b->body_field_ == nullptr || b->body_field_->message_type() == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(op.rpc, ": body field '", op.body_field, "' is not a message field"));
    }
  }
  for (int i = 0; i < in->field_count(); ++i) {
    const FieldDescriptor* f = in->field(i);
    bool is_path = std::find(path_fields.begin(), path_fields.end(), f) != path_fields.end();
    if (!is_path && f != b->body_field_) b->query_fields_.push_back(f);
  }
  return b;
}

absl::Status RequestBuilder::ValidateQuery(const Message& request) const {
  const auto* refl = request.GetReflection();
  for (const FieldDescriptor* f : query_fields_) {
    if (f->message_type() == nullptr || !refl->HasField(request, f)) continue;
    const Message& sub = refl->GetMessage(request, f);
    const auto* sub_refl = sub.GetReflection();
    const auto* desc = sub.GetDescriptor();
    if (f->name() == "pagination") {
      const FieldDescriptor* count = desc->FindFieldByName("count");
      if (count != nullptr && op_.max_page_count > 0) {
        int64_t n = count->cpp_type() == FieldDescriptor::CPPTYPE_INT32
                        ? sub_refl->GetInt32(sub, count)
                        : sub_refl->GetInt64(sub, count);
        if (n < 1 || n > op_.max_page_count) {
          return InvalidField(
              "pagination.count",
              absl::StrCat("must be between 1 and ", op_.max_page_count, " (got ", n, ")"));
        }
      }
    }
    if (f->name() == "search") {
      const FieldDescriptor* q = desc->FindFieldByName("query");
      if (q != nullptr && sub_refl->GetString(sub, q).size() > kMaxSearchQueryLength) {
        return InvalidField("search.query",
                            absl::StrCat("is longer than ", kMaxSearchQueryLength, " characters"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RequestBuilder::Target(const Message& request) const {
  const auto* refl = request.GetReflection();
  std::string target;
  for (const Segment& seg : segments_) {
    target.push_back('/');
    if (seg.field == nullptr) {
      target += seg.literal;
      continue;
    }
    std::string value = refl->GetString(request, seg.field);
    if (absl::Status s = ValidateId(seg.field->name(), value); !s.ok()) return s;
    target += PercentEncode(value);
  }
  if (absl::Status s = ValidateQuery(request); !s.ok()) return s;
  std::vector<std::pair<std::string, std::string>> params;
  for (const FieldDescriptor* f : query_fields_) {
    if (f->message_type() != nullptr) {
      if (refl->HasField(request, f)) {
        translate::AppendQueryParams(refl->GetMessage(request, f), f->json_name(), &params);
      }
    } else if (f->has_presence() ? refl->HasField(request, f)
                                 : !refl->GetString(request, f).empty()) {
      params.emplace_back(f->json_name(), refl->GetString(request, f));
    }
  }
  char sep = '?';
  for (const auto& [k, v] : params) {
    if (v.size() > kMaxQueryValueLength) {
      return InvalidField(k, absl::StrCat("is longer than ", kMaxQueryValueLength, " characters"));
    }
    absl::StrAppend(&target, std::string(1, sep), PercentEncode(k), "=", PercentEncode(v));
    sep = '&';
  }
  return target;
}

absl::StatusOr<upstream::HttpRequest> RequestBuilder::Build(const Message& request,
                                                            absl::string_view base_url) const {
  absl::StatusOr<std::string> target = Target(request);
  if (!target.ok()) return target.status();
  upstream::HttpRequest http;
  http.method = std::string(HttpMethodName(op_.method));
  http.url = absl::StrCat(base_url, *target);
  http.headers.emplace_back("Accept", std::string(op_.accept));
  if (body_field_ != nullptr) {
    const auto* refl = request.GetReflection();
    http.body = refl->HasField(request, body_field_)
                    ? translate::MessageToJson(refl->GetMessage(request, body_field_))
                          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                    : "{}";
    http.has_body = true;
    http.headers.emplace_back("Content-Type", std::string(op_.content_type));
  }
  return http;
}

}  // namespace sag::ops
