// Structured logs: one JSON object per line.
//
//   {"time":"2024-05-01T12:00:00.123Z","level":"info","msg":"call","rpc":"ListAudiences",...}
//
// Every line starts with `time` (RFC 3339, UTC, milliseconds), `level` (debug|info|warn|error)
// and `msg`; then the line's fields in the order given. A call line (LogCall) always has the same
// fields, see CallLog.
//
// Promises:
//  - Thread-safe; lines from different threads never interleave.
//  - Unbuffered (the default): a line is formatted outside the lock and written with one write
//    under it, then flushed, so a crash loses no line.
//  - Buffered (StartBuffering, what the gateway uses): a line is formatted on the calling thread
//    and appended to a buffer; one writer thread writes the buffer out every `flush_interval`,
//    at once when a warn or error line arrives or the buffer passes 64 KiB. The calling thread
//    never does I/O and no lock is held across the write. Nothing is dropped: past 4 MiB waiting,
//    a caller waits for the writer. Flush() and the destructor write everything out; a crash may
//    lose the lines of the last interval.
//  - Always valid JSON: invalid UTF-8 in any string is replaced (U+FFFD).
//  - Secret scrubbing: every registered secret (AddSecret) that appears in a field value, a field
//    name or msg is replaced by "[redacted]" before the line is written. Belt and braces: the
//    gateway never puts a token in a log line in the first place.
//  - Below-minimum levels cost one atomic load (check Enabled() before building costly fields).
//
// Does not: rotate files, sample, or format for humans (pipe through `jq` for that).
#ifndef SAG_SERVICE_TELEMETRY_LOGGER_H_
#define SAG_SERVICE_TELEMETRY_LOGGER_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace sag {
namespace telemetry {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error".
absl::string_view LogLevelName(LogLevel level);
// Accepts the names above and "warning", in any case. Returns false (and leaves *level) otherwise.
bool ParseLogLevel(absl::string_view text, LogLevel* level);
// So that main.cc can declare `ABSL_FLAG(sag::telemetry::LogLevel, log_level, ...)`.
bool AbslParseFlag(absl::string_view text, LogLevel* level, std::string* error);
std::string AbslUnparseFlag(LogLevel level);

// The gRPC status code name for a code number ("OK", "NOT_FOUND", ...; "UNKNOWN" when out of
// range). Same numbering as grpc::StatusCode and absl::StatusCode.
absl::string_view GrpcCodeName(int code);

// A new request id: 32 lowercase hex digits (16 random bytes). Thread-safe.
std::string NewRequestId();
// True when `id` is fit to log and to forward as a header: 1..128 characters from
// [A-Za-z0-9._:-]. Take a caller's x-request-id only when this holds; else make a new one.
bool IsValidRequestId(absl::string_view id);

// What happened to one gRPC call. Written by Logger::LogCall as (in this order):
//   time level msg="call" rpc caller workspace space code latency_ms upstream_status cache
//   queue_wait_ms retries request_id [error]
// Durations become milliseconds with 3 decimals; upstream_status is null when no upstream request
// was made; error is present only when non-empty.
struct CallLog {
  LogLevel level = LogLevel::kInfo;
  std::string rpc;        // "ListAudiences"
  std::string caller;     // caller identity, "" when anonymous
  std::string workspace;  // configured workspace name
  std::string space;      // space_id of the request, "" when none
  std::string code;       // gRPC code name, "OK"; see GrpcCodeName
  absl::Duration latency = absl::ZeroDuration();
  int upstream_status = 0;  // last upstream HTTP status; 0 = no upstream request
  std::string cache;        // "hit" | "miss" | "stale" | "bypass" | "" (not a listing)
  absl::Duration queue_wait = absl::ZeroDuration();
  int retries = 0;
  std::string request_id;
  std::string trace_id;  // W3C trace id of the caller's traceparent, "" when none was valid
  std::string error;     // the status message for non-OK calls
};

class Logger {
 public:
  // Writes to stderr.
  explicit Logger(LogLevel min_level = LogLevel::kInfo);
  // Writes to `out` (not owned, must outlive the logger; each line is fflush'ed).
  Logger(std::FILE* out, LogLevel min_level);
  // Writes to `out` (not owned, must outlive the logger; each line is flushed).
  Logger(std::ostream* out, LogLevel min_level);
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;
  ~Logger();  // Writes out what is buffered.

  // From now on lines are buffered and written by a writer thread (see the file comment). Call
  // once, before logging from several threads.
  void StartBuffering(absl::Duration flush_interval);
  // Returns once every line logged before the call is written (at once when unbuffered).
  void Flush();

