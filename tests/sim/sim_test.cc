// Tests of segment-sim: the Simulator runs in-process on a free port and is driven over HTTP
// with httplib::Client, the way the gateway drives it.

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "faults.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "operations.h"
#include "rate_limits.h"
#include "simulator.h"
#include "validation.h"

namespace sim {
namespace {

using nlohmann::json;

constexpr char kToken[] = "test-token";
constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kV1[] = "application/vnd.segment.v1+json";
constexpr char kV1Beta[] = "application/vnd.segment.v1beta+json";
constexpr char kV1Alpha[] = "application/vnd.segment.v1alpha+json";

std::set<std::string> Keys(const json& object) {
  std::set<std::string> keys;
  for (auto it = object.begin(); it != object.end(); ++it) keys.insert(it.key());
  return keys;
}

std::vector<std::string> ErrorFields(const json& body) {
  std::vector<std::string> fields;
  for (const json& e : body.at("errors")) {
    EXPECT_EQ(e.at("type"), "validation") << e.dump();
    fields.push_back(e.value("field", std::string()));
  }
  return fields;
}

bool HasField(const json& body, const std::string& field) {
  for (const std::string& f : ErrorFields(body)) {
    if (f == field) return true;
  }
  return false;
}

// Sends raw bytes on a fresh connection and returns what the server answered (up to EOF or a
// 3 s receive timeout).
std::string RawExchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval timeout{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    size_t sent = 0;
    while (sent < request.size()) {
      const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    char buffer[4096];
    for (;;) {
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      response.append(buffer, static_cast<size_t>(n));
      // One response is enough: stop once the headers and the announced body arrived.
      const size_t header_end = response.find("\r\n\r\n");
      if (header_end == std::string::npos) continue;
      std::smatch m;
      const std::string headers = response.substr(0, header_end);
      if (std::regex_search(headers, m, std::regex("Content-Length: (\\d+)", std::regex::icase)) &&
          response.size() >= header_end + 4 + std::stoul(m[1])) {
        break;
      }
    }
  }
  close(fd);
  return response;
}

class SimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SimulatorOptions options;
    options.preview_duration = absl::Milliseconds(200);
    StartSim(std::move(options));
  }

  void StartSim(SimulatorOptions options) {
    if (sim_) sim_->Stop();
    options.host = "127.0.0.1";
    options.port = 0;
    sim_ = std::make_unique<Simulator>(std::move(options));
    absl::Status status = sim_->Start();
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_GT(sim_->port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", sim_->port());
    client_->set_url_encode(false);
    client_->set_read_timeout(10, 0);
  }

  static httplib::Headers Auth(const std::string& accept = "") {
    httplib::Headers h{{"Authorization", absl::StrCat("Bearer ", kToken)}};
    if (!accept.empty()) h.emplace("Accept", accept);
    return h;
  }

  static json Body(const httplib::Result& r) {
    return r ? json::parse(r->body, nullptr, false) : json();
  }

  httplib::Result Send(const std::string& method, const std::string& path,
                       const httplib::Headers& headers, const std::string& body = "",
                       const std::string& content_type = "") {
    httplib::Request req;
    req.method = method;
    req.path = path;
    req.headers = headers;
    if (!body.empty() || !content_type.empty()) {
      req.body = body;
      if (!content_type.empty()) req.set_header("Content-Type", content_type);
    }
    return client_->send(req);
  }

  std::string Audiences(const std::string& space = kSpace) {
    return absl::StrCat("/spaces/", space, "/audiences");
  }

  // Creates an audience and returns the AudienceSummary.
  json Create(const std::string& name, const std::string& type = "USERS",
              const std::string& query = "event('Purchased').count() >= 1",
              const std::string& space = kSpace) {
    json input = {{"name", name}, {"audienceType", type}, {"definition", {{"query", query}}}};
    auto r = client_->Post(Audiences(space), Auth(), input.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << r->body;
    return Body(r)["data"]["audience"];
  }

  json Stats() { return json::parse(client_->Get("/__sim/stats")->body); }

  std::unique_ptr<Simulator> sim_;
  std::unique_ptr<httplib::Client> client_;
};

// --- The 14 operations, happy paths --------------------------------------------------------

TEST_F(SimTest, AudienceCrudHappyPath) {
  json input = {{"name", "Profiles Audience V1"},
                {"description", "Test profiles audience v1 example"},
                {"enabled", true},
                {"audienceType", "USERS"},
                {"definition", {{"query", "event('Purchased').count() >= 1"}}},
                {"options", {{"includeHistoricalData", true}}}};
  auto created = client_->Post(Audiences(), Auth(), input.dump(), "application/json");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 200) << created->body;
  EXPECT_EQ(created->get_header_value("Content-Type"), kV1);
  const json audience = Body(created)["data"]["audience"];
  // Exactly the AudienceSummary fields.
  EXPECT_EQ(Keys(audience),
            (std::set<std::string>{"id", "spaceId", "name", "description", "key", "enabled",
                                   "definition", "status", "createdBy", "updatedBy", "createdAt",
                                   "updatedAt", "audienceType", "options"}));
  const std::string id = audience["id"];
  EXPECT_TRUE(std::regex_match(id, std::regex("aud_[0-9A-Za-z]{27}"))) << id;
  EXPECT_EQ(audience["spaceId"], kSpace);
  EXPECT_EQ(audience["key"], "profiles_audience_v1");
  EXPECT_EQ(audience["status"], "Computing");
  EXPECT_EQ(audience["options"], json({{"includeHistoricalData", true}}));
  EXPECT_TRUE(std::regex_match(audience["createdAt"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));

  auto got = client_->Get(Audiences() + "/" + id, Auth());
  ASSERT_TRUE(got);
  ASSERT_EQ(got->status, 200) << got->body;
  EXPECT_EQ(got->get_header_value("Content-Type"), kV1Beta);
  const json full = Body(got)["data"]["audience"];
  EXPECT_EQ(full["computeCadence"]["type"], "REALTIME");
  EXPECT_EQ(full["size"]["type"], "USERS");
  EXPECT_TRUE(full["size"]["count"].is_number_integer());
  EXPECT_EQ(full["options"]["filterByExternalIds"],
            json({"user_id", "email", "android.idfa", "ios.idfa"}));
  EXPECT_EQ(full["options"]["includeHistoricalData"], true);
  EXPECT_FALSE(full.contains("schedules"));

  auto listed = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->status, 200);
  const json list = Body(listed)["data"];
  ASSERT_EQ(list["audiences"].size(), 1u);
  EXPECT_EQ(list["audiences"][0]["id"], id);
  EXPECT_EQ(list["pagination"]["totalEntries"], 1);
  EXPECT_FALSE(list["pagination"].contains("next"));
  EXPECT_FALSE(list["pagination"].contains("previous"));

  absl::SleepFor(absl::Milliseconds(2));
  json update = {{"name", "Renamed"},
                 {"enabled", false},
                 {"definition", {{"query", "event('Purchased').count() >= 3"}}}};
  auto updated = client_->Patch(Audiences() + "/" + id, Auth(), update.dump(), "application/json");
  ASSERT_TRUE(updated);
  ASSERT_EQ(updated->status, 200) << updated->body;
  const json after = Body(updated)["data"]["audience"];
  EXPECT_EQ(after["name"], "Renamed");
  EXPECT_EQ(after["enabled"], false);
  EXPECT_EQ(after["definition"]["query"], "event('Purchased').count() >= 3");
  EXPECT_EQ(after["key"], "profiles_audience_v1");
  EXPECT_NE(after["updatedAt"], audience["updatedAt"]);
  EXPECT_FALSE(after.contains("computeCadence"));

  auto removed = client_->Delete(Audiences() + "/" + id, Auth());
  ASSERT_TRUE(removed);
  ASSERT_EQ(removed->status, 200);
  EXPECT_EQ(Body(removed), json({{"data", {{"status", "SUCCESS"}}}}));
  auto gone = client_->Get(Audiences() + "/" + id, Auth());
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 404);
  EXPECT_EQ(Body(gone)["errors"][0]["type"], "not-found");
}

