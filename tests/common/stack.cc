#include "tests/common/stack.h"

#include <signal.h>

#include <httplib.h>

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
  std::string token_file = s->dir_ + "/token";
  WriteFile(token_file, options.token + "\n");
  std::vector<std::string> argv = {SAG_GATEWAY_BIN, "--listen=127.0.0.1:0",
                                   "--upstream_url=" + upstream, "--token_file=" + token_file};
  for (auto& a : options.gateway_args) argv.push_back(a);
  auto gw = Subprocess::Start(argv);
  if (!gw.ok()) return gw.status();
  s->gateway_ = std::move(*gw);
  auto line = s->gateway_->WaitForLine("listening on", absl::Seconds(20));
  if (!line.ok()) return line.status();
  s->gateway_port_ = PortFromLine(*line);
  if (s->gateway_port_ == 0) return absl::InternalError("no port in: " + *line);
  s->channel_ = grpc::CreateChannel(s->gateway_address(), grpc::InsecureChannelCredentials());
  if (!s->channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    return absl::UnavailableError("gateway did not accept a connection");
  }
  s->stub_ = segment::audiences::v1::AudiencesService::NewStub(s->channel_);
  return s;
}

Stack::~Stack() {
  stub_.reset();
  channel_.reset();
  if (gateway_) (void)gateway_->Stop(SIGTERM, absl::Seconds(30));
  if (sim_) (void)sim_->Stop(SIGTERM, absl::Seconds(10));
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

nlohmann::json Stack::SimStats() { return GetJson(sim_port_, "/__sim/stats"); }
nlohmann::json Stack::SimRequests() { return GetJson(sim_port_, "/__sim/requests"); }
void Stack::SimReset() { GetJson(sim_port_, "/__sim/reset", true); }

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

}  // namespace sag::testing
