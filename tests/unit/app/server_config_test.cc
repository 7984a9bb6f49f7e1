// ServerConfigFromFlags: defaults, the --config file (command line wins), and one clear error per
// bad value, including malformed, oversized and hostile ones. In-process: flags are set with
// absl::SetFlag and restored after each test.
#include "service/app/server_config.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/app/flags.h"

namespace sag::app {
namespace {

using ::testing::HasSubstr;

class ServerConfigTest : public ::testing::Test {
 protected:
  absl::FlagSaver saver_;

  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = absl::StrCat(::testing::TempDir(), "/server_config_test_", name);
    std::ofstream(path, std::ios::binary) << content;
    written_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const std::string& path : written_) std::remove(path.c_str());
  }
  // The error message of ServerConfigFromFlags, "" when it succeeds.
  static std::string Error(const std::set<std::string>& given = {}) {
    absl::StatusOr<ServerConfig> c = ServerConfigFromFlags(given);
    if (c.ok()) return "";
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(c.status().message());
  }
  std::vector<std::string> written_;
};

TEST_F(ServerConfigTest, DefaultsMakeOneDefaultWorkspace) {
  absl::SetFlag(&FLAGS_token_file, "/run/token");
  absl::StatusOr<ServerConfig> c = ServerConfigFromFlags({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "0.0.0.0:50051");
  EXPECT_EQ(c->metrics_listen, "0.0.0.0:9464");
  ASSERT_EQ(c->workspaces.size(), 1u);
  EXPECT_EQ(c->workspaces[0].name, "default");
  EXPECT_EQ(c->workspaces[0].token_file, "/run/token");
  EXPECT_EQ(c->cache_ttl, absl::Seconds(30));
  EXPECT_EQ(c->queue_max, 10000u);
  EXPECT_EQ(c->idempotency_ttl, absl::Hours(24));
  EXPECT_EQ(c->idempotency_max_entries, 10000u);
  EXPECT_EQ(c->shown_upstream, "https://api.segmentapis.com");
  EXPECT_TRUE(c->tls_cert_pem.empty());
  EXPECT_FALSE(c->api_default.has_value());
  EXPECT_GE(c->max_memory, int64_t{40} << 20);  // auto: from the cgroup limit or the machine
  EXPECT_THAT(c->max_memory_source, HasSubstr("75% of "));
}

TEST_F(ServerConfigTest, MaxMemoryTakesKubernetesSizes) {
  absl::SetFlag(&FLAGS_max_memory, "400Mi");
  absl::StatusOr<ServerConfig> c = ServerConfigFromFlags({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_memory, int64_t{400} << 20);
  EXPECT_EQ(c->max_memory_source, "--max_memory");
}

TEST_F(ServerConfigTest, EachBadValueHasItsOwnError) {
  struct Case {
    std::function<void()> set;
    std::string error;
  };
  const std::vector<Case> cases = {
      {[] { absl::SetFlag(&FLAGS_replicas, 0); }, "--replicas must be at least 1"},
      {[] { absl::SetFlag(&FLAGS_redis_connections, 0); },
       "--redis_connections must be from 1 to 64"},
      {[] { absl::SetFlag(&FLAGS_redis_connections, 65); },
       "--redis_connections must be from 1 to 64"},
      {[] { absl::SetFlag(&FLAGS_queue_max, 0); }, "--queue_max must be at least 1"},
      {[] { absl::SetFlag(&FLAGS_upstream_max_attempts, -3); },
       "--upstream_max_attempts must be >= 1"},
      {[] { absl::SetFlag(&FLAGS_upstream_timeout, absl::ZeroDuration()); },
       "--upstream_timeout must be positive"},
      {[] { absl::SetFlag(&FLAGS_upstream_max_connections, 0); },
       "--upstream_max_connections must be at least 1"},
      {[] { absl::SetFlag(&FLAGS_cache_ttl, absl::Seconds(-1)); }, "--cache_ttl must be >= 0"},
      {[] { absl::SetFlag(&FLAGS_cache_max_bytes, -1); }, "--cache_max_bytes must be >= 0"},
      {[] { absl::SetFlag(&FLAGS_cache_stale_if_error, absl::Seconds(-1)); },
       "--cache_stale_while_revalidate and --cache_stale_if_error must be >= "
       "0"},
      {[] { absl::SetFlag(&FLAGS_rate_limits, "NoSuchRpc=1/1m"); }, "--rate_limits: "},
      {[] { absl::SetFlag(&FLAGS_idempotency_ttl, absl::ZeroDuration()); },
       "--idempotency_ttl must be positive"},
      {[] { absl::SetFlag(&FLAGS_idempotency_ttl, -absl::InfiniteDuration()); },
       "--idempotency_ttl must be positive"},
      {[] { absl::SetFlag(&FLAGS_idempotency_max_entries, 0); },
       "--idempotency_max_entries must be at least 1"},
      {[] { absl::SetFlag(&FLAGS_idempotency_max_entries, -2147483647); },
       "--idempotency_max_entries must be at least 1"},
      {[] { absl::SetFlag(&FLAGS_redis_url, "ftp://x"); }, "--redis_url: "},
      {[] { absl::SetFlag(&FLAGS_tls_cert, "/c.pem"); }, "--tls_cert and --tls_key go together"},
      {[] { absl::SetFlag(&FLAGS_client_ca, "/ca.pem"); },
       "--client_ca needs --tls_cert and --tls_key"},
      {[] {
         absl::SetFlag(&FLAGS_tls_cert, "/nonexistent/c.pem");
         absl::SetFlag(&FLAGS_tls_key, "/nonexistent/k.pem");
       },
       "cannot read /nonexistent/"},
      {[] { absl::SetFlag(&FLAGS_config, "/nonexistent/config.yaml"); },
       "config: cannot open /nonexistent/config.yaml"},
      {[] { absl::SetFlag(&FLAGS_max_memory, "10XB"); }, "--max_memory: '10XB' is not a size"},
      {[] { absl::SetFlag(&FLAGS_max_memory, "1e99"); }, "--max_memory: '1e99' is not a size"},
      {[] { absl::SetFlag(&FLAGS_max_memory, "-1"); }, "--max_memory: '-1' is not a size"},
      {[] { absl::SetFlag(&FLAGS_max_memory, ""); }, "--max_memory: empty size"},
      {[] { absl::SetFlag(&FLAGS_max_memory, "99999999999999999999Gi"); },
       "--max_memory: '99999999999999999999Gi' is too large"},
      {[] { absl::SetFlag(&FLAGS_max_memory, "1Mi"); }, "--max_memory: must be at least 40Mi"},
  };
  for (const Case& c : cases) {
    absl::FlagSaver restore;
    c.set();
    EXPECT_THAT(Error(), HasSubstr(c.error));
  }
}

TEST_F(ServerConfigTest, ConfigFileSetsFlagsAndTheCommandLineWins) {
  absl::SetFlag(&FLAGS_config, WriteFile("ok.yaml",
                                         "listen: 127.0.0.1:7000\n"
                                         "cache_ttl: 90s\n"
                                         "replicas: 3\n"
                                         "rate_limits: [ListAudiences=5/1m, default=100/1m]\n"));
  absl::SetFlag(&FLAGS_replicas, 2);  // As if given on the command line.
  absl::StatusOr<ServerConfig> c = ServerConfigFromFlags({"config", "replicas"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.1:7000");
  EXPECT_EQ(c->cache_ttl, absl::Seconds(90));
  EXPECT_EQ(c->replicas, 2);
  ASSERT_TRUE(c->api_default.has_value());
  EXPECT_EQ(c->api_default->requests, 100);
  EXPECT_EQ(c->rate_limits.count("ListAudiences"), 1u);
}

TEST_F(ServerConfigTest, UnsupportedSectionsAreNamed) {
  absl::SetFlag(&FLAGS_config, WriteFile("sections.yaml", "limits: {}\ncache:\n  ttl: 5s\n"));
  const std::string error = Error({"config"});
  EXPECT_THAT(error, HasSubstr("section 'limits' is not supported"));
  EXPECT_THAT(error, HasSubstr("section 'cache' is not supported"));
}

TEST_F(ServerConfigTest, WorkspacesAndTokenFileFlagConflict) {
  absl::SetFlag(&FLAGS_config, WriteFile("ws.yaml",
                                         "workspaces:\n"
                                         "  - {name: acme, token_file: /run/acme}\n"
                                         "  - {name: eu, token_file: /run/eu, spaces: [s1]}\n"));
  absl::StatusOr<ServerConfig> c = ServerConfigFromFlags({"config"});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->workspaces.size(), 2u);
  EXPECT_EQ(c->workspaces[1].spaces, std::vector<std::string>{"s1"});
  absl::SetFlag(&FLAGS_token_file, "/run/other");
  EXPECT_THAT(Error({"config", "token_file"}), HasSubstr("both name tokens"));
}

// `callers[].priority` / `.weight` and --batch_min_share (key batch_min_share).
constexpr char kSecretA[] = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
constexpr char kSecretB[] = "6b86b273ff34ce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b1";

std::string CallersYaml(const std::string& a_extra, const std::string& b_extra = "") {
  return absl::StrCat("callers:\n  - name: reporting\n    secret_sha256: ", kSecretA, "\n", a_extra,
                      "  - name: ui\n    secret_sha256: ", kSecretB, "\n", b_extra);
}

TEST_F(ServerConfigTest, CallersPrioritiesWeightsAndBatchShareAreRead) {
  absl::SetFlag(&FLAGS_config,
                WriteFile("shares.yaml", "batch_min_share: 0.25\n" +
                                             CallersYaml("    priority: batch\n    weight: 3\n",
                                                         "    priority: interactive\n")));
  absl::StatusOr<ServerConfig> c = ServerConfigFromFlags({"config"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->batch_min_share, 0.25);
  const ratelimit::CallerShare reporting = c->access.ShareOf("reporting");
  EXPECT_EQ(reporting.priority, ratelimit::Priority::kBatch);
  EXPECT_EQ(reporting.weight, 3);
  EXPECT_EQ(c->access.ShareOf("ui").priority, ratelimit::Priority::kInteractive);
  EXPECT_EQ(c->access.ShareOf("ui").weight, 1);
  // Not configured: the defaults, and not a configured name (metrics label it "other").
  EXPECT_EQ(c->access.ShareOf("stranger").priority, ratelimit::Priority::kInteractive);
  EXPECT_EQ(c->access.ShareOf("stranger").weight, 1);
  EXPECT_TRUE(c->access.IsConfigured("reporting"));
  EXPECT_FALSE(c->access.IsConfigured("stranger"));
}

TEST_F(ServerConfigTest, BatchMinShareDefaultsToTenPercent) {
  absl::StatusOr<ServerConfig> c = ServerConfigFromFlags({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->batch_min_share, 0.1);
}

TEST_F(ServerConfigTest, BadPrioritiesAndWeightsAreRefusedNamingTheKey) {
  struct Case {
    std::string entry;
    std::string error;
  };
  const std::string weight = "config: callers[0].weight: must be an integer from 1 to 1000, got ";
  const std::vector<Case> cases = {
      {"    priority: urgent\n",
       "config: callers[0].priority: unknown class 'urgent': use interactive or batch (line 4)"},
      {"    priority: BATCH\n", "callers[0].priority: unknown class 'BATCH'"},
      {"    priority: [batch]\n", "callers[0].priority: unknown class ''"},
      {"    priority: \"\"\n", "callers[0].priority: unknown class ''"},
      {"    weight: 0\n", weight + "'0' (line 4)"},
      {"    weight: -1\n", weight + "'-1'"},
      {"    weight: 1001\n", weight + "'1001'"},
      {"    weight: 99999999999999999999999\n", weight + "'99999999999999999999999'"},
      {"    weight: 2.5\n", weight + "'2.5'"},
      {"    weight: 1e3\n", weight + "'1e3'"},
      {"    weight: three\n", weight + "'three'"},
      {"    weight: \" 3\"\n", weight + "' 3'"},
      {"    weight: {a: 1}\n", weight + "''"},
      {"    weight:\n", weight + "''"},
      {"    weight: " + std::string(100000, '7') + "\n", weight + "'7777777777"},
      {"    max_rate: ListAudiences=20/1m\n", "config: callers[0].max_rate: unknown key"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.entry.substr(0, 60));
    absl::FlagSaver restore;
    absl::SetFlag(&FLAGS_config, WriteFile("bad_share.yaml", CallersYaml(c.entry)));
    const std::string error = Error({"config"});
    EXPECT_THAT(error, HasSubstr(c.error));
    EXPECT_LT(error.size(), 300u) << "a hostile value is not echoed whole";
  }
}

TEST_F(ServerConfigTest, BatchMinShareOutsideZeroToOneIsRefused) {
  for (const char* bad : {"-0.1", "1.5", "nan", "inf", "-inf"}) {
    SCOPED_TRACE(bad);
    absl::FlagSaver restore;
    absl::SetFlag(&FLAGS_config, WriteFile("share.yaml", absl::StrCat("batch_min_share: ", bad)));
    EXPECT_THAT(Error({"config"}), HasSubstr("--batch_min_share must be a fraction from 0 to 1"));
  }
  for (const char* bad : {"ten percent", "10%", "[0.1, 0.2]", "{a: 1}"}) {
    SCOPED_TRACE(bad);
    absl::FlagSaver restore;
    absl::SetFlag(&FLAGS_config, WriteFile("share.yaml", absl::StrCat("batch_min_share: ", bad)));
    EXPECT_THAT(Error({"config"}), HasSubstr("batch_min_share"));
  }
  for (const char* good : {"0", "1", "0.5"}) {
    absl::FlagSaver restore;
    absl::SetFlag(&FLAGS_config, WriteFile("share.yaml", absl::StrCat("batch_min_share: ", good)));
    EXPECT_EQ(Error({"config"}), "") << good;
  }
}

TEST_F(ServerConfigTest, HostileInputIsRefusedWithoutCrashing) {
  absl::SetFlag(&FLAGS_config, WriteFile("huge.yaml", std::string(2 << 20, '#')));
  EXPECT_THAT(Error({"config"}), HasSubstr("larger than"));
  absl::SetFlag(&FLAGS_config, WriteFile("binary.yaml", std::string("listen: \0\xff", 10)));
  EXPECT_THAT(Error({"config"}), HasSubstr("not a text file"));
  absl::SetFlag(&FLAGS_config, "");
  absl::SetFlag(&FLAGS_rate_limits, std::string(1 << 20, ','));
  EXPECT_THAT(Error(), HasSubstr("--rate_limits: "));
  absl::SetFlag(&FLAGS_rate_limits, "");
  absl::SetFlag(&FLAGS_redis_url, std::string(100000, '\xff'));
  EXPECT_THAT(Error(), HasSubstr("--redis_url: "));
}

}  // namespace
}  // namespace sag::app