TEST_F(SimTest, SchedulesAndRunsOnLinkedAudience) {
  const json linked = Create("Linked One", "LINKED", "entity('accounts').count() >= 1");
  const std::string base = Audiences() + "/" + linked["id"].get<std::string>();
  EXPECT_EQ(linked["definition"]["targetEntity"], "profile");

  json periodic = {{"strategy", "PERIODIC"}, {"config", {{"interval", "1h"}}}};
  auto added = client_->Post(base + "/schedules", Auth(), periodic.dump(), kV1Alpha);
  ASSERT_TRUE(added);
  ASSERT_EQ(added->status, 200) << added->body;
  EXPECT_EQ(added->get_header_value("Content-Type"), kV1Alpha);
  const json schedule = Body(added)["data"]["audienceSchedule"];
  const std::string sid = schedule["id"];
  EXPECT_TRUE(std::regex_match(sid, std::regex("sch_[0-9A-Za-z]{27}"))) << sid;
  EXPECT_EQ(schedule["strategy"], "PERIODIC");
  EXPECT_EQ(schedule["config"], json({{"interval", "1h"}}));
  EXPECT_TRUE(absl::EndsWith(schedule["nextExecution"].get<std::string>(), ":00:00.000Z"))
      << schedule.dump();

  auto got = client_->Get(base + "/schedules/" + sid, Auth());
  ASSERT_TRUE(got);
  ASSERT_EQ(got->status, 200);
  EXPECT_EQ(Body(got)["data"]["audienceSchedule"]["id"], sid);

  json days = {
      {"strategy", "SPECIFIC_DAYS"},
      {"config", {{"days", {1, 3, 5}}, {"hours", {9, 17}}, {"timezone", "America/New_York"}}}};
  auto updated = client_->Patch(base + "/schedules/" + sid, Auth(), days.dump(), kV1Alpha);
  ASSERT_TRUE(updated);
  ASSERT_EQ(updated->status, 200) << updated->body;
  EXPECT_EQ(Body(updated)["data"]["audienceSchedule"]["config"], days["config"]);

  auto listed = client_->Get(base + "/schedules", Auth());
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->status, 200);
  ASSERT_EQ(Body(listed)["data"]["audienceSchedules"].size(), 1u);
  EXPECT_EQ(Body(listed)["data"]["audienceSchedules"][0]["strategy"], "SPECIFIC_DAYS");

  // include=schedules embeds them; without it they are absent.
  auto with = client_->Get(base + "?include=schedules", Auth());
  ASSERT_TRUE(with);
  ASSERT_EQ(with->status, 200);
  const json full = Body(with)["data"]["audience"];
  ASSERT_EQ(full["schedules"].size(), 1u);
  EXPECT_EQ(full["schedules"][0]["id"], sid);
  EXPECT_EQ(full["computeCadence"]["type"], "BATCH");
  EXPECT_EQ(full["size"]["type"], "ENTITIES");
  auto list_with = client_->Get(Audiences() + "?include=schedules", Auth());
  ASSERT_TRUE(list_with);
  EXPECT_EQ(Body(list_with)["data"]["audiences"][0]["schedules"].size(), 1u);
  auto list_without = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(list_without);
  EXPECT_FALSE(Body(list_without)["data"]["audiences"][0].contains("schedules"));

  auto run = client_->Post(base + "/runs", Auth(), "", "");
  ASSERT_TRUE(run);
  ASSERT_EQ(run->status, 200) << run->body;
  EXPECT_FALSE(Body(run)["data"]["run"]["id"].get<std::string>().empty());

  auto removed = client_->Delete(base + "/schedules/" + sid, Auth());
  ASSERT_TRUE(removed);
  ASSERT_EQ(removed->status, 200);
  EXPECT_EQ(Body(removed)["data"]["status"], "SUCCESS");
  auto gone = client_->Get(base + "/schedules/" + sid, Auth());
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 404);
}

TEST_F(SimTest, SchedulesOnNonLinkedAudienceAre422) {
  const json users = Create("Users One");
  const std::string base = Audiences() + "/" + users["id"].get<std::string>();
  json periodic = {{"strategy", "PERIODIC"}, {"config", {{"interval", "1h"}}}};
  std::vector<httplib::Result> results;
  results.push_back(client_->Post(base + "/schedules", Auth(), periodic.dump(), kV1Alpha));
  results.push_back(client_->Get(base + "/schedules", Auth()));
  results.push_back(client_->Post(base + "/runs", Auth(), "", ""));
  for (const httplib::Result& r : results) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422) << r->body;
    EXPECT_EQ(ErrorFields(Body(r)), std::vector<std::string>{"audienceType"});
    EXPECT_TRUE(absl::StrContains(Body(r)["errors"][0]["message"].get<std::string>(), "Linked"));
  }
  // Unknown audience: 404 before the audience type matters.
  auto missing = client_->Get(Audiences() + "/aud_missing/schedules", Auth());
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(SimTest, ConsumersListAudiencesReferencingTheKey) {
  const json target = Create("High Value");
  ASSERT_EQ(target["key"], "high_value");
  Create("Uses A", "USERS", "audience('high_value') and event('x').count() > 1");
  Create("Uses B", "USERS", "audience('high_value')");
  Create("Unrelated", "USERS", "event('y').count() > 1");
  const std::string path =
      Audiences() + "/" + target["id"].get<std::string>() + "/audience-references";
  auto r = client_->Get(path + "?sort.field=NAME&sort.direction=DESC&pagination.count=1", Auth());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), kV1Alpha);
  const json data = Body(r)["data"];
  ASSERT_EQ(data["audiences"].size(), 1u);
  EXPECT_EQ(data["audiences"][0]["name"], "Uses B");
  EXPECT_FALSE(data["audiences"][0].contains("computeCadence"));  // AudienceSummary shape
  EXPECT_EQ(data["pagination"]["totalEntries"], 2);
  EXPECT_TRUE(data["pagination"].contains("next"));

  auto missing = client_->Get(Audiences() + "/aud_nope/audience-references", Auth());
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto bad =
      client_->Get(path + "?sort.field=SIZE&sort.direction=UP&pagination.count=1001", Auth());
  ASSERT_TRUE(bad);
  ASSERT_EQ(bad->status, 422);
  EXPECT_TRUE(HasField(Body(bad), "sort.field"));
  EXPECT_TRUE(HasField(Body(bad), "sort.direction"));
  EXPECT_TRUE(HasField(Body(bad), "pagination.count"));
}

