// The listing cache end to end: a real segment-sim and a real audiences-gateway on loopback.
// Read-your-writes after every kind of write, x-cache values (hit, miss, bypass, stale), key
// separation, singleflight and the cache metrics. Upstream request counts come from the
// simulator's /__sim/stats, so every claim about "no upstream call" is checked at the source.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "tests/common/stack.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kOtherSpace[] = "spc_other_4kQ2";
constexpr char kListAudiences[] = "ListAudiences";
constexpr char kListSchedules[] = "ListAudienceSchedulesFromSpaceAndAudience";
constexpr char kListConsumers[] = "ListAudienceConsumersFromSpaceAndAudience";

// Limits high enough, on both sides, that the gateway's even pacing never delays a test.
// `list_audiences` replaces ListAudiences' limit.
std::string FastLimits(const std::string& list_audiences = "1000000/1s") {
  std::vector<std::string> parts = {"ListAudiences=" + list_audiences};
  for (const char* op :
       {"GetAudience", "CreateAudience", "UpdateAudienceForSpace", "RemoveAudienceFromSpace",
        "AddAudienceScheduleToAudience", "UpdateAudienceScheduleForAudience",
        "RemoveAudienceScheduleFromAudience", "ListAudienceSchedulesFromSpaceAndAudience",
        "ListAudienceConsumersFromSpaceAndAudience", "GetAudienceScheduleFromSpaceAndAudience",
        "ForceExecuteAudienceRun", "default"}) {
    parts.push_back(absl::StrCat(op, "=1000000/1s"));
  }
  return absl::StrJoin(parts, ",");
}

// A stack with fast limits and a metrics port of its own; `gateway_args` / `sim_args` add to it.
std::unique_ptr<Stack> StartCacheStack(std::vector<std::string> gateway_args = {},
                                       std::vector<std::string> sim_args = {}) {
  StackOptions o;
  o.sim_args = {"--rate_limits=" + FastLimits(), "--threads=96"};
  for (auto& a : sim_args) o.sim_args.push_back(a);
  o.gateway_args = {"--rate_limits=" + FastLimits(), "--metrics_listen=127.0.0.1:0"};
  for (auto& a : gateway_args) o.gateway_args.push_back(a);
  auto stack = Stack::Start(std::move(o));
  EXPECT_TRUE(stack.ok()) << stack.status();
  return stack.ok() ? std::move(*stack) : nullptr;
}

// A second gateway, without a cache, in front of the same simulator: writes through it are
// invisible to the first gateway's cache (as writes through another replica or Segment's UI).
std::unique_ptr<Stack> StartSideGateway(Stack& main) {
  StackOptions o;
  o.start_sim = false;
  o.upstream_url = main.sim_url();
  o.gateway_args = {"--rate_limits=" + FastLimits(), "--metrics_listen=127.0.0.1:0",
                    "--cache_max_bytes=0"};
  auto stack = Stack::Start(std::move(o));
  EXPECT_TRUE(stack.ok()) << stack.status();
  return stack.ok() ? std::move(*stack) : nullptr;
}

// Upstream requests the simulator received for `op` (-1 when the stats are unreadable).
int64_t Upstream(Stack& s, const char* op) {
  nlohmann::json stats = s.SimStats();
  if (!stats.is_object() || !stats.contains("by_operation") ||
      !stats["by_operation"].contains(op)) {
    return -1;
  }
  return stats["by_operation"][op].get<int64_t>();
}

template <typename Resp>
struct Answer {
  grpc::Status status;
  Resp resp;
  std::string cache;  // x-cache initial metadata ("" when absent).
};

