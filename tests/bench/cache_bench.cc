// What the listing cache buys, measured on a real segment-sim and audiences-gateway:
//
//  1. Singleflight: N (default 1,000) concurrent identical cold ListAudiences calls against a
//     simulator answering after --latency (200 ms): how many upstream requests (goal: exactly 1).
//  2. Cache-hit throughput: ListAudiences answered from the cache against the same gateway's
//     grpc.health.v1.Health/Check (the baseline, same run), with the same closed-loop callback
//     client (generic stub, raw bytes for both, so the client's own cost is alike) holding
//     --inflight calls for --seconds each (in alternating rounds): both rates and their ratio
//     (goal: at least 0.8). Every listing answer must equal the first one byte for byte.
//  3. Byte bound: --keys (default 100,000) distinct listings (distinct search.query and
//     pagination.count values) through a gateway with --cache_max_bytes (16 MiB): the gateway's
//     RSS before, at the peak and after, and the audiences_gateway_cache_bytes gauge from /metrics
//     (the bound holds when bytes <= max).
//
//   bench_cache [--calls=1000] [--latency=200ms] [--seconds=5] [--inflight=64] [--audiences=10]
//               [--keys=100000] [--cache_max_bytes=16777216] [--json=FILE]
//
// Exit code 1 when a correctness property fails (a call fails, more than one upstream request in
// 1., a non-hit in 2., the byte bound broken in 3.), so the smoke run in ctest can fail; the
// throughput ratio is a goal, printed, not enforced (it depends on the machine).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/bench/proc_stats.h"
#include "tests/common/stack.h"

ABSL_FLAG(int, calls, 1000, "1.: concurrent identical cold ListAudiences calls.");
ABSL_FLAG(absl::Duration, latency, absl::Milliseconds(200), "1.: upstream answer delay.");
ABSL_FLAG(double, seconds, 5, "2.: seconds of load for each of the two RPCs.");
ABSL_FLAG(int, inflight, 64, "2. and 3.: calls the client keeps in flight.");
ABSL_FLAG(int, audiences, 10, "2.: audiences in the cached listing.");
ABSL_FLAG(int, keys, 100000, "3.: distinct listings (at most 204800).");
ABSL_FLAG(int64_t, cache_max_bytes, int64_t{16} << 20, "3.: the gateway's --cache_max_bytes.");
ABSL_FLAG(std::string, gateway_log_level, "warn",
          "The gateway's --log_level (warn: no per-call log line, as for Health/Check).");
ABSL_FLAG(std::string, json, "", "Also write the figures to this JSON file.");

namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kCommonName[] = "bench audience";  // In every audience's name; 13 letters.
constexpr int kCounts = 25;                       // pagination.count 1..25 in 3.

std::string UnlimitedRates() {
  std::vector<std::string> parts;
  for (const char* op : {"ListAudiences", "GetAudience", "CreateAudience", "UpdateAudienceForSpace",
                         "RemoveAudienceFromSpace", "default"}) {
    parts.push_back(absl::StrCat(op, "=1000000/1s"));
  }
  return absl::StrJoin(parts, ",");
}

// A free loopback port (bound, read, closed): for --metrics_listen, since the gateway only
// reports its metrics address in an info log line and the benchmark runs it at warn.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string Scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  auto res = client.Get("/metrics");
  return res && res->status == 200 ? res->body : "";
}

// The value of the first sample of `name` (any labels), or -1.
double Metric(const std::string& exposition, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (line.empty() || line[0] == '#' || !absl::StartsWith(line, name)) continue;
    absl::string_view rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != '{' && rest[0] != ' ')) continue;
    double v = 0;
    if (absl::SimpleAtod(rest.substr(rest.rfind(' ') + 1), &v)) return v;
  }
  return -1;
}

int64_t UpstreamListings(sag::testing::Stack& s) {
  nlohmann::json stats = s.SimStats();
  if (!stats.is_object() || !stats.contains("by_operation")) return -1;
  return stats["by_operation"].value("ListAudiences", int64_t{-1});
}

