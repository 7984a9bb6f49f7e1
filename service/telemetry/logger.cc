#include "service/telemetry/logger.h"

#include <algorithm>
#include <cmath>
#include <iostream>
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
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
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
  Write(call.level, "call", std::move(f));
}

void Logger::Write(LogLevel level, absl::string_view msg, nlohmann::ordered_json fields) {
  nlohmann::ordered_json line = nlohmann::ordered_json::object();
  line["time"] = FormatTime(now_());
  line["level"] = std::string(LogLevelName(level));
  line["msg"] = std::string(msg);
  for (auto& [key, value] : fields.items()) line[key] = std::move(value);
  auto dump = [](const nlohmann::ordered_json& j) {
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  };
  std::string text = dump(line);
  if (has_secrets_.load(std::memory_order_acquire)) {
    absl::ReaderMutexLock lock(&secrets_mu_);
    if (!ScrubText(&text)) {
      Scrub(&line);
      text = dump(line);
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