std::string XCache(const grpc::ClientContext& ctx) {
  const auto& md = ctx.GetServerInitialMetadata();
  auto it = md.find("x-cache");
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

// One unary call; `invoke(ctx, resp)` makes it. `no_cache` sends cache-control: no-cache.
template <typename Resp, typename Invoke>
Answer<Resp> CallCached(Invoke invoke, bool no_cache, absl::Duration timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (no_cache) ctx.AddMetadata("cache-control", "no-cache");
  Answer<Resp> a;
  a.status = invoke(&ctx, &a.resp);
  a.cache = XCache(ctx);
  return a;
}

struct CallOptions {
  bool no_cache = false;
  absl::Duration timeout = absl::Seconds(10);
};

CallOptions NoCache() {
  CallOptions o;
  o.no_cache = true;
  return o;
}

CallOptions Within(absl::Duration timeout) {
  CallOptions o;
  o.timeout = timeout;
  return o;
}

Answer<v1::ListAudiencesResponse> List(Stack& s, const v1::ListAudiencesRequest& req,
                                       CallOptions o = {}) {
  return CallCached<v1::ListAudiencesResponse>(
      [&](grpc::ClientContext* c, v1::ListAudiencesResponse* r) {
        return s.stub().ListAudiences(c, req, r);
      },
      o.no_cache, o.timeout);
}

v1::ListAudiencesRequest ListReq(const std::string& space = kSpace) {
  v1::ListAudiencesRequest req;
  req.set_space_id(space);
  return req;
}

Answer<v1::ListAudienceSchedulesFromSpaceAndAudienceResponse> ListSchedules(
    Stack& s, const std::string& audience_id) {
  v1::ListAudienceSchedulesFromSpaceAndAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id(audience_id);
  return CallCached<v1::ListAudienceSchedulesFromSpaceAndAudienceResponse>(
      [&](grpc::ClientContext* c, v1::ListAudienceSchedulesFromSpaceAndAudienceResponse* r) {
        return s.stub().ListAudienceSchedulesFromSpaceAndAudience(c, req, r);
      },
      false, absl::Seconds(10));
}

Answer<v1::ListAudienceConsumersFromSpaceAndAudienceResponse> ListConsumers(
    Stack& s, const v1::ListAudienceConsumersFromSpaceAndAudienceRequest& req) {
  return CallCached<v1::ListAudienceConsumersFromSpaceAndAudienceResponse>(
      [&](grpc::ClientContext* c, v1::ListAudienceConsumersFromSpaceAndAudienceResponse* r) {
        return s.stub().ListAudienceConsumersFromSpaceAndAudience(c, req, r);
      },
      false, absl::Seconds(10));
}

v1::AudienceSummary CreateAudience(Stack& s, const std::string& name,
                                   v1::AudienceType type = v1::AUDIENCE_TYPE_USERS,
                                   const std::string& query = "event('Purchased').count() >= 1",
                                   const std::string& space = kSpace) {
  v1::CreateAudienceRequest req = AudienceRequest(space, name, type, query);
  v1::CreateAudienceResponse resp;
  grpc::Status st = s.stub().CreateAudience(Context().get(), req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.audience();
}

std::vector<std::string> Names(const v1::ListAudiencesResponse& r) {
  std::vector<std::string> names;
  for (const auto& a : r.audiences()) names.push_back(a.name());
  return names;
}

bool HasName(const v1::ListAudiencesResponse& r, const std::string& name) {
  auto names = Names(r);
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The value of the sample `name{labels...}` whose labels include every one of `labels`
// (e.g. {"rpc=\"ListAudiences\"", "result=\"hit\""}); -1 when there is none.
double MetricValue(const std::string& exposition, const std::string& name,
                   const std::vector<std::string>& labels) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (!absl::StartsWith(line, name)) continue;
    absl::string_view rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != '{' && rest[0] != ' ')) continue;  // A longer name.
    bool all = true;
    for (const std::string& l : labels) all = all && absl::StrContains(rest, l);
    if (!all) continue;
    size_t space = rest.rfind(' ');
    double v = 0;
    if (space != absl::string_view::npos && absl::SimpleAtod(rest.substr(space + 1), &v)) {
      return v;
    }
  }
  return -1;
}

// The gateway's /metrics text, on the port its JSON "started" log line names.
std::string ScrapeMetrics(Stack& s) {
  auto line = s.gateway().WaitForLine("\"msg\":\"started\"", absl::Seconds(10));
  if (!line.ok()) return "";
  nlohmann::json started = nlohmann::json::parse(*line, nullptr, false);
  if (!started.is_object() || !started.contains("metrics")) return "";
  std::string address = started["metrics"].get<std::string>();
  int port = 0;
  if (!absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port) || port == 0) return "";
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  auto res = client.Get("/metrics");
  return res && res->status == 200 ? res->body : "";
}

TEST(CacheTest, SecondListingIsAHitWithoutAnUpstreamCall) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  CreateAudience(s, "Alpha");
  const int64_t before = Upstream(s, kListAudiences);
  auto first = List(s, ListReq());
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.cache, "miss");
  EXPECT_EQ(Upstream(s, kListAudiences), before + 1);
  for (int i = 0; i < 5; ++i) {
    auto again = List(s, ListReq());
    ASSERT_TRUE(again.status.ok()) << again.status.error_message();
    EXPECT_EQ(again.cache, "hit");
    EXPECT_EQ(again.resp.SerializeAsString(), first.resp.SerializeAsString());
  }
  EXPECT_EQ(Upstream(s, kListAudiences), before + 1);
}

