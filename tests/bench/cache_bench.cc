// What the listing cache buys, measured on a real segment-sim and audiences-gateway. Every load
// runs on the shared load generator (tests/bench/loadgen.h: closed loop, exact latency
// percentiles):
//
//  1. Singleflight: N (default 1,000) concurrent identical cold ListAudiences calls against a
//     simulator answering after --latency (200 ms): how many upstream requests (goal: exactly 1),
//     the wall time and the calls' latency percentiles.
//  2. Cache-hit throughput: ListAudiences answered from the cache against the same gateway's
//     grpc.health.v1.Health/Check (the baseline, same run), with the same generator and issuer
//     (sag::bench::GrpcUnaryIssue: generic stub, callback API, raw serialized bytes both ways, so
//     the client's own cost is alike) holding --inflight calls: a --warmup of each, then
//     --seconds each in --rounds alternating rounds (health, list, health, list...). Printed:
//     calls/s and latency p50/p90/p99/p99.9 of both, their throughput ratio (goal: at least
//     0.8), and the gateway's CPU per call (/proc). Every listing answer must equal the first one
//     byte for byte and carry the initial metadata `x-cache: hit`; every Health/Check answer must
//     be SERVING (the bytes 08 01).
//  3. Byte bound: --keys (default 100,000) distinct listings (distinct search.query and
//     pagination.count values), --inflight at a time, through a gateway with --cache_max_bytes
//     (16 MiB): the gateway's RSS before, at the peak and after, and the
//     audiences_gateway_cache_bytes gauge from /metrics (the bound holds when bytes <= max).
//
//   bench_cache [--calls=1000] [--latency=200ms] [--seconds=5] [--rounds=2] [--warmup=500ms]
//               [--inflight=64] [--audiences=10] [--keys=100000] [--cache_max_bytes=16777216]
//               [--json=FILE]
//
// Exit code 1 when a correctness property fails (a call fails, more than one upstream request in
// 1., a non-hit, a differing answer or an upstream request in 2., the byte bound broken in 3.),
// so the smoke run in ctest can fail; the throughput ratio is a goal, printed, not enforced (it
// depends on the machine).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/bench/byte_buffer.h"
#include "tests/bench/loadgen.h"
#include "tests/bench/proc_stats.h"
#include "tests/common/redis_server.h"  // FreePort
#include "tests/common/stack.h"

ABSL_FLAG(int, calls, 1000, "1.: concurrent identical cold ListAudiences calls.");
ABSL_FLAG(absl::Duration, latency, absl::Milliseconds(200), "1.: upstream answer delay.");
ABSL_FLAG(double, seconds, 5, "2.: seconds of measured load for each of the two RPCs.");
ABSL_FLAG(int, rounds, 2, "2.: alternating rounds the --seconds of each RPC are split into.");
ABSL_FLAG(absl::Duration, warmup, absl::Milliseconds(500),
          "2.: unmeasured load of each RPC before the rounds.");
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

// Whether `buffer` holds exactly `want` (compared slice by slice, without copying).
bool SameBytes(const grpc::ByteBuffer& buffer, const std::string& want) {
  if (buffer.Length() != want.size()) return false;
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  size_t at = 0;
  for (const grpc::Slice& s : slices) {
    if (s.size() > want.size() - at || std::memcmp(s.begin(), want.data() + at, s.size()) != 0) {
      return false;
    }
    at += s.size();
  }
  return at == want.size();
}

constexpr char kListMethod[] = "/segment.audiences.v1.AudiencesService/ListAudiences";
constexpr char kHealthMethod[] = "/grpc.health.v1.Health/Check";

// What the listing checks of 2. saw (warm-up included): each such answer also fails its call.
struct ListCheckCounts {
  std::atomic<int64_t> not_hit{0};  // x-cache was not "hit".
  std::atomic<int64_t> differs{0};  // Not the first answer byte for byte.
};