  void set_min_level(LogLevel level) { min_level_.store(level, std::memory_order_relaxed); }
  LogLevel min_level() const { return min_level_.load(std::memory_order_relaxed); }
  // True when a line at `level` would be written.
  bool Enabled(LogLevel level) const {
    return static_cast<int>(level) >= static_cast<int>(min_level());
  }

  // Registers a string that must never be written (a token). Empty strings are ignored; adding
  // the same secret twice is harmless. Secrets are kept for the logger's lifetime.
  void AddSecret(std::string secret);

  // One free-form line: `fields` is a JSON object whose members follow time/level/msg in the
  // order given (a nlohmann::json converts, its members then come sorted by name), e.g.
  //   logger.Log(LogLevel::kInfo, "listening", {{"address", addr}, {"port", 50051}});
  // A non-object `fields` is written under the key "fields"; a field named time, level or msg is
  // written as _time, _level, _msg.
  void Log(LogLevel level, absl::string_view msg,
           const nlohmann::ordered_json& fields = nlohmann::ordered_json::object());
  void Debug(absl::string_view msg,
             const nlohmann::ordered_json& fields = nlohmann::ordered_json::object()) {
    Log(LogLevel::kDebug, msg, fields);
  }
  void Info(absl::string_view msg,
            const nlohmann::ordered_json& fields = nlohmann::ordered_json::object()) {
    Log(LogLevel::kInfo, msg, fields);
  }
  void Warn(absl::string_view msg,
            const nlohmann::ordered_json& fields = nlohmann::ordered_json::object()) {
    Log(LogLevel::kWarn, msg, fields);
  }
  void Error(absl::string_view msg,
             const nlohmann::ordered_json& fields = nlohmann::ordered_json::object()) {
    Log(LogLevel::kError, msg, fields);
  }

  // One "call" line at call.level (see CallLog).
  void LogCall(const CallLog& call);

  // Replaces the clock (default absl::Now). For tests; call before logging starts.
  void SetClockForTesting(std::function<absl::Time()> now) { now_ = std::move(now); }

  // RFC 3339 UTC with milliseconds: "2024-05-01T12:00:00.123Z".
  static std::string FormatTime(absl::Time t);

 private:
  void Write(LogLevel level, absl::string_view msg, nlohmann::ordered_json fields);
  // A call line's JSON text (no newline), as Write would make it, built as text: a call line is
  // written for every call, and building it as a nlohmann::json cost ~1/7 of a cache hit's CPU.
  std::string CallLine(const CallLog& call) const;
  // Writes `text` (whole lines) now, or hands it to the writer thread when buffering.
  void Emit(LogLevel level, std::string text);
  void WriteOut(absl::string_view text);  // The I/O itself.
  void WriterLoop() ABSL_LOCKS_EXCLUDED(buffer_mu_);
  // Redacts every secret in the line's JSON text, or false when a secret has a character JSON
  // escapes or that could cross the text's structure (then the line is scrubbed field by field).
  bool ScrubText(std::string* text) const ABSL_SHARED_LOCKS_REQUIRED(secrets_mu_);
  void Scrub(nlohmann::ordered_json* value) const ABSL_SHARED_LOCKS_REQUIRED(secrets_mu_);
  std::string ScrubString(std::string s) const ABSL_SHARED_LOCKS_REQUIRED(secrets_mu_);

  std::FILE* const file_ = nullptr;
  std::ostream* const stream_ = nullptr;
  std::atomic<LogLevel> min_level_;
  std::function<absl::Time()> now_;
  std::atomic<bool> has_secrets_{false};
  mutable absl::Mutex secrets_mu_;
  std::vector<std::string> secrets_ ABSL_GUARDED_BY(secrets_mu_);  // longest first
  absl::Mutex write_mu_;                                           // Unbuffered writes.

  // Buffered mode.
  absl::Mutex buffer_mu_;
  std::atomic<bool> buffering_{false};
  absl::Duration flush_interval_ = absl::Milliseconds(50);
  std::string buffer_ ABSL_GUARDED_BY(buffer_mu_);
  uint64_t appended_ ABSL_GUARDED_BY(buffer_mu_) = 0;  // Bytes ever appended...
  uint64_t written_ ABSL_GUARDED_BY(buffer_mu_) = 0;   // ...and written out.
  bool wake_ ABSL_GUARDED_BY(buffer_mu_) = false;
  bool stop_ ABSL_GUARDED_BY(buffer_mu_) = false;
  std::thread writer_;
};

}  // namespace telemetry
}  // namespace sag

#endif  // SAG_SERVICE_TELEMETRY_LOGGER_H_
