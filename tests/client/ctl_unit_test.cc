// audiencesctl's pieces in isolation: the argument parser, the YAML writer, tables, exit codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audiencesctl/args.h"
#include "audiencesctl/commands.h"
#include "audiencesctl/output.h"
#include "segment/audiences/v1/audiences.pb.h"

#ifdef SAG_HAVE_YAML_CPP
#include <yaml-cpp/yaml.h>
#endif

namespace audiencesctl {
namespace {

const std::vector<FlagSpec> kSpecs = {
    {"space", 0, true, "ID", ""},    {"all", 0, false, "", ""},    {"output", 'o', true, "F", ""},
    {"file", 'f', true, "FILE", ""}, {"help", 'h', false, "", ""}, {"addr", 0, true, "A", ""},
};

TEST(ParseArgsTest, FlagFormsAndPositionalsInAnyOrder) {
  auto args = ParseArgs({"audiences", "--space=s1", "list", "--all", "-o", "json", "-fbody.json",
                         "-addr=h:1", "extra"},
                        kSpecs);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->positionals, (std::vector<std::string>{"audiences", "list", "extra"}));
  EXPECT_EQ(args->Get("space"), "s1");
  EXPECT_TRUE(args->GetBool("all"));
  EXPECT_EQ(args->Get("output"), "json");
  EXPECT_EQ(args->Get("file"), "body.json");
  EXPECT_EQ(args->Get("addr"), "h:1");
  EXPECT_FALSE(args->Has("help"));
  EXPECT_EQ(args->Get("help", "dflt"), "dflt");
}

TEST(ParseArgsTest, SpaceSeparatedValuesBooleansAndDoubleDash) {
  auto args = ParseArgs({"--space", "s1", "--all=false", "-o=yaml", "--", "--space", "-"}, kSpecs);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("space"), "s1");
  EXPECT_TRUE(args->Has("all"));
  EXPECT_FALSE(args->GetBool("all"));
  EXPECT_EQ(args->Get("output"), "yaml");
  EXPECT_EQ(args->positionals, (std::vector<std::string>{"--space", "-"}));
  // The last value wins; "-" alone is a positional.
  args = ParseArgs({"--space", "a", "-", "--space=b"}, kSpecs);
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->Get("space"), "b");
  EXPECT_EQ(args->positionals, std::vector<std::string>{"-"});
}

TEST(ParseArgsTest, UnknownFlagsAreReturnedForTheCallerToExplain) {
  auto args = ParseArgs({"audiences", "--nope=1", "-x", "list", "--space", "s"}, kSpecs);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->unknown, (std::vector<std::string>{"--nope", "-x"}));
  EXPECT_EQ(args->Get("space"), "s");
  EXPECT_EQ(args->positionals, (std::vector<std::string>{"audiences", "list"}));
  // An empty value is a value.
  args = ParseArgs({"--space=", "-o="}, kSpecs);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_TRUE(args->Has("space"));
  EXPECT_EQ(args->Get("space", "x"), "");
  EXPECT_EQ(args->Get("output", "x"), "");
}

TEST(ParseArgsTest, Errors) {
  EXPECT_FALSE(ParseArgs({"--space"}, kSpecs).ok());  // Missing value.
  EXPECT_FALSE(ParseArgs({"--all=maybe"}, kSpecs).ok());
  EXPECT_EQ(ParseArgs({"--space"}, kSpecs).status().message(), "flag --space needs a value (ID)");
  EXPECT_EQ(ParseArgs({"--all=maybe"}, kSpecs).status().message(),
            "flag --all is true or false, not 'maybe'");
}

TEST(SuggestTest, NearestNamesByEditDistance) {
  const std::vector<std::string> flags = {"--name", "--space", "--query", "--description"};
  EXPECT_EQ(Nearest("--nmae", flags), std::vector<std::string>{"--name"});
  EXPECT_EQ(Nearest("--spcae", flags), std::vector<std::string>{"--space"});
  EXPECT_TRUE(Nearest("--zzzzzz", flags).empty());
  EXPECT_EQ(DidYouMean("getaudience", {"GetAudience", "GetAudiencePreview"}),
            " (did you mean GetAudience?)");
  EXPECT_EQ(DidYouMean("lst", {"list", "get"}), " (did you mean list?)");
  EXPECT_EQ(DidYouMean("xyz", {"list", "get"}), "");
  // Hostile input: long strings get no suggestion (and no quadratic work).
  EXPECT_TRUE(Nearest(std::string(100000, 'a'), flags).empty());
}