// Issues ListAudiences through the typed stub (callback API) with the request `make(i)` for the
// i-th call of the returned Issue (0, 1, 2, ...: each index once).
sag::bench::Issue ListIssue(v1::AudiencesService::Stub* stub,
                            std::function<void(int64_t, v1::ListAudiencesRequest*)> make) {
  auto next = std::make_shared<std::atomic<int64_t>>(0);
  return [stub, make = std::move(make), next](int, sag::bench::Done done) {
    struct Call {
      grpc::ClientContext ctx;
      v1::ListAudiencesRequest req;
      v1::ListAudiencesResponse resp;
    };
    auto* call = new Call();
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    make(next->fetch_add(1), &call->req);
    stub->async()->ListAudiences(
        &call->ctx, &call->req, &call->resp, [call, done = std::move(done)](grpc::Status st) {
          std::string error;
          if (!st.ok()) {
            error =
                absl::StrCat(sag::bench::StatusCodeName(st.error_code()), ": ", st.error_message());
          }
          delete call;
          done(st.ok(), error);
        });
  };
}

// Waits (at most `bound`) until process `pid` has used no CPU for `quiet`: a settled baseline.
// Returns whether it got quiet.
bool WaitQuiet(pid_t pid, absl::Duration quiet, absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  double cpu = sag::bench::ReadProcStats(pid).cpu_seconds;
  absl::Time since = absl::Now();
  while (absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));  // Polling period.
    const double now_cpu = sag::bench::ReadProcStats(pid).cpu_seconds;
    if (now_cpu != cpu) {
      cpu = now_cpu;
      since = absl::Now();
    } else if (absl::Now() - since >= quiet) {
      return true;
    }
  }
  return false;
}

// "p50 .. us, p90 .., p99 .., p99.9 .., max .." of a result's latencies.
std::string Percentiles(const sag::bench::LoadResult& r) {
  return absl::StrFormat("p50 %.0f us, p90 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us",
                         r.latency.p50_us, r.latency.p90_us, r.latency.p99_us, r.latency.p999_us,
                         r.latency.max_us);
}

