#include "service/telemetry/logger.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"

namespace sag {
namespace telemetry {
namespace {

constexpr char kRedacted[] = "[redacted]";

// Milliseconds with 3 decimals, as a JSON number.
double Millis(absl::Duration d) {
  return std::round(absl::ToDoubleMilliseconds(d) * 1000.0) / 1000.0;
}

std::string Dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// Appends `s` as Dump writes it as a JSON string: printable ASCII without '"' and '\\' as it is,
// anything else through Dump (escapes, UTF-8 checked, invalid bytes replaced).
void AppendString(std::string* out, absl::string_view s) {
  const bool plain = std::all_of(
      s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; });
  if (!plain) return out->append(Dump(nlohmann::ordered_json(std::string(s)))), void();
  out->push_back('"');
  out->append(s.data(), s.size());
  out->push_back('"');
}

// Appends `,"key":` then the value.
void AppendKey(std::string* out, absl::string_view key) { absl::StrAppend(out, ",\"", key, "\":"); }

// The fields of a call line, in their order (see CallLog).
nlohmann::ordered_json CallFields(const CallLog& call) {
  nlohmann::ordered_json f = nlohmann::ordered_json::object();
  f["rpc"] = call.rpc;
  f["caller"] = call.caller;
  f["workspace"] = call.workspace;
  f["space"] = call.space;
  f["code"] = call.code;
  f["latency_ms"] = Millis(call.latency);
  f["upstream_status"] =
      call.upstream_status > 0 ? nlohmann::ordered_json(call.upstream_status) : nullptr;
  f["cache"] = call.cache;
  f["queue_wait_ms"] = Millis(call.queue_wait);
  f["retries"] = call.retries;
  f["request_id"] = call.request_id;
  f["trace_id"] = call.trace_id;
  if (!call.error.empty()) f["error"] = call.error;
  return f;
}

}  // namespace

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "debug") {
    *level = LogLevel::kDebug;
  } else if (lower == "info") {
    *level = LogLevel::kInfo;
  } else if (lower == "warn" || lower == "warning") {
    *level = LogLevel::kWarn;
  } else if (lower == "error") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

bool AbslParseFlag(absl::string_view text, LogLevel* level, std::string* error) {
  if (ParseLogLevel(text, level)) return true;
  *error = "must be one of debug, info, warn, error";
  return false;
}

std::string AbslUnparseFlag(LogLevel level) { return std::string(LogLevelName(level)); }

absl::string_view GrpcCodeName(int code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  if (code < 0 || code >= static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) return "UNKNOWN";
  return kNames[code];
}

std::string NewRequestId() {
  thread_local absl::BitGen gen;
  const uint64_t hi = absl::Uniform<uint64_t>(gen);
  const uint64_t lo = absl::Uniform<uint64_t>(gen);
  return absl::StrCat(absl::Hex(hi, absl::kZeroPad16), absl::Hex(lo, absl::kZeroPad16));
}

bool IsValidRequestId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
           c == '-';
  });
}

Logger::Logger(LogLevel min_level) : Logger(stderr, min_level) {}

Logger::Logger(std::FILE* out, LogLevel min_level)
    : file_(out), min_level_(min_level), now_([] { return absl::Now(); }) {}

Logger::Logger(std::ostream* out, LogLevel min_level)
    : stream_(out), min_level_(min_level), now_([] { return absl::Now(); }) {}

Logger::~Logger() {
  {
    absl::MutexLock lock(&buffer_mu_);
    stop_ = true;
  }
  if (writer_.joinable()) writer_.join();  // It writes out the rest first.
}

void Logger::StartBuffering(absl::Duration flush_interval) {
  if (buffering_.exchange(true)) return;
  flush_interval_ = flush_interval > absl::ZeroDuration() ? flush_interval : absl::Milliseconds(50);
  writer_ = std::thread([this] { WriterLoop(); });
}

void Logger::Flush() {
  if (!buffering_.load(std::memory_order_acquire)) return;
  absl::MutexLock lock(&buffer_mu_);
  const uint64_t target = appended_;
  wake_ = true;
  auto done = [this, target]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(buffer_mu_) { return written_ >= target || stop_; };
  buffer_mu_.Await(absl::Condition(&done));
}

