#include "tests/support/fake_http_client.h"

#include <utility>

namespace sag::testing {

uint64_t FakeHttpClient::Send(upstream::HttpRequest request, Callback done) {
  absl::MutexLock lock(&mu_);
  uint64_t id = next_id_++;
  sent_.push_back(std::move(request));
  in_flight_.push_back(Pending{id, std::move(done)});
  return id;
}

void FakeHttpClient::Cancel(uint64_t handle) {
  Callback done;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = in_flight_.begin(); it != in_flight_.end(); ++it) {
      if (it->id != handle) continue;
      done = std::move(it->done);
      in_flight_.erase(it);
      ++cancels_;
      break;
    }
  }
  if (done) done(absl::CancelledError("request cancelled"));
}

bool FakeHttpClient::PopOldest(Callback* done) {
  absl::MutexLock lock(&mu_);
  if (in_flight_.empty()) return false;
  *done = std::move(in_flight_.front().done);
  in_flight_.pop_front();
  return true;
}

bool FakeHttpClient::Respond(long status, std::string body, upstream::Headers headers) {
  Callback done;
  if (!PopOldest(&done)) return false;
  upstream::HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers = std::move(headers);
  done(std::move(response));
  return true;
}

bool FakeHttpClient::Fail(absl::Status transport_error) {
  Callback done;
  if (!PopOldest(&done)) return false;
  done(std::move(transport_error));
  return true;
}

bool FakeHttpClient::WaitForSent(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return sent_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool FakeHttpClient::WaitForCancels(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return cancels_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

size_t FakeHttpClient::SentCount() const {
  absl::MutexLock lock(&mu_);
  return sent_.size();
}

size_t FakeHttpClient::InFlight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_.size();
}

size_t FakeHttpClient::CancelCount() const {
  absl::MutexLock lock(&mu_);
  return cancels_;
}

upstream::HttpRequest FakeHttpClient::Request(size_t i) const {
  absl::MutexLock lock(&mu_);
  return i < sent_.size() ? sent_[i] : upstream::HttpRequest{};
}

}  // namespace sag::testing
