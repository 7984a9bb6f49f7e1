// The operation table: one row per Segment Audiences REST operation, and nothing else.
//
// A row says how an RPC of segment.audiences.v1.AudiencesService becomes an HTTP request:
// method, path template, which request field is the body, the media types, whether it is safe
// to retry, whether its answer is a cacheable listing, which listings a successful call makes
// stale, and its documented rate limit. Everything else is derived from the proto descriptors:
// path parameters are the request fields whose JSON name appears in the template
// (`{spaceId}` <- `space_id`), query parameters are the remaining non-body fields.
//
// Adding an operation is one row here plus its messages in audiences.proto;
// tests/unit/server/operation_table_test.cc checks every row against the descriptors and the
// API reference.
#ifndef SAG_SERVICE_OPERATIONS_OPERATION_TABLE_H_
#define SAG_SERVICE_OPERATIONS_OPERATION_TABLE_H_

#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sag::ops {

enum class HttpMethod { kGet, kPost, kPatch, kDelete };
absl::string_view HttpMethodName(HttpMethod m);

// A documented per-endpoint rate limit: `requests` per `per`. requests == 0 means
// "the API's default limit" (configurable).
struct RateLimit {
  int requests = 0;
  absl::Duration per = absl::Minutes(1);
};

struct Operation {
  absl::string_view rpc;  // RPC name, e.g. "ListAudiences".
  HttpMethod method;
  absl::string_view path;          // REST path template, e.g. "/spaces/{spaceId}/audiences".
  absl::string_view body_field;    // Request field sent as the JSON body; empty: no body.
  absl::string_view accept;        // Accept: the first media type the operation lists.
  absl::string_view content_type;  // Content-Type of the body: the first listed; empty: none.
  bool idempotent;                 // Safe to send again after it may have reached the upstream.
  bool cacheable;                  // A listing the gateway may answer from its cache.
  int max_page_count;              // Upper bound of pagination.count; 0: not paginated.
  RateLimit limit;                 // Documented limit.
  bool space_monthly_quota;        // Counts against the per-space monthly quota (previews).
  std::vector<absl::string_view> invalidates;  // Listings a successful call makes stale.
};

// All 14 operations, in the order of the reference.
const std::vector<Operation>& Operations();

// The row for `rpc`, or nullptr.
const Operation* FindOperation(absl::string_view rpc);

}  // namespace sag::ops

#endif  // SAG_SERVICE_OPERATIONS_OPERATION_TABLE_H_