std::string XCache(const grpc::ClientContext& ctx) {
  const auto& md = ctx.GetServerInitialMetadata();
  auto it = md.find("x-cache");
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

bool CreateAudiences(sag::testing::Stack& s, int n, const std::string& description) {
  for (int i = 0; i < n; ++i) {
    v1::CreateAudienceRequest req;
    req.set_space_id(kSpace);
    req.mutable_audience()->set_name(absl::StrCat("Bench audience ", i));
    req.mutable_audience()->set_description(description);
    req.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
    req.mutable_audience()->mutable_definition()->set_query(
        absl::StrCat("event('Purchased').count() >= ", i + 1));
    v1::CreateAudienceResponse resp;
    grpc::Status st = s.stub().CreateAudience(sag::testing::Context().get(), req, &resp);
    if (!st.ok()) {
      std::cerr << "create failed: " << st.error_message() << "\n";
      return false;
    }
  }
  return true;
}

// Closed-loop load: keeps `inflight` calls going until `until` or `max_calls` calls were started;
// each completion starts the next call. `issue(i, finish)` starts call number i and must call
// `finish(ok, hit, error)` once when it completes (on any thread).
struct LoadResult {
  int64_t ok = 0;
  int64_t failed = 0;
  int64_t not_hit = 0;  // Answers whose x-cache was not "hit" (listings only).
  double seconds = 0;
  std::string first_error;
};

class ClosedLoop {
 public:
  using Finish = std::function<void(bool ok, bool hit, const std::string& error)>;
  using Issue = std::function<void(int64_t index, Finish finish)>;

  ClosedLoop(int inflight, absl::Duration duration, int64_t max_calls, Issue issue)
      : inflight_(inflight), duration_(duration), max_calls_(max_calls), issue_(std::move(issue)) {}

  LoadResult Run() {
    start_ = absl::Now();
    until_ = start_ + duration_;
    active_ = inflight_;
    for (int i = 0; i < inflight_; ++i) Next();
    all_done_.WaitForNotification();
    LoadResult r;
    {
      absl::MutexLock lock(&mu_);
      r = result_;
    }
    r.seconds = absl::ToDoubleSeconds(end_ - start_);
    return r;
  }

 private:
  void Next() {
    const int64_t index = next_.fetch_add(1);
    if (index >= max_calls_ || absl::Now() >= until_) {
      if (active_.fetch_sub(1) == 1) {
        end_ = absl::Now();
        all_done_.Notify();
      }
      return;
    }
    issue_(index, [this](bool ok, bool hit, const std::string& error) {
      {
        absl::MutexLock lock(&mu_);
        if (ok) {
          ++result_.ok;
          if (!hit) ++result_.not_hit;
        } else {
          ++result_.failed;
          if (result_.first_error.empty()) result_.first_error = error;
        }
      }
      Next();
    });
  }

  const int inflight_;
  const absl::Duration duration_;
  const int64_t max_calls_;
  const Issue issue_;
  absl::Time start_, until_, end_;
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};
  absl::Notification all_done_;
  absl::Mutex mu_;
  LoadResult result_ ABSL_GUARDED_BY(mu_);
};

// Issues grpc.health.v1.Health/Check (service "") through a generic stub.
ClosedLoop::Issue HealthIssue(grpc::GenericStub* generic) {
  return [generic](int64_t, ClosedLoop::Finish finish) {
    struct Call {
      grpc::ClientContext ctx;
      grpc::ByteBuffer in, out;
    };
    auto* call = new Call();
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Slice empty{std::string()};  // HealthCheckRequest{} is zero bytes.
    call->in = grpc::ByteBuffer(&empty, 1);
    generic->UnaryCall(&call->ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &call->in,
                       &call->out, [call, finish](grpc::Status st) {
                         // HealthCheckResponse{status: SERVING} is 08 01.
                         bool serving = false;
                         std::vector<grpc::Slice> slices;
                         if (st.ok() && call->out.Dump(&slices).ok()) {
                           std::string raw;
                           for (auto& s : slices) {
                             raw.append(reinterpret_cast<const char*>(s.begin()), s.size());
                           }
                           serving = raw == std::string("\x08\x01", 2);
                         }
                         std::string error = st.ok() ? "not SERVING" : st.error_message();
                         delete call;
                         finish(serving, true, error);
                       });
  };
}

