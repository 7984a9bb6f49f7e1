#include "service/app/flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC listen address, host:port (port 0 picks a free port and prints it).");
ABSL_FLAG(std::string, upstream_url, "https://api.segmentapis.com",
          "Segment Public API base URL (EU workspaces: "
          "https://eu1.api.segmentapis.com).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the Segment bearer token, re-read when it changes. "
          "Without it the "
          "token comes from the SEGMENT_API_TOKEN environment variable.");
ABSL_FLAG(std::string, config, "",
          "YAML or JSON file: any flag by name (the command line wins), and "
          "`workspaces` "
          "(name, token_file, spaces, upstream_url).");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9464",
          "HTTP address serving Prometheus /metrics; empty disables it.");
ABSL_FLAG(std::string, rate_limits, "",
          "Per-operation limit overrides, OP=N/DURATION,... with OP an RPC "
          "name or `default` "
          "(operations without a documented limit; 60/1m when unset), e.g. "
          "ListAudiences=30/1m,default=100/1m.");
ABSL_FLAG(absl::Duration, cache_ttl, absl::Seconds(30),
          "Listing cache freshness: how long a listing is answered from the "
          "cache (x-cache: hit).");
ABSL_FLAG(int64_t, cache_max_bytes, 64 << 20,
          "Listing cache size bound in bytes (least recently used entries are "
          "evicted); 0 "
          "disables the cache.");
ABSL_FLAG(absl::Duration, cache_stale_while_revalidate, absl::Seconds(30),
          "After --cache_ttl, how long a listing is still answered (x-cache: "
          "stale) while one "
          "background call refreshes it.");
ABSL_FLAG(absl::Duration, cache_stale_if_error, absl::Minutes(5),
          "After --cache_ttl, how long a listing may be answered (x-cache: stale) "
          "when the "
          "upstream fails or the rate-limit wait exceeds the caller's deadline.");
ABSL_FLAG(std::string, redis_url, "",
          "Redis for limits and cache shared by several replicas; none = "
          "in-process.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the gRPC port; with --tls_key, serves TLS "
          "(else plaintext).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, client_ca, "",
          "PEM CA bundle: require and verify client certificates (mutual TLS); "
          "their SAN/CN "
          "name the caller.");
ABSL_FLAG(int, redis_connections, 8,
          "Connections to Redis (1..64): round trips of different rate-limit lanes overlap on "
          "them.");
ABSL_FLAG(int, replicas, 1,
          "Replicas sharing the budget (with --redis_url): while Redis is "
          "unreachable each takes "
          "1/N of every limit.");
ABSL_FLAG(absl::Duration, upstream_timeout, absl::Seconds(30),
          "Longest wait for one upstream request (the caller's deadline may "
          "cut it shorter).");
ABSL_FLAG(int, upstream_max_connections, 64,
          "Most simultaneous connections to the upstream host (HTTP/2 "
          "multiplexes over fewer).");
ABSL_FLAG(int, queue_max, 10000,
          "Most calls waiting for a rate-limit slot per operation; more are "
          "refused with "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(double, batch_min_share, 0.1,
          "Fraction (0..1) of each operation's admissions kept for `batch` callers while "
          "`interactive` callers' calls wait too (config `callers[].priority`).");
ABSL_FLAG(std::string, max_memory, "auto",
          "Memory the gateway may hold for calls (parked and in flight) and the listing cache, "
          "with a unit (400Mi, 1G; at least 40Mi); past it new calls are refused with "
          "RESOURCE_EXHAUSTED. auto: 75% of the container's cgroup memory limit, else of the "
          "machine's memory.");
ABSL_FLAG(int, upstream_max_attempts, 5,
          "Attempts (first one included) of a read on 5xx, connection failure "
          "or upstream timeout.");
ABSL_FLAG(int, preview_monthly_quota, 700,
          "CreateAudiencePreview calls allowed per space per calendar month (UTC).");
ABSL_FLAG(std::string, preview_quota_file, "",
          "State file keeping the monthly preview counts across restarts; "
          "empty = in memory.");
ABSL_FLAG(absl::Duration, idempotency_ttl, absl::Hours(24),
          "How long a write's answer is kept for repeats with the same idempotency-key.");
ABSL_FLAG(int, idempotency_max_entries, 10000,
          "Idempotency keys kept in memory (claimed or answered; least recently used answers "
          "are evicted; when all are in progress a new key is refused).");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(20),
          "On SIGTERM/SIGINT, how long in-flight and queued calls may take to "
          "finish.");
ABSL_FLAG(sag::telemetry::LogLevel, log_level, sag::telemetry::LogLevel::kInfo,
          "Least level logged: debug, info, warn or error.");
