// The CLI examples of the READMEs, run as printed against a gateway + segment-sim stack:
//   - README.md, "First calls": each `$ command` of its console blocks runs on a pseudo-terminal
//     (script(1)), as a user types it; its printed output must appear in what the command prints
//     (lines in order, "..." elisions skipped, ids, times and counts compared by shape);
//     `$ echo $?` must print the previous command's exit code.
//   - client/README.md, "A session with audiencesctl": the script runs whole under `bash -eu -o
//     pipefail`, and its transcript ("What it looks like on a terminal") runs like the first.
// Literal ids in a command (aud_..., sch_...) are the ones an earlier command printed: the test
// learns them from the lines it matched and substitutes the fresh ids of this run. The examples
// assume a gateway on localhost:50051; the test points AUDIENCES_GATEWAY_ADDR at its stack instead.
// grpcurl is not packaged in Debian 12: its commands are listed as skipped, not run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/client/limits.h"
#include "tests/client/run_process.h"
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

namespace sag::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The lines of `markdown` under the heading line `heading`, up to the next heading of its level.
std::vector<std::string> Section(const std::string& markdown, const std::string& heading) {
  const std::string level = heading.substr(0, heading.find(' ') + 1);
  std::vector<std::string> out;
  bool in = false;
  for (absl::string_view line : absl::StrSplit(markdown, '\n')) {
    if (in && absl::StartsWith(line, level)) break;
    if (in) out.emplace_back(line);
    if (line == heading) in = true;
  }
  return out;
}

// The fenced blocks of `lines` whose opening fence is "```" + `lang`; with `after`, only the first
// block after the line `after`.
std::vector<std::string> Blocks(const std::vector<std::string>& lines, const std::string& lang,
                                const std::string& after = "") {
  std::vector<std::string> blocks;
  bool seen = after.empty();
  bool in = false;
  for (const std::string& line : lines) {
    if (!in && line == after) seen = true;
    if (!in && seen && line == "```" + lang) {
      in = true;
      blocks.emplace_back();
    } else if (in && line == "```") {
      in = false;
      if (!after.empty()) break;
    } else if (in) {
      absl::StrAppend(&blocks.back(), line, "\n");
    }
  }
  return blocks;
}

struct Step {
  std::string command;
  std::vector<std::string> expected;  // The output printed after it.
};

// "$ command" lines (continued by a trailing backslash) and the output lines after each.
std::vector<Step> Transcript(const std::string& block) {
  std::vector<Step> steps;
  bool continued = false;  // The previous line of a command ended with a backslash.
  for (absl::string_view line : absl::StrSplit(block, '\n')) {
    const bool command = continued || absl::StartsWith(line, "$ ");
    if (continued) {
      absl::StrAppend(&steps.back().command, "\n", line);
    } else if (command) {
      steps.push_back({std::string(line.substr(2)), {}});
    } else if (!steps.empty()) {
      steps.back().expected.emplace_back(line);
    }
    continued = command && absl::EndsWith(line, "\\");
  }
  return steps;
}

// What a terminal shows of a line: the text after its last carriage return, escapes removed.
std::vector<std::string> ScreenLines(const std::string& out) {
  static const std::regex kEscape("\x1b\\[[0-9;?]*[A-Za-z]");
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    std::string text = std::regex_replace(std::string(line), kEscape, "");
    while (!text.empty() && text.back() == '\r') text.pop_back();
    const size_t cr = text.rfind('\r');
    lines.push_back(cr == std::string::npos ? text : text.substr(cr + 1));
  }
  return lines;
}

// A line's shape: whitespace runs as one space, times, long ids and numbers as placeholders.
std::string Shape(const std::string& line) {
  static const std::regex kTime(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)");
  static const std::regex kId(R"([A-Za-z0-9_-]{20,})");
  static const std::regex kNumber(R"(\d+)");
  static const std::regex kSpace(R"(\s+)");
  std::string s = std::regex_replace(line, kTime, "<time>");
  s = std::regex_replace(s, kId, "<id>");
  s = std::regex_replace(s, kNumber, "<n>");
  s = std::regex_replace(s, kSpace, " ");
  return std::string(absl::StripAsciiWhitespace(s));
}

std::vector<std::string> Ids(const std::string& line) {
  static const std::regex kId(R"(\b(aud|sch)_[A-Za-z0-9]+)");
  std::vector<std::string> ids;
  for (std::sregex_iterator it(line.begin(), line.end(), kId), end; it != end; ++it) {
    ids.push_back(it->str());
  }
  return ids;
}

// Runs transcripts and scripts in one directory and environment, like one user's terminal.
class Session {
 public:
  Session(const std::string& gateway_address, const std::string& dir) : dir_(dir) {
    env_ = {"AUDIENCES_GATEWAY_ADDR=" + gateway_address, "PATH=/usr/bin:/bin", "HOME=" + dir,
            "TERM=dumb"};
  }

