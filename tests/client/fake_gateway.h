// An in-process AudiencesService for client tests: counts calls, records the metadata and
// deadline it sees, fails on demand (UNAVAILABLE n times, errors with google.rpc details), pages
// a synthetic listing, and serves plaintext, TLS or mutual TLS on a loopback port.
#ifndef SAG_TESTS_CLIENT_FAKE_GATEWAY_H_
#define SAG_TESTS_CLIENT_FAKE_GATEWAY_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"

namespace sag::testing {

// PEM files made with the openssl command: a CA, a server certificate for DNS name
// "gateway.test" and a client certificate, all signed by the CA.
struct TestCerts {
  std::string dir;
  std::string ca_file, server_cert_file, server_key_file, client_cert_file, client_key_file;
  std::string ca, server_cert, server_key, client_cert, client_key;  // Contents.
};
absl::StatusOr<TestCerts> MakeTestCerts();

struct FakeTls {
  const TestCerts* certs = nullptr;  // nullptr: plaintext.
  bool require_client_cert = false;
};

class FakeGateway final : public segment::audiences::v1::AudiencesService::Service {
 public:
  static absl::StatusOr<std::unique_ptr<FakeGateway>> Start(FakeTls tls = {});
  ~FakeGateway() override;

  std::string address() const { return address_; }

  // ---- Behaviour. ----
  std::atomic<int> get_unavailable_first{0};    // GetAudience: UNAVAILABLE for the first n calls.
  std::atomic<bool> create_unavailable{false};  // CreateAudience: always UNAVAILABLE.
  int list_total = 0;                           // ListAudiences: items in the synthetic listing.

  // ---- What was seen. ----
  std::atomic<int> get_calls{0};
  std::atomic<int> create_calls{0};
  std::atomic<int> list_calls{0};
  struct Seen {
    std::string workspace;        // x-segment-workspace ("" when absent).
    std::string cache_control;    // cache-control.
    std::string idempotency_key;  // idempotency-key ("" when absent).
    std::string user_agent;
    absl::Duration deadline_left;  // Deadline minus arrival time.
    absl::Time at;
  };
  std::vector<Seen> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

  // ---- The service. ----
  grpc::Status GetAudience(grpc::ServerContext* context,
                           const segment::audiences::v1::GetAudienceRequest* request,
                           segment::audiences::v1::GetAudienceResponse* response) override;
  grpc::Status CreateAudience(grpc::ServerContext* context,
                              const segment::audiences::v1::CreateAudienceRequest* request,
                              segment::audiences::v1::CreateAudienceResponse* response) override;
  grpc::Status ListAudiences(grpc::ServerContext* context,
                             const segment::audiences::v1::ListAudiencesRequest* request,
                             segment::audiences::v1::ListAudiencesResponse* response) override;

 private:
  void Record(grpc::ServerContext* context);

  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  absl::Mutex mu_;
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sag::testing

#endif  // SAG_TESTS_CLIENT_FAKE_GATEWAY_H_
