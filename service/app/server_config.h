// Everything audiences-gateway needs to start, read once from its flags and its --config file and
// validated: ServerConfigFromFlags() either returns a config every component accepts, or an
// InvalidArgument whose message names the bad flag or key ("--replicas must be at least 1",
// "config: unknown key 'foo' (line 3)"). Nothing is started and no thread is created here.
//
//   std::set<std::string> given = sag::config::FlagsSetOnCommandLine(argc, argv);
//   sag::cli::ParseCommandLineOrExit(argc, argv, program);
//   absl::StatusOr<sag::app::ServerConfig> config = sag::app::ServerConfigFromFlags(given);
//
// Not thread-safe (reads and, from the config file, sets absl flags): call from main().
#ifndef SAG_SERVICE_APP_SERVER_CONFIG_H_
#define SAG_SERVICE_APP_SERVER_CONFIG_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/auth/access.h"
#include "service/config/config.h"
#include "service/ratelimit/limits.h"
#include "service/telemetry/logger.h"

namespace sag::app {

struct ServerConfig {
  std::string listen;          // gRPC address, host:port
  std::string metrics_listen;  // "" = no /metrics listener
  std::string upstream_url;    // as given; normalized by the Gateway
  std::string shown_upstream;  // upstream_url normalized, for the start-up line
  telemetry::LogLevel log_level = telemetry::LogLevel::kInfo;
  absl::Duration shutdown_grace;  // in-flight calls' time after SIGTERM

  // From the config's `workspaces`, else one "default" from --token_file (or the environment's
  // SEGMENT_API_TOKEN when token_file is empty). Never empty.
  std::vector<config::WorkspaceConfig> workspaces;
  auth::AccessPolicy access;  // The `callers` and `access` sections.

  ratelimit::LimitOverrides rate_limits;  // --rate_limits
  std::optional<ratelimit::Limit> api_default;
  size_t queue_max = 0;
  double batch_min_share = 0.1;  // --batch_min_share, 0..1
  int upstream_max_attempts = 0;
  absl::Duration upstream_timeout;
  int upstream_max_connections = 0;

  int64_t max_memory = 0;         // --max_memory resolved (auto: from the cgroup limit), bytes
  std::string max_memory_source;  // how it was chosen, for the start-up line

  int64_t cache_max_bytes = 0;  // 0 = no cache
  absl::Duration cache_ttl;
  absl::Duration cache_stale_while_revalidate;
  absl::Duration cache_stale_if_error;

  std::string redis_url;    // "" = in-process state
  std::string shown_redis;  // redis_url without its password, for logs
  int replicas = 1;
  int redis_connections = 8;  // With redis_url: the pool, and the limiter's timer-work threads.
  int preview_monthly_quota = 0;
  std::string preview_quota_file;

  absl::Duration idempotency_ttl;      // --idempotency_ttl, > 0
  size_t idempotency_max_entries = 0;  // --idempotency_max_entries, >= 1

  // PEM contents read from --tls_cert/--tls_key/--client_ca; all empty = plaintext.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  std::string client_ca_pem;
};

// The exit code for a configuration error (bad flag value, bad config file).
inline constexpr int kConfigErrorExitCode = config::kConfigErrorExitCode;

// Reads the flags (after absl::ParseCommandLine), applies the --config file (flags in
// `given_on_command_line` win over it), parses its sections and checks every value.
absl::StatusOr<ServerConfig> ServerConfigFromFlags(
    const std::set<std::string>& given_on_command_line);

}  // namespace sag::app

#endif  // SAG_SERVICE_APP_SERVER_CONFIG_H_