TEST_F(SimTest, PreviewRunsThenCompletes) {
  json input = {
      {"definition",
       {{"query", "entity('owned-accounts').count() >= 1"}, {"targetEntity", "owned-accounts"}}},
      {"audienceType", "LINKED"},
      {"options", {{"filterByExternalIds", {"email", "user_id"}}}}};
  auto created = client_->Post(Audiences() + "/previews", Auth(), input.dump(), kV1Beta);
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 200) << created->body;
  EXPECT_EQ(created->get_header_value("Content-Type"), kV1Beta);
  const std::string id = Body(created)["data"]["audiencePreview"]["id"];
  ASSERT_FALSE(id.empty());
  // Preview ids must not be mistaken for audience ids by the router.
  const std::string path = Audiences() + "/previews/" + id;

  auto first = client_->Get(path, Auth());
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200) << first->body;
  json preview = Body(first)["data"]["audiencePreview"];
  EXPECT_EQ(preview["status"], "RUNNING");
  EXPECT_FALSE(preview.contains("results"));
  EXPECT_EQ(preview["options"]["filterByExternalIds"], json({"email", "user_id"}));

  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (preview["status"] == "RUNNING" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(25));
    auto again = client_->Get(path, Auth());
    ASSERT_TRUE(again);
    ASSERT_EQ(again->status, 200);
    preview = Body(again)["data"]["audiencePreview"];
  }
  ASSERT_EQ(preview["status"], "COMPLETED") << preview.dump();
  ASSERT_FALSE(preview["results"].empty());
  const json& result = preview["results"][0];
  EXPECT_EQ(result["relationshipSlug"], "owned-accounts");
  EXPECT_EQ(result["profilesTruncated"], false);
  EXPECT_TRUE(result["profiles"][0]["properties"].is_array());
  EXPECT_EQ(preview["size"]["type"], "ENTITIES");
  EXPECT_FALSE(preview.contains("failureReason"));

  // A definition with the word "fail" ends FAILED.
  json failing = {{"definition", {{"query", "event('x').count() > 1 and fail"}}},
                  {"audienceType", "ACCOUNTS"}};
  auto f = client_->Post(Audiences() + "/previews", Auth(), failing.dump(), kV1Alpha);
  ASSERT_TRUE(f);
  ASSERT_EQ(f->status, 200) << f->body;
  const std::string fid = Body(f)["data"]["audiencePreview"]["id"];
  json failed;
  const absl::Time deadline2 = absl::Now() + absl::Seconds(5);
  do {
    absl::SleepFor(absl::Milliseconds(25));
    auto r = client_->Get(Audiences() + "/previews/" + fid, Auth());
    ASSERT_TRUE(r);
    failed = Body(r)["data"]["audiencePreview"];
  } while (failed["status"] == "RUNNING" && absl::Now() < deadline2);
  EXPECT_EQ(failed["status"], "FAILED");
  EXPECT_TRUE(failed.contains("failureReason"));
  EXPECT_FALSE(failed.contains("results"));

  auto unknown = client_->Get(Audiences() + "/previews/nope", Auth());
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
}

// --- Errors ---------------------------------------------------------------------------------

TEST_F(SimTest, UnauthorizedDoesNotConsume) {
  SimulatorOptions options;
  options.token = kToken;
  StartSim(std::move(options));
  auto none = client_->Get(Audiences());
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(Body(none)["errors"][0]["type"], "unauthorized");
  EXPECT_FALSE(none->has_header("X-RateLimit-Remaining"));
  auto wrong = client_->Get(Audiences(), {{"Authorization", "Bearer other"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto basic = client_->Get(Audiences(), {{"Authorization", "Basic dGVzdA=="}});
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->status, 401);
  auto ok = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->get_header_value("X-RateLimit-Consumed"), "1");
  EXPECT_EQ(ok->get_header_value("X-RateLimit-Remaining"), "59");
}

// POST /__sim/token revokes the accepted token at once (no restart); reset restores the start one.
TEST_F(SimTest, TokenEndpointRevokesAndReplacesTheAcceptedToken) {
  SimulatorOptions options;
  options.token = kToken;
  StartSim(std::move(options));
  ASSERT_EQ(client_->Get(Audiences(), Auth())->status, 200);

  auto set = client_->Post("/__sim/token", R"({"token":"new-token"})", "application/json");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->status, 200);
  auto revoked = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->status, 401);
  EXPECT_EQ(Body(revoked)["errors"][0]["type"], "unauthorized");
  EXPECT_EQ(client_->Get(Audiences(), {{"Authorization", "Bearer new-token"}})->status, 200);

  // Malformed bodies change nothing.
  for (const char* bad : {"", "not json", "[]", R"({"token":5})", R"({"other":"x"})"}) {
    auto r = client_->Post("/__sim/token", bad, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad;
  }
  EXPECT_EQ(client_->Get(Audiences(), {{"Authorization", "Bearer new-token"}})->status, 200);

  ASSERT_EQ(client_->Post("/__sim/reset", "", "")->status, 200);
  EXPECT_EQ(client_->Get(Audiences(), Auth())->status, 200);
  EXPECT_EQ(client_->Get(Audiences(), {{"Authorization", "Bearer new-token"}})->status, 401);
}

TEST_F(SimTest, NotFoundForUnknownIds) {
  for (const std::string& path : {Audiences() + "/aud_0ujsszwN8NRY24YaXiTIE2VWDTS",
                                  Audiences() + "/a%2Fb",  // %2F stays inside the id
                                  Audiences() + "/previews"}) {
    auto r = client_->Get(path, Auth());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_EQ(Body(r)["errors"][0]["type"], "not-found");
    EXPECT_TRUE(r->has_header("X-RateLimit-Remaining"));  // it reached the endpoint
  }
  auto bad_space = client_->Get("/spaces/bad%20space/audiences", Auth());
  ASSERT_TRUE(bad_space);
  EXPECT_EQ(bad_space->status, 404);
  const json stats = Stats();
  EXPECT_EQ(stats["unrouted"], 0);
  EXPECT_EQ(stats["by_operation"]["GetAudience"], 3);
  auto log = json::parse(client_->Get("/__sim/requests")->body);
  EXPECT_EQ(log[1]["path_params"]["id"], "a/b");
  EXPECT_EQ(log[1]["path"], Audiences() + "/a%2Fb");
}

