// The audiences-gateway command-line flags (each may also be set in the --config file; the command
// line wins). Defined in flags.cc, the one file whose flags `--help` lists; read them only through
// ServerConfigFromFlags() (server_config.h), which validates them.
#ifndef SAG_SERVICE_APP_FLAGS_H_
#define SAG_SERVICE_APP_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "absl/time/time.h"
#include "service/telemetry/logger.h"

ABSL_DECLARE_FLAG(std::string, listen);
ABSL_DECLARE_FLAG(std::string, upstream_url);
ABSL_DECLARE_FLAG(std::string, token_file);
ABSL_DECLARE_FLAG(std::string, config);
ABSL_DECLARE_FLAG(std::string, metrics_listen);
ABSL_DECLARE_FLAG(std::string, rate_limits);
ABSL_DECLARE_FLAG(absl::Duration, cache_ttl);
ABSL_DECLARE_FLAG(int64_t, cache_max_bytes);
ABSL_DECLARE_FLAG(absl::Duration, cache_stale_while_revalidate);
ABSL_DECLARE_FLAG(absl::Duration, cache_stale_if_error);
ABSL_DECLARE_FLAG(std::string, redis_url);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, client_ca);
ABSL_DECLARE_FLAG(int, replicas);
ABSL_DECLARE_FLAG(int, redis_connections);
ABSL_DECLARE_FLAG(absl::Duration, upstream_timeout);
ABSL_DECLARE_FLAG(int, upstream_max_connections);
ABSL_DECLARE_FLAG(int, queue_max);
ABSL_DECLARE_FLAG(double, batch_min_share);
ABSL_DECLARE_FLAG(std::string, max_memory);
ABSL_DECLARE_FLAG(int, upstream_max_attempts);
ABSL_DECLARE_FLAG(int, preview_monthly_quota);
ABSL_DECLARE_FLAG(std::string, preview_quota_file);
ABSL_DECLARE_FLAG(absl::Duration, idempotency_ttl);
ABSL_DECLARE_FLAG(int, idempotency_max_entries);
ABSL_DECLARE_FLAG(absl::Duration, shutdown_grace);
ABSL_DECLARE_FLAG(sag::telemetry::LogLevel, log_level);

#endif  // SAG_SERVICE_APP_FLAGS_H_
