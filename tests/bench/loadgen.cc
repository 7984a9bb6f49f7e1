#include "tests/bench/loadgen.h"

#include <curl/curl.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/telemetry/logger.h"

namespace sag::bench {

namespace {

using Clock = std::chrono::steady_clock;

double MicrosBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::micro>(to - from).count();
}

Clock::duration ToClock(absl::Duration d) {
  return std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(d));
}

// What one slot saw during a Run: its share of the counts and samples. A slot has one call at a
// time, so only that call's thread touches it (the hand-over between calls is synchronised by
// the loop).
struct Tally {
  std::vector<double> samples_us;
  int64_t ok = 0;
  int64_t failed = 0;
  int64_t warmup_ok = 0;
  int64_t warmup_failed = 0;
  std::string first_error;
  Clock::time_point first_error_at;

  void Reset() { *this = Tally(); }
  void Record(bool measured, bool ok_call, double latency_us, const std::string& error) {
    if (ok_call) {
      if (measured) {
        ++ok;
        samples_us.push_back(latency_us);
      } else {
        ++warmup_ok;
      }
      return;
    }
    ++(measured ? failed : warmup_failed);
    if (first_error.empty()) {
      first_error = error.empty() ? "failed (no error text)" : error;
      first_error_at = Clock::now();
    }
  }
};

// Adds the slots' tallies up into `r` (samples sorted, percentiles computed).
void Merge(const std::vector<const Tally*>& tallies, double seconds, LoadResult* r) {
  const Tally* first_failure = nullptr;
  size_t samples = 0;
  for (const Tally* t : tallies) samples += t->samples_us.size();
  r->samples_us.reserve(samples);
  for (const Tally* t : tallies) {
    r->ok += t->ok;
    r->failed += t->failed;
    r->warmup_ok += t->warmup_ok;
    r->warmup_failed += t->warmup_failed;
    r->samples_us.insert(r->samples_us.end(), t->samples_us.begin(), t->samples_us.end());
    if (!t->first_error.empty() &&
        (first_failure == nullptr || t->first_error_at < first_failure->first_error_at)) {
      first_failure = t;
    }
  }
  if (first_failure != nullptr) r->first_error = first_failure->first_error;
  r->seconds = seconds;
  r->throughput = seconds > 0 ? static_cast<double>(r->ok) / seconds : 0;
  r->latency = Summarize(&r->samples_us);
}

}  // namespace

// ---- Percentiles and results ----

double Percentile(const std::vector<double>& sorted_us, double q) {
  if (sorted_us.empty()) return 0;
  const double n = static_cast<double>(sorted_us.size());
  const double rank = std::ceil(q * n);  // 1-based nearest rank.
  const size_t index = static_cast<size_t>(std::clamp(rank, 1.0, n)) - 1;
  return sorted_us[index];
}

double PercentileOf(std::vector<double> samples, double q) {
  std::sort(samples.begin(), samples.end());
  return Percentile(samples, q);
}

double JainIndex(const std::vector<double>& shares) {
  double sum = 0, squares = 0;
  for (double v : shares) {
    sum += v;
    squares += v * v;
  }
  return squares == 0 ? 0 : sum * sum / (static_cast<double>(shares.size()) * squares);
}

LatencySummary Summarize(std::vector<double>* samples_us) {
  std::sort(samples_us->begin(), samples_us->end());
  LatencySummary s;
  s.count = static_cast<int64_t>(samples_us->size());
  if (samples_us->empty()) return s;
  s.mean_us = std::accumulate(samples_us->begin(), samples_us->end(), 0.0) /
              static_cast<double>(samples_us->size());
  s.p50_us = Percentile(*samples_us, 0.50);
  s.p90_us = Percentile(*samples_us, 0.90);
  s.p99_us = Percentile(*samples_us, 0.99);
  s.p999_us = Percentile(*samples_us, 0.999);
  s.max_us = samples_us->back();
  return s;
}

LoadResult Combine(const std::vector<LoadResult>& parts) {
  LoadResult r;
  if (parts.empty()) return r;
  r.mode = parts.front().mode;
  r.concurrency = parts.front().concurrency;
  r.target_rate = parts.front().target_rate;
  for (const LoadResult& p : parts) {
    r.seconds += p.seconds;
    r.ok += p.ok;
    r.failed += p.failed;
    r.warmup_ok += p.warmup_ok;
    r.warmup_failed += p.warmup_failed;
    r.waited_for_slot += p.waited_for_slot;
    if (r.first_error.empty()) r.first_error = p.first_error;
    r.samples_us.insert(r.samples_us.end(), p.samples_us.begin(), p.samples_us.end());
  }
  r.throughput = r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
  r.latency = Summarize(&r.samples_us);
  return r;
}

