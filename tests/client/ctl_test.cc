// audiencesctl end to end: the real binary, run as a child process against audiences-gateway +
// segment-sim (one stack per suite), in table and JSON (and YAML) output; exit codes and error
// printing; TLS and metadata flags against an in-process fake gateway; bash completion.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "audiencesctl/commands.h"
#include "tests/client/fake_gateway.h"
#include "tests/client/limits.h"
#include "tests/client/run_process.h"
#include "tests/common/stack.h"

#ifdef SAG_HAVE_YAML_CPP
#include <yaml-cpp/yaml.h>
#endif

namespace sag::testing {
namespace {

using Json = nlohmann::json;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// Runs audiencesctl with `args` (no --addr added).
ProcessResult RunCtl(const std::vector<std::string>& args, ProcessOptions options = {}) {
  std::vector<std::string> argv = {SAG_CTL_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  options.timeout = absl::Seconds(60);
  return RunProcess(argv, options);
}

Json ParseOut(const ProcessResult& r) {
  Json j = Json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << Describe(r);
  return j;
}

class CtlStackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    StackOptions o;
    o.sim_args = {"--preview_duration=300ms", AllOperationsLimit(6000)};
    o.gateway_args = {AllOperationsLimit(6000)};
    auto stack = Stack::Start(o);
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = stack->release();
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(stack_, nullptr); }

