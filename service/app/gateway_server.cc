#include "service/app/gateway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.pb.h"
#include "service/app/observers.h"
#include "service/common/bind_check.h"
#include "service/idempotency/memory_store.h"
#include "service/operations/operation_table.h"

#ifndef SAG_VERSION
#define SAG_VERSION "0.0.0"
#endif

namespace sag::app {
namespace {

constexpr char kServiceName[] = "segment.audiences.v1.AudiencesService";

// A workspace's own health entry.
std::string WorkspaceHealthName(const std::string& workspace) {
  return absl::StrCat(kServiceName, "/workspace/", workspace);
}

// Retries may add 20% to the requests, plus a floor of 10 a second (as Finagle's budget) so a quiet
// gateway can still retry: at a 20% failure rate a call needs 25% retries on average.
ratelimit::RetryBudgetOptions RetryOptions() {
  ratelimit::RetryBudgetOptions o;
  o.ratio = 0.2;
  o.min_retries = 100;
  o.window = absl::Seconds(10);
  return o;
}

sigset_t ShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

std::shared_ptr<grpc::ServerCredentials> Credentials(const ServerConfig& c) {
  if (c.tls_cert_pem.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      c.client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_key_cert_pairs.push_back({c.tls_key_pem, c.tls_cert_pem});
  if (!c.client_ca_pem.empty()) ssl.pem_root_certs = c.client_ca_pem;
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

void GatewayServer::BlockShutdownSignals() {
  sigset_t signals = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

GatewayServer::GatewayServer(ServerConfig config)
    : config_(std::move(config)),
      signals_(ShutdownSignals()),
      logger_(config_.log_level),
      retry_budget_(RealClock(), RetryOptions()) {
  // Lines (a call line per call) are written by the logger's own thread, every 50 ms or at once
  // for warn and error: serving threads never write to stderr themselves.
  logger_.StartBuffering(absl::Milliseconds(50));
}

GatewayServer::~GatewayServer() {
  {
    absl::MutexLock lock(&health_mu_);
    health_open_ = false;  // An upstream answer arriving from now on leaves health alone.
  }
  if (!stopping_.HasBeenNotified()) stopping_.Notify();  // Run() notifies on a signal.
  if (health_thread_.joinable()) health_thread_.join();
  if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  if (metrics_server_ != nullptr) metrics_server_->Stop();
  StopBackgroundWork();
}

// Work can outlive every RPC: a listing fetch whose callers left, a retry's timer, a call still
// waiting in the limiter. Their callbacks use the gateway (its request builders), so they must
// end before it is destroyed: the timer thread stops (pending timers never run), the HTTP
// client's thread ends (it answers its transfers CANCELLED), the limiter answers its waiting
// calls UNAVAILABLE, all while the gateway still exists.
void GatewayServer::StopBackgroundWork() {
  timers_.Stop();
  if (store_work_ != nullptr) store_work_->Stop();
  http_.reset();
  limiter_.reset();
}

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Create(ServerConfig config) {
  std::unique_ptr<GatewayServer> s(new GatewayServer(std::move(config)));
  auto metrics = telemetry::GatewayMetrics::Create(&s->registry_, SAG_VERSION);
  if (!metrics.ok()) return metrics.status();
  s->metrics_ = *std::move(metrics);
  for (absl::Status (GatewayServer::*step)() :
       {&GatewayServer::BuildMemory, &GatewayServer::BuildTokens, &GatewayServer::BuildCache,
        &GatewayServer::BuildSharedState, &GatewayServer::BuildGateway}) {
    if (absl::Status st = (s.get()->*step)(); !st.ok()) return st;
  }
  return s;
}

// The memory budget every call is charged to (--max_memory), and its metrics.
absl::Status GatewayServer::BuildMemory() {
  memory_ = std::make_unique<MemoryBudget>(config_.max_memory, kProcessReserve);
  metrics_->memory_limit->Get()->Set(static_cast<double>(memory_->limit()));
  metrics_->memory_in_use->Get()->SetCallback(
      [m = memory_.get()] { return static_cast<double>(m->InUse()); });
  return absl::OkStatus();
}

// Workspaces and their token sources (a file re-read when it changes, or the environment).
absl::Status GatewayServer::BuildTokens() {
  for (const config::WorkspaceConfig& wc : config_.workspaces) {
    std::unique_ptr<auth::TokenSource> tokens;
    if (!wc.token_file.empty()) {
      tokens = std::make_unique<auth::FileTokenSource>(
          wc.token_file, absl::Seconds(1), TokenReloadObserver(metrics_.get(), &logger_, wc.name));
    } else {
      const char* env = std::getenv("SEGMENT_API_TOKEN");
      tokens = std::make_unique<auth::StaticTokenSource>(env != nullptr ? env : "");
    }
    if (auto t = tokens->Token(); t.ok()) {
      logger_.AddSecret(*t);
    } else {
      logger_.Warn(
          "no Segment token yet; calls fail with UNAVAILABLE until "
          "one is loaded",
          {{"workspace", wc.name}, {"reason", std::string(t.status().message())}});
    }
    Workspace ws;
    ws.name = wc.name;
    ws.tokens = tokens.get();
    ws.spaces.insert(wc.spaces.begin(), wc.spaces.end());
    if (wc.upstream_url) ws.upstream_url = *wc.upstream_url;
    workspaces_.push_back(std::move(ws));
    token_sources_.push_back(std::move(tokens));
  }
  return absl::OkStatus();
}

absl::Status GatewayServer::BuildCache() {
  if (config_.cache_max_bytes == 0) return absl::OkStatus();
  cache::InMemoryStore::Options so;
  so.max_bytes = static_cast<size_t>(config_.cache_max_bytes);
  // The cache may take at most half of the memory budget; the rest is for calls.
  const int64_t half = (memory_->limit() - memory_->reserved()) / 2;
  if (config_.cache_max_bytes > half) {
    so.max_bytes = static_cast<size_t>(half);
    logger_.Warn(
        "--cache_max_bytes is more than half of --max_memory leaves for calls; "
        "the cache keeps to that half",
        {{"cache_max_bytes", config_.cache_max_bytes}, {"bound", half}});
  }
  so.max_entry_bytes = std::min<size_t>(so.max_entry_bytes, so.max_bytes);
  so.on_evict = EvictionObserver(metrics_.get());
  cache::ListingCache::Options co;
  co.ttl = config_.cache_ttl;
  co.stale_while_revalidate = config_.cache_stale_while_revalidate;
  co.stale_if_error = config_.cache_stale_if_error;
  cache_ = std::make_unique<cache::ListingCache>(std::make_shared<cache::InMemoryStore>(so), co);
  metrics_->cache_entries->Get()->SetCallback(
      [c = cache_.get()] { return static_cast<double>(c->stats().store.entries); });
  metrics_->cache_bytes->Get()->SetCallback(
      [c = cache_.get()] { return static_cast<double>(c->stats().store.bytes); });
  memory_->SetExternal(static_cast<int64_t>(so.max_bytes),
                       [c = cache_.get()] { return static_cast<int64_t>(c->stats().store.bytes); });
  return absl::OkStatus();
}

// Limits, preview quota and cache invalidations: through Redis when configured, else in-process.
absl::Status GatewayServer::BuildSharedState() {
  if (!config_.redis_url.empty()) {
    redis::RedisOptions ro;
    ro.url = config_.redis_url;
    ro.connections = config_.redis_connections;
    ro.on_state_change = RedisStateObserver(&logger_, config_.shown_redis);
    auto client = redis::RedisClient::Create(ro);
    if (!client.ok())
      return absl::InvalidArgumentError(absl::StrCat("--redis_url: ", client.status().message()));
    redis_ = *std::move(client);
    redis_budget_ = std::make_unique<redis::RedisBudgetStore>(redis_.get());
    redis::FallbackOptions fo;
    fo.replicas = config_.replicas;
    fo.on_state_change = FallbackObserver(metrics_.get(), &logger_);
    fallback_budget_ = std::make_unique<redis::FallbackBudgetStore>(redis_budget_.get(), fo);
    redis::RedisPreviewQuotaOptions qo;
    qo.limit = config_.preview_monthly_quota;
    redis_quota_ = std::make_unique<redis::RedisPreviewQuota>(redis_.get(), qo);
    if (cache_ != nullptr) {
      redis::InvalidationOptions io;
      io.on_tag = [c = cache_.get()](const std::string& tag) { c->Invalidate(tag); };
      io.on_state_change = InvalidationStateObserver(&logger_);
      auto inv = redis::RedisInvalidation::Create(redis_.get(), io);
      if (!inv.ok())
        return absl::InvalidArgumentError(absl::StrCat("--redis_url: ", inv.status().message()));
      invalidation_ = *std::move(inv);
    }
  }
  ratelimit::PreviewQuotaOptions quota_options;
  quota_options.path = config_.preview_quota_file;
  quota_options.limit = config_.preview_monthly_quota;
  auto quota = ratelimit::LocalPreviewQuota::Open(quota_options);
  if (!quota.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--preview_quota_file: ", quota.status().message()));
  }
  local_quota_ = *std::move(quota);
  return absl::OkStatus();
}

absl::Status GatewayServer::BuildGateway() {
  ratelimit::LimiterOptions lo;
  lo.max_queue = config_.queue_max;
  lo.batch_min_share = config_.batch_min_share;
  lo.share_of = [access = &config_.access](absl::string_view caller) {
    return access->ShareOf(caller);
  };
  lo.on_answer = LimiterObserver(metrics_.get(), &config_.access);
  ratelimit::BudgetStore* budget = &in_process_budget_;
  if (fallback_budget_ != nullptr) {
    budget = fallback_budget_.get();
    store_work_ = std::make_unique<WorkQueue>(redis_->options().connections);
    lo.run_timer_work = [q = store_work_.get()](std::function<void()> fn) {
      q->Run(std::move(fn));
    };
  }
  limiter_ = std::make_unique<ratelimit::Limiter>(budget, RealClock(), &timers_, lo);
  std::vector<std::string> names;
  for (const auto& ws : workspaces_) names.push_back(ws.name);
  for (const auto& op : ops::Operations()) {
    metrics_->queue_depth->WithLabels({std::string(op.rpc)})
        ->SetCallback([l = limiter_.get(), names, rpc = std::string(op.rpc)] {
          size_t depth = 0;
          for (const auto& ws : names) depth += l->QueueDepth(absl::StrCat(ws, "/", rpc));
          return static_cast<double>(depth);
        });
  }
  upstream::CurlOptions curl;
  curl.max_host_connections = config_.upstream_max_connections;
  curl.user_agent = "segment-audiences-gateway/" SAG_VERSION;
  http_ = std::make_unique<upstream::CurlMultiClient>(curl);

  env_.http = http_.get();
  env_.clock = RealClock();
  env_.timers = &timers_;
  env_.limiter = limiter_.get();
  env_.quota = redis_quota_ != nullptr ? static_cast<ratelimit::PreviewQuota*>(redis_quota_.get())
                                       : local_quota_.get();
  env_.retry_budget = &retry_budget_;
  env_.backoff = &backoff_;
  env_.upstream_timeout = config_.upstream_timeout;
  env_.max_attempts = config_.upstream_max_attempts;
  env_.on_attempt = AttemptObserver(metrics_.get());
  env_.memory = memory_.get();

  GatewayOptions options;
  options.upstream_url = config_.upstream_url;
  options.rate_limits = config_.rate_limits;
  if (config_.api_default) options.api_default = *config_.api_default;
  if (redis_ != nullptr) {
    redis::RedisIdempotencyOptions io;
    io.ttl = config_.idempotency_ttl;
    idempotency_ =
        std::make_unique<redis::RedisIdempotencyStore>(redis_.get(), RealClock(), &timers_, io);
  } else {
    idempotency::MemoryStoreOptions mo{config_.idempotency_max_entries, config_.idempotency_ttl};
    idempotency_ = std::make_unique<idempotency::MemoryStore>(mo, RealClock(), &timers_);
  }
  GatewayParts parts;
  parts.cache = cache_.get();
  parts.idempotency = idempotency_.get();
  parts.access = &config_.access;
  if (invalidation_ != nullptr) {
    parts.publish_invalidations = [this](const std::vector<std::string>& tags) {
      absl::Status st = invalidation_->Publish(tags);
      if (!st.ok()) {
        logger_.Warn(
            "could not tell other replicas about a write; their "
            "listings may be stale "
            "until --cache_ttl",
            {{"reason", std::string(st.message())}});
      }
    };
  }
  auth_observer_ = UpstreamAuthStateObserver(metrics_.get(), &logger_, [this] { PublishHealth(); });
  for (const auto& ws : workspaces_)
    metrics_->upstream_auth_rejected->WithLabels({ws.name})->Set(0);
  options.workspaces = workspaces_;
  auto gateway = Gateway::Create(std::move(options), &env_, std::move(parts),
                                 GatewayObservers{metrics_.get(), &logger_, auth_observer_.get()});
  if (!gateway.ok()) return gateway.status();
  gateway_ = *std::move(gateway);
  service_ = std::make_unique<AudiencesServiceImpl>(gateway_.get());
  return absl::OkStatus();
}

absl::Status GatewayServer::StartGrpc() {
  grpc::EnableDefaultHealthCheckService(true);
  // Links grpc/health/v1/health.proto's descriptors in (nothing else refers to them), so that
  // reflection can describe the built-in health service.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Probe first, so that a busy address gets our one-line error instead of gRPC core's log line.
  if (std::string why = BindError(config_.listen); !why.empty()) return ListenError(why);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen, Credentials(config_), &port_);
  // gRPC sets SO_REUSEPORT by default: a second server on the same port would start and silently
  // take half the connections. Off, a busy port fails to bind.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // gRPC's own buffers and call state are bounded by the same budget (the calls' charges already
  // count them, so ours refuses first; this is gRPC's backstop).
  grpc::ResourceQuota quota("audiences-gateway");
  quota.Resize(static_cast<size_t>(config_.max_memory));
  builder.SetResourceQuota(quota);
  builder.RegisterService(service_.get());
  for (grpc::Service* extra : extra_services_) builder.RegisterService(extra);
  server_ = builder.BuildAndStart();
  if (server_ != nullptr && port_ != 0) return absl::OkStatus();
  server_.reset();
  return ListenError(BindError(config_.listen));
}

absl::Status GatewayServer::ListenError(const std::string& why) const {
  return absl::UnavailableError(
      absl::StrCat("--listen: cannot listen on ", config_.listen, why.empty() ? "" : ": ", why));
}

absl::Status GatewayServer::Start() {
  if (absl::Status st = StartGrpc(); !st.ok()) return st;
  if (!config_.metrics_listen.empty()) {
    telemetry::MetricsServerOptions mo;
    mo.address = config_.metrics_listen;
    metrics_server_ = std::make_unique<telemetry::MetricsServer>(&registry_, mo);
    absl::Status st = metrics_server_->Start();
    if (!st.ok()) return absl::UnavailableError(absl::StrCat("--metrics_listen: ", st.message()));
  }
  RefreshHealth();
  LogStarted();
  health_thread_ = std::thread([this] {
    while (!stopping_.WaitForNotificationWithTimeout(absl::Seconds(1))) RefreshHealth();
  });
  return absl::OkStatus();
}

void GatewayServer::LogStarted() {
  const std::string host = config_.listen.substr(0, config_.listen.rfind(':'));
  std::vector<std::string> names;
  for (const auto& ws : workspaces_) names.push_back(ws.name);
  std::cout << "audiences-gateway listening on " << host << ":" << port_ << " (upstream "
            << config_.shown_upstream << ")" << std::endl;
  logger_.Info("started",
               {{"listen", absl::StrCat(host, ":", port_)},
                {"upstream", config_.shown_upstream},
                {"workspaces", names},
                {"tls", !config_.tls_cert_pem.empty()},
                {"redis", config_.shown_redis},
                {"mtls", !config_.client_ca_pem.empty()},
                {"metrics", metrics_server_ != nullptr ? absl::StrCat(metrics_server_->host(), ":",
                                                                      metrics_server_->port())
                                                       : ""},
                {"max_memory", FormatByteSize(config_.max_memory)},
                {"max_memory_source", config_.max_memory_source},
                {"version", SAG_VERSION}});
}

// Learns rotated tokens' secrets and which workspaces have a token (file reads: no lock held).
void GatewayServer::RefreshHealth() {
  std::vector<bool> token_ok;
  for (const auto& source : token_sources_) {
    auto token = source->Token();
    if (token.ok()) logger_.AddSecret(*token);
    token_ok.push_back(token.ok());
  }
  {
    absl::MutexLock lock(&health_mu_);
    token_ok_ = std::move(token_ok);
  }
  PublishHealth();
}

void GatewayServer::PublishHealth() {
  absl::MutexLock lock(&health_mu_);  // Serializes the updates; in memory only.
  if (!health_open_ || server_ == nullptr) return;
  const bool running = !stopping_.HasBeenNotified();
  bool all_tokens = true;
  for (bool ok : token_ok_) all_tokens = all_tokens && ok;
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus("", running && all_tokens);
  health->SetServingStatus(kServiceName, running && all_tokens);
  for (size_t i = 0; i < workspaces_.size(); ++i) {
    const bool token = i < token_ok_.size() && token_ok_[i];
    health->SetServingStatus(WorkspaceHealthName(workspaces_[i].name),
                             running && token && !gateway_->TokenRejected(workspaces_[i].name));
  }
}

void GatewayServer::WaitForSignals() {
  int sig = 0;
  sigwait(&signals_, &sig);
  const absl::Duration grace = config_.shutdown_grace;
  logger_.Info("shutting down", {{"signal", sig}, {"grace", absl::FormatDuration(grace)}});
  stopping_.Notify();
  PublishHealth();  // NOT_SERVING everywhere.
  std::thread([this] {
    int again = 0;
    sigwait(&signals_, &again);
    logger_.Warn("second signal, exiting now", {{"signal", again}});
    logger_.Flush();
    _exit(1);
  }).detach();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
}

int GatewayServer::Run() {
  std::thread signal_thread([this] { WaitForSignals(); });
  server_->Wait();
  signal_thread.join();
  if (health_thread_.joinable()) health_thread_.join();
  if (metrics_server_ != nullptr) metrics_server_->Stop();
  logger_.Info("stopped");
  return 0;
}

}  // namespace sag::app
