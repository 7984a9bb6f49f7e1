// Turns a gRPC request message into the REST request its operation documents, generically:
// the path template's parameters come from the request fields of the same JSON name, each
// checked and percent-encoded as exactly one path segment; the other non-body fields become
// the query in dot form (`pagination.count=3`); the body field becomes the JSON body.
//
// Checks made here, before anything reaches the upstream (INVALID_ARGUMENT with a
// google.rpc.BadRequest naming the field):
//   - ids: 1..256 characters from [A-Za-z0-9_.-], starting with a letter or digit;
//   - pagination.count within 1..the operation's maximum (200 or 1000);
//   - search.query at most 255 characters, cursors and other query strings at most 2048.
//
// Thread-safe once built: a RequestBuilder is immutable.
#ifndef SAG_SERVICE_OPERATIONS_REQUEST_BUILDER_H_
#define SAG_SERVICE_OPERATIONS_REQUEST_BUILDER_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/operations/operation_table.h"
#include "service/upstream/http.h"

namespace sag::ops {

inline constexpr size_t kMaxIdLength = 256;
inline constexpr size_t kMaxSearchQueryLength = 255;
inline constexpr size_t kMaxQueryValueLength = 2048;

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string PercentEncode(absl::string_view s);

// OK when `value` is an acceptable id; else the reason.
absl::Status ValidateId(absl::string_view field, absl::string_view value);

class RequestBuilder {
 public:
  // Binds `op` to the request message of `method`. Fails when the row and the descriptors
  // disagree (a template parameter without a field, a body field that is not a message...).
  static absl::StatusOr<std::unique_ptr<RequestBuilder>> Create(
      const Operation& op, const google::protobuf::MethodDescriptor* method);

  // The path and query (no scheme/host), e.g. "/spaces/s1/audiences?pagination.count=3".
  absl::StatusOr<std::string> Target(const google::protobuf::Message& request) const;

  // The whole HTTP request against `base_url` (no trailing slash), with Accept and
  // Content-Type; the caller adds authentication and the timeout.
  absl::StatusOr<upstream::HttpRequest> Build(const google::protobuf::Message& request,
                                              absl::string_view base_url) const;

  const Operation& op() const { return op_; }
  const google::protobuf::MethodDescriptor* method() const { return method_; }

 private:
  struct Segment {
    std::string literal;  // When field == nullptr.
    const google::protobuf::FieldDescriptor* field = nullptr;
  };
  RequestBuilder(const Operation& op, const google::protobuf::MethodDescriptor* method)
      : op_(op), method_(method) {}

  absl::Status ValidateQuery(const google::protobuf::Message& request) const;

  const Operation& op_;
  const google::protobuf::MethodDescriptor* method_;
  std::vector<Segment> segments_;
  std::vector<const google::protobuf::FieldDescriptor*> query_fields_;
  const google::protobuf::FieldDescriptor* body_field_ = nullptr;
};

}  // namespace sag::ops

#endif  // SAG_SERVICE_OPERATIONS_REQUEST_BUILDER_H_
