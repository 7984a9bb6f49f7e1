#include "tests/common/flood.h"

#include <memory>
#include <utility>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace sag::testing {

namespace v1 = segment::audiences::v1;

struct Flood::Pending {
  grpc::ClientContext ctx;
  v1::GetAudienceRequest req;
  v1::GetAudienceResponse resp;
  std::string caller;
  std::string api_key;
  absl::Time start;
};

Flood::Flood(v1::AudiencesService::Stub* stub, std::string space, std::string id,
             absl::Duration deadline)
    : stub_(stub), space_(std::move(space)), id_(std::move(id)), deadline_(deadline) {}

Flood::~Flood() { Stop(); }

std::string SharesConfig(const std::string& extra) {
  // SHA-256 of the api keys above.
  return "callers:\n"
         "  - name: heavy\n"
         "    secret_sha256: 85882bb543388443023d8e2bb9231d33b81093dcccababf6ae570b544fdb5a7f\n"
         "    priority: batch\n"
         "    weight: 3\n"
         "  - name: light\n"
         "    secret_sha256: f589650c89cbdb8d71df064fc63851c9c18accc5207ab20f98b077537e8d6d74\n"
         "    priority: batch\n"
         "  - name: ui\n"
         "    secret_sha256: 13625604156a396df7ea62e8961d7ba092ed9aeaab0bde9d0fcd830448813ffb\n"
         "    priority: interactive\n" +
         extra;
}

void Flood::Start(const FloodCaller& caller, int backlog) {
  for (int i = 0; i < backlog; ++i) {
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      ++in_flight_;
    }
    Issue(caller.name, caller.api_key);
  }
}

// The call is already counted in flight, so Stop() waits for it.
void Flood::Issue(const std::string& caller, const std::string& api_key) {
  auto* p = new Pending;
  p->caller = caller;
  p->api_key = api_key;
  p->ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  p->ctx.AddMetadata("x-api-key", api_key);
  p->req.set_space_id(space_);
  p->req.set_id(id_);
  p->start = absl::Now();
  stub_->async()->GetAudience(&p->ctx, &p->req, &p->resp,
                              [this, p](grpc::Status s) { Done(p, std::move(s)); });
}

void Flood::Done(Pending* p, grpc::Status status) {
  std::unique_ptr<Pending> owned(p);
  bool again = false;
  {
    absl::MutexLock lock(&mu_);
    finished_.push_back(FloodCall{p->caller, p->start, absl::Now(), status.error_code()});
    if (status.ok()) ++ok_;
    again = !stopped_;  // The next call takes this one's place in flight.
    if (!again) --in_flight_;
  }
  if (again) Issue(p->caller, p->api_key);
}

bool Flood::Stop(absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), wait);
}

FloodCall Flood::Probe(const FloodCaller& caller) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(1)));
  ctx.AddMetadata("x-api-key", caller.api_key);
  v1::GetAudienceRequest req;
  req.set_space_id(space_);
  req.set_id(id_);
  v1::GetAudienceResponse resp;
  FloodCall call{caller.name, absl::Now(), absl::InfinitePast(), grpc::StatusCode::UNKNOWN};
  call.code = stub_->GetAudience(&ctx, req, &resp).error_code();
  call.end = absl::Now();
  absl::MutexLock lock(&mu_);
  finished_.push_back(call);
  if (call.code == grpc::StatusCode::OK) ++ok_;
  return call;
}

std::vector<FloodCall> Flood::Finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

std::map<std::string, int> Flood::OkBetween(absl::Time from, absl::Time to) const {
  std::map<std::string, int> n;
  absl::MutexLock lock(&mu_);
  for (const FloodCall& c : finished_) {
    if (c.code == grpc::StatusCode::OK && c.end >= from && c.end < to) ++n[c.caller];
  }
  return n;
}

}  // namespace sag::testing

namespace sag::testing {

bool Flood::WaitForOk(int n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ok_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

std::map<std::string, int> Flood::OkInOrder(int first, int last) const {
  std::map<std::string, int> n;
  absl::MutexLock lock(&mu_);
  int index = 0;
  for (const FloodCall& c : finished_) {
    if (c.code != grpc::StatusCode::OK) continue;
    if (index >= first && index < last) ++n[c.caller];
    ++index;
  }
  return n;
}

}  // namespace sag::testing
