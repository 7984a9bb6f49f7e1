// The --config file: flags from YAML and JSON, command line wins, errors that name the key,
// workspaces validation, hostile input.
#include "service/config/config.h"

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Flags as the gateway declares them (names as the flags table of service/README.md lists them).
ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "gRPC address");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9464", "metrics address");
ABSL_FLAG(absl::Duration, cache_ttl, absl::Seconds(30), "listing cache freshness");
ABSL_FLAG(int, upstream_max_connections, 64, "connections");
ABSL_FLAG(bool, verbose_calls, false, "a bool flag");
ABSL_FLAG(std::string, rate_limits, "", "OP=N/DURATION,...");
ABSL_FLAG(std::string, config, "", "config file");

namespace sag {
namespace config {
namespace {

using ::testing::HasSubstr;

class ConfigTest : public ::testing::Test {
 protected:
  // Every test starts from the default flag values.
  absl::FlagSaver saver_;

  static YAML::Node Parse(const std::string& text) {
    absl::StatusOr<YAML::Node> root = ParseConfigText(text, "test.yaml");
    EXPECT_TRUE(root.ok()) << root.status();
    return root.ok() ? *root : YAML::Node();
  }

  // Writes a file under the test temp dir; removed when the test ends.
  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
    std::ofstream(path, std::ios::binary) << content;
    written_.push_back(path);
    return path;
  }

  void TearDown() override {
    for (const std::string& path : written_) std::remove(path.c_str());
  }

  std::vector<std::string> written_;
};

TEST_F(ConfigTest, YamlSetsFlags) {
  const std::string path = WriteFile("flags.yaml",
                                     "# comment\n"
                                     "listen: 127.0.0.1:6000\n"
                                     "cache_ttl: 90s\n"
                                     "upstream_max_connections: 8\n"
                                     "verbose_calls: yes\n"
                                     "rate_limits: [ListAudiences=5/1m, default=100/1m]\n");
  absl::StatusOr<YAML::Node> root = LoadConfigFile(path);
  ASSERT_TRUE(root.ok()) << root.status();
  ASSERT_TRUE(ApplyFlagsFromConfig(*root, {}).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_listen), "127.0.0.1:6000");
  EXPECT_EQ(absl::GetFlag(FLAGS_cache_ttl), absl::Seconds(90));
  EXPECT_EQ(absl::GetFlag(FLAGS_upstream_max_connections), 8);
  EXPECT_TRUE(absl::GetFlag(FLAGS_verbose_calls));
  EXPECT_EQ(absl::GetFlag(FLAGS_rate_limits), "ListAudiences=5/1m,default=100/1m");
  EXPECT_EQ(absl::GetFlag(FLAGS_metrics_listen), "0.0.0.0:9464");  // untouched
}

TEST_F(ConfigTest, JsonSetsFlags) {
  const std::string path = WriteFile("flags.json",
                                     "{\n"
                                     "\t\"listen\": \"[::1]:7000\",\n"
                                     "\t\"cache_ttl\": \"1m30s\",\n"
                                     "\t\"upstream_max_connections\": 16,\n"
                                     "\t\"verbose_calls\": true,\n"
                                     "\t\"workspaces\": [{\"name\": \"a\", \"token_file\": "
                                     "\"/t\", \"spaces\": [\"spa_1\"]}]\n"
                                     "}\n");
  absl::StatusOr<YAML::Node> root = LoadConfigFile(path);
  ASSERT_TRUE(root.ok()) << root.status();
  ASSERT_TRUE(ApplyFlagsFromConfig(*root, {}).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_listen), "[::1]:7000");
  EXPECT_EQ(absl::GetFlag(FLAGS_cache_ttl), absl::Seconds(90));
  EXPECT_EQ(absl::GetFlag(FLAGS_upstream_max_connections), 16);
  EXPECT_TRUE(absl::GetFlag(FLAGS_verbose_calls));
  auto workspaces = ParseWorkspaces(*root);
  ASSERT_TRUE(workspaces.ok()) << workspaces.status();
  ASSERT_EQ(workspaces->size(), 1u);
  EXPECT_EQ((*workspaces)[0].spaces, std::vector<std::string>{"spa_1"});
}