TEST_F(SimTest, ValidationNamesFields) {
  json bad = {{"name", ""},
              {"audienceType", "PEOPLE"},
              {"definition", {{"query", 42}}},
              {"colour", "red"},
              {"options", {{"backfillEventDataDays", 1.5}}}};
  auto r = client_->Post(Audiences(), Auth(), bad.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 422) << r->body;
  const json body = Body(r);
  EXPECT_TRUE(HasField(body, "name"));
  EXPECT_TRUE(HasField(body, "audienceType"));
  EXPECT_TRUE(HasField(body, "definition.query"));
  EXPECT_TRUE(HasField(body, "colour"));
  EXPECT_TRUE(HasField(body, "options.backfillEventDataDays"));
  EXPECT_EQ(body["errors"][0]["status"], 422);

  auto missing = client_->Post(Audiences(), Auth(), "{}", "application/json");
  ASSERT_TRUE(missing);
  ASSERT_EQ(missing->status, 422);
  EXPECT_TRUE(HasField(Body(missing), "name"));
  EXPECT_TRUE(HasField(Body(missing), "definition"));
  EXPECT_TRUE(HasField(Body(missing), "audienceType"));

  auto not_object = client_->Post(Audiences(), Auth(), "[1,2]", "application/json");
  ASSERT_TRUE(not_object);
  EXPECT_EQ(not_object->status, 422);
  auto nulls = client_->Post(
      Audiences(), Auth(),
      R"({"name":"x","audienceType":"USERS","definition":{"query":"q"},"description":null})",
      "application/json");
  ASSERT_TRUE(nulls);
  ASSERT_EQ(nulls->status, 422);
  EXPECT_TRUE(HasField(Body(nulls), "description"));

  // UpdateAudienceForSpaceInput.definition has no targetEntity.
  const json a = Create("Updatable");
  auto upd =
      client_->Patch(Audiences() + "/" + a["id"].get<std::string>(), Auth(),
                     R"({"definition":{"query":"q","targetEntity":"x"}})", "application/json");
  ASSERT_TRUE(upd);
  ASSERT_EQ(upd->status, 422) << upd->body;
  EXPECT_EQ(ErrorFields(Body(upd)), std::vector<std::string>{"definition.targetEntity"});

  // Schedules: config must match the strategy.
  const json linked = Create("Linked", "LINKED", "entity('a').count() > 1");
  const std::string schedules = Audiences() + "/" + linked["id"].get<std::string>() + "/schedules";
  auto mismatch = client_->Post(
      schedules, Auth(),
      R"({"strategy":"PERIODIC","config":{"days":[1],"hours":[2],"timezone":"UTC"}})", kV1Alpha);
  ASSERT_TRUE(mismatch);
  ASSERT_EQ(mismatch->status, 422);
  EXPECT_EQ(ErrorFields(Body(mismatch)), std::vector<std::string>{"config"});
  auto interval = client_->Post(schedules, Auth(),
                                R"({"strategy":"PERIODIC","config":{"interval":"5m"}})", kV1Alpha);
  ASSERT_TRUE(interval);
  ASSERT_EQ(interval->status, 422);
  EXPECT_EQ(ErrorFields(Body(interval)), std::vector<std::string>{"config.interval"});
  auto days = client_->Post(
      schedules, Auth(),
      R"({"strategy":"SPECIFIC_DAYS","config":{"days":[7],"hours":[],"timezone":"Mars/Base"}})",
      kV1Alpha);
  ASSERT_TRUE(days);
  ASSERT_EQ(days->status, 422);
  EXPECT_TRUE(HasField(Body(days), "config.days"));
  EXPECT_TRUE(HasField(Body(days), "config.hours"));

  // Query parameters.
  for (const auto& [query, field] : std::vector<std::pair<std::string, std::string>>{
           {"pagination.count=0", "pagination.count"},
           {"pagination.count=201", "pagination.count"},
           {"pagination.count=abc", "pagination.count"},
           {"pagination.count=2&pagination.cursor=%21%21", "pagination.cursor"},
           {"search.type=COLOR&search.query=x", "search.type"},
           {"search.type=NAME", "search.query"},
           {"include=everything", "include"},
           {"sort.field=NAME&sort.direction=ASC", "sort.field"},
           {"pagination%5Bcount%5D=3", "pagination[count]"}}) {
    auto q = client_->Get(Audiences() + "?" + query, Auth());
    ASSERT_TRUE(q);
    ASSERT_EQ(q->status, 422) << query;
    EXPECT_TRUE(HasField(Body(q), field)) << query << " -> " << q->body;
  }
  auto long_search =
      client_->Get(Audiences() + "?search.type=NAME&search.query=" + std::string(256, 'a'), Auth());
  ASSERT_TRUE(long_search);
  EXPECT_EQ(long_search->status, 422);
}

TEST_F(SimTest, MediaTypesAreNegotiated) {
  auto json_accept = client_->Get(Audiences(), Auth("application/json"));
  ASSERT_TRUE(json_accept);
  EXPECT_EQ(json_accept->status, 200);
  EXPECT_EQ(json_accept->get_header_value("Content-Type"), "application/json");
  auto any = client_->Get(Audiences(), Auth("*/*"));
  ASSERT_TRUE(any);
  EXPECT_EQ(any->get_header_value("Content-Type"), kV1Beta);
  auto alpha = client_->Get(Audiences(), Auth("application/vnd.segment.v1alpha+json;q=0.5"));
  ASSERT_TRUE(alpha);
  EXPECT_EQ(alpha->get_header_value("Content-Type"), kV1Alpha);
  auto html = client_->Get(Audiences(), Auth("text/html"));
  ASSERT_TRUE(html);
  EXPECT_EQ(html->status, 406);
  EXPECT_EQ(Body(html)["errors"][0]["type"], "not-acceptable");
  // GetAudience does not produce v1 (only v1beta, v1alpha, json).
  auto v1 = client_->Get(Audiences() + "/x", Auth(kV1));
  ASSERT_TRUE(v1);
  EXPECT_EQ(v1->status, 406);

  const std::string body = R"({"name":"n","audienceType":"USERS","definition":{"query":"q"}})";
  auto text = client_->Post(Audiences(), Auth(), body, "text/plain");
  ASSERT_TRUE(text);
  EXPECT_EQ(text->status, 415);
  EXPECT_EQ(Body(text)["errors"][0]["type"], "unsupported-media-type");
  auto charset = client_->Post(Audiences(), Auth(), body, "application/json; charset=utf-8");
  ASSERT_TRUE(charset);
  EXPECT_EQ(charset->status, 200) << charset->body;
  // CreateAudiencePreview takes only the v1beta/v1alpha types, not application/json.
  auto preview =
      client_->Post(Audiences() + "/previews", Auth(),
                    R"({"audienceType":"USERS","definition":{"query":"q"}})", "application/json");
  ASSERT_TRUE(preview);
  EXPECT_EQ(preview->status, 415);
}

// --- Rate limits ----------------------------------------------------------------------------

