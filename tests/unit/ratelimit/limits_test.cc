#include "service/ratelimit/limits.h"

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace sag::ratelimit {
namespace {

const std::vector<absl::string_view> kRpcs = {"ListAudiences", "GetAudience",
                                              "CreateAudiencePreview", "ForceExecuteAudienceRun"};

TEST(ParseRateLimitsTest, EmptySpecGivesNoOverrides) {
  auto parsed = ParseRateLimits("", kRpcs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->empty());
  parsed = ParseRateLimits("   ", kRpcs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->empty());
}

TEST(ParseRateLimitsTest, ParsesEntriesAndDefault) {
  auto parsed = ParseRateLimits("ListAudiences=60/1m, default = 10/1s ,GetAudience=5/1h30m", kRpcs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ(parsed->at("ListAudiences"), (Limit{60, absl::Minutes(1)}));
  EXPECT_EQ(parsed->at("default"), (Limit{10, absl::Seconds(1)}));
  EXPECT_EQ(parsed->at("GetAudience"), (Limit{5, absl::Minutes(90)}));
}

TEST(ParseRateLimitsTest, AcceptsSubSecondDurations) {
  auto parsed = ParseRateLimits("GetAudience=1/250ms", kRpcs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->at("GetAudience"), (Limit{1, absl::Milliseconds(250)}));
}

struct BadSpec {
  const char* spec;
  const char* entry;  // The entry the message must name.
  const char* why;    // A fragment of the reason.
};

class ParseRateLimitsBadTest : public ::testing::TestWithParam<BadSpec> {};

TEST_P(ParseRateLimitsBadTest, RejectsWithMessageNamingTheEntry) {
  const BadSpec& bad = GetParam();
  auto parsed = ParseRateLimits(bad.spec, kRpcs);
  ASSERT_FALSE(parsed.ok()) << bad.spec;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(parsed.status().message());
  EXPECT_NE(message.find(std::string("\"") + bad.entry + "\""), std::string::npos) << message;
  EXPECT_NE(message.find(bad.why), std::string::npos) << message;
  EXPECT_NE(message.find("--rate_limits"), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Specs, ParseRateLimitsBadTest,
    ::testing::Values(BadSpec{"ListAudiences", "ListAudiences", "missing '='"},
                      BadSpec{"Unknown=1/1s", "Unknown=1/1s", "unknown operation 'Unknown'"},
                      BadSpec{"listaudiences=1/1s", "listaudiences=1/1s", "unknown operation"},
                      BadSpec{"ListAudiences=0/1s", "ListAudiences=0/1s", "N must be"},
                      BadSpec{"ListAudiences=-3/1s", "ListAudiences=-3/1s", "N must be"},
                      BadSpec{"ListAudiences=1.5/1s", "ListAudiences=1.5/1s", "N must be"},
                      BadSpec{"ListAudiences=/1s", "ListAudiences=/1s", "N must be"},
                      BadSpec{"ListAudiences=99999999999/1s", "ListAudiences=99999999999/1s",
                              "N must be"},
                      BadSpec{"ListAudiences=10", "ListAudiences=10", "missing '/'"},
                      BadSpec{"ListAudiences=10/0s", "ListAudiences=10/0s", "DURATION"},
                      BadSpec{"ListAudiences=10/-1s", "ListAudiences=10/-1s", "DURATION"},
                      BadSpec{"ListAudiences=10/abc", "ListAudiences=10/abc", "DURATION"},
                      BadSpec{"ListAudiences=10/", "ListAudiences=10/", "DURATION"},
                      BadSpec{"ListAudiences=10/inf", "ListAudiences=10/inf", "DURATION"},
                      BadSpec{"ListAudiences=10/1s,", "", "empty entry"},
                      BadSpec{"=10/1s", "=10/1s", "missing operation"},
                      BadSpec{"default=1/1s,default=2/1s", "default=2/1s", "more than once"}));

TEST(ParseRateLimitsTest, EmptyKnownListAcceptsOnlyDefault) {
  EXPECT_TRUE(ParseRateLimits("default=5/1s", {}).ok());
  EXPECT_FALSE(ParseRateLimits("ListAudiences=5/1s", {}).ok());
}

TEST(LimitForTest, MostSpecificFirst) {
  const Limit api_default{60, absl::Minutes(1)};
  const Limit documented{100, absl::Minutes(1)};
  const Limit none{0, absl::Minutes(1)};
  LimitOverrides overrides;
  // Nothing given: documented, else the API default.
  EXPECT_EQ(LimitFor("GetAudience", documented, overrides, api_default), documented);
  EXPECT_EQ(LimitFor("ForceExecuteAudienceRun", none, overrides, api_default), api_default);
  // `default` changes only operations without a documented limit.
  overrides["default"] = {10, absl::Seconds(1)};
  EXPECT_EQ(LimitFor("GetAudience", documented, overrides, api_default), documented);
  EXPECT_EQ(LimitFor("ForceExecuteAudienceRun", none, overrides, api_default),
            (Limit{10, absl::Seconds(1)}));
  // A named override beats everything.
  overrides["GetAudience"] = {7, absl::Seconds(2)};
  EXPECT_EQ(LimitFor("GetAudience", documented, overrides, api_default),
            (Limit{7, absl::Seconds(2)}));
}

TEST(LimitForTest, ReadsOperationTableRows) {
  ops::RateLimit row{5, absl::Minutes(1)};
  EXPECT_EQ(LimitFor("CreateAudiencePreview", row, {}, Limit{60, absl::Minutes(1)}),
            (Limit{5, absl::Minutes(1)}));
}

TEST(FormatLimitTest, Formats) {
  EXPECT_EQ(FormatLimit({10, absl::Seconds(1)}), "10/1s");
  EXPECT_EQ(FormatLimit({50, absl::Minutes(1)}), "50/1m");
}

}  // namespace
}  // namespace sag::ratelimit
