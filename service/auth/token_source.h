// Where the Segment bearer token comes from. The gateway asks for the token on every upstream
// request, so a rotated token takes effect without a restart and without failing calls in flight.
//
// The token is a secret: implementations never put it in a status message or a log line.
#ifndef SAG_SERVICE_AUTH_TOKEN_SOURCE_H_
#define SAG_SERVICE_AUTH_TOKEN_SOURCE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sag::auth {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // The current token, or UNAVAILABLE saying why there is none. Thread-safe.
  virtual absl::StatusOr<std::string> Token() = 0;
};

// A fixed token (from the environment, or tests).
class StaticTokenSource final : public TokenSource {
 public:
  explicit StaticTokenSource(std::string token) : token_(std::move(token)) {}
  absl::StatusOr<std::string> Token() override;

 private:
  const std::string token_;
};

// A token read from a file (surrounding whitespace trimmed), re-read when the file changes:
// at most once per `check_interval`, the file is stat()ed (following symlinks, so a Kubernetes
// Secret's `..data` swap is seen) and re-read when its inode, size or mtime moved. A file that
// becomes unreadable or empty keeps the last good token.
class FileTokenSource final : public TokenSource {
 public:
  // Told of every (re)load attempt that read a changed or unreadable file: ok, and the reason
  // when not ok (never the token). Runs under the source's lock: must not call Token().
  using ReloadObserver = std::function<void(bool ok, const std::string& reason)>;

  explicit FileTokenSource(std::string path, absl::Duration check_interval = absl::Seconds(1),
                           ReloadObserver observer = nullptr);
  absl::StatusOr<std::string> Token() override;

 private:
  struct Stamp {
    unsigned long long inode = 0, size = 0;
    long long mtime_ns = 0;
    bool operator==(const Stamp& o) const {
      return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  void MaybeReload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void Failed(std::string reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const absl::Duration check_interval_;
  const ReloadObserver observer_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  std::string error_ ABSL_GUARDED_BY(mu_);
  Stamp stamp_ ABSL_GUARDED_BY(mu_);
  bool loaded_once_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace sag::auth

#endif  // SAG_SERVICE_AUTH_TOKEN_SOURCE_H_
