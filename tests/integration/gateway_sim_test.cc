// audiences-gateway against segment-sim, both started as real processes on loopback ports:
// every RPC end to end, errors and their details, hostile ids, deadlines.
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/stack.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";

v1::AudienceSummary CreateAudience(Stack& s, const std::string& name, v1::AudienceType type,
                                   const std::string& query = "event('Purchased').count() >= 1") {
  v1::CreateAudienceRequest req = AudienceRequest(kSpace, name, type, query);
  req.mutable_audience()->set_enabled(true);
  req.mutable_audience()->set_description("made by a test");
  v1::CreateAudienceResponse resp;
  grpc::Status st = s.stub().CreateAudience(Context().get(), req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.audience();
}

google::rpc::BadRequest BadRequestOf(const grpc::Status& st) {
  google::rpc::Status details;
  google::rpc::BadRequest bad;
  if (details.ParseFromString(st.error_details())) {
    for (const auto& any : details.details()) {
      if (any.UnpackTo(&bad)) break;
    }
  }
  return bad;
}

int64_t SimRequestCount(Stack& s) {
  nlohmann::json stats = s.SimStats();
  return stats.is_object() && stats.contains("requests") ? stats["requests"].get<int64_t>() : -1;
}

class GatewaySimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StackOptions o;
    o.sim_args = {"--preview_duration=300ms"};
    stack_ = StartOrDie(o);
    ASSERT_NE(stack_, nullptr);
  }
  std::unique_ptr<Stack> stack_;
};

