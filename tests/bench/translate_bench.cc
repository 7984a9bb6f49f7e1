// Microbenchmarks (Google Benchmark) of the gateway's generic JSON <-> protobuf translator
// (service/translate/json_proto.h) on its largest response: one full ListAudiences page of 200
// audiences (ListAudiencesResponse), every field of AudienceSummaryWithAudienceTypeAndLookback set
// with realistic values (ids, names, keys, queries, timestamps, sizes, options, and schedules on
// the LINKED audiences, as segment-sim answers with include=schedules). At start-up the page is
// checked to hold every field the API reference gives the model (tests/common/reference.h
// DocGenerator) and to round-trip unchanged through the translator.
//
// Each benchmark reports bytes/s (of the JSON text concerned) and items/s (audiences). Decoding
// builds a fresh message each time, as the gateway does.
//   Decode, what the gateway does with an upstream body:
//     BM_NlohmannParse                bytes -> nlohmann::json (baseline: parsing alone)
//     BM_NlohmannAccept               bytes -> valid or not (nlohmann's SAX parser, no handler)
//     BM_JsonToMessage                nlohmann::json -> message (the DOM translator alone)
//     BM_ParseAndJsonToMessage        bytes -> DOM -> message (the decode before JsonTextToMessage)
//     BM_JsonTextToMessage            bytes -> message without a DOM (the gateway's decode: the
//                                     page inside the {"data": ...} envelope, as the API sends it)
//     BM_ProtobufJsonStringToMessage  protobuf's canonical JSON of the same message -> message
//   Encode (request bodies use it; a page is the largest message there is):
//     BM_MessageToJson                message -> nlohmann::json (the translator alone)
//     BM_MessageToJsonAndDump         message -> bytes
//     BM_NlohmannDump                 nlohmann::json -> bytes (baseline: printing alone)
//     BM_ProtobufMessageToJsonString  message -> protobuf's canonical JSON
//   Binary protobuf, for scale: BM_ProtoParseFromString / BM_ProtoSerializeToString.
//
// protobuf's JSON mapping uses the same field names (proto json_name = the API's camelCase) but
// not the same document: enums keep their prefix ("AUDIENCE_TYPE_USERS" vs "USERS"), int64 are
// strings, and a schedule's `config` anyOf is written under its member's name ("periodic"). So
// its benchmarks run on its own JSON of the same message (~7% larger here), and the custom
// context says whether it can read the Segment bytes at all.
//
//   bench_translate [--benchmark_filter=REGEX] [--benchmark_min_time=0.01]
//                   [--benchmark_repetitions=5] [...any Google Benchmark flag]
#include <benchmark/benchmark.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "segment/audiences/v1/audiences.pb.h"
#include "service/translate/json_proto.h"
#include "tests/common/reference.h"

namespace {

namespace v1 = segment::audiences::v1;
using Json = nlohmann::json;

constexpr int kAudiences = 200;  // pagination.count's maximum for ListAudiences.
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";

// Deterministic base62 text (ids look like Segment's: a prefix and 27 characters).
std::string Base62(uint64_t seed, int n) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string s;
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
  for (int i = 0; i < n; ++i) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s.push_back(kAlphabet[(x * 0x2545F4914F6CDD1DULL) % 62]);
  }
  return s;
}

std::string Timestamp(int i, int offset_minutes) {
  const int minutes = (i * 37 + offset_minutes) % (28 * 24 * 60);
  char buf[32];
  std::snprintf(buf, sizeof buf, "2025-%02d-%02dT%02d:%02d:%02d.%03dZ", 1 + i % 12,
                1 + minutes / (24 * 60), (minutes / 60) % 24, minutes % 60, (i * 13) % 60,
                (i * 211) % 1000);
  return buf;
}

Json Schedule(int i, int k) {
  Json s = {{"id", "sch_" + Base62(i * 10 + k + 1000, 27)}};
  if ((i + k) % 2 == 0) {
    s["strategy"] = "PERIODIC";
    s["config"] = {{"interval", k == 0 ? "1d" : "4h"}};
  } else {
    s["strategy"] = "SPECIFIC_DAYS";
    s["config"] = {{"days", {1, 4}}, {"hours", {9, 17}}, {"timezone", "America/New_York"}};
  }
  s["nextExecution"] = Timestamp(i + k, 60 * 24 * 3);
  return s;
}