TEST(CacheReadYourWritesTest, EveryAudienceWriteIsSeenByTheNextListing) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  v1::AudienceSummary keep = CreateAudience(s, "Keeper");

  auto warm = [&](const char* step) {
    auto miss = List(s, ListReq());
    ASSERT_TRUE(miss.status.ok()) << step << ": " << miss.status.error_message();
    auto hit = List(s, ListReq());
    ASSERT_TRUE(hit.status.ok()) << step << ": " << hit.status.error_message();
    EXPECT_EQ(hit.cache, "hit") << step;
  };

  // CreateAudience.
  warm("before create");
  v1::AudienceSummary created = CreateAudience(s, "Fresh one");
  ASSERT_FALSE(created.id().empty());
  auto after_create = List(s, ListReq());
  ASSERT_TRUE(after_create.status.ok()) << after_create.status.error_message();
  EXPECT_EQ(after_create.cache, "miss");
  EXPECT_TRUE(HasName(after_create.resp, "Fresh one")) << after_create.resp.DebugString();

  // UpdateAudienceForSpace.
  warm("before update");
  v1::UpdateAudienceForSpaceRequest upd;
  upd.set_space_id(kSpace);
  upd.set_id(created.id());
  upd.mutable_audience()->set_name("Fresh one, renamed");
  v1::UpdateAudienceForSpaceResponse upd_resp;
  grpc::Status st = s.stub().UpdateAudienceForSpace(Context().get(), upd, &upd_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto after_update = List(s, ListReq());
  ASSERT_TRUE(after_update.status.ok()) << after_update.status.error_message();
  EXPECT_EQ(after_update.cache, "miss");
  EXPECT_TRUE(HasName(after_update.resp, "Fresh one, renamed")) << after_update.resp.DebugString();
  EXPECT_FALSE(HasName(after_update.resp, "Fresh one"));

  // RemoveAudienceFromSpace.
  warm("before remove");
  v1::RemoveAudienceFromSpaceRequest rm;
  rm.set_space_id(kSpace);
  rm.set_id(created.id());
  v1::RemoveAudienceFromSpaceResponse rm_resp;
  st = s.stub().RemoveAudienceFromSpace(Context().get(), rm, &rm_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto after_remove = List(s, ListReq());
  ASSERT_TRUE(after_remove.status.ok()) << after_remove.status.error_message();
  EXPECT_EQ(after_remove.cache, "miss");
  EXPECT_FALSE(HasName(after_remove.resp, "Fresh one, renamed")) << after_remove.resp.DebugString();
  EXPECT_TRUE(HasName(after_remove.resp, "Keeper"));
}

TEST(CacheReadYourWritesTest, WriteInOneSpaceKeepsTheOtherSpaceCached) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  ASSERT_TRUE(List(s, ListReq(kOtherSpace)).status.ok());
  ASSERT_TRUE(List(s, ListReq()).status.ok());
  CreateAudience(s, "Only in the first space");
  EXPECT_EQ(List(s, ListReq(kOtherSpace)).cache, "hit");
  EXPECT_EQ(List(s, ListReq()).cache, "miss");
}

TEST(CacheReadYourWritesTest, ScheduleWritesAreSeenInScheduleListingsAndIncludeSchedules) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  v1::AudienceSummary aud = CreateAudience(s, "Linked", v1::AUDIENCE_TYPE_LINKED);
  ASSERT_FALSE(aud.id().empty());
  v1::ListAudiencesRequest with_schedules = ListReq();
  with_schedules.set_include("schedules");

  // Both listings cached, with no schedule.
  auto warm = [&](const char* step) {
    auto sched = ListSchedules(s, aud.id());
    ASSERT_TRUE(sched.status.ok()) << step << ": " << sched.status.error_message();
    EXPECT_EQ(ListSchedules(s, aud.id()).cache, "hit") << step;
    auto inc = List(s, with_schedules);
    ASSERT_TRUE(inc.status.ok()) << step << ": " << inc.status.error_message();
    EXPECT_EQ(List(s, with_schedules).cache, "hit") << step;
  };
  // The embedded schedules of `aud` in an include=schedules listing.
  auto embedded = [&](const v1::ListAudiencesResponse& r) {
    for (const auto& a : r.audiences()) {
      if (a.id() == aud.id()) return a.schedules();
    }
    return google::protobuf::RepeatedPtrField<v1::AudienceSchedule>();
  };

  // Add.
  warm("before add");
  v1::AddAudienceScheduleToAudienceRequest add;
  add.set_space_id(kSpace);
  add.set_id(aud.id());
  add.mutable_schedule()->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
  add.mutable_schedule()->mutable_periodic()->set_interval("1h");
  v1::AddAudienceScheduleToAudienceResponse added;
  grpc::Status st = s.stub().AddAudienceScheduleToAudience(Context().get(), add, &added);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string sched_id = added.audience_schedule().id();
  ASSERT_FALSE(sched_id.empty());
  auto sched = ListSchedules(s, aud.id());
  ASSERT_TRUE(sched.status.ok()) << sched.status.error_message();
  EXPECT_EQ(sched.cache, "miss");
  ASSERT_EQ(sched.resp.audience_schedules_size(), 1) << sched.resp.DebugString();
  EXPECT_EQ(sched.resp.audience_schedules(0).id(), sched_id);
  auto inc = List(s, with_schedules);
  ASSERT_TRUE(inc.status.ok()) << inc.status.error_message();
  EXPECT_EQ(inc.cache, "miss");
  ASSERT_EQ(embedded(inc.resp).size(), 1) << inc.resp.DebugString();
  EXPECT_EQ(embedded(inc.resp)[0].id(), sched_id);

  // Update.
  warm("before update");
  v1::UpdateAudienceScheduleForAudienceRequest upd;
  upd.set_space_id(kSpace);
  upd.set_id(aud.id());
  upd.set_schedule_id(sched_id);
  upd.mutable_schedule()->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
  upd.mutable_schedule()->mutable_periodic()->set_interval("1d");
  v1::UpdateAudienceScheduleForAudienceResponse updated;
  st = s.stub().UpdateAudienceScheduleForAudience(Context().get(), upd, &updated);
  ASSERT_TRUE(st.ok()) << st.error_message();
  sched = ListSchedules(s, aud.id());
  ASSERT_TRUE(sched.status.ok()) << sched.status.error_message();
  EXPECT_EQ(sched.cache, "miss");
  ASSERT_EQ(sched.resp.audience_schedules_size(), 1);
  EXPECT_EQ(sched.resp.audience_schedules(0).periodic().interval(), "1d");
  inc = List(s, with_schedules);
  ASSERT_TRUE(inc.status.ok()) << inc.status.error_message();
  EXPECT_EQ(inc.cache, "miss");
  ASSERT_EQ(embedded(inc.resp).size(), 1) << inc.resp.DebugString();
  EXPECT_EQ(embedded(inc.resp)[0].periodic().interval(), "1d");

  // Remove.
  warm("before remove");
  v1::RemoveAudienceScheduleFromAudienceRequest rm;
  rm.set_space_id(kSpace);
  rm.set_id(aud.id());
  rm.set_schedule_id(sched_id);
  v1::RemoveAudienceScheduleFromAudienceResponse rm_resp;
  st = s.stub().RemoveAudienceScheduleFromAudience(Context().get(), rm, &rm_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  sched = ListSchedules(s, aud.id());
  ASSERT_TRUE(sched.status.ok()) << sched.status.error_message();
  EXPECT_EQ(sched.cache, "miss");
  EXPECT_EQ(sched.resp.audience_schedules_size(), 0) << sched.resp.DebugString();
  inc = List(s, with_schedules);
  ASSERT_TRUE(inc.status.ok()) << inc.status.error_message();
  EXPECT_EQ(inc.cache, "miss");
  EXPECT_EQ(embedded(inc.resp).size(), 0) << inc.resp.DebugString();
}

