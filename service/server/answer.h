// The last stage of the request path, the answer's side effects: what happens once a call has
// its outcome (the exchange has already decoded the REST answer into the response message), the
// same for every RPC.
//
// Promises:
//  - Report() runs once per call that Started(): it counts the call by RPC and gRPC code, its
//    latency, and its retries (upstream requests after the first, a resend after a 429
//    included: ExchangeReport::attempts counts each request once), and writes the call's log
//    line: info for OK, NOT_FOUND and INVALID_ARGUMENT, warn otherwise. calls_in_flight goes up
//    in Started() and down in Report().
//  - InvalidateAfterWrite() drops the cached listings a write may have changed, on this replica
//    and (through `publish_invalidations`) the others, before the writer sees the answer; a write
//    that certainly did not execute (refused: INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED,
//    UNAUTHENTICATED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION) drops nothing.
//  - Audit() writes one `audit` line per write: caller, rpc, workspace, space, code, request
//    id, the ids the request named, the id a create made, and the error.
//  - No observer is required: without metrics or a logger those parts do nothing.
//
// Thread-safe; nothing here blocks on I/O (the logger buffers, see telemetry/logger.h).
#ifndef SAG_SERVICE_SERVER_ANSWER_H_
#define SAG_SERVICE_SERVER_ANSWER_H_

#include <google/protobuf/message.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "service/cache/listing_cache.h"
#include "service/common/clock.h"
#include "service/operations/operation_table.h"
#include "service/server/call.h"
#include "service/server/exchange.h"
#include "service/telemetry/gateway_metrics.h"
#include "service/telemetry/logger.h"

namespace sag {

struct AnswerParts {
  Clock* clock = nullptr;                        // Required.
  telemetry::GatewayMetrics* metrics = nullptr;  // Optional.
  telemetry::Logger* logger = nullptr;           // Optional.
  cache::ListingCache* cache = nullptr;          // Optional: nothing to invalidate.
  // Tells the other replicas which listing tags a write dropped (Redis pub/sub); optional.
  std::function<void(const std::vector<std::string>& tags)> publish_invalidations;
};

class Answerer {
 public:
  explicit Answerer(AnswerParts parts) : parts_(std::move(parts)) {}

  void Started();
  // A call refused because the memory budget is full (memory_refused_total).
  void CountMemoryRefusal();
  void Report(const CallInfo& info, const absl::Status& status, const ExchangeReport& report);
  // Counts a listing's cache outcome (info.cache) when a cache is configured.
  void CountCacheOutcome(const CallInfo& info);
  void InvalidateAfterWrite(const std::string& workspace, const ops::Operation& op,
                            const google::protobuf::Message& request, const absl::Status& status);
  void Audit(const CallInfo& info, const google::protobuf::Message& request,
             const google::protobuf::Message* response, const absl::Status& status);

 private:
  void WriteCallLine(const CallInfo& info, const absl::Status& status, const ExchangeReport& report,
                     absl::string_view code, absl::Duration latency);

  const AnswerParts parts_;
};

// The string field `name` of `m`, or "" (no such string field).
std::string StringField(const google::protobuf::Message& m, const char* name);

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_ANSWER_H_