// One audience as segment-sim (and Segment) list it with include=schedules.
Json Audience(int i) {
  static const char* const kTopics[] = {"High-value customers",   "Churn risk",
                                        "Newsletter subscribers", "Cart abandoners",
                                        "Trial accounts",         "Enterprise buyers"};
  static const char* const kEvents[] = {"Order Completed", "Product Viewed", "Signed Up",
                                        "Checkout Started", "Subscription Renewed"};
  static const char* const kTypes[] = {"USERS", "ACCOUNTS", "LINKED"};
  const std::string type = kTypes[i % 3];
  const std::string topic = kTopics[i % 6];
  std::string key = absl::StrCat(topic, " ", i);
  for (char& c : key) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  for (char& c : key) c = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_';

  Json a = Json::object();
  a["id"] = "aud_" + Base62(i, 27);
  a["spaceId"] = kSpace;
  a["name"] = absl::StrCat(topic, " ", i);
  a["description"] = absl::StrCat(topic, " seen in the last 30 days; synced to the CRM and the ",
                                  "ad platforms every morning (owner: growth team, #", i, ").");
  a["key"] = key;
  a["enabled"] = i % 7 != 0;
  Json definition = {
      {"query",
       absl::StrCat("event('", kEvents[i % 5], "').where(property('revenue') > ", 20 + i % 80,
                    ").count() >= ", 1 + i % 5, " within ", 7 + i % 60, " days")}};
  if (type == "LINKED") definition["targetEntity"] = "ent_" + Base62(i + 500, 27);
  a["definition"] = definition;
  a["status"] = i % 7 == 0 ? "Disabled" : (i % 3 == 0 ? "Computing" : "Live");
  a["createdBy"] = "usr_" + Base62(i % 9 + 700, 27);
  a["updatedBy"] = "usr_" + Base62(i % 5 + 800, 27);
  a["createdAt"] = Timestamp(i, 0);
  a["updatedAt"] = Timestamp(i, 600);
  a["audienceType"] = type;
  a["computeCadence"] = {{"type", type == "LINKED" ? "BATCH" : "REALTIME"}};
  a["size"] = {
      {"count", 1000 + (i * 7919) % 250000},
      {"type", type == "ACCOUNTS" ? "ACCOUNTS" : (type == "LINKED" ? "ENTITIES" : "USERS")},
      {"uniqueCount", 900 + (i * 7919) % 240000}};
  a["options"] = {{"filterByExternalIds", {"user_id", "email", "android.idfa", "ios.idfa"}},
                  {"includeHistoricalData", true},
                  {"backfillEventDataDays", 30 + i % 60}};
  Json schedules = Json::array();
  if (type == "LINKED") {
    schedules.push_back(Schedule(i, 0));
    schedules.push_back(Schedule(i, 1));
  }
  a["schedules"] = schedules;
  return a;
}

// The `data` object of a ListAudiences 200 body: the second page of 200 of 1,000.
Json Page() {
  Json audiences = Json::array();
  for (int i = 0; i < kAudiences; ++i) audiences.push_back(Audience(i));
  return {{"audiences", audiences},
          {"pagination",
           {{"current", "MjAw"}, {"next", "NDAw"}, {"previous", "MA=="}, {"totalEntries", 1000}}}};
}

// Key paths ("audiences[].schedules[].config.interval") of every object key in `j`.
void KeyPaths(const Json& j, const std::string& at, std::vector<std::string>* out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string path = at.empty() ? it.key() : at + "." + it.key();
      out->push_back(path);
      KeyPaths(it.value(), path, out);
    }
  } else if (j.is_array()) {
    for (const Json& e : j) KeyPaths(e, at + "[]", out);
  }
}

// `j` without its empty arrays: proto3 cannot tell an empty repeated field from an absent one, so
// the translator writes neither (json_proto.h, "Presence").
Json WithoutEmptyArrays(Json j) {
  if (j.is_object()) {
    Json out = Json::object();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.value().is_array() && it.value().empty()) continue;
      out[it.key()] = WithoutEmptyArrays(it.value());
    }
    return out;
  }
  if (j.is_array()) {
    for (Json& e : j) e = WithoutEmptyArrays(e);
  }
  return j;
}