TEST_F(GatewaySimTest, LinkedAudienceStoryThroughEveryScheduleRpc) {
  Stack& s = *stack_;
  v1::AudienceSummary aud = CreateAudience(s, "Linked story", v1::AUDIENCE_TYPE_LINKED);
  ASSERT_FALSE(aud.id().empty());
  EXPECT_EQ(aud.space_id(), kSpace);
  EXPECT_EQ(aud.name(), "Linked story");
  EXPECT_EQ(aud.audience_type(), v1::AUDIENCE_TYPE_LINKED);
  EXPECT_EQ(aud.definition().target_entity(), "profile");
  EXPECT_TRUE(aud.has_description());

  // Add a schedule.
  v1::AddAudienceScheduleToAudienceRequest add;
  add.set_space_id(kSpace);
  add.set_id(aud.id());
  add.mutable_schedule()->set_strategy(v1::SCHEDULE_STRATEGY_SPECIFIC_DAYS);
  auto* days = add.mutable_schedule()->mutable_specific_days();
  days->add_days(1);
  days->add_days(3);
  days->add_hours(9);
  days->set_timezone("America/New_York");
  v1::AddAudienceScheduleToAudienceResponse added;
  grpc::Status st = s.stub().AddAudienceScheduleToAudience(Context().get(), add, &added);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string sched_id = added.audience_schedule().id();
  ASSERT_FALSE(sched_id.empty());
  EXPECT_EQ(added.audience_schedule().strategy(), v1::SCHEDULE_STRATEGY_SPECIFIC_DAYS);
  ASSERT_TRUE(added.audience_schedule().has_specific_days());
  EXPECT_EQ(added.audience_schedule().specific_days().timezone(), "America/New_York");

  // List and get it.
  v1::ListAudienceSchedulesFromSpaceAndAudienceRequest list;
  list.set_space_id(kSpace);
  list.set_id(aud.id());
  v1::ListAudienceSchedulesFromSpaceAndAudienceResponse listed;
  st = s.stub().ListAudienceSchedulesFromSpaceAndAudience(Context().get(), list, &listed);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(listed.audience_schedules_size(), 1);
  EXPECT_EQ(listed.audience_schedules(0).id(), sched_id);

  v1::GetAudienceScheduleFromSpaceAndAudienceRequest get;
  get.set_space_id(kSpace);
  get.set_id(aud.id());
  get.set_schedule_id(sched_id);
  v1::GetAudienceScheduleFromSpaceAndAudienceResponse got;
  st = s.stub().GetAudienceScheduleFromSpaceAndAudience(Context().get(), get, &got);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got.audience_schedule(),
                                                                 listed.audience_schedules(0)));

  // Update it to a periodic schedule.
  v1::UpdateAudienceScheduleForAudienceRequest upd;
  upd.set_space_id(kSpace);
  upd.set_id(aud.id());
  upd.set_schedule_id(sched_id);
  upd.mutable_schedule()->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
  upd.mutable_schedule()->mutable_periodic()->set_interval("1d");
  v1::UpdateAudienceScheduleForAudienceResponse updated;
  st = s.stub().UpdateAudienceScheduleForAudience(Context().get(), upd, &updated);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(updated.audience_schedule().strategy(), v1::SCHEDULE_STRATEGY_PERIODIC);
  EXPECT_EQ(updated.audience_schedule().periodic().interval(), "1d");

  // Update the audience.
  v1::UpdateAudienceForSpaceRequest upa;
  upa.set_space_id(kSpace);
  upa.set_id(aud.id());
  upa.mutable_audience()->set_name("Linked story, renamed");
  upa.mutable_audience()->set_enabled(false);
  v1::UpdateAudienceForSpaceResponse upa_resp;
  st = s.stub().UpdateAudienceForSpace(Context().get(), upa, &upa_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(upa_resp.audience().name(), "Linked story, renamed");
  EXPECT_FALSE(upa_resp.audience().enabled());

  // Get the audience with its schedules.
  v1::GetAudienceRequest ga;
  ga.set_space_id(kSpace);
  ga.set_id(aud.id());
  ga.set_include("schedules");
  v1::GetAudienceResponse ga_resp;
  st = s.stub().GetAudience(Context().get(), ga, &ga_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(ga_resp.audience().name(), "Linked story, renamed");
  ASSERT_EQ(ga_resp.audience().schedules_size(), 1);
  EXPECT_EQ(ga_resp.audience().schedules(0).periodic().interval(), "1d");
  EXPECT_NE(ga_resp.audience().compute_cadence().type(), v1::COMPUTE_CADENCE_TYPE_UNSPECIFIED);

  // Force a run.
  v1::ForceExecuteAudienceRunRequest run;
  run.set_space_id(kSpace);
  run.set_audience_id(aud.id());
  v1::ForceExecuteAudienceRunResponse ran;
  st = s.stub().ForceExecuteAudienceRun(Context().get(), run, &ran);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(ran.run().id().empty());

  // Remove the schedule, then the audience.
  v1::RemoveAudienceScheduleFromAudienceRequest rms;
  rms.set_space_id(kSpace);
  rms.set_id(aud.id());
  rms.set_schedule_id(sched_id);
  v1::RemoveAudienceScheduleFromAudienceResponse rms_resp;
  st = s.stub().RemoveAudienceScheduleFromAudience(Context().get(), rms, &rms_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(rms_resp.status(), v1::OPERATION_STATUS_SUCCESS);
  st = s.stub().GetAudienceScheduleFromSpaceAndAudience(Context().get(), get, &got);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();

  v1::RemoveAudienceFromSpaceRequest rma;
  rma.set_space_id(kSpace);
  rma.set_id(aud.id());
  v1::RemoveAudienceFromSpaceResponse rma_resp;
  st = s.stub().RemoveAudienceFromSpace(Context().get(), rma, &rma_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(rma_resp.status(), v1::OPERATION_STATUS_SUCCESS);
  st = s.stub().GetAudience(Context().get(), ga, &ga_resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.SimStats().value("unrouted", -1), 0);
}

TEST_F(GatewaySimTest, ListAudiencesPagesAndSearches) {
  Stack& s = *stack_;
  for (const char* name : {"Alpha buyers", "Beta buyers", "Gamma churners"}) {
    CreateAudience(s, name, v1::AUDIENCE_TYPE_USERS);
  }
  v1::ListAudiencesRequest req;
  req.set_space_id(kSpace);
  req.mutable_pagination()->set_count(2);
  v1::ListAudiencesResponse page1;
  grpc::Status st = s.stub().ListAudiences(Context().get(), req, &page1);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(page1.audiences_size(), 2);
  ASSERT_TRUE(page1.pagination().has_next());
  EXPECT_FALSE(page1.pagination().has_previous());
  EXPECT_EQ(page1.pagination().total_entries(), 3);

  req.mutable_pagination()->set_cursor(page1.pagination().next());
  v1::ListAudiencesResponse page2;
  st = s.stub().ListAudiences(Context().get(), req, &page2);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(page2.audiences_size(), 1);
  EXPECT_EQ(page2.audiences(0).name(), "Gamma churners");
  EXPECT_FALSE(page2.pagination().has_next());
  EXPECT_TRUE(page2.pagination().has_previous());

  v1::ListAudiencesRequest search;
  search.set_space_id(kSpace);
  search.mutable_search()->set_type(v1::AUDIENCE_SEARCH_TYPE_NAME);
  search.mutable_search()->set_query("buyers");
  v1::ListAudiencesResponse found;
  st = s.stub().ListAudiences(Context().get(), search, &found);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(found.audiences_size(), 2);

  // The REST request carried the query in dot form and the documented Accept.
  nlohmann::json reqs = s.SimRequests();
  ASSERT_TRUE(reqs.is_array());
  bool saw = false;
  for (const auto& r : reqs) {
    if (r.value("operation", nlohmann::json()).is_string() && r["operation"] == "ListAudiences" &&
        r["query"].contains("search.type")) {
      saw = true;
      EXPECT_EQ(r["query"]["search.type"], "NAME");
      EXPECT_EQ(r["query"]["search.query"], "buyers");
      EXPECT_EQ(r["method"], "GET");
      EXPECT_EQ(r["headers"].value("Accept", ""), "application/vnd.segment.v1beta+json");
    }
  }
  EXPECT_TRUE(saw) << reqs.dump();
}

TEST_F(GatewaySimTest, ConsumersListsAudiencesThatReferenceTheAudience) {
  Stack& s = *stack_;
  v1::AudienceSummary base = CreateAudience(s, "Base", v1::AUDIENCE_TYPE_USERS);
  CreateAudience(s, "Consumer", v1::AUDIENCE_TYPE_USERS,
                 absl::StrCat("audience('", base.key(), "')"));
  CreateAudience(s, "Unrelated", v1::AUDIENCE_TYPE_USERS);
  v1::ListAudienceConsumersFromSpaceAndAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id(base.id());
  req.mutable_pagination()->set_count(10);
  req.mutable_sort()->set_field(v1::AUDIENCE_CONSUMERS_SORT_FIELD_NAME);
  req.mutable_sort()->set_direction(v1::SORT_DIRECTION_ASC);
  v1::ListAudienceConsumersFromSpaceAndAudienceResponse resp;
  grpc::Status st = s.stub().ListAudienceConsumersFromSpaceAndAudience(Context().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.audiences_size(), 1);
  EXPECT_EQ(resp.audiences(0).name(), "Consumer");
  EXPECT_FALSE(resp.pagination().current().empty());
}

TEST_F(GatewaySimTest, PreviewIsCreatedThenPolledToCompleted) {
  Stack& s = *stack_;
  v1::CreateAudiencePreviewRequest req;
  req.set_space_id(kSpace);
  req.mutable_preview()->set_audience_type(v1::AUDIENCE_TYPE_LINKED);
  req.mutable_preview()->mutable_definition()->set_query("entity('owned-accounts').count() >= 1");
  req.mutable_preview()->mutable_definition()->set_target_entity("owned-accounts");
  req.mutable_preview()->mutable_options()->add_filter_by_external_ids("user_id");
  v1::CreateAudiencePreviewResponse created;
  grpc::Status st = s.stub().CreateAudiencePreview(Context().get(), req, &created);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_FALSE(created.audience_preview().id().empty());

  v1::GetAudiencePreviewRequest get;
  get.set_space_id(kSpace);
  get.set_id(created.audience_preview().id());
  v1::GetAudiencePreviewResponse got;
  absl::Time give_up = absl::Now() + absl::Seconds(15);
  bool saw_running = false;
  while (absl::Now() < give_up) {
    st = s.stub().GetAudiencePreview(Context().get(), get, &got);
    ASSERT_TRUE(st.ok()) << st.error_message();
    if (got.audience_preview().status() != v1::AUDIENCE_PREVIEW_STATUS_RUNNING) break;
    saw_running = true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(saw_running);
  ASSERT_EQ(got.audience_preview().status(), v1::AUDIENCE_PREVIEW_STATUS_COMPLETED);
  EXPECT_GT(got.audience_preview().results_size(), 0);
  EXPECT_TRUE(got.audience_preview().has_size());
  EXPECT_EQ(got.audience_preview().audience_type(), v1::AUDIENCE_TYPE_LINKED);
  // LINKED previews answer entity results.
  EXPECT_TRUE(got.audience_preview().results(0).has_entity());
}

TEST_F(GatewaySimTest, UnknownAudienceIsNotFoundWithTheUpstreamMessage) {
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_doesnotexist");
  v1::GetAudienceResponse resp;
  grpc::Status st = stack_->stub().GetAudience(Context().get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(st.error_message().find("404"), std::string::npos) << st.error_message();
}

TEST_F(GatewaySimTest, ValidationFailureIsInvalidArgumentWithFieldViolations) {
  v1::CreateAudienceRequest req;
  req.set_space_id(kSpace);
  req.mutable_audience()->set_name("");
  req.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  // No definition: the upstream names the missing field.
  v1::CreateAudienceResponse resp;
  grpc::Status st = stack_->stub().CreateAudience(Context().get(), req, &resp);
  ASSERT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  google::rpc::BadRequest bad = BadRequestOf(st);
  ASSERT_GT(bad.field_violations_size(), 0) << st.error_message();
  bool names_definition = false;
  for (const auto& v : bad.field_violations()) {
    if (v.field().find("definition") != std::string::npos) names_definition = true;
  }
  EXPECT_TRUE(names_definition) << bad.DebugString();
  EXPECT_GT(SimRequestCount(*stack_), 0);  // This one was the upstream's verdict.
}

TEST_F(GatewaySimTest, SchedulesOnNonLinkedAudiencesAreRefusedByTheUpstream) {
  v1::AudienceSummary aud = CreateAudience(*stack_, "Users audience", v1::AUDIENCE_TYPE_USERS);
  v1::AddAudienceScheduleToAudienceRequest add;
  add.set_space_id(kSpace);
  add.set_id(aud.id());
  add.mutable_schedule()->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
  add.mutable_schedule()->mutable_periodic()->set_interval("1h");
  v1::AddAudienceScheduleToAudienceResponse resp;
  grpc::Status st = stack_->stub().AddAudienceScheduleToAudience(Context().get(), add, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  v1::ForceExecuteAudienceRunRequest run;
  run.set_space_id(kSpace);
  run.set_audience_id(aud.id());
  v1::ForceExecuteAudienceRunResponse ran;
  st = stack_->stub().ForceExecuteAudienceRun(Context().get(), run, &ran);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
}

TEST_F(GatewaySimTest, HostileIdsNeverReachAnotherRoute) {
  Stack& s = *stack_;
  std::vector<std::string> hostile = {"",
                                      "/",
                                      "..",
                                      ".",
                                      "?",
                                      "#",
                                      "%2F",
                                      "a/b",
                                      "../audiences",
                                      "a\r\nb",
                                      "a b",
                                      "a%00b",
                                      std::string(10 * 1024, 'a'),
                                      std::string("a\0b", 3),
                                      "aud_1?x=1",
                                      "aud_1#frag",
                                      "\xff\xfe"};
  s.SimReset();
  for (const std::string& id : hostile) {
    v1::GetAudienceRequest req;
    req.set_space_id(kSpace);
    req.set_id(id);
    v1::GetAudienceResponse resp;
    grpc::Status st = s.stub().GetAudience(Context().get(), req, &resp);
    // Invalid UTF-8 is refused by gRPC's own parsing; everything else by the gateway.
    EXPECT_NE(st.error_code(), grpc::StatusCode::OK) << "id of " << id.size() << " bytes";
    if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      google::rpc::BadRequest bad = BadRequestOf(st);
      if (bad.field_violations_size() > 0) {
        EXPECT_EQ(bad.field_violations(0).field(), "id");
      }
    }

    v1::RemoveAudienceScheduleFromAudienceRequest rm;
    rm.set_space_id(id);
    rm.set_id("aud_1");
    rm.set_schedule_id(id);
    v1::RemoveAudienceScheduleFromAudienceResponse rm_resp;
    st = s.stub().RemoveAudienceScheduleFromAudience(Context().get(), rm, &rm_resp);
    EXPECT_NE(st.error_code(), grpc::StatusCode::OK);
  }
  nlohmann::json stats = s.SimStats();
  EXPECT_EQ(stats.value("requests", -1), 0) << stats.dump();
  EXPECT_EQ(stats.value("unrouted", -1), 0) << stats.dump();
}

TEST_F(GatewaySimTest, OddButValidIdsTravelAsOneSegment) {
  Stack& s = *stack_;
  s.SimReset();
  for (const std::string id : {"aud_x.y", "a..b", "A-b_c.d", "previews"}) {
    v1::GetAudienceRequest req;
    req.set_space_id(kSpace);
    req.set_id(id);
    v1::GetAudienceResponse resp;
    grpc::Status st = s.stub().GetAudience(Context().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << id << ": " << st.error_message();
  }
  nlohmann::json stats = s.SimStats();
  EXPECT_EQ(stats.value("requests", -1), 4) << stats.dump();
  EXPECT_EQ(stats.value("unrouted", -1), 0) << stats.dump();
}

TEST_F(GatewaySimTest, BadCountsAreRefusedWithoutAnUpstreamCall) {
  Stack& s = *stack_;
  s.SimReset();
  for (int count : {0, -1, 201, 100000}) {
    v1::ListAudiencesRequest req;
    req.set_space_id(kSpace);
    req.mutable_pagination()->set_count(count);
    v1::ListAudiencesResponse resp;
    grpc::Status st = s.stub().ListAudiences(Context().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << count;
    EXPECT_EQ(BadRequestOf(st).field_violations(0).field(), "pagination.count");
  }
  v1::ListAudienceConsumersFromSpaceAndAudienceRequest consumers;
  consumers.set_space_id(kSpace);
  consumers.set_id("aud_1");
  consumers.mutable_pagination()->set_count(1001);
  v1::ListAudienceConsumersFromSpaceAndAudienceResponse cresp;
  EXPECT_EQ(s.stub()
                .ListAudienceConsumersFromSpaceAndAudience(Context().get(), consumers, &cresp)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListAudiencesRequest long_search;
  long_search.set_space_id(kSpace);
  long_search.mutable_search()->set_type(v1::AUDIENCE_SEARCH_TYPE_NAME);
  long_search.mutable_search()->set_query(std::string(256, 'q'));
  v1::ListAudiencesResponse resp;
  EXPECT_EQ(s.stub().ListAudiences(Context().get(), long_search, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SimRequestCount(s), 0);
}

TEST(GatewayAuthTest, WrongTokenIsUnauthenticatedAndNeverEchoed) {
  StackOptions o;
  o.token = "wrong-token-d41d8cd98f";
  o.sim_token = "right-token-0cc175b9c0";
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  v1::ListAudiencesRequest req;
  req.set_space_id(kSpace);
  v1::ListAudiencesResponse resp;
  grpc::Status st = stack->stub().ListAudiences(Context().get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_EQ(st.error_message().find(o.token), std::string::npos);
  EXPECT_EQ(stack->gateway().Output().find(o.token), std::string::npos);
}

TEST(GatewayDeadlineTest, SlowUpstreamAndShortDeadlineGiveDeadlineExceededOnTime) {
  StackOptions o;
  o.sim_args = {"--latency=3s"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_slow");
  v1::GetAudienceResponse resp;
  absl::Time start = absl::Now();
  grpc::Status st = stack->stub().GetAudience(Context(absl::Milliseconds(300)).get(), req, &resp);
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_LT(took, absl::Milliseconds(1500));
  // The gateway is still healthy and serves the next call.
  grpc::Status st2 = stack->stub().GetAudience(Context(absl::Seconds(10)).get(), req, &resp);
  EXPECT_EQ(st2.error_code(), grpc::StatusCode::NOT_FOUND) << st2.error_message();
}

TEST(GatewayRateLimitTest, UpstreamTooManyRequestsCarriesRetryInfo) {
  StackOptions o;
  o.sim_args = {"--rate_limits=GetAudience=1/1m"};
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_x");
  v1::GetAudienceResponse resp;
  grpc::Status first = stack->stub().GetAudience(Context().get(), req, &resp);
  EXPECT_EQ(first.error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::Status second = stack->stub().GetAudience(Context().get(), req, &resp);
  ASSERT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << second.error_message();
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(second.error_details()));
  google::rpc::RetryInfo retry;
  bool found = false;
  for (const auto& any : details.details()) found = found || any.UnpackTo(&retry);
  ASSERT_TRUE(found);
  EXPECT_GT(retry.retry_delay().seconds() * 1000 + retry.retry_delay().nanos() / 1000000, 0);
  EXPECT_LE(retry.retry_delay().seconds(), 60);
}

TEST(GatewayUpstreamDownTest, ConnectionRefusedIsUnavailable) {
  StackOptions o;
  o.start_sim = false;
  o.upstream_url = "http://127.0.0.1:1";  // Nothing listens on port 1.
  auto stack = StartOrDie(o);
  ASSERT_NE(stack, nullptr);
  v1::GetAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id("aud_x");
  v1::GetAudienceResponse resp;
  grpc::Status st = stack->stub().GetAudience(Context().get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
}

TEST(GatewayHealthTest, HealthServingWithATokenAndGracefulExitOnSigterm) {
  auto stack = StartOrDie();
  ASSERT_NE(stack, nullptr);
  // grpc.health.v1.Health/Check by hand (the generated health stubs are not installed).
  grpc::GenericStub generic(stack->channel());
  for (const std::string service : {"", "segment.audiences.v1.AudiencesService"}) {
    // HealthCheckRequest { string service = 1; }
    std::string bytes;
    if (!service.empty()) {
      bytes.push_back(0x0a);
      bytes.push_back(static_cast<char>(service.size()));
      bytes += service;
    }
    grpc::Slice slice(bytes);
    grpc::ByteBuffer in(&slice, 1), out;
    std::promise<grpc::Status> done;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in, &out,
                      [&done](grpc::Status s) { done.set_value(s); });
    grpc::Status st = done.get_future().get();
    ASSERT_TRUE(st.ok()) << st.error_message();
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(out.Dump(&slices).ok());
    std::string raw;
    for (auto& s : slices) raw.append(reinterpret_cast<const char*>(s.begin()), s.size());
    // HealthCheckResponse { ServingStatus status = 1; } SERVING = 1.
    EXPECT_EQ(raw, std::string("\x08\x01", 2)) << "service '" << service << "'";
  }
  auto code = stack->gateway().Stop(SIGTERM, absl::Seconds(25));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace sag::testing
