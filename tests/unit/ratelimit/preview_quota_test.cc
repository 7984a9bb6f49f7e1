#include "service/ratelimit/preview_quota.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/unit/ratelimit/test_util.h"

namespace sag::ratelimit {
namespace {

using ::sag::ratelimit::testing::QuotaFailureOf;

const absl::TimeZone kUtc = absl::UTCTimeZone();
const absl::Time kNov = absl::FromCivil(absl::CivilSecond(2026, 11, 18, 10, 0, 0), kUtc);
const absl::CivilMonth kNovMonth(2026, 11);

class PreviewQuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("preview_quota_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "preview_quota.json").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<LocalPreviewQuota> Open(int64_t limit, bool persisted = true) {
    auto q = LocalPreviewQuota::Open({persisted ? path_ : "", limit});
    EXPECT_TRUE(q.ok()) << q.status();
    return q.ok() ? std::move(*q) : nullptr;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(PreviewQuotaTest, SevenHundredPerSpaceThenQuotaFailureAtOnce) {
  auto q = Open(700, /*persisted=*/false);
  for (int i = 0; i < 700; ++i) ASSERT_TRUE(q->TryTake("spaceA", kNov).ok()) << i;
  absl::Status refused = q->TryTake("spaceA", kNov);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  auto failure = QuotaFailureOf(refused);
  ASSERT_TRUE(failure.has_value());
  ASSERT_EQ(failure->violations_size(), 1);
  EXPECT_EQ(failure->violations(0).subject(), "spaces/spaceA");
  const std::string& description = failure->violations(0).description();
  EXPECT_NE(description.find("2026-11"), std::string::npos) << description;
  EXPECT_NE(description.find("700"), std::string::npos) << description;
  EXPECT_NE(description.find("2026-12-01"), std::string::npos) << description;
  EXPECT_EQ(q->Used("spaceA", kNovMonth), 700);  // The refusal counted nothing.
  // Another space has its own quota.
  EXPECT_TRUE(q->TryTake("spaceB", kNov).ok());
}

TEST_F(PreviewQuotaTest, CountSurvivesARestart) {
  {
    auto q = Open(5);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(q->TryTake("space1", kNov).ok());
  }
  auto restarted = Open(5);  // A new process reading the same file.
  EXPECT_EQ(restarted->Used("space1", kNovMonth), 3);
  EXPECT_TRUE(restarted->TryTake("space1", kNov).ok());
  EXPECT_TRUE(restarted->TryTake("space1", kNov).ok());
  EXPECT_EQ(restarted->TryTake("space1", kNov).code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(PreviewQuotaTest, FileIsWrittenAtomicallyAsJson) {
  auto q = Open(5);
  ASSERT_TRUE(q->TryTake("space1", kNov).ok());
  ASSERT_TRUE(q->TryTake("space2", kNov).ok());
  ASSERT_TRUE(q->TryTake("space2", kNov).ok());
  std::ifstream in(path_);
  std::stringstream buf;
  buf << in.rdbuf();
  nlohmann::json doc = nlohmann::json::parse(buf.str());
  EXPECT_EQ(doc["version"], 1);
  EXPECT_EQ(doc["months"]["2026-11"]["space1"], 1);
  EXPECT_EQ(doc["months"]["2026-11"]["space2"], 2);
  // No temporary file left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(PreviewQuotaTest, NewUtcMonthStartsAFreshCount) {
  auto q = Open(2);
  const absl::Time last_second = absl::FromCivil(absl::CivilSecond(2026, 11, 30, 23, 59, 59), kUtc);
  const absl::Time midnight = absl::FromCivil(absl::CivilSecond(2026, 12, 1, 0, 0, 0), kUtc);
  ASSERT_TRUE(q->TryTake("s", kNov).ok());
  ASSERT_TRUE(q->TryTake("s", kNov).ok());
  EXPECT_EQ(q->TryTake("s", last_second).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(q->TryTake("s", midnight).ok());
  EXPECT_EQ(q->Used("s", absl::CivilMonth(2026, 12)), 1);
  EXPECT_EQ(q->Used("s", kNovMonth), 2);  // The previous month is kept.
  // Months older than the previous one are dropped from the file.
  const absl::Time february = absl::FromCivil(absl::CivilSecond(2027, 2, 1, 0, 0, 0), kUtc);
  ASSERT_TRUE(q->TryTake("s", february).ok());
  EXPECT_EQ(q->Used("s", kNovMonth), 0);
  auto restarted = Open(2);
  EXPECT_EQ(restarted->Used("s", absl::CivilMonth(2027, 2)), 1);
  EXPECT_EQ(restarted->Used("s", absl::CivilMonth(2026, 12)), 0);
}

TEST_F(PreviewQuotaTest, UtcMonthIgnoresLocalTimeZones) {
  // 2026-12-01 00:30 in UTC is still November in New York: UTC decides.
  const absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 12, 1, 0, 30, 0), kUtc);
  EXPECT_EQ(UtcMonthOf(t), absl::CivilMonth(2026, 12));
}

TEST_F(PreviewQuotaTest, ReleaseGivesBackAndPersists) {
  {
    auto q = Open(1);
    ASSERT_TRUE(q->TryTake("s", kNov).ok());
    EXPECT_EQ(q->TryTake("s", kNov).code(), absl::StatusCode::kResourceExhausted);
    // The call was refused before it reached the upstream: it does not count.
    EXPECT_TRUE(q->Release("s", UtcMonthOf(kNov)).ok());
    EXPECT_EQ(q->Used("s", kNovMonth), 0);
    EXPECT_TRUE(q->Release("s", kNovMonth).ok());  // Nothing to give back: no-op.
    EXPECT_EQ(q->Used("s", kNovMonth), 0);
    EXPECT_TRUE(q->Release("unknown", kNovMonth).ok());
  }
  auto restarted = Open(1);
  EXPECT_EQ(restarted->Used("s", kNovMonth), 0);
  EXPECT_TRUE(restarted->TryTake("s", kNov).ok());
}

TEST_F(PreviewQuotaTest, MalformedStateFileIsAnErrorNamingIt) {
  {
    std::ofstream out(path_);
    out << "{\"months\": {\"2026-11\": {\"s\": \"many\"}}}";
  }
  auto q = LocalPreviewQuota::Open({path_, 700});
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find(path_), std::string::npos) << q.status();
  {
    std::ofstream out(path_);
    out << "not json";
  }
  EXPECT_FALSE(LocalPreviewQuota::Open({path_, 700}).ok());
  {
    std::ofstream out(path_);
    out << "{\"months\": {\"November\": {}}}";
  }
  EXPECT_FALSE(LocalPreviewQuota::Open({path_, 700}).ok());
}

TEST_F(PreviewQuotaTest, MissingFileIsAnEmptyCount) {
  auto q = Open(700);
  EXPECT_EQ(q->Used("s", kNovMonth), 0);
}

TEST_F(PreviewQuotaTest, UnwritableStateFailsClosedAndCountsNothing) {
  auto q = LocalPreviewQuota::Open({(dir_ / "no-such-dir" / "quota.json").string(), 5});
  ASSERT_TRUE(q.ok()) << q.status();
  absl::Status s = (*q)->TryTake("s", kNov);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*q)->Used("s", kNovMonth), 0);
}

TEST_F(PreviewQuotaTest, NegativeLimitIsRejected) {
  EXPECT_EQ(LocalPreviewQuota::Open({"", -1}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sag::ratelimit
