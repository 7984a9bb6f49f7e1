// segment.audiences.v1.AudiencesService on gRPC's callback API. Each RPC is one line that hands
// the call to the Gateway; all behaviour lives in the operation table and the Gateway.
#ifndef SAG_SERVICE_SERVER_AUDIENCES_SERVICE_H_
#define SAG_SERVICE_SERVER_AUDIENCES_SERVICE_H_

#include "segment/audiences/v1/audiences.grpc.pb.h"
#include "service/server/gateway.h"

namespace sag {

class AudiencesServiceImpl final
    : public segment::audiences::v1::AudiencesService::CallbackService {
 public:
  explicit AudiencesServiceImpl(Gateway* gateway) : gateway_(gateway) {}

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