  void SetEnv(const std::string& name, const std::string& value) {
    for (std::string& kv : env_) {
      if (absl::StartsWith(kv, name + "=")) {
        kv = absl::StrCat(name, "=", value);
        return;
      }
    }
    env_.push_back(absl::StrCat(name, "=", value));
  }

  // Runs each step; returns how many ran (grpcurl steps are skipped and named in `skipped`).
  int Run(const std::vector<Step>& steps, std::vector<std::string>* skipped) {
    int ran = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      const Step& step = steps[i];
      if (absl::StartsWith(step.command, "grpcurl ")) {
        skipped->push_back(step.command);
        continue;
      }
      ++ran;
      if (absl::StartsWith(step.command, "export ")) {
        Export(step.command);
      } else if (step.command == "echo $?") {
        EXPECT_EQ(absl::StrCat(last_exit_code_),
                  absl::StripAsciiWhitespace(absl::StrJoin(step.expected, " ")))
            << "`echo $?` after: " << steps[i - 1].command;
      } else {
        const bool echo_next = i + 1 < steps.size() && steps[i + 1].command == "echo $?";
        RunCommand(step, echo_next);
      }
    }
    return ran;
  }

  // Runs `script` whole under bash -eu -o pipefail.
  ProcessResult RunScript(const std::string& script) {
    ProcessOptions options{"", env_, dir_, absl::Seconds(120)};
    return RunProcess({"/bin/bash", "--norc", "-eu", "-o", "pipefail", "-c", script}, options);
  }

 private:
  // Applies `export A=B C=D` as bash evaluates it, in this session's environment.
  void Export(const std::string& line) {
    ProcessOptions options{"", env_, dir_, absl::Seconds(10)};
    ProcessResult r = RunProcess({"/bin/bash", "--norc", "-c", line + "\nenv -0"}, options);
    ASSERT_EQ(r.exit_code, 0) << line << "\n" << Describe(r);
    static const std::regex kName(R"(([A-Za-z_][A-Za-z0-9_]*)=)");
    for (std::sregex_iterator it(line.begin(), line.end(), kName), end; it != end; ++it) {
      const std::string name = (*it)[1];
      for (absl::string_view kv : absl::StrSplit(r.out, '\0')) {
        if (absl::StartsWith(kv, name + "=")) SetEnv(name, std::string(kv.substr(name.size() + 1)));
      }
    }
  }

  void RunCommand(const Step& step, bool exit_code_is_checked_next) {
    std::string command = step.command;
    for (const auto& [printed, fresh] : ids_) absl::StrReplaceAll({{printed, fresh}}, &command);
    ProcessOptions options{"", env_, dir_, absl::Seconds(60)};
    ProcessResult r = RunProcess({"/usr/bin/script", "-qec", command, "/dev/null"}, options);
    last_exit_code_ = r.exit_code;
    if (!exit_code_is_checked_next) {
      EXPECT_EQ(r.exit_code, 0) << command << "\n" << Describe(r);
    }
    Match(step.expected, ScreenLines(r.out), command);
  }

  // Each printed line (but "..." and blank ones) must appear, in order, in what ran; the ids of
  // matched lines are learned.
  void Match(const std::vector<std::string>& expected, const std::vector<std::string>& actual,
             const std::string& command) {
    size_t at = 0;
    for (const std::string& line : expected) {
      const std::string shape = Shape(line);
      if (shape.empty() || shape == "...") continue;
      size_t found = at;
      while (found < actual.size() && Shape(actual[found]) != shape) ++found;
      if (found == actual.size()) {
        ADD_FAILURE() << "`" << command << "` did not print, in order:\n  " << line
                      << "\nit printed:\n"
                      << absl::StrJoin(actual, "\n");
        return;
      }
      Learn(line, actual[found]);
      at = found + 1;
    }
  }

  void Learn(const std::string& printed, const std::string& actual) {
    const std::vector<std::string> a = Ids(printed);
    const std::vector<std::string> b = Ids(actual);
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) ids_.emplace(a[i], b[i]);
  }

  const std::string dir_;
  std::vector<std::string> env_;
  std::map<std::string, std::string> ids_;  // Printed in the README -> made by this run.
  int last_exit_code_ = 0;
};

// A directory laid out like a checkout after `deploy/local/run.sh`: build/release/client holds
// audiencesctl (a hard link to the tested binary; a copy across file systems).
std::string CheckoutLikeDir() {
  const std::string dir = MakeTempDir();
  const fs::path client = fs::path(dir) / "build/release/client";
  fs::create_directories(client);
  std::error_code ec;
  fs::create_hard_link(SAG_CTL_BIN, client / "audiencesctl", ec);
  if (ec) fs::copy_file(SAG_CTL_BIN, client / "audiencesctl");
  return dir;
}

