// segment_audiences_client: typed calls against the real gateway + segment-sim, page walking,
// preview waiting; retries, deadlines, metadata, error details and TLS against an in-process
// fake gateway whose behaviour and observations the test controls.
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "segment_audiences/client.h"
#include "tests/client/fake_gateway.h"
#include "tests/client/limits.h"
#include "tests/common/stack.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
namespace sa = segment_audiences;

// ---------------------------------------------------------------------------------------------
// Against the fake gateway.
// ---------------------------------------------------------------------------------------------

class ClientFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fake = FakeGateway::Start();
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = std::move(*fake);
  }
  sa::ClientOptions Options() {
    sa::ClientOptions o;
    o.address = fake_->address();
    o.retry.jitter = 0;
    return o;
  }
  static v1::GetAudienceRequest Get(const std::string& id = "aud_1") {
    v1::GetAudienceRequest req;
    req.set_space_id("spa_1");
    req.set_id(id);
    return req;
  }
  std::unique_ptr<FakeGateway> fake_;
};

TEST_F(ClientFakeTest, ReadIsRetriedOnUnavailableWithGrowingBackoff) {
  fake_->get_unavailable_first = 2;
  sa::ClientOptions o = Options();
  o.retry.initial_backoff = absl::Milliseconds(100);
  o.retry.multiplier = 2;
  sa::Client client(o);
  sa::CallInfo info;
  sa::CallOptions call;
  call.info = &info;
  auto got = client.GetAudience(Get(), call);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->audience().id(), "aud_1");
  EXPECT_EQ(fake_->get_calls.load(), 3);
  EXPECT_EQ(info.attempts, 3);
  std::vector<FakeGateway::Seen> seen = fake_->seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_GE(seen[1].at - seen[0].at, absl::Milliseconds(100));
  EXPECT_GE(seen[2].at - seen[1].at, absl::Milliseconds(200));
}

TEST_F(ClientFakeTest, RetriesStopAtMaxAttempts) {
  fake_->get_unavailable_first = 100;
  sa::ClientOptions o = Options();
  o.retry.max_attempts = 3;
  o.retry.initial_backoff = absl::Milliseconds(10);
  sa::Client client(o);
  auto got = client.GetAudience(Get());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(got.status().message(), "attempt 3 refused");
  EXPECT_EQ(fake_->get_calls.load(), 3);
}

TEST_F(ClientFakeTest, RetriesStopBeforeTheDeadline) {
  fake_->get_unavailable_first = 100;
  sa::ClientOptions o = Options();
  o.retry.max_attempts = 10;
  o.retry.initial_backoff = absl::Milliseconds(200);
  o.timeout = absl::Seconds(1);
  sa::Client client(o);
  const absl::Time start = absl::Now();
  auto got = client.GetAudience(Get());
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  // Attempts at 0, 200ms, 600ms; the next pause (800ms) would pass the 1s deadline.
  EXPECT_EQ(fake_->get_calls.load(), 3);
  EXPECT_LT(took, absl::Seconds(1));
}

TEST_F(ClientFakeTest, WritesAreNeverRetried) {
  fake_->create_unavailable = true;
  sa::Client client(Options());
  v1::CreateAudienceRequest req;
  req.set_space_id("spa_1");
  req.mutable_audience()->set_name("Buyers");
  auto created = client.CreateAudience(req);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(fake_->create_calls.load(), 1);
}

TEST_F(ClientFakeTest, OtherErrorsAreNotRetried) {
  sa::Client client(Options());
  auto got = client.GetAudience(Get("missing"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fake_->get_calls.load(), 1);
}

TEST_F(ClientFakeTest, RetryPolicyOfOneAttemptDisablesRetries) {
  fake_->get_unavailable_first = 1;
  sa::ClientOptions o = Options();
  o.retry.max_attempts = 1;
  sa::Client client(o);
  EXPECT_EQ(client.GetAudience(Get()).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(fake_->get_calls.load(), 1);
}

TEST_F(ClientFakeTest, DefaultDeadlineWorkspaceAndMetadata) {
  sa::ClientOptions o = Options();
  o.workspace = "prod";
  o.user_agent = "client-test/1";
  sa::Client client(o);
  ASSERT_TRUE(client.GetAudience(Get()).ok());
  sa::CallOptions call;
  call.workspace = "staging";
  call.timeout = absl::Seconds(3);
  call.no_cache = true;
  ASSERT_TRUE(client.GetAudience(Get(), call).ok());
  std::vector<FakeGateway::Seen> seen = fake_->seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].workspace, "prod");
  EXPECT_EQ(seen[0].cache_control, "");
  EXPECT_GT(seen[0].deadline_left, absl::Seconds(25));  // The default 30s.
  EXPECT_LE(seen[0].deadline_left, absl::Seconds(31));  // grpc-timeout is coarse.
  EXPECT_TRUE(absl::StartsWith(seen[0].user_agent, "client-test/1")) << seen[0].user_agent;
  EXPECT_EQ(seen[1].workspace, "staging");
  EXPECT_EQ(seen[1].cache_control, "no-cache");
  EXPECT_LE(seen[1].deadline_left, absl::Milliseconds(3200));
  EXPECT_GT(seen[1].deadline_left, absl::Seconds(1));
}

