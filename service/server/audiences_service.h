// segment.audiences.v1.AudiencesService on gRPC's callback API. Each RPC is one line that hands
// the call to the Gateway; all behaviour lives in the operation table and the Gateway.
// The cacheable listings are raw methods (the generated WithRawCallbackMethod_* classes).
#ifndef SAG_SERVICE_SERVER_AUDIENCES_SERVICE_H_
#define SAG_SERVICE_SERVER_AUDIENCES_SERVICE_H_

#include <grpcpp/support/byte_buffer.h>

#include <string>

#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/server/gateway.h"

namespace sag {

namespace internal_service {
namespace v1 = segment::audiences::v1;
// The generated callback service with the cacheable listings as raw methods (request and
// response as bytes), through the generated WithRawCallbackMethod_* API.
using ServiceWithRawListings = v1::AudiencesService::WithRawCallbackMethod_ListAudiences<
    v1::AudiencesService::WithRawCallbackMethod_ListAudienceSchedulesFromSpaceAndAudience<
        v1::AudiencesService::WithRawCallbackMethod_ListAudienceConsumersFromSpaceAndAudience<
            v1::AudiencesService::CallbackService>>>;
}  // namespace internal_service

// The RPCs served as raw methods; they must be exactly the operation table's cacheable
// operations (server_test checks it).
inline constexpr const char* kRawListingRpcs[] = {"ListAudiences",
                                                  "ListAudienceSchedulesFromSpaceAndAudience",
                                                  "ListAudienceConsumersFromSpaceAndAudience"};

class AudiencesServiceImpl final : public internal_service::ServiceWithRawListings {
 public:
  explicit AudiencesServiceImpl(Gateway* gateway) : gateway_(gateway) {}

  // The cacheable listings: a cache hit sends the stored response bytes as they are
  // (Gateway::HandleListing). A call that carries no request message (its caller cancelled it
  // or ended its side before sending one; gRPC still runs a raw method then, and also cancels a
  // cancelled one) is answered here by gRPC's default reactor, whose cancellation does nothing:
  // the gateway's reactor would answer it a second time from OnCancel, which aborts the process.
#define SAG_RAW_RPC(Name)                                                                     \
  grpc::ServerUnaryReactor* Name(grpc::CallbackServerContext* context,                        \
                                 const grpc::ByteBuffer* request, grpc::ByteBuffer* response) \
      override {                                                                              \
    if (!request->Valid()) return NoMessage(context, #Name);                                  \
    return gateway_->HandleListing(#Name, context, request, response);                        \
  }
  SAG_RAW_RPC(ListAudiences)
  SAG_RAW_RPC(ListAudienceSchedulesFromSpaceAndAudience)
  SAG_RAW_RPC(ListAudienceConsumersFromSpaceAndAudience)
#undef SAG_RAW_RPC

#define SAG_RPC(Name)                                                                         \
  grpc::ServerUnaryReactor* Name(grpc::CallbackServerContext* context,                        \
                                 const segment::audiences::v1::Name##Request* request,        \
                                 segment::audiences::v1::Name##Response* response) override { \
    return gateway_->Handle(#Name, context, request, response);                               \
  }
  SAG_RPC(AddAudienceScheduleToAudience)
  SAG_RPC(CreateAudience)
  SAG_RPC(CreateAudiencePreview)
  SAG_RPC(ForceExecuteAudienceRun)
  SAG_RPC(GetAudience)
  SAG_RPC(GetAudiencePreview)
  SAG_RPC(GetAudienceScheduleFromSpaceAndAudience)
  SAG_RPC(RemoveAudienceFromSpace)
  SAG_RPC(RemoveAudienceScheduleFromAudience)
  SAG_RPC(UpdateAudienceForSpace)
  SAG_RPC(UpdateAudienceScheduleForAudience)
#undef SAG_RPC

 private:
  static grpc::ServerUnaryReactor* NoMessage(grpc::CallbackServerContext* context,
                                             const char* rpc) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 std::string("the ") + rpc + " call carries no request message"));
    return reactor;
  }

  Gateway* const gateway_;
};

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_AUDIENCES_SERVICE_H_