TEST(CacheReadYourWritesTest, ScheduleWriteKeepsOtherAudiencesScheduleListingsCached) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  v1::AudienceSummary a = CreateAudience(s, "Linked A", v1::AUDIENCE_TYPE_LINKED);
  v1::AudienceSummary b = CreateAudience(s, "Linked B", v1::AUDIENCE_TYPE_LINKED);
  ASSERT_TRUE(ListSchedules(s, a.id()).status.ok());
  ASSERT_TRUE(ListSchedules(s, b.id()).status.ok());
  v1::AddAudienceScheduleToAudienceRequest add;
  add.set_space_id(kSpace);
  add.set_id(a.id());
  add.mutable_schedule()->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
  add.mutable_schedule()->mutable_periodic()->set_interval("1h");
  v1::AddAudienceScheduleToAudienceResponse added;
  grpc::Status st = s.stub().AddAudienceScheduleToAudience(Context().get(), add, &added);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(ListSchedules(s, a.id()).cache, "miss");
  EXPECT_EQ(ListSchedules(s, b.id()).cache, "hit");
}

TEST(CacheReadYourWritesTest, AudienceWritesDropTheConsumerListingsOfTheSpace) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  v1::AudienceSummary base = CreateAudience(s, "Base");
  v1::AudienceSummary other = CreateAudience(s, "Other");
  ASSERT_FALSE(base.key().empty());
  v1::ListAudienceConsumersFromSpaceAndAudienceRequest req;
  req.set_space_id(kSpace);
  req.set_id(base.id());
  auto first = ListConsumers(s, req);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.resp.audiences_size(), 0);
  EXPECT_EQ(ListConsumers(s, req).cache, "hit");

  // A new audience referencing Base is one of its consumers.
  CreateAudience(s, "Consumer", v1::AUDIENCE_TYPE_USERS,
                 absl::StrCat("audience('", base.key(), "')"));
  auto after_create = ListConsumers(s, req);
  ASSERT_TRUE(after_create.status.ok()) << after_create.status.error_message();
  EXPECT_EQ(after_create.cache, "miss");
  ASSERT_EQ(after_create.resp.audiences_size(), 1) << after_create.resp.DebugString();
  EXPECT_EQ(after_create.resp.audiences(0).name(), "Consumer");

  // An update of another audience (not Base itself) that makes it reference Base.
  EXPECT_EQ(ListConsumers(s, req).cache, "hit");
  v1::UpdateAudienceForSpaceRequest upd;
  upd.set_space_id(kSpace);
  upd.set_id(other.id());
  upd.mutable_audience()->mutable_definition()->set_query(
      absl::StrCat("audience('", base.key(), "') and event('Viewed').count() >= 1"));
  v1::UpdateAudienceForSpaceResponse upd_resp;
  grpc::Status st = s.stub().UpdateAudienceForSpace(Context().get(), upd, &upd_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto after_update = ListConsumers(s, req);
  ASSERT_TRUE(after_update.status.ok()) << after_update.status.error_message();
  EXPECT_EQ(after_update.cache, "miss");
  EXPECT_EQ(after_update.resp.audiences_size(), 2) << after_update.resp.DebugString();
}

TEST(CacheBypassTest, NoCacheBypassesAndRefreshesTheEntry) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  auto side = StartSideGateway(s);
  ASSERT_NE(side, nullptr);
  CreateAudience(s, "First");
  auto miss = List(s, ListReq());
  ASSERT_TRUE(miss.status.ok()) << miss.status.error_message();
  ASSERT_EQ(miss.resp.audiences_size(), 1);

  // A write this gateway does not see (another replica, the Segment UI).
  CreateAudience(*side, "Written elsewhere");
  auto hit = List(s, ListReq());
  EXPECT_EQ(hit.cache, "hit");
  EXPECT_EQ(hit.resp.audiences_size(), 1) << "the entry is not expected to know";

  const int64_t before = Upstream(s, kListAudiences);
  auto bypass = List(s, ListReq(), NoCache());
  ASSERT_TRUE(bypass.status.ok()) << bypass.status.error_message();
  EXPECT_EQ(bypass.cache, "bypass");
  EXPECT_EQ(Upstream(s, kListAudiences), before + 1);
  EXPECT_TRUE(HasName(bypass.resp, "Written elsewhere")) << bypass.resp.DebugString();

  // The bypass refreshed the entry: a normal call is a hit with the new data.
  auto refreshed = List(s, ListReq());
  ASSERT_TRUE(refreshed.status.ok()) << refreshed.status.error_message();
  EXPECT_EQ(refreshed.cache, "hit");
  EXPECT_TRUE(HasName(refreshed.resp, "Written elsewhere")) << refreshed.resp.DebugString();
  EXPECT_EQ(Upstream(s, kListAudiences), before + 1);

  // A gateway without a cache marks every listing as a bypass.
  auto uncached = List(*side, ListReq());
  ASSERT_TRUE(uncached.status.ok()) << uncached.status.error_message();
  EXPECT_EQ(uncached.cache, "bypass");
  EXPECT_EQ(uncached.resp.audiences_size(), 2);
}

