// audiences-gateway: flags and wiring only.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.pb.h"
#include "service/auth/access.h"
#include "service/auth/token_source.h"
#include "service/cache/in_memory_store.h"
#include "service/cache/listing_cache.h"
#include "service/common/bind_check.h"
#include "service/common/cli.h"
#include "service/common/clock.h"
#include "service/config/config.h"
#include "service/operations/operation_table.h"
#include "service/ratelimit/budget_store.h"
#include "service/ratelimit/limiter.h"
#include "service/ratelimit/limits.h"
#include "service/ratelimit/preview_quota.h"
#include "service/ratelimit/retry.h"
#include "service/redis/redis_budget_store.h"
#include "service/redis/redis_client.h"
#include "service/redis/redis_invalidation.h"
#include "service/redis/redis_preview_quota.h"
#include "service/server/audiences_service.h"
#include "service/server/gateway.h"
#include "service/telemetry/gateway_metrics.h"
#include "service/telemetry/logger.h"
#include "service/telemetry/metrics.h"
#include "service/telemetry/metrics_server.h"
#include "service/upstream/curl_multi_client.h"

#ifndef SAG_VERSION
#define SAG_VERSION "0.0.0"
#endif

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC listen address, host:port (port 0 picks a free port and prints it).");
ABSL_FLAG(std::string, upstream_url, "https://api.segmentapis.com",
          "Segment Public API base URL (EU workspaces: https://eu1.api.segmentapis.com).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the Segment bearer token, re-read when it changes. Without it the "
          "token comes from the SEGMENT_API_TOKEN environment variable.");
ABSL_FLAG(std::string, config, "",
          "YAML or JSON file: any flag by name (the command line wins), and `workspaces` "
          "(name, token_file, spaces, upstream_url).");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9464",
          "HTTP address serving Prometheus /metrics; empty disables it.");
ABSL_FLAG(std::string, rate_limits, "",
          "Per-operation limit overrides, OP=N/DURATION,... with OP an RPC name or `default` "
          "(operations without a documented limit; 60/1m when unset), e.g. "
          "ListAudiences=30/1m,default=100/1m.");
ABSL_FLAG(std::string, cache_ttl, "30s", "Listing cache freshness (an absl duration).");
ABSL_FLAG(int64_t, cache_max_bytes, 64 << 20,
          "Listing cache size bound in bytes (least recently used entries are evicted); 0 "
          "disables the cache.");
ABSL_FLAG(absl::Duration, cache_stale_while_revalidate, absl::Seconds(30),
          "After --cache_ttl, how long a listing is still answered (x-cache: stale) while one "
          "background call refreshes it.");
ABSL_FLAG(absl::Duration, cache_stale_if_error, absl::Minutes(5),
          "After --cache_ttl, how long a listing may be answered (x-cache: stale) when the "
          "upstream fails or the rate-limit wait exceeds the caller's deadline.");
ABSL_FLAG(std::string, redis_url, "",
          "Redis for limits and cache shared by several replicas; none = in-process.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the gRPC port; with --tls_key, serves TLS (else plaintext).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, client_ca, "",
          "PEM CA bundle: require and verify client certificates (mutual TLS); their SAN/CN "
          "name the caller.");
ABSL_FLAG(int, replicas, 1,
          "Replicas sharing the budget (with --redis_url): while Redis is unreachable each takes "
          "1/N of every limit.");
ABSL_FLAG(absl::Duration, upstream_timeout, absl::Seconds(30),
          "Longest wait for one upstream request (the caller's deadline may cut it shorter).");
ABSL_FLAG(int, upstream_max_connections, 64,
          "Most simultaneous connections to the upstream host (HTTP/2 multiplexes over fewer).");
