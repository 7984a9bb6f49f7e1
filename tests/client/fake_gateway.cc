#include "tests/client/fake_gateway.h"

#include <fstream>
#include <iterator>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/client/run_process.h"
#include "tests/common/subprocess.h"

namespace sag::testing {
namespace {

namespace v1 = segment::audiences::v1;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string Metadata(grpc::ServerContext* context, const char* key) {
  const auto& md = context->client_metadata();
  auto it = md.find(key);
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

}  // namespace

absl::StatusOr<TestCerts> MakeTestCerts() {
  TestCerts c;
  c.dir = MakeTempDir();
  auto path = [&c](const char* name) { return absl::StrCat(c.dir, "/", name); };
  c.ca_file = path("ca.pem");
  c.server_cert_file = path("server.pem");
  c.server_key_file = path("server.key");
  c.client_cert_file = path("client.pem");
  c.client_key_file = path("client.key");
  WriteFile(path("server.ext"), "subjectAltName=DNS:gateway.test\n");
  WriteFile(path("client.ext"), "extendedKeyUsage=clientAuth\n");
  const std::string openssl = "/usr/bin/openssl";
  const std::vector<std::vector<std::string>> steps = {
      {openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", path("ca.key"), "-out", c.ca_file, "-days", "2", "-subj",
       "/CN=audiences test CA"},
      {openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", c.server_key_file, "-out", path("server.csr"), "-subj", "/CN=gateway.test"},
      {openssl, "x509", "-req", "-in", path("server.csr"), "-CA", c.ca_file, "-CAkey",
       path("ca.key"), "-CAcreateserial", "-out", c.server_cert_file, "-days", "2", "-extfile",
       path("server.ext")},
      {openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", c.client_key_file, "-out", path("client.csr"), "-subj", "/CN=test client"},
      {openssl, "x509", "-req", "-in", path("client.csr"), "-CA", c.ca_file, "-CAkey",
       path("ca.key"), "-CAcreateserial", "-out", c.client_cert_file, "-days", "2", "-extfile",
       path("client.ext")},
  };
  for (const auto& step : steps) {
    ProcessResult r = RunProcess(step);
    if (r.exit_code != 0) {
      return absl::InternalError(absl::StrCat("openssl ", step[1], ": ", Describe(r)));
    }
  }
  c.ca = Slurp(c.ca_file);
  c.server_cert = Slurp(c.server_cert_file);
  c.server_key = Slurp(c.server_key_file);
  c.client_cert = Slurp(c.client_cert_file);
  c.client_key = Slurp(c.client_key_file);
  return c;
}

absl::StatusOr<std::unique_ptr<FakeGateway>> FakeGateway::Start(FakeTls tls) {
  std::unique_ptr<FakeGateway> fake(new FakeGateway());
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls.certs != nullptr) {
    grpc::SslServerCredentialsOptions options(
        tls.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    options.pem_root_certs = tls.certs->ca;
    options.pem_key_cert_pairs.push_back({tls.certs->server_key, tls.certs->server_cert});
    credentials = grpc::SslServerCredentials(options);
  }
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", credentials, &port);
  builder.RegisterService(fake.get());
  fake->server_ = builder.BuildAndStart();
  if (fake->server_ == nullptr || port == 0) {
    return absl::InternalError("the fake gateway did not start");
  }
  fake->address_ = absl::StrCat("127.0.0.1:", port);
  return fake;
}

FakeGateway::~FakeGateway() {
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
}

void FakeGateway::Record(grpc::ServerContext* context) {
  Seen s;
  s.at = absl::Now();
  s.workspace = Metadata(context, "x-segment-workspace");
  s.cache_control = Metadata(context, "cache-control");
  s.idempotency_key = Metadata(context, "idempotency-key");
  s.user_agent = Metadata(context, "user-agent");
  s.deadline_left = absl::FromChrono(context->deadline()) - s.at;
  absl::MutexLock lock(&mu_);
  seen_.push_back(s);
}

grpc::Status FakeGateway::GetAudience(grpc::ServerContext* context,
                                      const v1::GetAudienceRequest* request,
                                      v1::GetAudienceResponse* response) {
  Record(context);
  const int n = ++get_calls;
  if (n <= get_unavailable_first.load()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, absl::StrCat("attempt ", n, " refused"));
  }
  if (request->id() == "missing") {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "Segment API answered HTTP 404");
  }
  response->mutable_audience()->set_id(request->id());
  response->mutable_audience()->set_space_id(request->space_id());
  response->mutable_audience()->set_name(absl::StrCat("Audience ", request->id()));
  return grpc::Status::OK;
}

grpc::Status FakeGateway::CreateAudience(grpc::ServerContext* context,
                                         const v1::CreateAudienceRequest* request,
                                         v1::CreateAudienceResponse* response) {
  Record(context);
  ++create_calls;
  if (create_unavailable.load()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "upstream down");
  }
  if (request->audience().name() == "invalid") {
    google::rpc::Status details;
    details.set_code(static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    details.set_message("Segment API answered HTTP 422: invalid audience");
    google::rpc::BadRequest bad;
    auto* v = bad.add_field_violations();
    v->set_field("definition.query");
    v->set_description("is required");
    details.add_details()->PackFrom(bad);
    google::rpc::RetryInfo retry;
    retry.mutable_retry_delay()->set_seconds(1);
    retry.mutable_retry_delay()->set_nanos(500000000);
    details.add_details()->PackFrom(retry);
    google::rpc::QuotaFailure quota;
    auto* q = quota.add_violations();
    q->set_subject("space:spa_1");
    q->set_description("5 previews per minute");
    details.add_details()->PackFrom(quota);
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, details.message(),
                        details.SerializeAsString());
  }
  response->mutable_audience()->set_id("aud_new");
  response->mutable_audience()->set_name(request->audience().name());
  return grpc::Status::OK;
}

grpc::Status FakeGateway::ListAudiences(grpc::ServerContext* context,
                                        const v1::ListAudiencesRequest* request,
                                        v1::ListAudiencesResponse* response) {
  Record(context);
  ++list_calls;
  context->AddInitialMetadata("x-cache", "hit");
  int start = 0;
  if (request->pagination().has_cursor() &&
      !absl::SimpleAtoi(request->pagination().cursor(), &start)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad cursor");
  }
  const int count = request->pagination().count() > 0 ? request->pagination().count() : 10;
  for (int i = start; i < list_total && i < start + count; ++i) {
    auto* a = response->add_audiences();
    a->set_id(absl::StrCat("aud_", i));
    a->set_name(absl::StrCat("Audience ", i));
  }
  response->mutable_pagination()->set_current(absl::StrCat(start));
  if (start + count < list_total)
    response->mutable_pagination()->set_next(absl::StrCat(start + count));
  response->mutable_pagination()->set_total_entries(list_total);
  return grpc::Status::OK;
}

}  // namespace sag::testing