TEST(DurationTest, HumanDurations) {
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(10193676945)), "10.2s");
  EXPECT_EQ(HumanDuration(absl::Seconds(3)), "3s");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(250)), "250ms");
  EXPECT_EQ(HumanDuration(absl::Seconds(65.25)), "1m5.3s");
  EXPECT_EQ(HumanDuration(absl::Minutes(2)), "2m");
  EXPECT_EQ(HumanDuration(absl::Hours(1) + absl::Minutes(1)), "1h1m");
  EXPECT_EQ(HumanizeDurations("expected wait 10.193676945s exceeds the remaining deadline "
                              "2.99846s (50/1m)"),
            "expected wait 10.2s exceeds the remaining deadline 3s (50/1m)");
  EXPECT_EQ(HumanizeDurations("retry after 1m0.5s; v65s stays"), "retry after 1m0.5s; v65s stays");
}

TEST(ParseValuesTest, DurationsNumbersListsDays) {
  EXPECT_EQ(*ParseDurationFlag("t", "30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseDurationFlag("t", "1m30s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDurationFlag("t", "15"), absl::Seconds(15));
  EXPECT_FALSE(ParseDurationFlag("t", "soon").ok());
  EXPECT_FALSE(ParseDurationFlag("t", "0s").ok());
  EXPECT_EQ(*ParseIntFlag("count", "42"), 42);
  EXPECT_FALSE(ParseIntFlag("count", "4x").ok());
  EXPECT_EQ(*ParseIntList("hours", "9, 17"), (std::vector<int>{9, 17}));
  EXPECT_FALSE(ParseIntList("hours", "9,noon").ok());
  EXPECT_EQ(*ParseDays("mon,Wed,6,sunday"), (std::vector<int>{1, 3, 6, 0}));
  EXPECT_FALSE(ParseDays("mo").ok());
  EXPECT_FALSE(ParseDays("someday").ok());
  EXPECT_EQ(SplitList(" a, b,,c "), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(YamlTest, BlockStyleWithQuotingWhereNeeded) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(R"({
    "name": "Buyers",
    "enabled": true,
    "count": "12",
    "size": 3,
    "empty": "",
    "looksBool": "yes",
    "colon": "a: b",
    "hash": "x #y",
    "nested": {"list": ["one", {"id": "a", "k": 1}, [], {}], "none": null, "n": "y"},
    "emptyObj": {},
    "deep": [[1, 2], ["x"]]
  })");
  EXPECT_EQ(JsonToYaml(j),
            "name: Buyers\n"
            "enabled: true\n"
            "count: \"12\"\n"
            "size: 3\n"
            "empty: \"\"\n"
            "looksBool: \"yes\"\n"
            "colon: \"a: b\"\n"
            "hash: \"x #y\"\n"
            "nested:\n"
            "  list:\n"
            "    - one\n"
            "    - id: a\n"
            "      k: 1\n"
            "    - []\n"
            "    - {}\n"
            "  none: null\n"
            "  \"n\": \"y\"\n"
            "emptyObj: {}\n"
            "deep:\n"
            "  - - 1\n"
            "    - 2\n"
            "  - - x\n");
  EXPECT_EQ(JsonToYaml(nlohmann::ordered_json("plain")), "plain\n");
  EXPECT_EQ(JsonToYaml(nlohmann::ordered_json::object()), "{}\n");
}

#ifdef SAG_HAVE_YAML_CPP
TEST(YamlTest, ParsesBackToTheSameStrings) {
  const std::vector<std::string> strings = {"",
                                            "true",
                                            "False",
                                            "null",
                                            "~",
                                            "123",
                                            "1e3",
                                            "0x1F",
                                            "-",
                                            "- x",
                                            "a: b",
                                            "a #b",
                                            "#c",
                                            "'single'",
                                            "\"double\"",
                                            "back\\slash",
                                            "tab\there",
                                            "new\nline",
                                            "ü日本",
                                            " lead",
                                            "trail ",
                                            "{x}",
                                            "[y]",
                                            "&anchor",
                                            "*alias",
                                            "!tag",
                                            "%dir",
                                            "@at",
                                            "`tick",
                                            "a,b",
                                            "?q",
                                            "|",
                                            ">",
                                            "2024-01-01T00:00:00Z",
                                            "event('Purchased').count() >= 1"};
  for (const std::string& s : strings) {
    nlohmann::ordered_json j = {{"value", s}, {"list", {s}}};
    YAML::Node node = YAML::Load(JsonToYaml(j));
    EXPECT_EQ(node["value"].as<std::string>(), s) << JsonToYaml(j);
    EXPECT_EQ(node["list"][0].as<std::string>(), s) << JsonToYaml(j);
  }
}
#endif

TEST(TableTest, ColumnsAlignByCodePointsWithoutTrailingSpaces) {
  const std::string table =
      RenderTable({"ID", "NAME", "TYPE"},
                  {{"aud_1", "Über", "USERS"}, {"aud_22", "x", ""}, {"a", "tab\there"}});
  EXPECT_EQ(table,
            "ID       NAME       TYPE\n"
            "aud_1    Über       USERS\n"
            "aud_22   x\n"
            "a        tab here\n");
  EXPECT_EQ(RenderFields({{"ID", "aud_1"}, {"Description", ""}, {"Target entity", "profile"}}),
            "ID:             aud_1\n"
            "Target entity:  profile\n");
}

TEST(TableTest, CellsFromProtoJson) {
  segment::audiences::v1::AudienceSummary a;
  a.set_id("aud_1");
  a.set_audience_type(segment::audiences::v1::AUDIENCE_TYPE_LINKED);
  a.mutable_options()->add_filter_by_external_ids("user_id");
  a.mutable_options()->add_filter_by_external_ids("email");
  nlohmann::json j = ToJsonValue(a);
  EXPECT_EQ(Cell(j, "/id"), "aud_1");
  EXPECT_EQ(Cell(j, "/enabled"), "false");  // Defaults are there for tables.
  EXPECT_EQ(Cell(j, "/missing/field"), "");
  EXPECT_EQ(Cell(j, "/options/filterByExternalIds"), "user_id,email");
  EXPECT_EQ(EnumCell(j, "/audienceType", "AUDIENCE_TYPE_"), "LINKED");
  a.clear_audience_type();
  EXPECT_EQ(EnumCell(ToJsonValue(a), "/audienceType", "AUDIENCE_TYPE_"), "");
  // JSON output omits defaults and is indented by two.
  EXPECT_EQ(ToJson(a),
            "{\n  \"id\": \"aud_1\",\n  \"options\": {\n    \"filterByExternalIds\": [\n"
            "      \"user_id\",\n      \"email\"\n    ]\n  }\n}\n");
}

TEST(IdsTest, ResourceOrEachItemOfAListing) {
  using nlohmann::json;
  EXPECT_EQ(IdsOf(json::parse(R"({"audience":{"id":"aud_1","name":"x"}})")),
            std::vector<std::string>{"aud_1"});
  EXPECT_EQ(
      IdsOf(json::parse(R"({"audiences":[{"id":"a"},{"id":"b"}],"pagination":{"current":"c"}})")),
      (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(IdsOf(json::parse(R"({"run":{"id":"run_1"}})")), std::vector<std::string>{"run_1"});
  EXPECT_TRUE(IdsOf(json::parse(R"({"status":"OPERATION_STATUS_SUCCESS"})")).empty());
}

TEST(ExitCodeTest, OneCodePerStatusClass) {
  using C = absl::StatusCode;
  EXPECT_EQ(ExitCodeFor(C::kOk), 0);
  EXPECT_EQ(ExitCodeFor(C::kInvalidArgument), 2);
  EXPECT_EQ(ExitCodeFor(C::kFailedPrecondition), 2);
  EXPECT_EQ(ExitCodeFor(C::kOutOfRange), 2);
  EXPECT_EQ(ExitCodeFor(C::kNotFound), 3);
  EXPECT_EQ(ExitCodeFor(C::kAlreadyExists), 3);
  EXPECT_EQ(ExitCodeFor(C::kUnauthenticated), 4);
  EXPECT_EQ(ExitCodeFor(C::kPermissionDenied), 4);
  EXPECT_EQ(ExitCodeFor(C::kResourceExhausted), 5);
  EXPECT_EQ(ExitCodeFor(C::kUnavailable), 6);
  EXPECT_EQ(ExitCodeFor(C::kDeadlineExceeded), 6);
  EXPECT_EQ(ExitCodeFor(C::kCancelled), 6);
  EXPECT_EQ(ExitCodeFor(C::kInternal), 7);
  EXPECT_EQ(ExitCodeFor(C::kUnknown), 7);
  EXPECT_EQ(ExitCodeFor(C::kUnimplemented), 7);
  EXPECT_EQ(ExitCodeFor(C::kDataLoss), 7);
  EXPECT_EQ(ExitCodeFor(C::kAborted), 7);
}

TEST(CommandsTest, EveryOperationHasACommand) {
  std::vector<std::string> paths = CommandPaths();
  for (const char* expected :
       {"audiences list", "audiences get", "audiences create", "audiences update",
        "audiences delete", "schedules list", "schedules get", "schedules add", "schedules update",
        "schedules delete", "previews create", "previews get", "consumers list", "runs force",
        "call", "rpcs", "completion"}) {
    EXPECT_NE(std::find(paths.begin(), paths.end(), expected), paths.end()) << expected;
  }
}

}  // namespace
}  // namespace audiencesctl
