#include "service/server/answer.h"

#include <algorithm>

#include "nlohmann/json.hpp"
#include "service/cache/keys.h"

namespace sag {
namespace {

// A write whose outcome is certain not to have changed anything upstream.
bool DefinitelyNotExecuted(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

// The id a create made: the first `id` found one level down (audience, schedule, preview).
std::string CreatedId(const google::protobuf::Message& response) {
  const auto* d = response.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    if (f->message_type() == nullptr || f->is_repeated()) continue;
    if (!response.GetReflection()->HasField(response, f)) continue;
    std::string created = StringField(response.GetReflection()->GetMessage(response, f), "id");
    if (!created.empty()) return created;
  }
  return "";
}

}  // namespace

std::string StringField(const google::protobuf::Message& m, const char* name) {
  const auto* f = m.GetDescriptor()->FindFieldByName(name);
  if (f == nullptr || f->type() != google::protobuf::FieldDescriptor::TYPE_STRING) return "";
  return m.GetReflection()->GetString(m, f);
}

void Answerer::Started() {
  if (parts_.metrics != nullptr) parts_.metrics->calls_in_flight->Get()->Increment();
}

void Answerer::CountMemoryRefusal() {
  if (parts_.metrics != nullptr) parts_.metrics->memory_refused->Get()->Increment();
}

void Answerer::Report(const CallInfo& info, const absl::Status& status,
                      const ExchangeReport& report) {
  absl::Duration latency = parts_.clock->Now() - info.start;
  absl::string_view code = telemetry::GrpcCodeName(static_cast<int>(status.code()));
  if (telemetry::GatewayMetrics* m = parts_.metrics) {
    m->calls->WithLabels({info.rpc, std::string(code)})->Increment();
    m->call_duration->WithLabels({info.rpc})->ObserveDuration(latency);
    m->calls_in_flight->Get()->Decrement();
    int retries = std::max(0, report.attempts - 1);
    if (retries > 0) m->upstream_retries->WithLabels({info.rpc})->Increment(retries);
  }
  if (parts_.logger != nullptr) WriteCallLine(info, status, report, code, latency);
}

void Answerer::WriteCallLine(const CallInfo& info, const absl::Status& status,
                             const ExchangeReport& report, absl::string_view code,
                             absl::Duration latency) {
  telemetry::CallLog line;
  line.level = status.ok() || status.code() == absl::StatusCode::kNotFound ||
                       status.code() == absl::StatusCode::kInvalidArgument
                   ? telemetry::LogLevel::kInfo
                   : telemetry::LogLevel::kWarn;
  if (!parts_.logger->Enabled(line.level)) return;
  line.rpc = info.rpc;
  line.caller = info.caller;
  line.workspace = info.workspace;
  line.space = info.space;
  line.code = std::string(code);
  line.latency = latency;
  line.upstream_status = static_cast<int>(report.upstream_status);
  line.cache = info.cache;
  line.queue_wait = report.queue_wait;
  line.retries = std::max(0, report.attempts - 1);  // Every resend, 429s included.
  line.request_id = info.request_id;
  line.trace_id = info.trace.trace_id;
  if (!status.ok()) line.error = std::string(status.message());
  parts_.logger->LogCall(line);
}

void Answerer::CountCacheOutcome(const CallInfo& info) {
  if (parts_.metrics != nullptr && parts_.cache != nullptr) {
    parts_.metrics->cache_requests->WithLabels({info.rpc, info.cache})->Increment();
  }
}

void Answerer::InvalidateAfterWrite(const std::string& workspace, const ops::Operation& op,
                                    const google::protobuf::Message& request,
                                    const absl::Status& status) {
  if (parts_.cache == nullptr || op.invalidates.empty() || DefinitelyNotExecuted(status)) return;
  std::string audience = op.rpc == "CreateAudience" ? "" : StringField(request, "id");
  if (audience.empty()) audience = StringField(request, "audience_id");
  std::vector<std::string> tags = cache::InvalidationTags(
      workspace, StringField(request, "space_id"), audience, op.invalidates);
  for (const std::string& tag : tags) parts_.cache->Invalidate(tag);
  if (parts_.publish_invalidations) parts_.publish_invalidations(tags);
}

void Answerer::Audit(const CallInfo& info, const google::protobuf::Message& request,
                     const google::protobuf::Message* response, const absl::Status& status) {
  if (parts_.logger == nullptr) return;
  nlohmann::ordered_json fields = {
      {"caller", info.caller},
      {"rpc", info.rpc},
      {"workspace", info.workspace},
      {"space", info.space},
      {"code", std::string(telemetry::GrpcCodeName(static_cast<int>(status.code())))},
      {"request_id", info.request_id}};
  for (const char* id : {"id", "audience_id", "schedule_id"}) {
    std::string value = StringField(request, id);
    if (!value.empty() && value.size() <= ops::kMaxIdLength) fields[id] = value;
  }
  if (response != nullptr && status.ok()) {
    if (std::string created = CreatedId(*response); !created.empty()) fields["result_id"] = created;
  }
  if (!status.ok()) fields["error"] = std::string(status.message());
  parts_.logger->Info("audit", fields);
}

}  // namespace sag
