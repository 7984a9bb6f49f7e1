// libFuzzer target: the path/query builder. The input fills every string field of a request
// message (ids, include, cursors, search query) and the pagination count; the property checked
// is that whatever the bytes, a request either is refused with INVALID_ARGUMENT or becomes a
// target whose path has exactly the template's segments, each made only of unreserved
// characters and percent escapes, and whose query is only `key=value` pairs of the same.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "segment/audiences/v1/audiences.pb.h"
#include "service/operations/operation_table.h"
#include "service/operations/request_builder.h"

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

bool CleanPart(absl::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') continue;
    if (c == '%' && i + 2 < s.size() + 0 && absl::ascii_isxdigit(s[i + 1]) &&
        absl::ascii_isxdigit(s[i + 2])) {
      i += 2;
      continue;
    }
    return false;
  }
  return true;
}

// Fills string fields (recursively) with pieces of the input, split on 0xFF bytes.
void Fill(Message* m, std::vector<std::string>* pieces, int32_t count) {
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
    if (f->type() == FieldDescriptor::TYPE_STRING && !pieces->empty()) {
      r->SetString(m, f, pieces->back());
      pieces->pop_back();
    } else if (f->type() == FieldDescriptor::TYPE_INT32) {
      r->SetInt32(m, f, count);
    } else if (f->type() == FieldDescriptor::TYPE_ENUM) {
      r->SetEnumValue(m, f, count & 3);
    } else if (f->type() == FieldDescriptor::TYPE_MESSAGE &&
               f->message_type()->file() == d->file()) {
      Fill(r->MutableMessage(m, f), pieces, count);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const auto& ops = sag::ops::Operations();
  const sag::ops::Operation& op = ops[data[0] % ops.size()];
  int32_t count = static_cast<int8_t>(data[1]) * 8;
  std::string rest(reinterpret_cast<const char*>(data + 2), size - 2);
  std::vector<std::string> pieces = absl::StrSplit(rest, '\xff');
  const auto* file = segment::audiences::v1::GetAudienceRequest::descriptor()->file();
  const auto* method =
      file->FindServiceByName("AudiencesService")->FindMethodByName(std::string(op.rpc));
  static auto* builders = new std::vector<std::unique_ptr<sag::ops::RequestBuilder>>(ops.size());
  auto& builder = (*builders)[data[0] % ops.size()];
  if (builder == nullptr) builder = std::move(*sag::ops::RequestBuilder::Create(op, method));
  std::unique_ptr<Message> request(google::protobuf::MessageFactory::generated_factory()
                                       ->GetPrototype(method->input_type())
                                       ->New());
  Fill(request.get(), &pieces, count);
  auto target = builder->Target(*request);
  if (!target.ok()) {
    if (target.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  std::vector<absl::string_view> path_and_query = absl::StrSplit(*target, absl::MaxSplits('?', 1));
  std::vector<absl::string_view> got = absl::StrSplit(path_and_query[0], '/');
  std::vector<absl::string_view> want = absl::StrSplit(op.path, '/');
  if (got.size() != want.size()) std::abort();
  for (size_t i = 0; i < got.size(); ++i) {
    if (want[i].empty() ? !got[i].empty() : (got[i].empty() || !CleanPart(got[i]))) std::abort();
    if (got[i] == "." || got[i] == "..") std::abort();
  }
  if (path_and_query.size() == 2) {
    for (absl::string_view pair : absl::StrSplit(path_and_query[1], '&')) {
      std::vector<absl::string_view> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
      if (kv.size() != 2 || !CleanPart(kv[0]) || !CleanPart(kv[1])) std::abort();
    }
  }
  return 0;
}