// Issues ListAudiences with the request `make(index)`.
ClosedLoop::Issue ListIssue(v1::AudiencesService::Stub* stub,
                            std::function<void(int64_t, v1::ListAudiencesRequest*)> make) {
  return [stub, make](int64_t index, ClosedLoop::Finish finish) {
    struct Call {
      grpc::ClientContext ctx;
      v1::ListAudiencesRequest req;
      v1::ListAudiencesResponse resp;
    };
    auto* call = new Call();
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    make(index, &call->req);
    stub->async()->ListAudiences(&call->ctx, &call->req, &call->resp,
                                 [call, finish](grpc::Status st) {
                                   bool hit = XCache(call->ctx) == "hit";
                                   std::string error = st.error_message();
                                   bool ok = st.ok();
                                   delete call;
                                   finish(ok, hit, error);
                                 });
  };
}

// Issues ListAudiences as raw bytes through a generic stub, exactly like HealthIssue, so that
// both sides of the comparison cost the client the same: an answer counts as OK when it is
// `expected` byte for byte.
ClosedLoop::Issue RawListIssue(grpc::GenericStub* generic, const v1::ListAudiencesRequest& request,
                               std::string expected) {
  auto wire = std::make_shared<std::string>(request.SerializeAsString());
  auto want = std::make_shared<std::string>(std::move(expected));
  return [generic, wire, want](int64_t, ClosedLoop::Finish finish) {
    struct Call {
      grpc::ClientContext ctx;
      grpc::ByteBuffer in, out;
    };
    auto* call = new Call();
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Slice slice(*wire);
    call->in = grpc::ByteBuffer(&slice, 1);
    generic->UnaryCall(
        &call->ctx, "/segment.audiences.v1.AudiencesService/ListAudiences", grpc::StubOptions(),
        &call->in, &call->out, [call, finish, want](grpc::Status st) {
          bool same = false;
          std::vector<grpc::Slice> slices;
          if (st.ok() && call->out.Dump(&slices).ok()) {
            std::string raw;
            for (auto& s : slices) raw.append(reinterpret_cast<const char*>(s.begin()), s.size());
            same = raw == *want;
          }
          bool hit = XCache(call->ctx) == "hit";
          std::string error = st.ok() ? "answer differs from the first one" : st.error_message();
          delete call;
          finish(same, hit, error);
        });
  };
}

