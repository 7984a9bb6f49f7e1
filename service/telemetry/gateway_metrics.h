// The gateway's metrics, declared in one place. Each component takes the families it reports to
// (e.g. `metrics->upstream_requests`), looks its children up once (WithLabels) and updates them
// lock-free on the hot path.
//
// Naming: `audiences_gateway_<subsystem>_<what>[_<unit>]`, base units (seconds, bytes), counters
// end in `_total`. Label vocabularies are small and fixed:
//   rpc, operation  the RPC name in PascalCase ("ListAudiences"); operations are named as RPCs
//   code            the gRPC status code name ("OK", "NOT_FOUND", "RESOURCE_EXHAUSTED")
//   status          the upstream HTTP status ("200", "429"), or "error" when no HTTP response came
//                   back (connection failure, timeout, cancelled)
//   result          per family, listed below
//   workspace       a configured workspace name (never a caller-supplied string)
//   caller          a configured caller name (config `callers`), or "other" for every caller
//                   that is not configured (never a caller-supplied string)
//   class           a caller's priority class: interactive | batch
//
// Thread safety: the struct is immutable after Create(); the families are thread-safe.
// Ownership: the families belong to the Registry given to Create(), which must outlive this.
#ifndef SAG_SERVICE_TELEMETRY_GATEWAY_METRICS_H_
#define SAG_SERVICE_TELEMETRY_GATEWAY_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/telemetry/metrics.h"

namespace sag {
namespace telemetry {

struct GatewayMetrics {
  // Registers every family on `registry` and sets build_info{version} to 1. Fails only when a
  // name is already taken (e.g. called twice on the same registry).
  static absl::StatusOr<std::unique_ptr<GatewayMetrics>> Create(Registry* registry,
                                                                absl::string_view version);

  // ---- gRPC side -------------------------------------------------------------------------------
  // audiences_gateway_calls_total{rpc,code}: finished calls by RPC and gRPC code, including the
  // ones the gateway rejected itself (INVALID_ARGUMENT) or refused during shutdown (UNAVAILABLE).
  CounterFamily* calls = nullptr;
  // audiences_gateway_call_duration_seconds{rpc}: time from receiving a call to sending its
  // status, queue wait and retries included.
  HistogramFamily* call_duration = nullptr;
  // audiences_gateway_calls_in_flight: calls received and not yet finished (queued ones too).
  GaugeFamily* calls_in_flight = nullptr;

  // ---- upstream (Segment Public API) -----------------------------------------------------------
  // audiences_gateway_upstream_requests_total{operation,status}: HTTP requests sent upstream, by
  // HTTP status ("error" when none came back). Retries count as separate requests.
  CounterFamily* upstream_requests = nullptr;
  // audiences_gateway_upstream_duration_seconds{operation}: one upstream HTTP request, from send
  // to the last byte of the response (each attempt separately).
  HistogramFamily* upstream_duration = nullptr;
  // audiences_gateway_upstream_429_total{operation}: 429 Too Many Requests received upstream
  // (absorbed by a retry or not). Should stay near 0: the limiter exists to prevent them.
  CounterFamily* upstream_429 = nullptr;
  // audiences_gateway_upstream_retries_total{operation}: requests re-sent after a 429, a 5xx or a
  // connection failure.
  CounterFamily* upstream_retries = nullptr;
  // audiences_gateway_upstream_auth_failures_total{workspace,status}: 401/403 answers to the
  // workspace's calls (its token is rejected; status "401" or "403").
  CounterFamily* upstream_auth_failures = nullptr;
  // audiences_gateway_upstream_auth_rejected{workspace}: 1 from the workspace's first 401/403
  // until its next successful upstream answer, else 0 (its health entry is NOT_SERVING meanwhile).
  GaugeFamily* upstream_auth_rejected = nullptr;

  // ---- rate limiter ----------------------------------------------------------------------------
  // audiences_gateway_queue_depth{operation}: calls waiting for a rate-limit slot right now (set
  // it, or attach a callback with Gauge::SetCallback).
  GaugeFamily* queue_depth = nullptr;
  // audiences_gateway_queue_wait_seconds{operation}: time calls waited for a slot (0 for calls
  // that did not wait); buckets up to 10 minutes, as some operations allow 5 calls a minute.
  HistogramFamily* queue_wait = nullptr;
  // audiences_gateway_ratelimit_rejected_total{operation}: calls refused with RESOURCE_EXHAUSTED
  // because no slot would free up before their deadline (or the queue was full).
  CounterFamily* ratelimit_rejected = nullptr;
  // audiences_gateway_caller_admitted_total{caller,class}: calls given a slot (at once or after
  // waiting), per caller and priority class.
  CounterFamily* caller_admitted = nullptr;
  // audiences_gateway_caller_queue_wait_seconds{caller,class}: the queue wait of those calls.
  HistogramFamily* caller_queue_wait = nullptr;
  // audiences_gateway_caller_refused_total{caller,class}: calls the limiter refused
  // (RESOURCE_EXHAUSTED: queue full or wait beyond the deadline; DEADLINE_EXCEEDED in the queue).
  CounterFamily* caller_refused = nullptr;

  // ---- listing cache ---------------------------------------------------------------------------
  // audiences_gateway_cache_requests_total{rpc,result}: listing calls by cache outcome, result =
  // hit | miss | stale | bypass (the x-cache values).
  CounterFamily* cache_requests = nullptr;
  // audiences_gateway_cache_entries: entries in the cache now.
  GaugeFamily* cache_entries = nullptr;
  // audiences_gateway_cache_bytes: approximate bytes held by cache entries now.
  GaugeFamily* cache_bytes = nullptr;
  // audiences_gateway_cache_evictions_total: entries dropped to stay within the size limit
  // (expiry and invalidation by writes are not evictions).
  CounterFamily* cache_evictions = nullptr;

  // ---- memory budget (--max_memory) ---------------------------------------------------------
  // audiences_gateway_memory_refused_total: calls refused with RESOURCE_EXHAUSTED because the
  // memory budget was full.
  CounterFamily* memory_refused = nullptr;
  // audiences_gateway_memory_in_use_bytes: the budget in use: the process reserve, accepted
  // calls (parked and in flight) and the listing cache.
  GaugeFamily* memory_in_use = nullptr;
  // audiences_gateway_memory_limit_bytes: the budget (--max_memory, resolved).
  GaugeFamily* memory_limit = nullptr;

  // ---- tokens and build ------------------------------------------------------------------------
  // audiences_gateway_token_reloads_total{workspace,result}: token file (re)loads, result = ok |
  // error (unreadable or empty file; the previous token stays in use).
  CounterFamily* token_reloads = nullptr;
  // audiences_gateway_redis_degraded: 1 while Redis (--redis_url) is unreachable and the rate
  // limits use this replica's 1/N share of every budget; 0 otherwise (and without Redis).
  GaugeFamily* redis_degraded = nullptr;
  // audiences_gateway_build_info{version}: always 1; the version is in the label.
  GaugeFamily* build_info = nullptr;

  // Bucket bounds used above, in seconds.
  static std::vector<double> CallDurationBuckets();  // 1 ms .. 60 s
  static std::vector<double> QueueWaitBuckets();     // 1 ms .. 600 s
};

}  // namespace telemetry
}  // namespace sag

#endif  // SAG_SERVICE_TELEMETRY_GATEWAY_METRICS_H_
