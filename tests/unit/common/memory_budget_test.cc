// The memory budget (service/common/memory_budget.h): charges and refusals, external memory read
// only near the bound, concurrent charges never past the bound, the --max_memory sizes (well
// formed, malformed, oversized, hostile) and the cgroup limit files (fake files in a temp dir).
#include "service/common/memory_budget.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace sag {
namespace {

TEST(MemoryBudgetTest, ChargesUntilTheLimitThenRefusesChangingNothing) {
  MemoryBudget budget(100, 10);
  absl::StatusOr<MemoryBudget::Charge> a = budget.TryCharge(50);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(budget.InUse(), 60);
  absl::StatusOr<MemoryBudget::Charge> refused = budget.TryCharge(41);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "memory budget is full"))
      << refused.status().message();
  EXPECT_EQ(budget.refusals(), 1u);
  EXPECT_EQ(budget.InUse(), 60);
  absl::StatusOr<MemoryBudget::Charge> b = budget.TryCharge(40);  // Exactly up to the limit.
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(budget.InUse(), 100);
  a->Release();
  EXPECT_EQ(budget.charged(), 40);
  a->Release();  // Twice changes nothing.
  EXPECT_EQ(budget.charged(), 40);
}

TEST(MemoryBudgetTest, AChargeIsGivenBackOnceWhateverMovesIt) {
  MemoryBudget budget(1000, 0);
  {
    MemoryBudget::Charge outer;
    {
      absl::StatusOr<MemoryBudget::Charge> c = budget.TryCharge(100);
      ASSERT_TRUE(c.ok());
      MemoryBudget::Charge moved(*std::move(c));
      EXPECT_EQ(budget.charged(), 100);
      outer = std::move(moved);
    }  // The moved-from ones give nothing back.
    EXPECT_EQ(budget.charged(), 100);
    EXPECT_TRUE(outer.held());
    outer = budget.ForceCharge(7);  // Assigning over a charge gives the old one back.
    EXPECT_EQ(budget.charged(), 7);
  }
  EXPECT_EQ(budget.charged(), 0);
}

TEST(MemoryBudgetTest, AcceptedChargesGrowPastTheLimitAndNewOnesWaitForThem) {
  MemoryBudget budget(100, 0);
  absl::StatusOr<MemoryBudget::Charge> c = budget.TryCharge(90);
  ASSERT_TRUE(c.ok());
  c->Grow(30);  // An accepted call is never dropped: it may grow past the limit.
  EXPECT_EQ(budget.InUse(), 120);
  MemoryBudget::Charge forced = budget.ForceCharge(5);
  EXPECT_EQ(budget.InUse(), 125);
  EXPECT_FALSE(budget.TryCharge(0).ok());
  EXPECT_FALSE(budget.TryCharge(1).ok());
  c->Release();
  EXPECT_TRUE(budget.TryCharge(95).ok());
  MemoryBudget::Charge empty;
  empty.Grow(10);  // Holds nothing: grows nothing.
  EXPECT_EQ(budget.charged(), 5);
}

TEST(MemoryBudgetTest, NegativeSizesCountAsZero) {
  MemoryBudget budget(-5, -5);
  EXPECT_EQ(budget.limit(), 0);
  EXPECT_EQ(budget.reserved(), 0);
  absl::StatusOr<MemoryBudget::Charge> c = budget.TryCharge(-100);
  ASSERT_TRUE(c.ok());
  c->Grow(-100);
  EXPECT_EQ(budget.charged(), 0);
  EXPECT_FALSE(budget.TryCharge(1).ok());
}

TEST(MemoryBudgetTest, ExternalMemoryIsReadOnlyNearTheBoundAndCounts) {
  MemoryBudget budget(1000, 100);
  std::atomic<int64_t> cache{0};
  std::atomic<int> reads{0};
  budget.SetExternal(400, [&] {
    ++reads;
    return cache.load();
  });
  absl::StatusOr<MemoryBudget::Charge> far = budget.TryCharge(200);  // 300 + 400 <= 1000
  ASSERT_TRUE(far.ok());
  EXPECT_EQ(reads.load(), 0);
  cache = 350;
  EXPECT_TRUE(budget.TryCharge(300).ok());  // 600 + the bound 400 fits: not read
  EXPECT_EQ(reads.load(), 0);
  EXPECT_FALSE(budget.TryCharge(400).ok());  // 700 + 350 > 1000: only the cache says so
  EXPECT_GT(reads.load(), 0);
  EXPECT_TRUE(budget.TryCharge(350).ok());  // 300 + 350 + 350 = 1000
  EXPECT_EQ(budget.InUse(), 100 + 200 + 350);
  cache = 5000;  // Above its bound, or below zero: clamped.
  EXPECT_EQ(budget.InUse(), 100 + 200 + 400);
  cache = -5000;
  EXPECT_EQ(budget.InUse(), 100 + 200);
}

