// libFuzzer target: REST JSON -> protobuf -> REST JSON through the gateway's translator.
// The first byte picks a response message of the 14 operations (or an input model); the rest is
// the JSON document. Properties checked: no crash (ASan/UBSan), and a document that translates
// comes back identical after a second round trip (MessageToJson is a fixed point).
#include <google/protobuf/message.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "segment/audiences/v1/audiences.pb.h"
#include "service/translate/json_proto.h"

namespace {

const std::vector<const google::protobuf::Descriptor*>& Targets() {
  static const auto* targets = [] {
    auto* v = new std::vector<const google::protobuf::Descriptor*>;
    const auto* file = segment::audiences::v1::GetAudienceRequest::descriptor()->file();
    for (int i = 0; i < file->message_type_count(); ++i) v->push_back(file->message_type(i));
    return v;
  }();
  return *targets;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto* desc = Targets()[data[0] % Targets().size()];
  nlohmann::json json = nlohmann::json::parse(data + 1, data + size, nullptr, false);
  if (json.is_discarded()) return 0;
  auto* factory = google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<google::protobuf::Message> first(factory->GetPrototype(desc)->New());
  if (!sag::translate::JsonToMessage(json, first.get()).ok()) return 0;
  nlohmann::json out = sag::translate::MessageToJson(*first);
  (void)out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::unique_ptr<google::protobuf::Message> second(factory->GetPrototype(desc)->New());
  if (!sag::translate::JsonToMessage(out, second.get()).ok()) std::abort();  // Must re-read.
  if (sag::translate::MessageToJson(*second) != out) std::abort();           // Fixed point.
  return 0;
}