TEST_F(SimTest, RateLimitHeadersAnd429) {
  SimulatorOptions options;
  auto limits = RateLimitConfig::Parse("ListAudiences=2/1s");
  ASSERT_TRUE(limits.ok()) << limits.status();
  options.rate_limits = *limits;
  StartSim(std::move(options));

  const std::regex http_date(R"([A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT)");
  auto first = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200);
  EXPECT_EQ(first->get_header_value("X-RateLimit-Consumed"), "1");
  EXPECT_EQ(first->get_header_value("X-RateLimit-Remaining"), "1");
  const std::string reset = first->get_header_value("X-RateLimit-Reset");
  EXPECT_TRUE(std::regex_match(reset, http_date)) << reset;
  absl::Time reset_time;
  std::string err;
  ASSERT_TRUE(absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", reset, &reset_time, &err)) << err;
  EXPECT_GE(reset_time, absl::Now());  // rounded up: waiting until it is safe
  EXPECT_LE(reset_time, absl::Now() + absl::Seconds(2));

  auto second = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->get_header_value("X-RateLimit-Remaining"), "0");

  auto third = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(third);
  ASSERT_EQ(third->status, 429);
  EXPECT_EQ(third->get_header_value("X-RateLimit-Consumed"), "3");
  EXPECT_EQ(third->get_header_value("X-RateLimit-Remaining"), "0");
  const json body = Body(third);
  ASSERT_EQ(body["errors"].size(), 1u);
  const json& error = body["errors"][0];
  EXPECT_EQ(Keys(error), (std::set<std::string>{"type", "message", "data"}));
  EXPECT_EQ(error["type"], "RequestError");
  EXPECT_EQ(error["message"], "Too many requests");
  EXPECT_EQ(Keys(error["data"]),
            (std::set<std::string>{"remainingPoints", "msBeforeNext", "consumedPoints"}));
  EXPECT_EQ(error["data"]["remainingPoints"], 0);
  EXPECT_EQ(error["data"]["consumedPoints"], 3);
  EXPECT_TRUE(error["data"]["msBeforeNext"].is_number_integer());
  EXPECT_GT(error["data"]["msBeforeNext"].get<int64_t>(), 0);
  EXPECT_LE(error["data"]["msBeforeNext"].get<int64_t>(), 1000);

  // Other operations and other tokens have their own windows.
  auto other_op = client_->Get(Audiences() + "/x", Auth());
  ASSERT_TRUE(other_op);
  EXPECT_EQ(other_op->status, 404);
  auto other_token = client_->Get(Audiences(), {{"Authorization", "Bearer another"}});
  ASSERT_TRUE(other_token);
  EXPECT_EQ(other_token->status, 200);

  const json stats = Stats();
  EXPECT_EQ(stats["status_429"], 1);
  EXPECT_EQ(stats["by_status"]["429"], 1);
  EXPECT_EQ(stats["by_status"]["200"], 3);
  EXPECT_EQ(stats["by_operation"]["ListAudiences"], 4);

  // The window reopens after its second.
  int status = 429;
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  while (status == 429 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    auto again = client_->Get(Audiences(), Auth());
    ASSERT_TRUE(again);
    status = again->status;
  }
  EXPECT_EQ(status, 200);
}