TEST(MemoryBudgetTest, ConcurrentChargesNeverHoldMoreThanTheBound) {
  constexpr int64_t kCall = 1000;
  constexpr int kFit = 5;
  MemoryBudget budget(100 + kFit * kCall, 100);
  std::atomic<int> held{0}, most{0}, accepted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        absl::StatusOr<MemoryBudget::Charge> c = budget.TryCharge(kCall);
        if (!c.ok()) {
          ++refused;
          continue;
        }
        ++accepted;
        int now = ++held;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --held;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), kFit);
  EXPECT_GE(most.load(), 1);
  EXPECT_EQ(accepted.load() + refused.load(), 8 * 5000);
  EXPECT_EQ(budget.refusals(), static_cast<uint64_t>(refused.load()));
  EXPECT_EQ(budget.charged(), 0);
}

TEST(ParseByteSizeTest, AcceptsWholeNumbersWithKubernetesUnits) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"0", 0},
      {"1048576", 1048576},
      {"400Mi", int64_t{400} << 20},
      {"1Gi", int64_t{1} << 30},
      {"1G", 1000000000},
      {"512M", 512000000},
      {"64k", 64000},
      {"64K", 64000},
      {"2Ki", 2048},
      {"3Ti", int64_t{3} << 40},
      {"1Pi", int64_t{1} << 50},
      {"1125899906842624", int64_t{1} << 50},
  };
  for (const auto& [text, bytes] : cases) {
    absl::StatusOr<int64_t> parsed = ParseByteSize(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status();
    EXPECT_EQ(*parsed, bytes) << text;
  }
}

TEST(ParseByteSizeTest, RefusesMalformedOversizedAndHostileValues) {
  const std::vector<std::string> bad = {"",
                                        "-1",
                                        "+1",
                                        "1e99",
                                        "1E3",
                                        "10XB",
                                        "1MB",
                                        "1GiB",
                                        "1mi",
                                        "Mi",
                                        "1.5Gi",
                                        " 1Gi",
                                        "1Gi ",
                                        "1 Gi",
                                        "0x10",
                                        "1\n",
                                        std::string("1\0Gi", 4),
                                        "\xef\xbc\x91Gi",
                                        "2Pi",
                                        "1126Ti",
                                        "1125899906842625",
                                        "9223372036854775807",
                                        "9223372036854775808",
                                        "18446744073709551616",
                                        "99999999999999999999Gi",
                                        std::string(10000, '9'),
                                        std::string(10000, 'x'),
                                        "auto",
                                        "max",
                                        "-0",
                                        "1Gi1",
                                        "Gi1"};
  for (const std::string& text : bad) {
    absl::StatusOr<int64_t> parsed = ParseByteSize(text);
    EXPECT_FALSE(parsed.ok()) << "'" << text << "' = " << parsed.value_or(-1);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_LT(parsed.status().message().size(), 200u) << "the message quotes at most 40 chars";
  }
  EXPECT_TRUE(absl::StrContains(ParseByteSize("2Pi").status().message(), "too large"));
  EXPECT_TRUE(absl::StrContains(ParseByteSize("10XB").status().message(), "e.g. 400Mi"));
  EXPECT_TRUE(absl::StrContains(ParseByteSize("").status().message(), "empty"));
}

TEST(ParseByteSizeTest, FormatsSizesForPeople) {
  EXPECT_EQ(FormatByteSize(400 << 20), "400Mi");
  EXPECT_EQ(FormatByteSize(int64_t{3} << 29), "1.5Gi");
  EXPECT_EQ(FormatByteSize(1000), "1000B");
  EXPECT_EQ(FormatByteSize(2048), "2Ki");
  EXPECT_EQ(FormatByteSize(int64_t{1} << 50), "1Pi");
  EXPECT_EQ(*ParseByteSize(FormatByteSize(int64_t{384} << 20)), int64_t{384} << 20);
}