TEST_F(ClientFakeTest, NoWorkspaceMeansNoHeader) {
  sa::Client client(Options());
  ASSERT_TRUE(client.GetAudience(Get()).ok());
  EXPECT_EQ(fake_->seen().at(0).workspace, "");
}

TEST_F(ClientFakeTest, PagesAreWalkedUntilNextIsAbsent) {
  fake_->list_total = 7;
  sa::Client client(Options());
  v1::ListAudiencesRequest req;
  req.set_space_id("spa_1");
  req.mutable_pagination()->set_count(3);
  int pages = 0;
  std::vector<std::string> ids;
  absl::Status st = client.ForEachAudiencesPage(req, [&](const v1::ListAudiencesResponse& page) {
    ++pages;
    for (const auto& a : page.audiences()) ids.push_back(a.id());
    return true;
  });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ids, (std::vector<std::string>{"aud_0", "aud_1", "aud_2", "aud_3", "aud_4", "aud_5",
                                           "aud_6"}));
  auto all = client.ListAllAudiences(req);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 7u);
  EXPECT_EQ(fake_->list_calls.load(), 6);

  // Stopping early reads one page; no count means the default page size.
  pages = 0;
  ASSERT_TRUE(client
                  .ForEachAudiencesPage(req,
                                        [&](const v1::ListAudiencesResponse&) {
                                          ++pages;
                                          return false;
                                        })
                  .ok());
  EXPECT_EQ(pages, 1);
  req.clear_pagination();
  all = client.ListAllAudiences(req);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 7u);
  EXPECT_EQ(fake_->list_calls.load(), 8);  // One page of kDefaultPageSize.
}

TEST_F(ClientFakeTest, ResponseCacheHeaderIsReported) {
  fake_->list_total = 1;
  sa::Client client(Options());
  sa::CallInfo info;
  sa::CallOptions call;
  call.info = &info;
  v1::ListAudiencesRequest req;
  req.set_space_id("spa_1");
  ASSERT_TRUE(client.ListAudiences(req, call).ok());
  EXPECT_EQ(info.cache, "hit");
  EXPECT_EQ(info.attempts, 1);
}

TEST_F(ClientFakeTest, ErrorDetailsAreKeptAndReadable) {
  sa::Client client(Options());
  v1::CreateAudienceRequest req;
  req.set_space_id("spa_1");
  req.mutable_audience()->set_name("invalid");
  auto created = client.CreateAudience(req);
  ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  sa::ErrorDetails d = sa::GetErrorDetails(created.status());
  ASSERT_EQ(d.field_violations.size(), 1u);
  EXPECT_EQ(d.field_violations[0].field, "definition.query");
  EXPECT_EQ(d.field_violations[0].description, "is required");
  ASSERT_TRUE(d.retry_delay.has_value());
  EXPECT_EQ(*d.retry_delay, absl::Milliseconds(1500));
  ASSERT_EQ(d.quota_violations.size(), 1u);
  EXPECT_EQ(d.quota_violations[0].subject, "space:spa_1");
  const std::string text = sa::FormatError(created.status());
  EXPECT_EQ(text,
            "INVALID_ARGUMENT: Segment API answered HTTP 422: invalid audience\n"
            "  field definition.query: is required\n"
            "  retry after 1.5s\n"
            "  quota space:spa_1: 5 previews per minute\n");
  // Round trip to grpc::Status keeps the details.
  grpc::Status g = sa::ToGrpcStatus(created.status());
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(sa::GetErrorDetails(sa::FromGrpcStatus(g)).field_violations.size(), 1u);
}

