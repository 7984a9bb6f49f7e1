// sag::cli: which arguments ask for help, the help text (this file's flags only, no paths), the
// nearest-flag hints for unknown flags, including hostile ones.
#include "service/common/cli.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "gRPC listen address, host:port.");
ABSL_FLAG(int, queue_max, 10000, "Most calls waiting for a slot.");
ABSL_FLAG(bool, verbose, false, "A bool flag.");

namespace sag::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

bool Help(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return WantsHelp(static_cast<int>(args.size()), args.data());
}

std::vector<std::string> Hints(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return UnknownFlagHints(static_cast<int>(args.size()), args.data());
}

TEST(CliTest, HelpFlagsAreRecognised) {
  EXPECT_TRUE(Help({"--help"}));
  EXPECT_TRUE(Help({"-help"}));
  EXPECT_TRUE(Help({"-h"}));
  EXPECT_TRUE(Help({"--listen=x", "--helpfull"}));
  EXPECT_TRUE(Help({"--helpshort"}));
  EXPECT_TRUE(Help({"--help=listen"}));
  EXPECT_FALSE(Help({}));
  EXPECT_FALSE(Help({"--listen=--help"}));
  EXPECT_FALSE(Help({"--", "--help"}));
  EXPECT_FALSE(Help({"--helper"}));
}

TEST(CliTest, HelpTextListsOnlyTheProgramsFlagsWithoutPaths) {
  Program program{"prog", "Usage: prog [--listen=ADDR]", "1.0",
                  [](absl::string_view file) { return absl::EndsWith(file, "cli_test.cc"); }};
  const std::string text = HelpText(program);
  EXPECT_TRUE(absl::StartsWith(text, "Usage: prog [--listen=ADDR]\n")) << text;
  EXPECT_THAT(text, HasSubstr("--listen (gRPC listen address, host:port.); default: "
                              "\"0.0.0.0:50051\";"));
  EXPECT_THAT(text, HasSubstr("--queue_max (Most calls waiting for a slot.); default: 10000;"));
  EXPECT_LT(text.find("--listen"), text.find("--queue_max"));  // Sorted.
  EXPECT_THAT(text, Not(HasSubstr("--flagfile (")));           // Abseil's own flags: not listed.
  EXPECT_THAT(text, Not(HasSubstr(".cc")));
  for (const auto& line : absl::StrSplit(text, '\n')) {
    EXPECT_LE(absl::string_view(line).size(), 100u) << line;
  }
}

TEST(CliTest, ShortSourceNameIsTheSameWhereverTheBuildRan) {
  // An absolute path (a clone anywhere), a ccache build with base_dir, a relative build.
  EXPECT_EQ(ShortSourceName("/check/work/main/service/app/flags.cc"), "app/flags.cc");
  EXPECT_EQ(ShortSourceName("../../../service/app/flags.cc"), "app/flags.cc");
  EXPECT_EQ(ShortSourceName("service/app/flags.cc"), "app/flags.cc");
  EXPECT_EQ(ShortSourceName("/src/tests/sim/main.cc"), "sim/main.cc");
  EXPECT_EQ(ShortSourceName("main.cc"), "main.cc");
  EXPECT_EQ(ShortSourceName("/main.cc"), "/main.cc");
  EXPECT_EQ(ShortSourceName(""), "");
}

TEST(CliTest, NearestNameWithinASmallDistance) {
  const std::vector<std::string> names = {"listen", "metrics_listen", "queue_max"};
  EXPECT_EQ(Nearest("lisen", names), "listen");
  EXPECT_EQ(Nearest("LISTEN", names), "listen");
  EXPECT_EQ(Nearest("queue_mx", names), "queue_max");
  EXPECT_EQ(Nearest("zzzzzz", names), "");
  EXPECT_EQ(Nearest("", names), "");
  EXPECT_EQ(Nearest(std::string(65, 'l'), names), "");
}

TEST(CliTest, UnknownFlagsGetAHint) {
  EXPECT_THAT(Hints({"--lisen=1", "-queue_mx", "7", "--zzzzzzzz"}),
              ElementsAre("unknown flag --lisen (did you mean --listen?)",
                          "unknown flag --queue_mx (did you mean --queue_max?)",
                          "unknown flag --zzzzzzzz"));
}

TEST(CliTest, KnownFlagsAndTheirValuesAreNotHinted) {
  EXPECT_THAT(Hints({"--listen", "--not-a-flag-but-a-value", "--noverbose", "--verbose",
                     "positional", "-", "--", "--after_the_end"}),
              IsEmpty());
}

TEST(CliTest, HostileFlagNamesAreCutShort) {
  const std::string huge = "--" + std::string(100000, 'x') + "=1";
  const std::string binary = std::string("--\x01\xff\n", 5);
  std::vector<std::string> hints = Hints({huge.c_str(), binary.c_str()});
  ASSERT_EQ(hints.size(), 2u);
  EXPECT_EQ(hints[0], "unknown flag --" + std::string(64, 'x'));
  EXPECT_EQ(hints[1], "unknown flag --???");
}

}  // namespace
}  // namespace sag::cli
