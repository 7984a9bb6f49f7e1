// The table forms of audiencesctl's answers: aligned listings and "Label: value" records, read
// from the proto3 JSON of a response (defaults included) and of its request.
#ifndef SAG_CLIENT_AUDIENCESCTL_TABLES_H_
#define SAG_CLIENT_AUDIENCESCTL_TABLES_H_

#include <nlohmann/json.hpp>
#include <string>

namespace audiencesctl::tables {

using Json = nlohmann::json;

std::string Audiences(const Json& response, const Json& request);  // response.audiences
std::string Audience(const Json& response, const Json& request);   // response.audience
std::string Schedules(const Json& response, const Json& request);  // .audienceSchedules
std::string Schedule(const Json& response, const Json& request);   // .audienceSchedule
std::string Preview(const Json& response, const Json& request);    // .audiencePreview
std::string PreviewId(const Json& response, const Json& request);
std::string AudienceDeleted(const Json& response, const Json& request);
std::string ScheduleDeleted(const Json& response, const Json& request);
std::string Run(const Json& response, const Json& request);

}  // namespace audiencesctl::tables

#endif  // SAG_CLIENT_AUDIENCESCTL_TABLES_H_
