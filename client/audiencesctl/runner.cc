// The generic runner of audiencesctl's RPC commands, and what every command shares: input, JSON
// errors that help, flags into fields by reflection, the call with its status line, printing.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <regex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "audiencesctl/command.h"

namespace audiencesctl {
namespace {

namespace pb = ::google::protobuf;
constexpr char kUsagePayload[] = "audiencesctl/usage";

// "invalid value "USERS" for type type.googleapis.com/x.Enum": the valid names, the nearest.
std::string ExplainEnum(const std::string& value, const std::string& type) {
  const pb::EnumDescriptor* d = pb::DescriptorPool::generated_pool()->FindEnumTypeByName(type);
  if (d == nullptr) return "";
  std::vector<std::string> names;
  std::string suffix_match;
  for (int i = 0; i < d->value_count(); ++i) {
    names.push_back(d->value(i)->name());
    if (absl::EndsWithIgnoreCase(names.back(), absl::StrCat("_", value))) {
      suffix_match = names.back();
    }
  }
  const std::string near = suffix_match.empty()
                               ? DidYouMean(value, names)
                               : absl::StrCat(" (did you mean ", suffix_match, "?)");
  return absl::StrCat("\"", value, "\" is not a ", d->name(), near,
                      "; valid values: ", absl::StrJoin(names, ", "));
}

// "nmae: Cannot find field.": the nearest field names of `type` and of the messages in it.
std::string ExplainField(const std::string& field, const pb::Descriptor* type) {
  std::vector<std::string> names;
  std::vector<const pb::Descriptor*> todo = {type};
  for (size_t i = 0; i < todo.size() && i < 50; ++i) {
    for (int f = 0; f < todo[i]->field_count(); ++f) {
      names.push_back(todo[i]->field(f)->json_name());
      const pb::Descriptor* m = todo[i]->field(f)->message_type();
      if (m != nullptr && std::find(todo.begin(), todo.end(), m) == todo.end()) todo.push_back(m);
    }
  }
  return absl::StrCat("unknown field \"", field, "\"", DidYouMean(field, names));
}

// Protobuf's JSON error, made readable.
std::string ExplainProtoJsonError(const std::string& raw, const pb::Descriptor* type) {
  std::smatch m;
  static const std::regex kEnum(
      R"re(invalid value "([^"]*)" for type type.googleapis.com/([\w.]+))re");
  static const std::regex kField(R"re(^(\S+): Cannot find field\.)re");
  if (std::regex_search(raw, m, kEnum)) {
    std::string out = ExplainEnum(m[1], m[2]);
    if (!out.empty()) return out;
  }
  if (std::regex_search(raw, m, kField)) return ExplainField(m[1], type);
  return std::string(absl::StripAsciiWhitespace(raw));
}

// A protobuf field by dotted path: the message holding the last part (created on the way).
absl::StatusOr<std::pair<Message*, const pb::FieldDescriptor*>> FieldAt(Message* message,
                                                                        const std::string& path) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::FieldDescriptor* f = message->GetDescriptor()->FindFieldByName(parts[i]);
    if (f == nullptr) return absl::InternalError(absl::StrCat("no field ", path));
    if (i + 1 == parts.size()) return std::make_pair(message, f);
    message = message->GetReflection()->MutableMessage(message, f);
  }
  return absl::InternalError("empty field path");
}

// The value of flag `flag` into the field at `path`, by the field's type.
absl::Status SetField(Ctx& c, Message* root, const Fill& fill) {
  auto at = FieldAt(root, fill.field);
  if (!at.ok()) return at.status();
  auto [m, f] = *at;
  const pb::Reflection* r = m->GetReflection();
  const std::string text = c.args.Get(fill.flag);
  if (f->is_repeated()) {
    r->ClearField(m, f);
    for (const std::string& piece : SplitList(text)) r->AddString(m, f, piece);
    return absl::OkStatus();
  }
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING:
      r->SetString(m, f, text);
      return absl::OkStatus();
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      r->SetBool(m, f, c.args.GetBool(fill.flag));
      return absl::OkStatus();
    case pb::FieldDescriptor::CPPTYPE_INT32: {
      absl::StatusOr<int> v = ParseIntFlag(fill.flag, text);
      if (!v.ok()) return Usage(v.status().message());
      r->SetInt32(m, f, *v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      absl::StatusOr<int> v = ParseEnumFlag(f->enum_type(), fill.flag, fill.enum_prefix, text);
      if (!v.ok()) return v.status();
      r->SetEnumValue(m, f, *v);
      return absl::OkStatus();
    }
    default:
      return absl::InternalError(absl::StrCat("flag --", fill.flag, ": unsupported field type"));
  }
}

bool FieldIsSet(Message* root, const std::string& path) {
  auto at = FieldAt(root, path);
  if (!at.ok()) return false;
  auto [m, f] = *at;
  if (f->is_repeated()) return m->GetReflection()->FieldSize(*m, f) > 0;
  return m->GetReflection()->HasField(*m, f);
}

// Message fields of `m` that are present but empty (e.g. "options": {} or a flag-less search),
// except those named in `keep` (a flag set them: "--count 0" is sent as given).
void ClearEmptyMessages(Message* m, const std::vector<std::string>& keep) {
  const pb::Reflection* r = m->GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(*m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() &&
        r->GetMessage(*m, f).ByteSizeLong() == 0 &&
        std::find(keep.begin(), keep.end(), f->name()) == keep.end()) {
      r->ClearField(m, f);
    }
  }
}

// -f FILE: proto3 JSON of `body` (a field of `request`), or of the whole request.
absl::Status ReadInput(Ctx& c, Message* request, Message* body) {
  if (!c.args.Has("file")) return absl::OkStatus();
  const std::string path = c.args.Get("file");
  absl::StatusOr<std::string> text = ReadText(path);
  if (!text.ok()) return text.status();
  if (absl::StripAsciiWhitespace(*text).empty()) *text = "{}";
  const std::string expected = body != request
                                   ? absl::StrCat(body->GetDescriptor()->full_name(), " (or of ",
                                                  request->GetDescriptor()->full_name(), ")")
                                   : request->GetDescriptor()->full_name();
  absl::Status as_body = ParseJsonInto(*text, body);
  if (as_body.ok()) return absl::OkStatus();
  request->Clear();
  absl::Status as_request = body != request ? ParseJsonInto(*text, request) : as_body;
  if (as_request.ok()) return absl::OkStatus();
  request->Clear();
  return Usage(absl::StrCat(path == "-" ? "stdin" : path, " is not proto3 JSON of ", expected, ": ",
                            as_body.message()));
}

absl::Status ApplySpace(Ctx& c, Message* request) {
  auto at = FieldAt(request, "space_id");
  if (!at.ok()) return absl::OkStatus();
  auto [m, f] = *at;
  const std::string space = c.args.Get("space", Env("AUDIENCES_SPACE"));
  if (!space.empty()) m->GetReflection()->SetString(m, f, space);
  if (m->GetReflection()->GetString(*m, f).empty()) {
    return Usage("--space is required (or set $AUDIENCES_SPACE)");
  }
  return absl::OkStatus();
}

absl::Status ApplyId(Ctx& c, Message* request, const IdSpec& id) {
  auto at = FieldAt(request, id.field);
  if (!at.ok()) return at.status();
  auto [m, f] = *at;
  std::string value = c.args.Get(id.flag);
  if (value.empty() && id.alias != nullptr) value = c.args.Get(id.alias);
  if (id.positional && !c.rest.empty()) {
    if (!value.empty() && value != c.rest[0]) {
      return Usage(
          absl::StrCat("--", id.flag, " ", value, " and the argument ", c.rest[0], " disagree"));
    }
    value = c.rest[0];
  }
  if (!value.empty()) m->GetReflection()->SetString(m, f, value);
  if (m->GetReflection()->GetString(*m, f).empty()) {
    return Usage(absl::StrCat("--", id.flag, " is required",
                              id.positional ? " (or give the id as the argument)" : ""));
  }
  return absl::OkStatus();
}

// The flag that fills `field`, for messages ("--name"), else the field.
std::string FlagFor(const Command& cmd, const std::string& field) {
  for (const Fill& f : cmd.fills) {
    if (field == f.field) return absl::StrCat("--", f.flag);
  }
  return field;
}

absl::Status CheckRequired(Ctx& c, Message* body) {
  std::vector<std::string> missing;
  for (const std::string& field : c.command->required) {
    if (!FieldIsSet(body, field)) missing.push_back(FlagFor(*c.command, field));
  }
  if (missing.empty()) return absl::OkStatus();
  return Usage(absl::StrCat(absl::StrJoin(missing, " and "), missing.size() > 1 ? " are" : " is",
                            " required (or set in -f); nothing was sent"));
}

// --all: every page of a listing merged into `response` (no pagination: no next page).
absl::Status CallAllPages(Ctx& c, Message* request, Message* response) {
  auto count = FieldAt(request, "pagination.count");
  auto cursor = FieldAt(request, "pagination.cursor");
  if (!count.ok() || !cursor.ok()) return absl::InternalError("listing without pagination");
  if (count->first->GetReflection()->GetInt32(*count->first, count->second) == 0) {
    count->first->GetReflection()->SetInt32(count->first, count->second,
                                            segment_audiences::Client::kDefaultPageSize);
  }
  std::unique_ptr<Message> page(response->New());
  for (;;) {
    absl::Status s = CallRpc(c, c.command->rpc, *request, page.get());
    if (!s.ok()) return s;
    response->MergeFrom(*page);
    const Json j = ToJsonValue(*page);
    const std::string next = Cell(j, "/pagination/next");
    if (next.empty()) break;
    Message* m = cursor->first;
    if (m->GetReflection()->GetString(*m, cursor->second) == next) {
      return absl::InternalError(absl::StrCat("pagination does not advance: next cursor ", next,
                                              " is the cursor just read"));
    }
    m->GetReflection()->SetString(m, cursor->second, next);
  }
  auto pagination = FieldAt(response, "pagination");
  if (pagination.ok()) response->GetReflection()->ClearField(response, pagination->second);
  return absl::OkStatus();
}

void NextPageHint(Ctx& c, const Json& response) {
  if (c.format != Format::kTable || !response.contains("pagination")) return;
  const Json& p = response["pagination"];
  const std::string next = p.value("next", "");
  if (next.empty()) return;
  std::cerr << "More " << c.command->Group() << ": add --cursor " << next
            << " (or --all for every page)"
            << (p.contains("totalEntries") ? absl::StrCat("; ", Cell(p, "/totalEntries"), " in all")
                                           : "")
            << ".\n";
}

}  // namespace

