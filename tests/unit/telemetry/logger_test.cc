// Logger: JSON lines, levels, secret scrubbing, no interleaving; request ids.
#include "service/telemetry/logger.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sag {
namespace telemetry {
namespace {

using nlohmann::ordered_json;

// Every line of `text` parsed; fails the test on a line that is not a JSON object.
std::vector<ordered_json> Lines(const std::string& text) {
  std::vector<ordered_json> lines;
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "last line not terminated";
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ordered_json parsed = ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(parsed.is_object()) << "not a JSON object: " << line;
    lines.push_back(std::move(parsed));
  }
  return lines;
}

std::vector<std::string> Keys(const ordered_json& object) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.push_back(key);
  return keys;
}

absl::Time FixedTime() {
  return absl::FromUnixMillis(1714564800123);  // 2024-05-01T12:00:00.123Z
}

TEST(LoggerTest, FreeFormLinesAreJson) {
  std::ostringstream out;
  Logger logger(&out, LogLevel::kDebug);
  logger.SetClockForTesting(FixedTime);
  logger.Log(LogLevel::kInfo, "listening",
             {{"address", "0.0.0.0:50051"}, {"port", 50051}, {"tls", false}});
  logger.Warn("shutting down", {{"grace_s", 20.5}, {"in_flight", {1, 2}}});
  logger.Error("no fields");
  const auto lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(out.str().substr(0, out.str().find('\n')),
            "{\"time\":\"2024-05-01T12:00:00.123Z\",\"level\":\"info\",\"msg\":\"listening\","
            "\"address\":\"0.0.0.0:50051\",\"port\":50051,\"tls\":false}");
  EXPECT_EQ(lines[1]["level"], "warn");
  EXPECT_EQ(lines[1]["grace_s"], 20.5);
  EXPECT_EQ(lines[1]["in_flight"], ordered_json({1, 2}));
  EXPECT_EQ(lines[2]["level"], "error");
  EXPECT_EQ(Keys(lines[2]), (std::vector<std::string>{"time", "level", "msg"}));
}

TEST(LoggerTest, CallLineHasEveryField) {
  std::ostringstream out;
  Logger logger(&out, LogLevel::kInfo);
  logger.SetClockForTesting(FixedTime);
  CallLog call;
  call.rpc = "ListAudiences";
  call.caller = "reporting";
  call.workspace = "acme";
  call.space = "spa_1";
  call.code = std::string(GrpcCodeName(0));
  call.latency = absl::Microseconds(12345);
  call.upstream_status = 200;
  call.cache = "miss";
  call.queue_wait = absl::Milliseconds(3);
  call.retries = 1;
  call.request_id = "abc";
  call.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  logger.LogCall(call);
  CallLog failed;
  failed.rpc = "GetAudience";
  failed.code = std::string(GrpcCodeName(5));
  failed.error = "audience not found";
  failed.level = LogLevel::kWarn;
  logger.LogCall(failed);

  const auto lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Keys(lines[0]),
            (std::vector<std::string>{"time", "level", "msg", "rpc", "caller", "workspace", "space",
                                      "code", "latency_ms", "upstream_status", "cache",
                                      "queue_wait_ms", "retries", "request_id", "trace_id"}));
  EXPECT_EQ(lines[0]["msg"], "call");
  EXPECT_EQ(lines[0]["time"], "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(lines[0]["code"], "OK");
  EXPECT_EQ(lines[0]["latency_ms"], 12.345);
  EXPECT_EQ(lines[0]["upstream_status"], 200);
  EXPECT_EQ(lines[0]["queue_wait_ms"], 3.0);
  EXPECT_EQ(lines[0]["retries"], 1);
  EXPECT_EQ(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(lines[1]["trace_id"], "");
  EXPECT_EQ(lines[1]["level"], "warn");
  EXPECT_EQ(lines[1]["code"], "NOT_FOUND");
  EXPECT_TRUE(lines[1]["upstream_status"].is_null());
  EXPECT_EQ(lines[1]["error"], "audience not found");
}

TEST(LoggerTest, LevelsFilter) {
  std::ostringstream out;
  Logger logger(&out, LogLevel::kWarn);
  logger.Debug("d");
  logger.Info("i");
  logger.Warn("w");
  logger.Error("e");
  CallLog call;  // info
  logger.LogCall(call);
  EXPECT_FALSE(logger.Enabled(LogLevel::kInfo));
  EXPECT_TRUE(logger.Enabled(LogLevel::kError));
  auto lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["msg"], "w");
  EXPECT_EQ(lines[1]["msg"], "e");

  logger.set_min_level(LogLevel::kDebug);
  logger.Debug("d2");
  lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2]["level"], "debug");
}