// Polls the listing until it is no longer a hit (bounded): the entry's ttl has passed.
Answer<v1::ListAudiencesResponse> ListUntilNotHit(Stack& s, absl::Duration bound) {
  const absl::Time give_up = absl::Now() + bound;
  Answer<v1::ListAudiencesResponse> a;
  while (true) {
    a = List(s, ListReq());
    if (!a.status.ok() || a.cache != "hit" || absl::Now() > give_up) return a;
    absl::SleepFor(absl::Milliseconds(100));
  }
}

TEST(CacheStaleTest, StaleIfErrorServesTheLastGoodListingWhenTheUpstreamIsDown) {
  auto stack = StartCacheStack(
      {"--cache_ttl=1s", "--cache_stale_while_revalidate=0s", "--cache_stale_if_error=5m"});
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  CreateAudience(s, "Survivor");
  auto good = List(s, ListReq());
  ASSERT_TRUE(good.status.ok()) << good.status.error_message();
  ASSERT_EQ(good.cache, "miss");
  ASSERT_TRUE(HasName(good.resp, "Survivor"));

  auto code = s.sim()->Stop(SIGTERM, absl::Seconds(10));
  ASSERT_TRUE(code.ok()) << code.status();

  auto stale = ListUntilNotHit(s, absl::Seconds(10));
  ASSERT_TRUE(stale.status.ok()) << stale.status.error_message();
  EXPECT_EQ(stale.cache, "stale");
  EXPECT_EQ(stale.resp.SerializeAsString(), good.resp.SerializeAsString());
  // Still stale on the next call (the failed refresh stored nothing).
  auto again = List(s, ListReq());
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.cache, "stale");
}

TEST(CacheStaleTest, StaleIfErrorAlsoCoversAShortCallerDeadline) {
  // The upstream is slow (but up): a caller whose deadline is shorter than the upstream call gets
  // the last good answer, marked stale, before its deadline.
  auto stack = StartCacheStack(
      {"--cache_ttl=1s", "--cache_stale_while_revalidate=0s", "--cache_stale_if_error=5m"},
      {"--latency=2s"});
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  auto good = List(s, ListReq());
  ASSERT_TRUE(good.status.ok()) << good.status.error_message();
  // Wait past the ttl: poll with a short deadline until the answer is no longer a hit.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  Answer<v1::ListAudiencesResponse> a;
  absl::Duration took;
  do {
    absl::SleepFor(absl::Milliseconds(100));
    absl::Time start = absl::Now();
    a = List(s, ListReq(), Within(absl::Milliseconds(600)));
    took = absl::Now() - start;
  } while (a.status.ok() && a.cache == "hit" && absl::Now() < give_up);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.cache, "stale");
  EXPECT_LT(took, absl::Milliseconds(600));
  EXPECT_EQ(a.resp.SerializeAsString(), good.resp.SerializeAsString());
}

TEST(CacheStaleTest, StaleWhenTheRateLimitWaitExceedsTheCallersDeadline) {
  // One ListAudiences a minute: after the ttl, the refresh waits ~1 min for its slot, longer than
  // the caller's deadline, which gets the last good answer instead.
  auto stack = StartCacheStack({"--rate_limits=" + FastLimits("1/1m"), "--cache_ttl=1s",
                                "--cache_stale_while_revalidate=0s"});
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  auto good = List(s, ListReq());
  ASSERT_TRUE(good.status.ok()) << good.status.error_message();
  ASSERT_EQ(good.cache, "miss");
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  Answer<v1::ListAudiencesResponse> a;
  absl::Duration took;
  do {
    absl::SleepFor(absl::Milliseconds(100));
    absl::Time start = absl::Now();
    a = List(s, ListReq(), Within(absl::Seconds(2)));
    took = absl::Now() - start;
  } while (a.status.ok() && a.cache == "hit" && absl::Now() < give_up);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.cache, "stale");
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_EQ(a.resp.SerializeAsString(), good.resp.SerializeAsString());
  EXPECT_EQ(Upstream(s, kListAudiences), 1);
}