TEST_F(SimTest, PreviewMonthlyQuota) {
  struct FakeClock {
    absl::Mutex mu;
    absl::Time now ABSL_GUARDED_BY(mu);
  };
  auto clock = std::make_shared<FakeClock>();
  {
    absl::MutexLock lock(&clock->mu);
    clock->now = absl::FromCivil(absl::CivilSecond(2026, 1, 31, 23, 59, 0), absl::UTCTimeZone());
  }
  SimulatorOptions options;
  options.preview_monthly_quota = 2;
  options.clock = [clock] {
    absl::MutexLock lock(&clock->mu);
    return clock->now;
  };
  StartSim(std::move(options));
  const std::string body = R"({"audienceType":"USERS","definition":{"query":"q"}})";
  for (int i = 0; i < 2; ++i) {
    auto r = client_->Post(Audiences() + "/previews", Auth(), body, kV1Beta);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  auto over = client_->Post(Audiences() + "/previews", Auth(), body, kV1Beta);
  ASSERT_TRUE(over);
  ASSERT_EQ(over->status, 429);
  const json error = Body(over)["errors"][0];
  EXPECT_EQ(error["type"], "RequestError");
  EXPECT_TRUE(absl::StrContains(error["message"].get<std::string>(), "monthly quota"));
  EXPECT_EQ(error["data"]["msBeforeNext"], 60000);  // 23:59 -> midnight, Feb 1st
  EXPECT_EQ(error["data"]["remainingPoints"], 0);
  // Another space has its own quota.
  auto other = client_->Post(Audiences("otherSpace") + "/previews", Auth(), body, kV1Beta);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  // Next month, the quota is back.
  {
    absl::MutexLock lock(&clock->mu);
    clock->now += absl::Minutes(2);
  }
  auto next_month = client_->Post(Audiences() + "/previews", Auth(), body, kV1Beta);
  ASSERT_TRUE(next_month);
  EXPECT_EQ(next_month->status, 200) << next_month->body;
}

TEST_F(SimTest, ConcurrentWritersKeepStateConsistent) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &failures] {
      httplib::Client client("127.0.0.1", sim_->port());
      // One token per thread: CreateAudience allows 50 per minute per token.
      const httplib::Headers auth{{"Authorization", absl::StrCat("Bearer writer-", t)}};
      for (int i = 0; i < kPerThread; ++i) {
        json input = {
            {"name", "Same Name"}, {"audienceType", "USERS"}, {"definition", {{"query", "q"}}}};
        auto r = client.Post(Audiences(), auth, input.dump(), "application/json");
        if (!r || r->status != 200) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto r = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(r);
  const json audiences = Body(r)["data"]["audiences"];
  ASSERT_EQ(audiences.size(), static_cast<size_t>(kThreads * kPerThread));
  std::set<std::string> ids;
  std::set<std::string> keys;
  for (const json& a : audiences) {
    ids.insert(a["id"].get<std::string>());
    keys.insert(a["key"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), audiences.size());
  EXPECT_EQ(keys.size(), audiences.size());  // keys made unique: same_name, same_name_2, ...
  EXPECT_EQ(keys.count("same_name_2"), 1u);
}

// --- Routing --------------------------------------------------------------------------------

TEST_F(SimTest, UnroutedRequestsAreCounted) {
  const std::vector<std::pair<std::string, std::string>> requests = {
      {"GET", "/spaces/S/audiences/a%2Fb/../x"},
      {"GET", "//spaces/S/audiences"},
      {"GET", "/spaces/S//audiences"},
      {"GET", "/spaces/S/audiences/"},
      {"GET", "/spaces/S/audiences/./x"},
      {"GET", "/spaces/S/audiences/%zz"},
      {"PUT", "/spaces/S/audiences"},
      {"DELETE", "/spaces/S/audiences"},
      {"POST", "/spaces/S/audiences/x"},
      {"GET", "/spaces/S/audiences/x/schedules/y/z"},
      {"GET", "/nope"},
      {"GET", "/__sim/nope"},
  };
  for (const auto& [method, path] : requests) {
    auto r = Send(method, path, Auth());
    ASSERT_TRUE(r) << method << " " << path;
    EXPECT_EQ(r->status, 404) << method << " " << path;
    EXPECT_EQ(Body(r)["errors"][0]["type"], "not-found") << r->body;
    EXPECT_FALSE(r->has_header("X-RateLimit-Remaining"));
  }
  const json stats = Stats();
  EXPECT_EQ(stats["unrouted"], static_cast<int>(requests.size()));
  EXPECT_EQ(stats["requests"], 0);
  auto log = json::parse(client_->Get("/__sim/requests")->body);
  ASSERT_EQ(log.size(), requests.size());
  EXPECT_TRUE(log[0]["operation"].is_null());
  EXPECT_EQ(log[0]["path"], "/spaces/S/audiences/a%2Fb/../x");
}

TEST_F(SimTest, RouterPrefersLiteralSegments) {
  auto route = MatchRoute("GET", "/spaces/S/audiences/previews/schedules");
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ(route->op->rpc, "GetAudiencePreview");
  EXPECT_EQ(route->params.at("id"), "schedules");
  route = MatchRoute("GET", "/spaces/S/audiences/previews");
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ(route->op->rpc, "GetAudience");
  route = MatchRoute("POST", "/spaces/S/audiences/previews");
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ(route->op->rpc, "CreateAudiencePreview");
  route = MatchRoute("POST", "/spaces/S/audiences/a%2F..%2Fb/runs");
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ(route->op->rpc, "ForceExecuteAudienceRun");
  EXPECT_EQ(route->params.at("audienceId"), "a/../b");
  EXPECT_FALSE(MatchRoute("GET", "/spaces/S/audiences/%2E%2E").has_value());
  EXPECT_EQ(AllOperations().size(), 14u);
}

// --- Pagination and search ------------------------------------------------------------------

TEST_F(SimTest, PaginationWalksPages) {
  for (int i = 1; i <= 5; ++i) Create(absl::StrCat("Audience ", i));
  auto page1 = client_->Get(Audiences() + "?pagination.count=2", Auth());
  ASSERT_TRUE(page1);
  ASSERT_EQ(page1->status, 200);
  const json p1 = Body(page1)["data"];
  ASSERT_EQ(p1["audiences"].size(), 2u);
  EXPECT_EQ(p1["audiences"][0]["name"], "Audience 1");
  EXPECT_EQ(p1["pagination"]["totalEntries"], 5);
  EXPECT_FALSE(p1["pagination"].contains("previous"));
  ASSERT_TRUE(p1["pagination"].contains("next"));

  auto page2 = client_->Get(Audiences() + "?pagination.count=2&pagination.cursor=" +
                                httplib::detail::encode_query_param(p1["pagination"]["next"]),
                            Auth());
  ASSERT_TRUE(page2);
  ASSERT_EQ(page2->status, 200) << page2->body;
  const json p2 = Body(page2)["data"];
  EXPECT_EQ(p2["audiences"][0]["name"], "Audience 3");
  ASSERT_TRUE(p2["pagination"].contains("previous"));
  ASSERT_TRUE(p2["pagination"].contains("next"));
  EXPECT_EQ(p2["pagination"]["current"], p1["pagination"]["next"]);

  auto page3 = client_->Get(Audiences() + "?pagination.count=2&pagination.cursor=" +
                                httplib::detail::encode_query_param(p2["pagination"]["next"]),
                            Auth());
  ASSERT_TRUE(page3);
  const json p3 = Body(page3)["data"];
  ASSERT_EQ(p3["audiences"].size(), 1u);
  EXPECT_EQ(p3["audiences"][0]["name"], "Audience 5");
  EXPECT_FALSE(p3["pagination"].contains("next"));

  auto back = client_->Get(Audiences() + "?pagination.count=2&pagination.cursor=" +
                               httplib::detail::encode_query_param(p3["pagination"]["previous"]),
                           Auth());
  ASSERT_TRUE(back);
  EXPECT_EQ(Body(back)["data"]["audiences"][0]["name"], "Audience 3");

  auto all = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(all);
  EXPECT_EQ(Body(all)["data"]["audiences"].size(), 5u);
  EXPECT_EQ(DecodeCursor("Mw=="), 3);
  EXPECT_EQ(EncodeCursor(3), "Mw==");
}

TEST_F(SimTest, SearchByNameKeyAndDefinition) {
  Create("Big Spenders", "USERS", "event('Order Completed').count() > 5");
  Create("big savers", "USERS", "event('Coupon Used').count() > 5");
  Create("Churn Risk", "ACCOUNTS", "event('Order Completed').count() = 0");
  auto count = [&](const std::string& query) -> size_t {
    auto r = client_->Get(Audiences() + "?" + query, Auth());
    EXPECT_TRUE(r);
    if (!r) return 0;
    EXPECT_EQ(r->status, 200) << query << " " << r->body;
    return Body(r)["data"]["audiences"].size();
  };
  EXPECT_EQ(count("search.type=NAME&search.query=BIG"), 2u);
  EXPECT_EQ(count("search.type=NAME&search.query=spend"), 1u);
  EXPECT_EQ(count("search.type=KEY&search.query=churn"), 1u);
  EXPECT_EQ(count("search.type=KEY&search.query=risk"), 0u);  // prefix only
  EXPECT_EQ(count("search.type=DEFINITION&search.query=order%20completed"), 2u);
  auto r =
      client_->Get(Audiences() + "?search.type=NAME&search.query=big&pagination.count=1", Auth());
  ASSERT_TRUE(r);
  EXPECT_EQ(Body(r)["data"]["pagination"]["totalEntries"], 2);
}

// --- Debug endpoints and hostile input ------------------------------------------------------

TEST_F(SimTest, DebugEndpoints) {
  Create("Logged");
  auto log = json::parse(client_->Get("/__sim/requests")->body);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["method"], "POST");
  EXPECT_EQ(log[0]["operation"], "CreateAudience");
  EXPECT_EQ(log[0]["headers"]["Authorization"], "Bearer ***");
  EXPECT_EQ(log[0]["path_params"]["spaceId"], kSpace);
  EXPECT_TRUE(absl::StrContains(log[0]["body"].get<std::string>(), "Logged"));
  EXPECT_EQ(log[0]["status"], 200);
  EXPECT_FALSE(absl::StrContains(log.dump(), kToken));

  json stats = Stats();
  EXPECT_EQ(stats["requests"], 1);
  EXPECT_EQ(stats["by_operation"]["CreateAudience"], 1);
  EXPECT_EQ(stats["by_operation"].size(), 14u);
  EXPECT_EQ(stats["by_status"]["200"], 1);

  auto reset = client_->Post("/__sim/reset", "", "");
  ASSERT_TRUE(reset);
  EXPECT_EQ(reset->status, 200);
  stats = Stats();
  EXPECT_EQ(stats["requests"], 0);
  EXPECT_TRUE(stats["by_status"].empty());
  EXPECT_TRUE(json::parse(client_->Get("/__sim/requests")->body).empty());
  auto listed = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(listed);
  EXPECT_TRUE(Body(listed)["data"]["audiences"].empty());
}

TEST_F(SimTest, HostileInputGetsClean4xx) {
  // Body over 1 MiB: 413.
  auto big =
      client_->Post(Audiences(), Auth(), std::string((1 << 20) + 10, 'x'), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  // Deep nesting, invalid JSON, invalid UTF-8, NUL bytes.
  for (const std::string& body :
       {std::string(100000, '['), std::string("{\"name\":"), std::string("{\"name\":\"\xff\"}"),
        std::string("{\"name\":\"a\0b\"}", 14), std::string("\x00\x01\x02", 3)}) {
    auto r = client_->Post(Audiences(), Auth(), body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 422) << r->body;
  }
  // Weird bytes in the path and query.
  for (const std::string& path :
       {Audiences() + "/%00%ff%fe", Audiences() + "?%zz=%", Audiences() + "?include=%ff",
        std::string("/spaces/%ff/audiences"), Audiences() + "/" + std::string(6000, 'a')}) {
    auto r = client_->Get(path, Auth());
    ASSERT_TRUE(r) << path;
    EXPECT_GE(r->status, 400) << path;
    EXPECT_LT(r->status, 500) << path;
    EXPECT_FALSE(Body(r).is_discarded()) << r->body;
  }
  // A POST without Content-Length is answered at once (no waiting for a body).
  const json linked = Create("Linked", "LINKED", "entity('a').count() > 1");
  const absl::Time start = absl::Now();
  const std::string response = RawExchange(
      sim_->port(), absl::StrCat("POST ", Audiences(), "/", linked["id"].get<std::string>(),
                                 "/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
                                 "Connection: close\r\n\r\n"));
  EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 200")) << response;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // Garbage request line.
  const std::string garbage = RawExchange(sim_->port(), "\x16\x03\x01 nonsense\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(garbage, "HTTP/1.1 4")) << garbage;
  // Still serving.
  auto ok = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(SimTest, LatencyDelaysAnswers) {
  SimulatorOptions options;
  options.latency = absl::Milliseconds(150);
  StartSim(std::move(options));
  const absl::Time start = absl::Now();
  auto r = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
  const absl::Time debug_start = absl::Now();
  client_->Get("/__sim/stats");
  EXPECT_LT(absl::Now() - debug_start, absl::Milliseconds(150));
}

// --- Fault injection ------------------------------------------------------------------------

SimulatorOptions WithFaults(FaultOptions faults) {
  SimulatorOptions options;
  options.faults = std::move(faults);
  return options;
}

TEST_F(SimTest, FaultsAreOffByDefaultAndCountedInStats) {
  Create("No faults");
  const json stats = Stats();
  EXPECT_EQ(stats["faults"],
            json({{"5xx", 0}, {"5xx_after", 0}, {"reset", 0}, {"malformed", 0}, {"latency", 0}}))
      << stats.dump();
  EXPECT_EQ(stats["by_status"]["200"], 1);
}

TEST_F(SimTest, Fault5xxAnswersBeforeExecuting) {
  FaultOptions faults;
  faults.error_5xx_rate = 1;
  faults.ops = {"CreateAudience"};
  StartSim(WithFaults(faults));
  const json input = {{"name", "Never made"},
                      {"audienceType", "USERS"},
                      {"definition", {{"query", "event('Purchased').count() >= 1"}}}};
  std::set<int> statuses;
  for (int i = 0; i < 6; ++i) {
    auto r = client_->Post(Audiences(), Auth(), input.dump(), "application/json");
    ASSERT_TRUE(r);
    statuses.insert(r->status);
    EXPECT_TRUE(r->status == 500 || r->status == 503) << r->status;
    const json body = Body(r);
    ASSERT_FALSE(body.is_discarded()) << r->body;
    EXPECT_EQ(body["errors"][0]["type"], "server");
    EXPECT_EQ(body["errors"][0]["status"], r->status);
    // Past the rate limit: the answer carries its headers.
    EXPECT_FALSE(r->get_header_value("X-RateLimit-Remaining").empty());
  }
  // Nothing was executed; operations outside --fault_ops are untouched.
  auto listed = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->status, 200);
  EXPECT_TRUE(Body(listed)["data"]["audiences"].empty());
  const json stats = Stats();
  EXPECT_EQ(stats["faults"]["5xx"], 6);
  EXPECT_EQ(stats["by_operation"]["CreateAudience"], 6);
  int64_t counted = 0;
  for (const char* code : {"500", "503"}) counted += stats["by_status"].value(code, 0);
  EXPECT_EQ(counted, 6);
  const json log = json::parse(client_->Get("/__sim/requests")->body);
  ASSERT_EQ(log.size(), 7u);
  EXPECT_EQ(log[0]["fault"], "5xx");
  EXPECT_FALSE(log[6].contains("fault"));
}

TEST_F(SimTest, Fault5xxRateIsAFraction) {
  FaultOptions faults;
  faults.error_5xx_rate = 0.3;
  faults.seed = 42;
  SimulatorOptions options = WithFaults(faults);
  auto limits = RateLimitConfig::Parse("GetAudience=100000/1s");
  ASSERT_TRUE(limits.ok()) << limits.status();
  options.rate_limits = *limits;
  StartSim(std::move(options));
  int failed = 0;
  constexpr int kRequests = 300;
  for (int i = 0; i < kRequests; ++i) {
    auto r = client_->Get(Audiences() + "/aud_missing", Auth());
    ASSERT_TRUE(r);
    if (r->status >= 500) {
      ++failed;
    } else {
      EXPECT_EQ(r->status, 404);
    }
  }
  EXPECT_GT(failed, kRequests * 0.3 - 40);
  EXPECT_LT(failed, kRequests * 0.3 + 40);
  EXPECT_EQ(Stats()["faults"]["5xx"], failed);
}

TEST_F(SimTest, Fault5xxAfterExecutesTheWriteThenAnswers500) {
  FaultOptions faults;
  faults.error_5xx_after_rate = 1;
  StartSim(WithFaults(faults));
  const json input = {{"name", "Made anyway"},
                      {"audienceType", "USERS"},
                      {"definition", {{"query", "event('Purchased').count() >= 1"}}}};
  auto r = client_->Post(Audiences(), Auth(), input.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(Body(r)["errors"][0]["type"], "server");
  // A refused write (422) executed nothing: no fault.
  auto invalid = client_->Post(Audiences(), Auth(), "{}", "application/json");
  ASSERT_TRUE(invalid);
  EXPECT_EQ(invalid->status, 422);
  // Reads are never hit by 5xx_after.
  auto listed = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->status, 200);
  ASSERT_EQ(Body(listed)["data"]["audiences"].size(), 1u);
  EXPECT_EQ(Body(listed)["data"]["audiences"][0]["name"], "Made anyway");
  const json stats = Stats();
  EXPECT_EQ(stats["faults"]["5xx_after"], 1);
  EXPECT_EQ(stats["faults"]["5xx"], 0);
}

TEST_F(SimTest, FaultResetAbortsTheAnswerBeforeExecuting) {
  FaultOptions faults;
  faults.reset_rate = 1;
  faults.ops = {"CreateAudience", "ListAudienceSchedulesFromSpaceAndAudience"};
  StartSim(WithFaults(faults));
  const std::string input = R"({"name":"Lost","audienceType":"USERS","definition":{"query":"q"}})";
  // The client sees a transport error.
  auto r = client_->Post(Audiences(), Auth(), input, "application/json");
  EXPECT_FALSE(r);
  // On the wire: a status line and a Content-Length the body never reaches, then EOF.
  const std::string raw = RawExchange(
      sim_->port(), absl::StrCat("POST ", Audiences(),
                                 " HTTP/1.1\r\nHost: x\r\nAuthorization: "
                                 "Bearer t\r\nContent-Type: application/json\r\nContent-Length: ",
                                 input.size(), "\r\n\r\n", input));
  ASSERT_TRUE(absl::StartsWith(raw, "HTTP/1.1 200")) << raw;
  const size_t header_end = raw.find("\r\n\r\n");
  ASSERT_NE(header_end, std::string::npos) << raw;
  std::smatch m;
  const std::string headers = raw.substr(0, header_end);
  ASSERT_TRUE(
      std::regex_search(headers, m, std::regex("Content-Length: (\\d+)", std::regex::icase)))
      << raw;
  EXPECT_LT(raw.size() - header_end - 4, std::stoul(m[1]));
  // Nothing was executed; other operations still work.
  auto listed = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->status, 200);
  EXPECT_TRUE(Body(listed)["data"]["audiences"].empty());
  const json stats = Stats();
  EXPECT_EQ(stats["faults"]["reset"], 2);
  EXPECT_EQ(stats["requests"], 3);
  EXPECT_EQ(stats["by_status"].value("200", 0), 1);  // aborted answers are not in by_status
  const json log = json::parse(client_->Get("/__sim/requests")->body);
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0]["fault"], "reset");
}