absl::Status Usage(absl::string_view message) {
  absl::Status s = absl::InvalidArgumentError(message);
  s.SetPayload(kUsagePayload, absl::Cord("1"));
  return s;
}

bool IsUsage(const absl::Status& s) { return s.GetPayload(kUsagePayload).has_value(); }

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return Usage(absl::StrCat("cannot read ", path, ": ", std::strerror(EISDIR)));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Usage(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return Usage(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  return text;
}

absl::Status ParseJsonInto(const std::string& text, Message* message) {
  try {
    const Json syntax_check = Json::parse(text);
  } catch (const Json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ..."
    std::string what = e.what();
    const size_t at = what.find("at line ");
    return absl::InvalidArgumentError(
        absl::StrCat("JSON syntax error ", at == std::string::npos ? what : what.substr(at)));
  }
  google::protobuf::util::JsonParseOptions options;
  auto st = google::protobuf::util::JsonStringToMessage(text, message, options);
  if (st.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      ExplainProtoJsonError(std::string(st.message()), message->GetDescriptor()));
}

absl::StatusOr<int> ParseEnumFlag(const google::protobuf::EnumDescriptor* d, const char* flag,
                                  const std::string& prefix, const std::string& text) {
  std::string upper = absl::AsciiStrToUpper(text);
  absl::StrReplaceAll({{"-", "_"}}, &upper);
  for (const std::string& name : {prefix + upper, upper}) {
    const auto* v = d->FindValueByName(name);
    if (v != nullptr && v->number() != 0) return v->number();
  }
  std::vector<std::string> allowed;
  for (int i = 0; i < d->value_count(); ++i) {
    if (d->value(i)->number() == 0) continue;
    std::string v = absl::AsciiStrToLower(d->value(i)->name().substr(prefix.size()));
    absl::StrReplaceAll({{"_", "-"}}, &v);
    allowed.push_back(v);
  }
  return Usage(absl::StrCat("--", flag, " is one of ", absl::StrJoin(allowed, ", "), ", not '",
                            text, "'", DidYouMean(text, allowed)));
}

absl::StatusOr<std::unique_ptr<Message>> BuildRequest(Ctx& c, Message** body) {
  const Command& cmd = *c.command;
  const pb::MethodDescriptor* method =
      segment_audiences::Client::ServiceDescriptor()->FindMethodByName(cmd.rpc);
  if (method == nullptr) return absl::InternalError(absl::StrCat("no RPC ", cmd.rpc));
  std::unique_ptr<Message> request(
      pb::MessageFactory::generated_factory()->GetPrototype(method->input_type())->New());
  auto body_of = [&]() -> Message* {
    if (cmd.body.empty()) return request.get();
    auto at = FieldAt(request.get(), cmd.body);
    return at.ok() ? at->first->GetReflection()->MutableMessage(at->first, at->second) : nullptr;
  };
  absl::Status s = ReadInput(c, request.get(), body_of());
  if (s.ok()) s = ApplySpace(c, request.get());
  for (const IdSpec& id : cmd.ids) {
    if (s.ok()) s = ApplyId(c, request.get(), id);
  }
  *body = body_of();
  for (const Fill& fill : cmd.fills) {
    if (s.ok() && c.args.Has(fill.flag)) s = SetField(c, *body, fill);
  }
  if (s.ok() && cmd.prepare != nullptr) s = cmd.prepare(c, request.get(), *body);
  if (!s.ok()) return s;
  std::vector<std::string> keep = {cmd.body};
  for (const Fill& fill : cmd.fills) {
    if (c.args.Has(fill.flag))
      keep.push_back(std::string(
          absl::string_view(fill.field).substr(0, absl::string_view(fill.field).find('.'))));
  }
  ClearEmptyMessages(*body, keep);
  if (*body != request.get()) ClearEmptyMessages(request.get(), keep);
  s = CheckRequired(c, *body);
  if (!s.ok()) return s;
  return request;
}

int TerminalWidth() {
  struct winsize ws {};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void ShowStatusLine(const std::string& text) {
  const size_t width = static_cast<size_t>(std::max(TerminalWidth() - 1, 10));
  std::string line = text;
  if (line.size() > width) line = line.substr(0, width - 3) + "...";
  std::cerr << "\r" << line << "\x1b[K" << std::flush;
}

absl::Status CallRpc(Ctx& c, const std::string& rpc, const Message& request, Message* response) {
  if (!c.err_tty) return c.client->Call(rpc, request, response, c.call);
  // On a terminal, a call that takes more than a second says what it waits for.
  absl::Notification done;
  bool shown = false;
  const absl::Time start = absl::Now();
  const absl::Duration timeout =
      c.call.timeout > absl::ZeroDuration() ? c.call.timeout : c.client->options().timeout;
  std::thread status([&] {
    if (done.WaitForNotificationWithTimeout(absl::Seconds(1))) return;
    do {
      ShowStatusLine(
          absl::StrCat("Waiting for the gateway (calls queue for Segment's rate limits): ",
                       HumanDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(100))),
                       " of ", HumanDuration(timeout)));
      shown = true;
    } while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  });
  absl::Status s = c.client->Call(rpc, request, response, c.call);
  done.Notify();
  status.join();
  if (shown) std::cerr << "\r\x1b[K" << std::flush;
  return s;
}

