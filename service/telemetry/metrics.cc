#include "service/telemetry/metrics.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/utf8.h"

namespace sag {
namespace telemetry {
namespace {

// C++17 has no atomic<double>::fetch_add; a CAS loop is lock-free on every platform we build on.
void AtomicAdd(std::atomic<double>* target, double amount) {
  double current = target->load(std::memory_order_relaxed);
  while (!target->compare_exchange_weak(current, current + amount, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
  }
}

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// # HELP text: backslash and newline escaped.
std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AppendSample(const std::string& name, absl::string_view suffix, const std::string& labels,
                  const std::string& value, std::string* out) {
  absl::StrAppend(out, name, suffix);
  if (!labels.empty()) absl::StrAppend(out, "{", labels, "}");
  absl::StrAppend(out, " ", value, "\n");
}

}  // namespace

bool IsValidMetricName(absl::string_view name) {
  if (name.empty()) return false;
  if (!IsNameStart(name[0]) && name[0] != ':') return false;
  for (char c : name) {
    if (!IsNameStart(c) && !IsDigit(c) && c != ':') return false;
  }
  return true;
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return false;
  for (char c : name) {
    if (!IsNameStart(c) && !IsDigit(c)) return false;
  }
  return true;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size();) {
    const char c = value[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      const size_t len = ::sag::Utf8SequenceLength(value, i);
      if (len == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
        ++i;
        continue;
      }
      out.append(value.data() + i, len);
      i += len;
      continue;
    }
    ++i;
  }
  return out;
}

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, result.ptr);
}

// ---------------------------------------------------------------------------------------------
// Counter, Gauge, Histogram

void Counter::Increment(double amount) {
  if (!(amount > 0)) return;  // also drops NaN
  AtomicAdd(&value_, amount);
}

void Counter::AppendSamples(const std::string& name, const std::string& labels,
                            std::string* out) const {
  AppendSample(name, "", labels, FormatSampleValue(Value()), out);
}

void Gauge::Increment(double amount) { AtomicAdd(&value_, amount); }

void Gauge::SetCallback(std::function<double()> fn) {
  absl::MutexLock lock(&callback_mu_);
  callback_ = std::move(fn);
  has_callback_.store(static_cast<bool>(callback_), std::memory_order_release);
}

void Gauge::ClearCallback() {
  absl::MutexLock lock(&callback_mu_);
  callback_ = nullptr;
  has_callback_.store(false, std::memory_order_release);
}

double Gauge::Value() const {
  if (has_callback_.load(std::memory_order_acquire)) {
    absl::MutexLock lock(&callback_mu_);
    if (callback_) return callback_();
  }
  return value_.load(std::memory_order_relaxed);
}

void Gauge::AppendSamples(const std::string& name, const std::string& labels,
                          std::string* out) const {
  AppendSample(name, "", labels, FormatSampleValue(Value()), out);
}

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(*bounds), counts_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // First bound >= value: `le` means less than or equal.
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  // The sum first: a scrape that sees the count also (very likely) sees the sum.
  AtomicAdd(&sum_, value);
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Collect() const {
  Snapshot snap;
  snap.bounds = bounds_;
  snap.cumulative.resize(bounds_.size() + 1);
  snap.sum = sum_.load(std::memory_order_relaxed);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    snap.cumulative[i] = total;
  }
  snap.count = total;
  return snap;
}

void Histogram::AppendSamples(const std::string& name, const std::string& labels,
                              std::string* out) const {
  const Snapshot snap = Collect();
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i <= snap.bounds.size(); ++i) {
    const std::string le = i < snap.bounds.size() ? FormatSampleValue(snap.bounds[i]) : "+Inf";
    AppendSample(name, "_bucket", absl::StrCat(labels, sep, "le=\"", le, "\""),
                 absl::StrCat(snap.cumulative[i]), out);
  }
  AppendSample(name, "_sum", labels, FormatSampleValue(snap.sum), out);
  AppendSample(name, "_count", labels, absl::StrCat(snap.count), out);
}

// ---------------------------------------------------------------------------------------------
// Families

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {}

FamilyBase::~FamilyBase() = default;

size_t FamilyBase::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return children_.size();
}

Metric* FamilyBase::GetOrCreate(const std::vector<std::string>& label_values) {
  assert(label_values.size() == label_names_.size() && "label value count != label name count");
  const std::vector<std::string>* key = &label_values;
  std::vector<std::string> fixed;
  if (label_values.size() != label_names_.size()) {
    fixed = label_values;
    fixed.resize(label_names_.size());
    key = &fixed;
  }
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = children_.find(*key);
    if (it != children_.end()) return it->second.get();
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Metric>& slot = children_[*key];
  if (slot == nullptr) slot = NewMetric();
  return slot.get();
}

void FamilyBase::AppendTo(std::string* out) const {
  // Children are never removed: collect the pointers under the lock, read values without it (a
  // gauge callback may take its time, or even register a child).
  std::vector<std::pair<std::string, const Metric*>> children;
  {
    absl::ReaderMutexLock lock(&mu_);
    children.reserve(children_.size());
    for (const auto& [values, metric] : children_) {
      std::string labels;
      for (size_t i = 0; i < values.size(); ++i) {
        absl::StrAppend(&labels, i == 0 ? "" : ",", label_names_[i], "=\"",
                        EscapeLabelValue(values[i]), "\"");
      }
      children.emplace_back(std::move(labels), metric.get());
    }
  }
  if (children.empty()) return;
  absl::StrAppend(out, "# HELP ", name_, " ", EscapeHelp(help_), "\n");
  absl::StrAppend(out, "# TYPE ", name_, " ", TypeName(type_), "\n");
  for (const auto& [labels, metric] : children) metric->AppendSamples(name_, labels, out);
}

