#include "service/common/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sag {

MemoryBudget::Charge::Charge(Charge&& other) noexcept
    : budget_(std::exchange(other.budget_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

MemoryBudget::Charge& MemoryBudget::Charge::operator=(Charge&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void MemoryBudget::Charge::Grow(int64_t bytes) {
  if (budget_ == nullptr || bytes <= 0) return;
  budget_->charged_.fetch_add(bytes, std::memory_order_acq_rel);
  bytes_ += bytes;
}

void MemoryBudget::Charge::Release() {
  if (budget_ == nullptr) return;
  std::exchange(budget_, nullptr)->Give(std::exchange(bytes_, 0));
}

MemoryBudget::MemoryBudget(int64_t limit, int64_t reserved)
    : limit_(std::max<int64_t>(0, limit)), reserved_(std::max<int64_t>(0, reserved)) {}

void MemoryBudget::SetExternal(int64_t bound, std::function<int64_t()> current) {
  external_bound_ = std::max<int64_t>(0, bound);
  external_ = std::move(current);
}

int64_t MemoryBudget::External() const {
  if (!external_) return 0;
  return std::clamp<int64_t>(external_(), 0, external_bound_);
}

int64_t MemoryBudget::InUse() const { return reserved_ + charged() + External(); }

absl::StatusOr<MemoryBudget::Charge> MemoryBudget::TryCharge(int64_t bytes) {
  bytes = std::max<int64_t>(0, bytes);
  int64_t current = charged_.load(std::memory_order_relaxed);
  int64_t external = -1;  // Read at most once, and only when its bound could matter.
  while (true) {
    int64_t fixed = reserved_ + current + bytes;
    bool fits = fixed <= limit_;
    if (fits && fixed > limit_ - external_bound_) {
      if (external < 0) external = External();
      fits = fixed <= limit_ - external;
    }
    if (!fits) {
      refusals_.fetch_add(1, std::memory_order_relaxed);
      return absl::ResourceExhaustedError(
          absl::StrCat("the gateway's memory budget is full (", FormatByteSize(InUse()),
                       " of --max_memory=", FormatByteSize(limit_),
                       " in use by calls already accepted and the listing cache); "
                       "retry later or on another replica"));
    }
    if (charged_.compare_exchange_weak(current, current + bytes, std::memory_order_acq_rel)) {
      return Charge(this, bytes);
    }
  }
}

MemoryBudget::Charge MemoryBudget::ForceCharge(int64_t bytes) {
  bytes = std::max<int64_t>(0, bytes);
  charged_.fetch_add(bytes, std::memory_order_acq_rel);
  return Charge(this, bytes);
}

namespace {

struct Unit {
  const char* suffix;
  int64_t factor;
};

constexpr int64_t kKi = 1024;
constexpr Unit kUnits[] = {
    {"", 1},
    {"k", 1000},
    {"K", 1000},
    {"M", 1000 * 1000},
    {"G", 1000 * 1000 * 1000},
    {"T", int64_t{1000} * 1000 * 1000 * 1000},
    {"P", int64_t{1000} * 1000 * 1000 * 1000 * 1000},
    {"Ki", kKi},
    {"Mi", kKi* kKi},
    {"Gi", kKi* kKi* kKi},
    {"Ti", kKi* kKi* kKi* kKi},
    {"Pi", kKi* kKi* kKi* kKi* kKi},
};

// Digits only, at most kMaxMemoryBudget; std::nullopt on anything else.
std::optional<int64_t> WholeNumber(absl::string_view digits) {
  if (digits.empty() || digits.size() > 19) return std::nullopt;
  int64_t n = 0;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    if (n > (std::numeric_limits<int64_t>::max() - 9) / 10) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text) {
  const std::string shown(text.substr(0, 40));
  if (text.empty()) return absl::InvalidArgumentError("empty size; expected e.g. 400Mi or 1G");
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  absl::string_view suffix = text.substr(digits);
  const Unit* unit = nullptr;
  for (const Unit& u : kUnits) {
    if (suffix == u.suffix) unit = &u;
  }
  if (digits == 0 || unit == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", shown,
                     "' is not a size: expected a whole number of bytes with an optional unit "
                     "(k, M, G, T, P or Ki, Mi, Gi, Ti, Pi), e.g. 400Mi"));
  }
  std::optional<int64_t> n = WholeNumber(text.substr(0, digits));
  if (!n.has_value() || *n > kMaxMemoryBudget / unit->factor) {
    return absl::InvalidArgumentError(absl::StrCat("'", shown, "' is too large (at most 1Pi)"));
  }
  return *n * unit->factor;
}

std::string FormatByteSize(int64_t bytes) {
  static constexpr const char* kNames[] = {"Ki", "Mi", "Gi", "Ti", "Pi"};
  if (bytes < kKi) return absl::StrCat(bytes, "B");
  double value = static_cast<double>(bytes);
  int i = -1;
  while (i < 4 && value >= 1024) {
    value /= 1024;
    ++i;
  }
  if (value == static_cast<double>(static_cast<int64_t>(value))) {
    return absl::StrCat(static_cast<int64_t>(value), kNames[i]);
  }
  return absl::StrFormat("%.1f%s", value, kNames[i]);
}

namespace {

// The first line of `path` without surrounding spaces; std::nullopt when it cannot be read or
// is blank.
std::optional<std::string> FirstLine(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  absl::string_view stripped = absl::StripAsciiWhitespace(line);
  if (stripped.empty()) return std::nullopt;
  return std::string(stripped);
}

}  // namespace

std::optional<int64_t> ReadCgroupMemoryLimit(const std::string& root) {
  constexpr int64_t kUnlimited = int64_t{1} << 62;
  for (const char* file : {"/memory.max", "/memory/memory.limit_in_bytes"}) {
    std::optional<std::string> line = FirstLine(root + file);
    if (!line.has_value()) continue;
    std::optional<int64_t> n = WholeNumber(*line);
    if (!n.has_value() || *n >= kUnlimited) return std::nullopt;  // "max", garbage, unlimited
    return *n;
  }
  return std::nullopt;
}

int64_t PhysicalMemoryBytes() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<int64_t>(pages) * page;
}

absl::StatusOr<MemoryBudgetChoice> ChooseMemoryBudget(absl::string_view flag,
                                                      const std::string& cgroup_root,
                                                      int64_t physical_bytes) {
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--max_memory: ", why));
  };
  MemoryBudgetChoice choice;
  if (flag != "auto") {
    absl::StatusOr<int64_t> bytes = ParseByteSize(flag);
    if (!bytes.ok()) return bad(bytes.status().message());
    if (*bytes < kMinMemoryBudget)
      return bad(absl::StrCat("must be at least ", FormatByteSize(kMinMemoryBudget)));
    choice.bytes = *bytes;
    choice.source = "--max_memory";
    return choice;
  }
  std::optional<int64_t> cgroup = ReadCgroupMemoryLimit(cgroup_root);
  int64_t base = cgroup.value_or(physical_bytes);
  if (physical_bytes > 0 && base > physical_bytes) base = physical_bytes;
  choice.bytes = std::min(base / 4 * 3, kMaxMemoryBudget);
  choice.source = absl::StrCat("75% of ", cgroup.has_value() ? "the cgroup limit " : "memory ",
                               FormatByteSize(base));
  if (choice.bytes < kMinMemoryBudget) {
    return bad(absl::StrCat("auto: ", choice.source, " is less than ",
                            FormatByteSize(kMinMemoryBudget),
                            "; raise the container's "
                            "memory limit or set --max_memory"));
  }
  return choice;
}

}  // namespace sag