void Logger::WriterLoop() {
  constexpr size_t kFlushAt = size_t{64} << 10;
  while (true) {
    std::string chunk;
    bool stopping;
    {
      absl::MutexLock lock(&buffer_mu_);
      auto due = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(buffer_mu_) {
        return wake_ || stop_ || buffer_.size() >= kFlushAt;
      };
      buffer_mu_.AwaitWithTimeout(absl::Condition(&due), flush_interval_);
      wake_ = false;
      stopping = stop_;
      chunk.swap(buffer_);
    }
    if (!chunk.empty()) WriteOut(chunk);  // No lock held: this thread is the only writer.
    {
      absl::MutexLock lock(&buffer_mu_);
      written_ += chunk.size();
    }
    if (stopping) {
      absl::MutexLock lock(&buffer_mu_);
      if (buffer_.empty()) return;  // Else one more round writes what came meanwhile.
    }
  }
}

void Logger::Emit(LogLevel level, std::string text) {
  constexpr size_t kMaxWaiting = size_t{4} << 20;
  if (!buffering_.load(std::memory_order_acquire)) {
    absl::MutexLock lock(&write_mu_);
    WriteOut(text);
    return;
  }
  absl::MutexLock lock(&buffer_mu_);
  // Nothing is dropped: past the bound, wait for the writer to take the buffer.
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(buffer_mu_) {
    return buffer_.size() < kMaxWaiting || stop_;
  };
  buffer_mu_.Await(absl::Condition(&room));
  buffer_ += text;
  appended_ += text.size();
  if (level >= LogLevel::kWarn) wake_ = true;
}

void Logger::WriteOut(absl::string_view text) {
  if (file_ != nullptr) {
    std::fwrite(text.data(), 1, text.size(), file_);
    std::fflush(file_);
  } else if (stream_ != nullptr) {
    stream_->write(text.data(), static_cast<std::streamsize>(text.size()));
    stream_->flush();
  }
}

std::string Logger::FormatTime(absl::Time t) {
  // The date and time to the second change once a second: formatted then, per thread.
  thread_local int64_t cached_second = std::numeric_limits<int64_t>::min();
  thread_local std::string cached_prefix;  // "2024-05-01T12:00:00"
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
  }
  const absl::Duration since_epoch = t - absl::UnixEpoch();
  const int64_t second = absl::ToInt64Seconds(absl::Floor(since_epoch, absl::Seconds(1)));
  const int64_t millis =
      absl::ToInt64Milliseconds(since_epoch - absl::Seconds(second));  // 0..999, truncated.
  if (second != cached_second) {
    cached_prefix =
        absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(second), absl::UTCTimeZone());
    cached_second = second;
  }
  char fraction[6] = {'.',
                      static_cast<char>('0' + millis / 100),
                      static_cast<char>('0' + millis / 10 % 10),
                      static_cast<char>('0' + millis % 10),
                      'Z',
                      '\0'};
  return absl::StrCat(cached_prefix, fraction);
}

void Logger::AddSecret(std::string secret) {
  if (secret.empty()) return;
  absl::MutexLock lock(&secrets_mu_);
  if (std::find(secrets_.begin(), secrets_.end(), secret) != secrets_.end()) return;
  secrets_.push_back(std::move(secret));
  // Longest first, so that a secret containing another is redacted whole.
  std::stable_sort(secrets_.begin(), secrets_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  has_secrets_.store(true, std::memory_order_release);
}

std::string Logger::ScrubString(std::string s) const {
  for (const std::string& secret : secrets_) {
    if (s.find(secret) != std::string::npos) s = absl::StrReplaceAll(s, {{secret, kRedacted}});
  }
  return s;
}

void Logger::Scrub(nlohmann::ordered_json* value) const {
  if (value->is_string()) {
    *value = ScrubString(value->get<std::string>());
  } else if (value->is_array()) {
    for (auto& element : *value) Scrub(&element);
  } else if (value->is_object()) {
    nlohmann::ordered_json scrubbed = nlohmann::ordered_json::object();
    for (auto& [key, member] : value->items()) {
      nlohmann::ordered_json copy = std::move(member);
      Scrub(&copy);
      scrubbed[ScrubString(key)] = std::move(copy);
    }
    *value = std::move(scrubbed);
  }
}

void Logger::Log(LogLevel level, absl::string_view msg, const nlohmann::ordered_json& fields) {
  if (!Enabled(level)) return;
  nlohmann::ordered_json ordered = nlohmann::ordered_json::object();
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) {
      const bool reserved = key == "time" || key == "level" || key == "msg";
      ordered[reserved ? "_" + key : key] = value;
    }
  } else if (!fields.is_null()) {
    ordered["fields"] = fields;
  }
  Write(level, msg, std::move(ordered));
}

