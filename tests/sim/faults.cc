#include "faults.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "operations.h"

namespace sim {
namespace {

bool ValidRate(double rate) { return rate >= 0 && rate <= 1; }  // false for NaN

}  // namespace

bool FaultOptions::Any() const {
  return error_5xx_rate > 0 || error_5xx_after_rate > 0 || reset_rate > 0 || malformed_rate > 0 ||
         latency > absl::ZeroDuration();
}

absl::Status FaultOptions::Validate() const {
  const std::pair<const char*, double> rates[] = {{"--fault_5xx_rate", error_5xx_rate},
                                                  {"--fault_5xx_after_rate", error_5xx_after_rate},
                                                  {"--fault_reset_rate", reset_rate},
                                                  {"--fault_malformed_rate", malformed_rate}};
  for (const auto& [name, rate] : rates) {
    if (!ValidRate(rate)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be a fraction between 0 and 1, got ", rate));
    }
  }
  if (latency < absl::ZeroDuration() || latency > absl::Hours(1)) {
    return absl::InvalidArgumentError("--fault_latency must be between 0s and 1h");
  }
  for (const std::string& op : ops) {
    if (FindOperation(op) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--fault_ops: unknown operation \"", op, "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::set<std::string, std::less<>>> ParseFaultOps(absl::string_view spec) {
  std::set<std::string, std::less<>> ops;
  if (absl::StripAsciiWhitespace(spec).empty()) return ops;
  for (absl::string_view entry : absl::StrSplit(spec, ',')) {
    const absl::string_view name = absl::StripAsciiWhitespace(entry);
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--fault_ops: empty entry in \"", spec, "\" (expected RPC names)"));
    }
    if (FindOperation(name) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--fault_ops: unknown operation \"", name,
                       "\" (expected RPC names in PascalCase, e.g. GetAudience,CreateAudience)"));
    }
    ops.emplace(name);
  }
  return ops;
}

FaultInjector::FaultInjector(FaultOptions options) : options_(std::move(options)) {
  absl::MutexLock lock(&mu_);
  if (options_.seed != 0) {
    rng_.seed(options_.seed);
  } else {
    std::random_device device;
    rng_.seed((static_cast<uint64_t>(device()) << 32) ^ device());
  }
}

bool FaultInjector::Applies(absl::string_view rpc) const {
  return options_.ops.empty() || options_.ops.find(rpc) != options_.ops.end();
}

bool FaultInjector::Hit(double rate) {
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  return std::uniform_real_distribution<double>(0, 1)(rng_) < rate;
}

absl::Duration FaultInjector::DrawLatency(absl::string_view rpc) {
  if (options_.latency <= absl::ZeroDuration() || !Applies(rpc)) return absl::ZeroDuration();
  absl::MutexLock lock(&mu_);
  const int64_t max_us = absl::ToInt64Microseconds(options_.latency);
  const int64_t us = std::uniform_int_distribution<int64_t>(0, max_us)(rng_);
  if (us > 0) ++counts_.latency;
  return absl::Microseconds(us);
}

int FaultInjector::Draw5xx(absl::string_view rpc) {
  if (options_.error_5xx_rate <= 0 || !Applies(rpc)) return 0;
  absl::MutexLock lock(&mu_);
  if (!Hit(options_.error_5xx_rate)) return 0;
  ++counts_.error_5xx;
  return std::uniform_int_distribution<int>(0, 1)(rng_) == 0 ? 500 : 503;
}

bool FaultInjector::DrawReset(absl::string_view rpc) {
  if (options_.reset_rate <= 0 || !Applies(rpc)) return false;
  absl::MutexLock lock(&mu_);
  if (!Hit(options_.reset_rate)) return false;
  ++counts_.reset;
  return true;
}

bool FaultInjector::Draw5xxAfter(absl::string_view rpc) {
  if (options_.error_5xx_after_rate <= 0 || !Applies(rpc)) return false;
  const Operation* op = FindOperation(rpc);
  if (op == nullptr || op->method == "GET") return false;
  absl::MutexLock lock(&mu_);
  if (!Hit(options_.error_5xx_after_rate)) return false;
  ++counts_.error_5xx_after;
  return true;
}

bool FaultInjector::DrawMalformed(absl::string_view rpc) {
  if (options_.malformed_rate <= 0 || !Applies(rpc)) return false;
  absl::MutexLock lock(&mu_);
  if (!Hit(options_.malformed_rate)) return false;
  ++counts_.malformed;
  return true;
}

size_t FaultInjector::DrawCut(size_t size) {
  if (size < 2) return 0;
  absl::MutexLock lock(&mu_);
  return std::uniform_int_distribution<size_t>(1, size - 1)(rng_);
}

FaultCounts FaultInjector::Counts() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

void FaultInjector::ResetCounts() {
  absl::MutexLock lock(&mu_);
  counts_ = FaultCounts();
}

}  // namespace sim
