// audiencesctl's messages for the mistakes users make: one test per mistake, asserting the text
// and the exit code; on a pseudo-terminal (script(1)) where the behaviour depends on it. And
// every example of every --help, run exactly as printed against a gateway + segment-sim stack.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "audiencesctl/commands.h"
#include "tests/client/fake_gateway.h"
#include "tests/client/limits.h"
#include "tests/client/run_process.h"
#include "tests/common/stack.h"

namespace sag::testing {
namespace {

using Json = nlohmann::json;
constexpr size_t npos = std::string::npos;

ProcessResult Ctl(const std::vector<std::string>& args, ProcessOptions options = {}) {
  std::vector<std::string> argv = {SAG_CTL_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, options);
}

std::string ShellQuote(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

// audiencesctl on a pseudo-terminal (stdout and stderr both); the output is both, merged.
ProcessResult OnTty(const std::vector<std::string>& args) {
  std::string command = ShellQuote(SAG_CTL_BIN);
  for (const std::string& a : args) absl::StrAppend(&command, " ", ShellQuote(a));
  return RunProcess({"/usr/bin/script", "-qec", command, "/dev/null"});
}

// Usage errors: exit 1, the message, a pointer to --help.
void ExpectUsage(const std::vector<std::string>& args, const std::string& message) {
  std::vector<std::string> argv = {"--addr", "127.0.0.1:1"};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult r = Ctl(argv);
  EXPECT_EQ(r.exit_code, 1) << absl::StrJoin(args, " ") << "\n" << Describe(r);
  EXPECT_NE(r.err.find("audiencesctl: " + message + "\n"), npos) << absl::StrJoin(args, " ") << "\n"
                                                                 << r.err;
  EXPECT_NE(r.err.find("--help' for usage."), npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(CtlMessagesTest, MistypedFlagGetsTheNearestFlag) {
  ExpectUsage({"audiences", "create", "--space", "s", "--nmae", "Buyers", "--query", "q"},
              "unknown flag --nmae for 'audiences create' (did you mean --name?)");
  ExpectUsage({"audiences", "list", "--spcae=s"},
              "unknown flag --spcae for 'audiences list' (did you mean --space?)");
  ExpectUsage({"audiences", "get", "--count", "3", "--space", "s", "--id", "a"},
              "flag --count does not apply to 'audiences get'");
  ExpectUsage({"audiences", "list", "--space", "s", "--zzzzzzzz"},
              "unknown flag --zzzzzzzz for 'audiences list'");
}

TEST(CtlMessagesTest, MistypedCommandVerbRpcAndValueGetTheNearest) {
  ExpectUsage({"audiense", "list"},
              "unknown command 'audiense' (did you mean audiences?) (commands: audiences, "
              "schedules, previews, consumers, runs, call, rpcs, completion, version, help)");
  ExpectUsage({"audiences", "lsit"},
              "unknown verb 'lsit' for audiences (did you mean list?) (list, get, create, update, "
              "delete)");
  ExpectUsage({"call", "getaudience", "{}"},
              "unknown RPC 'getaudience' (did you mean GetAudience?); see 'audiencesctl rpcs'");
  ExpectUsage(
      {"audiences", "create", "--space", "s", "--name", "n", "--query", "q", "--type", "user"},
      "--type is one of accounts, linked, users, not 'user' (did you mean users?)");
  ExpectUsage({"audiences", "list", "--space", "s", "-o", "jsn"},
              "-o is table, json, yaml or id, not 'jsn' (did you mean json?)");
}

TEST(CtlMessagesTest, EnumValuesInJsonAreListed) {
  ExpectUsage(
      {"call", "CreateAudience",
       R"({"spaceId":"s","audience":{"name":"x","audienceType":"USERS"}})"},
      "the request is not valid proto3 JSON for segment.audiences.v1.CreateAudienceRequest: "
      "\"USERS\" is not a AudienceType (did you mean AUDIENCE_TYPE_USERS?); valid values: "
      "AUDIENCE_TYPE_UNSPECIFIED, AUDIENCE_TYPE_ACCOUNTS, AUDIENCE_TYPE_LINKED, "
      "AUDIENCE_TYPE_USERS");
}

TEST(CtlMessagesTest, JsonSyntaxErrorsGiveLineAndColumn) {
  ProcessResult r = Ctl({"--addr", "127.0.0.1:1", "call", "GetAudience",
                         "{\n  \"spaceId\": \"s\",\n  \"id\" \"x\"\n}"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(std::regex_search(
      r.err, std::regex("GetAudienceRequest: JSON syntax error at line 3, column [0-9]+: ")))
      << r.err;
  EXPECT_EQ(r.err.find("\n^"), npos) << r.err;
  EXPECT_EQ(r.err.find("\n\n"), npos) << r.err;
  ProcessOptions in;
  in.stdin_data = "{not json";
  r = Ctl({"--addr", "127.0.0.1:1", "audiences", "create", "--space", "s", "-f", "-"}, in);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("stdin is not proto3 JSON of segment.audiences.v1.CreateAudienceInput (or "
                       "of segment.audiences.v1.CreateAudienceRequest): JSON syntax error at "
                       "line 1, column 3: "),
            npos)
      << r.err;
  in.stdin_data = R"({"nmae":"typo"})";
  r = Ctl({"--addr", "127.0.0.1:1", "audiences", "create", "--space", "s", "-f", "-"}, in);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("): unknown field \"nmae\" (did you mean name?)\n"), npos) << r.err;
}

TEST(CtlMessagesTest, RequiredInputIsCheckedBeforeAnyCall) {
  auto fake = FakeGateway::Start();
  ASSERT_TRUE(fake.ok()) << fake.status();
  const std::string addr = (*fake)->address();
  ProcessResult r = Ctl({"--addr", addr, "audiences", "create", "--space", "s"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("audiencesctl: --name and --query are required (or set in -f); nothing "
                       "was sent\n"),
            npos)
      << r.err;
  r = Ctl({"--addr", addr, "audiences", "create", "--space", "s", "--name", "n"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("audiencesctl: --query is required (or set in -f); nothing was sent\n"),
            npos)
      << r.err;
  r = Ctl({"--addr", addr, "previews", "create", "--space", "s"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("--query is required"), npos) << r.err;
  EXPECT_EQ((*fake)->create_calls.load(), 0);
  EXPECT_TRUE((*fake)->seen().empty());
  // What -f gives counts.
  ProcessOptions in;
  in.stdin_data = R"({"name":"n","definition":{"query":"q"}})";
  r = Ctl({"--addr", addr, "audiences", "create", "--space", "s", "-f", "-"}, in);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ((*fake)->create_calls.load(), 1);
}

TEST(CtlMessagesTest, UnreadableFileSaysWhy) {
  ExpectUsage({"audiences", "create", "--space", "s", "-f", "/nonexistent/missing.json"},
              "cannot read /nonexistent/missing.json: No such file or directory");
  ExpectUsage({"call", "GetAudience", "-f", "/"}, "cannot read /: Is a directory");
}

TEST(CtlMessagesTest, HelpExitsZeroAndShowsNoBuildPaths) {
  const std::string source_dir =
      std::string(SAG_COMPLETION_FILE).substr(0, std::string(SAG_COMPLETION_FILE).find("/client/"));
  std::vector<std::vector<std::string>> all = {{"--help"}, {"-h"}, {"help"}};
  for (const std::string& path : audiencesctl::CommandPaths()) {
    std::vector<std::string> argv = absl::StrSplit(path, ' ');
    argv.push_back("--help");
    all.push_back(argv);
  }
  for (const auto& args : all) {
    ProcessResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << Describe(r);
    EXPECT_EQ(r.out.find(source_dir), npos) << r.out;
    EXPECT_EQ(r.out.find(SAG_BINARY_DIR), npos) << r.out;
    EXPECT_FALSE(std::regex_search(r.out, std::regex(R"(\.(cc|h|cpp):[0-9])"))) << r.out;
    EXPECT_EQ(r.err, "");
  }
}

TEST(CtlMessagesTest, TlsAgainstAPlaintextGatewayPrintsOnlyTheError) {
  auto fake = FakeGateway::Start();
  ASSERT_TRUE(fake.ok()) << fake.status();
  ProcessResult r = Ctl({"--addr", (*fake)->address(), "--tls", "--timeout", "3s", "audiences",
                         "get", "--space", "s", "--id", "a"});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: UNAVAILABLE: ")) << r.err;
  for (absl::string_view line : absl::StrSplit(r.err, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "Error: ") || absl::StartsWith(line, "  ")) << r.err;
  }
  EXPECT_NE(r.err.find("is it serving TLS?"), npos) << r.err;
}

// A space id long enough that "preview <id>: RUNNING (1.2s)" would not fit 80 columns.
constexpr char kLongSpace[] = "spa_a_rather_long_space_identifier_for_wrapping_tests_000000001";

TEST(CtlTerminalTest, WaitProgressFitsOneLineOfTheTerminal) {
  StackOptions o;
  o.sim_args = {"--preview_duration=600ms", AllOperationsLimit(6000)};
  o.gateway_args = {AllOperationsLimit(6000)};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  ProcessResult r = OnTty({"--addr", stack->gateway_address(), "previews", "create", "--space",
                           kLongSpace, "--query", "trait('vip') = true", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ASSERT_NE(r.out.find(": RUNNING ("), npos) << r.out;
  // Each rewrite of the status line ("\r" ... "\x1b[K") fits in 80 columns (the default).
  size_t rewrites = 0;
  for (absl::string_view piece : absl::StrSplit(r.out, '\r')) {
    const size_t end = piece.find("\x1b[K");
    if (end == absl::string_view::npos) continue;
    ++rewrites;
    EXPECT_LT(end, 80u) << "\"" << piece.substr(0, end) << "\"";
  }
  EXPECT_GE(rewrites, 1u) << r.out;
}

TEST(CtlTerminalTest, AWaitForARateLimitSlotIsVisibleOnATerminalOnly) {
  StackOptions o;
  o.gateway_args = {"--rate_limits=GetAudience=1/3s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  const std::vector<std::string> get = {
      "--addr", stack->gateway_address(), "audiences", "get", "--space", "spa_rl", "--id", "aud_x"};
  ProcessResult first = Ctl(get);  // Takes the slot.
  EXPECT_EQ(first.exit_code, 3) << Describe(first);
  ProcessResult tty = OnTty(get);  // Waits ~3 s for the next one.
  EXPECT_EQ(tty.exit_code, 3) << Describe(tty);
  EXPECT_TRUE(std::regex_search(
      tty.out, std::regex("\rWaiting for the gateway \\(calls queue for Segment's rate limits\\): "
                          "[0-9.]+s of 30s\x1b\\[K")))
      << tty.out;
  ProcessResult piped = Ctl(get);  // The same wait, on pipes: nothing but the answer.
  EXPECT_EQ(piped.exit_code, 3) << Describe(piped);
  EXPECT_EQ(piped.err.find("Waiting"), npos) << piped.err;
  EXPECT_TRUE(absl::StartsWith(piped.err, "Error: NOT_FOUND: ")) << piped.err;
}

TEST(CtlTerminalTest, AWaitBeyondTheDeadlineSaysSoInHumanDurations) {
  StackOptions o;
  o.gateway_args = {"--rate_limits=GetAudience=1/20s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  const std::vector<std::string> get = {"--addr",    stack->gateway_address(),
                                        "--timeout", "3s",
                                        "audiences", "get",
                                        "--space",   "spa_rl",
                                        "--id",      "aud_x"};
  ProcessResult first = Ctl(get);
  EXPECT_EQ(first.exit_code, 3) << Describe(first);
  ProcessResult r = Ctl(get);
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: RESOURCE_EXHAUSTED: ")) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex("expected wait [0-9]+(\\.[0-9])?s exceeds")))
      << r.err;
  EXPECT_FALSE(std::regex_search(r.err, std::regex("[0-9]\\.[0-9]{2,}m?s"))) << r.err;
}

// ---------------------------------------------------------------------------------------------
// Every example of every --help, run as printed.
// ---------------------------------------------------------------------------------------------

// The examples of a help text: the lines under "Example:"/"Examples:", with their "\"
// continuation lines, without the indent.
std::vector<std::string> Examples(const std::string& help) {
  std::vector<std::string> out;
  bool in = false;
  bool continued = false;
  for (absl::string_view line : absl::StrSplit(help, '\n')) {
    if (line == "Example:" || line == "Examples:") {
      in = true;
      continue;
    }
    if (!in) continue;
    if (line.empty() || !absl::StartsWith(line, "  ")) {
      in = false;
      continue;
    }
    if (continued) {
      absl::StrAppend(&out.back(), "\n", line);
    } else {
      out.emplace_back(absl::StripPrefix(line, "  "));
    }
    continued = absl::EndsWith(line, "\\") || absl::EndsWith(line, "|");
  }
  return out;
}

TEST(CtlHelpExamplesTest, EveryExampleRunsAsPrinted) {
  StackOptions o;
  o.sim_args = {"--preview_duration=300ms", AllOperationsLimit(6000)};
  o.gateway_args = {AllOperationsLimit(6000)};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  const std::string home = MakeTempDir();
  ASSERT_EQ(RunProcess({"/bin/mkdir", "-p", home + "/.local/share/bash-completion/completions"})
                .exit_code,
            0);
  const std::string bin = std::string(SAG_CTL_BIN);
  const std::string bin_dir = bin.substr(0, bin.rfind('/'));
  std::vector<std::string> helps = {Ctl({"--help"}).out};
  for (const std::string& path : audiencesctl::CommandPaths()) {
    std::vector<std::string> argv = absl::StrSplit(path, ' ');
    argv.push_back("--help");
    helps.push_back(Ctl(argv).out);
  }
  size_t ran = 0;
  for (const std::string& help : helps) {
    for (const std::string& example : Examples(help)) {
      // Fresh ids per example (a LINKED audience with a schedule, and a preview) in spa_1.
      ProcessOptions env;
      env.env = {"AUDIENCES_GATEWAY_ADDR=" + stack->gateway_address(), "HOME=" + home,
                 "PATH=" + bin_dir + ":/usr/bin:/bin"};
      ProcessResult a =
          Ctl({"audiences", "create", "--space", "spa_1", "--name", "Fixture", "--query", "x",
               "--type", "linked", "--target-entity", "profile", "-o", "id"},
              env);
      ASSERT_EQ(a.exit_code, 0) << Describe(a);
      const std::string aud(absl::StripTrailingAsciiWhitespace(a.out));
      ProcessResult s =
          Ctl({"schedules", "add", "--space", "spa_1", aud, "--interval", "1h", "-o", "id"}, env);
      ASSERT_EQ(s.exit_code, 0) << Describe(s);
      ProcessResult p =
          Ctl({"previews", "create", "--space", "spa_1", "--query", "x", "-o", "id"}, env);
      ASSERT_EQ(p.exit_code, 0) << Describe(p);
      env.env.push_back("AUDIENCE_ID=" + aud);
      env.env.push_back(absl::StrCat("SCHEDULE_ID=", absl::StripTrailingAsciiWhitespace(s.out)));
      env.env.push_back(absl::StrCat("PREVIEW_ID=", absl::StripTrailingAsciiWhitespace(p.out)));
      ProcessResult r = RunProcess({"/bin/bash", "--norc", "-o", "pipefail", "-c", example}, env);
      EXPECT_EQ(r.exit_code, 0) << example << "\n" << Describe(r);
      ++ran;
    }
  }
  EXPECT_GE(ran, audiencesctl::CommandPaths().size());
  // The -f - example made the audience its JSON says (its quoting keeps the query's quotes).
  ProcessOptions env;
  env.env = {"AUDIENCES_GATEWAY_ADDR=" + stack->gateway_address()};
  ProcessResult list = Ctl({"audiences", "list", "--space", "spa_1", "--all", "-o", "json"}, env);
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  Json all = Json::parse(list.out, nullptr, false);
  bool vips = false;
  for (const Json& a : all["audiences"]) {
    if (a.value("name", "") != "VIPs") continue;
    vips = true;
    EXPECT_EQ(a["definition"]["query"], "trait('vip') = true") << a.dump();
  }
  EXPECT_TRUE(vips) << list.out;
}

}  // namespace
}  // namespace sag::testing