TEST(CacheStaleTest, PastStaleIfErrorOrWithoutACacheTheErrorIsUnavailable) {
  // ttl 1s + stale_if_error 2s: from 3s on, the entry is useless.
  auto stack = StartCacheStack({"--cache_ttl=1s", "--cache_stale_while_revalidate=0s",
                                "--cache_stale_if_error=2s", "--upstream_max_attempts=1"});
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  auto uncached_stack = StartCacheStack({"--cache_max_bytes=0", "--upstream_max_attempts=1"});
  ASSERT_NE(uncached_stack, nullptr);
  Stack& u = *uncached_stack;

  const absl::Time listed = absl::Now();
  auto good = List(s, ListReq());
  ASSERT_TRUE(good.status.ok()) << good.status.error_message();
  auto good_uncached = List(u, ListReq());
  ASSERT_TRUE(good_uncached.status.ok()) << good_uncached.status.error_message();
  EXPECT_EQ(good_uncached.cache, "bypass");
  // SIGKILL: the upstream is gone at once (a graceful stop may take seconds, eating the window).
  ASSERT_TRUE(s.sim()->Stop(SIGKILL, absl::Seconds(10)).ok());
  ASSERT_TRUE(u.sim()->Stop(SIGKILL, absl::Seconds(10)).ok());

  auto down = List(u, ListReq());
  EXPECT_EQ(down.status.error_code(), grpc::StatusCode::UNAVAILABLE) << down.status.error_message();

  // Hit, then stale (1s..3s), then the error: poll (bounded) until the call fails.
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  std::vector<std::string> seen;
  Answer<v1::ListAudiencesResponse> a;
  while (true) {
    a = List(s, ListReq());
    if (!a.status.ok() || absl::Now() > give_up) break;
    if (seen.empty() || seen.back() != a.cache) seen.push_back(a.cache);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE) << a.status.error_message();
  EXPECT_GE(absl::Now() - listed, absl::Seconds(3));
  EXPECT_NE(std::find(seen.begin(), seen.end(), "stale"), seen.end())
      << "answers seen: " << absl::StrJoin(seen, ",");
}

TEST(CacheStaleTest, StaleWhileRevalidateAnswersAtOnceAndRefreshesOnceInTheBackground) {
  auto stack = StartCacheStack({"--cache_ttl=1s", "--cache_stale_while_revalidate=30s"});
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  auto side = StartSideGateway(s);
  ASSERT_NE(side, nullptr);
  auto good = List(s, ListReq());
  ASSERT_TRUE(good.status.ok()) << good.status.error_message();
  CreateAudience(*side, "Arrived meanwhile");
  const int64_t before = Upstream(s, kListAudiences);

  auto stale = ListUntilNotHit(s, absl::Seconds(10));
  ASSERT_TRUE(stale.status.ok()) << stale.status.error_message();
  EXPECT_EQ(stale.cache, "stale");
  EXPECT_FALSE(HasName(stale.resp, "Arrived meanwhile"));
  // More stale-window calls do not start more refreshes.
  for (int i = 0; i < 5; ++i) (void)List(s, ListReq());

  // The one refresh lands; then the listing is a hit with the new data.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  Answer<v1::ListAudiencesResponse> a;
  do {
    absl::SleepFor(absl::Milliseconds(50));
    a = List(s, ListReq());
  } while (!(a.cache == "hit" && HasName(a.resp, "Arrived meanwhile")) && absl::Now() < give_up);
  EXPECT_EQ(a.cache, "hit");
  EXPECT_TRUE(HasName(a.resp, "Arrived meanwhile")) << a.resp.DebugString();
  EXPECT_EQ(Upstream(s, kListAudiences), before + 1);
}

TEST(CacheKeysTest, EveryRequestParameterSeparatesEntries) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  for (const char* name : {"Alpha buyers", "Beta buyers", "Gamma churners"})
    CreateAudience(s, name);
  CreateAudience(s, "Elsewhere", v1::AUDIENCE_TYPE_USERS, "event('Purchased').count() >= 1",
                 kOtherSpace);

  std::vector<v1::ListAudiencesRequest> variants;
  variants.push_back(ListReq());
  variants.push_back(ListReq(kOtherSpace));
  {
    auto r = ListReq();
    r.mutable_pagination()->set_count(2);
    variants.push_back(r);
    r.mutable_pagination()->set_count(1);
    variants.push_back(r);
    r.mutable_pagination()->set_cursor("MQ==");  // Offset 1.
    variants.push_back(r);
    r.mutable_pagination()->set_cursor("Mg==");  // Offset 2.
    variants.push_back(r);
  }
  {
    auto r = ListReq();
    r.mutable_search()->set_type(v1::AUDIENCE_SEARCH_TYPE_NAME);
    r.mutable_search()->set_query("buyers");
    variants.push_back(r);
    r.mutable_search()->set_query("churners");
    variants.push_back(r);
    r.mutable_search()->set_type(v1::AUDIENCE_SEARCH_TYPE_KEY);
    r.mutable_search()->set_query("alpha");
    variants.push_back(r);
  }
  {
    auto r = ListReq();
    r.set_include("schedules");
    variants.push_back(r);
  }

  std::vector<std::string> answers;
  int64_t count = Upstream(s, kListAudiences);
  for (size_t i = 0; i < variants.size(); ++i) {
    auto a = List(s, variants[i]);
    ASSERT_TRUE(a.status.ok()) << i << ": " << a.status.error_message();
    EXPECT_EQ(a.cache, "miss") << "variant " << i << " was served another variant's entry: "
                               << variants[i].ShortDebugString();
    EXPECT_EQ(Upstream(s, kListAudiences), ++count) << i;
    answers.push_back(a.resp.SerializeAsString());
  }
  // Each one is cached under its own key, with its own answer.
  for (size_t i = 0; i < variants.size(); ++i) {
    auto a = List(s, variants[i]);
    ASSERT_TRUE(a.status.ok()) << i << ": " << a.status.error_message();
    EXPECT_EQ(a.cache, "hit") << variants[i].ShortDebugString();
    EXPECT_EQ(a.resp.SerializeAsString(), answers[i]) << variants[i].ShortDebugString();
  }
  EXPECT_EQ(Upstream(s, kListAudiences), count);

  // Consumer listings: sort and pagination are part of the key too.
  v1::AudienceSummary base = CreateAudience(s, "Base");
  v1::ListAudienceConsumersFromSpaceAndAudienceRequest c;
  c.set_space_id(kSpace);
  c.set_id(base.id());
  std::vector<v1::ListAudienceConsumersFromSpaceAndAudienceRequest> cvariants = {c};
  c.mutable_sort()->set_field(v1::AUDIENCE_CONSUMERS_SORT_FIELD_NAME);
  c.mutable_sort()->set_direction(v1::SORT_DIRECTION_ASC);
  cvariants.push_back(c);
  c.mutable_sort()->set_direction(v1::SORT_DIRECTION_DESC);
  cvariants.push_back(c);
  c.mutable_pagination()->set_count(5);
  cvariants.push_back(c);
  int64_t ccount = Upstream(s, kListConsumers);
  for (const auto& v : cvariants) {
    auto a = ListConsumers(s, v);
    ASSERT_TRUE(a.status.ok()) << a.status.error_message();
    EXPECT_EQ(a.cache, "miss") << v.ShortDebugString();
    EXPECT_EQ(Upstream(s, kListConsumers), ++ccount);
  }
  for (const auto& v : cvariants) EXPECT_EQ(ListConsumers(s, v).cache, "hit");
  EXPECT_EQ(Upstream(s, kListConsumers), ccount);
}