std::unique_ptr<Stack> StartReadmeStack() {
  StackOptions o;
  o.sim_args = {"--preview_duration=300ms", AllOperationsLimit(6000)};
  o.gateway_args = {AllOperationsLimit(6000)};
  return StartOrDie(o);
}

TEST(ReadmeExamplesTest, FirstCallsRunAsPrinted) {
  auto stack = StartReadmeStack();
  ASSERT_NE(stack, nullptr);
  const std::string readme = ReadFile(std::string(SAG_SOURCE_DIR) + "/" + "README.md");
  const std::vector<std::string> blocks = Blocks(Section(readme, "## First calls"), "console");
  ASSERT_GE(blocks.size(), 3u) << "README.md: First calls";
  Session session(stack->gateway_address(), CheckoutLikeDir());
  int ran = 0;
  std::vector<std::string> skipped;
  for (const std::string& block : blocks) ran += session.Run(Transcript(block), &skipped);
  EXPECT_GE(ran, 6);  // export, create, list, call, the failing call, echo $?
  EXPECT_EQ(skipped.size(), 3u) << absl::StrJoin(skipped, "\n");  // grpcurl: not in Debian 12
}

TEST(ReadmeExamplesTest, ClientSessionScriptRunsAsPrinted) {
  auto stack = StartReadmeStack();
  ASSERT_NE(stack, nullptr);
  const std::string readme = ReadFile(std::string(SAG_SOURCE_DIR) + "/" + "client/README.md");
  const std::vector<std::string> lines = Section(readme, "## A session with audiencesctl");
  const std::vector<std::string> scripts = Blocks(lines, "sh");
  ASSERT_EQ(scripts.size(), 1u) << "client/README.md: A session with audiencesctl";
  const std::string dir = CheckoutLikeDir();
  Session session(stack->gateway_address(), dir);
  ProcessResult r = session.RunScript(scripts[0]);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // Step 2 wrote both audiences; step 5 deleted the LINKED one.
  Json listed = Json::parse(ReadFile(dir + "/audiences.json"), nullptr, false);
  std::vector<std::string> names;
  for (const Json& a : listed["audiences"]) names.push_back(a.value("name", ""));
  EXPECT_EQ(absl::StrJoin(names, ","), "Buyers,Buyers (linked)") << listed.dump();
  ProcessResult after = RunProcess({SAG_CTL_BIN, "--addr", stack->gateway_address(), "audiences",
                                    "list", "--space", "9aQ1Lj62S4bomZKLF4DPqW", "-o", "json"});
  ASSERT_EQ(after.exit_code, 0) << Describe(after);
  EXPECT_EQ(Json::parse(after.out, nullptr, false)["audiences"].size(), 1u) << after.out;
}

TEST(ReadmeExamplesTest, ClientTranscriptRunsAsPrinted) {
  auto stack = StartReadmeStack();
  ASSERT_NE(stack, nullptr);
  const std::string readme = ReadFile(std::string(SAG_SOURCE_DIR) + "/" + "client/README.md");
  const std::vector<std::string> lines = Section(readme, "## A session with audiencesctl");
  const std::vector<std::string> blocks = Blocks(lines, "", "What it looks like on a terminal:");
  ASSERT_EQ(blocks.size(), 1u) << "client/README.md: What it looks like on a terminal";
  const std::string dir = CheckoutLikeDir();
  Session session(stack->gateway_address(), dir);
  session.SetEnv("PATH", dir + "/build/release/client:/usr/bin:/bin");
  session.SetEnv("AUDIENCES_SPACE", "9aQ1Lj62S4bomZKLF4DPqW");
  // The state the transcript shows: the session's step 1, and its schedule before the update.
  ProcessResult setup = session.RunScript(
      "audiencesctl audiences create --name Buyers --query \"event('Order Completed').count() >= "
      "1\" --enabled >/dev/null\n"
      "linked=$(audiencesctl audiences create --name 'Buyers (linked)' --type linked "
      "--target-entity profile --query \"event('Order Completed').count() >= 1\" -o id)\n"
      "audiencesctl schedules add --audience \"$linked\" --days mon,thu --hours 9 "
      "--timezone America/New_York >/dev/null\n");
  ASSERT_EQ(setup.exit_code, 0) << Describe(setup);
  std::vector<std::string> skipped;
  EXPECT_EQ(session.Run(Transcript(blocks[0]), &skipped), 5);
  EXPECT_TRUE(skipped.empty());
}

}  // namespace
}  // namespace sag::testing
