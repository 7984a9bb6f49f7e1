// The floor service of the memory benchmarks: GetAudience calls are held unanswered until their
// caller leaves (cancel or deadline: answered CANCELLED), so that what a held call costs is what
// gRPC itself costs. A call with id "held?" is answered at once with the number of calls held in
// its audience's name. Thread-safe (gRPC's threads).
#ifndef SAG_TESTS_BENCH_HELD_CALLS_H_
#define SAG_TESTS_BENCH_HELD_CALLS_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <string>

#include "segment/audiences/v1/audiences.grpc.pb.h"

namespace sag::bench {

inline constexpr char kHeldQuery[] = "held?";

class HeldCallsService final : public segment::audiences::v1::AudiencesService::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetAudience(
      grpc::CallbackServerContext* context,
      const segment::audiences::v1::GetAudienceRequest* request,
      segment::audiences::v1::GetAudienceResponse* response) override {
    if (request->id() != kHeldQuery) return new Held(&held_);
    response->mutable_audience()->set_name(std::to_string(held_.load()));
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  int held() const { return held_.load(); }

 private:
  // A held call: finished only when its caller leaves.
  class Held final : public grpc::ServerUnaryReactor {
   public:
    explicit Held(std::atomic<int>* held) : held_(held) { held_->fetch_add(1); }
    void OnCancel() override { Finish(grpc::Status::CANCELLED); }
    void OnDone() override {
      held_->fetch_sub(1);
      delete this;
    }

   private:
    std::atomic<int>* const held_;
  };

  std::atomic<int> held_{0};
};

}  // namespace sag::bench

#endif  // SAG_TESTS_BENCH_HELD_CALLS_H_