// The line the two redaction tests log first: "loaded TOKEN" with the token in a value, a nested
// value and a key.
void ExpectRedactedWhereTheTokenWas(const ordered_json& line) {
  EXPECT_EQ(line["msg"], "loaded [redacted]");
  EXPECT_EQ(line["file"], "/run/[redacted]");
  EXPECT_EQ(line["nested"]["deep"][1], "Bearer [redacted]");
  EXPECT_EQ(line["[redacted]"], "as a key");
}

TEST(LoggerTest, SecretsAreRedactedEverywhere) {
  std::ostringstream out;
  Logger logger(&out, LogLevel::kDebug);
  const std::string token = "sgp_Sup3rSecretTokenValue";
  logger.AddSecret(token);
  logger.AddSecret(token);    // harmless
  logger.AddSecret("");       // ignored
  logger.AddSecret("Sup3r");  // contained in the token: the token still goes whole
  logger.Info("loaded " + token, {{"file", "/run/" + token},
                                  {"nested", {{"deep", {"x", "Bearer " + token}}}},
                                  {token, "as a key"}});
  CallLog call;
  call.error = "upstream said: bad token " + token;
  call.caller = "Sup3r-user";
  logger.LogCall(call);
  const std::string text = out.str();
  EXPECT_EQ(text.find("Sup3r"), std::string::npos) << text;
  const auto lines = Lines(text);
  ASSERT_EQ(lines.size(), 2u);
  ExpectRedactedWhereTheTokenWas(lines[0]);
  EXPECT_EQ(lines[1]["error"], "upstream said: bad token [redacted]");
  EXPECT_EQ(lines[1]["caller"], "[redacted]-user");
}

// Long tokens of URL-safe characters (what Segment tokens are) are redacted in the line's text:
// in msg, keys and values at any depth, also next to JSON escapes; the line stays valid JSON.
TEST(LoggerTest, PlainTokensAreRedactedInTheTextEverywhere) {
  std::ostringstream out;
  Logger logger(&out, LogLevel::kDebug);
  const std::string token = "sgp_Sup3rSecretTokenValue.abc-DEF_123";
  logger.AddSecret(token);
  logger.Info("loaded " + token, {{"file", "/run/" + token},
                                  {"nested", {{"deep", {"x", "Bearer " + token}}}},
                                  {token, "as a key"},
                                  {"quoted", "\"" + token + "\"\n"}});
  // Right after an escape (here the backslash's own): redacted field by field instead.
  logger.Info("escaped", {{"after_backslash", "\\" + token}});
  const std::string text = out.str();
  EXPECT_EQ(text.find("Sup3r"), std::string::npos) << text;
  const auto lines = Lines(text);
  ASSERT_EQ(lines.size(), 2u);
  ExpectRedactedWhereTheTokenWas(lines[0]);
  EXPECT_EQ(lines[0]["quoted"], "\"[redacted]\"\n");
  EXPECT_EQ(lines[1]["after_backslash"], "\\[redacted]");
}

// Buffered: the calling thread only appends; Flush() (and the destructor) write everything out
// in order, a warn line is written without one, and nothing is lost or interleaved.
TEST(LoggerTest, BufferedLinesAreAllWrittenInOrder) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  auto read_all = [file] {
    std::fflush(file);
    std::rewind(file);
    std::string text;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0) text.append(buf, n);
    return text;
  };
  {
    Logger logger(file, LogLevel::kInfo);
    logger.StartBuffering(absl::Hours(1));  // Only Flush, a warn line or the size writes.
    for (int i = 0; i < 100; ++i) logger.Info("line", {{"i", i}});
    logger.Flush();
    auto lines = Lines(read_all());
    ASSERT_EQ(lines.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(lines[i]["i"], i);
    logger.Warn("loud");
    const absl::Time limit = absl::Now() + absl::Seconds(10);
    while (Lines(read_all()).size() < 101 && absl::Now() < limit) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    EXPECT_EQ(Lines(read_all()).size(), 101u) << "the warn line waited for the interval";
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&logger, t] {
        const std::string padding(3000, static_cast<char>('a' + t));  // Past 64 KiB in all.
        for (int i = 0; i < 200; ++i) logger.Info("more", {{"t", t}, {"padding", padding}});
      });
    }
    for (auto& thread : threads) thread.join();
    logger.Info("last");
  }  // The destructor writes the rest.
  const auto lines = Lines(read_all());
  std::fclose(file);
  ASSERT_EQ(lines.size(), 101u + 4 * 200 + 1);
  EXPECT_EQ(lines.back()["msg"], "last");
}

