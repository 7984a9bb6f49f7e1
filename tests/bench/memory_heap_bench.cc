// Where a parked and an in-flight GetAudience call's memory goes: heap bytes per call (glibc
// mallinfo2: bytes in use, chunk overhead included) while --calls calls are held, each figure
// measured in this process against its own baseline of the same run.
//
//  1. In process, through one gRPC in-process channel and the same client: the floor
//     (HeldCallsService, held_calls.h: gRPC alone), then the real Gateway on the test fakes
//     (tests/support: fake clock and budget store, so the lane's calls stay parked; an HTTP
//     client that holds what it is sent, without curl) with its calls parked in the limiter, then
//     admitted and held upstream. Gateway - floor is the gateway's excess per call (the client's
//     share cancels out).
//  2. The gateway's parts, each built --calls times as the request path builds it for a
//     GetAudience and kept alive: ExchangeParams (Planner::Plan: the upstream request with its
//     headers, the token, lane, caller, space), a limiter waiter (Limiter::Acquire with a callback
//     of the size Exchange::Admit gives it), and an Exchange started on them (params, Exchange,
//     its Done closures of the gateway's sizes, the waiter).
//  3. libcurl per transfer: --calls requests through CurlMultiClient held by a segment-sim that
//     answers after --latency (the part of an in-flight call the in-process gateway lacks).
//
//   bench_memory_heap [--calls=2000] [--latency=5s]
#include <grpcpp/grpcpp.h>
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/operations/operation_table.h"
#include "service/operations/request_builder.h"
#include "service/ratelimit/limiter.h"
#include "service/ratelimit/retry.h"
#include "service/server/audiences_service.h"
#include "service/server/exchange.h"
#include "service/server/gateway.h"
#include "service/telemetry/logger.h"
#include "service/upstream/curl_multi_client.h"
#include "tests/bench/held_calls.h"
#include "tests/common/countdown.h"
#include "tests/common/subprocess.h"
#include "tests/support/fake_budget_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_token_source.h"

ABSL_FLAG(int, calls, 2000,
          "Calls (or parts) held at once in each measurement; at most ~2000: segment-sim holds "
          "the curl part's requests on a thread each (4,000 did not all connect in 60 s here).");
ABSL_FLAG(absl::Duration, latency, absl::Seconds(5), "segment-sim's answer delay (curl part).");

namespace {

namespace v1 = segment::audiences::v1;
using sag::testing::Countdown;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kAudience[] = "aud_2Qb7xVJ1mZKLF4DPqWn";
constexpr char kToken[] = "test-token-7f3a9c";
constexpr char kPeer[] = "ipv4:127.0.0.1:53412";  // What a TCP caller's peer() looks like.

// Heap bytes in use (every arena, and the mmapped chunks).
int64_t HeapBytes() {
  struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

// Waits (real time, bounded) until `ready` holds.
bool WaitUntil(const std::function<bool()>& ready, absl::Duration timeout = absl::Seconds(60)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!ready()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// An HttpClient that holds every request it is sent (as curl's transfer holds it) until
// cancelled; counts what it holds.
class HoldingHttpClient final : public sag::upstream::HttpClient {
 public:
  uint64_t Send(sag::upstream::HttpRequest request, Callback done) override {
    absl::MutexLock lock(&mu_);
    held_.push_back({std::move(request), std::move(done)});
    return held_.size();
  }
  void Cancel(uint64_t id) override {
    Callback done;
    {
      absl::MutexLock lock(&mu_);
      done = std::move(held_[id - 1].done);
    }
    if (done) done(absl::CancelledError("cancelled"));
  }
  size_t Held() {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }
  // Reserved before a measurement, so that the vector's growth is not counted.
  void Reserve(size_t n) {
    absl::MutexLock lock(&mu_);
    held_.reserve(n + 1);
  }

 private:
  struct Held_ {
    sag::upstream::HttpRequest request;
    Callback done;
  };
  absl::Mutex mu_;
  std::vector<Held_> held_ ABSL_GUARDED_BY(mu_);
};

struct Call {
  grpc::ClientContext ctx;
  v1::GetAudienceRequest req;
  v1::GetAudienceResponse resp;
};

// The client side: calls sent over one in-process channel; cancelled (and awaited) on Stop, and
// on destruction (every early return), so that no call outlives the objects gRPC writes into.
class Client {
 public:
  explicit Client(std::shared_ptr<grpc::Channel> channel, int expected)
      : stub_(v1::AudiencesService::NewStub(std::move(channel))) {
    calls_.reserve(expected);
  }
  ~Client() { Stop(); }
  void Send(int n, const std::string& id) {
    for (int i = 0; i < n; ++i) {
      auto call = std::make_unique<Call>();
      call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Hours(1)));
      call->req.set_space_id(kSpace);
      call->req.set_id(id);
      Call* raw = call.get();
      calls_.push_back(std::move(call));
      stub_->async()->GetAudience(&raw->ctx, &raw->req, &raw->resp, [this](const grpc::Status&) {
        absl::MutexLock lock(&mu_);
        ++finished_;
      });
    }
  }
  // Cancels every call sent and waits (bounded) until gRPC is done with each.
  bool Stop() {
    for (auto& c : calls_) c->ctx.TryCancel();
    const size_t sent = calls_.size();
    absl::MutexLock lock(&mu_);
    auto all_done = [this, sent]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_ >= sent; };
    return mu_.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(60));
  }

 private:
  std::unique_ptr<v1::AudiencesService::Stub> stub_;
  std::vector<std::unique_ptr<Call>> calls_;
  absl::Mutex mu_;
  size_t finished_ ABSL_GUARDED_BY(mu_) = 0;
};

