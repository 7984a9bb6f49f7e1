// Prometheus metrics, written in the text exposition format 0.0.4.
//
// A Registry owns metric *families*. A family has a name, a help text, a type (counter, gauge,
// histogram) and a fixed list of label names; its *children* are the individual time series, one
// per set of label values:
//
//   sag::telemetry::Registry registry;
//   auto calls = registry.AddCounter("audiences_gateway_calls_total", "Calls.", {"rpc", "code"});
//   Counter* ok = (*calls)->WithLabels({"GetAudience", "OK"});   // look up once, keep the pointer
//   ok->Increment();                                              // hot path: one atomic op
//   std::string text = registry.Serialize();                      // what GET /metrics returns
//
// Promises:
//  - Every method of every class here is thread-safe.
//  - Counter/Gauge/Histogram updates are lock-free (atomics only). WithLabels() takes a lock and
//    does a map lookup: call it once per label set and cache the pointer.
//  - Families and children are never removed: pointers returned by Add*() and WithLabels() stay
//    valid for the lifetime of the Registry.
//  - Serialize() is deterministic: families sorted by name, children sorted by label values.
//    Label-less families always show (initially 0); labelled families show once a child exists.
//  - Names are validated ([a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]* and not "__*"),
//    label values are escaped (backslash, double quote, newline) and invalid UTF-8 is replaced.
//
// Does not: expire series, bound cardinality (use label values from small fixed sets: RPC names,
// status codes, configured workspace names; never caller-supplied strings), or speak OpenMetrics.
#ifndef SAG_SERVICE_TELEMETRY_METRICS_H_
#define SAG_SERVICE_TELEMETRY_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sag {
namespace telemetry {

// Content-Type of the text exposition format served on /metrics.
inline constexpr char kExpositionContentType[] = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

// One time series (or, for histograms, one group of series). Base of Counter, Gauge, Histogram;
// not used directly.
class Metric {
 public:
  Metric() = default;
  Metric(const Metric&) = delete;
  Metric& operator=(const Metric&) = delete;
  virtual ~Metric() = default;

 private:
  friend class FamilyBase;
  // Appends this child's sample line(s). `labels` is the formatted label list without braces
  // (`a="x",b="y"`), empty for a label-less family.
  virtual void AppendSamples(const std::string& name, const std::string& labels,
                             std::string* out) const = 0;
};

// A monotonically increasing value (requests served, errors seen).
class Counter final : public Metric {
 public:
  Counter() = default;

  // Adds `amount`. Negative and NaN amounts are ignored (a counter never goes down). Lock-free.
  void Increment(double amount = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  void AppendSamples(const std::string& name, const std::string& labels,
                     std::string* out) const override;
  std::atomic<double> value_{0.0};
};

// A value that goes up and down (queue depth, bytes cached), either set by the program or
// computed at scrape time by a callback.
class Gauge final : public Metric {
 public:
  Gauge() = default;

  // Lock-free.
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Increment(double amount = 1.0);
  void Decrement(double amount = 1.0) { Increment(-amount); }

  // From now on Value() (and so every scrape) returns fn() instead of the stored value. fn runs on
  // the scraping thread; it must be thread-safe, quick, must not call SetCallback/ClearCallback
  // on this gauge, and must stay callable until ClearCallback() returns or the Registry dies.
  void SetCallback(std::function<double()> fn);
  // Back to the stored value. When it returns, the old callback is not running and never will.
  void ClearCallback();

  // The callback's result when one is set, else the stored value.
  double Value() const;

 private:
  void AppendSamples(const std::string& name, const std::string& labels,
                     std::string* out) const override;
  std::atomic<double> value_{0.0};
  std::atomic<bool> has_callback_{false};
  mutable absl::Mutex callback_mu_;
  std::function<double()> callback_ ABSL_GUARDED_BY(callback_mu_);
};

// Counts observations into buckets by upper bound (`le`), plus their sum and count. Exposed as
// `<name>_bucket{le="..."}` (cumulative, ending with le="+Inf"), `<name>_sum`, `<name>_count`.
class Histogram final : public Metric {
 public:
  // `bounds`: strictly increasing finite upper bounds, owned by the family; must outlive this.
  explicit Histogram(const std::vector<double>* bounds);

  // Records one observation. Lock-free: a binary search and two atomic adds. NaN is ignored.
  void Observe(double value);
  void ObserveDuration(absl::Duration d) { Observe(absl::ToDoubleSeconds(d)); }

  struct Snapshot {
    std::vector<double> bounds;        // upper bounds, without +Inf
    std::vector<uint64_t> cumulative;  // bounds.size() + 1 entries, the last is +Inf
    double sum = 0;
    uint64_t count = 0;  // == cumulative.back()
  };
  // A consistent-enough view: cumulative counts never decrease, count == the +Inf bucket. `sum`
  // may lag an observation that is being recorded concurrently.
  Snapshot Collect() const;