void Logger::LogCall(const CallLog& call) {
  if (!Enabled(call.level)) return;
  std::string text = CallLine(call);
  if (has_secrets_.load(std::memory_order_acquire)) {
    absl::ReaderMutexLock lock(&secrets_mu_);
    if (!ScrubText(&text)) text.clear();
  }
  // A secret the text cannot be scrubbed of: the line is built and scrubbed field by field.
  if (text.empty()) return Write(call.level, "call", CallFields(call));
  text += '\n';
  Emit(call.level, std::move(text));
}

std::string Logger::CallLine(const CallLog& call) const {
  std::string t = "{\"time\":";
  t.reserve(384);
  AppendString(&t, FormatTime(now_()));
  AppendKey(&t, "level");
  AppendString(&t, LogLevelName(call.level));
  absl::StrAppend(&t, ",\"msg\":\"call\"");
  for (auto [key, value] : {std::pair<const char*, const std::string*>{"rpc", &call.rpc},
                            {"caller", &call.caller},
                            {"workspace", &call.workspace},
                            {"space", &call.space},
                            {"code", &call.code}}) {
    AppendKey(&t, key);
    AppendString(&t, *value);
  }
  AppendKey(&t, "latency_ms");
  t += Dump(Millis(call.latency));
  AppendKey(&t, "upstream_status");
  if (call.upstream_status > 0) {
    absl::StrAppend(&t, call.upstream_status);
  } else {
    t += "null";
  }
  AppendKey(&t, "cache");
  AppendString(&t, call.cache);
  AppendKey(&t, "queue_wait_ms");
  t += Dump(Millis(call.queue_wait));
  AppendKey(&t, "retries");
  absl::StrAppend(&t, call.retries);
  AppendKey(&t, "request_id");
  AppendString(&t, call.request_id);
  AppendKey(&t, "trace_id");
  AppendString(&t, call.trace_id);
  if (!call.error.empty()) {
    AppendKey(&t, "error");
    AppendString(&t, call.error);
  }
  t += '}';
  return t;
}

void Logger::Write(LogLevel level, absl::string_view msg, nlohmann::ordered_json fields) {
  nlohmann::ordered_json line = nlohmann::ordered_json::object();
  line["time"] = FormatTime(now_());
  line["level"] = std::string(LogLevelName(level));
  line["msg"] = std::string(msg);
  for (auto& [key, value] : fields.items()) line[key] = std::move(value);
  std::string text = Dump(line);
  if (has_secrets_.load(std::memory_order_acquire)) {
    absl::ReaderMutexLock lock(&secrets_mu_);
    if (!ScrubText(&text)) {
      Scrub(&line);
      text = Dump(line);
    }
  }
  text += '\n';
  Emit(level, std::move(text));
}

bool Logger::ScrubText(std::string* text) const {
  // A secret of at least 16 of these characters is written as is in JSON (no escaping), holds
  // none of the text's structure ("{}[],:\\) and is longer than any number or literal in a line;
  // found anywhere but right after a backslash (inside an escape), redacting it in the text
  // redacts it in the field it belongs to and keeps the line valid JSON.
  auto plain = [](const std::string& s) {
    return s.size() >= 16 && std::all_of(s.begin(), s.end(), [](char c) {
             return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                    c == '-' || c == '~' || c == '+' || c == '/' || c == '=';
           });
  };
  for (const std::string& secret : secrets_) {
    if (!plain(secret)) return false;
    for (size_t at = text->find(secret); at != std::string::npos; at = text->find(secret, at + 1)) {
      if (at > 0 && (*text)[at - 1] == '\\') return false;
    }
  }
  for (const std::string& secret : secrets_) {  // Longest first.
    if (text->find(secret) != std::string::npos) {
      *text = absl::StrReplaceAll(*text, {{secret, kRedacted}});
    }
  }
  return true;
}

}  // namespace telemetry
}  // namespace sag