TEST_F(SimTest, FaultMalformedCutsSuccessfulBodies) {
  FaultOptions faults;
  faults.malformed_rate = 1;
  faults.ops = {"GetAudience", "ListAudiences"};
  StartSim(WithFaults(faults));
  const json created = Create("Garbled later");  // CreateAudience: not in --fault_ops
  ASSERT_TRUE(created.contains("id"));
  for (int i = 0; i < 20; ++i) {
    auto got = client_->Get(Audiences() + "/" + created["id"].get<std::string>(), Auth());
    ASSERT_TRUE(got);  // a complete transfer...
    EXPECT_EQ(got->status, 200);
    EXPECT_EQ(got->get_header_value("Content-Type"), kV1Beta);
    EXPECT_FALSE(got->body.empty());
    EXPECT_TRUE(Body(got).is_discarded()) << got->body;  // ...of a body that is not JSON
  }
  // Errors are left alone.
  auto missing = client_->Get(Audiences() + "/aud_missing", Auth());
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_FALSE(Body(missing).is_discarded());
  EXPECT_EQ(Stats()["faults"]["malformed"], 20);
}

TEST_F(SimTest, FaultLatencyDelaysOnlyTheChosenOperations) {
  FaultOptions faults;
  faults.latency = absl::Milliseconds(400);
  faults.ops = {"GetAudience"};
  faults.seed = 7;
  StartSim(WithFaults(faults));
  absl::Duration slowest;
  for (int i = 0; i < 8; ++i) {
    const absl::Time start = absl::Now();
    auto r = client_->Get(Audiences() + "/aud_missing", Auth());
    ASSERT_TRUE(r);
    slowest = std::max(slowest, absl::Now() - start);
  }
  EXPECT_GT(slowest, absl::Milliseconds(100));
  EXPECT_GE(Stats()["faults"]["latency"], 1);
  const absl::Time start = absl::Now();
  auto listed = client_->Get(Audiences(), Auth());
  ASSERT_TRUE(listed);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(300));
  client_->Post("/__sim/reset", "", "");
  EXPECT_EQ(Stats()["faults"]["latency"], 0);
}