 private:
  void AppendSamples(const std::string& name, const std::string& labels,
                     std::string* out) const override;
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket (not cumulative), +Inf last
  std::atomic<double> sum_{0.0};
};

// What all families share: name, help, type, label names, the children.
class FamilyBase {
 public:
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;
  virtual ~FamilyBase();

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Number of children created so far.
  size_t size() const;

 protected:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names);
  // The child for `label_values`, created on first use. A value count that differs from the label
  // name count is a programming error: asserts in debug builds; otherwise missing values are ""
  // and extra values are dropped.
  Metric* GetOrCreate(const std::vector<std::string>& label_values);

 private:
  friend class Registry;
  virtual std::unique_ptr<Metric> NewMetric() const = 0;
  // Appends # HELP, # TYPE and every child's samples; nothing for a family without children.
  void AppendTo(std::string* out) const;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_ ABSL_GUARDED_BY(mu_);
};

// A family of children of type T (Counter, Gauge or Histogram). Created by the Registry.
template <typename T>
class Family final : public FamilyBase {
 public:
  // The child for these label values (in the order of label_names()), created on first use.
  // Never null; the pointer stays valid as long as the Registry. Takes a lock: cache the result.
  T* WithLabels(const std::vector<std::string>& label_values) {
    return static_cast<T*>(GetOrCreate(label_values));
  }
  // The only child of a label-less family.
  T* Get() { return WithLabels({}); }

 private:
  friend class Registry;
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         std::vector<double> bounds = {})
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
        bounds_(std::move(bounds)) {}
  std::unique_ptr<Metric> NewMetric() const override;
  const std::vector<double> bounds_;  // histograms only
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Owns metric families and writes them out. Thread-safe; registering and scraping may happen at
// the same time as updates. Not copyable.
class Registry {
 public:
  Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  // Register a family. Errors (InvalidArgument): a name or label name that is not valid, a label
  // name given twice, a histogram label named "le", bucket bounds that are not finite and strictly
  // increasing. AlreadyExists: the name, or one of the sample names the family would write
  // (`x_bucket`, `x_sum`, `x_count` for a histogram `x`), is taken. The returned pointer is owned
  // by the registry. A label-less family gets its single child (value 0) at once.
  absl::StatusOr<CounterFamily*> AddCounter(absl::string_view name, absl::string_view help,
                                            std::vector<std::string> label_names = {});
  absl::StatusOr<GaugeFamily*> AddGauge(absl::string_view name, absl::string_view help,
                                        std::vector<std::string> label_names = {});
  // `bounds`: bucket upper bounds (without +Inf; a trailing +Inf is tolerated and dropped).
  absl::StatusOr<HistogramFamily*> AddHistogram(absl::string_view name, absl::string_view help,
                                                std::vector<std::string> label_names,
                                                std::vector<double> bounds = DefaultBuckets());
  // A label-less gauge whose value is fn() at every scrape (see Gauge::SetCallback for what fn
  // may do). Returns the gauge, so that the owner of what fn reads can ClearCallback() before
  // it goes away.
  absl::StatusOr<Gauge*> AddCallbackGauge(absl::string_view name, absl::string_view help,
                                          std::function<double()> fn);

  // The whole registry in the text exposition format 0.0.4 (Content-Type kExpositionContentType).
  std::string Serialize() const;

  // Prometheus' default buckets, in seconds: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
  static std::vector<double> DefaultBuckets();
  // `count` bounds: start, start*factor, start*factor^2, ... (start > 0, factor > 1, count >= 1).
  static std::vector<double> ExponentialBuckets(double start, double factor, int count);

 private:
  absl::Status Register(std::unique_ptr<FamilyBase> family, std::vector<std::string> samples);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> sample_names_ ABSL_GUARDED_BY(mu_);
};

// Helpers of the exposition format, exposed for tests and for other writers.
// True when `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*.
bool IsValidMetricName(absl::string_view name);
// True when `name` matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__".
bool IsValidLabelName(absl::string_view name);
// A label value escaped for use between double quotes: \ -> \\, " -> \", newline -> \n; invalid
// UTF-8 bytes become U+FFFD.
std::string EscapeLabelValue(absl::string_view value);
// A sample value: integers without a fraction ("42"), others in shortest round-trip form ("0.25"),
// "NaN", "+Inf", "-Inf".
std::string FormatSampleValue(double value);

}  // namespace telemetry
}  // namespace sag

#endif  // SAG_SERVICE_TELEMETRY_METRICS_H_