constexpr int kWarm = 64;  // Calls held before the baseline: every path has been taken once.
// The fake clock never moves: past its first call, a lane at this limit keeps every call parked,
// and the expected wait (1 ms a call) stays far inside the calls' hour-long deadlines.
constexpr sag::ratelimit::Limit kParking{1, absl::Milliseconds(1)};

std::unique_ptr<grpc::Server> Serve(grpc::Service* service) {
  grpc::ServerBuilder builder;
  grpc::ResourceQuota quota("bench-memory-heap");
  quota.Resize(size_t{512} << 20);  // As bench_memory's gateways (--max_memory=512Mi).
  builder.SetResourceQuota(quota);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

// Heap bytes per call of --calls calls sent over `channel` after kWarm, read once `held()`
// counts kWarm + --calls of them held.
double PerHeldCall(const std::shared_ptr<grpc::Channel>& channel,
                   const std::function<size_t()>& held) {
  const int n = absl::GetFlag(FLAGS_calls);
  Client client(channel, kWarm + n);
  client.Send(kWarm, "warm");
  if (!WaitUntil([&] { return held() == kWarm; })) {
    std::fprintf(stderr, "warm-up: %zu of %d calls held\n", held(), kWarm);
    return -1;
  }
  const int64_t before = HeapBytes();
  client.Send(n, kAudience);
  if (!WaitUntil([&] { return held() == static_cast<size_t>(kWarm + n); })) {
    std::fprintf(stderr, "%zu of %d calls held\n", held(), kWarm + n);
    return -1;
  }
  const int64_t after = HeapBytes();
  if (!client.Stop()) return -1;
  return static_cast<double>(after - before) / n;
}

double FloorPerCall() {
  sag::bench::HeldCallsService service;
  std::unique_ptr<grpc::Server> server = Serve(&service);
  double per = PerHeldCall(server->InProcessChannel(grpc::ChannelArguments()),
                           [&] { return static_cast<size_t>(service.held()); });
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  return per;
}

// The real Gateway on the fakes: one workspace "ws". Parked: GetAudience at kParking, every call
// but the first waits in the limiter. Upstream: a burst as large as every call, all admitted and
// held by the HTTP client.
class GatewayRig {
 public:
  explicit GatewayRig(bool upstream)
      : upstream_(upstream), budget_(sag::ratelimit::GcraOptions{upstream ? 1 << 30 : 1}) {
    env_.http = &http_;
    env_.clock = &clock_;
    env_.timers = &clock_;
    env_.limiter = &limiter_;
    env_.retry_budget = &retry_budget_;
    env_.backoff = &backoff_;
    sag::Workspace ws;
    ws.name = "ws";
    ws.tokens = &tokens_;
    sag::GatewayOptions options;
    options.upstream_url = "http://127.0.0.1:8080";
    options.rate_limits["GetAudience"] =
        upstream ? sag::ratelimit::Limit{1 << 30, absl::Seconds(1)} : kParking;
    options.workspaces = {ws};
    gateway_ = *sag::Gateway::Create(options, &env_);
    service_ = std::make_unique<sag::AudiencesServiceImpl>(gateway_.get());
    server_ = Serve(service_.get());
    http_.Reserve(kWarm + absl::GetFlag(FLAGS_calls));
  }
  ~GatewayRig() { server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(10))); }

  // Heap bytes per call held: parked in the limiter, or upstream in the holding client.
  double PerCall() {
    return PerHeldCall(server_->InProcessChannel(grpc::ChannelArguments()), [this] {
      // Parked: the first call went upstream. Upstream: calls that queued behind a take under
      // way are admitted by the lane's timer, due at once.
      // The lane's next slot is at least an emission interval (1 ns here) ahead of the clock.
      if (upstream_) clock_.Advance(absl::Milliseconds(1));
      return upstream_ ? http_.Held() : limiter_.QueueDepth("ws/GetAudience") + 1;
    });
  }

 private:
  const bool upstream_;
  sag::FakeClock clock_{absl::Now()};
  HoldingHttpClient http_;
  sag::testing::FakeTokenSource tokens_{kToken};
  sag::testing::FakeBudgetStore budget_;
  sag::ratelimit::Limiter limiter_{&budget_, &clock_, &clock_};
  sag::ratelimit::RetryBudget retry_budget_{&clock_};
  sag::ratelimit::Backoff backoff_{{}, [] { return 0.5; }};
  sag::ExchangeEnv env_;
  std::unique_ptr<sag::Gateway> gateway_;
  std::unique_ptr<sag::AudiencesServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
};

