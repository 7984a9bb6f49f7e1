#include "service/auth/token_source.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sag::auth {

absl::StatusOr<std::string> StaticTokenSource::Token() {
  if (token_.empty()) return absl::UnavailableError("the Segment token is empty");
  return token_;
}

FileTokenSource::FileTokenSource(std::string path, absl::Duration check_interval,
                                 ReloadObserver observer)
    : path_(std::move(path)), check_interval_(check_interval), observer_(std::move(observer)) {}

void FileTokenSource::Failed(std::string reason) {
  // Report a failure once per distinct reason, not on every check.
  if (reason != error_ && observer_) observer_(false, reason);
  error_ = std::move(reason);
}

void FileTokenSource::MaybeReload() {
  absl::Time now = absl::Now();
  if (now < next_check_) return;
  next_check_ = now + check_interval_;
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) {
    Failed(absl::StrCat("cannot stat token file ", path_, ": ", std::strerror(errno)));
    return;
  }
  Stamp stamp{static_cast<unsigned long long>(st.st_ino),
              static_cast<unsigned long long>(st.st_size),
              static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec};
  if (loaded_once_ && stamp == stamp_) return;
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    Failed(absl::StrCat("cannot read token file ", path_));
    return;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(buf.str()));
  if (token.empty()) {
    stamp_ = stamp;  // Judge this content once; a new write moves the stamp again.
    loaded_once_ = true;
    Failed(absl::StrCat("token file ", path_, " is empty"));
    return;
  }
  if (token.find_first_of("\r\n\t ") != std::string::npos || token.size() > 4096) {
    stamp_ = stamp;
    loaded_once_ = true;
    Failed(absl::StrCat("token file ", path_, " does not hold a single token"));
    return;
  }
  token_ = std::move(token);
  error_.clear();
  stamp_ = stamp;
  loaded_once_ = true;
  if (observer_) observer_(true, "");
}

absl::StatusOr<std::string> FileTokenSource::Token() {
  absl::MutexLock lock(&mu_);
  MaybeReload();
  if (!token_.empty()) return token_;  // The last good token survives a bad new file.
  return absl::UnavailableError(error_.empty() ? "no Segment token loaded" : error_);
}

}  // namespace sag::auth