TEST_F(ConfigTest, CommandLineWins) {
  const char* argv[] = {"audiences-gateway", "--listen=1.2.3.4:1", "--config", "x.yaml"};
  const std::set<std::string> given = FlagsSetOnCommandLine(4, argv);
  absl::SetFlag(&FLAGS_listen, "1.2.3.4:1");  // as absl::ParseCommandLine would
  YAML::Node root = Parse("listen: 9.9.9.9:9\ncache_ttl: 5s\n");
  ASSERT_TRUE(ApplyFlagsFromConfig(root, given).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_listen), "1.2.3.4:1");
  EXPECT_EQ(absl::GetFlag(FLAGS_cache_ttl), absl::Seconds(5));
}

TEST_F(ConfigTest, BadValueIsAnErrorEvenWhenTheCommandLineOverridesIt) {
  const char* argv[] = {"gw", "--cache_ttl=10s"};
  absl::SetFlag(&FLAGS_cache_ttl, absl::Seconds(10));
  absl::Status st =
      ApplyFlagsFromConfig(Parse("cache_ttl: soon\n"), FlagsSetOnCommandLine(2, argv));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("cache_ttl"));
  EXPECT_EQ(absl::GetFlag(FLAGS_cache_ttl), absl::Seconds(10));
}

TEST_F(ConfigTest, FlagsSetOnCommandLineForms) {
  const char* argv[] = {"gw",
                        "--listen=a:1",
                        "--verbose_calls",
                        "-cache_ttl=3s",
                        "-rate_limits",
                        "x=1/1s",
                        "--noverbose_calls",
                        "positional",
                        "--",
                        "--metrics_listen=after-double-dash"};
  const std::set<std::string> given = FlagsSetOnCommandLine(10, argv);
  EXPECT_EQ(given, (std::set<std::string>{"listen", "verbose_calls", "cache_ttl", "rate_limits",
                                          "noverbose_calls"}));
}

TEST_F(ConfigTest, UnknownKeyNamesTheKeyAndLine) {
  absl::Status st = ApplyFlagsFromConfig(Parse("listen: a:1\ncache_ttl: 1s\nfoo: 1\n"), {});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "config: unknown key 'foo' (line 3)");
  // Nothing was applied.
  EXPECT_EQ(absl::GetFlag(FLAGS_listen), "0.0.0.0:50051");
  EXPECT_EQ(absl::GetFlag(FLAGS_cache_ttl), absl::Seconds(30));

  st = ApplyFlagsFromConfig(Parse("metrics-listen: a:1\n"), {});
  EXPECT_EQ(st.message(),
            "config: unknown key 'metrics-listen' (line 1) (did you mean "
            "'metrics_listen'?)");
}

TEST_F(ConfigTest, BadValueNamesTheKeyAndTheFlagsMessage) {
  absl::Status st =
      ApplyFlagsFromConfig(Parse("listen: a:1\n\nupstream_max_connections: lots\n"), {});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("config: key 'upstream_max_connections' (line 3): "));
  EXPECT_THAT(std::string(st.message()), HasSubstr("Illegal value 'lots'"));
  EXPECT_EQ(absl::GetFlag(FLAGS_listen), "0.0.0.0:50051");  // rolled back
  EXPECT_EQ(absl::GetFlag(FLAGS_upstream_max_connections), 64);
}

TEST_F(ConfigTest, EveryProblemIsListed) {
  absl::Status st = ApplyFlagsFromConfig(
      Parse("a: 1\nlisten: [x, {y: 1}]\ncache_ttl: {v: 1}\nlisten_x:\ncache_ttl: 2s\n"
            "upstream_max_connections:\nconfig: other.yaml\nversion: true\n"),
      {});
  EXPECT_EQ(st.message(),
            "config: unknown key 'a' (line 1)\n"
            "config: key 'listen' a list value may only hold plain values (line 2)\n"
            "config: key 'cache_ttl' expected a value, not a mapping (line 3)\n"
            "config: unknown key 'listen_x' (line 4) (did you mean 'listen'?)\n"
            "config: duplicate key 'cache_ttl' (line 5)\n"
            "config: key 'upstream_max_connections' has no value (line 6)\n"
            "config: key 'config' cannot be set in the config file (line 7)\n"
            "config: key 'version' cannot be set in the config file (line 8)");
}