struct Fixture {
  std::string segment_bytes;  // The `data` object the upstream sends.
  std::string body_bytes;     // The whole body: {"data": <segment_bytes>}.
  Json segment_json;
  v1::ListAudiencesResponse message;
  std::string protobuf_bytes;  // protobuf's canonical JSON of `message`.
  std::string binary;
  std::string protobuf_reads_segment;  // "yes" or why not.
};

const Fixture& F() {
  static const Fixture* f = [] {
    auto* f = new Fixture();
    f->segment_json = Page();
    f->segment_bytes = f->segment_json.dump();
    f->body_bytes = Json{{"data", f->segment_json}}.dump();
    (void)sag::translate::JsonToMessage(f->segment_json, &f->message);
    (void)google::protobuf::util::MessageToJsonString(f->message, &f->protobuf_bytes);
    f->message.SerializeToString(&f->binary);
    v1::ListAudiencesResponse probe;
    auto st = google::protobuf::util::JsonStringToMessage(f->segment_bytes, &probe);
    f->protobuf_reads_segment =
        st.ok() ? (probe.SerializeAsString() == f->binary ? "yes" : "parses, but differently")
                : "no: " + std::string(st.message().substr(0, 120));
    return f;
  }();
  return *f;
}

// Start-up checks: every field of the reference's model is in the page, and the translator
// round-trips it unchanged. Returns an error message, or "".
std::string Check() {
  const Fixture& f = F();
  sag::testing::DocGenerator generator(/*required_only=*/false);
  Json full = {{"audiences",
                {generator.Model("AudienceSummaryWithAudienceTypeAndLookback", 0),
                 generator.Model("AudienceSummaryWithAudienceTypeAndLookback", 1)}},
               {"pagination", generator.Model("PaginationOutput", 0)}};
  std::vector<std::string> want, have;
  KeyPaths(full, "", &want);
  KeyPaths(f.segment_json, "", &have);
  std::sort(have.begin(), have.end());
  for (const std::string& path : want) {
    if (!std::binary_search(have.begin(), have.end(), path)) {
      return "the page lacks the reference field " + path;
    }
  }
  v1::ListAudiencesResponse m;
  if (absl::Status s = sag::translate::JsonToMessage(f.segment_json, &m); !s.ok()) {
    return "JsonToMessage: " + std::string(s.message());
  }
  if (m.audiences_size() != kAudiences) return "JsonToMessage lost audiences";
  if (sag::translate::MessageToJson(m) != WithoutEmptyArrays(f.segment_json)) {
    return "MessageToJson(JsonToMessage(page)) differs from the page";
  }
  v1::ListAudiencesResponse from_text;
  if (absl::Status s = sag::translate::JsonTextToMessage(f.body_bytes, "data", &from_text);
      !s.ok()) {
    return "JsonTextToMessage: " + std::string(s.message());
  }
  if (from_text.SerializeAsString() != m.SerializeAsString()) {
    return "JsonTextToMessage and JsonToMessage read the page differently";
  }
  v1::ListAudiencesResponse back;
  if (!google::protobuf::util::JsonStringToMessage(f.protobuf_bytes, &back).ok() ||
      back.SerializeAsString() != f.binary) {
    return "protobuf's JSON of the page does not round-trip";
  }
  return "";
}

void Report(benchmark::State& state, size_t bytes) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kAudiences);
}

// --- Decode ---

void BM_NlohmannParse(benchmark::State& state) {
  const std::string& bytes = F().segment_bytes;
  for (auto _ : state) {
    Json j = Json::parse(bytes, nullptr, false);
    benchmark::DoNotOptimize(j);
  }
  Report(state, bytes.size());
}
BENCHMARK(BM_NlohmannParse);

void BM_NlohmannAccept(benchmark::State& state) {
  const std::string& bytes = F().segment_bytes;
  for (auto _ : state) {
    bool ok = Json::accept(bytes);
    benchmark::DoNotOptimize(ok);
  }
  Report(state, bytes.size());
}
BENCHMARK(BM_NlohmannAccept);

