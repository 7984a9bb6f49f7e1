#include "service/ratelimit/preview_quota.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "service/common/status_util.h"

namespace sag::ratelimit {
namespace {

std::string MonthName(absl::CivilMonth m) { return absl::FormatCivilTime(m); }

std::string Errno(absl::string_view what, const std::string& path) {
  return absl::StrCat(what, " ", path, ": ", std::strerror(errno));
}

// Writes `data` to `path` atomically: a temporary file next to it, fsync, rename.
absl::Status WriteFileAtomically(const std::string& path, const std::string& data) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(Errno("cannot create", tmp));
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = absl::UnavailableError(Errno("cannot write", tmp));
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = absl::UnavailableError(Errno("cannot fsync", tmp));
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = absl::UnavailableError(Errno("cannot rename to", path));
    ::unlink(tmp.c_str());
    return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::CivilMonth UtcMonthOf(absl::Time t) { return absl::ToCivilMonth(t, absl::UTCTimeZone()); }

absl::StatusOr<std::unique_ptr<LocalPreviewQuota>> LocalPreviewQuota::Open(
    PreviewQuotaOptions options) {
  if (options.limit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("preview quota limit must be >= 0, got ", options.limit));
  }
  std::unique_ptr<LocalPreviewQuota> quota(new LocalPreviewQuota(std::move(options)));
  absl::Status s = quota->Load();
  if (!s.ok()) return s;
  return quota;
}

absl::Status LocalPreviewQuota::Load() {
  if (options_.path.empty()) return absl::OkStatus();
  struct stat st;
  if (::stat(options_.path.c_str(), &st) != 0 && errno == ENOENT) return absl::OkStatus();
  std::ifstream in(options_.path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(Errno("cannot read preview quota state", options_.path));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  auto bad = [&](absl::string_view why) {
    return absl::FailedPreconditionError(
        absl::StrCat("preview quota state ", options_.path, ": ", why,
                     " (fix or remove the file; removing it resets this month's count)"));
  };
  nlohmann::json doc = nlohmann::json::parse(buf.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  auto months = doc.find("months");
  if (months == doc.end()) return absl::OkStatus();
  if (!months->is_object()) return bad("\"months\" is not an object");
  Counts counts;
  for (auto m = months->begin(); m != months->end(); ++m) {
    absl::CivilMonth month;
    if (!absl::ParseCivilTime(m.key(), &month)) {
      return bad(absl::StrCat("bad month \"", m.key(), "\" (expected YYYY-MM)"));
    }
    if (!m.value().is_object()) return bad(absl::StrCat("month ", m.key(), " is not an object"));
    for (auto sp = m.value().begin(); sp != m.value().end(); ++sp) {
      if (!sp.value().is_number_integer() || sp.value().get<int64_t>() < 0) {
        return bad(
            absl::StrCat("count of ", sp.key(), " in ", m.key(), " is not a non-negative integer"));
      }
      counts[month][sp.key()] = sp.value().get<int64_t>();
    }
  }
  absl::MutexLock lock(&mu_);
  counts_ = std::move(counts);
  return absl::OkStatus();
}

absl::Status LocalPreviewQuota::Save(absl::CivilMonth current) {
  counts_.erase(counts_.begin(), counts_.lower_bound(current - 1));
  if (options_.path.empty()) return absl::OkStatus();
  nlohmann::json months = nlohmann::json::object();
  for (const auto& [month, spaces] : counts_) {
    nlohmann::json m = nlohmann::json::object();
    for (const auto& [space, n] : spaces) m[space] = n;
    months[MonthName(month)] = std::move(m);
  }
  nlohmann::json doc = {{"version", 1}, {"limit", options_.limit}, {"months", std::move(months)}};
  return WriteFileAtomically(options_.path, doc.dump(1));
}

absl::Status LocalPreviewQuota::TryTake(absl::string_view space, absl::Time now) {
  const absl::CivilMonth month = UtcMonthOf(now);
  absl::MutexLock lock(&mu_);
  auto& spaces = counts_[month];
  auto it = spaces.find(space);
  if (it == spaces.end()) it = spaces.emplace(std::string(space), 0).first;
  if (it->second >= options_.limit) {
    const std::string description = absl::StrCat(
        "CreateAudiencePreview quota of ", options_.limit,
        " calls per space per calendar month (UTC) is used up for ", MonthName(month),
        "; it resets on ", absl::FormatCivilTime(absl::CivilDay(month + 1)), " 00:00 UTC");
    google::rpc::QuotaFailure failure;
    auto* v = failure.add_violations();
    v->set_subject(absl::StrCat("spaces/", space));
    v->set_description(description);
    return WithDetail(
        absl::ResourceExhaustedError(absl::StrCat("spaces/", space, ": ", description)), failure);
  }
  ++it->second;
  absl::Status saved = Save(month);
  if (!saved.ok()) {
    --counts_[month][std::string(space)];
    return absl::UnavailableError(
        absl::StrCat("preview quota could not be saved: ", saved.message()));
  }
  return absl::OkStatus();
}

absl::Status LocalPreviewQuota::Release(absl::string_view space, absl::CivilMonth month) {
  absl::MutexLock lock(&mu_);
  auto m = counts_.find(month);
  if (m == counts_.end()) return absl::OkStatus();
  auto it = m->second.find(space);
  if (it == m->second.end() || it->second == 0) return absl::OkStatus();
  --it->second;
  const absl::CivilMonth latest = counts_.rbegin()->first;
  return Save(std::max(latest, month));
}

int64_t LocalPreviewQuota::Used(absl::string_view space, absl::CivilMonth month) const {
  absl::MutexLock lock(&mu_);
  auto m = counts_.find(month);
  if (m == counts_.end()) return 0;
  auto it = m->second.find(space);
  return it == m->second.end() ? 0 : it->second;
}

}  // namespace sag::ratelimit
