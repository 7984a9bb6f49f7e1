#include "service/translate/descriptor_info.h"

#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"

namespace sag::translate {
namespace internal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::OneofDescriptor;

// "AudienceType" -> "AUDIENCE_TYPE", "HTTPStatus" -> "HTTP_STATUS".
std::string ToUpperSnake(absl::string_view name) {
  std::string out;
  out.reserve(name.size() + 4);
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (i > 0 && absl::ascii_isupper(static_cast<unsigned char>(c))) {
      const unsigned char prev = static_cast<unsigned char>(name[i - 1]);
      const bool next_lower =
          i + 1 < name.size() && absl::ascii_islower(static_cast<unsigned char>(name[i + 1]));
      if (absl::ascii_islower(prev) || absl::ascii_isdigit(prev) ||
          (absl::ascii_isupper(prev) && next_lower)) {
        out.push_back('_');
      }
    }
    out.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

// "specific_days" -> "specificDays" (protobuf's json_name algorithm).
std::string ToLowerCamel(absl::string_view name) {
  std::string out;
  out.reserve(name.size());
  bool capitalize = false;
  for (const char c : name) {
    if (c == '_') {
      capitalize = true;
      continue;
    }
    out.push_back(capitalize ? absl::ascii_toupper(static_cast<unsigned char>(c)) : c);
    capitalize = false;
  }
  return out;
}

// Struct / Value / ListValue by their well-known type; kObject for any other message.
Shape WellKnownShape(const Descriptor* d) {
  switch (d->well_known_type()) {
    case Descriptor::WELLKNOWNTYPE_STRUCT:
      return Shape::kStruct;
    case Descriptor::WELLKNOWNTYPE_VALUE:
      return Shape::kValue;
    case Descriptor::WELLKNOWNTYPE_LISTVALUE:
      return Shape::kListValue;
    default:
      return Shape::kObject;
  }
}

// By oneof index: the JSON key of an inline oneof (a real oneof whose members are all messages),
// "" for other oneofs.
std::vector<std::string> InlineOneofNames(const Descriptor* d) {
  std::vector<std::string> names(d->real_oneof_decl_count());
  for (int i = 0; i < d->real_oneof_decl_count(); ++i) {
    const OneofDescriptor* o = d->oneof_decl(i);
    bool all_messages = o->field_count() > 0;
    for (int k = 0; k < o->field_count(); ++k) {
      all_messages &= o->field(k)->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    }
    if (all_messages) names[i] = ToLowerCamel(o->name());
  }
  return names;
}

// Thread-safe cache: a process-wide map behind a mutex, fronted by a per-thread map so that
// steady-state lookups take no lock and share no cache line. Infos are never freed.
template <typename D, typename Info>
const Info& CachedInfo(const D* d) {
  thread_local absl::flat_hash_map<const D*, const Info*> local;
  if (auto it = local.find(d); it != local.end()) return *it->second;

  struct Global {
    absl::Mutex mu;
    absl::flat_hash_map<const D*, std::unique_ptr<const Info>> infos ABSL_GUARDED_BY(mu);
  };
  static Global* const global = new Global;
  const Info* info = nullptr;
  {
    absl::ReaderMutexLock lock(&global->mu);
    if (auto it = global->infos.find(d); it != global->infos.end()) info = it->second.get();
  }
  if (info == nullptr) {
    auto built = std::make_unique<const Info>(d);  // Built outside the lock.
    absl::MutexLock lock(&global->mu);
    info = global->infos.try_emplace(d, std::move(built)).first->second.get();
  }
  local.emplace(d, info);
  return *info;
}

}  // namespace

EnumInfo::EnumInfo(const EnumDescriptor* e) : prefix(ToUpperSnake(e->name()) + "_") {
  rest_by_index.reserve(e->value_count());
  for (int i = 0; i < e->value_count(); ++i) {
    const EnumValueDescriptor* v = e->value(i);
    std::string rest = RestOf(v->name());
    if (v->number() == 0 || rest.empty()) {
      rest_by_index.emplace_back();
      continue;
    }
    number_by_rest.try_emplace(rest, v->number());  // The first of aliases wins.
    rest_by_index.push_back(std::move(rest));
  }
}

std::string EnumInfo::RestOf(absl::string_view name) const {
  return std::string(absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name);
}

MessageInfo::MessageInfo(const Descriptor* d)
    : shape(WellKnownShape(d)), inline_oneof_names(InlineOneofNames(d)) {
  knows_any_key = shape == Shape::kStruct || shape == Shape::kValue;
  if (shape == Shape::kObject && d->field_count() > 0 && d->real_oneof_decl_count() == 1 &&
      d->oneof_decl(0)->field_count() == d->field_count() && !inline_oneof_names[0].empty()) {
    shape = Shape::kWrapper;
    wrapper_oneof = d->oneof_decl(0);
  }
  if (shape == Shape::kObject && d->field_count() == 1 && d->field(0)->is_repeated() &&
      !d->field(0)->is_map() && d->field(0)->name() == "items") {
    shape = Shape::kList;
    items = d->field(0);
  }

  inline_name_by_field.resize(d->field_count());
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    keys.try_emplace(f->json_name(), KeyTarget{f, nullptr});
    const OneofDescriptor* o = f->real_containing_oneof();
    if (o != nullptr && !inline_oneof_names[o->index()].empty()) {
      inline_name_by_field[i] = inline_oneof_names[o->index()];
    } else {
      ++key_count;
    }
    if (!f->has_presence() && !f->is_repeated()) required.push_back(f);
  }
  for (int i = 0; i < d->real_oneof_decl_count(); ++i) {
    if (inline_oneof_names[i].empty()) continue;
    ++key_count;
    // A field named like the oneof keeps the key (the .proto should not do that).
    keys.try_emplace(inline_oneof_names[i], KeyTarget{nullptr, d->oneof_decl(i)});
  }
  if (knows_any_key) key_count = std::numeric_limits<size_t>::max();
}

const MessageInfo& InfoOf(const Descriptor* d) { return CachedInfo<Descriptor, MessageInfo>(d); }
const EnumInfo& InfoOf(const EnumDescriptor* e) { return CachedInfo<EnumDescriptor, EnumInfo>(e); }

}  // namespace internal

std::string EnumToRest(const google::protobuf::EnumValueDescriptor* v) {
  if (v == nullptr || v->number() == 0) return "";
  const google::protobuf::EnumDescriptor* e = v->type();
  const internal::EnumInfo& info = internal::InfoOf(e);
  // Values made up by reflection for unknown numbers are not in the enum's value table.
  const int index = v->index();
  if (index >= 0 && index < e->value_count() && e->value(index) == v) {
    return info.rest_by_index[index];
  }
  return info.RestOf(v->name());
}

int RestToEnum(const google::protobuf::EnumDescriptor* e, std::string_view rest) {
  if (e == nullptr || rest.empty()) return 0;
  const internal::EnumInfo& info = internal::InfoOf(e);
  auto it = info.number_by_rest.find(absl::string_view(rest.data(), rest.size()));
  return it == info.number_by_rest.end() ? 0 : it->second;
}

}  // namespace sag::translate
