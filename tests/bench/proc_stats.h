// Reads a process's thread count, resident memory and CPU time from /proc, and samples them in
// the background while a benchmark runs.
#ifndef SAG_TESTS_BENCH_PROC_STATS_H_
#define SAG_TESTS_BENCH_PROC_STATS_H_

#include <sys/types.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>

namespace sag::bench {

struct ProcStats {
  long threads = 0;
  long rss_kb = 0;
  double cpu_seconds = 0;  // user + system
};

inline ProcStats ReadProcStats(pid_t pid) {
  ProcStats s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) s.threads = std::stol(line.substr(8));
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::stol(line.substr(6));
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = content.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(content.substr(close + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stol(field);
      if (i == 15) stime = std::stol(field);
    }
    s.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return s;
}

// Samples a process every `period_ms` until stopped; keeps the peaks.
class PeakSampler {
 public:
  PeakSampler(pid_t pid, int period_ms) : pid_(pid) {
    thread_ = std::thread([this, period_ms] {
      while (!stop_.load()) {
        ProcStats s = ReadProcStats(pid_);
        if (s.threads > peak_threads_.load()) peak_threads_ = s.threads;
        if (s.rss_kb > peak_rss_kb_.load()) peak_rss_kb_ = s.rss_kb;
        std::this_thread::sleep_for(std::chrono::milliseconds(period_ms));
      }
    });
  }
  ~PeakSampler() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long peak_threads() const { return peak_threads_.load(); }
  long peak_rss_kb() const { return peak_rss_kb_.load(); }

 private:
  pid_t pid_;
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_threads_{0};
  std::atomic<long> peak_rss_kb_{0};
  std::thread thread_;
};

}  // namespace sag::bench

#endif  // SAG_TESTS_BENCH_PROC_STATS_H_