nlohmann::json ToJson(const LoadResult& r) {
  nlohmann::json j = {{"mode", r.mode},
                      {"concurrency", r.concurrency},
                      {"seconds", r.seconds},
                      {"ok", r.ok},
                      {"failed", r.failed},
                      {"warmup_ok", r.warmup_ok},
                      {"warmup_failed", r.warmup_failed},
                      {"throughput_per_s", r.throughput},
                      {"latency_us",
                       {{"count", r.latency.count},
                        {"mean", r.latency.mean_us},
                        {"p50", r.latency.p50_us},
                        {"p90", r.latency.p90_us},
                        {"p99", r.latency.p99_us},
                        {"p99.9", r.latency.p999_us},
                        {"max", r.latency.max_us}}}};
  if (r.mode == "open") {
    j["target_rate_per_s"] = r.target_rate;
    j["waited_for_slot"] = r.waited_for_slot;
  }
  if (!r.first_error.empty()) j["first_error"] = r.first_error;
  return j;
}

std::string FormatResult(const LoadResult& r) {
  std::string line = absl::StrFormat(
      "%8.0f calls/s, p50 %6.0f us, p90 %6.0f us, p99 %6.0f us, p99.9 %6.0f us, max %6.0f us; "
      "%d failed",
      r.throughput, r.latency.p50_us, r.latency.p90_us, r.latency.p99_us, r.latency.p999_us,
      r.latency.max_us, r.failed + r.warmup_failed);
  if (r.mode == "open" && r.waited_for_slot > 0) {
    absl::StrAppend(&line, ", ", r.waited_for_slot, " sent late (all slots busy)");
  }
  return line;
}

// ---- Closed loop ----

struct ClosedLoop::Slot {
  // Who continues the slot after a call: 0 = Issue is running, 1 = Issue returned first (the
  // completion continues), 2 = the call completed first (Drive loops: no recursion when a
  // call completes inside Issue).
  std::atomic<int> phase{0};
  Clock::time_point start;
  Clock::time_point last_done;  // The slot's latest completion this Run (for max_calls).
  bool measured = false;
  Tally tally;
  Done done;  // Built once: completes a call of this slot.
};

ClosedLoop::ClosedLoop(int concurrency, Issue issue)
    : concurrency_(std::max(1, concurrency)), issue_(std::move(issue)) {
  for (int i = 0; i < concurrency_; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->done = [this, i](bool ok, const std::string& error) { Complete(i, ok, error); };
    slots_.push_back(std::move(slot));
  }
}

ClosedLoop::~ClosedLoop() = default;

LoadResult ClosedLoop::Run(absl::Duration warmup, absl::Duration duration, int64_t max_calls) {
  const Clock::time_point start = Clock::now();
  for (auto& s : slots_) {
    s->tally.Reset();
    s->last_done = start;
  }
  measure_from_ = start + ToClock(warmup);
  until_ = measure_from_ + ToClock(duration);
  max_calls_ = std::max<int64_t>(0, max_calls);
  started_.store(0, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    active_ = concurrency_;
  }
  for (int i = 0; i < concurrency_; ++i) Drive(i);
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* active) { return *active == 0; }, &active_));
  }
  LoadResult r;
  r.mode = "closed";
  r.concurrency = concurrency_;
  std::vector<const Tally*> tallies;
  for (auto& s : slots_) tallies.push_back(&s->tally);
  double seconds = absl::ToDoubleSeconds(duration);
  if (max_calls_ > 0 && started_.load(std::memory_order_relaxed) >= max_calls_) {
    // The bound stopped the issuing: the window ends at the last completion if that came first.
    Clock::time_point end = start;
    for (auto& s : slots_) end = std::max(end, s->last_done);
    if (end < until_) seconds = std::max(0.0, MicrosBetween(measure_from_, end) / 1e6);
  }
  Merge(tallies, seconds, &r);
  return r;
}

void ClosedLoop::Drive(int i) {
  Slot& s = *slots_[static_cast<size_t>(i)];
  while (true) {
    const Clock::time_point now = Clock::now();
    if (now >= until_ ||
        (max_calls_ > 0 && started_.fetch_add(1, std::memory_order_relaxed) >= max_calls_)) {
      absl::MutexLock lock(&mu_);
      --active_;
      return;
    }
    s.start = now;
    s.measured = now >= measure_from_;
    s.phase.store(0, std::memory_order_relaxed);
    issue_(i, s.done);
    if (s.phase.exchange(1, std::memory_order_acq_rel) != 2) return;  // Complete continues.
  }
}