TEST(FaultOptionsTest, ParsingAndValidation) {
  auto ops = ParseFaultOps(" GetAudience , CreateAudience");
  ASSERT_TRUE(ops.ok()) << ops.status();
  EXPECT_EQ(*ops, (std::set<std::string, std::less<>>{"CreateAudience", "GetAudience"}));
  ASSERT_TRUE(ParseFaultOps("").ok());
  EXPECT_TRUE(ParseFaultOps("")->empty());
  for (const char* bad : {"Nope", "GetAudience,,CreateAudience", "getAudience", ","}) {
    EXPECT_FALSE(ParseFaultOps(bad).ok()) << bad;
  }
  EXPECT_TRUE(absl::StrContains(ParseFaultOps("GetAudience,Nope").status().message(), "\"Nope\""));

  FaultOptions faults;
  EXPECT_TRUE(faults.Validate().ok());
  EXPECT_FALSE(faults.Any());
  faults.error_5xx_rate = 1.5;
  EXPECT_TRUE(absl::StrContains(faults.Validate().message(), "--fault_5xx_rate"));
  faults.error_5xx_rate = 0.2;
  faults.malformed_rate = -0.1;
  EXPECT_TRUE(absl::StrContains(faults.Validate().message(), "--fault_malformed_rate"));
  faults.malformed_rate = 0;
  faults.latency = absl::Seconds(-1);
  EXPECT_FALSE(faults.Validate().ok());
  faults.latency = absl::ZeroDuration();
  EXPECT_TRUE(faults.Validate().ok());
  EXPECT_TRUE(faults.Any());

  // A simulator with bad fault options does not start.
  SimulatorOptions options;
  options.port = 0;
  options.faults.reset_rate = 2;
  Simulator sim(options);
  EXPECT_FALSE(sim.Start().ok());
}

// --- Rate-limit flag syntax -----------------------------------------------------------------

TEST(RateLimitConfigTest, DefaultsAndOverrides) {
  const RateLimitConfig defaults = RateLimitConfig::Defaults();
  EXPECT_EQ(defaults.For("CreateAudience").points, 50);
  EXPECT_EQ(defaults.For("CreateAudiencePreview").points, 5);
  EXPECT_EQ(defaults.For("GetAudience").points, 100);
  EXPECT_EQ(defaults.For("GetAudiencePreview").points, 300);
  EXPECT_EQ(defaults.For("ListAudienceConsumersFromSpaceAndAudience").points, 25);
  EXPECT_EQ(defaults.For("ListAudiences").points, 60);
  EXPECT_EQ(defaults.For("ForceExecuteAudienceRun").points, 60);
  EXPECT_EQ(defaults.For("ListAudiences").window, absl::Minutes(1));

  auto parsed = RateLimitConfig::Parse(" ListAudiences=2/1s , default=10/500ms");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->For("ListAudiences").points, 2);
  EXPECT_EQ(parsed->For("ListAudiences").window, absl::Seconds(1));
  EXPECT_EQ(parsed->For("ForceExecuteAudienceRun").points, 10);
  EXPECT_EQ(parsed->For("ForceExecuteAudienceRun").window, absl::Milliseconds(500));
  EXPECT_EQ(parsed->For("GetAudience").points, 100);  // documented entries stay

  for (const char* bad :
       {"ListAudiences", "ListAudiences=2", "ListAudiences=x/1s", "ListAudiences=0/1s",
        "ListAudiences=2/1parsec", "ListAudiences=2/0s", "Nope=1/1s", "list_audiences=1/1s",
        "ListAudiences=1/1s,,GetAudience=1/1s", "ListAudiences=1/1s,ListAudiences=2/1s"}) {
    auto status = RateLimitConfig::Parse(bad).status();
    EXPECT_FALSE(status.ok()) << bad;
    EXPECT_TRUE(absl::StrContains(status.message(), "bad entry")) << status;
  }
  auto unknown = RateLimitConfig::Parse("ListAudiences=1/1s,Nope=1/1s").status();
  EXPECT_TRUE(absl::StrContains(unknown.message(), "\"Nope=1/1s\"")) << unknown;
}

TEST(RateLimiterTest, FixedWindows) {
  FixedWindowLimiter limiter;
  const Limit limit{2, absl::Seconds(10)};
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(limiter.Consume("k", limit, t0).allowed);
  EXPECT_TRUE(limiter.Consume("k", limit, t0 + absl::Seconds(1)).allowed);
  const RateDecision refused = limiter.Consume("k", limit, t0 + absl::Seconds(2));
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.consumed, 3);
  EXPECT_EQ(refused.reset, t0 + absl::Seconds(10));
  EXPECT_TRUE(limiter.Consume("other", limit, t0 + absl::Seconds(2)).allowed);
  const RateDecision reopened = limiter.Consume("k", limit, t0 + absl::Seconds(10));
  EXPECT_TRUE(reopened.allowed);
  EXPECT_EQ(reopened.consumed, 1);
  EXPECT_EQ(FormatHttpDateCeil(absl::FromUnixMillis(1795867200001)),
            "Sat, 28 Nov 2026 12:00:01 GMT");
}

}  // namespace
}  // namespace sim