TEST(LoggerTest, InvalidUtf8StillGivesJson) {
  std::ostringstream out;
  Logger logger(&out, LogLevel::kInfo);
  logger.Info("bad \xFF byte", {{"v", std::string("\xC3\x28", 2)}});
  const auto lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["msg"], "bad \xEF\xBF\xBD byte");
}

TEST(LoggerTest, ReservedFieldNamesDoNotClobber) {
  std::ostringstream out;
  Logger logger(&out, LogLevel::kInfo);
  logger.Info("real", {{"msg", "fake"}, {"time", 1}});
  const auto lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["msg"], "real");
  EXPECT_EQ(lines[0]["_msg"], "fake");
  EXPECT_EQ(lines[0]["_time"], 1);
}

TEST(LoggerTest, ConcurrentLinesNeverInterleave) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    Logger logger(file, LogLevel::kInfo);
    logger.AddSecret("hunter2hunter2");
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&logger, t] {
        const std::string padding(300, static_cast<char>('a' + t));
        for (int i = 0; i < 500; ++i) {
          logger.Info("line", {{"thread", t}, {"i", i}, {"padding", padding}});
          CallLog call;
          call.rpc = "GetAudience";
          call.request_id = NewRequestId();
          logger.LogCall(call);
        }
      });
    }
    for (auto& thread : threads) thread.join();
  }
  std::rewind(file);
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0) text.append(buf, n);
  std::fclose(file);
  const auto lines = Lines(text);
  ASSERT_EQ(lines.size(), 8u * 500 * 2);
  std::vector<int> per_thread(8, 0);
  for (const auto& line : lines) {
    if (line["msg"] == "line") {
      ++per_thread[line["thread"].get<int>()];
      EXPECT_EQ(line["padding"].get<std::string>().size(), 300u);
    }
  }
  for (int count : per_thread) EXPECT_EQ(count, 500);
}

TEST(LoggerTest, TimeFormat) {
  EXPECT_EQ(Logger::FormatTime(FixedTime()), "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(Logger::FormatTime(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00.000Z");
}

// FormatTime keeps the formatted second per thread: the same text as absl::FormatTime for
// every millisecond, across second, day and year boundaries and before 1970.
TEST(LoggerTest, TimeFormatIsAbslsForEveryMillisecondAndBoundary) {
  auto absl_text = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
  };
  std::vector<absl::Time> times;
  for (int64_t ms = -2500; ms <= 2500; ms += 7) times.push_back(absl::FromUnixMillis(ms));
  for (absl::Time base : {FixedTime(), absl::FromUnixSeconds(1735689599)}) {  // 2024-12-31 23:59:59
    for (int us : {0, 1, 999, 1000, 999999, 1000000, 1000001}) {
      times.push_back(base + absl::Microseconds(us));
      times.push_back(base - absl::Microseconds(us));
    }
  }
  times.push_back(absl::FromUnixNanos(-1));
  for (absl::Time t : times) EXPECT_EQ(Logger::FormatTime(t), absl_text(t)) << t;
}

