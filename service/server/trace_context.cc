#include "service/server/trace_context.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sag {
namespace {

// Version 00's length: "00-" + 32 + "-" + 16 + "-" + 2.
constexpr size_t kVersion00Length = 55;

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// `n` lowercase hex digits at `pos`, not all of them '0' unless `zero_ok`.
bool HexField(absl::string_view s, size_t pos, size_t n, bool zero_ok) {
  if (s.size() < pos + n) return false;
  bool nonzero = false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!IsLowerHex(s[i])) return false;
    nonzero = nonzero || s[i] != '0';
  }
  return zero_ok || nonzero;
}

// Printable ASCII only: no control character (CR, LF, NUL, ...), nothing non-ASCII.
bool Printable(absl::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;  // char may be signed: bytes >= 0x80 are < 0.
  }
  return true;
}

}  // namespace

std::string Traceparent::Header() const {
  return absl::StrCat("00-", trace_id, "-", parent_id, "-", flags);
}

std::optional<Traceparent> ParseTraceparent(absl::string_view v) {
  if (v.size() < kVersion00Length || v.size() > kMaxTraceparentLength || !Printable(v)) {
    return std::nullopt;
  }
  if (!HexField(v, 0, 2, /*zero_ok=*/true) || v.substr(0, 2) == "ff") return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  if (!HexField(v, 3, 32, false) || !HexField(v, 36, 16, false) || !HexField(v, 53, 2, true)) {
    return std::nullopt;
  }
  // Version 00 is exactly 55 characters; a later version may add fields after a '-'.
  const bool version00 = v.substr(0, 2) == "00";
  if (v.size() > kVersion00Length && (version00 || v[kVersion00Length] != '-')) {
    return std::nullopt;
  }
  return Traceparent{std::string(v.substr(3, 32)), std::string(v.substr(36, 16)),
                     std::string(v.substr(53, 2))};
}

bool ValidTracestate(absl::string_view value) {
  return !value.empty() && value.size() <= kMaxTracestateLength && Printable(value);
}

TraceContext MakeTraceContext(const std::vector<absl::string_view>& traceparents,
                              const std::vector<absl::string_view>& tracestates) {
  TraceContext trace;
  if (traceparents.size() != 1) return trace;  // None, or ambiguous.
  std::optional<Traceparent> parent = ParseTraceparent(traceparents[0]);
  if (!parent.has_value()) return trace;
  trace.traceparent = parent->Header();
  trace.trace_id = parent->trace_id;
  size_t total = 0;
  for (absl::string_view s : tracestates) total += s.size() + 1;
  if (total > kMaxTracestateLength + 1) return trace;  // Do not even join an oversized one.
  std::string state = absl::StrJoin(tracestates, ",");
  if (ValidTracestate(state)) trace.tracestate = std::move(state);
  return trace;
}

TraceContext TraceContextFromMetadata(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  std::vector<absl::string_view> parents, states;
  for (const auto& [key, value] : metadata) {
    absl::string_view k(key.data(), key.size());
    absl::string_view v(value.data(), value.size());
    if (k == "traceparent") parents.push_back(v);
    if (k == "tracestate") states.push_back(v);
    if (parents.size() > 1 || states.size() > kMaxTracestateLength) break;  // Invalid anyway.
  }
  return MakeTraceContext(parents, states);
}

void AddTraceHeaders(const TraceContext& trace, upstream::Headers* headers) {
  if (trace.traceparent.empty()) return;
  headers->emplace_back("traceparent", trace.traceparent);
  if (!trace.tracestate.empty()) headers->emplace_back("tracestate", trace.tracestate);
}

}  // namespace sag