// A case variant of kCommonName (bit j of `variant` upper-cases the j-th letter).
std::string CaseVariant(int64_t variant) {
  std::string s = kCommonName;
  int bit = 0;
  for (char& c : s) {
    if (!absl::ascii_isalpha(static_cast<unsigned char>(c))) continue;
    if ((variant >> bit) & 1) c = absl::ascii_toupper(static_cast<unsigned char>(c));
    ++bit;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int calls = absl::GetFlag(FLAGS_calls);
  const int inflight = absl::GetFlag(FLAGS_inflight);
  const int keys = absl::GetFlag(FLAGS_keys);
  const int64_t max_bytes = absl::GetFlag(FLAGS_cache_max_bytes);
  const absl::Duration latency = absl::GetFlag(FLAGS_latency);
  const absl::Duration per_rpc = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  if (keys < 1 || keys > kCounts * 8192 || calls < 1 || inflight < 1 || max_bytes < 1) {
    std::cerr << "--keys must be 1..204800; --calls, --inflight, --cache_max_bytes positive\n";
    return 2;
  }
  const std::string log_level = "--log_level=" + absl::GetFlag(FLAGS_gateway_log_level);
  bool failed = false;
  nlohmann::json out = {{"scenario", "cache"}};

  // ---- 1. Singleflight, and 2. hit throughput, on a gateway whose simulator is slow. ----
  {
    sag::testing::StackOptions options;
    options.sim_args = {absl::StrCat("--latency=", absl::FormatDuration(latency)),
                        absl::StrCat("--threads=", 128), "--rate_limits=" + UnlimitedRates()};
    options.gateway_args = {"--rate_limits=" + UnlimitedRates(), "--cache_ttl=1h", log_level,
                            absl::StrCat("--metrics_listen=127.0.0.1:", FreePort())};
    auto stack = sag::testing::Stack::Start(options);
    if (!stack.ok()) {
      std::cerr << "cannot start: " << stack.status() << "\n";
      return 2;
    }
    sag::testing::Stack& s = **stack;
    const pid_t gw = s.gateway().pid();
    if (!CreateAudiences(s, absl::GetFlag(FLAGS_audiences),
                         "Customers who bought at least once; used by the cache benchmark.")) {
      return 2;
    }
    v1::ListAudiencesRequest listing;
    listing.set_space_id(kSpace);
    listing.mutable_pagination()->set_count(50);

    // 1. All at once, cold.
    const int64_t upstream_before = UpstreamListings(s);
    LoadResult cold =
        ClosedLoop(calls, absl::Minutes(5), calls,
                   ListIssue(&s.stub(),
                             [&listing](int64_t, v1::ListAudiencesRequest* r) { *r = listing; }))
            .Run();
    const int64_t upstream = UpstreamListings(s) - upstream_before;
    std::printf(
        "bench_cache 1: %d concurrent identical cold ListAudiences, upstream latency %.0f ms\n",
        calls, absl::ToDoubleMilliseconds(latency));
    std::printf("  %-34s %ld / %d\n", "calls ok", static_cast<long>(cold.ok), calls);
    std::printf("  %-34s %ld (goal 1)\n", "upstream ListAudiences requests",
                static_cast<long>(upstream));
    std::printf("  %-34s %.3f s\n", "wall time", cold.seconds);
    if (!cold.first_error.empty()) std::printf("  first error: %s\n", cold.first_error.c_str());
    if (cold.ok != calls || upstream != 1) failed = true;
    out["singleflight"] = {{"calls", calls},
                           {"ok", cold.ok},
                           {"upstream_requests", upstream},
                           {"upstream_latency_ms", absl::ToDoubleMilliseconds(latency)},
                           {"wall_s", cold.seconds}};

    // 2. Hits against Health/Check, alternating rounds after a short warm-up of each.
    v1::ListAudiencesResponse sample;
    grpc::ClientContext sample_ctx;
    sample_ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::Status sample_status = s.stub().ListAudiences(&sample_ctx, listing, &sample);
    grpc::GenericStub generic(s.channel());
    auto health = HealthIssue(&generic);
    auto list = RawListIssue(&generic, listing, sample.SerializeAsString());
    const int64_t unbounded = int64_t{1} << 60;
    (void)ClosedLoop(inflight, absl::Milliseconds(500), unbounded, health).Run();
    (void)ClosedLoop(inflight, absl::Milliseconds(500), unbounded, list).Run();
    const int64_t upstream_hits_before = UpstreamListings(s);
    LoadResult h_total, l_total;
    double h_cpu = 0, l_cpu = 0;
    constexpr int kRounds = 2;
    for (int round = 0; round < kRounds; ++round) {
      for (int kind = 0; kind < 2; ++kind) {
        sag::bench::ProcStats before = sag::bench::ReadProcStats(gw);
        LoadResult r =
            ClosedLoop(inflight, per_rpc / kRounds, unbounded, kind == 0 ? health : list).Run();
        sag::bench::ProcStats after = sag::bench::ReadProcStats(gw);
        LoadResult& total = kind == 0 ? h_total : l_total;
        (kind == 0 ? h_cpu : l_cpu) += after.cpu_seconds - before.cpu_seconds;
        total.ok += r.ok;
        total.failed += r.failed;
        total.not_hit += r.not_hit;
        total.seconds += r.seconds;
        if (total.first_error.empty()) total.first_error = r.first_error;
      }
    }
    const int64_t upstream_during_hits = UpstreamListings(s) - upstream_hits_before;
    const double h_rate = h_total.ok / h_total.seconds;
    const double l_rate = l_total.ok / l_total.seconds;
    const double ratio = l_rate / h_rate;
    std::printf(
        "bench_cache 2: cache-hit ListAudiences (%d audiences, %zu bytes) vs Health/Check, "
        "%d in flight, %.1f s each\n",
        sample.audiences_size(), sample.ByteSizeLong(), inflight, absl::ToDoubleSeconds(per_rpc));
    std::printf("  %-34s %.0f calls/s (%ld ok, %ld failed, %.0f us gateway CPU per call)\n",
                "Health/Check", h_rate, static_cast<long>(h_total.ok),
                static_cast<long>(h_total.failed), h_total.ok > 0 ? h_cpu * 1e6 / h_total.ok : 0);
    std::printf(
        "  %-34s %.0f calls/s (%ld ok, %ld failed, %ld not hit, %.0f us gateway CPU per "
        "call)\n",
        "ListAudiences (cache hit)", l_rate, static_cast<long>(l_total.ok),
        static_cast<long>(l_total.failed), static_cast<long>(l_total.not_hit),
        l_total.ok > 0 ? l_cpu * 1e6 / l_total.ok : 0);
    std::printf("  %-34s %.2f (goal >= 0.8: %s)\n", "ratio", ratio,
                ratio >= 0.8 ? "met" : "NOT met");
    std::printf("  %-34s %ld\n", "upstream ListAudiences meanwhile",
                static_cast<long>(upstream_during_hits));
    if (!h_total.first_error.empty())
      std::printf("  health error: %s\n", h_total.first_error.c_str());
    if (!l_total.first_error.empty())
      std::printf("  list error: %s\n", l_total.first_error.c_str());
    if (!sample_status.ok() || h_total.failed > 0 || l_total.failed > 0 || l_total.not_hit > 0 ||
        upstream_during_hits != 0 || h_total.ok == 0 || l_total.ok == 0) {
      failed = true;
    }
    out["hit_throughput"] = {
        {"inflight", inflight},
        {"seconds_each", absl::ToDoubleSeconds(per_rpc)},
        {"listing_audiences", sample.audiences_size()},
        {"listing_bytes", sample.ByteSizeLong()},
        {"health_calls_per_s", h_rate},
        {"list_hit_calls_per_s", l_rate},
        {"ratio", ratio},
        {"health_gateway_cpu_us_per_call", h_total.ok > 0 ? h_cpu * 1e6 / h_total.ok : 0},
        {"list_gateway_cpu_us_per_call", l_total.ok > 0 ? l_cpu * 1e6 / l_total.ok : 0},
        {"list_not_hit", l_total.not_hit},
        {"failed", h_total.failed + l_total.failed}};
  }

  // ---- 3. Many distinct keys against the byte bound, on a fast simulator. ----
  {
    const int metrics_port = FreePort();
    sag::testing::StackOptions options;
    options.sim_args = {absl::StrCat("--threads=", inflight + 64),
                        "--rate_limits=" + UnlimitedRates()};
    options.gateway_args = {"--rate_limits=" + UnlimitedRates(),
                            absl::StrCat("--cache_max_bytes=", max_bytes),
                            absl::StrCat("--upstream_max_connections=", inflight), log_level,
                            absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port)};
    auto stack = sag::testing::Stack::Start(options);
    if (!stack.ok()) {
      std::cerr << "cannot start: " << stack.status() << "\n";
      return 2;
    }
    sag::testing::Stack& s = **stack;
    const pid_t gw = s.gateway().pid();
    if (!CreateAudiences(s, kCounts,
                         "A listing entry of realistic size: the name, key, definition, options "
                         "and this description make up a few hundred bytes per audience.")) {
      return 2;
    }
    // Key i: search NAME with a case variant of the common name (matches every audience), and
    // pagination.count 1 + i % 25: distinct for every i < 25 * 2^13.
    auto make = [](int64_t i, v1::ListAudiencesRequest* r) {
      r->set_space_id(kSpace);
      r->mutable_search()->set_type(v1::AUDIENCE_SEARCH_TYPE_NAME);
      r->mutable_search()->set_query(CaseVariant(i / kCounts));
      r->mutable_pagination()->set_count(static_cast<int>(1 + i % kCounts));
    };
    // Warm the process (one miss) before the baseline.
    LoadResult warm = ClosedLoop(1, absl::Minutes(1), 1, ListIssue(&s.stub(), make)).Run();
    absl::SleepFor(absl::Milliseconds(300));  // Settle before the baseline reading.
    sag::bench::ProcStats idle = sag::bench::ReadProcStats(gw);
    const int64_t upstream_before = UpstreamListings(s);
    sag::bench::PeakSampler sampler(gw, 50);
    LoadResult many = ClosedLoop(inflight, absl::Minutes(10), keys,
                                 ListIssue(&s.stub(),
                                           [&make](int64_t i, v1::ListAudiencesRequest* r) {
                                             make(i + 1, r);  // Key 0 was the warm-up.
                                           }))
                          .Run();
    sampler.Stop();
    sag::bench::ProcStats after = sag::bench::ReadProcStats(gw);
    const int64_t upstream = UpstreamListings(s) - upstream_before;
    // The gateway publishes its eviction counter once a second (with its health refresh).
    absl::SleepFor(absl::Milliseconds(1500));
    std::string metrics = Scrape(metrics_port);
    const double bytes = Metric(metrics, "audiences_gateway_cache_bytes");
    const double entries = Metric(metrics, "audiences_gateway_cache_entries");
    const double evictions = Metric(metrics, "audiences_gateway_cache_evictions_total");
    const bool bound_held = bytes >= 0 && bytes <= static_cast<double>(max_bytes);
    std::printf(
        "bench_cache 3: %d distinct ListAudiences keys, --cache_max_bytes=%ld (%.1f MiB), "
        "%d in flight\n",
        keys, static_cast<long>(max_bytes), max_bytes / 1048576.0, inflight);
    std::printf("  %-34s %ld / %d in %.1f s (%.0f calls/s), %ld upstream requests\n", "calls ok",
                static_cast<long>(many.ok), keys, many.seconds, many.ok / many.seconds,
                static_cast<long>(upstream));
    std::printf("  %-34s %.0f bytes (%.1f MiB) <= %ld: %s\n", "audiences_gateway_cache_bytes",
                bytes, bytes / 1048576.0, static_cast<long>(max_bytes),
                bound_held ? "bound held" : "BOUND BROKEN");
    std::printf("  %-34s %.0f entries (%.0f bytes each), %.0f evictions\n", "cache entries",
                entries, entries > 0 ? bytes / entries : 0, evictions);
    std::printf("  %-34s before %.1f MB, peak %.1f MB, after %.1f MB (+%.1f MB)\n", "gateway RSS",
                idle.rss_kb / 1024.0, sampler.peak_rss_kb() / 1024.0, after.rss_kb / 1024.0,
                (after.rss_kb - idle.rss_kb) / 1024.0);
    std::printf("  %-34s %.2f s (%.0f us per call)\n", "gateway CPU",
                after.cpu_seconds - idle.cpu_seconds,
                (after.cpu_seconds - idle.cpu_seconds) * 1e6 / std::max<int64_t>(1, many.ok));
    if (!many.first_error.empty()) std::printf("  first error: %s\n", many.first_error.c_str());
    if (warm.ok != 1 || many.ok != keys || !bound_held) failed = true;
    out["distinct_keys"] = {{"keys", keys},
                            {"ok", many.ok},
                            {"wall_s", many.seconds},
                            {"upstream_requests", upstream},
                            {"cache_max_bytes", max_bytes},
                            {"cache_bytes", bytes},
                            {"cache_entries", entries},
                            {"cache_evictions", evictions},
                            {"bound_held", bound_held},
                            {"rss_before_kb", idle.rss_kb},
                            {"rss_peak_kb", sampler.peak_rss_kb()},
                            {"rss_after_kb", after.rss_kb},
                            {"cpu_s", after.cpu_seconds - idle.cpu_seconds}};
  }

  std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return failed ? 1 : 0;
}
