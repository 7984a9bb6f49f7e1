// LimiterObserver (service/app/observers.h): the limiter's answers as per-caller, per-class
// metrics, with configured caller names only as label values (any other caller is "other").
#include "service/app/observers.h"

#include <yaml-cpp/yaml.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sag::app {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(LimiterObserverTest, CountsPerConfiguredCallerAndClassAndLumpsTheRestAsOther) {
  telemetry::Registry registry;
  auto metrics = telemetry::GatewayMetrics::Create(&registry, "test");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  auto access = auth::AccessPolicy::Parse(
      YAML::Load("callers:\n  - name: reporting\n    cert_names: [reporting.svc]\n"
                 "    priority: batch\n    weight: 2\n"),
      {"ListAudiences"}, {});
  ASSERT_TRUE(access.ok()) << access.status();
  auto observe = LimiterObserver(metrics->get(), &*access);
  using ratelimit::Outcome;
  using ratelimit::Priority;
  const std::string lane = "ws/ListAudiences";
  observe({lane, "reporting", Priority::kBatch, Outcome::kAdmitted, absl::Seconds(2), false});
  observe({lane, "reporting", Priority::kBatch, Outcome::kAdmitted, absl::Seconds(1), false});
  observe({lane, "reporting", Priority::kBatch, Outcome::kDeadlineRefused, {}, false});
  observe({lane,
           "x-caller-id-chosen-by-anyone",
           Priority::kInteractive,
           Outcome::kAdmitted,
           {},
           false});
  observe({lane, "10.0.0.7:5555", Priority::kInteractive, Outcome::kDeadlineExceeded, {}, false});
  observe({lane, "10.0.0.8:5555", Priority::kInteractive, Outcome::kCancelled, {}, false});
  const std::string text = registry.Serialize();
  const std::string batch = "{caller=\"reporting\",class=\"batch\"}";
  const std::string other = "{caller=\"other\",class=\"interactive\"}";
  EXPECT_THAT(text, HasSubstr("audiences_gateway_caller_admitted_total" + batch + " 2\n"));
  EXPECT_THAT(text, HasSubstr("audiences_gateway_caller_queue_wait_seconds_sum" + batch + " 3\n"));
  EXPECT_THAT(text, HasSubstr("audiences_gateway_caller_refused_total" + batch + " 1\n"));
  EXPECT_THAT(text, HasSubstr("audiences_gateway_caller_admitted_total" + other + " 1\n"));
  // DEADLINE_EXCEEDED in the queue is a refusal; a cancel is the caller's own doing.
  EXPECT_THAT(text, HasSubstr("audiences_gateway_caller_refused_total" + other + " 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("x-caller-id-chosen-by-anyone")));
  EXPECT_THAT(text, Not(HasSubstr("10.0.0.7")));
}

TEST(LimiterObserverTest, WithoutAPolicyEveryCallerIsOther) {
  telemetry::Registry registry;
  auto metrics = telemetry::GatewayMetrics::Create(&registry, "test");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  auto observe = LimiterObserver(metrics->get(), nullptr);
  observe({"ws/GetAudience",
           "anyone",
           ratelimit::Priority::kInteractive,
           ratelimit::Outcome::kAdmitted,
           {},
           false});
  EXPECT_THAT(registry.Serialize(),
              HasSubstr("audiences_gateway_caller_admitted_total{caller=\"other\",class="
                        "\"interactive\"} 1\n"));
}

}  // namespace
}  // namespace sag::app