int64_t Failures(const sag::bench::LoadResult& r) { return r.failed + r.warmup_failed; }

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
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const absl::Duration warmup = absl::GetFlag(FLAGS_warmup);
  if (keys < 1 || keys > kCounts * 8192 || calls < 1 || inflight < 1 || max_bytes < 1 ||
      rounds < 1 || per_rpc <= absl::ZeroDuration() || warmup < absl::ZeroDuration()) {
    std::cerr << "--keys must be 1..204800; --calls, --inflight, --cache_max_bytes, --rounds, "
                 "--seconds positive; --warmup >= 0\n";
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
                            absl::StrCat("--metrics_listen=127.0.0.1:", sag::testing::FreePort())};
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
    grpc::GenericStub generic(s.channel());

    // 1. All at once, cold: one call per slot, `calls` slots.
    const int64_t upstream_before = UpstreamListings(s);
    sag::bench::GrpcUnary cold_call;
    cold_call.method = kListMethod;
    cold_call.request = listing.SerializeAsString();
    const sag::bench::LoadResult cold =
        sag::bench::ClosedLoop(calls, sag::bench::GrpcUnaryIssue(&generic, cold_call))
            .Run(absl::ZeroDuration(), absl::Minutes(5), calls);
    const int64_t upstream = UpstreamListings(s) - upstream_before;
    std::printf(
        "bench_cache 1: %d concurrent identical cold ListAudiences, upstream latency %.0f ms\n",
        calls, absl::ToDoubleMilliseconds(latency));
    std::printf("  %-34s %ld / %d\n", "calls ok", static_cast<long>(cold.ok), calls);
    std::printf("  %-34s %ld (goal 1)\n", "upstream ListAudiences requests",
                static_cast<long>(upstream));
    std::printf("  %-34s %.3f s\n", "wall time", cold.seconds);
    std::printf("  %-34s %s\n", "latency", Percentiles(cold).c_str());
    if (!cold.first_error.empty()) std::printf("  first error: %s\n", cold.first_error.c_str());
    if (cold.ok != calls || Failures(cold) != 0 || upstream != 1) failed = true;
    out["singleflight"] = {{"calls", calls},
                           {"ok", cold.ok},
                           {"upstream_requests", upstream},
                           {"upstream_latency_ms", absl::ToDoubleMilliseconds(latency)},
                           {"wall_s", cold.seconds},
                           {"latency_us", sag::bench::ToJson(cold)["latency_us"]}};

    // 2. Hits against Health/Check through the same generator and issuer (generic stub, raw
    // bytes both ways). The first answer, as bytes, is the reference for every later one.
    const int64_t upstream_hits_before = UpstreamListings(s);
    auto first = std::make_shared<std::string>();
    std::string first_x_cache;
    sag::bench::GrpcUnary first_call;
    first_call.method = kListMethod;
    first_call.request = listing.SerializeAsString();
    first_call.check_with_context = [&first, &first_x_cache](const grpc::ClientContext& ctx,
                                                             const grpc::ByteBuffer& response) {
      *first = sag::bench::BufferBytes(response);
      first_x_cache = XCache(ctx);
      return std::string();
    };
    const sag::bench::LoadResult first_result =
        sag::bench::ClosedLoop(1, sag::bench::GrpcUnaryIssue(&generic, first_call))
            .Run(absl::ZeroDuration(), absl::Minutes(1), 1);
    v1::ListAudiencesResponse sample;
    const bool sample_ok = first_result.ok == 1 && sample.ParseFromString(*first);

    sag::bench::GrpcUnary health_call;
    health_call.method = kHealthMethod;
    health_call.request = std::string();  // HealthCheckRequest{} (service "") is zero bytes.
    health_call.check = [](const grpc::ByteBuffer& response) {
      static const std::string kServing("\x08\x01", 2);  // HealthCheckResponse{status: SERVING}.
      return SameBytes(response, kServing)
                 ? std::string()
                 : absl::StrCat("not SERVING: answer of ", response.Length(), " bytes");
    };
    auto counts = std::make_shared<ListCheckCounts>();
    sag::bench::GrpcUnary list_call;
    list_call.method = kListMethod;
    list_call.request = listing.SerializeAsString();
    list_call.check_with_context = [first, counts](const grpc::ClientContext& ctx,
                                                   const grpc::ByteBuffer& response) {
      std::string error;
      if (!SameBytes(response, *first)) {
        counts->differs.fetch_add(1, std::memory_order_relaxed);
        error = absl::StrCat("answer differs from the first one (", response.Length(), " bytes, ",
                             first->size(), " expected)");
      }
      const std::string x_cache = XCache(ctx);
      if (x_cache != "hit") {
        counts->not_hit.fetch_add(1, std::memory_order_relaxed);
        absl::StrAppend(&error, error.empty() ? "" : "; ", "x-cache \"", x_cache,
                        "\", expected \"hit\"");
      }
      return error;
    };
    sag::bench::ClosedLoop health_loop(inflight, sag::bench::GrpcUnaryIssue(&generic, health_call));
    sag::bench::ClosedLoop list_loop(inflight, sag::bench::GrpcUnaryIssue(&generic, list_call));

    // A warm-up of each (not measured), then alternating rounds: health, list, health, list...
    const sag::bench::LoadResult h_warm = health_loop.Run(warmup, absl::ZeroDuration());
    const sag::bench::LoadResult l_warm = list_loop.Run(warmup, absl::ZeroDuration());
    std::vector<sag::bench::LoadResult> h_rounds, l_rounds;
    double h_cpu = 0, l_cpu = 0;
    int64_t h_round_calls = 0, l_round_calls = 0;
    for (int round = 0; round < rounds; ++round) {
      for (int kind = 0; kind < 2; ++kind) {
        sag::bench::ClosedLoop& loop = kind == 0 ? health_loop : list_loop;
        const sag::bench::ProcStats before = sag::bench::ReadProcStats(gw);
        sag::bench::LoadResult r = loop.Run(absl::ZeroDuration(), per_rpc / rounds);
        const sag::bench::ProcStats after = sag::bench::ReadProcStats(gw);
        // Run returns once every call it started has completed: the CPU reading covers them all.
        (kind == 0 ? h_cpu : l_cpu) += after.cpu_seconds - before.cpu_seconds;
        (kind == 0 ? h_round_calls : l_round_calls) += r.calls();
        (kind == 0 ? h_rounds : l_rounds).push_back(std::move(r));
      }
    }
    const int64_t upstream_during_hits = UpstreamListings(s) - upstream_hits_before;
    const sag::bench::LoadResult h = sag::bench::Combine(h_rounds);
    const sag::bench::LoadResult l = sag::bench::Combine(l_rounds);
    const int64_t h_failed = Failures(h) + Failures(h_warm);
    const int64_t l_failed = Failures(l) + Failures(l_warm) + Failures(first_result);
    const int64_t not_hit = counts->not_hit.load() + (first_x_cache == "hit" ? 0 : 1);
    const int64_t differs = counts->differs.load();
    const double ratio = h.throughput > 0 ? l.throughput / h.throughput : 0;
    const double h_cpu_us = h_round_calls > 0 ? h_cpu * 1e6 / h_round_calls : 0;
    const double l_cpu_us = l_round_calls > 0 ? l_cpu * 1e6 / l_round_calls : 0;
    std::printf(
        "bench_cache 2: cache-hit ListAudiences (%d audiences, %zu bytes) vs Health/Check, "
        "closed loop, %d in flight, %.1f s each in %d alternating rounds after %.1f s warm-up\n",
        sample.audiences_size(), first->size(), inflight, absl::ToDoubleSeconds(per_rpc), rounds,
        absl::ToDoubleSeconds(warmup));
    std::printf("  %-34s %.0f calls/s, %s\n", "Health/Check", h.throughput, Percentiles(h).c_str());
    std::printf("  %-34s %ld ok, %ld failed, %.1f us gateway CPU per call\n", "",
                static_cast<long>(h.ok), static_cast<long>(h_failed), h_cpu_us);
    std::printf("  %-34s %.0f calls/s, %s\n", "ListAudiences (cache hit)", l.throughput,
                Percentiles(l).c_str());
    std::printf(
        "  %-34s %ld ok, %ld failed (%ld not hit, %ld differing), %.1f us gateway CPU per call\n",
        "", static_cast<long>(l.ok), static_cast<long>(l_failed), static_cast<long>(not_hit),
        static_cast<long>(differs), l_cpu_us);
    std::printf("  %-34s %.2f (goal >= 0.8: %s)\n", "ratio (list / health calls/s)", ratio,
                ratio >= 0.8 ? "met" : "NOT met");
    std::printf("  %-34s p50 %.2f, p99 %.2f\n", "latency ratio (list / health)",
                h.latency.p50_us > 0 ? l.latency.p50_us / h.latency.p50_us : 0,
                h.latency.p99_us > 0 ? l.latency.p99_us / h.latency.p99_us : 0);
    std::printf("  %-34s %ld\n", "upstream ListAudiences meanwhile",
                static_cast<long>(upstream_during_hits));
    if (!sample_ok) {
      std::printf("  first listing failed: %s\n", first_result.first_error.empty()
                                                      ? "unparsable answer"
                                                      : first_result.first_error.c_str());
    }
    const std::string h_error = !h_warm.first_error.empty() ? h_warm.first_error : h.first_error;
    const std::string l_error = !l_warm.first_error.empty() ? l_warm.first_error : l.first_error;
    if (!h_error.empty()) std::printf("  health error: %s\n", h_error.c_str());
    if (!l_error.empty()) std::printf("  list error: %s\n", l_error.c_str());
    if (!sample_ok || h_failed > 0 || l_failed > 0 || not_hit > 0 || differs > 0 ||
        upstream_during_hits != 0 || h.ok == 0 || l.ok == 0) {
      failed = true;
    }
    out["hit_throughput"] = {{"inflight", inflight},
                             {"seconds_each", absl::ToDoubleSeconds(per_rpc)},
                             {"rounds", rounds},
                             {"warmup_s", absl::ToDoubleSeconds(warmup)},
                             {"listing_audiences", sample.audiences_size()},
                             {"listing_bytes", first->size()},
                             {"health_calls_per_s", h.throughput},
                             {"list_hit_calls_per_s", l.throughput},
                             {"ratio", ratio},
                             {"health_latency_us", sag::bench::ToJson(h)["latency_us"]},
                             {"list_latency_us", sag::bench::ToJson(l)["latency_us"]},
                             {"health_gateway_cpu_us_per_call", h_cpu_us},
                             {"list_gateway_cpu_us_per_call", l_cpu_us},
                             {"list_not_hit", not_hit},
                             {"list_differs", differs},
                             {"upstream_requests", upstream_during_hits},
                             {"failed", h_failed + l_failed}};
  }

  // ---- 3. Many distinct keys against the byte bound, on a fast simulator. ----
  {
    const int metrics_port = sag::testing::FreePort();
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
    // Warm the process (one miss, key 0) before the baseline.
    const sag::bench::LoadResult warm = sag::bench::ClosedLoop(1, ListIssue(&s.stub(), make))
                                            .Run(absl::ZeroDuration(), absl::Minutes(1), 1);
    // Settle before the baseline reading: no gateway CPU for 200 ms (at most 5 s).
    const bool settled = WaitQuiet(gw, absl::Milliseconds(200), absl::Seconds(5));
    const sag::bench::ProcStats idle = sag::bench::ReadProcStats(gw);
    const int64_t upstream_before = UpstreamListings(s);
    sag::bench::PeakSampler sampler(gw, 50);
    // Keys 1..keys, each once: `keys` calls in all, `inflight` at a time.
    const sag::bench::LoadResult many =
        sag::bench::ClosedLoop(inflight, ListIssue(&s.stub(),
                                                   [&make](int64_t i, v1::ListAudiencesRequest* r) {
                                                     make(i + 1, r);  // Key 0 was the warm-up.
                                                   }))
            .Run(absl::ZeroDuration(), absl::Minutes(10), keys);
    sampler.Stop();
    const sag::bench::ProcStats after = sag::bench::ReadProcStats(gw);
    const int64_t upstream = UpstreamListings(s) - upstream_before;
    // The bytes and entries gauges are read live; the gateway publishes its eviction counter
    // only once a second (with its health refresh). Every listing fetched was stored, so the
    // store has evicted at least (fetched - entries - 1) entries (the 1 for a possible expiry of
    // the warm-up entry): wait (at most 3 s) until the counter shows that many.
    std::string metrics;
    double bytes = -1, entries = -1, evictions = -1;
    bool evictions_caught_up = false;
    const absl::Time metrics_deadline = absl::Now() + absl::Seconds(3);
    while (true) {
      metrics = Scrape(metrics_port);
      bytes = Metric(metrics, "audiences_gateway_cache_bytes");
      entries = Metric(metrics, "audiences_gateway_cache_entries");
      evictions = Metric(metrics, "audiences_gateway_cache_evictions_total");
      evictions_caught_up = entries >= 0 && evictions >= static_cast<double>(upstream) - entries;
      if (evictions_caught_up || absl::Now() >= metrics_deadline) break;
      absl::SleepFor(absl::Milliseconds(100));  // Polling period.
    }
    const bool bound_held = bytes >= 0 && bytes <= static_cast<double>(max_bytes);
    std::printf(
        "bench_cache 3: %d distinct ListAudiences keys, --cache_max_bytes=%ld (%.1f MiB), "
        "%d in flight\n",
        keys, static_cast<long>(max_bytes), max_bytes / 1048576.0, inflight);
    std::printf("  %-34s %ld / %d in %.1f s (%.0f calls/s), %ld upstream requests\n", "calls ok",
                static_cast<long>(many.ok), keys, many.seconds, many.throughput,
                static_cast<long>(upstream));
    std::printf("  %-34s %s\n", "latency", Percentiles(many).c_str());
    std::printf("  %-34s %.0f bytes (%.1f MiB) <= %ld: %s\n", "audiences_gateway_cache_bytes",
                bytes, bytes / 1048576.0, static_cast<long>(max_bytes),
                bound_held ? "bound held" : "BOUND BROKEN");
    std::printf("  %-34s %.0f entries (%.0f bytes each), %.0f evictions%s\n", "cache entries",
                entries, entries > 0 ? bytes / entries : 0, evictions,
                evictions_caught_up ? "" : " (counter may lag: not yet caught up after 3 s)");
    std::printf("  %-34s before %.1f MB%s, peak %.1f MB, after %.1f MB (+%.1f MB)\n", "gateway RSS",
                idle.rss_kb / 1024.0, settled ? "" : " (not settled)",
                sampler.peak_rss_kb() / 1024.0, after.rss_kb / 1024.0,
                (after.rss_kb - idle.rss_kb) / 1024.0);
    std::printf("  %-34s %.2f s (%.0f us per call)\n", "gateway CPU",
                after.cpu_seconds - idle.cpu_seconds,
                (after.cpu_seconds - idle.cpu_seconds) * 1e6 / std::max<int64_t>(1, many.calls()));
    const std::string first_error = !warm.first_error.empty() ? warm.first_error : many.first_error;
    if (!first_error.empty()) std::printf("  first error: %s\n", first_error.c_str());
    if (warm.ok != 1 || many.ok != keys || Failures(many) != 0 || !bound_held) failed = true;
    out["distinct_keys"] = {{"keys", keys},
                            {"ok", many.ok},
                            {"wall_s", many.seconds},
                            {"latency_us", sag::bench::ToJson(many)["latency_us"]},
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