void Print(Ctx& c, const Message& message, const Json& request, TableFn table) {
  switch (c.format) {
    case Format::kJson:
      std::cout << ToJson(message);
      break;
    case Format::kYaml:
      std::cout << JsonToYaml(ToOrderedJson(message));
      break;
    case Format::kTable:
      std::cout << (table != nullptr ? table(ToJsonValue(message), request)
                                     : ToJsonValue(message).dump(2) + "\n");
      break;
    case Format::kId:
      for (const std::string& id : IdsOf(ToJsonValue(message))) std::cout << id << "\n";
      break;
  }
  std::cout.flush();
}

absl::Status RunRpcCommand(Ctx& c) {
  Message* body = nullptr;
  absl::StatusOr<std::unique_ptr<Message>> request = BuildRequest(c, &body);
  if (!request.ok()) return request.status();
  const pb::MethodDescriptor* method =
      segment_audiences::Client::ServiceDescriptor()->FindMethodByName(c.command->rpc);
  std::unique_ptr<Message> response(
      pb::MessageFactory::generated_factory()->GetPrototype(method->output_type())->New());
  absl::Status s = !c.command->listing.empty() && c.args.GetBool("all")
                       ? CallAllPages(c, request->get(), response.get())
                       : CallRpc(c, c.command->rpc, **request, response.get());
  if (!s.ok()) return s;
  const Json req = ToJsonValue(**request);
  const Json resp = ToJsonValue(*response);
  if (c.format == Format::kTable && !c.command->listing.empty() &&
      Cell(resp, ("/" + c.command->listing).c_str()).empty()) {
    std::cerr << absl::StrReplaceAll(c.command->if_empty, {{"{space}", Cell(req, "/spaceId")},
                                                           {"{id}", Cell(req, "/id")}})
              << "\n";
    return absl::OkStatus();
  }
  Print(c, *response, req, c.command->table);
  NextPageHint(c, resp);
  return absl::OkStatus();
}

}  // namespace audiencesctl