void BM_JsonToMessage(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    v1::ListAudiencesResponse m;
    absl::Status s = sag::translate::JsonToMessage(f.segment_json, &m);
    benchmark::DoNotOptimize(s);
  }
  Report(state, f.segment_bytes.size());
}
BENCHMARK(BM_JsonToMessage);

void BM_ParseAndJsonToMessage(benchmark::State& state) {
  const std::string& bytes = F().segment_bytes;
  for (auto _ : state) {
    v1::ListAudiencesResponse m;
    absl::Status s = sag::translate::JsonToMessage(Json::parse(bytes, nullptr, false), &m);
    benchmark::DoNotOptimize(s);
  }
  Report(state, bytes.size());
}
BENCHMARK(BM_ParseAndJsonToMessage);

void BM_JsonTextToMessage(benchmark::State& state) {
  const std::string& bytes = F().body_bytes;
  for (auto _ : state) {
    v1::ListAudiencesResponse m;
    absl::Status s = sag::translate::JsonTextToMessage(bytes, "data", &m);
    benchmark::DoNotOptimize(s);
  }
  Report(state, bytes.size());
}
BENCHMARK(BM_JsonTextToMessage);

void BM_ProtobufJsonStringToMessage(benchmark::State& state) {
  const std::string& bytes = F().protobuf_bytes;
  for (auto _ : state) {
    v1::ListAudiencesResponse m;
    auto s = google::protobuf::util::JsonStringToMessage(bytes, &m);
    benchmark::DoNotOptimize(s);
  }
  Report(state, bytes.size());
}
BENCHMARK(BM_ProtobufJsonStringToMessage);

void BM_ProtoParseFromString(benchmark::State& state) {
  const std::string& bytes = F().binary;
  for (auto _ : state) {
    v1::ListAudiencesResponse m;
    bool ok = m.ParseFromString(bytes);
    benchmark::DoNotOptimize(ok);
  }
  Report(state, bytes.size());
}
BENCHMARK(BM_ProtoParseFromString);

// --- Encode ---

void BM_MessageToJson(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    Json j = sag::translate::MessageToJson(f.message);
    benchmark::DoNotOptimize(j);
  }
  Report(state, f.segment_bytes.size());
}
BENCHMARK(BM_MessageToJson);

void BM_MessageToJsonAndDump(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    // As the request builder prints bodies.
    std::string s = sag::translate::MessageToJson(f.message).dump(-1, ' ', false,
                                                                  Json::error_handler_t::replace);
    benchmark::DoNotOptimize(s);
  }
  Report(state, f.segment_bytes.size());
}
BENCHMARK(BM_MessageToJsonAndDump);

void BM_NlohmannDump(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    std::string s = f.segment_json.dump(-1, ' ', false, Json::error_handler_t::replace);
    benchmark::DoNotOptimize(s);
  }
  Report(state, f.segment_bytes.size());
}
BENCHMARK(BM_NlohmannDump);

void BM_ProtobufMessageToJsonString(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    std::string s;
    auto st = google::protobuf::util::MessageToJsonString(f.message, &s);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(s);
  }
  Report(state, f.protobuf_bytes.size());
}
BENCHMARK(BM_ProtobufMessageToJsonString);

void BM_ProtoSerializeToString(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    std::string s;
    bool ok = f.message.SerializeToString(&s);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(s);
  }
  Report(state, f.binary.size());
}
BENCHMARK(BM_ProtoSerializeToString);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (std::string error = Check(); !error.empty()) {
    std::fprintf(stderr, "bench_translate: %s\n", error.c_str());
    return 1;
  }
  const Fixture& f = F();
  benchmark::AddCustomContext(
      "page", absl::StrCat(kAudiences, " audiences, ", f.message.audiences_size(), " decoded"));
  benchmark::AddCustomContext("segment_json_bytes", absl::StrCat(f.segment_bytes.size()));
  benchmark::AddCustomContext("protobuf_json_bytes", absl::StrCat(f.protobuf_bytes.size()));
  benchmark::AddCustomContext("protobuf_binary_bytes", absl::StrCat(f.binary.size()));
  benchmark::AddCustomContext("protobuf_reads_segment_json", f.protobuf_reads_segment);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
