// Callers that keep a lane of the gateway busy, for the tests and the benchmark of how callers
// share a rate-limit lane (service/README.md, "Callers: priority and weight").
//
// A Flood keeps, for each caller, `backlog` GetAudience calls in flight on one stub (a new call
// starts as soon as one finishes) until Stop(); each call presents the caller's x-api-key and a
// deadline (5 minutes unless the constructor is given another). Every finished call is recorded
// with its caller, start, end and status. Single probe calls (Probe) measure what an occasional
// caller waits meanwhile.
//
// Thread-safe: calls finish on gRPC's callback threads; Stop() waits (bounded) for the calls in
// flight to finish.
#ifndef SAG_TESTS_COMMON_FLOOD_H_
#define SAG_TESTS_COMMON_FLOOD_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"

namespace sag::testing {

// The callers of SharesConfig, each identified by its x-api-key.
struct FloodCaller {
  const char* name;
  const char* api_key;
};
inline constexpr FloodCaller kHeavy{"heavy", "heavy-key"};  // batch, weight 3
inline constexpr FloodCaller kLight{"light", "light-key"};  // batch, weight 1
inline constexpr FloodCaller kUi{"ui", "ui-key"};           // interactive, weight 1

// A --config file's text: the callers above (no access rules) and `extra` lines.
std::string SharesConfig(const std::string& extra = "");

struct FloodCall {
  std::string caller;
  absl::Time start;
  absl::Time end;
  grpc::StatusCode code;
};

class Flood {
 public:
  // Calls GetAudience(space, id) on `stub`, which must outlive the Flood; each flood call with
  // a deadline `deadline` after its start (Probe keeps its own, 1 minute).
  Flood(segment::audiences::v1::AudiencesService::Stub* stub, std::string space, std::string id,
        absl::Duration deadline = absl::Minutes(5));
  ~Flood();  // Stop()s.

  // Starts keeping `backlog` calls of `caller` in flight.
  void Start(const FloodCaller& caller, int backlog);
  // Stops every caller: no new call starts; waits up to `wait` for the calls in flight.
  // Returns false when some did not finish in time.
  bool Stop(absl::Duration wait = absl::Seconds(60));
  // One call of `caller` now, waited for; recorded like the others.
  FloodCall Probe(const FloodCaller& caller);

  // The calls finished so far.
  std::vector<FloodCall> Finished() const;
  // Of the OK calls that finished within [from, to), how many each caller had.
  std::map<std::string, int> OkBetween(absl::Time from, absl::Time to) const;
  // Waits (at most `timeout`) until `n` calls finished OK; false on timeout.
  bool WaitForOk(int n, absl::Duration timeout) const;
  // Of the OK calls number `first` to `last` - 1 (from 0, in the order they finished), how many
  // each caller had.
  std::map<std::string, int> OkInOrder(int first, int last) const;

 private:
  struct Pending;
  void Issue(const std::string& caller, const std::string& api_key);
  void Done(Pending* p, grpc::Status status);

  segment::audiences::v1::AudiencesService::Stub* const stub_;
  const std::string space_, id_;
  const absl::Duration deadline_;
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int ok_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<FloodCall> finished_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sag::testing

#endif  // SAG_TESTS_COMMON_FLOOD_H_