TEST_F(ConfigTest, SectionsAreNotFlags) {
  EXPECT_TRUE(ApplyFlagsFromConfig(Parse("workspaces: []\ncallers: {a: 1}\naccess: x\n"), {}).ok());
  EXPECT_TRUE(ApplyFlagsFromConfig(Parse(""), {}).ok());
  EXPECT_TRUE(ApplyFlagsFromConfig(Parse("# only a comment\n"), {}).ok());
}

TEST_F(ConfigTest, UnsupportedSectionsAreRefusedByName) {
  absl::Status st = ApplyFlagsFromConfig(
      Parse("listen: 127.0.0.1:7000\nlimits: {ListAudiences: 5/1m}\ncache: {max_bytes: 1}\n"), {});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "config: section 'limits' is not supported (line 2): set --rate_limits (key "
            "rate_limits) instead\n"
            "config: section 'cache' is not supported (line 3): set the cache_* keys (cache_ttl, "
            "cache_max_bytes, ...) instead");
  EXPECT_EQ(absl::GetFlag(FLAGS_listen), "0.0.0.0:50051");  // Nothing applied.
  // Even empty, or null: a key there says someone expects it to be read.
  EXPECT_FALSE(ApplyFlagsFromConfig(Parse("cache:\n"), {}).ok());
  EXPECT_FALSE(ApplyFlagsFromConfig(Parse("limits: []\n"), {}).ok());
}

TEST_F(ConfigTest, WorkspacesParse) {
  auto ws =
      ParseWorkspaces(Parse("workspaces:\n"
                            "  - name: acme\n"
                            "    token_file: /run/acme\n"
                            "    spaces: [spa_1, spa-2.x]\n"
                            "  - name: eu\n"
                            "    token_file: eu.token\n"
                            "    upstream_url: https://eu1.api.segmentapis.com\n"));
  ASSERT_TRUE(ws.ok()) << ws.status();
  ASSERT_EQ(ws->size(), 2u);
  EXPECT_EQ((*ws)[0].name, "acme");
  EXPECT_EQ((*ws)[0].token_file, "/run/acme");
  EXPECT_EQ((*ws)[0].spaces, (std::vector<std::string>{"spa_1", "spa-2.x"}));
  EXPECT_FALSE((*ws)[0].upstream_url.has_value());
  EXPECT_EQ((*ws)[1].upstream_url.value_or(""), "https://eu1.api.segmentapis.com");
  EXPECT_TRUE((*ws)[1].spaces.empty());

  auto none = ParseWorkspaces(Parse("listen: a:1\n"));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(ConfigTest, WorkspacesErrorsNameThePath) {
  auto ws =
      ParseWorkspaces(Parse("workspaces:\n"
                            "  - name: acme\n"
                            "    token_file: /run/acme\n"
                            "    spaces: [spa_1, 'bad id', spa_1]\n"
                            "  - name: beta\n"
                            "    spaces: [spa_1]\n"
                            "  - name: acme\n"
                            "    token_file: x\n"
                            "    color: blue\n"
                            "    upstream_url: ftp://x\n"
                            "  - token_file: ''\n"
                            "  - just a string\n"));
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ws.status().message(),
            "config: workspaces[0].spaces[1]: invalid space id 'bad id' (want "
            "[A-Za-z0-9][A-Za-z0-9_.-]{0,127}) (line 4)\n"
            "config: workspaces[0].spaces[2]: space 'spa_1' listed twice (line 4)\n"
            "config: workspaces[1].token_file: required (line 5)\n"
            "config: workspaces[1].spaces: space 'spa_1' is already served by workspace 'acme' "
            "(line 5)\n"
            "config: workspaces[2].color: unknown key (want name, token_file, spaces, "
            "upstream_url) (line 9)\n"
            "config: workspaces[2].upstream_url: 'ftp://x' is not an http:// or https:// URL "
            "(line 10)\n"
            "config: workspaces[2].name: 'acme' is already the name of workspaces[0] (line 7)\n"
            "config: workspaces[3].name: required (line 11)\n"
            "config: workspaces[3].token_file: required (line 11)\n"
            "config: workspaces[4]: expected a mapping with name, token_file, spaces (line 12)");

  ws = ParseWorkspaces(Parse("workspaces: {name: a}\n"));
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.status().message(), "config: workspaces: expected a list of workspaces (line 1)");
}