// One async ListAudiences call, for the concurrency tests.
struct AsyncList {
  grpc::ClientContext ctx;
  v1::ListAudiencesResponse resp;
  grpc::Status status;
  std::string cache;
};

TEST(CacheSingleflightTest, ConcurrentIdenticalColdListingsMakeOneUpstreamCall) {
  // The simulator answers after 1 s, so the 50 calls overlap the first one's upstream call.
  auto stack = StartCacheStack({}, {"--latency=1s"});
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  CreateAudience(s, "Shared");
  const int64_t before = Upstream(s, kListAudiences);
  constexpr int kCalls = 50;
  v1::ListAudiencesRequest req = ListReq();
  std::vector<std::unique_ptr<AsyncList>> calls(kCalls);
  absl::BlockingCounter done(kCalls);
  for (auto& c : calls) {
    c = std::make_unique<AsyncList>();
    c->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    AsyncList* raw = c.get();
    s.stub().async()->ListAudiences(&raw->ctx, &req, &raw->resp, [raw, &done](grpc::Status st) {
      raw->status = std::move(st);
      raw->cache = XCache(raw->ctx);
      done.DecrementCount();
    });
  }
  done.Wait();
  int misses = 0;
  for (auto& c : calls) {
    ASSERT_TRUE(c->status.ok()) << c->status.error_message();
    EXPECT_TRUE(HasName(c->resp, "Shared"));
    EXPECT_EQ(c->resp.SerializeAsString(), calls[0]->resp.SerializeAsString());
    if (c->cache == "miss") ++misses;
  }
  EXPECT_EQ(Upstream(s, kListAudiences), before + 1);
  // They overlapped (a miss that is not the first joined the one upstream call), so the single
  // upstream request is singleflight's doing, not only the cache's.
  EXPECT_GT(misses, 1);
}

TEST(CacheSingleflightTest, CallersThatLeaveDoNotFailTheSharedCall) {
  auto stack = StartCacheStack({}, {"--latency=1500ms"});
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  const int64_t before = Upstream(s, kListAudiences);
  v1::ListAudiencesRequest req = ListReq();
  constexpr int kCalls = 30;  // 10 patient, 10 with a short deadline, 10 cancelled.
  std::vector<std::unique_ptr<AsyncList>> calls(kCalls);
  absl::BlockingCounter done(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    calls[i] = std::make_unique<AsyncList>();
    AsyncList* raw = calls[i].get();
    raw->ctx.set_deadline(absl::ToChronoTime(
        absl::Now() + (i % 3 == 1 ? absl::Milliseconds(300) : absl::Seconds(20))));
    s.stub().async()->ListAudiences(&raw->ctx, &req, &raw->resp, [raw, &done](grpc::Status st) {
      raw->status = std::move(st);
      done.DecrementCount();
    });
  }
  absl::SleepFor(absl::Milliseconds(200));  // Let the calls reach the gateway before cancelling.
  for (int i = 2; i < kCalls; i += 3) calls[i]->ctx.TryCancel();
  done.Wait();
  for (int i = 0; i < kCalls; ++i) {
    const grpc::StatusCode code = calls[i]->status.error_code();
    if (i % 3 == 0) {
      EXPECT_EQ(code, grpc::StatusCode::OK) << i << ": " << calls[i]->status.error_message();
    } else if (i % 3 == 1) {
      EXPECT_EQ(code, grpc::StatusCode::DEADLINE_EXCEEDED) << i;
    } else {
      EXPECT_EQ(code, grpc::StatusCode::CANCELLED) << i;
    }
  }
  EXPECT_EQ(Upstream(s, kListAudiences), before + 1);
  // The shared answer was stored: the next call is a hit.
  EXPECT_EQ(List(s, ListReq()).cache, "hit");
  EXPECT_EQ(Upstream(s, kListAudiences), before + 1);
}