void ClosedLoop::Complete(int i, bool ok, const std::string& error) {
  Slot& s = *slots_[static_cast<size_t>(i)];
  s.last_done = Clock::now();
  s.tally.Record(s.measured, ok, MicrosBetween(s.start, s.last_done), error);
  if (s.phase.exchange(2, std::memory_order_acq_rel) == 1) Drive(i);
}

// ---- Open loop ----

struct OpenLoop::Slot {
  Clock::time_point intended;  // When the call was due (latency is measured from here).
  bool measured = false;
  Tally tally;
  Done done;
};

OpenLoop::OpenLoop(double rate, int max_in_flight, Issue issue)
    : rate_(rate), max_in_flight_(std::max(1, max_in_flight)), issue_(std::move(issue)) {
  for (int i = 0; i < max_in_flight_; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->done = [this, i](bool ok, const std::string& error) { Complete(i, ok, error); };
    slots_.push_back(std::move(slot));
  }
}

OpenLoop::~OpenLoop() = default;

LoadResult OpenLoop::Run(absl::Duration warmup, absl::Duration duration) {
  LoadResult r;
  r.mode = "open";
  r.concurrency = max_in_flight_;
  r.target_rate = rate_;
  if (!(rate_ > 0)) {
    r.first_error = "open loop: the rate must be positive";
    return r;
  }
  for (auto& s : slots_) s->tally.Reset();
  {
    absl::MutexLock lock(&mu_);
    free_.clear();
    for (int i = max_in_flight_ - 1; i >= 0; --i) free_.push_back(i);
  }
  const Clock::time_point start = Clock::now();
  measure_from_ = start + ToClock(warmup);
  const Clock::time_point until = measure_from_ + ToClock(duration);
  for (int64_t k = 0;; ++k) {
    // Intended times are computed from the start (not accumulated), so they do not drift.
    const Clock::time_point intended =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(static_cast<double>(k) / rate_));
    if (intended >= until) break;
    if (Clock::now() < intended) std::this_thread::sleep_until(intended);
    int slot = 0;
    {
      absl::MutexLock lock(&mu_);
      if (free_.empty()) {
        if (intended >= measure_from_) ++r.waited_for_slot;
        mu_.Await(absl::Condition(
            +[](std::vector<int>* free) { return !free->empty(); }, &free_));
      }
      slot = free_.back();
      free_.pop_back();
    }
    Slot& s = *slots_[static_cast<size_t>(slot)];
    s.intended = intended;
    s.measured = intended >= measure_from_;
    issue_(slot, s.done);
  }
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](OpenLoop* self) {  // Called with mu_ held.
          return self->free_.size() == static_cast<size_t>(self->max_in_flight_);
        },
        this));
  }
  std::vector<const Tally*> tallies;
  for (auto& s : slots_) tallies.push_back(&s->tally);
  Merge(tallies, absl::ToDoubleSeconds(duration), &r);
  return r;
}

void OpenLoop::Complete(int i, bool ok, const std::string& error) {
  Slot& s = *slots_[static_cast<size_t>(i)];
  s.tally.Record(s.measured, ok, MicrosBetween(s.intended, Clock::now()), error);
  absl::MutexLock lock(&mu_);
  free_.push_back(i);
}

LoadResult RunLoad(const LoadOptions& options, Issue issue) {
  if (options.rate > 0) {
    return OpenLoop(options.rate, options.concurrency, std::move(issue))
        .Run(options.warmup, options.duration);
  }
  return ClosedLoop(options.concurrency, std::move(issue)).Run(options.warmup, options.duration);
}

// ---- gRPC ----

std::string StatusCodeName(grpc::StatusCode code) {
  return std::string(telemetry::GrpcCodeName(static_cast<int>(code)));
}

Issue GrpcUnaryIssue(grpc::GenericStub* stub, GrpcUnary call) {
  struct Spec {
    GrpcUnary call;
    grpc::ByteBuffer request;  // Built once; each call takes a reference-counted copy.
  };
  auto spec = std::make_shared<Spec>();
  spec->call = std::move(call);
  grpc::Slice slice(spec->call.request);
  spec->request = grpc::ByteBuffer(&slice, 1);
  return [stub, spec](int, Done done) {
    struct Call {
      grpc::ClientContext ctx;
      grpc::ByteBuffer request;
      grpc::ByteBuffer response;
    };
    auto* c = new Call();
    c->request = spec->request;
    c->ctx.set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoNanoseconds(spec->call.timeout));
    for (const auto& [key, value] : spec->call.metadata) c->ctx.AddMetadata(key, value);
    stub->UnaryCall(&c->ctx, spec->call.method, grpc::StubOptions(), &c->request, &c->response,
                    [c, spec, done = std::move(done)](grpc::Status status) {
                      std::string error;
                      if (!status.ok()) {
                        error = absl::StrCat(StatusCodeName(status.error_code()), ": ",
                                             status.error_message());
                      } else {
                        if (spec->call.check) error = spec->call.check(c->response);
                        if (error.empty() && spec->call.check_with_context) {
                          error = spec->call.check_with_context(c->ctx, c->response);
                        }
                      }
                      const bool ok = status.ok() && error.empty();
                      delete c;
                      done(ok, error);
                    });
  };
}