TEST_F(ConfigTest, HugeFileIsRefused) {
  std::string big = "listen: a:1\n";
  while (big.size() <= kMaxConfigBytes) big += "# padding padding padding padding padding\n";
  const std::string path = WriteFile("huge.yaml", big);
  absl::StatusOr<YAML::Node> root = LoadConfigFile(path);
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(root.status().message()), HasSubstr("larger than 1048576 bytes"));
  EXPECT_FALSE(ParseConfigText(big, "mem").ok());
}

TEST_F(ConfigTest, DeepNestingIsAnError) {
  for (const std::string& text : {std::string(100000, '['), std::string(100000, '{'),
                                  [] {
                                    std::string s = "a: ";
                                    for (int i = 0; i < 200000; ++i) s += "- ";
                                    return s + "x\n";
                                  }(),
                                  [] {
                                    std::string s;
                                    for (int i = 0; i < 1000; ++i)
                                      s += std::string(i, ' ') + "k:\n";
                                    return s;
                                  }()}) {
    absl::StatusOr<YAML::Node> root = ParseConfigText(text, "deep.yaml");
    ASSERT_FALSE(root.ok());
    EXPECT_EQ(root.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(root.status().message()), HasSubstr("config: deep.yaml: line "));
  }
}

TEST_F(ConfigTest, BinaryGarbageIsAnError) {
  std::mt19937 rng(7);
  std::string garbage;
  for (int i = 0; i < 4096; ++i) garbage += static_cast<char>(rng() & 0xff);
  absl::StatusOr<YAML::Node> root = LoadConfigFile(WriteFile("garbage.bin", garbage));
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(std::string(root.status().message()), HasSubstr("not a text file"));

  root = ParseConfigText(std::string("listen: a\0b\n", 12), "nul.yaml");
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.status().message(), "config: nul.yaml: NUL byte on line 1: not a text file");
}

TEST_F(ConfigTest, OtherBadShapes) {
  EXPECT_EQ(ParseConfigText("just a string\n", "s.yaml").status().message(),
            "config: s.yaml: the top level must be a mapping of keys to values (line 1)");
  EXPECT_FALSE(ParseConfigText("- a\n- b\n", "l.yaml").ok());
  // yaml-cpp 0.7's LoadAll() would loop forever (and eat all memory) on this one.
  EXPECT_EQ(ParseConfigText(",listen: a:1\n", "c.yaml").status().message(),
            "config: c.yaml: line 1, column 1: unexpected ','");
  EXPECT_THAT(std::string(ParseConfigText("a: 1\n---\nb: 2\n", "m.yaml").status().message()),
              HasSubstr("holds several YAML documents"));
  EXPECT_THAT(std::string(ParseConfigText("a: [1, 2\n", "u.yaml").status().message()),
              HasSubstr("config: u.yaml: line "));
  EXPECT_THAT(std::string(ParseConfigText("{\"a\": 1", "j.json").status().message()),
              HasSubstr("config: j.json: line 1"));
  EXPECT_EQ(LoadConfigFile("/nonexistent/config.yaml").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(LoadConfigFile(::testing::TempDir()).status().message()),
              HasSubstr("is a directory"));
}

TEST_F(ConfigTest, MutatedInputNeverCrashes) {
  const std::string valid =
      "listen: 127.0.0.1:6000\ncache_ttl: 90s\nrate_limits: [a=1/1s]\n"
      "workspaces:\n  - name: acme\n    token_file: /t\n    spaces: [spa_1]\n"
      "callers: {a: &x [1, 2, *x]}\n";
  std::mt19937 rng(1234);
  const std::string alphabet = "[]{}:,-'\"&*!|>#?% \n\tab01\\";
  for (int round = 0; round < 2000; ++round) {
    std::string text = valid;
    const int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (text.size() + 1);
      switch (rng() % 3) {
        case 0:
          text.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 1:
          if (pos < text.size()) text.erase(pos, 1);
          break;
        default:
          if (pos < text.size()) text[pos] = static_cast<char>(rng() & 0xff);
      }
    }
    absl::StatusOr<YAML::Node> root = ParseConfigText(text, "fuzz.yaml");
    if (!root.ok()) {
      EXPECT_TRUE(absl::StartsWith(root.status().message(), "config: fuzz.yaml: "))
          << root.status();
      continue;
    }
    (void)ApplyFlagsFromConfig(*root, {});
    (void)ParseWorkspaces(*root);
  }
}

}  // namespace
}  // namespace config
}  // namespace sag