// A fake /sys/fs/cgroup in a temp dir.
class CgroupTest : public ::testing::Test {
 protected:
  CgroupTest()
      : root_(absl::StrCat(::testing::TempDir(), "/cgroup-", getpid(), "-",
                           ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_ + "/memory");
  }
  ~CgroupTest() override { std::filesystem::remove_all(root_); }
  void Write(const std::string& file, const std::string& content) {
    std::ofstream(root_ + "/" + file) << content;
  }
  const std::string root_;
};

TEST_F(CgroupTest, V2NumberIsTheLimitAndMaxIsNone) {
  Write("memory.max", "536870912\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(root_), int64_t{512} << 20);
  Write("memory.max", "max\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(root_), std::nullopt);
}

TEST_F(CgroupTest, V1NumberIsTheLimitAndItsHugeUnlimitedValueIsNone) {
  Write("memory/memory.limit_in_bytes", "268435456\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(root_), int64_t{256} << 20);
  Write("memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(root_), std::nullopt);
}

TEST_F(CgroupTest, V2WinsOverV1) {
  Write("memory.max", "1073741824");
  Write("memory/memory.limit_in_bytes", "268435456");
  EXPECT_EQ(ReadCgroupMemoryLimit(root_), int64_t{1} << 30);
}

TEST_F(CgroupTest, MissingFilesAndGarbageAreNoLimit) {
  EXPECT_EQ(ReadCgroupMemoryLimit(root_), std::nullopt);
  EXPECT_EQ(ReadCgroupMemoryLimit(root_ + "/does-not-exist"), std::nullopt);
  for (const std::string& garbage :
       {std::string("-1"), std::string("abc"), std::string("1e9"),
        std::string("99999999999999999999999"), std::string(100000, '7'), std::string("12 34")}) {
    Write("memory.max", garbage);
    EXPECT_EQ(ReadCgroupMemoryLimit(root_), std::nullopt) << garbage.substr(0, 30);
  }
}

TEST_F(CgroupTest, AutoTakesThreeQuartersOfTheCgroupLimit) {
  Write("memory.max", "536870912\n");
  absl::StatusOr<MemoryBudgetChoice> c = ChooseMemoryBudget("auto", root_, int64_t{8} << 30);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bytes, int64_t{384} << 20);
  EXPECT_EQ(c->source, "75% of the cgroup limit 512Mi");
}

TEST_F(CgroupTest, AutoWithoutALimitTakesThreeQuartersOfTheMachine) {
  Write("memory.max", "max\n");
  absl::StatusOr<MemoryBudgetChoice> c = ChooseMemoryBudget("auto", root_, int64_t{8} << 30);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bytes, int64_t{6} << 30);
  EXPECT_EQ(c->source, "75% of memory 8Gi");
  // A cgroup limit above the machine's memory counts as the machine's.
  Write("memory.max", std::to_string(int64_t{64} << 30));
  c = ChooseMemoryBudget("auto", root_, int64_t{8} << 30);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bytes, int64_t{6} << 30);
}

TEST_F(CgroupTest, AutoRefusesALimitTooSmallToServe) {
  Write("memory.max", std::to_string(int64_t{48} << 20));  // 36Mi < 40Mi
  absl::StatusOr<MemoryBudgetChoice> c = ChooseMemoryBudget("auto", root_, int64_t{8} << 30);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::StartsWith(c.status().message(), "--max_memory: auto: 75% of the cgroup"))
      << c.status().message();
}

TEST_F(CgroupTest, AGivenSizeWinsAndIsChecked) {
  Write("memory.max", "536870912\n");
  absl::StatusOr<MemoryBudgetChoice> c = ChooseMemoryBudget("400Mi", root_, int64_t{8} << 30);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bytes, int64_t{400} << 20);
  EXPECT_EQ(c->source, "--max_memory");
  for (const char* bad : {"", "-1", "1e99", "10XB", "32Mi", "0", "99999999999999999999"}) {
    c = ChooseMemoryBudget(bad, root_, int64_t{8} << 30);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(c.status().message(), "--max_memory: ")) << c.status().message();
  }
  EXPECT_TRUE(
      absl::StrContains(ChooseMemoryBudget("32Mi", root_, 0).status().message(), "at least 40Mi"));
}

}  // namespace
}  // namespace sag