const sag::ops::RequestBuilder& GetAudienceBuilder() {
  static const auto* builder = [] {
    const auto* method = v1::GetAudienceRequest::descriptor()
                             ->file()
                             ->FindServiceByName("AudiencesService")
                             ->FindMethodByName("GetAudience");
    return sag::ops::RequestBuilder::Create(*sag::ops::FindOperation("GetAudience"), method)
        ->release();
  }();
  return *builder;
}

// ExchangeParams as Planner::Plan builds them for a GetAudience (no trace context).
sag::ExchangeParams PlannedParams(const std::string& base_url) {
  v1::GetAudienceRequest request;
  request.set_space_id(kSpace);
  request.set_id(kAudience);
  sag::ExchangeParams params;
  params.builder = &GetAudienceBuilder();
  params.http = *GetAudienceBuilder().Build(request, base_url);
  params.http.headers.emplace_back("Authorization", absl::StrCat("Bearer ", kToken));
  params.http.headers.emplace_back("X-Request-Id", sag::telemetry::NewRequestId());
  params.secret = kToken;
  params.lane = "ws/GetAudience";
  params.limit = kParking;
  params.caller = kPeer;
  params.space = kSpace;
  params.deadline = absl::Now() + absl::Hours(1);
  return params;
}

// Heap bytes per element of `n` made by `make` and kept alive.
template <typename T>
double PerKept(int n, const std::function<T()>& make) {
  const int64_t before = HeapBytes();  // The vector's n * sizeof(T) is counted too.
  std::vector<T> kept;
  kept.reserve(n);
  for (int i = 0; i < n; ++i) kept.push_back(make());
  return static_cast<double>(HeapBytes() - before) / n;
}

