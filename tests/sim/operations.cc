#include "operations.h"

#include <utility>

#include "absl/strings/str_split.h"

namespace sim {
namespace {

constexpr absl::string_view kV1 = "application/vnd.segment.v1+json";
constexpr absl::string_view kV1Beta = "application/vnd.segment.v1beta+json";
constexpr absl::string_view kV1Alpha = "application/vnd.segment.v1alpha+json";
constexpr absl::string_view kJson = "application/json";

std::vector<Operation> BuildTable() {
  // Straight from tests/reference/segment-audiences-api-v65.json, "operations".
  std::vector<Operation> ops = {
      {OpId::kAddAudienceScheduleToAudience,
       "AddAudienceScheduleToAudience",
       "POST",
       "/spaces/{spaceId}/audiences/{id}/schedules",
       {},
       true,
       {kV1Alpha, kJson},
       {kV1Alpha},
       {}},
      {OpId::kCreateAudience,
       "CreateAudience",
       "POST",
       "/spaces/{spaceId}/audiences",
       {},
       true,
       {kV1, kJson, kV1Beta, kV1Alpha},
       {kJson, kV1, kV1Beta, kV1Alpha},
       {}},
      {OpId::kCreateAudiencePreview,
       "CreateAudiencePreview",
       "POST",
       "/spaces/{spaceId}/audiences/previews",
       {},
       true,
       {kV1Beta, kV1Alpha, kJson},
       {kV1Beta, kV1Alpha},
       {}},
      {OpId::kForceExecuteAudienceRun,
       "ForceExecuteAudienceRun",
       "POST",
       "/spaces/{spaceId}/audiences/{audienceId}/runs",
       {},
       false,
       {kV1Alpha, kJson},
       {},
       {}},
      {OpId::kGetAudience,
       "GetAudience",
       "GET",
       "/spaces/{spaceId}/audiences/{id}",
       {"include"},
       false,
       {kV1Beta, kV1Alpha, kJson},
       {},
       {}},
      {OpId::kGetAudiencePreview,
       "GetAudiencePreview",
       "GET",
       "/spaces/{spaceId}/audiences/previews/{id}",
       {},
       false,
       {kV1Beta, kV1Alpha, kJson},
       {},
       {}},
      {OpId::kGetAudienceScheduleFromSpaceAndAudience,
       "GetAudienceScheduleFromSpaceAndAudience",
       "GET",
       "/spaces/{spaceId}/audiences/{id}/schedules/{scheduleId}",
       {},
       false,
       {kV1Alpha, kJson},
       {},
       {}},
      {OpId::kListAudienceConsumersFromSpaceAndAudience,
       "ListAudienceConsumersFromSpaceAndAudience",
       "GET",
       "/spaces/{spaceId}/audiences/{id}/audience-references",
       {"pagination.count", "pagination.cursor", "search.type", "search.query", "sort.field",
        "sort.direction"},
       false,
       {kV1Alpha, kJson},
       {},
       {}},
      {OpId::kListAudienceSchedulesFromSpaceAndAudience,
       "ListAudienceSchedulesFromSpaceAndAudience",
       "GET",
       "/spaces/{spaceId}/audiences/{id}/schedules",
       {},
       false,
       {kV1Alpha, kJson},
       {},
       {}},
      {OpId::kListAudiences,
       "ListAudiences",
       "GET",
       "/spaces/{spaceId}/audiences",
       {"search.type", "search.query", "pagination.count", "pagination.cursor", "include"},
       false,
       {kV1Beta, kV1Alpha, kJson},
       {},
       {}},
      {OpId::kRemoveAudienceFromSpace,
       "RemoveAudienceFromSpace",
       "DELETE",
       "/spaces/{spaceId}/audiences/{id}",
       {},
       false,
       {kV1, kJson, kV1Beta, kV1Alpha},
       {},
       {}},
      {OpId::kRemoveAudienceScheduleFromAudience,
       "RemoveAudienceScheduleFromAudience",
       "DELETE",
       "/spaces/{spaceId}/audiences/{id}/schedules/{scheduleId}",
       {},
       false,
       {kV1Alpha, kJson},
       {},
       {}},
      {OpId::kUpdateAudienceForSpace,
       "UpdateAudienceForSpace",
       "PATCH",
       "/spaces/{spaceId}/audiences/{id}",
       {},
       true,
       {kV1, kJson, kV1Beta, kV1Alpha},
       {kJson, kV1, kV1Beta, kV1Alpha},
       {}},
      {OpId::kUpdateAudienceScheduleForAudience,
       "UpdateAudienceScheduleForAudience",
       "PATCH",
       "/spaces/{spaceId}/audiences/{id}/schedules/{scheduleId}",
       {},
       true,
       {kV1Alpha, kJson},
       {kV1Alpha},
       {}},
  };
  for (Operation& op : ops) {
    op.segments = absl::StrSplit(op.path_template.substr(1), '/');
  }
  return ops;
}

bool IsParam(absl::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

const std::vector<Operation>& AllOperations() {
  static const std::vector<Operation>* const kTable = new std::vector<Operation>(BuildTable());
  return *kTable;
}

const Operation* FindOperation(absl::string_view rpc) {
  for (const Operation& op : AllOperations()) {
    if (op.rpc == rpc) return &op;
  }
  return nullptr;
}

std::optional<std::string> PercentDecode(absl::string_view in, bool plus_is_space, bool strict) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      const int hi = i + 1 < in.size() ? HexValue(in[i + 1]) : -1;
      const int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
      if (strict) return std::nullopt;
      out.push_back(c);
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<Route> MatchRoute(absl::string_view method, absl::string_view raw_path) {
  if (raw_path.empty() || raw_path.front() != '/') return std::nullopt;
  std::vector<std::string> segments;
  for (absl::string_view raw : absl::StrSplit(raw_path.substr(1), '/')) {
    if (raw.empty()) return std::nullopt;
    std::optional<std::string> decoded = PercentDecode(raw, /*plus_is_space=*/false,
                                                       /*strict=*/true);
    if (!decoded || decoded->empty() || *decoded == "." || *decoded == "..") {
      return std::nullopt;
    }
    segments.push_back(std::move(*decoded));
  }

  const Operation* best = nullptr;
  std::vector<bool> best_literals;
  for (const Operation& op : AllOperations()) {
    if (op.method != method || op.segments.size() != segments.size()) continue;
    std::vector<bool> literals(segments.size());
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      literals[i] = !IsParam(op.segments[i]);
      if (literals[i] && op.segments[i] != segments[i]) ok = false;
    }
    if (!ok) continue;
    // Literal segments beat parameters, the leftmost difference deciding.
    if (best == nullptr || best_literals < literals) {
      best = &op;
      best_literals = std::move(literals);
    }
  }
  if (best == nullptr) return std::nullopt;

  Route route;
  route.op = best;
  for (size_t i = 0; i < segments.size(); ++i) {
    absl::string_view t = best->segments[i];
    if (IsParam(t)) {
      route.params[std::string(t.substr(1, t.size() - 2))] = segments[i];
    }
  }
  return route;
}

}  // namespace sim