TEST_F(ClientFakeTest, GenericCallByName) {
  fake_->get_unavailable_first = 1;
  sa::Client client(Options());
  v1::GetAudienceRequest req = Get("aud_9");
  v1::GetAudienceResponse resp;
  absl::Status st = client.Call("GetAudience", req, &resp);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(resp.audience().id(), "aud_9");
  EXPECT_EQ(fake_->get_calls.load(), 2);  // Retried: a read.
  v1::CreateAudienceResponse wrong;
  EXPECT_EQ(client.Call("GetAudience", req, &wrong).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client.Call("NoSuchRpc", req, &resp).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(sa::Client::IsRead("ListAudiences"));
  EXPECT_TRUE(sa::Client::IsRead("GetAudiencePreview"));
  EXPECT_FALSE(sa::Client::IsRead("CreateAudiencePreview"));
  EXPECT_FALSE(sa::Client::IsRead("ForceExecuteAudienceRun"));
  EXPECT_EQ(sa::Client::ServiceDescriptor()->method_count(), 14);
}

TEST(ClientAddressTest, EnvironmentGivesTheDefaultAddress) {
  ::setenv("AUDIENCES_GATEWAY_ADDR", "gateway.example:7000", 1);
  EXPECT_EQ(sa::DefaultAddress(), "gateway.example:7000");
  sa::Client client;
  EXPECT_EQ(client.address(), "gateway.example:7000");
  ::unsetenv("AUDIENCES_GATEWAY_ADDR");
  EXPECT_EQ(sa::DefaultAddress(), "localhost:50051");
}

// ---------------------------------------------------------------------------------------------
// TLS and mutual TLS against the fake gateway.
// ---------------------------------------------------------------------------------------------

class ClientTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto certs = MakeTestCerts();
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = new TestCerts(std::move(*certs));
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  static TestCerts* certs_;
};
TestCerts* ClientTlsTest::certs_ = nullptr;

TEST_F(ClientTlsTest, MutualTlsWithFilesAndServerNameOverride) {
  ASSERT_NE(certs_, nullptr);
  auto fake = FakeGateway::Start({certs_, /*require_client_cert=*/true});
  ASSERT_TRUE(fake.ok()) << fake.status();
  auto tls = sa::LoadTlsFiles(certs_->ca_file, certs_->client_cert_file, certs_->client_key_file);
  ASSERT_TRUE(tls.ok()) << tls.status();
  tls->server_name_override = "gateway.test";
  sa::ClientOptions o;
  o.address = (*fake)->address();
  o.tls = *tls;
  o.retry.max_attempts = 1;
  sa::Client client(o);
  v1::GetAudienceRequest req;
  req.set_space_id("spa_1");
  req.set_id("aud_tls");
  auto got = client.GetAudience(req);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->audience().id(), "aud_tls");

  // Without the client certificate the server refuses the handshake.
  sa::ClientOptions no_cert = o;
  no_cert.tls.client_cert_pem.clear();
  no_cert.tls.client_key_pem.clear();
  sa::Client refused(no_cert);
  EXPECT_EQ(refused.GetAudience(req).status().code(), absl::StatusCode::kUnavailable);
  // A plaintext client cannot talk to it either.
  sa::ClientOptions plain;
  plain.address = o.address;
  plain.retry.max_attempts = 1;
  plain.timeout = absl::Seconds(2);
  EXPECT_FALSE(sa::Client(plain).GetAudience(req).ok());
  EXPECT_EQ((*fake)->get_calls.load(), 1);
}