TEST(CacheMetricsTest, HitsMissesAndBypassesAreCounted) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  const std::string name = "audiences_gateway_cache_requests_total";
  const std::vector<std::string> hit = {"rpc=\"ListAudiences\"", "result=\"hit\""};
  const std::vector<std::string> miss = {"rpc=\"ListAudiences\"", "result=\"miss\""};
  const std::vector<std::string> bypass = {"rpc=\"ListAudiences\"", "result=\"bypass\""};
  std::string before = ScrapeMetrics(s);
  ASSERT_FALSE(before.empty()) << "no /metrics; gateway output:\n" << s.gateway().Output();
  // A counter not touched yet may be absent: count it as 0.
  auto value = [&](const std::string& text, const std::vector<std::string>& labels) {
    return std::max(0.0, MetricValue(text, name, labels));
  };

  ASSERT_EQ(List(s, ListReq()).cache, "miss");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(List(s, ListReq()).cache, "hit");
  ASSERT_EQ(List(s, ListReq(), NoCache()).cache, "bypass");

  std::string after = ScrapeMetrics(s);
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(value(after, hit) - value(before, hit), 3) << after;
  EXPECT_EQ(value(after, miss) - value(before, miss), 1) << after;
  EXPECT_EQ(value(after, bypass) - value(before, bypass), 1) << after;
  EXPECT_GE(MetricValue(after, "audiences_gateway_cache_entries", {}), 1) << after;
  EXPECT_GT(MetricValue(after, "audiences_gateway_cache_bytes", {}), 0) << after;
}

// The three listings are served as raw methods (a hit sends the stored bytes): a request that is
// not a valid message of the method's request type gets INVALID_ARGUMENT naming the type, and
// never reaches the upstream or the cache; a valid one still gets the typed answer.
TEST(CacheRawMethodTest, MalformedListingRequestsAreInvalidArgumentAndNeverSentUpstream) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  grpc::GenericStub generic(s.channel());
  auto raw_call = [&generic](const std::string& method, const std::string& bytes) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::Slice slice(bytes);
    grpc::ByteBuffer in(&slice, 1), out;
    absl::Notification done;
    grpc::Status status;
    generic.UnaryCall(&ctx, method, grpc::StubOptions(), &in, &out, [&](grpc::Status st) {
      status = std::move(st);
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  };
  const int64_t before = Upstream(s, kListAudiences);
  const std::vector<std::string> hostile = {
      std::string("\xff\xff\xff\xff", 4),          // A truncated varint key.
      std::string("\x0a\x80\x80\x80\x80\x10", 6),  // space_id claiming 4 GiB.
      std::string("\x0a\x05"
                  "ab",
                  4),                      // space_id cut short.
      std::string("\x0a\x02\xc3\x28", 4),  // space_id that is not UTF-8.
      std::string(1 << 20, '\x07'),        // 1 MiB of field-0 garbage.
  };
  for (const char* rpc : {"ListAudiences", "ListAudienceSchedulesFromSpaceAndAudience",
                          "ListAudienceConsumersFromSpaceAndAudience"}) {
    for (const std::string& bytes : hostile) {
      grpc::Status st =
          raw_call(absl::StrCat("/segment.audiences.v1.AudiencesService/", rpc), bytes);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << rpc << ": " << st.error_message();
      EXPECT_TRUE(absl::StrContains(st.error_message(), absl::StrCat(rpc, "Request")))
          << st.error_message();
    }
  }
  EXPECT_EQ(Upstream(s, kListAudiences), before);
  // The gateway still serves well-formed calls on the same connection.
  auto ok = List(s, ListReq());
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(Upstream(s, kListAudiences), before + 1);
}

// A caller that opens a listing call and cancels it before sending a message (as h2load does to
// the calls in flight when its time is up): gRPC then runs the raw method without a request
// message and also cancels it. The gateway must answer each such call once, and keep serving.
TEST(CacheRawMethodTest, ListingsCancelledBeforeTheirMessageLeaveTheGatewayServing) {
  auto stack = StartCacheStack();
  ASSERT_NE(stack, nullptr);
  Stack& s = *stack;
  grpc::GenericStub generic(s.channel());
  grpc::CompletionQueue cq;
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    auto call =
        generic.PrepareCall(&ctx, "/segment.audiences.v1.AudiencesService/ListAudiences", &cq);
    int tags = 0;
    void* tag = nullptr;
    bool ok = false;
    call->StartCall(&tags);
    ASSERT_TRUE(cq.Next(&tag, &ok));
    if (i % 2 == 1) {  // Half of them end their side first.
      call->WritesDone(&tags);
      ASSERT_TRUE(cq.Next(&tag, &ok));
    }
    ctx.TryCancel();
    grpc::Status status;
    call->Finish(&status, &tags);
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_FALSE(status.ok());
  }
  auto after = List(s, ListReq());
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_TRUE(s.gateway().Running());
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace
}  // namespace sag::testing
