#include "service/operations/operation_table.h"

namespace sag::ops {
namespace {

constexpr absl::string_view kV1 = "application/vnd.segment.v1+json";
constexpr absl::string_view kBeta = "application/vnd.segment.v1beta+json";
constexpr absl::string_view kAlpha = "application/vnd.segment.v1alpha+json";
constexpr absl::string_view kJson = "application/json";

constexpr absl::string_view kListAudiences = "ListAudiences";
constexpr absl::string_view kListSchedules = "ListAudienceSchedulesFromSpaceAndAudience";
constexpr absl::string_view kListConsumers = "ListAudienceConsumersFromSpaceAndAudience";

const RateLimit kWrites{50, absl::Minutes(1)};
const RateLimit kApiDefault{0, absl::Minutes(1)};

}  // namespace

absl::string_view HttpMethodName(HttpMethod m) {
  switch (m) {
    case HttpMethod::kGet:
      return "GET";
    case HttpMethod::kPost:
      return "POST";
    case HttpMethod::kPatch:
      return "PATCH";
    case HttpMethod::kDelete:
      return "DELETE";
  }
  return "GET";
}

const std::vector<Operation>& Operations() {
  using M = HttpMethod;
  // clang-format off
  static const auto* const kTable = new std::vector<Operation>{
    // rpc, method, path, body, accept, content-type, idempotent, cacheable, max count, limit,
    // monthly quota, invalidates
    {"AddAudienceScheduleToAudience", M::kPost, "/spaces/{spaceId}/audiences/{id}/schedules",
     "schedule", kAlpha, kAlpha, false, false, 0, kWrites, false, {kListSchedules, kListAudiences}},
    {"CreateAudience", M::kPost, "/spaces/{spaceId}/audiences",
     "audience", kV1, kJson, false, false, 0, kWrites, false, {kListAudiences, kListConsumers}},
    {"CreateAudiencePreview", M::kPost, "/spaces/{spaceId}/audiences/previews",
     "preview", kBeta, kBeta, false, false, 0, {5, absl::Minutes(1)}, true, {}},
    {"ForceExecuteAudienceRun", M::kPost, "/spaces/{spaceId}/audiences/{audienceId}/runs",
     "", kAlpha, "", false, false, 0, kApiDefault, false, {}},
    {"GetAudience", M::kGet, "/spaces/{spaceId}/audiences/{id}",
     "", kBeta, "", true, false, 0, {100, absl::Minutes(1)}, false, {}},
    {"GetAudiencePreview", M::kGet, "/spaces/{spaceId}/audiences/previews/{id}",
     "", kBeta, "", true, false, 0, {300, absl::Minutes(1)}, false, {}},
    {"GetAudienceScheduleFromSpaceAndAudience", M::kGet,
     "/spaces/{spaceId}/audiences/{id}/schedules/{scheduleId}",
     "", kAlpha, "", true, false, 0, kApiDefault, false, {}},
    {kListConsumers, M::kGet, "/spaces/{spaceId}/audiences/{id}/audience-references",
     "", kAlpha, "", true, true, 1000, {25, absl::Minutes(1)}, false, {}},
    {kListSchedules, M::kGet, "/spaces/{spaceId}/audiences/{id}/schedules",
     "", kAlpha, "", true, true, 0, kApiDefault, false, {}},
    {kListAudiences, M::kGet, "/spaces/{spaceId}/audiences",
     "", kBeta, "", true, true, 200, {60, absl::Minutes(1)}, false, {}},
    {"RemoveAudienceFromSpace", M::kDelete, "/spaces/{spaceId}/audiences/{id}",
     "", kV1, "", false, false, 0, kWrites, false, {kListAudiences, kListConsumers, kListSchedules}},
    {"RemoveAudienceScheduleFromAudience", M::kDelete,
     "/spaces/{spaceId}/audiences/{id}/schedules/{scheduleId}",
     "", kAlpha, "", false, false, 0, kWrites, false, {kListSchedules, kListAudiences}},
    {"UpdateAudienceForSpace", M::kPatch, "/spaces/{spaceId}/audiences/{id}",
     "audience", kV1, kJson, false, false, 0, kWrites, false, {kListAudiences, kListConsumers}},
    {"UpdateAudienceScheduleForAudience", M::kPatch,
     "/spaces/{spaceId}/audiences/{id}/schedules/{scheduleId}",
     "schedule", kAlpha, kAlpha, false, false, 0, kWrites, false, {kListSchedules, kListAudiences}},
  };
  // clang-format on
  return *kTable;
}

const Operation* FindOperation(absl::string_view rpc) {
  for (const auto& op : Operations()) {
    if (op.rpc == rpc) return &op;
  }
  return nullptr;
}

}  // namespace sag::ops
