// Turns the upstream's HTTP answer into the RPC's response message or an error, as
// the error mapping in service/README.md says:
//   2xx -> the `data` object, translated into the response message;
//   404 -> NOT_FOUND; 422 (and 400) -> INVALID_ARGUMENT with a google.rpc.BadRequest built from
//   the envelope's `field`s; 429 -> RESOURCE_EXHAUSTED with google.rpc.RetryInfo (msBeforeNext,
//   else the X-RateLimit-Reset date); 401 -> UNAUTHENTICATED; 403 -> PERMISSION_DENIED;
//   5xx -> UNAVAILABLE; other statuses -> FAILED_PRECONDITION (4xx) or UNKNOWN.
// The upstream's error messages are kept. A 2xx body that is not JSON is UNAVAILABLE; one whose
// JSON does not fit the message is INTERNAL; neither ever yields a partial answer.
//
// Pure functions; thread-safe.
#ifndef SAG_SERVICE_OPERATIONS_RESPONSE_DECODER_H_
#define SAG_SERVICE_OPERATIONS_RESPONSE_DECODER_H_

#include <optional>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/upstream/http.h"

namespace sag::ops {

// Decodes `response` into `out` (cleared first) or returns the mapped error.
absl::Status DecodeResponse(const upstream::HttpResponse& response, google::protobuf::Message* out,
                            absl::Time now);

// The error for a non-2xx response.
absl::Status ErrorFromResponse(const upstream::HttpResponse& response, absl::Time now);

// An RFC 5322 date as the API writes it (`Sat, 28 Nov 2026 12:00:00 GMT`), or nullopt.
std::optional<absl::Time> ParseHttpDate(absl::string_view text);

// How long a 429 asks to wait: msBeforeNext from the body, else X-RateLimit-Reset - now, else
// one second.
absl::Duration RetryAfter(const upstream::HttpResponse& response, absl::Time now);

}  // namespace sag::ops

#endif  // SAG_SERVICE_OPERATIONS_RESPONSE_DECODER_H_