TEST_F(ClientTlsTest, ServerTlsNeedsTheRightNameAndRoots) {
  ASSERT_NE(certs_, nullptr);
  auto fake = FakeGateway::Start({certs_, /*require_client_cert=*/false});
  ASSERT_TRUE(fake.ok()) << fake.status();
  v1::GetAudienceRequest req;
  req.set_space_id("spa_1");
  req.set_id("aud_tls");
  sa::ClientOptions o;
  o.address = (*fake)->address();
  o.retry.max_attempts = 1;
  o.tls.root_certs_pem = certs_->ca;
  o.tls.server_name_override = "gateway.test";
  EXPECT_TRUE(sa::Client(o).GetAudience(req).ok());
  // The certificate names gateway.test, not 127.0.0.1.
  sa::ClientOptions wrong_name = o;
  wrong_name.tls.server_name_override.clear();
  EXPECT_EQ(sa::Client(wrong_name).GetAudience(req).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ((*fake)->get_calls.load(), 1);
}

TEST(ClientTlsFilesTest, BadFilesAreRefused) {
  EXPECT_EQ(sa::LoadTlsFiles("/nonexistent/ca.pem", "", "").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(sa::LoadTlsFiles("", "/tmp/cert.pem", "").status().code(),
            absl::StatusCode::kInvalidArgument);  // A certificate without its key.
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/not.pem", "hello");
  EXPECT_EQ(sa::LoadTlsFiles(dir + "/not.pem", "", "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Against audiences-gateway + segment-sim.
// ---------------------------------------------------------------------------------------------

class ClientStackTest : public ::testing::Test {
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
  void SetUp() override {
    ASSERT_NE(stack_, nullptr);
    sa::ClientOptions o;
    o.address = stack_->gateway_address();
    o.timeout = absl::Seconds(10);
    client_ = std::make_unique<sa::Client>(o);
  }
  // A space of its own for each test: listings hold exactly what the test created.
  // (Short: a preview id embeds its space id, and ids are at most 256 characters.)
  static std::string Space() {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    return absl::StrCat("spa_lib_", name.substr(0, 16), "_",
                        std::hash<std::string>()(name) % 100000);
  }
  v1::AudienceSummary Create(const std::string& space, const std::string& name,
                             v1::AudienceType type = v1::AUDIENCE_TYPE_USERS,
                             const std::string& query = "event('Purchased').count() >= 1") {
    v1::CreateAudienceRequest req;
    req.set_space_id(space);
    req.mutable_audience()->set_name(name);
    req.mutable_audience()->set_audience_type(type);
    req.mutable_audience()->mutable_definition()->set_query(query);
    if (type == v1::AUDIENCE_TYPE_LINKED) {
      req.mutable_audience()->mutable_definition()->set_target_entity("profile");
    }
    auto created = client_->CreateAudience(req);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->audience() : v1::AudienceSummary();
  }
  static Stack* stack_;
  std::unique_ptr<sa::Client> client_;
};
Stack* ClientStackTest::stack_ = nullptr;

TEST_F(ClientStackTest, EveryTypedCallOnALinkedAudienceStory) {
  const std::string space = Space();
  v1::AudienceSummary aud = Create(space, "Linked", v1::AUDIENCE_TYPE_LINKED);
  ASSERT_FALSE(aud.id().empty());

  v1::AddAudienceScheduleToAudienceRequest add;
  add.set_space_id(space);
  add.set_id(aud.id());
  add.mutable_schedule()->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
  add.mutable_schedule()->mutable_periodic()->set_interval("1h");
  auto added = client_->AddAudienceScheduleToAudience(add);
  ASSERT_TRUE(added.ok()) << added.status();
  const std::string sched = added->audience_schedule().id();

  v1::ListAudienceSchedulesFromSpaceAndAudienceRequest list_sched;
  list_sched.set_space_id(space);
  list_sched.set_id(aud.id());
  auto schedules = client_->ListAllAudienceSchedules(list_sched);
  ASSERT_TRUE(schedules.ok()) << schedules.status();
  ASSERT_EQ(schedules->size(), 1u);
  EXPECT_EQ((*schedules)[0].id(), sched);
  auto listed = client_->ListAudienceSchedulesFromSpaceAndAudience(list_sched);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->audience_schedules_size(), 1);

  v1::GetAudienceScheduleFromSpaceAndAudienceRequest get_sched;
  get_sched.set_space_id(space);
  get_sched.set_id(aud.id());
  get_sched.set_schedule_id(sched);
  auto got_sched = client_->GetAudienceScheduleFromSpaceAndAudience(get_sched);
  ASSERT_TRUE(got_sched.ok()) << got_sched.status();
  EXPECT_EQ(got_sched->audience_schedule().periodic().interval(), "1h");

  v1::UpdateAudienceScheduleForAudienceRequest upd_sched;
  upd_sched.set_space_id(space);
  upd_sched.set_id(aud.id());
  upd_sched.set_schedule_id(sched);
  upd_sched.mutable_schedule()->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
  upd_sched.mutable_schedule()->mutable_periodic()->set_interval("1d");
  auto upd = client_->UpdateAudienceScheduleForAudience(upd_sched);
  ASSERT_TRUE(upd.ok()) << upd.status();
  EXPECT_EQ(upd->audience_schedule().periodic().interval(), "1d");

  v1::UpdateAudienceForSpaceRequest upd_aud;
  upd_aud.set_space_id(space);
  upd_aud.set_id(aud.id());
  upd_aud.mutable_audience()->set_name("Linked, renamed");
  auto renamed = client_->UpdateAudienceForSpace(upd_aud);
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  EXPECT_EQ(renamed->audience().name(), "Linked, renamed");

  v1::GetAudienceRequest get;
  get.set_space_id(space);
  get.set_id(aud.id());
  get.set_include("schedules");
  auto got = client_->GetAudience(get);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->audience().name(), "Linked, renamed");
  EXPECT_EQ(got->audience().schedules_size(), 1);

  v1::ForceExecuteAudienceRunRequest run;
  run.set_space_id(space);
  run.set_audience_id(aud.id());
  auto ran = client_->ForceExecuteAudienceRun(run);
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_FALSE(ran->run().id().empty());

  v1::ListAudienceConsumersFromSpaceAndAudienceRequest consumers;
  consumers.set_space_id(space);
  consumers.set_id(aud.id());
  auto none = client_->ListAudienceConsumersFromSpaceAndAudience(consumers);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->audiences_size(), 0);

  v1::RemoveAudienceScheduleFromAudienceRequest rm_sched;
  rm_sched.set_space_id(space);
  rm_sched.set_id(aud.id());
  rm_sched.set_schedule_id(sched);
  auto rms = client_->RemoveAudienceScheduleFromAudience(rm_sched);
  ASSERT_TRUE(rms.ok()) << rms.status();
  EXPECT_EQ(rms->status(), v1::OPERATION_STATUS_SUCCESS);
  EXPECT_EQ(client_->GetAudienceScheduleFromSpaceAndAudience(get_sched).status().code(),
            absl::StatusCode::kNotFound);

  v1::RemoveAudienceFromSpaceRequest rm;
  rm.set_space_id(space);
  rm.set_id(aud.id());
  auto rma = client_->RemoveAudienceFromSpace(rm);
  ASSERT_TRUE(rma.ok()) << rma.status();
  EXPECT_EQ(rma->status(), v1::OPERATION_STATUS_SUCCESS);
  EXPECT_EQ(client_->GetAudience(get).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientStackTest, ListAllAudiencesFollowsEveryPage) {
  const std::string space = Space();
  std::set<std::string> created;
  for (int i = 0; i < 5; ++i) created.insert(Create(space, absl::StrCat("Paged ", i)).id());
  v1::ListAudiencesRequest req;
  req.set_space_id(space);
  req.mutable_pagination()->set_count(2);
  int pages = 0;
  ASSERT_TRUE(client_
                  ->ForEachAudiencesPage(req,
                                         [&](const v1::ListAudiencesResponse& page) {
                                           ++pages;
                                           EXPECT_LE(page.audiences_size(), 2);
                                           return true;
                                         })
                  .ok());
  EXPECT_EQ(pages, 3);
  auto all = client_->ListAllAudiences(req);
  ASSERT_TRUE(all.ok()) << all.status();
  std::set<std::string> ids;
  for (const auto& a : *all) ids.insert(a.id());
  EXPECT_EQ(ids, created);
  EXPECT_EQ(all->size(), 5u);
}

TEST_F(ClientStackTest, ListAllAudienceConsumersFollowsEveryPage) {
  const std::string space = Space();
  v1::AudienceSummary base = Create(space, "Base");
  std::set<std::string> consumers;
  for (int i = 0; i < 3; ++i) {
    consumers.insert(Create(space, absl::StrCat("Consumer ", i), v1::AUDIENCE_TYPE_USERS,
                            absl::StrCat("audience('", base.key(), "')"))
                         .id());
  }
  Create(space, "Unrelated");
  v1::ListAudienceConsumersFromSpaceAndAudienceRequest req;
  req.set_space_id(space);
  req.set_id(base.id());
  req.mutable_pagination()->set_count(2);
  auto all = client_->ListAllAudienceConsumers(req);
  ASSERT_TRUE(all.ok()) << all.status();
  std::set<std::string> ids;
  for (const auto& a : *all) ids.insert(a.id());
  EXPECT_EQ(ids, consumers);
}

TEST_F(ClientStackTest, WaitForAudiencePreviewPollsUntilDone) {
  const std::string space = Space();
  v1::CreateAudiencePreviewRequest req;
  req.set_space_id(space);
  req.mutable_preview()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  req.mutable_preview()->mutable_definition()->set_query("trait('vip') = true");
  auto created = client_->CreateAudiencePreview(req);
  ASSERT_TRUE(created.ok()) << created.status();
  v1::GetAudiencePreviewRequest get;
  get.set_space_id(space);
  get.set_id(created->audience_preview().id());
  sa::WaitOptions wait;
  wait.initial_interval = absl::Milliseconds(50);
  wait.timeout = absl::Seconds(20);
  int polls = 0;
  bool saw_running = false;
  wait.on_poll = [&](const v1::AudiencePreview& p, absl::Duration) {
    ++polls;
    saw_running = saw_running || p.status() == v1::AUDIENCE_PREVIEW_STATUS_RUNNING;
  };
  auto done = client_->WaitForAudiencePreview(get, wait);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status(), v1::AUDIENCE_PREVIEW_STATUS_COMPLETED);
  EXPECT_TRUE(saw_running);
  EXPECT_GE(polls, 2);

  // A definition the simulator fails: FAILED is an answer, not an error.
  req.mutable_preview()->mutable_definition()->set_query("this will fail");
  created = client_->CreateAudiencePreview(req);
  ASSERT_TRUE(created.ok()) << created.status();
  get.set_id(created->audience_preview().id());
  wait.on_poll = nullptr;
  done = client_->WaitForAudiencePreview(get, wait);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status(), v1::AUDIENCE_PREVIEW_STATUS_FAILED);
  EXPECT_FALSE(done->failure_reason().empty());

  // Waiting less than the preview takes: DEADLINE_EXCEEDED, on time.
  req.mutable_preview()->mutable_definition()->set_query("trait('vip') = true");
  created = client_->CreateAudiencePreview(req);
  ASSERT_TRUE(created.ok()) << created.status();
  get.set_id(created->audience_preview().id());
  wait.timeout = absl::Milliseconds(100);
  const absl::Time start = absl::Now();
  done = client_->WaitForAudiencePreview(get, wait);
  EXPECT_EQ(done.status().code(), absl::StatusCode::kDeadlineExceeded) << done.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(ClientStackTest, GatewayErrorsComeBackWithDetails) {
  v1::CreateAudienceRequest req;
  req.set_space_id(Space());
  req.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  auto created = client_->CreateAudience(req);
  ASSERT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument) << created.status();
  sa::ErrorDetails d = sa::GetErrorDetails(created.status());
  ASSERT_FALSE(d.field_violations.empty());
  EXPECT_NE(sa::FormatError(created.status()).find("  field "), std::string::npos);
}

// Counts the calls leaving a channel, per method.
class CountingInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit CountingInterceptor(std::atomic<int>* counter) : counter_(counter) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      ++*counter_;
    }
    methods->Proceed();
  }

 private:
  std::atomic<int>* counter_;
};

class CountingFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  CountingFactory(std::atomic<int>* gets, std::atomic<int>* creates)
      : gets_(gets), creates_(creates) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    const std::string method = info->method();
    if (absl::EndsWith(method, "/GetAudience")) return new CountingInterceptor(gets_);
    if (absl::EndsWith(method, "/CreateAudience")) return new CountingInterceptor(creates_);
    return nullptr;
  }

 private:
  std::atomic<int>* gets_;
  std::atomic<int>* creates_;
};

TEST(ClientUpstreamDownTest, GatewayUnavailableReadsAreRetriedWritesAreNot) {
  StackOptions o;
  o.start_sim = false;
  o.upstream_url = "http://127.0.0.1:1";  // Nothing listens there: the gateway says UNAVAILABLE.
  auto stack = Stack::Start(o);
  ASSERT_TRUE(stack.ok()) << stack.status();
  std::atomic<int> gets{0};
  std::atomic<int> creates{0};
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<CountingFactory>(&gets, &creates));
  sa::ClientOptions options;
  options.channel = grpc::experimental::CreateCustomChannelWithInterceptors(
      (*stack)->gateway_address(), grpc::InsecureChannelCredentials(), grpc::ChannelArguments(),
      std::move(factories));
  options.retry.initial_backoff = absl::Milliseconds(20);
  options.timeout = absl::Seconds(20);
  sa::Client client(options);
  sa::CallInfo info;
  sa::CallOptions call;
  call.info = &info;
  v1::GetAudienceRequest get;
  get.set_space_id("spa_down");
  get.set_id("aud_1");
  auto got = client.GetAudience(get, call);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_EQ(gets.load(), 4);  // The default policy: 4 attempts.
  EXPECT_EQ(info.attempts, 4);
  v1::CreateAudienceRequest create;
  create.set_space_id("spa_down");
  create.mutable_audience()->set_name("x");
  auto created = client.CreateAudience(create);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable) << created.status();
  EXPECT_EQ(creates.load(), 1);
}

}  // namespace
}  // namespace sag::testing
