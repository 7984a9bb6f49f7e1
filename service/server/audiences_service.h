// segment.audiences.v1.AudiencesService on gRPC's callback API. Each RPC is one line that hands
// the call to the Gateway; all behaviour lives in the operation table and the Gateway.
// The typed overrides of the cacheable listings below are replaced by raw handlers in the
// constructor and are never called.
#ifndef SAG_SERVICE_SERVER_AUDIENCES_SERVICE_H_
#define SAG_SERVICE_SERVER_AUDIENCES_SERVICE_H_

#include <grpcpp/support/byte_buffer.h>

#include <string>

#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/operations/operation_table.h"
#include "service/server/gateway.h"

namespace sag {

class AudiencesServiceImpl final
    : public segment::audiences::v1::AudiencesService::CallbackService {
 public:
  // The cacheable listings are registered as raw methods, so that a cache hit sends the stored
  // response bytes as they are (Gateway::HandleListing).
  explicit AudiencesServiceImpl(Gateway* gateway) : gateway_(gateway) {
    const auto* service =
        segment::audiences::v1::GetAudienceRequest::descriptor()->file()->FindServiceByName(
            "AudiencesService");
    for (const ops::Operation& op : ops::Operations()) {
      if (!op.cacheable) continue;
      std::string rpc(op.rpc);
      MarkMethodRawCallback(
          service->FindMethodByName(rpc)->index(),
          new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
              [this, rpc](grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                          grpc::ByteBuffer* response) {
                return gateway_->HandleListing(rpc, context, request, response);
              }));
    }
  }

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
  SAG_RPC(ListAudienceConsumersFromSpaceAndAudience)
  SAG_RPC(ListAudienceSchedulesFromSpaceAndAudience)
  SAG_RPC(ListAudiences)
  SAG_RPC(RemoveAudienceFromSpace)
  SAG_RPC(RemoveAudienceScheduleFromAudience)
  SAG_RPC(UpdateAudienceForSpace)
  SAG_RPC(UpdateAudienceScheduleForAudience)
#undef SAG_RPC

 private:
  Gateway* const gateway_;
};

}  // namespace sag

#endif  // SAG_SERVICE_SERVER_AUDIENCES_SERVICE_H_