// ---- HTTP (libcurl) ----

struct CurlClient::Transfer {
  CURL* easy = nullptr;
  Done done;  // Set while a request is in flight.
  int64_t body_bytes = 0;
  char error[CURL_ERROR_SIZE] = {};
};

namespace {

size_t CountBody(char*, size_t size, size_t n, void* userdata) {
  static_cast<int64_t*>(userdata)[0] += static_cast<int64_t>(size * n);
  return size * n;
}

// The CurlClient whose event loop runs on this thread, if any.
thread_local const CurlClient* tls_loop_owner = nullptr;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

CurlClient::CurlClient(Options options) : options_(std::move(options)) {
  GlobalInitOnce();
  CURLM* multi = curl_multi_init();
  multi_ = multi;
  // Keep one idle connection per slot: every request finds a warm keep-alive connection.
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(options_.slots));
  curl_slist* headers = nullptr;
  for (const std::string& h : options_.headers) headers = curl_slist_append(headers, h.c_str());
  header_list_ = headers;
  for (int i = 0; i < options_.slots; ++i) {
    auto t = std::make_unique<Transfer>();
    CURL* e = curl_easy_init();
    t->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, options_.url.c_str());
    if (options_.method != "GET")
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, options_.method.c_str());
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &CountBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t->body_bytes);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    transfers_.push_back(std::move(t));
  }
  loop_ = std::thread([this] { Loop(); });
}

CurlClient::~CurlClient() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
  loop_.join();
  for (auto& t : transfers_) {
    if (t->done) curl_multi_remove_handle(static_cast<CURLM*>(multi_), t->easy);
    curl_easy_cleanup(t->easy);
  }
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
  curl_slist_free_all(static_cast<curl_slist*>(header_list_));
}

void CurlClient::Start(int slot, Done done) {
  if (slot < 0 || slot >= options_.slots) {
    done(false, absl::StrCat("slot ", slot, " out of range (", options_.slots, " slots)"));
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    pending_.emplace_back(slot, std::move(done));
  }
  // From a `done` on the loop thread, the loop checks pending_ before it sleeps: no wake-up.
  if (tls_loop_owner != this) curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void CurlClient::Loop() {
  tls_loop_owner = this;
  CURLM* multi = static_cast<CURLM*>(multi_);
  std::vector<std::pair<int, Done>> batch;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      batch.swap(pending_);
    }
    for (auto& [slot, done] : batch) {
      Transfer& t = *transfers_[static_cast<size_t>(slot)];
      if (t.done) {  // The caller broke the one-call-per-slot rule.
        done(false, absl::StrCat("slot ", slot, " already has a request in flight"));
        continue;
      }
      t.done = std::move(done);
      t.body_bytes = 0;
      t.error[0] = '\0';
      curl_multi_add_handle(multi, t.easy);
    }
    batch.clear();
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode result = msg->data.result;
      char* priv = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
      Transfer& t = *reinterpret_cast<Transfer*>(priv);
      long status = 0;
      long connects = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
      connections_.fetch_add(connects, std::memory_order_relaxed);
      curl_multi_remove_handle(multi, easy);  // `msg` is invalid from here on.
      std::string error;
      if (result != CURLE_OK) {
        error = curl_easy_strerror(result);
        if (t.error[0] != '\0') absl::StrAppend(&error, ": ", t.error);
      } else if (status != options_.expected_status) {
        error = absl::StrCat("HTTP ", status);
      } else if (options_.expected_body_bytes >= 0 &&
                 t.body_bytes != options_.expected_body_bytes) {
        error = absl::StrCat("a body of ", t.body_bytes, " bytes, expected ",
                             options_.expected_body_bytes);
      }
      Done done = std::move(t.done);
      t.done = nullptr;
      done(error.empty(), error);  // May queue the slot's next request.
    }
    bool more = false;
    {
      absl::MutexLock lock(&mu_);
      more = !pending_.empty() || stop_;
    }
    // Sleeps until a socket is ready, a curl timer is due, or Start/stop wakes it up.
    if (!more) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
}

}  // namespace sag::bench
