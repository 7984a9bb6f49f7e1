// The installed package: `cmake --install` of this build into a temporary prefix, then a project
// of its own (tests/client/consumer: one .cc file) does find_package(SegmentAudiencesClient),
// links SegmentAudiences::client, builds, and talks to a real gateway + segment-sim.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/client/run_process.h"
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

namespace sag::testing {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

TEST(InstalledPackageTest, ConsumerProjectFindsBuildsAndCallsTheGateway) {
  const std::string tmp = MakeTempDir();
  ASSERT_FALSE(tmp.empty());
  const std::string prefix = tmp + "/prefix";
  ProcessOptions slow;
  slow.timeout = absl::Seconds(240);

  ProcessResult r = RunProcess({SAG_CMAKE, "--install", SAG_BINARY_DIR, "--prefix", prefix,
                                "--component", "SegmentAudiencesClient"},
                               slow);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* header :
       {"/include/segment_audiences/client.h", "/include/segment_audiences/errors.h",
        "/include/segment/audiences/v1/audiences.pb.h",
        "/include/segment/audiences/v1/audiences.grpc.pb.h", "/include/google/rpc/status.pb.h",
        "/include/google/rpc/error_details.pb.h"}) {
    EXPECT_TRUE(Exists(prefix + header)) << header << " not installed:\n" << r.out;
  }
  EXPECT_NE(r.out.find("libsegment_audiences_client.a"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SegmentAudiencesClientConfig.cmake"), std::string::npos) << r.out;

  std::vector<std::string> configure = {SAG_CMAKE,
                                        "-S",
                                        SAG_CONSUMER_SOURCE_DIR,
                                        "-B",
                                        tmp + "/build",
                                        "-DCMAKE_PREFIX_PATH=" + prefix,
                                        "-DCMAKE_CXX_COMPILER=" SAG_CXX_COMPILER};
  for (absl::string_view arg : absl::StrSplit(SAG_CONSUMER_CMAKE_ARGS, '|', absl::SkipEmpty())) {
    configure.emplace_back(arg);
  }
  r = RunProcess(configure, slow);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = RunProcess({SAG_CMAKE, "--build", tmp + "/build", "-j2"}, slow);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status();
  r = RunProcess({tmp + "/build/consumer", (*stack)->gateway_address(), "spa_consumer"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("created aud_"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nlisted 1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nmissing NOT_FOUND\n"), std::string::npos) << r.out;
  (void)RunProcess({"/bin/rm", "-rf", tmp});
}

}  // namespace
}  // namespace sag::testing
