#include "tests/common/stack.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace sag::testing {

absl::StatusOr<std::unique_ptr<Stack>> Stack::Start(StackOptions options) {
  std::unique_ptr<Stack> s(new Stack());
  s->dir_ = MakeTempDir();
  std::string upstream = options.upstream_url;
  if (options.start_sim) {
    std::vector<std::string> argv = {SAG_SIM_BIN, "--listen=127.0.0.1:0"};
    if (!options.sim_token.empty()) argv.push_back("--token=" + options.sim_token);
    for (auto& a : options.sim_args) argv.push_back(a);
    auto sim = Subprocess::Start(argv);
    if (!sim.ok()) return sim.status();
    s->sim_ = std::move(*sim);
    auto line = s->sim_->WaitForLine("listening on", absl::Seconds(20));
    if (!line.ok()) return line.status();
    s->sim_port_ = PortFromLine(*line);
    if (s->sim_port_ == 0) return absl::InternalError("no port in: " + *line);
    upstream = s->sim_url();
  }
  std::vector<std::string> argv = options.gateway_launcher;
  argv.push_back(options.gateway_bin.empty() ? SAG_GATEWAY_BIN : options.gateway_bin);
  argv.push_back("--listen=127.0.0.1:0");
  argv.push_back("--upstream_url=" + upstream);
  if (!options.token.empty()) {  // Else the gateway's flags or config name the tokens.
    std::string token_file = s->token_file();
    WriteFile(token_file, options.token + "\n");
    argv.push_back("--token_file=" + token_file);
  }
  if (options.metrics_listen.has_value()) {
    argv.push_back("--metrics_listen=" + *options.metrics_listen);
  }
  for (auto& a : options.gateway_args) argv.push_back(a);
  auto gw = Subprocess::Start(argv);
  if (!gw.ok()) return gw.status();
  s->gateway_ = std::move(*gw);
  auto line = s->gateway_->WaitForLine("listening on", absl::Seconds(20));
  if (!line.ok()) return line.status();
  s->gateway_port_ = PortFromLine(*line);
  if (s->gateway_port_ == 0) return absl::InternalError("no port in: " + *line);
  s->channel_ = grpc::CreateChannel(s->gateway_address(), grpc::InsecureChannelCredentials());
  if (options.tls_root.empty() &&
      !s->channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    return absl::UnavailableError("gateway did not accept a connection");
  }
  s->stub_ = segment::audiences::v1::AudiencesService::NewStub(s->channel_);
  return s;
}

namespace {
// Stops a child the test left running and fails the test unless it exits 0 without a sanitizer
// report: a leak (LeakSanitizer exits 23 at exit), a crash or a drain that hangs is a bug the test
// must show, not a line in its log. A child the test already stopped is the test's business.
// `may_hang`: the simulator's HTTP server waits for handlers sleeping an injected latency; it is
// killed after `timeout`, which is not a failure.
void StopExpectingACleanExit(Subprocess* child, const char* name, absl::Duration timeout,
                             bool may_hang) {
  if (child == nullptr || !child->Running()) return;
  const absl::StatusOr<int> code = child->Stop(SIGTERM, timeout);
  const std::string output = child->Output();
  const bool report = output.find("Sanitizer") != std::string::npos;
  if (!report && (code.ok() ? *code == 0 : may_hang)) return;
  // From the sanitizer's report when there is one (its first frames say where), else the end.
  const size_t error = output.find("==ERROR: ");
  const size_t tail = error != std::string::npos ? output.rfind('\n', error) + 1
                      : output.size() > 6000     ? output.size() - 6000
                                                 : 0;
  ADD_FAILURE() << name << " did not exit cleanly on SIGTERM ("
                << (code.ok() ? absl::StrCat("exit code ", *code) : code.status().ToString())
                << "); the end of its output:\n"
                << output.substr(tail);
}
}  // namespace

Stack::~Stack() {
  stub_.reset();
  channel_.reset();
  StopExpectingACleanExit(gateway_.get(), "audiences-gateway", absl::Seconds(30), false);
  StopExpectingACleanExit(sim_.get(), "segment-sim", absl::Seconds(10), true);
}

std::string Stack::gateway_address() const { return absl::StrCat("127.0.0.1:", gateway_port_); }
std::string Stack::sim_url() const { return absl::StrCat("http://127.0.0.1:", sim_port_); }

namespace {
nlohmann::json GetJson(int port, const std::string& path, bool post = false) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  auto res = post ? client.Post(path.c_str()) : client.Get(path.c_str());
  if (!res || res->status != 200) return nlohmann::json();
  return nlohmann::json::parse(res->body, nullptr, false);
}
}  // namespace

int Stack::metrics_port() {
  if (metrics_port_ >= 0) return metrics_port_;
  metrics_port_ = 0;
  auto line = gateway_->WaitForLine("\"msg\":\"started\"", absl::Seconds(10));
  if (!line.ok()) return 0;
  nlohmann::json started = nlohmann::json::parse(*line, nullptr, false);
  if (!started.is_object() || !started.contains("metrics") || !started["metrics"].is_string()) {
    return 0;
  }
  const std::string address = started["metrics"].get<std::string>();
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return 0;
  metrics_port_ = std::atoi(address.c_str() + colon + 1);
  return metrics_port_;
}

absl::StatusOr<std::string> Stack::ScrapeMetrics() {
  const int port = metrics_port();
  if (port <= 0) return absl::FailedPreconditionError("the gateway reported no metrics address");
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  auto res = client.Get("/metrics");
  if (!res) return absl::UnavailableError(absl::StrCat("GET /metrics on port ", port, " failed"));
  if (res->status != 200) {
    return absl::InternalError(absl::StrCat("GET /metrics answered HTTP ", res->status));
  }
  return res->body;
}

nlohmann::json Stack::SimStats() { return GetJson(sim_port_, "/__sim/stats"); }
nlohmann::json Stack::SimRequests() { return GetJson(sim_port_, "/__sim/requests"); }
void Stack::SimReset() { GetJson(sim_port_, "/__sim/reset", true); }

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

std::unique_ptr<Stack> StartOrDie(StackOptions options) {
  auto stack = Stack::Start(std::move(options));
  EXPECT_TRUE(stack.ok()) << stack.status();
  return stack.ok() ? std::move(*stack) : nullptr;
}

segment::audiences::v1::CreateAudienceRequest AudienceRequest(
    const std::string& space, const std::string& name, segment::audiences::v1::AudienceType type,
    const std::string& query) {
  segment::audiences::v1::CreateAudienceRequest req;
  req.set_space_id(space);
  req.mutable_audience()->set_name(name);
  req.mutable_audience()->set_audience_type(type);
  req.mutable_audience()->mutable_definition()->set_query(query);
  if (type == segment::audiences::v1::AUDIENCE_TYPE_LINKED) {
    req.mutable_audience()->mutable_definition()->set_target_entity("profile");
  }
  return req;
}

}  // namespace sag::testing