template <typename T>
std::unique_ptr<Metric> Family<T>::NewMetric() const {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<Histogram>(&bounds_);
  } else {
    return std::make_unique<T>();
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---------------------------------------------------------------------------------------------
// Registry

namespace {

absl::Status ValidateNames(absl::string_view name, const std::vector<std::string>& label_names,
                           MetricType type) {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("metrics: invalid metric name '", name, "'"));
  }
  std::set<std::string> seen;
  for (const std::string& label : label_names) {
    if (!IsValidLabelName(label)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics: ", name, ": invalid label name '", label, "'"));
    }
    if (type == MetricType::kHistogram && label == "le") {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics: ", name, ": a histogram cannot have a label named 'le'"));
    }
    if (!seen.insert(label).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics: ", name, ": label '", label, "' given twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Registry::Registry() = default;
Registry::~Registry() = default;

std::vector<double> Registry::DefaultBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> Registry::ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  if (!(start > 0) || !(factor > 1) || count < 1) return bounds;
  double bound = start;
  for (int i = 0; i < count && std::isfinite(bound); ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

absl::Status Registry::Register(std::unique_ptr<FamilyBase> family,
                                std::vector<std::string> samples) {
  absl::MutexLock lock(&mu_);
  if (families_.count(family->name()) != 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("metrics: '", family->name(), "' is already registered"));
  }
  for (const std::string& sample : samples) {
    if (sample_names_.count(sample) != 0 || families_.count(sample) != 0) {
      return absl::AlreadyExistsError(absl::StrCat("metrics: '", family->name(), "' would write '",
                                                   sample, "', which is already taken"));
    }
  }
  sample_names_.insert(samples.begin(), samples.end());
  const std::string name = family->name();
  families_.emplace(name, std::move(family));
  return absl::OkStatus();
}

absl::StatusOr<CounterFamily*> Registry::AddCounter(absl::string_view name, absl::string_view help,
                                                    std::vector<std::string> label_names) {
  absl::Status valid = ValidateNames(name, label_names, MetricType::kCounter);
  if (!valid.ok()) return valid;
  const bool labelless = label_names.empty();
  std::unique_ptr<CounterFamily> family(new CounterFamily(
      std::string(name), std::string(help), MetricType::kCounter, std::move(label_names)));
  CounterFamily* raw = family.get();
  absl::Status st = Register(std::move(family), {std::string(name)});
  if (!st.ok()) return st;
  if (labelless) raw->Get();
  return raw;
}

absl::StatusOr<GaugeFamily*> Registry::AddGauge(absl::string_view name, absl::string_view help,
                                                std::vector<std::string> label_names) {
  absl::Status valid = ValidateNames(name, label_names, MetricType::kGauge);
  if (!valid.ok()) return valid;
  const bool labelless = label_names.empty();
  std::unique_ptr<GaugeFamily> family(new GaugeFamily(std::string(name), std::string(help),
                                                      MetricType::kGauge, std::move(label_names)));
  GaugeFamily* raw = family.get();
  absl::Status st = Register(std::move(family), {std::string(name)});
  if (!st.ok()) return st;
  if (labelless) raw->Get();
  return raw;
}

absl::StatusOr<HistogramFamily*> Registry::AddHistogram(absl::string_view name,
                                                        absl::string_view help,
                                                        std::vector<std::string> label_names,
                                                        std::vector<double> bounds) {
  absl::Status valid = ValidateNames(name, label_names, MetricType::kHistogram);
  if (!valid.ok()) return valid;
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metrics: ", name, ": bucket bounds must be finite and strictly increasing"));
    }
  }
  const bool labelless = label_names.empty();
  std::unique_ptr<HistogramFamily> family(
      new HistogramFamily(std::string(name), std::string(help), MetricType::kHistogram,
                          std::move(label_names), std::move(bounds)));
  HistogramFamily* raw = family.get();
  const std::string n(name);
  absl::Status st = Register(std::move(family), {n, n + "_bucket", n + "_sum", n + "_count"});
  if (!st.ok()) return st;
  if (labelless) raw->Get();
  return raw;
}

absl::StatusOr<Gauge*> Registry::AddCallbackGauge(absl::string_view name, absl::string_view help,
                                                  std::function<double()> fn) {
  absl::StatusOr<GaugeFamily*> family = AddGauge(name, help);
  if (!family.ok()) return family.status();
  Gauge* gauge = (*family)->Get();
  gauge->SetCallback(std::move(fn));
  return gauge;
}

std::string Registry::Serialize() const {
  std::vector<const FamilyBase*> families;
  {
    absl::ReaderMutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& [name, family] : families_) families.push_back(family.get());
  }
  std::string out;
  for (const FamilyBase* family : families) family->AppendTo(&out);
  return out;
}

}  // namespace telemetry
}  // namespace sag
