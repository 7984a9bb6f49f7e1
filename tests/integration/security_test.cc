// Tokens, callers and access: mutual TLS with a certificate chain made here with openssl,
// per-caller secrets, access rules, several workspaces, audit lines, token reload (including
// the Kubernetes Secret `..data` symlink swap), and the token never showing anywhere.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/stack.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int Shell(const std::string& command) {
  return std::system(("( " + command + " ) >/dev/null 2>&1").c_str());
}

// A CA, a server certificate for 127.0.0.1/localhost, a trusted client "reporting", a trusted
// client "intruder" (no access), and an untrusted client signed by another CA.
struct Pki {
  std::string dir;
  bool ok = false;
  explicit Pki(const std::string& d) : dir(d) {
    auto cmd = [&](const std::string& c) { return Shell("cd " + dir + " && " + c) == 0; };
    auto leaf = [&](const std::string& name, const std::string& ca, const std::string& ext) {
      return cmd("openssl req -newkey rsa:2048 -nodes -keyout " + name + ".key -subj /CN=" + name +
                 " -out " + name + ".csr") &&
             cmd("printf '" + ext + "' > " + name + ".ext") &&
             cmd("openssl x509 -req -in " + name + ".csr -CA " + ca + ".crt -CAkey " + ca +
                 ".key -CAcreateserial -days 2 -out " + name + ".crt -extfile " + name + ".ext");
    };
    ok = cmd("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 "
             "-subj /CN=test-ca") &&
         cmd("openssl req -x509 -newkey rsa:2048 -nodes -keyout evil-ca.key -out evil-ca.crt "
             "-days 2 -subj /CN=evil-ca") &&
         leaf("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\\n") &&
         leaf("reporting", "ca", "subjectAltName=DNS:reporting.svc\\n") &&
         leaf("intruder", "ca", "subjectAltName=DNS:intruder.svc\\n") &&
         leaf("stranger", "evil-ca", "subjectAltName=DNS:reporting.svc\\n");
  }
  std::string Path(const std::string& f) const { return dir + "/" + f; }
};

std::shared_ptr<grpc::Channel> TlsChannel(const Stack& s, const Pki& pki, const std::string& who) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFile(pki.Path("ca.crt"));
  if (!who.empty()) {
    o.pem_private_key = ReadFile(pki.Path(who + ".key"));
    o.pem_cert_chain = ReadFile(pki.Path(who + ".crt"));
  }
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");  // The server certificate's DNS name.
  return grpc::CreateCustomChannel(s.gateway_address(), grpc::SslCredentials(o), args);
}

grpc::Status ListVia(std::shared_ptr<grpc::Channel> channel, const std::string& space,
                     const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  auto stub = v1::AudiencesService::NewStub(channel);
  auto ctx = Context(absl::Seconds(10));
  for (const auto& [k, v] : metadata) ctx->AddMetadata(k, v);
  v1::ListAudiencesRequest req;
  req.set_space_id(space);
  v1::ListAudiencesResponse resp;
  return stub->ListAudiences(ctx.get(), req, &resp);
}

grpc::Status CreateVia(std::shared_ptr<grpc::Channel> channel, const std::string& space,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  auto stub = v1::AudiencesService::NewStub(channel);
  auto ctx = Context(absl::Seconds(10));
  for (const auto& [k, v] : metadata) ctx->AddMetadata(k, v);
  v1::CreateAudienceRequest req =
      AudienceRequest(space, "audited", v1::AUDIENCE_TYPE_USERS, "event('x').count() >= 1");
  v1::CreateAudienceResponse resp;
  return stub->CreateAudience(ctx.get(), req, &resp);
}

TEST(SecurityTest, MutualTlsRefusesWhomItShouldAndServesTheAllowedCaller) {
  std::string dir = MakeTempDir();
  Pki pki(dir);
  ASSERT_TRUE(pki.ok) << "openssl failed in " << dir;
  WriteFile(dir + "/config.yaml",
            "callers:\n"
            "  - name: reporting\n    cert_names: [reporting.svc]\n"
            "  - name: intruder\n    cert_names: [intruder.svc]\n"
            "access:\n"
            "  - caller: reporting\n    rpcs: [read]\n    spaces: [\"" +
                std::string(kSpace) + "\"]\n");
  StackOptions o;
  o.gateway_args = {"--tls_cert=" + pki.Path("server.crt"), "--tls_key=" + pki.Path("server.key"),
                    "--client_ca=" + pki.Path("ca.crt"), "--config=" + dir + "/config.yaml"};
  o.tls_root = pki.Path("ca.crt");
  auto stack = Stack::Start(o);
  ASSERT_TRUE(stack.ok()) << stack.status();
  Stack& s = **stack;

  // No client certificate: the TLS handshake fails.
  grpc::Status st = ListVia(TlsChannel(s, pki, ""), kSpace);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  // A certificate from an untrusted CA (with the right name): refused too.
  st = ListVia(TlsChannel(s, pki, "stranger"), kSpace);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  // A trusted caller without a rule: PERMISSION_DENIED.
  st = ListVia(TlsChannel(s, pki, "intruder"), kSpace);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  // The allowed caller: served; but not for writes, nor for another space.
  auto reporting = TlsChannel(s, pki, "reporting");
  st = ListVia(reporting, kSpace);
  EXPECT_TRUE(st.ok()) << st.error_message();
  st = CreateVia(reporting, kSpace);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  st = ListVia(reporting, "otherSpace1");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  // Plaintext is not served on a TLS port.
  auto plain = grpc::CreateChannel(s.gateway_address(), grpc::InsecureChannelCredentials());
  st = ListVia(plain, kSpace);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  // The refused calls never reached the upstream.
  nlohmann::json stats = s.SimStats();
  EXPECT_EQ(stats.value("requests", -1), 1) << stats.dump();
}

