// W3C Trace Context (https://www.w3.org/TR/trace-context/) carried through the gateway: the
// caller's `traceparent` and `tracestate` gRPC metadata are checked here and, when valid, sent
// upstream as HTTP headers on every attempt of the call; the trace id goes in the call's log line.
//
// Promises:
//  - traceparent version 00 is accepted only as exactly
//    `00-<32 lowercase hex trace-id, not all 0>-<16 lowercase hex parent-id, not all 0>-<2
//    lowercase hex flags>` (55 characters). Version `ff` is invalid. A higher version is accepted
//    when its first 55 characters have the version-00 layout and are followed by nothing or by `-`
//    (forward-compatible parsing); it is forwarded rebuilt as version 00 from those three fields
//    (the spec's rule: propagate the highest version known), its unknown tail is not forwarded.
//    Anything longer than kMaxTraceparentLength or holding a byte outside printable ASCII (even in
//    a future version's tail), or a second traceparent value, is invalid.
//  - tracestate is forwarded only with a valid traceparent, and only when all its values, joined
//    with "," (the header's list form), make 1..kMaxTracestateLength characters of printable ASCII
//    (0x20..0x7E: no control character, no CR/LF, no NUL, nothing non-ASCII); else it is dropped.
//  - Invalid input is never an error for the call: it is simply not forwarded.
//  - Nothing else of the caller's metadata is forwarded.
//
// Pure functions; thread-safe.
#ifndef SAG_SERVICE_SERVER_TRACE_CONTEXT_H_
#define SAG_SERVICE_SERVER_TRACE_CONTEXT_H_

#include <grpcpp/support/string_ref.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "service/upstream/http.h"

namespace sag {

inline constexpr size_t kMaxTraceparentLength = 512;
inline constexpr size_t kMaxTracestateLength = 512;

// The parts of a valid traceparent.
struct Traceparent {
  std::string trace_id;   // 32 lowercase hex digits
  std::string parent_id;  // 16 lowercase hex digits
  std::string flags;      // 2 lowercase hex digits
  // The header to send upstream: always version 00.
  std::string Header() const;
};

// Parses one traceparent value; nullopt when it is invalid (see the file comment).
std::optional<Traceparent> ParseTraceparent(absl::string_view value);

// True when `value` (tracestate, already joined) may be forwarded.
bool ValidTracestate(absl::string_view value);

// What a call forwards: empty strings for what it does not.
struct TraceContext {
  std::string traceparent;  // The header value (version 00), "" when none is valid.
  std::string tracestate;   // "" when absent, dropped, or without a valid traceparent.
  std::string trace_id;     // For the log line, "" when none.
};

// From every value of the caller's `traceparent` and `tracestate` metadata, in arrival order.
TraceContext MakeTraceContext(const std::vector<absl::string_view>& traceparents,
                              const std::vector<absl::string_view>& tracestates);

// The same, from a call's metadata (client_metadata() of its context).
TraceContext TraceContextFromMetadata(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

// Appends `traceparent` and `tracestate` headers (those that are set) to `headers`.
void AddTraceHeaders(const TraceContext& trace, upstream::Headers* headers);

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_TRACE_CONTEXT_H_