// Limiter waiters: Acquire on a lane whose one slot is taken, with a callback of the size
// Exchange::Admit gives (a shared_ptr and a time).
double WaiterPerCall(int n) {
  sag::FakeClock clock(absl::Now());
  sag::testing::FakeBudgetStore store;
  sag::ratelimit::Limiter limiter(&store, &clock, &clock);
  sag::ratelimit::AcquireRequest r{"ws/GetAudience", kParking, kPeer, absl::Now() + absl::Hours(1)};
  auto owner = std::make_shared<int>(0);
  auto admit = [owner, at = absl::Now()](const absl::Status&) { (void)at; };
  limiter.Acquire(r, admit);  // Takes the slot: the others park.
  std::vector<sag::ratelimit::Ticket> tickets;
  tickets.reserve(n);
  const int64_t before = HeapBytes();
  for (int i = 0; i < n; ++i) tickets.push_back(limiter.Acquire(r, admit));
  const int64_t after = HeapBytes();
  for (sag::ratelimit::Ticket t : tickets) limiter.Cancel(t);
  return static_cast<double>(after - before) / n;
}

// A Done with the captures Gateway::Handle gives an exchange, wrapped as WatchingAuth wraps it.
sag::Exchange::Done GatewaySizedDone(const std::shared_ptr<int>& shared) {
  struct HandleCaptures {  // this, call, request, response, info (shared), &op
    void* gateway;
    void* call;
    const void* request;
    void* response;
    std::shared_ptr<int> info;
    const void* op;
  };
  sag::Exchange::Done inner =
      [c = HandleCaptures{nullptr, nullptr, nullptr, nullptr, shared, nullptr}](
          absl::Status, std::unique_ptr<google::protobuf::Message>, const sag::ExchangeReport&) {
        (void)c;
      };
  return [state = shared, workspace = std::string("ws"), done = std::move(inner)](
             absl::Status st, std::unique_ptr<google::protobuf::Message> answer,
             const sag::ExchangeReport& report) {
    (void)state;
    done(std::move(st), std::move(answer), report);
  };
}

// Exchanges started on planned params, parked in the limiter (its one slot taken first).
double ExchangePerCall(int n) {
  sag::FakeClock clock(absl::Now());
  sag::testing::FakeBudgetStore store;
  sag::ratelimit::Limiter limiter(&store, &clock, &clock);
  HoldingHttpClient http;
  sag::ExchangeEnv env;
  env.http = &http;
  env.clock = &clock;
  env.timers = &clock;
  env.limiter = &limiter;
  auto shared = std::make_shared<int>(0);
  std::vector<std::shared_ptr<sag::Exchange>> exchanges;
  exchanges.reserve(n + 1);
  exchanges.push_back(
      sag::Exchange::Start(&env, PlannedParams("http://127.0.0.1:8080"), GatewaySizedDone(shared)));
  const int64_t before = HeapBytes();
  for (int i = 0; i < n; ++i) {
    exchanges.push_back(sag::Exchange::Start(&env, PlannedParams("http://127.0.0.1:8080"),
                                             GatewaySizedDone(shared)));
  }
  const int64_t after = HeapBytes();
  for (auto& ex : exchanges) ex->Cancel();
  return static_cast<double>(after - before) / n;
}

// GetAudience requests segment-sim has received (its /__sim/stats), or -1.
int64_t SimReceived(int port) {
  httplib::Client client("127.0.0.1", port);
  auto res = client.Get("/__sim/stats");
  if (!res || res->status != 200) return -1;
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  return j.is_object() ? j["by_operation"].value("GetAudience", int64_t{-1}) : -1;
}