TEST(SecurityTest, ApiKeysIdentifyCallersWhereThereIsNoTls) {
  std::string dir = MakeTempDir();
  // sha256("s3cret-writer") and sha256("s3cret-reader"), computed with openssl below.
  ASSERT_EQ(Shell("printf s3cret-writer | openssl dgst -sha256 -r | cut -c1-64 > " + dir +
                  "/w.sha && printf s3cret-reader | openssl dgst -sha256 -r | cut -c1-64 > " + dir +
                  "/r.sha"),
            0);
  std::string w = ReadFile(dir + "/w.sha").substr(0, 64),
              r = ReadFile(dir + "/r.sha").substr(0, 64);
  WriteFile(dir + "/config.yaml",
            "callers:\n  - name: writer\n    secret_sha256: " + w +
                "\n  - name: reader\n    secret_sha256: " + r +
                "\naccess:\n  - caller: writer\n    rpcs: [\"*\"]\n"
                "    spaces: [\"*\"]\n  - caller: reader\n"
                "    rpcs: [ListAudiences, GetAudience]\n    spaces: [\"*\"]\n");
  StackOptions o;
  o.gateway_args = {"--config=" + dir + "/config.yaml"};
  auto stack = Stack::Start(o);
  ASSERT_TRUE(stack.ok()) << stack.status();
  Stack& s = **stack;
  auto ch = s.channel();
  EXPECT_EQ(ListVia(ch, kSpace).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListVia(ch, kSpace, {{"x-api-key", "wrong"}}).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status listed = ListVia(ch, kSpace, {{"x-api-key", "s3cret-reader"}});
  EXPECT_TRUE(listed.ok()) << listed.error_message();
  EXPECT_EQ(CreateVia(ch, kSpace, {{"x-api-key", "s3cret-reader"}}).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status created = CreateVia(ch, kSpace, {{"x-api-key", "s3cret-writer"}});
  EXPECT_TRUE(created.ok()) << created.error_message();

  // One audit line per write, naming the caller, with the outcome.
  absl::Time give_up = absl::Now() + absl::Seconds(10);
  nlohmann::json audit;
  while (absl::Now() < give_up && audit.is_null()) {
    for (absl::string_view line : absl::StrSplit(s.gateway().Output(), '\n')) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("msg", "") == "audit") audit = j;
    }
    if (audit.is_null()) absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(audit.is_object()) << s.gateway().Output();
  EXPECT_EQ(audit.value("caller", ""), "writer");
  EXPECT_EQ(audit.value("rpc", ""), "CreateAudience");
  EXPECT_EQ(audit.value("space", ""), kSpace);
  EXPECT_EQ(audit.value("code", ""), "OK");
  EXPECT_TRUE(absl::StartsWith(audit.value("result_id", ""), "aud_")) << audit.dump();
  EXPECT_FALSE(absl::StrContains(s.gateway().Output(), "s3cret"));
}

TEST(SecurityTest, WorkspacesArePickedByMetadataOrSpaceAndKeepTheirTokens) {
  std::string dir = MakeTempDir();
  WriteFile(dir + "/acme.token", "acme-token-1f2e3d\n");
  WriteFile(dir + "/globex.token", "globex-token-9a8b7c\n");
  WriteFile(dir + "/config.yaml",
            "workspaces:\n"
            "  - name: acme\n    token_file: " +
                dir +
                "/acme.token\n    spaces: [acmeSpace1]\n"
                "  - name: globex\n    token_file: " +
                dir +
                "/globex.token\n"
                "    spaces: [globexSpace1, globexSpace2]\n");
  StackOptions o;
  o.sim_token = "";  // The simulator accepts any token; the test reads which one arrived.
  o.token = "";      // No --token_file: the workspaces carry theirs.
  o.gateway_args = {"--config=" + dir + "/config.yaml"};
  auto stack = Stack::Start(o);
  ASSERT_TRUE(stack.ok()) << stack.status();
  Stack& s = **stack;
  auto ch = s.channel();
  EXPECT_TRUE(ListVia(ch, "acmeSpace1").ok());
  EXPECT_TRUE(ListVia(ch, "globexSpace2").ok());
  EXPECT_TRUE(ListVia(ch, "globexSpace1", {{"x-segment-workspace", "globex"}}).ok());
  grpc::Status st = ListVia(ch, "unmappedSpace");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "unmappedSpace"));
  st = ListVia(ch, "acmeSpace1", {{"x-segment-workspace", "initech"}});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  st = ListVia(ch, "acmeSpace1", {{"x-segment-workspace", "globex"}});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  // Each workspace's requests carried its own token (the simulator redacts it, so the test
  // compares what the gateway was configured with through a sim started with one token).
  EXPECT_EQ(s.SimStats().value("requests", -1), 3);
}

