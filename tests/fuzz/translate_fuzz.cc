// libFuzzer target: REST JSON -> protobuf -> REST JSON through the gateway's translator.
// The first byte picks a response message of the 14 operations (or an input model); the rest is
// the JSON document. Properties checked: no crash (ASan/UBSan); the text reader
// (JsonTextToMessage: RapidJSON's SAX parser, else nlohmann's) agrees with the DOM reader
// (JsonToMessage on the parsed document) on syntax errors, on OK / error (same status) and on the
// message, both for the document and for its "data" member; when its fast pass (RapidJSON) or its
// streaming pass (nlohmann) reads the document alone, that message is the DOM's, and the fast
// pass never reads a text nlohmann refuses; and a document that translates comes back identical
// after a second round trip (MessageToJson is a fixed point).
#include <google/protobuf/message.h>
#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "segment/audiences/v1/audiences.pb.h"
#include "service/translate/json_proto.h"
#include "service/translate/json_reader_internal.h"

namespace {

using google::protobuf::Message;
using google::protobuf::util::MessageDifferencer;
using sag::translate::TextError;

const std::vector<const google::protobuf::Descriptor*>& Targets() {
  static const auto* targets = [] {
    auto* v = new std::vector<const google::protobuf::Descriptor*>;
    const auto* file = segment::audiences::v1::GetAudienceRequest::descriptor()->file();
    for (int i = 0; i < file->message_type_count(); ++i) v->push_back(file->message_type(i));
    return v;
  }();
  return *targets;
}

// Whether `a` and `b` hold the same fields and values (NaN equal to NaN).
bool Same(const Message& a, const Message& b) {
  google::protobuf::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  MessageDifferencer differencer;
  differencer.set_field_comparator(&comparator);
  return differencer.Compare(a, b);
}

std::unique_ptr<Message> New(const google::protobuf::Descriptor* desc) {
  auto* factory = google::protobuf::MessageFactory::generated_factory();
  return std::unique_ptr<Message>(factory->GetPrototype(desc)->New());
}

// The text reader on the "data" member agrees with the DOM reader on the member's value.
void CheckMember(std::string_view text, const nlohmann::json& json,
                 const google::protobuf::Descriptor* desc) {
  std::unique_ptr<Message> from_text = New(desc);
  TextError error = TextError::kNone;
  const absl::Status status =
      sag::translate::JsonTextToMessage(text, "data", from_text.get(), &error);
  if (!json.is_object()) {
    if (status.ok() || error != TextError::kNotAnObject) std::abort();
    return;
  }
  std::unique_ptr<Message> dom = New(desc);
  absl::Status expected;
  const auto data = json.find("data");
  if (data != json.end() && !data->is_null()) {
    expected = sag::translate::JsonToMessage(*data, dom.get());
  }
  if (status != expected) std::abort();
  if (error != (expected.ok() ? TextError::kNone : TextError::kModel)) std::abort();
  if (!Same(*from_text, *dom)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto* desc = Targets()[data[0] % Targets().size()];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  nlohmann::json json = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);

  std::unique_ptr<Message> streamed = New(desc);
  const auto stream =
      sag::translate::internal::StreamTextToMessage(text, nullptr, streamed.get(), nullptr);
  std::unique_ptr<Message> fast = New(desc);
  const bool fast_read = sag::translate::internal::FastTextToMessage(text, nullptr, fast.get());
  std::unique_ptr<Message> from_text = New(desc);
  TextError error = TextError::kNone;
  const absl::Status text_status = sag::translate::JsonTextToMessage(text, from_text.get(), &error);
  if (json.is_discarded()) {
    if (fast_read) std::abort();
    if (stream != sag::translate::internal::StreamResult::kSyntax) std::abort();
    if (text_status.ok() || error != TextError::kSyntax) std::abort();
    return 0;
  }
  if (stream == sag::translate::internal::StreamResult::kSyntax) std::abort();
  CheckMember(text, json, desc);

  std::unique_ptr<Message> first = New(desc);
  const absl::Status status = sag::translate::JsonToMessage(json, first.get());
  if (text_status != status) std::abort();  // Same code, same message.
  if (!Same(*from_text, *first)) std::abort();
  if (stream == sag::translate::internal::StreamResult::kRead &&
      (!status.ok() || !Same(*streamed, *first))) {
    std::abort();
  }
  if (fast_read && (!status.ok() || !Same(*fast, *first))) std::abort();
  if (!status.ok()) return 0;
  nlohmann::json out = sag::translate::MessageToJson(*first);
  (void)out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::unique_ptr<Message> second = New(desc);
  if (!sag::translate::JsonToMessage(out, second.get()).ok()) std::abort();  // Must re-read.
  if (sag::translate::MessageToJson(*second) != out) std::abort();           // Fixed point.
  return 0;
}