// libcurl per transfer in flight: planned GetAudience requests through CurlMultiClient, held by
// segment-sim for --latency; read once the simulator has received all of them.
double CurlPerTransfer(int n) {
  const absl::Duration latency = absl::GetFlag(FLAGS_latency);
  auto sim = sag::testing::Subprocess::Start(
      {SAG_SIM_BIN, "--listen=127.0.0.1:0",
       absl::StrCat("--latency=", absl::FormatDuration(latency)),
       absl::StrCat("--threads=", std::min(4096, n + kWarm + 32)),  // The sim's most.
       "--rate_limits=GetAudience=1000000/1s"});
  if (!sim.ok()) {
    std::fprintf(stderr, "curl: cannot start segment-sim: %s\n", sim.status().ToString().c_str());
    return -1;
  }
  auto line = (*sim)->WaitForLine("listening on", absl::Seconds(20));
  if (!line.ok()) {
    std::fprintf(stderr, "curl: segment-sim did not listen:\n%s\n", (*sim)->Output().c_str());
    return -1;
  }
  const int port = sag::testing::PortFromLine(*line);
  const std::string url = absl::StrCat("http://127.0.0.1:", port);
  sag::upstream::CurlOptions options;
  options.max_host_connections = n + kWarm;  // As bench_memory's --upstream_max_connections.
  sag::upstream::CurlMultiClient curl(options);
  Countdown done(n + kWarm);
  auto send = [&](int k) {
    for (int i = 0; i < k; ++i) {
      sag::upstream::HttpRequest r = PlannedParams(url).http;
      r.timeout = latency + absl::Seconds(60);
      curl.Send(std::move(r),
                [&done](const absl::StatusOr<sag::upstream::HttpResponse>&) { done.Done(); });
    }
  };
  send(kWarm);
  if (!WaitUntil([&] { return SimReceived(port) == kWarm; })) {
    std::fprintf(stderr, "curl: segment-sim received %ld of %d\n", SimReceived(port), kWarm);
    return -1;
  }
  const int64_t before = HeapBytes();
  send(n);
  if (!WaitUntil([&] { return SimReceived(port) == kWarm + n; })) {
    std::fprintf(stderr, "curl: segment-sim received %ld of %d\n", SimReceived(port), kWarm + n);
    return -1;
  }
  const int64_t after = HeapBytes();
  if (!done.WaitFor(latency + absl::Seconds(60))) {
    std::fprintf(stderr, "curl: transfers not all answered\n");
    return -1;
  }
  return static_cast<double>(after - before) / n;
}

void Row(const char* figure, double bytes, const std::string& note = "") {
  std::printf("  %-62s %8.0f B  %s\n", figure, bytes, note.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int n = absl::GetFlag(FLAGS_calls);
  const double floor = FloorPerCall();
  double parked, upstream;
  {
    GatewayRig rig(/*upstream=*/false);
    parked = rig.PerCall();
  }
  {
    GatewayRig rig(/*upstream=*/true);
    upstream = rig.PerCall();
  }
  const double params =
      PerKept<sag::ExchangeParams>(n, [] { return PlannedParams("http://127.0.0.1:8080"); });
  const double http = PerKept<sag::upstream::HttpRequest>(
      n, [] { return PlannedParams("http://127.0.0.1:8080").http; });
  const double waiter = WaiterPerCall(n);
  const double exchange = ExchangePerCall(n);
  const double curl = CurlPerTransfer(n);
  if (floor < 0 || parked < 0 || upstream < 0 || curl < 0) {
    std::fprintf(stderr, "a measurement did not complete (see above)\n");
    return 1;
  }
  std::printf(
      "bench_memory_heap: %d calls (or parts) held at once; heap bytes in use per call "
      "(mallinfo2, chunk overhead included)\n",
      n);
  std::printf(" in process (client + server, one in-process channel, the same client):\n");
  Row("floor: gRPC alone (HeldCallsService)", floor);
  Row("gateway, GetAudience parked in the limiter", parked,
      absl::StrFormat("excess %.0f B over the floor", parked - floor));
  Row("gateway, GetAudience admitted, held upstream (no curl)", upstream,
      absl::StrFormat("excess %.0f B over the floor", upstream - floor));
  std::printf(" the gateway's parts, built as the request path builds them:\n");
  Row("ExchangeParams: upstream request, token, lane, caller, space", params,
      absl::StrFormat("sizeof %zu", sizeof(sag::ExchangeParams)));
  Row("  of which upstream::HttpRequest (URL, headers, body)", http,
      absl::StrFormat("sizeof %zu", sizeof(sag::upstream::HttpRequest)));
  Row("limiter waiter (Acquire with Exchange::Admit's callback)", waiter);
  Row("Exchange started on them (params + Exchange + Done + waiter)", exchange);
  Row("  => Exchange object and its Done closures", exchange - params - waiter);
  Row("  => rest of the parked excess: Call reactor, CallInfo, ...", parked - floor - exchange);
  Row("libcurl per transfer in flight (CurlMultiClient -> segment-sim)", curl,
      "includes the HttpRequest it was given");
  Row("  => in flight, estimated: upstream excess + curl - HttpRequest",
      upstream - floor + curl - http);
  return 0;
}
