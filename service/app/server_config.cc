#include "service/app/server_config.h"

#include <fstream>
#include <sstream>
#include <tuple>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "service/app/flags.h"
#include "service/common/memory_budget.h"
#include "service/operations/operation_table.h"
#include "service/redis/redis_client.h"
#include "service/server/gateway.h"

namespace sag::app {
namespace {

absl::Status Bad(absl::string_view message) { return absl::InvalidArgumentError(message); }

std::vector<absl::string_view> RpcNames(bool writes_only) {
  std::vector<absl::string_view> names;
  for (const auto& op : ops::Operations()) {
    if (!writes_only || !op.idempotent) names.push_back(op.rpc);
  }
  return names;
}

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Bad(absl::StrCat("--", flag, ": cannot read ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// The --config file: flags it names (the command line wins), workspaces, callers and access.
absl::Status ApplyConfigFile(const std::set<std::string>& given, ServerConfig* c) {
  YAML::Node root;
  if (std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    absl::StatusOr<YAML::Node> loaded = config::LoadConfigFile(path);
    if (!loaded.ok()) return Bad(loaded.status().message());
    root = *loaded;
    if (absl::Status st = config::ApplyFlagsFromConfig(root, given); !st.ok()) return st;
    absl::StatusOr<std::vector<config::WorkspaceConfig>> ws = config::ParseWorkspaces(root);
    if (!ws.ok()) return ws.status();
    c->workspaces = *std::move(ws);
  }
  if (!c->workspaces.empty() && given.count("token_file") > 0) {
    return Bad("--token_file and the config's `workspaces` both name tokens; use one");
  }
  absl::StatusOr<auth::AccessPolicy> access =
      auth::AccessPolicy::Parse(root, RpcNames(false), RpcNames(true));
  if (!access.ok()) return access.status();
  c->access = *std::move(access);
  if (c->workspaces.empty()) {
    config::WorkspaceConfig ws;
    ws.name = "default";
    ws.token_file = absl::GetFlag(FLAGS_token_file);
    c->workspaces.push_back(std::move(ws));
  }
  return absl::OkStatus();
}

absl::Status ReadLimits(ServerConfig* c) {
  absl::StatusOr<ratelimit::LimitOverrides> overrides =
      ratelimit::ParseRateLimits(absl::GetFlag(FLAGS_rate_limits), RpcNames(false));
  if (!overrides.ok()) return Bad(absl::StrCat("--rate_limits: ", overrides.status().message()));
  c->rate_limits = *overrides;
  if (auto it = overrides->find(ratelimit::kDefaultOp); it != overrides->end()) {
    c->api_default = it->second;
  }
  if (absl::GetFlag(FLAGS_queue_max) < 1) return Bad("--queue_max must be at least 1");
  c->queue_max = static_cast<size_t>(absl::GetFlag(FLAGS_queue_max));
  c->batch_min_share = absl::GetFlag(FLAGS_batch_min_share);
  if (!(c->batch_min_share >= 0 && c->batch_min_share <= 1)) {  // NaN fails both.
    return Bad(absl::StrCat("--batch_min_share must be a fraction from 0 to 1, got ",
                            absl::GetFlag(FLAGS_batch_min_share)));
  }
  c->upstream_max_attempts = absl::GetFlag(FLAGS_upstream_max_attempts);
  if (c->upstream_max_attempts < 1) return Bad("--upstream_max_attempts must be >= 1");
  c->upstream_timeout = absl::GetFlag(FLAGS_upstream_timeout);
  if (c->upstream_timeout <= absl::ZeroDuration()) {
    return Bad("--upstream_timeout must be positive");
  }
  c->upstream_max_connections = absl::GetFlag(FLAGS_upstream_max_connections);
  if (c->upstream_max_connections < 1) {
    return Bad("--upstream_max_connections must be at least 1");
  }
  c->redis_connections = absl::GetFlag(FLAGS_redis_connections);
  if (c->redis_connections < 1 || c->redis_connections > 64) {
    return Bad("--redis_connections must be from 1 to 64");
  }
  c->replicas = absl::GetFlag(FLAGS_replicas);
  if (c->replicas < 1) return Bad("--replicas must be at least 1");
  c->preview_monthly_quota = absl::GetFlag(FLAGS_preview_monthly_quota);
  c->preview_quota_file = absl::GetFlag(FLAGS_preview_quota_file);
  c->idempotency_ttl = absl::GetFlag(FLAGS_idempotency_ttl);
  if (c->idempotency_ttl <= absl::ZeroDuration()) return Bad("--idempotency_ttl must be positive");
  if (absl::GetFlag(FLAGS_idempotency_max_entries) < 1) {
    return Bad("--idempotency_max_entries must be at least 1");
  }
  c->idempotency_max_entries = static_cast<size_t>(absl::GetFlag(FLAGS_idempotency_max_entries));
  return absl::OkStatus();
}

absl::Status ReadCache(ServerConfig* c) {
  c->cache_ttl = absl::GetFlag(FLAGS_cache_ttl);
  if (c->cache_ttl < absl::ZeroDuration()) return Bad("--cache_ttl must be >= 0");
  c->cache_max_bytes = absl::GetFlag(FLAGS_cache_max_bytes);
  if (c->cache_max_bytes < 0) return Bad("--cache_max_bytes must be >= 0");
  c->cache_stale_while_revalidate = absl::GetFlag(FLAGS_cache_stale_while_revalidate);
  c->cache_stale_if_error = absl::GetFlag(FLAGS_cache_stale_if_error);
  if (c->cache_max_bytes > 0 && (c->cache_stale_while_revalidate < absl::ZeroDuration() ||
                                 c->cache_stale_if_error < absl::ZeroDuration())) {
    return Bad(
        "--cache_stale_while_revalidate and --cache_stale_if_error must "
        "be >= 0");
  }
  return absl::OkStatus();
}

// --max_memory: a size, or auto (from the container's cgroup limit, else the machine's memory).
absl::Status ReadMemory(ServerConfig* c) {
  absl::StatusOr<MemoryBudgetChoice> choice =
      ChooseMemoryBudget(absl::GetFlag(FLAGS_max_memory), "/sys/fs/cgroup", PhysicalMemoryBytes());
  if (!choice.ok()) return choice.status();
  c->max_memory = choice->bytes;
  c->max_memory_source = choice->source;
  return absl::OkStatus();
}

// Plaintext, TLS (--tls_cert/--tls_key) or mutual TLS (and --client_ca).
absl::Status ReadTls(ServerConfig* c) {
  const std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key),
                    ca = absl::GetFlag(FLAGS_client_ca);
  if (cert.empty() && key.empty()) {
    if (!ca.empty()) return Bad("--client_ca needs --tls_cert and --tls_key");
    return absl::OkStatus();
  }
  if (cert.empty() || key.empty()) return Bad("--tls_cert and --tls_key go together");
  for (auto [flag, path, out] : {std::make_tuple("tls_key", key, &c->tls_key_pem),
                                 std::make_tuple("tls_cert", cert, &c->tls_cert_pem),
                                 std::make_tuple("client_ca", ca, &c->client_ca_pem)}) {
    if (path.empty()) continue;
    absl::StatusOr<std::string> pem = ReadPem(flag, path);
    if (!pem.ok()) return pem.status();
    *out = *std::move(pem);
  }
  return absl::OkStatus();
}

absl::Status ReadAddresses(ServerConfig* c) {
  c->listen = absl::GetFlag(FLAGS_listen);
  c->metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  c->upstream_url = absl::GetFlag(FLAGS_upstream_url);
  c->shown_upstream = NormalizeBaseUrl(c->upstream_url).value_or("?");
  c->redis_url = absl::GetFlag(FLAGS_redis_url);
  if (!c->redis_url.empty()) {
    absl::StatusOr<redis::RedisUrl> parsed = redis::ParseRedisUrl(c->redis_url);
    if (!parsed.ok()) return Bad(absl::StrCat("--redis_url: ", parsed.status().message()));
    c->shown_redis = redis::RedactedUrl(*parsed);
  }
  c->log_level = absl::GetFlag(FLAGS_log_level);
  c->shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServerConfig> ServerConfigFromFlags(const std::set<std::string>& given) {
  ServerConfig c;
  if (absl::Status st = ApplyConfigFile(given, &c); !st.ok()) return st;
  for (absl::Status (*step)(ServerConfig*) :
       {ReadAddresses, ReadLimits, ReadMemory, ReadCache, ReadTls}) {
    if (absl::Status st = step(&c); !st.ok()) return st;
  }
  return c;
}

}  // namespace sag::app
