// A non-C++ client (Node, @grpc/grpc-js + grpc-js-reflection-client) finds its way around
// audiences-gateway through server reflection alone, as grpcurl does: it lists the services,
// describes ListAudiencesRequest and calls ListAudiences, with no .proto file. The gateway and
// segment-sim run as real processes (tests/common/stack.h); the audience it must list is created
// here first. Needs `(cd tests/reflection && npm ci)`.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/stack.h"
#include "tests/common/subprocess.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "spa_reflection_1";

// Runs the Node client against `address` (bounded); its exit code and output.
absl::StatusOr<std::pair<int, std::string>> RunClient(const std::string& address) {
  auto p = Subprocess::Start({SAG_NODE, SAG_REFLECTION_CLIENT, address, kSpace});
  if (!p.ok()) return p.status();
  const absl::Time end = absl::Now() + absl::Seconds(60);
  while ((*p)->Running()) {
    if (absl::Now() > end) return absl::DeadlineExceededError("the Node client hung");
    absl::SleepFor(absl::Milliseconds(20));
  }
  (void)(*p)->WaitForLine("\x01 end of output", absl::Seconds(5));  // Returns at EOF.
  auto code = (*p)->Stop(SIGKILL, absl::Seconds(1));  // Already reaped: the exit code.
  if (!code.ok()) return code.status();
  return std::make_pair(*code, (*p)->Output());
}

TEST(ReflectionTest, NodeClientListsDescribesAndCallsUsingOnlyReflection) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status();
  Stack& s = **stack;
  // Something to list.
  v1::CreateAudienceRequest create;
  create.set_space_id(kSpace);
  create.mutable_audience()->set_name("Found by reflection");
  create.mutable_audience()->set_enabled(true);
  create.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  create.mutable_audience()->mutable_definition()->set_query("event('Opened').count() >= 1");
  v1::CreateAudienceResponse created;
  grpc::Status st = s.stub().CreateAudience(Context().get(), create, &created);
  ASSERT_TRUE(st.ok()) << st.error_message();

  auto run = RunClient(s.gateway_address());
  ASSERT_TRUE(run.ok()) << run.status();
  const auto& [code, output] = *run;
  ASSERT_EQ(code, 0) << output;
  // The last JSON line is the summary.
  nlohmann::json summary;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::StartsWith(line, "{\"services\""))
      summary = nlohmann::json::parse(line, nullptr, false);
  }
  ASSERT_TRUE(summary.is_object()) << output;

  // list
  std::set<std::string> services = summary["services"].get<std::set<std::string>>();
  EXPECT_TRUE(services.count("segment.audiences.v1.AudiencesService")) << output;
  EXPECT_TRUE(services.count("grpc.reflection.v1alpha.ServerReflection")) << output;
  EXPECT_TRUE(services.count("grpc.health.v1.Health")) << output;
  // list SERVICE: the 14 RPCs.
  std::set<std::string> methods = summary["methods"].get<std::set<std::string>>();
  EXPECT_EQ(methods.size(), 14u) << output;
  EXPECT_TRUE(methods.count("ListAudiences"));
  EXPECT_TRUE(methods.count("CreateAudiencePreview"));
  // describe ListAudiencesRequest: field names, numbers and types as in the .proto.
  const nlohmann::json& message = summary["message"];
  EXPECT_EQ(message["name"], "segment.audiences.v1.ListAudiencesRequest");
  // The built-in health service is describable too (grpc/health/v1/health.proto is linked in).
  EXPECT_EQ(summary["health_methods"], nlohmann::json::array({"Check", "Watch"})) << output;
  std::vector<std::string> fields;
  for (const auto& f : message["fields"]) {
    fields.push_back(absl::StrCat(f["name"].get<std::string>(), "=", f["number"].get<int>(), ":",
                                  f["type"].get<std::string>()));
  }
  EXPECT_EQ(
      fields,
      (std::vector<std::string>{
          "space_id=1:string", "search=2:segment.audiences.v1.ListAudienceSearchInput",
          "pagination=3:segment.audiences.v1.ListAudiencesPaginationInput", "include=4:string"}))
      << message.dump();
  // ListAudiences with the reflected types: the audience made above, and the request id back.
  const nlohmann::json& list = summary["list"];
  ASSERT_EQ(list["audiences"].size(), 1u) << output;
  EXPECT_EQ(list["audiences"][0]["id"], created.audience().id());
  EXPECT_EQ(list["audiences"][0]["name"], "Found by reflection");
  EXPECT_EQ(list["total_entries"], 1);
  EXPECT_EQ(list["request_id"], "reflection-client-0001");
}

TEST(ReflectionTest, NodeClientFailsWhenNothingListens) {
  // The client reports failure (so the test above can fail): nothing listens on port 1.
  auto run = RunClient("127.0.0.1:1");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_NE(run->first, 0) << run->second;
}

}  // namespace
}  // namespace sag::testing
