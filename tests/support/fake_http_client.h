// FakeHttpClient: an upstream::HttpClient for in-process tests. Send() only records the request;
// the test answers it (Respond, Fail) on its own thread, in the order it chooses, and can wait
// (bounded, on a condition) for requests sent from other threads. Cancel() of a request in
// flight answers it with CANCELLED on the cancelling thread, as the curl client does.
#ifndef SAG_TESTS_SUPPORT_FAKE_HTTP_CLIENT_H_
#define SAG_TESTS_SUPPORT_FAKE_HTTP_CLIENT_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/upstream/http.h"

namespace sag::testing {

class FakeHttpClient final : public upstream::HttpClient {
 public:
  uint64_t Send(upstream::HttpRequest request, Callback done) override;
  void Cancel(uint64_t handle) override;

  // Answers the oldest request in flight with an HTTP response; false when none is in flight.
  bool Respond(long status, std::string body = "{}", upstream::Headers headers = {});
  // Answers the oldest request in flight with a transport error; false when none is in flight.
  bool Fail(absl::Status transport_error);

  // Waits until `n` requests have been sent in all (real time, at most `timeout`).
  bool WaitForSent(size_t n, absl::Duration timeout = absl::Seconds(10));
  // Waits until `n` requests in flight have been cancelled in all (real time, at most `timeout`).
  bool WaitForCancels(size_t n, absl::Duration timeout = absl::Seconds(10));
  size_t SentCount() const;
  size_t InFlight() const;
  size_t CancelCount() const;
  // The i-th request sent (0-based); the request as given to Send().
  upstream::HttpRequest Request(size_t i) const;

 private:
  struct Pending {
    uint64_t id;
    Callback done;
  };
  // Removes and returns the oldest request in flight; false when none.
  bool PopOldest(Callback* done);

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<upstream::HttpRequest> sent_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> in_flight_ ABSL_GUARDED_BY(mu_);
  size_t cancels_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sag::testing

#endif  // SAG_TESTS_SUPPORT_FAKE_HTTP_CLIENT_H_