// A call line is built as text; it must be exactly what the JSON library writes for the same
// fields: escapes, non-ASCII, invalid UTF-8 (replaced), numbers, null.
TEST(LoggerTest, CallLineIsWhatTheJsonLibraryWrites) {
  const std::vector<std::string> strings = {"",
                                            "plain",
                                            "a quote \" alone",
                                            "a backslash \\ alone",
                                            "tab\tnewline\ncontrol\x01\x1f del\x7f",
                                            "caf\xc3\xa9 \xe2\x82\xac",
                                            "invalid \xff\xc3 utf-8 \xed\xa0\x80",
                                            "slash / <html>"};
  const std::vector<absl::Duration> durations = {absl::ZeroDuration(), absl::Microseconds(12345),
                                                 absl::Nanoseconds(1), absl::Seconds(90061),
                                                 absl::Microseconds(1)};
  for (size_t i = 0; i < strings.size(); ++i) {
    std::ostringstream out;
    Logger logger(&out, LogLevel::kDebug);
    logger.SetClockForTesting(FixedTime);
    CallLog call;
    call.level = i % 2 == 0 ? LogLevel::kInfo : LogLevel::kWarn;
    call.rpc = strings[i];
    call.caller = strings[(i + 1) % strings.size()];
    call.workspace = strings[(i + 2) % strings.size()];
    call.space = strings[(i + 3) % strings.size()];
    call.code = "OK";
    call.latency = durations[i % durations.size()];
    call.upstream_status = i % 3 == 0 ? 0 : 200 + static_cast<int>(i);
    call.cache = strings[(i + 4) % strings.size()];
    call.queue_wait = durations[(i + 1) % durations.size()];
    call.retries = static_cast<int>(i);
    call.request_id = strings[(i + 5) % strings.size()];
    call.trace_id = strings[(i + 6) % strings.size()];
    call.error = strings[(i + 2) % strings.size()];
    logger.LogCall(call);

    ordered_json want = {
        {"time", "2024-05-01T12:00:00.123Z"},
        {"level", std::string(LogLevelName(call.level))},
        {"msg", "call"},
        {"rpc", call.rpc},
        {"caller", call.caller},
        {"workspace", call.workspace},
        {"space", call.space},
        {"code", call.code},
        {"latency_ms", std::round(absl::ToDoubleMilliseconds(call.latency) * 1000) / 1000},
        {"upstream_status",
         call.upstream_status > 0 ? ordered_json(call.upstream_status) : ordered_json(nullptr)},
        {"cache", call.cache},
        {"queue_wait_ms", std::round(absl::ToDoubleMilliseconds(call.queue_wait) * 1000) / 1000},
        {"retries", call.retries},
        {"request_id", call.request_id},
        {"trace_id", call.trace_id}};
    if (!call.error.empty()) want["error"] = call.error;
    EXPECT_EQ(out.str(), want.dump(-1, ' ', false, ordered_json::error_handler_t::replace) + "\n")
        << "strings from index " << i;
  }
}

TEST(LoggerTest, LevelsParse) {
  LogLevel level = LogLevel::kInfo;
  EXPECT_TRUE(ParseLogLevel("DEBUG", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  EXPECT_TRUE(ParseLogLevel("warning", &level));
  EXPECT_EQ(level, LogLevel::kWarn);
  EXPECT_FALSE(ParseLogLevel("loud", &level));
  EXPECT_EQ(level, LogLevel::kWarn);
  std::string error;
  EXPECT_FALSE(AbslParseFlag("loud", &level, &error));
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(AbslUnparseFlag(LogLevel::kError), "error");
}

TEST(LoggerTest, GrpcCodeNames) {
  EXPECT_EQ(GrpcCodeName(0), "OK");
  EXPECT_EQ(GrpcCodeName(4), "DEADLINE_EXCEEDED");
  EXPECT_EQ(GrpcCodeName(8), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(GrpcCodeName(14), "UNAVAILABLE");
  EXPECT_EQ(GrpcCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcCodeName(17), "UNKNOWN");
  EXPECT_EQ(GrpcCodeName(-1), "UNKNOWN");
}

TEST(RequestIdTest, RandomHexAndUnique) {
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = NewRequestId();
    ASSERT_EQ(id.size(), 32u);
    ASSERT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    EXPECT_TRUE(IsValidRequestId(id));
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 10000u);
  EXPECT_TRUE(IsValidRequestId("req-1.2_3:4"));
  EXPECT_FALSE(IsValidRequestId(""));
  EXPECT_FALSE(IsValidRequestId("has space"));
  EXPECT_FALSE(IsValidRequestId("new\nline"));
  EXPECT_FALSE(IsValidRequestId(std::string(129, 'a')));
}

}  // namespace
}  // namespace telemetry
}  // namespace sag