ABSL_FLAG(int, queue_max, 10000,
          "Most calls waiting for a rate-limit slot per operation; more are refused with "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(
    int, upstream_max_attempts, 5,
    "Attempts (first one included) of a read on 5xx, connection failure or upstream timeout.");
ABSL_FLAG(int, preview_monthly_quota, 700,
          "CreateAudiencePreview calls allowed per space per calendar month (UTC).");
ABSL_FLAG(std::string, preview_quota_file, "",
          "State file keeping the monthly preview counts across restarts; empty = in memory.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(20),
          "On SIGTERM/SIGINT, how long in-flight and queued calls may take to finish.");
ABSL_FLAG(sag::telemetry::LogLevel, log_level, sag::telemetry::LogLevel::kInfo,
          "Least level logged: debug, info, warn or error.");

namespace {

constexpr char kServiceName[] = "segment.audiences.v1.AudiencesService";

[[noreturn]] void Die(const std::string& message, int code = 2) {
  std::cerr << "audiences-gateway: " << message << std::endl;
  std::exit(code);
}

std::vector<absl::string_view> RpcNames() {
  std::vector<absl::string_view> names;
  for (const auto& op : sag::ops::Operations()) names.push_back(op.rpc);
  return names;
}

std::vector<absl::string_view> WriteRpcNames() {
  std::vector<absl::string_view> names;
  for (const auto& op : sag::ops::Operations()) {
    if (!op.idempotent) names.push_back(op.rpc);
  }
  return names;
}

std::string ReadFileOrDie(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("--" + flag + ": cannot read " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Plaintext, TLS (--tls_cert/--tls_key) or mutual TLS (and --client_ca).
std::shared_ptr<grpc::ServerCredentials> ServerCredentials() {
  std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key),
              ca = absl::GetFlag(FLAGS_client_ca);
  if (cert.empty() && key.empty()) {
    if (!ca.empty()) Die("--client_ca needs --tls_cert and --tls_key");
    return grpc::InsecureServerCredentials();
  }
  if (cert.empty() || key.empty()) Die("--tls_cert and --tls_key go together");
  grpc::SslServerCredentialsOptions ssl(
      ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                 : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_key_cert_pairs.push_back(
      {ReadFileOrDie("tls_key", key), ReadFileOrDie("tls_cert", cert)});
  if (!ca.empty()) ssl.pem_root_certs = ReadFileOrDie("client_ca", ca);
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

int main(int argc, char** argv) {
  const sag::cli::Program program{
      "audiences-gateway",
      "audiences-gateway: gRPC gateway to Segment's Public API Audiences operations.\n"
      "Usage: audiences-gateway [--config=FILE] [--listen=ADDR] [--upstream_url=URL]\n"
      "                         [--token_file=FILE] ...",
      SAG_VERSION, [](absl::string_view file) { return absl::EndsWith(file, "service/main.cc"); }};
  // Debian's Abseil checks every mutex acquisition for lock-order cycles (a debugging aid that
  // costs ~5% CPU on the hit path); the gateway's locks are tested by their own unit tests.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::set<std::string> given = sag::config::FlagsSetOnCommandLine(argc, argv);
  sag::cli::ParseCommandLineOrExit(argc, argv, program);

  // The config file: flags it names (the command line wins), and the workspace.
  std::vector<sag::config::WorkspaceConfig> workspace_configs;
  YAML::Node config_root;
  if (std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    auto root = sag::config::LoadConfigFile(path);
    if (!root.ok()) Die(std::string(root.status().message()), sag::config::kConfigErrorExitCode);
    config_root = *root;
    absl::Status applied = sag::config::ApplyFlagsFromConfig(*root, given);
    if (!applied.ok()) Die(std::string(applied.message()), sag::config::kConfigErrorExitCode);
    auto workspaces = sag::config::ParseWorkspaces(*root);
    if (!workspaces.ok()) {
      Die(std::string(workspaces.status().message()), sag::config::kConfigErrorExitCode);
    }
    workspace_configs = *workspaces;
  }
  if (!workspace_configs.empty() && given.count("token_file") > 0) {
    Die("--token_file and the config's `workspaces` both name tokens; use one",
        sag::config::kConfigErrorExitCode);
  }
  auto access = sag::auth::AccessPolicy::Parse(config_root, RpcNames(), WriteRpcNames());
  if (!access.ok()) Die(std::string(access.status().message()), sag::config::kConfigErrorExitCode);

  sag::telemetry::Logger logger(absl::GetFlag(FLAGS_log_level));
  if (absl::GetFlag(FLAGS_replicas) < 1) Die("--replicas must be at least 1");
  absl::Duration cache_ttl;
  if (!absl::ParseDuration(absl::GetFlag(FLAGS_cache_ttl), &cache_ttl) ||
      cache_ttl < absl::ZeroDuration()) {
    Die("--cache_ttl: not a duration: '" + absl::GetFlag(FLAGS_cache_ttl) + "'");
  }

  // Signals are taken by a dedicated thread; block them everywhere else first.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Workspaces: from the config, else one named "default" from --token_file or the environment.
  if (workspace_configs.empty()) {
    sag::config::WorkspaceConfig ws;
    ws.name = "default";
    ws.token_file = absl::GetFlag(FLAGS_token_file);
    workspace_configs.push_back(ws);
  }
  sag::telemetry::Registry registry;
  auto metrics = sag::telemetry::GatewayMetrics::Create(&registry, SAG_VERSION);
  if (!metrics.ok()) Die(std::string(metrics.status().message()), 1);
  sag::telemetry::GatewayMetrics* m = metrics->get();

  std::vector<std::unique_ptr<sag::auth::TokenSource>> token_sources;
  std::vector<sag::Workspace> workspaces;
  for (const auto& wc : workspace_configs) {
    std::unique_ptr<sag::auth::TokenSource> tokens;
    if (!wc.token_file.empty()) {
      std::string name = wc.name;
      tokens = std::make_unique<sag::auth::FileTokenSource>(
          wc.token_file, absl::Seconds(1), [m, &logger, name](bool ok, const std::string& why) {
            m->token_reloads->WithLabels({name, ok ? "ok" : "error"})->Increment();
            if (ok) {
              logger.Info("token loaded", {{"workspace", name}});
            } else {
              logger.Warn("token not loaded; the last good token stays in use",
                          {{"workspace", name}, {"reason", why}});
            }
          });
    } else {
      const char* env = std::getenv("SEGMENT_API_TOKEN");
      tokens = std::make_unique<sag::auth::StaticTokenSource>(env != nullptr ? env : "");
    }
    if (auto t = tokens->Token(); t.ok()) {
      logger.AddSecret(*t);
    } else {
      logger.Warn("no Segment token yet; calls fail with UNAVAILABLE until one is loaded",
                  {{"workspace", wc.name}, {"reason", std::string(t.status().message())}});
    }
    sag::Workspace ws;
    ws.name = wc.name;
    ws.tokens = tokens.get();
    ws.spaces.insert(wc.spaces.begin(), wc.spaces.end());
    if (wc.upstream_url) ws.upstream_url = *wc.upstream_url;
    workspaces.push_back(std::move(ws));
    token_sources.push_back(std::move(tokens));
  }

  // Rate limits.
  sag::GatewayOptions options;
  options.upstream_url = absl::GetFlag(FLAGS_upstream_url);
  auto overrides = sag::ratelimit::ParseRateLimits(absl::GetFlag(FLAGS_rate_limits), RpcNames());
  if (!overrides.ok()) Die("--rate_limits: " + std::string(overrides.status().message()));
  options.rate_limits = *overrides;
  if (auto it = overrides->find(std::string(sag::ratelimit::kDefaultOp)); it != overrides->end()) {
    options.api_default = it->second;
  }
  if (absl::GetFlag(FLAGS_queue_max) < 1) Die("--queue_max must be at least 1");
  if (absl::GetFlag(FLAGS_upstream_max_attempts) < 1) Die("--upstream_max_attempts must be >= 1");
  if (absl::GetFlag(FLAGS_upstream_timeout) <= absl::ZeroDuration()) {
    Die("--upstream_timeout must be positive");
  }

  // The cache is declared before the timers so that no timer can fire into a destroyed cache.
  std::unique_ptr<sag::cache::ListingCache> cache;
  std::shared_ptr<sag::cache::InMemoryStore> cache_store;
  if (absl::GetFlag(FLAGS_cache_max_bytes) < 0) Die("--cache_max_bytes must be >= 0");
  if (absl::GetFlag(FLAGS_cache_max_bytes) > 0) {
    sag::cache::InMemoryStore::Options so;
    so.max_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_cache_max_bytes));
    so.max_entry_bytes = std::min<size_t>(so.max_entry_bytes, so.max_bytes);
    cache_store = std::make_shared<sag::cache::InMemoryStore>(so);
    sag::cache::ListingCache::Options co;
    co.ttl = cache_ttl;
    co.stale_while_revalidate = absl::GetFlag(FLAGS_cache_stale_while_revalidate);
    co.stale_if_error = absl::GetFlag(FLAGS_cache_stale_if_error);
    if (co.stale_while_revalidate < absl::ZeroDuration() ||
        co.stale_if_error < absl::ZeroDuration()) {
      Die("--cache_stale_while_revalidate and --cache_stale_if_error must be >= 0");
    }
    cache = std::make_unique<sag::cache::ListingCache>(cache_store, co);
    m->cache_entries->Get()->SetCallback(
        [c = cache.get()] { return static_cast<double>(c->stats().store.entries); });
    m->cache_bytes->Get()->SetCallback(
        [c = cache.get()] { return static_cast<double>(c->stats().store.bytes); });
  }

  // Shared state: Redis when configured (limits, preview quota, cache invalidations), else
  // in-process. The Redis objects are declared before the timers and the limiter that use them.
  std::unique_ptr<sag::redis::RedisClient> redis;
  std::unique_ptr<sag::redis::RedisBudgetStore> redis_budget;
  std::unique_ptr<sag::redis::FallbackBudgetStore> fallback_budget;
  std::unique_ptr<sag::redis::RedisPreviewQuota> redis_quota;
  std::unique_ptr<sag::redis::RedisInvalidation> invalidation;
  if (std::string url = absl::GetFlag(FLAGS_redis_url); !url.empty()) {
    sag::redis::RedisOptions ro;
    ro.url = url;
    auto parsed = sag::redis::ParseRedisUrl(url);
    if (!parsed.ok()) Die("--redis_url: " + std::string(parsed.status().message()));
    ro.on_state_change = [&logger, shown = sag::redis::RedactedUrl(*parsed)](
                             bool up, const std::string& why) {
      if (up) {
        logger.Info("redis connected", {{"redis", shown}});
      } else {
        logger.Warn("redis unreachable; limits fall back to this replica's share",
                    {{"redis", shown}, {"reason", why}});
      }
    };
    auto client = sag::redis::RedisClient::Create(ro);
    if (!client.ok()) Die("--redis_url: " + std::string(client.status().message()));
    redis = std::move(*client);
    redis_budget = std::make_unique<sag::redis::RedisBudgetStore>(redis.get());
    sag::redis::FallbackOptions fo;
    fo.replicas = absl::GetFlag(FLAGS_replicas);
    fo.on_state_change = [&logger, m](bool degraded, const std::string& why) {
      m->redis_degraded->Get()->Set(degraded ? 1 : 0);
      if (degraded) {
        logger.Warn("rate limits degraded to the local 1/N share", {{"reason", why}});
      } else {
        logger.Info("rate limits shared through redis again", {{"reason", why}});
      }
    };
    fallback_budget = std::make_unique<sag::redis::FallbackBudgetStore>(redis_budget.get(), fo);
    sag::redis::RedisPreviewQuotaOptions qo;
    qo.limit = absl::GetFlag(FLAGS_preview_monthly_quota);
    redis_quota = std::make_unique<sag::redis::RedisPreviewQuota>(redis.get(), qo);
    if (cache) {
      sag::redis::InvalidationOptions io;
      io.on_tag = [c = cache.get()](const std::string& tag) { c->Invalidate(tag); };
      io.on_state_change = [&logger](bool up, const std::string& why) {
        if (!up) logger.Warn("cache invalidations from other replicas paused", {{"reason", why}});
      };
      auto inv = sag::redis::RedisInvalidation::Create(redis.get(), io);
      if (!inv.ok()) Die("--redis_url: " + std::string(inv.status().message()));
      invalidation = std::move(*inv);
    }
  }

  sag::RealTimers timers;
  sag::ratelimit::InProcessBudgetStore in_process_budget;
  sag::ratelimit::BudgetStore* budget =
      fallback_budget ? static_cast<sag::ratelimit::BudgetStore*>(fallback_budget.get())
                      : &in_process_budget;
  sag::ratelimit::LimiterOptions limiter_options;
  limiter_options.max_queue = static_cast<size_t>(absl::GetFlag(FLAGS_queue_max));
  limiter_options.on_answer = [m](const sag::ratelimit::AnswerEvent& e) {
    absl::string_view rpc = e.lane.substr(e.lane.rfind('/') + 1);
    if (e.outcome == sag::ratelimit::Outcome::kAdmitted) {
      m->queue_wait->WithLabels({std::string(rpc)})->ObserveDuration(e.waited);
    } else if (e.outcome == sag::ratelimit::Outcome::kQueueFull ||
               e.outcome == sag::ratelimit::Outcome::kDeadlineRefused) {
      m->ratelimit_rejected->WithLabels({std::string(rpc)})->Increment();
    }
  };
  sag::ratelimit::Limiter limiter(budget, sag::RealClock(), &timers, limiter_options);
  std::vector<std::string> workspace_names;
  for (const auto& ws : workspaces) workspace_names.push_back(ws.name);
  for (const auto& op : sag::ops::Operations()) {
    std::string rpc(op.rpc);
    m->queue_depth->WithLabels({rpc})->SetCallback([&limiter, workspace_names, rpc] {
      size_t depth = 0;
      for (const auto& ws : workspace_names)
        depth += limiter.QueueDepth(absl::StrCat(ws, "/", rpc));
      return static_cast<double>(depth);
    });
  }

  sag::ratelimit::PreviewQuotaOptions quota_options;
  quota_options.path = absl::GetFlag(FLAGS_preview_quota_file);
  quota_options.limit = absl::GetFlag(FLAGS_preview_monthly_quota);
  auto quota = sag::ratelimit::LocalPreviewQuota::Open(quota_options);
  if (!quota.ok()) Die("--preview_quota_file: " + std::string(quota.status().message()));
  sag::ratelimit::PreviewQuota* preview_quota =
      redis_quota ? static_cast<sag::ratelimit::PreviewQuota*>(redis_quota.get()) : quota->get();
  // Retries may add 20% to the requests, plus a floor of 10 a second (as Finagle's budget) so a
  // quiet gateway can still retry: at a 20% failure rate a call needs 25% retries on average.
  sag::ratelimit::RetryBudgetOptions retry_options;
  retry_options.ratio = 0.2;
  retry_options.min_retries = 100;
  retry_options.window = absl::Seconds(10);
  sag::ratelimit::RetryBudget retry_budget(sag::RealClock(), retry_options);
  sag::ratelimit::Backoff backoff;

  sag::upstream::CurlOptions curl;
  curl.max_host_connections = absl::GetFlag(FLAGS_upstream_max_connections);
  curl.user_agent = "segment-audiences-gateway/" SAG_VERSION;
  if (curl.max_host_connections < 1) Die("--upstream_max_connections must be at least 1");
  sag::upstream::CurlMultiClient http(curl);

  sag::ExchangeEnv env;
  env.http = &http;
  env.clock = sag::RealClock();
  env.timers = &timers;
  env.limiter = &limiter;
  env.quota = preview_quota;
  env.retry_budget = &retry_budget;
  env.backoff = &backoff;
  env.upstream_timeout = absl::GetFlag(FLAGS_upstream_timeout);
  env.max_attempts = absl::GetFlag(FLAGS_upstream_max_attempts);
  env.on_attempt = [m](absl::string_view rpc, long status, absl::Duration took) {
    std::string op(rpc);
    m->upstream_requests->WithLabels({op, status == 0 ? "error" : std::to_string(status)})
        ->Increment();
    m->upstream_duration->WithLabels({op})->ObserveDuration(took);
    if (status == 429) m->upstream_429->WithLabels({op})->Increment();
  };

  sag::GatewayObservers observers{m, &logger};
  sag::GatewayParts parts;
  parts.cache = cache.get();
  parts.access = &*access;
  if (invalidation) {
    parts.publish_invalidations = [&invalidation, &logger](const std::vector<std::string>& tags) {
      absl::Status st = invalidation->Publish(tags);
      if (!st.ok()) {
        logger.Warn(
            "could not tell other replicas about a write; their listings may be stale "
            "until --cache_ttl",
            {{"reason", std::string(st.message())}});
      }
    };
  }
  auto gateway = sag::Gateway::Create(options, &env, workspaces, parts, observers);
  if (!gateway.ok()) Die(std::string(gateway.status().message()));
  sag::AudiencesServiceImpl service(gateway->get());

  std::unique_ptr<sag::telemetry::MetricsServer> metrics_server;
  if (std::string addr = absl::GetFlag(FLAGS_metrics_listen); !addr.empty()) {
    sag::telemetry::MetricsServerOptions mo;
    mo.address = addr;
    metrics_server = std::make_unique<sag::telemetry::MetricsServer>(&registry, mo);
    absl::Status st = metrics_server->Start();
    if (!st.ok()) Die("--metrics_listen: " + std::string(st.message()), 1);
  }

  grpc::EnableDefaultHealthCheckService(true);
  // Links grpc/health/v1/health.proto's descriptors in (nothing else refers to them), so that
  // reflection can describe the built-in health service.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, ServerCredentials(), &port);
  // gRPC sets SO_REUSEPORT by default: a second server on the same port would start and silently
  // take half the connections. Off, a busy port fails to bind.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::string why = sag::BindError(listen);
    Die(absl::StrCat("--listen: cannot listen on ", listen, why.empty() ? "" : ": ", why), 1);
  }

  auto* health = server->GetHealthCheckService();
  absl::Notification stopping;
  uint64_t evictions_seen = 0;
  auto refresh_health = [&] {
    bool tokens_ok = true;
    for (const auto& source : token_sources) {
      auto token = source->Token();
      if (token.ok()) {
        logger.AddSecret(*token);
      } else {
        tokens_ok = false;
      }
    }
    if (cache) {
      uint64_t evictions = cache->stats().store.evictions;
      if (evictions > evictions_seen) {
        m->cache_evictions->Get()->Increment(static_cast<double>(evictions - evictions_seen));
        evictions_seen = evictions;
      }
    }
    bool serving = !stopping.HasBeenNotified() && tokens_ok;
    health->SetServingStatus("", serving);
    health->SetServingStatus(kServiceName, serving);
  };
  refresh_health();
  std::string host = listen.substr(0, listen.rfind(':'));
  std::string normalized = sag::Gateway::NormalizeBaseUrl(options.upstream_url).value_or("?");
  std::cout << "audiences-gateway listening on " << host << ":" << port << " (upstream "
            << normalized << ")" << std::endl;
  logger.Info(
      "started",
      {{"listen", absl::StrCat(host, ":", port)},
       {"upstream", normalized},
       {"workspaces", workspace_names},
       {"tls", !absl::GetFlag(FLAGS_tls_cert).empty()},
       {"redis",
        redis ? sag::redis::RedactedUrl(*sag::redis::ParseRedisUrl(absl::GetFlag(FLAGS_redis_url)))
              : ""},
       {"mtls", !absl::GetFlag(FLAGS_client_ca).empty()},
       {"metrics",
        metrics_server ? absl::StrCat(metrics_server->host(), ":", metrics_server->port()) : ""},
       {"version", SAG_VERSION}});

  std::thread health_thread([&] {
    while (!stopping.WaitForNotificationWithTimeout(absl::Seconds(1))) refresh_health();
  });

  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    logger.Info("shutting down", {{"signal", sig}, {"grace", absl::FormatDuration(grace)}});
    stopping.Notify();
    health->SetServingStatus("", false);
    health->SetServingStatus(kServiceName, false);
    std::thread second([&] {
      int again = 0;
      sigwait(&signals, &again);
      logger.Warn("second signal, exiting now", {{"signal", again}});
      _exit(1);
    });
    second.detach();
    server->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  });

  server->Wait();
  signal_thread.join();
  health_thread.join();
  if (metrics_server) metrics_server->Stop();
  logger.Info("stopped");
  return 0;
}