TEST(SecurityTest, TokenFileReloadsAcrossAKubernetesSymlinkSwapAndKeepsTheLastGoodToken) {
  // Lay the file out as a Kubernetes Secret volume does: token -> ..data/token,
  // ..data -> ..2026_v1 (a directory); an update swaps the ..data symlink.
  std::string dir = MakeTempDir();
  ASSERT_EQ(
      Shell("mkdir -p " + dir + "/..v1 " + dir + "/..v2 && printf old-token-aaaa1111 > " + dir +
            "/..v1/token && printf new-token-bbbb2222 > " + dir + "/..v2/token && ln -s ..v1 " +
            dir + "/..data && ln -s ..data/token " + dir + "/token"),
      0);
  StackOptions o;
  o.token = "";
  o.sim_token = "new-token-bbbb2222";  // Only the rotated token works upstream.
  o.gateway_args = {"--token_file=" + dir + "/token"};
  auto stack = Stack::Start(o);
  ASSERT_TRUE(stack.ok()) << stack.status();
  Stack& s = **stack;
  EXPECT_EQ(ListVia(s.channel(), kSpace).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // The swap: a new ..data symlink replaces the old one atomically.
  ASSERT_EQ(Shell("cd " + dir + " && ln -s ..v2 ..data_tmp && mv -T ..data_tmp ..data"), 0);
  absl::Time give_up = absl::Now() + absl::Seconds(10);
  grpc::Status st;
  do {
    st = ListVia(s.channel(), kSpace);
    if (st.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  } while (absl::Now() < give_up);
  EXPECT_TRUE(st.ok()) << st.error_message();
  // A bad new file (empty) keeps the last good token, and says so in the log.
  ASSERT_EQ(Shell("cd " + dir +
                  " && mkdir ..v3 && : > ..v3/token && ln -s ..v3 ..data_tmp && "
                  "mv -T ..data_tmp ..data"),
            0);
  give_up = absl::Now() + absl::Seconds(10);
  while (absl::Now() < give_up &&
         !absl::StrContains(s.gateway().Output(), "the last good token stays in use")) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(absl::StrContains(s.gateway().Output(), "the last good token stays in use"));
  EXPECT_TRUE(ListVia(s.channel(), kSpace).ok());
  for (const char* secret : {"old-token-aaaa1111", "new-token-bbbb2222"}) {
    EXPECT_FALSE(absl::StrContains(s.gateway().Output(), secret)) << secret;
  }
}

TEST(SecurityTest, MissingTokenIsNotServingAndUnavailableNamingTheWorkspace) {
  std::string dir = MakeTempDir();
  StackOptions o;
  o.token = "";
  o.gateway_args = {"--token_file=" + dir + "/absent"};
  auto stack = Stack::Start(o);
  ASSERT_TRUE(stack.ok()) << stack.status();
  grpc::Status st = ListVia((*stack)->channel(), kSpace);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(st.error_message(), "workspace 'default'")) << st.error_message();
}

TEST(SecurityTest, BadAccessConfigIsRefusedAtStartWithExitCode2) {
  std::string dir = MakeTempDir();
  WriteFile(dir + "/config.yaml",
            "access:\n  - caller: x\n    rpcs: [DropDatabase]\n"
            "    spaces: [\"*\"]\n");
  auto gw = Subprocess::Start({SAG_GATEWAY_BIN, "--listen=127.0.0.1:0",
                               "--metrics_listen=", "--config=" + dir + "/config.yaml"});
  ASSERT_TRUE(gw.ok());
  auto code = (*gw)->Stop(0, absl::Seconds(10));  // Signal 0: just wait for the exit.
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains((*gw)->Output(), "DropDatabase")) << (*gw)->Output();
}

}  // namespace
}  // namespace sag::testing
