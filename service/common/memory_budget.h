// One memory bound for the whole gateway process (--max_memory), kept by accounting, and what it
// is read from.
//
// Promises:
//  - MemoryBudget::TryCharge(n) succeeds only while reserved + charges + external + n <= limit,
//    and otherwise answers RESOURCE_EXHAUSTED ("the gateway's memory budget is full ...") at once,
//    changing nothing. A Charge gives its bytes back exactly once: on Release() or destruction.
//    Grow() adds to a charge already accepted without asking: what was accepted is never
//    dropped, so the bytes in use may pass the limit by what accepted calls grew by, and new
//    charges are refused until they fall below it again.
//  - "external" is memory another component accounts for itself (the listing cache's bytes): read
//    through a callback, and only when the bound it can reach could matter, so the usual TryCharge
//    is two atomic operations and no lock.
//  - The reserve stands for the process's own footprint (code, threads, gRPC, idle buffers): the
//    charges never use it.
//  - ParseByteSize() accepts what a Kubernetes memory quantity looks like in practice, as a whole
//    number: `400Mi`, `1Gi`, `512M`, `1G`, `1048576`; anything else (signs, exponents, fractions,
//    unknown units, overflow, more than 1Pi) is INVALID_ARGUMENT naming the problem.
//  - ReadCgroupMemoryLimit() reads the container's limit (cgroup v2 memory.max, else v1
//    memory/memory.limit_in_bytes under `root`); "max", v1's huge "unlimited" value, a missing
//    file or content that is not a number are all "no limit".
//
// Thread-safe: every method of MemoryBudget and Charge (SetExternal only before use).
#ifndef SAG_SERVICE_COMMON_MEMORY_BUDGET_H_
#define SAG_SERVICE_COMMON_MEMORY_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sag {

// What one call costs the process, measured with tests/bench (bench_memory: RSS growth divided by
// the calls) in a Release build; see service/README.md, "Memory budget".
// Measured on 2 cores: 18.7-19.2 KB per parked call (~25,600 parked), 32.9-33.1 KB per call in
// flight (2,000). Charged with a tenth more, 21Ki and 37Ki in all (21 + 16): charged at 19Ki,
// a 32,000-call flood peaked at 518.7 and 522.9 MiB against a 512Mi budget (2026-12-03).
struct CallCosts {
  int64_t parked = 21 << 10;    // An accepted call (plus twice its request's size).
  int64_t upstream = 16 << 10;  // Added while its HTTP request to the Segment API is under way.
};

class MemoryBudget {
 public:
  // Bytes held for one holder (a call); given back on Release() or destruction. Movable.
  class Charge {
   public:
    Charge() = default;
    Charge(Charge&& other) noexcept;
    Charge& operator=(Charge&& other) noexcept;
    Charge(const Charge&) = delete;
    Charge& operator=(const Charge&) = delete;
    ~Charge() { Release(); }

    // Adds `bytes` (>= 0) without asking; nothing when this charge holds nothing.
    void Grow(int64_t bytes);
    void Release();
    int64_t bytes() const { return bytes_; }
    bool held() const { return budget_ != nullptr; }

   private:
    friend class MemoryBudget;
    Charge(MemoryBudget* budget, int64_t bytes) : budget_(budget), bytes_(bytes) {}
    MemoryBudget* budget_ = nullptr;
    int64_t bytes_ = 0;
  };

  // `limit` and `reserved` in bytes, both >= 0 (negative values count as 0).
  MemoryBudget(int64_t limit, int64_t reserved);
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Memory accounted elsewhere: `current()` is its size now (thread-safe, quick), never above
  // `bound`. Call before the first TryCharge.
  void SetExternal(int64_t bound, std::function<int64_t()> current);

  // A charge of `bytes` (negative counts as 0), or RESOURCE_EXHAUSTED when it does not fit.
  absl::StatusOr<Charge> TryCharge(int64_t bytes);
  // A charge of `bytes` whether it fits or not (what an accepted call needs more of).
  Charge ForceCharge(int64_t bytes);

  int64_t limit() const { return limit_; }
  int64_t reserved() const { return reserved_; }
  int64_t charged() const { return charged_.load(std::memory_order_relaxed); }
  // reserved + charged + external now: the audiences_gateway_memory_in_use_bytes gauge.
  int64_t InUse() const;
  // TryCharge refusals so far.
  uint64_t refusals() const { return refusals_.load(std::memory_order_relaxed); }

 private:
  int64_t External() const;
  void Give(int64_t bytes) { charged_.fetch_sub(bytes, std::memory_order_acq_rel); }

  const int64_t limit_;
  const int64_t reserved_;
  int64_t external_bound_ = 0;
  std::function<int64_t()> external_;
  std::atomic<int64_t> charged_{0};
  std::atomic<uint64_t> refusals_{0};
};

// The process's own footprint, reserved from the budget (a Release gateway idles at ~26 MB RSS).
inline constexpr int64_t kProcessReserve = int64_t{32} << 20;
// The largest --max_memory accepted (1Pi), and the smallest: the reserve and 8Mi for calls.
inline constexpr int64_t kMaxMemoryBudget = int64_t{1} << 50;
inline constexpr int64_t kMinMemoryBudget = kProcessReserve + (int64_t{8} << 20);

// "400Mi" -> 419430400. Units: none (bytes), k/K M G T P (powers of 1000), Ki Mi Gi Ti Pi
// (powers of 1024). At most kMaxMemoryBudget.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text);
// 419430400 -> "400Mi"; a value that is no whole number of KiB/MiB/GiB stays in bytes or gets
// one decimal ("1.5Gi").
std::string FormatByteSize(int64_t bytes);

// The memory limit of this process's cgroup, read under `root` (normally "/sys/fs/cgroup"):
// `root`/memory.max (v2), else `root`/memory/memory.limit_in_bytes (v1). std::nullopt for no
// limit ("max", v1's unlimited value of 2^63 rounded to a page, any value >= 2^62), a missing
// or unreadable file, or content that is not a plain number.
std::optional<int64_t> ReadCgroupMemoryLimit(const std::string& root);

// What --max_memory resolves to, and why (for the "started" log line).
struct MemoryBudgetChoice {
  int64_t bytes = 0;
  std::string source;  // "--max_memory", "75% of the cgroup limit 512Mi", ...
};

// `flag` is --max_memory: a size (ParseByteSize, at least kMinMemoryBudget), or "auto": 75% of
// the cgroup limit under `cgroup_root`, else 75% of `physical_bytes` (the machine's memory), and
// never more than 75% of `physical_bytes`. INVALID_ARGUMENT naming --max_memory otherwise, or when
// auto finds less than kMinMemoryBudget.
absl::StatusOr<MemoryBudgetChoice> ChooseMemoryBudget(absl::string_view flag,
                                                      const std::string& cgroup_root,
                                                      int64_t physical_bytes);
// The machine's physical memory in bytes (sysconf), 0 when unknown.
int64_t PhysicalMemoryBytes();

}  // namespace sag

#endif  // SAG_SERVICE_COMMON_MEMORY_BUDGET_H_