  // audiencesctl --addr GATEWAY ARGS...
  ProcessResult Ctl(std::vector<std::string> args, ProcessOptions options = {}) {
    args.insert(args.begin(), {"--addr", stack_->gateway_address()});
    return RunCtl(args, std::move(options));
  }
  // A space of its own per test.
  // (Short: a preview id embeds its space id, and ids are at most 256 characters.)
  static std::string Space() {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    return absl::StrCat("spa_ctl_", name.substr(0, 16), "_",
                        std::hash<std::string>()(name) % 100000);
  }
  // Creates an audience through audiencesctl (JSON output) and returns it.
  Json CreateAudience(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "audiences", "create", "--space", Space(),
        "--name",    name,     "--query", "event('Purchased').count() >= 1",
        "-o",        "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    ProcessResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    Json j = ParseOut(r);
    return j.is_object() && j.contains("audience") ? j["audience"] : Json::object();
  }
  static Stack* stack_;
};
Stack* CtlStackTest::stack_ = nullptr;

TEST_F(CtlStackTest, AudiencesCreateGetListUpdateDeleteInTableAndJson) {
  const std::string space = Space();
  Json first = CreateAudience("Buyers", {"--description", "made by ctl", "--enabled"});
  ASSERT_TRUE(first.contains("id"));
  const std::string id = first["id"];
  EXPECT_EQ(first["name"], "Buyers");
  EXPECT_EQ(first["audienceType"], "AUDIENCE_TYPE_USERS");  // The default --type.
  EXPECT_EQ(first["enabled"], true);
  EXPECT_EQ(first["description"], "made by ctl");

  // Create in table form.
  ProcessResult r = Ctl({"audiences", "create", "--space", space, "--name", "Churners", "--query",
                         "event('Cancelled').count() >= 1", "--type", "users", "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("(^|\n)Name: +Churners\n"))) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("(^|\n)ID: +(aud_[A-Za-z0-9_]+)\n")));
  const std::string second = m[2];

  // -o id: just the id, for $(...).
  r = Ctl({"audiences", "create", "--space", space, "--name", "Third", "--query", "x", "-o", "id"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_match(r.out, std::regex("aud_[A-Za-z0-9_]+\n"))) << r.out;
  const std::string third = r.out.substr(0, r.out.size() - 1);
  r = Ctl({"audiences", "delete", "--space", space, third, "-o", "id"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "");

  // Get: table (by flag) and JSON (by argument).
  r = Ctl({"audiences", "get", "--space", space, "--id", id, "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("(^|\n)ID: +" + id + "\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nType: +USERS\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nQuery: +event\\('Purchased'\\)"))) << r.out;
  r = Ctl({"audiences", "get", id, "--space", space, "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audience"]["id"], id);

  // List: an aligned table with a header, and JSON (the default when stdout is not a terminal).
  r = Ctl({"audiences", "list", "--space", space, "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_TRUE(std::regex_match(lines[0], std::regex("ID +NAME +TYPE +ENABLED +STATUS +KEY")))
      << lines[0];
  const size_t name_col = lines[0].find("NAME");
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_TRUE(lines[i].substr(name_col, 5) == "Buyer" || lines[i].substr(name_col, 5) == "Churn")
        << "misaligned: " << r.out;
  }
  EXPECT_NE(r.out.find(id), std::string::npos);
  EXPECT_NE(r.out.find(second), std::string::npos);
  r = Ctl({"audiences", "list", "--space", space});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Json listed = ParseOut(r);
  ASSERT_EQ(listed["audiences"].size(), 2u) << r.out;

  // Update: only the fields given change.
  r = Ctl({"audiences", "update", "--space", space, "--id", id, "--name", "Big buyers",
           "--enabled=false", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Json updated = ParseOut(r)["audience"];
  EXPECT_EQ(updated["name"], "Big buyers");
  EXPECT_FALSE(updated.value("enabled", false));
  EXPECT_EQ(updated["description"], "made by ctl");
  r = Ctl({"audiences", "update", id, "--space", space, "--enabled", "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nEnabled: +true\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nName: +Big buyers\n"))) << r.out;

  // Delete: a sentence in table form, the response in JSON.
  r = Ctl({"audiences", "delete", "--space", space, "--id", id, "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, absl::StrCat("Audience ", id, " deleted (SUCCESS).\n"));
  r = Ctl({"audiences", "delete", "--space", space, second, "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["status"], "OPERATION_STATUS_SUCCESS");

  // Gone: NOT_FOUND is exit code 3, with the code and the upstream's message.
  r = Ctl({"audiences", "get", "--space", space, "--id", id});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: NOT_FOUND: ")) << r.err;
  EXPECT_NE(r.err.find("404"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(CtlStackTest, ListAllWalksEveryPage) {
  const std::string space = Space();
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.insert(CreateAudience(absl::StrCat("Paged ", i))["id"]);
  ASSERT_EQ(ids.size(), 5u);

  // One page of 2, with the next cursor.
  ProcessResult r = Ctl({"audiences", "list", "--space", space, "--count", "2", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Json page = ParseOut(r);
  ASSERT_EQ(page["audiences"].size(), 2u);
  ASSERT_TRUE(page["pagination"].contains("next")) << r.out;
  const std::string next = page["pagination"]["next"];

  // The table says how to get the next page, on stderr.
  r = Ctl({"audiences", "list", "--space", space, "--count", "2", "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Lines(r.out).size(), 3u) << r.out;
  EXPECT_NE(r.err.find("--cursor " + next), std::string::npos) << r.err;

  r = Ctl({"audiences", "list", "--space", space, "--count", "2", "--cursor", next, "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Json page2 = ParseOut(r);
  ASSERT_EQ(page2["audiences"].size(), 2u);
  EXPECT_NE(page2["audiences"][0]["id"], page["audiences"][0]["id"]);

  // --all: every page, as one answer.
  r = Ctl({"audiences", "list", "--space", space, "--count", "2", "--all", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Json all = ParseOut(r);
  std::set<std::string> seen;
  for (const Json& a : all["audiences"]) seen.insert(a["id"].get<std::string>());
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(all["audiences"].size(), 5u);
  EXPECT_FALSE(all.contains("pagination")) << r.out;
  r = Ctl({"audiences", "list", "--space", space, "--count", "2", "--all", "-o", "id"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<std::string> id_lines = Lines(r.out);
  EXPECT_EQ(std::set<std::string>(id_lines.begin(), id_lines.end()), ids) << r.out;
  EXPECT_EQ(id_lines.size(), 5u);
  r = Ctl({"audiences", "list", "--space", space, "--count", "2", "--all", "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Lines(r.out).size(), 6u) << r.out;  // Header + 5.
  EXPECT_EQ(r.err, "");

  // Search narrows the listing.
  CreateAudience("Other name");
  r = Ctl({"audiences", "list", "--space", space, "--search", "Paged", "--all", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audiences"].size(), 5u) << r.out;
}

TEST_F(CtlStackTest, SchedulesAddListGetUpdateDelete) {
  const std::string space = Space();
  Json linked = CreateAudience("Linked", {"--type", "linked", "--target-entity", "profile"});
  ASSERT_EQ(linked["audienceType"], "AUDIENCE_TYPE_LINKED");
  const std::string aud = linked["id"];

  ProcessResult r = Ctl(
      {"schedules", "add", "--space", space, "--audience", aud, "--interval", "1h", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Json periodic = ParseOut(r)["audienceSchedule"];
  EXPECT_EQ(periodic["strategy"], "SCHEDULE_STRATEGY_PERIODIC");
  EXPECT_EQ(periodic["periodic"]["interval"], "1h");
  const std::string sched = periodic["id"];

  r = Ctl({"schedules", "add", "--space", space, aud, "--days", "mon,wed", "--hours", "9,17",
           "--timezone", "America/New_York", "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nStrategy: +SPECIFIC_DAYS\n"))) << r.out;
  EXPECT_TRUE(
      std::regex_search(r.out, std::regex("\nConfig: +Mon,Wed at 09:00,17:00 America/New_York\n")))
      << r.out;

  r = Ctl({"schedules", "list", "--space", space, "--audience", aud, "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_TRUE(std::regex_match(lines[0], std::regex("ID +STRATEGY +CONFIG +NEXT EXECUTION")));
  EXPECT_NE(r.out.find("every 1h"), std::string::npos) << r.out;
  r = Ctl({"schedules", "list", "--space", space, aud});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audienceSchedules"].size(), 2u);

  r = Ctl({"schedules", "get", "--space", space, "--audience", aud, sched, "-o", "yaml"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("audienceSchedule:\n  id: " + sched + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    interval: \"1h\"\n"), std::string::npos) << r.out;

  r = Ctl({"schedules", "update", "--space", space, "--audience", aud, "--id", sched, "--interval",
           "1d", "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nConfig: +every 1d\n"))) << r.out;

  r = Ctl(
      {"schedules", "delete", "--space", space, "--audience", aud, "--id", sched, "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["status"], "OPERATION_STATUS_SUCCESS");
  r = Ctl({"schedules", "get", "--space", space, "--audience", aud, "--id", sched, "-o", "table"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);

  // Schedules belong to LINKED audiences: the upstream's refusal is INVALID_ARGUMENT, exit 2.
  Json users = CreateAudience("Users");
  r = Ctl({"schedules", "add", "--space", space, "--audience", users["id"], "--interval", "1h"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: INVALID_ARGUMENT: ")) << r.err;
}

TEST_F(CtlStackTest, PreviewsCreateWaitAndGet) {
  const std::string space = Space();
  // --wait, table: the finished preview.
  ProcessResult r = Ctl({"previews", "create", "--space", space, "--query", "trait('vip') = true",
                         "--wait", "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nStatus: +COMPLETED\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nRESULT +ID\nprofile +"))) << r.out;
  EXPECT_EQ(r.err, "");  // Not a terminal: no progress unless asked.

  // --wait, JSON, LINKED, with progress forced on.
  r = Ctl({"previews", "create", "--space", space, "--type", "linked", "--target-entity",
           "owned-accounts", "--query", "entity('owned-accounts').count() >= 1", "--wait",
           "--progress=always", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Json done = ParseOut(r)["audiencePreview"];
  EXPECT_EQ(done["status"], "AUDIENCE_PREVIEW_STATUS_COMPLETED");
  EXPECT_EQ(done["audienceType"], "AUDIENCE_TYPE_LINKED");
  ASSERT_FALSE(done["results"].empty());
  EXPECT_TRUE(done["results"][0].contains("entity"));
  EXPECT_NE(r.err.find(": RUNNING ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(": COMPLETED ("), std::string::npos) << r.err;

  // Without --wait: the id; then previews get.
  r = Ctl({"previews", "create", "--space", space, "--query", "trait('vip') = true", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string id = ParseOut(r)["audiencePreview"]["id"];
  ASSERT_FALSE(id.empty());
  r = Ctl({"previews", "get", "--space", space, "--id", id, "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("(^|\n)ID: +" + id + "\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nStatus: +(RUNNING|COMPLETED)\n"))) << r.out;
  r = Ctl({"previews", "get", id, "--space", space});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audiencePreview"]["id"], id);
  r = Ctl({"previews", "create", "--space", space, "--query", "x", "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("^Preview ID: +\\S+\n$"))) << r.out;
  EXPECT_NE(r.err.find("previews get --space " + space), std::string::npos) << r.err;
}

TEST_F(CtlStackTest, PreviewsWaitReportsFailureAndTimeout) {
  const std::string space = Space();
  ProcessResult r = Ctl({"previews", "create", "--space", space, "--query", "this will fail",
                         "--wait", "-o", "table"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nStatus: +FAILED\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nFailure reason: +\\S"))) << r.out;
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: FAILED_PRECONDITION: preview ")) << r.err;

  const absl::Time start = absl::Now();
  r = Ctl({"previews", "create", "--space", space, "--query", "trait('vip') = true", "--wait",
           "--wait-timeout", "50ms"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: DEADLINE_EXCEEDED: ")) << r.err;
  EXPECT_NE(r.err.find("still RUNNING"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("audiencesctl previews get --space " + space + " --id "), std::string::npos)
      << r.err;
}

TEST_F(CtlStackTest, ConsumersListInTableAndJsonWithPages) {
  const std::string space = Space();
  Json base = CreateAudience("Base");
  const std::string query = absl::StrCat("audience('", base["key"].get<std::string>(), "')");
  ProcessResult r;
  for (const char* name : {"Consumer A", "Consumer B"}) {
    r = Ctl(
        {"audiences", "create", "--space", space, "--name", name, "--query", query, "-o", "json"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  CreateAudience("Unrelated");

  r = Ctl({"consumers", "list", "--space", space, "--audience", base["id"], "--sort", "name",
           "--order", "desc", "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_TRUE(absl::StartsWith(lines[0], "ID ")) << r.out;
  EXPECT_NE(lines[1].find("Consumer B"), std::string::npos) << r.out;  // Sorted descending.
  EXPECT_NE(lines[2].find("Consumer A"), std::string::npos) << r.out;

  r = Ctl({"consumers", "list", "--space", space, base["id"], "--count", "1", "--all"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Json all = ParseOut(r);
  ASSERT_EQ(all["audiences"].size(), 2u) << r.out;
  r = Ctl(
      {"consumers", "list", "--space", space, "--id", base["id"], "--count", "1", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audiences"].size(), 1u) << r.out;
}

TEST_F(CtlStackTest, RunsForceInTableAndJson) {
  const std::string space = Space();
  Json linked = CreateAudience("Linked", {"--type", "linked", "--target-entity", "profile"});
  ProcessResult r =
      Ctl({"runs", "force", "--space", space, "--audience", linked["id"], "-o", "table"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("^Run ID: +\\S+\n"))) << r.out;
  r = Ctl({"runs", "force", "--space", space, linked["id"]});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(ParseOut(r)["run"]["id"].get<std::string>().empty());
}

TEST_F(CtlStackTest, InvalidArgumentPrintsFieldViolations) {
  // No name, no definition (sent as is by `call`; `audiences create` refuses it before any
  // call): the Segment API's 422, with its fields, each said once.
  ProcessResult r = Ctl({"call", "CreateAudience",
                         absl::StrCat(R"({"spaceId":")", Space(), R"(","audience":{"name":""}})")});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: INVALID_ARGUMENT: ")) << r.err;
  std::smatch field;
  ASSERT_TRUE(std::regex_search(r.err, field, std::regex("\n  field definition[^:]*: (.+)\n")))
      << r.err;
  EXPECT_EQ(r.err.find(field[1].str()), r.err.rfind(field[1].str())) << "said twice: " << r.err;
  EXPECT_EQ(r.out, "");
  // Refused by the gateway itself: a malformed id.
  r = Ctl({"audiences", "get", "--space", Space(), "--id", "a/b"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("\n  field id: "), std::string::npos) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: INVALID_ARGUMENT: invalid fields\n  field id: "))
      << r.err;
  // A count out of range.
  r = Ctl({"audiences", "list", "--space", Space(), "--count", "0"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("\n  field pagination.count: "), std::string::npos) << r.err;
}

TEST_F(CtlStackTest, InputFromFileAndStdin) {
  const std::string space = Space();
  const std::string dir = MakeTempDir();
  // The body message in a file; a flag overrides one of its fields.
  WriteFile(dir + "/body.json",
            R"({"name":"From file","description":"in a file","audienceType":"AUDIENCE_TYPE_USERS",
                "definition":{"query":"trait('vip') = true"}})");
  ProcessResult r = Ctl({"audiences", "create", "--space", space, "-f", dir + "/body.json",
                         "--name", "Flag wins", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  Json a = ParseOut(r)["audience"];
  EXPECT_EQ(a["name"], "Flag wins");
  EXPECT_EQ(a["description"], "in a file");

  // The whole request on stdin, space included.
  ProcessOptions in;
  in.stdin_data = absl::StrCat(R"({"spaceId":")", space,
                               R"(","audience":{"name":"From stdin","definition":{"query":"x"}}})");
  r = Ctl({"audiences", "create", "-f", "-", "-o", "json"}, in);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audience"]["name"], "From stdin");
  EXPECT_EQ(ParseOut(r)["audience"]["spaceId"], space);

  // A schedule body from stdin.
  Json linked = CreateAudience("Linked", {"--type", "linked", "--target-entity", "profile"});
  in.stdin_data = R"({"strategy":"SCHEDULE_STRATEGY_PERIODIC","periodic":{"interval":"4h"}})";
  r = Ctl({"schedules", "add", "--space", space, "--audience", linked["id"], "-f", "-"}, in);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audienceSchedule"]["periodic"]["interval"], "4h");

  // Not JSON, unknown fields, missing file: usage errors.
  in.stdin_data = "{not json";
  r = Ctl({"audiences", "create", "--space", space, "-f", "-"}, in);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("is not proto3 JSON of segment.audiences.v1.CreateAudienceInput"),
            std::string::npos)
      << r.err;
  in.stdin_data = R"({"nmae":"typo"})";
  r = Ctl({"audiences", "create", "--space", space, "-f", "-"}, in);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  r = Ctl({"audiences", "create", "--space", space, "-f", dir + "/missing.json"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("cannot read " + dir + "/missing.json: No such file or directory"),
            std::string::npos)
      << r.err;
}

TEST_F(CtlStackTest, EnvironmentSuppliesAddressSpaceAndWorkspace) {
  ProcessOptions env;
  env.env = {"AUDIENCES_GATEWAY_ADDR=" + stack_->gateway_address(), "AUDIENCES_SPACE=" + Space()};
  ProcessResult r = RunCtl({"audiences", "create", "--name", "From env", "--query", "x"}, env);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = RunCtl({"audiences", "list", "-o", "table"}, env);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("From env"), std::string::npos) << r.out;
  // Without the space anywhere: a usage error that says how to give it.
  env.env = {"AUDIENCES_GATEWAY_ADDR=" + stack_->gateway_address()};
  r = RunCtl({"audiences", "list"}, env);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("--space is required"), std::string::npos) << r.err;
}

TEST_F(CtlStackTest, YamlOutputIsTheJsonAsYaml) {
  Json a = CreateAudience("Yaml: \"quoted\" # name", {"--description", "true"});
  ProcessResult r = Ctl({"audiences", "get", "--space", Space(), "--id", a["id"], "-o", "yaml"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.out, "audience:\n")) << r.out;
  EXPECT_NE(r.out.find("  name: \"Yaml: \\\"quoted\\\" # name\"\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  description: \"true\"\n"), std::string::npos) << r.out;
#ifdef SAG_HAVE_YAML_CPP
  ProcessResult j = Ctl({"audiences", "get", "--space", Space(), "--id", a["id"], "-o", "json"});
  Json json = ParseOut(j)["audience"];
  YAML::Node yaml = YAML::Load(r.out)["audience"];
  EXPECT_EQ(yaml["name"].as<std::string>(), json["name"].get<std::string>());
  EXPECT_EQ(yaml["description"].as<std::string>(), "true");
  EXPECT_EQ(yaml["id"].as<std::string>(), json["id"].get<std::string>());
  EXPECT_EQ(yaml["definition"]["query"].as<std::string>(),
            json["definition"]["query"].get<std::string>());
  EXPECT_EQ(yaml["options"]["filterByExternalIds"].size(),
            json["options"]["filterByExternalIds"].size());
#endif
}

TEST_F(CtlStackTest, CallAndRpcsKeepTheirSyntax) {
  const std::string space = Space();
  ProcessResult r = Ctl({"rpcs"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<std::string> rpcs = Lines(r.out);
  EXPECT_EQ(rpcs.size(), 14u);
  EXPECT_NE(std::find(rpcs.begin(), rpcs.end(), "ListAudiences"), rpcs.end());

  r = RunCtl({"--addr=" + stack_->gateway_address(), "--timeout=10s", "call", "CreateAudience",
              absl::StrCat(R"({"spaceId":")", space,
                           R"(","audience":{"name":"Called","audienceType":"AUDIENCE_TYPE_USERS",)"
                           R"("definition":{"query":"x"}}})")});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audience"]["name"], "Called");
  const std::string request = absl::StrCat(R"({"spaceId":")", space, R"("})");
  r = Ctl({"call", "ListAudiences", request});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audiences"].size(), 1u);
  // From stdin ('-'), from a file (-f), as YAML.
  ProcessOptions in;
  in.stdin_data = request;
  r = Ctl({"call", "ListAudiences", "-"}, in);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audiences"].size(), 1u);
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/req.json", request);
  r = Ctl({"call", "ListAudiences", "-f", dir + "/req.json", "-o", "yaml"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.out, "audiences:\n  - ")) << r.out;
  // Errors keep the exit-code mapping; usage problems are 1.
  r = Ctl({"call", "GetAudience", absl::StrCat(R"({"spaceId":")", space, R"(","id":"nope"})")});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  r = Ctl({"call", "GetAudience", "{not json"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  r = Ctl({"call", "NoSuchRpc", "{}"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  r = Ctl({"call"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
}

std::string ShellQuote(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

TEST_F(CtlStackTest, OnATerminalTablesAreTheDefaultAndWaitShowsProgress) {
  // script(1) runs the command on a pseudo-terminal (stdout and stderr both).
  auto on_tty = [](const std::vector<std::string>& args) {
    std::string command = ShellQuote(SAG_CTL_BIN);
    for (const std::string& a : args) absl::StrAppend(&command, " ", ShellQuote(a));
    return RunProcess({"/usr/bin/script", "-qec", command, "/dev/null"});
  };
  const std::string space = Space();
  CreateAudience("On a terminal");
  ProcessResult r =
      on_tty({"--addr", stack_->gateway_address(), "audiences", "list", "--space", space});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("ID +NAME +TYPE +ENABLED +STATUS +KEY\r?\n")))
      << r.out;
  EXPECT_NE(r.out.find("On a terminal"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("{"), std::string::npos) << r.out;
  // `call` stays JSON.
  r = on_tty({"--addr", stack_->gateway_address(), "call", "ListAudiences",
              absl::StrCat(R"({"spaceId":")", space, R"("})")});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.out, "{")) << r.out;
  // Progress rewrites one line (carriage return, erase to end of line).
  r = on_tty({"--addr", stack_->gateway_address(), "previews", "create", "--space", space,
              "--query", "trait('vip') = true", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find(": RUNNING ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\r"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\x1b[K"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("Status: +COMPLETED"))) << r.out;
}

TEST(CtlUsageTest, UsageErrorsExitOneWithAPointerToHelp) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"audiences"},
      {"audiences", "explode"},
      {"audiences", "list", "--bogus"},
      {"audiences", "get", "--count", "3", "--space", "s", "--id", "a"},  // Not its flag.
      {"audiences", "list", "--space", "s", "-o", "xml"},
      {"audiences", "list", "--space", "s", "--count", "many"},
      {"audiences", "list", "--space"},                      // Missing value.
      {"audiences", "get", "--space", "s"},                  // Missing id.
      {"audiences", "get", "--space", "s", "a", "b"},        // Extra argument.
      {"audiences", "update", "--space", "s", "--id", "a"},  // Nothing to update.
      {"audiences", "create", "--space", "s", "--type", "robots"},
      {"audiences", "create", "--space", "s", "--enabled", "--disabled"},
      {"schedules", "add", "--space", "s", "--audience", "a"},  // No schedule.
      {"schedules", "add", "--space", "s", "--audience", "a", "--interval", "1h", "--days", "1"},
      {"schedules", "add", "--space", "s", "--audience", "a", "--days", "someday"},
      {"previews", "create", "--space", "s", "--wait-timeout", "5s"},  // Without --wait.
      {"previews", "create", "--space", "s", "--wait", "--wait-timeout", "soon"},
      {"consumers", "list", "--space", "s", "--audience", "a", "--order", "asc"},
      {"audiences", "list", "--space", "s", "--timeout", "fast"},
      {"audiences", "list", "--space", "s", "--cert", "/tmp/c.pem"},  // Cert without key.
      {"completion", "zsh"},
      {"call", "ListAudiences", "{}", "-o", "table"},
  };
  for (const auto& args : cases) {
    std::vector<std::string> argv = {"--addr", "127.0.0.1:1"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = RunCtl(argv);
    EXPECT_EQ(r.exit_code, 1) << absl::StrJoin(args, " ") << "\n" << Describe(r);
    EXPECT_NE(r.err.find("audiencesctl: "), std::string::npos) << absl::StrJoin(args, " ");
    EXPECT_NE(r.err.find("--help"), std::string::npos) << absl::StrJoin(args, " ") << r.err;
  }
}

TEST(CtlUsageTest, HelpOnEveryCommandWithAnExample) {
  ProcessResult top = RunCtl({"--help"});
  ASSERT_EQ(top.exit_code, 0) << Describe(top);
  for (const char* expected :
       {"Exit codes:", "  1  usage error", "  2  INVALID_ARGUMENT", "  3  NOT_FOUND",
        "  4  UNAUTHENTICATED", "  5  RESOURCE_EXHAUSTED", "  6  UNAVAILABLE", "  7  any other",
        "--addr", "AUDIENCES_GATEWAY_ADDR", "-o, --output"}) {
    EXPECT_NE(top.out.find(expected), std::string::npos) << expected;
  }
  for (const std::string& path : audiencesctl::CommandPaths()) {
    std::vector<std::string> argv = absl::StrSplit(path, ' ');
    argv.push_back("--help");
    ProcessResult r = RunCtl(argv);
    EXPECT_EQ(r.exit_code, 0) << path << "\n" << Describe(r);
    EXPECT_TRUE(absl::StartsWith(r.out, "Usage: audiencesctl " + path)) << r.out;
    EXPECT_NE(r.out.find("\nExample:\n  audiencesctl " + path), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Exit codes:"), std::string::npos) << path;
    std::vector<std::string> help = {"help"};
    help.insert(help.end(), argv.begin(), argv.end() - 1);
    ProcessResult h = RunCtl(help);
    EXPECT_EQ(h.exit_code, 0) << path;
    EXPECT_EQ(h.out, r.out) << path;
  }
  ProcessResult group = RunCtl({"schedules", "-h"});
  EXPECT_EQ(group.exit_code, 0);
  for (const char* verb : {"list", "get", "add", "update", "delete"}) {
    EXPECT_NE(group.out.find(absl::StrCat("\n  ", verb, " ")), std::string::npos) << verb;
  }
  ProcessResult version = RunCtl({"version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_TRUE(absl::StartsWith(version.out, "audiencesctl ")) << version.out;
}

TEST(CtlUnavailableTest, NoGatewayIsExitSixWithTheAddress) {
  ProcessResult r = RunCtl({"--addr", "127.0.0.1:1", "--timeout", "3s", "audiences", "get",
                            "--space", "s", "--id", "a"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: UNAVAILABLE: ")) << r.err;
  EXPECT_NE(r.err.find("gateway 127.0.0.1:1"), std::string::npos) << r.err;
}

TEST(CtlRateLimitTest, ResourceExhaustedIsExitFiveWithTheRetryDelay) {
  StackOptions o;
  o.sim_args = {"--rate_limits=GetAudience=1/1m"};
  auto stack = Stack::Start(o);
  ASSERT_TRUE(stack.ok()) << stack.status();
  std::vector<std::string> args = {"--addr",    (*stack)->gateway_address(),
                                   "--timeout", "3s",
                                   "audiences", "get",
                                   "--space",   "spa_rl",
                                   "--id",      "aud_x"};
  ProcessResult first = RunCtl(args);
  EXPECT_EQ(first.exit_code, 3) << Describe(first);
  ProcessResult second = RunCtl(args);
  EXPECT_EQ(second.exit_code, 5) << Describe(second);
  EXPECT_TRUE(absl::StartsWith(second.err, "Error: RESOURCE_EXHAUSTED: ")) << second.err;
  EXPECT_TRUE(std::regex_search(second.err, std::regex("\n  retry after [0-9.]+(ms|s|m)")))
      << second.err;
}

// ---------------------------------------------------------------------------------------------
// Flags checked against the fake gateway: TLS, workspace, cache bypass.
// ---------------------------------------------------------------------------------------------

TEST(CtlFakeGatewayTest, MutualTlsFlags) {
  auto certs = MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.status();
  auto fake = FakeGateway::Start({&*certs, /*require_client_cert=*/true});
  ASSERT_TRUE(fake.ok()) << fake.status();
  std::vector<std::string> base = {"--addr",        (*fake)->address(), "--ca-cert", certs->ca_file,
                                   "--server-name", "gateway.test",     "--timeout", "3s"};
  auto with = [&base](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  ProcessResult r =
      RunCtl(with({"--cert", certs->client_cert_file, "--key", certs->client_key_file, "audiences",
                   "get", "--space", "spa_1", "--id", "aud_tls", "-o", "json"}));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r)["audience"]["id"], "aud_tls");
  // No client certificate: the handshake fails, UNAVAILABLE.
  r = RunCtl(with({"audiences", "get", "--space", "spa_1", "--id", "aud_tls"}));
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  // Unreadable certificate file: usage.
  r = RunCtl(with({"--cert", "/nonexistent.pem", "--key", certs->client_key_file, "audiences",
                   "get", "--space", "spa_1", "--id", "aud_tls"}));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ((*fake)->get_calls.load(), 1);
}

TEST(CtlFakeGatewayTest, WorkspaceAndNoCacheReachTheGateway) {
  auto fake = FakeGateway::Start();
  ASSERT_TRUE(fake.ok()) << fake.status();
  (*fake)->list_total = 3;
  ProcessResult r = RunCtl({"--addr", (*fake)->address(), "--workspace", "prod", "audiences", "get",
                            "--space", "spa_1", "--id", "aud_1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ProcessOptions env;
  env.env = {"AUDIENCES_WORKSPACE=staging", "AUDIENCES_GATEWAY_ADDR=" + (*fake)->address()};
  r = RunCtl({"audiences", "list", "--space", "spa_1", "--no-cache"}, env);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<FakeGateway::Seen> seen = (*fake)->seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].workspace, "prod");
  EXPECT_EQ(seen[0].cache_control, "");
  EXPECT_TRUE(absl::StartsWith(seen[0].user_agent, "audiencesctl/")) << seen[0].user_agent;
  EXPECT_GT(seen[0].deadline_left, absl::Seconds(25));  // --timeout default 30s.
  EXPECT_EQ(seen[1].workspace, "staging");
  EXPECT_EQ(seen[1].cache_control, "no-cache");
}

TEST(CtlFakeGatewayTest, IdempotencyKeyReachesTheGateway) {
  auto fake = FakeGateway::Start();
  ASSERT_TRUE(fake.ok()) << fake.status();
  ProcessResult r = RunCtl({"--addr", (*fake)->address(), "audiences", "create", "--space", "spa_1",
                            "--name", "x", "--query", "y", "--idempotency-key", "order-7"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = RunCtl({"--addr", (*fake)->address(), "audiences", "create", "--space", "spa_1", "--name",
              "x", "--query", "y"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<FakeGateway::Seen> seen = (*fake)->seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].idempotency_key, "order-7");
  EXPECT_EQ(seen[1].idempotency_key, "");
}

TEST(CtlFakeGatewayTest, ReadsAreRetriedOnUnavailable) {
  auto fake = FakeGateway::Start();
  ASSERT_TRUE(fake.ok()) << fake.status();
  (*fake)->get_unavailable_first = 2;
  ProcessResult r = RunCtl(
      {"--addr", (*fake)->address(), "audiences", "get", "--space", "spa_1", "--id", "aud_1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ((*fake)->get_calls.load(), 3);
  (*fake)->create_unavailable = true;
  r = RunCtl({"--addr", (*fake)->address(), "audiences", "create", "--space", "spa_1", "--name",
              "x", "--query", "y"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_EQ((*fake)->create_calls.load(), 1);
}

// ---------------------------------------------------------------------------------------------
// Bash completion.
// ---------------------------------------------------------------------------------------------

TEST(CtlCompletionTest, ScriptMatchesTheCommittedFile) {
  ProcessResult r = RunCtl({"completion", "bash"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, Slurp(SAG_COMPLETION_FILE))
      << "client/completion/audiencesctl.bash is stale: regenerate it with "
         "`audiencesctl completion bash > client/completion/audiencesctl.bash`";
}

TEST(CtlCompletionTest, BashCompletesCommandsVerbsFlagsAndValues) {
  // COMP_WORDS as bash would split the line; the last word is being completed.
  auto complete = [](const std::string& words) {
    const std::string script =
        absl::StrCat("source '", SAG_COMPLETION_FILE, "'\n", "COMP_WORDS=(", words, ")\n",
                     "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n", "_audiencesctl\n",
                     "printf '%s\\n' \"${COMPREPLY[@]}\"\n");
    ProcessResult r = RunProcess({"/bin/bash", "--norc", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    std::vector<std::string> out = Lines(r.out);
    std::sort(out.begin(), out.end());
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(complete("audiencesctl aud"), V{"audiences"});
  EXPECT_EQ(complete("audiencesctl audiences ''"),
            (V{"create", "delete", "get", "list", "update"}));
  EXPECT_EQ(complete("audiencesctl previews c"), V{"create"});
  EXPECT_EQ(complete("audiencesctl --addr x:1 schedules a"), V{"add"});
  EXPECT_EQ(complete("audiencesctl audiences list --sp"), V{"--space"});
  EXPECT_EQ(complete("audiencesctl previews create --wa"), (V{"--wait", "--wait-timeout"}));
  EXPECT_EQ(complete("audiencesctl audiences get --ad"), V{"--addr"});
  EXPECT_EQ(complete("audiencesctl audiences list -o ''"), (V{"id", "json", "table", "yaml"}));
  EXPECT_EQ(complete("audiencesctl audiences create --type l"), V{"linked"});
  EXPECT_EQ(complete("audiencesctl call ListAud"),
            (V{"ListAudienceConsumersFromSpaceAndAudience",
               "ListAudienceSchedulesFromSpaceAndAudience", "ListAudiences"}));
  EXPECT_EQ(complete("audiencesctl completion ''"), V{"bash"});
  EXPECT_EQ(complete("audiencesctl help runs ''"), V{"force"});
}

}  // namespace
}  // namespace sag::testing
