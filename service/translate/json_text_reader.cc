// The text reader: JSON text -> message without building a DOM of the document (JsonTextToMessage
// in json_reader.h).
//
// nlohmann's SAX parser drives a stack of frames, one per open JSON container that maps to
// protobuf: an ordinary message (kObject shape) being filled key by key, a repeated field (or a
// rule-4 list message) being filled element by element, or the {"member": ...} envelope. Scalars
// go through the same scalar rules as JsonToMessage (json_reader_internal.h). Values whose
// reading needs the whole value first are collected into a small nlohmann::json and read by the
// DOM reader's own functions: anyOf objects (rule 3c picks the member from all the object's
// keys), maps, Struct / Value / ListValue, and rule-3b wrappers. Unknown keys are skipped.
//
// Two lexers drive the same frames. RapidJSON's SAX reader (its lexer is about 3x nlohmann's on
// a page of audiences) goes first; its result is used only when it read the whole document
// without a doubt: any text RapidJSON refuses, any string that is not well-formed UTF-8
// (RapidJSON 1.1 lets an escaped lone low surrogate through), a NUL byte anywhere (RapidJSON
// reads one as the end), a number that is not finite, or anything the frames would redo sends
// the text through nlohmann's SAX parser exactly as before, so every error, its byte and its JSON
// path stay nlohmann's. Numbers reach the frames as nlohmann's lexer makes them (RapidEvents
// converts their text the same way: strtoull, strtoll, strtod).
//
// Exactly the same result as JsonToMessage on the parsed document: whenever a value does not
// read cleanly (an error at any place, nesting past kMaxDepth, a key given twice, two keys of one
// oneof) the streaming pass stops translating, checks the rest of the syntax, and the document
// is read again the DOM way, which then reports the same error with its JSON path (the DOM reads
// an object's keys in sorted order, and keeps the last of duplicate keys). Such documents are
// errors or oddities, so the common case never pays for the second pass.

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/reader.h"
#include "service/common/utf8.h"
#include "service/translate/descriptor_info.h"
#include "service/translate/json_reader.h"
#include "service/translate/json_reader_internal.h"

namespace sag::translate {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;
using internal::InfoOf;
using internal::MessageInfo;
using internal::Scalar;
using internal::Shape;
using Json = nlohmann::json;
using DomBuilder = nlohmann::detail::json_sax_dom_parser<Json>;

constexpr size_t kUnknownSize = static_cast<size_t>(-1);

// Where the next JSON value goes.
struct Target {
  enum class Kind : uint8_t {
    kSkip,      // an unknown key's value
    kDocument,  // the whole document is the message
    kEnvelope,  // the whole document is the envelope holding the member
    kMember,    // the envelope's member is the message
    kField,     // field `f` of `m`
    kOneof,     // the inline oneof `oneof` of `m` (rule 3a)
    kElement,   // an element of the repeated field `f` of `m`
  };
  Kind kind = Kind::kSkip;
  Message* m = nullptr;
  const Reflection* r = nullptr;
  const FieldDescriptor* f = nullptr;
  const OneofDescriptor* oneof = nullptr;
  int depth = 1;  // the value's nesting depth, as the DOM reader counts it
};

// How a value for a target is read.
enum class How { kSkip, kScalar, kObject, kArray, kEnvelope, kBuffer };

// An open JSON container that is being read.
struct Frame {
  enum class Kind : uint8_t { kMessage, kRepeated, kEnvelope };
  Kind kind;
  Message* m;
  const Reflection* r;
  const MessageInfo* info;   // kMessage
  const FieldDescriptor* f;  // kRepeated: the repeated field
  int depth;
  size_t seen;  // kMessage: where its "key seen" slots start in TextReader::seen_
  Target next;  // kMessage, kEnvelope: the target of the value after the last key
};

Json ToJson(const Scalar& v) {
  switch (v.kind) {
    case Scalar::Kind::kBool:
      return Json(v.n.b);
    case Scalar::Kind::kInt:
      return Json(v.n.i);
    case Scalar::Kind::kUint:
      return Json(v.n.u);
    case Scalar::Kind::kDouble:
      return Json(v.n.d);
    case Scalar::Kind::kString:
      return Json(*v.s);
    default:
      return Json();
  }
}

Scalar ScalarOf(Scalar::Kind kind) {
  Scalar v;
  v.kind = kind;
  return v;
}

// The SAX handler (nlohmann::json_sax interface). After the parse: syntax_error() when the text
// is not JSON; else redo() when the document must be read the DOM way; else *out holds it.
class TextReader {
 public:
  TextReader(Message* out, const std::string_view* member) : out_(out), member_(member) {
    stack_.reserve(kMaxDepth + 2);
  }

  bool syntax_error() const { return syntax_error_; }
  size_t error_byte() const { return error_byte_; }
  bool redo() const { return redo_; }

  bool null() {
    if (Passing()) return skip_ > 0 || buffer_->null();
    return Value(Scalar());
  }
  bool boolean(bool b) {
    if (Passing()) return skip_ > 0 || buffer_->boolean(b);
    Scalar v = ScalarOf(Scalar::Kind::kBool);
    v.n.b = b;
    return Value(v);
  }
  bool number_integer(int64_t i) {
    if (Passing()) return skip_ > 0 || buffer_->number_integer(i);
    Scalar v = ScalarOf(Scalar::Kind::kInt);
    v.n.i = i;
    return Value(v);
  }
  bool number_unsigned(uint64_t u) {
    if (Passing()) return skip_ > 0 || buffer_->number_unsigned(u);
    Scalar v = ScalarOf(Scalar::Kind::kUint);
    v.n.u = u;
    return Value(v);
  }
  bool number_float(double d, const std::string& text) {
    if (Passing()) return skip_ > 0 || buffer_->number_float(d, text);
    Scalar v = ScalarOf(Scalar::Kind::kDouble);
    v.n.d = d;
    return Value(v);
  }
  bool string(std::string& s) {
    if (Passing()) return skip_ > 0 || buffer_->string(s);
    return Value(Scalar::String(&s));
  }
  bool binary(Json::binary_t& /*unused*/) { return Redo(); }  // Not produced by JSON text.
  bool start_object(size_t /*unused*/) { return Open(/*object=*/true); }
  bool start_array(size_t /*unused*/) { return Open(/*object=*/false); }
  bool end_object() { return Close(/*object=*/true); }
  bool end_array() { return Close(/*object=*/false); }
  bool key(std::string& k) {
    if (Passing()) return skip_ > 0 || buffer_->key(k);
    return Key(k);
  }
  bool parse_error(size_t byte, const std::string& /*unused*/,
                   const nlohmann::detail::exception& /*unused*/) {
    syntax_error_ = true;
    error_byte_ = byte;
    return false;
  }

 private:
  // Whether the event belongs to a value being skipped or collected (or to nothing any more).
  bool Passing() const { return skip_ > 0 || buffer_.has_value(); }

  // Stops translating: the document is read the DOM way afterwards. The parse goes on (skipping)
  // so that a syntax error anywhere is still reported as one.
  bool Redo() {
    redo_ = true;
    buffer_.reset();
    skip_ = 1;  // Never back to 0: nothing more is translated.
    return true;
  }

  bool Check(const absl::Status& status) { return status.ok() ? true : Redo(); }

  Target Next() const {
    if (stack_.empty()) {
      if (member_ == nullptr) return Target{Target::Kind::kDocument, out_};
      return Target{Target::Kind::kEnvelope, out_};
    }
    const Frame& top = stack_.back();
    if (top.kind != Frame::Kind::kRepeated) return top.next;
    return Target{Target::Kind::kElement, top.m, top.r, top.f, nullptr, top.depth + 1};
  }

  How HowToRead(const Target& t) const;
  bool Value(const Scalar& v);
  bool Open(bool object);
  bool Close(bool object);
  bool Key(const std::string& k);
  bool PushMessage(const Target& t);
  bool PushRepeated(const Target& t);
  bool Dispatch(const Target& t, const Json& value);
  bool FinishBuffer();

  Message* const out_;
  const std::string_view* const member_;  // null: the document is the message
  std::vector<Frame> stack_;
  std::vector<uint8_t> seen_;  // per open message, one slot per field and per oneof
  bool member_seen_ = false;
  int skip_ = 0;  // nesting of the value being skipped
  // The value being collected for the DOM reader, and where it goes.
  Json buffer_json_;
  std::optional<DomBuilder> buffer_;
  int buffer_depth_ = 0;
  Target buffer_target_;
  bool redo_ = false;
  bool syntax_error_ = false;
  size_t error_byte_ = 0;
};

How TextReader::HowToRead(const Target& t) const {
  const Descriptor* d = nullptr;
  switch (t.kind) {
    case Target::Kind::kSkip:
      return How::kSkip;
    case Target::Kind::kEnvelope:
      return How::kEnvelope;
    case Target::Kind::kOneof:
      return How::kBuffer;
    case Target::Kind::kDocument:
    case Target::Kind::kMember:
      d = out_->GetDescriptor();
      break;
    case Target::Kind::kField:
      if (t.f->is_map()) return How::kBuffer;
      if (t.f->is_repeated()) return How::kArray;
      [[fallthrough]];
    case Target::Kind::kElement:
      if (t.f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return How::kScalar;
      d = t.f->message_type();
      break;
  }
  switch (InfoOf(d).shape) {
    case Shape::kObject:
      return How::kObject;
    case Shape::kList:
      return How::kArray;
    default:
      return How::kBuffer;  // Struct, Value, ListValue, wrapper (rule 3b)
  }
}

bool TextReader::Value(const Scalar& v) {
  const Target t = Next();
  if (v.kind == Scalar::Kind::kNull) {
    switch (t.kind) {
      case Target::Kind::kElement:
        break;  // An element is never absent: read as any other value.
      case Target::Kind::kDocument:
        // A null document is an empty message, unless the message is a Value.
        if (InfoOf(out_->GetDescriptor()).shape == Shape::kValue) return Dispatch(t, Json());
        return true;
      case Target::Kind::kEnvelope:
        return Redo();
      default:
        return true;  // null == absent
    }
  }
  switch (HowToRead(t)) {
    case How::kSkip:
      return true;
    case How::kScalar:
      return Check(internal::ReadScalar(v, t.f, t.m, t.r, nullptr));
    case How::kBuffer:
      return Dispatch(t, ToJson(v));
    default:
      return Redo();  // A scalar where an object or an array belongs.
  }
}

bool TextReader::Open(bool object) {
  if (buffer_.has_value()) {
    ++buffer_depth_;
    return object ? buffer_->start_object(kUnknownSize) : buffer_->start_array(kUnknownSize);
  }
  if (skip_ > 0) {
    ++skip_;
    return true;
  }
  const Target t = Next();
  switch (HowToRead(t)) {
    case How::kSkip:
      skip_ = 1;
      return true;
    case How::kBuffer:
      buffer_json_ = Json();
      buffer_.emplace(buffer_json_, /*allow_exceptions=*/false);
      buffer_depth_ = 1;
      buffer_target_ = t;
      return object ? buffer_->start_object(kUnknownSize) : buffer_->start_array(kUnknownSize);
    case How::kObject:
      return object ? PushMessage(t) : Redo();
    case How::kArray:
      return object ? Redo() : PushRepeated(t);
    case How::kEnvelope:
      if (!object) return Redo();
      stack_.push_back(
          Frame{Frame::Kind::kEnvelope, out_, nullptr, nullptr, nullptr, 0, seen_.size(), {}});
      return true;
    case How::kScalar:
      break;
  }
  return Redo();  // An object or an array where a scalar belongs.
}

bool TextReader::Close(bool object) {
  if (buffer_.has_value()) {
    if (!(object ? buffer_->end_object() : buffer_->end_array())) return Redo();
    return --buffer_depth_ > 0 || FinishBuffer();
  }
  if (skip_ > 0) {
    if (!redo_) --skip_;
    return true;
  }
  if (stack_.empty()) return Redo();  // The parser never closes what it did not open.
  seen_.resize(stack_.back().seen);
  stack_.pop_back();
  return true;
}

bool TextReader::Key(const std::string& k) {
  if (stack_.empty() || stack_.back().kind == Frame::Kind::kRepeated) return Redo();  // Never.
  Frame& top = stack_.back();
  if (top.kind == Frame::Kind::kEnvelope) {
    top.next = Target{};
    if (k != *member_) return true;
    if (member_seen_) return Redo();  // A duplicate: the DOM keeps the last one.
    member_seen_ = true;
    top.next = Target{Target::Kind::kMember, out_};
    return true;
  }
  const auto it = top.info->keys.find(k);
  if (it == top.info->keys.end()) {
    top.next = Target{};  // Unknown keys are ignored.
    return true;
  }
  // One slot per field, and one per oneof shared by its members and its inline key: a second
  // key for a slot (a duplicate, or two members of a oneof) is left to the DOM reader.
  const FieldDescriptor* f = it->second.field;
  const OneofDescriptor* oneof = f != nullptr ? f->real_containing_oneof() : it->second.oneof;
  const size_t slot = oneof != nullptr ? top.m->GetDescriptor()->field_count() + oneof->index()
                                       : static_cast<size_t>(f->index());
  if (seen_[top.seen + slot] != 0) return Redo();
  seen_[top.seen + slot] = 1;
  top.next = f != nullptr
                 ? Target{Target::Kind::kField, top.m, top.r, f, nullptr, top.depth + 1}
                 : Target{Target::Kind::kOneof, top.m, top.r, nullptr, oneof, top.depth + 1};
  return true;
}

// The message a kObject / kArray target reads into.
Message* TargetMessage(const Target& t) {
  switch (t.kind) {
    case Target::Kind::kField:
      return t.r->MutableMessage(t.m, t.f);
    case Target::Kind::kElement:
      return t.r->AddMessage(t.m, t.f);
    default:
      return t.m;  // kDocument, kMember: the output message
  }
}

bool TextReader::PushMessage(const Target& t) {
  if (t.depth > kMaxDepth) return Redo();
  Message* m = TargetMessage(t);
  const Descriptor* d = m->GetDescriptor();
  const size_t seen = seen_.size();
  seen_.resize(seen + d->field_count() + d->oneof_decl_count());
  stack_.push_back(
      Frame{Frame::Kind::kMessage, m, m->GetReflection(), &InfoOf(d), nullptr, t.depth, seen, {}});
  return true;
}

bool TextReader::PushRepeated(const Target& t) {
  if (t.depth > kMaxDepth) return Redo();
  if (t.kind == Target::Kind::kField && t.f->is_repeated()) {
    stack_.push_back(
        Frame{Frame::Kind::kRepeated, t.m, t.r, nullptr, t.f, t.depth, seen_.size(), {}});
    return true;
  }
  Message* list = TargetMessage(t);  // A list message (rule 4): its `items`.
  const FieldDescriptor* items = InfoOf(list->GetDescriptor()).items;
  stack_.push_back(Frame{Frame::Kind::kRepeated,
                         list,
                         list->GetReflection(),
                         nullptr,
                         items,
                         t.depth,
                         seen_.size(),
                         {}});
  return true;
}

// Reads a whole value the DOM reader's way, at the target's place and depth.
bool TextReader::Dispatch(const Target& t, const Json& value) {
  switch (t.kind) {
    case Target::Kind::kOneof:
      return Check(internal::ReadAnyOf(value, t.oneof, t.m, nullptr, t.depth));
    case Target::Kind::kField:
      return Check(internal::ReadField(value, t.f, t.m, t.r, nullptr, t.depth));
    case Target::Kind::kElement:
      return Check(internal::ReadMessage(value, t.r->AddMessage(t.m, t.f), nullptr, t.depth));
    case Target::Kind::kDocument:
    case Target::Kind::kMember:
      return Check(internal::ReadMessage(value, out_, nullptr, 1));
    default:
      return Redo();
  }
}

bool TextReader::FinishBuffer() {
  buffer_.reset();
  const Json value = std::move(buffer_json_);
  buffer_json_ = Json();
  return Dispatch(buffer_target_, value);
}

// RapidJSON's SAX events, handed to a TextReader under nlohmann's names. Stops the parse (returns
// false) where nlohmann might read the text otherwise: a string or key that is not well-formed
// UTF-8, a number strtod takes past a double, nesting deeper than the frames read.
//
// RapidJSON runs in situ with numbers as text (kParseInsituFlag | kParseNumbersAsStringsFlag),
// and recursive (its nesting bounded here): that way it never touches its internal stack, whose
// first use in 1.1.0 computes an offset from a null pointer (UBSan), and every number is
// converted here, exactly as nlohmann's lexer converts it.
class RapidEvents {
 public:
  explicit RapidEvents(TextReader* reader) : reader_(reader) {}

  bool Null() { return reader_->null(); }
  bool Bool(bool b) { return reader_->boolean(b); }
  // Numbers arrive as text (RawNumber) only.
  bool Int(int /*unused*/) { return false; }
  bool Uint(unsigned /*unused*/) { return false; }
  bool Int64(int64_t /*unused*/) { return false; }
  bool Uint64(uint64_t /*unused*/) { return false; }
  bool Double(double /*unused*/) { return false; }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool /*copy*/) { return Number(s, n); }
  bool String(const char* s, rapidjson::SizeType n, bool /*copy*/) {
    return Text(s, n) && reader_->string(text_);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool /*copy*/) {
    return Text(s, n) && reader_->key(text_);
  }
  bool StartObject() { return Deeper() && reader_->start_object(kUnknownSize); }
  bool EndObject(rapidjson::SizeType /*unused*/) { return Shallower() && reader_->end_object(); }
  bool StartArray() { return Deeper() && reader_->start_array(kUnknownSize); }
  bool EndArray(rapidjson::SizeType /*unused*/) { return Shallower() && reader_->end_array(); }

 private:
  // Past kMaxDepth the frames redo anyway; stopping a little later bounds RapidJSON's recursion.
  bool Deeper() { return ++depth_ <= kMaxDepth + 2; }
  bool Shallower() { return --depth_ >= 0; }

  bool Text(const char* s, rapidjson::SizeType n) {
    text_.assign(s, n);
    return IsValidUtf8(text_);
  }

  // nlohmann's conversion: a token without '.', 'e' or 'E' is an unsigned integer (strtoull), or
  // a signed one when it starts with '-' (strtoll), when it fits in 64 bits; anything else is
  // strtod's double, and one that is not finite is an error.
  bool Number(const char* s, size_t n) {
    text_.assign(s, n);
    const char* begin = text_.c_str();
    char* end = nullptr;
    if (text_.find_first_of(".eE") == std::string::npos) {
      errno = 0;
      if (text_[0] == '-') {
        const long long x = std::strtoll(begin, &end, 10);  // NOLINT(runtime/int): strtoll's
        if (errno == 0 && end == begin + n) return reader_->number_integer(x);
      } else {
        const unsigned long long x = std::strtoull(begin, &end, 10);  // NOLINT(runtime/int)
        if (errno == 0 && end == begin + n) return reader_->number_unsigned(x);
      }
    }
    const double d = std::strtod(begin, &end);
    return end == begin + n && std::isfinite(d) && reader_->number_float(d, text_);
  }

  TextReader* const reader_;
  std::string text_;  // reused: the string, key or number being handed over
  int depth_ = 0;
};

absl::Status SyntaxError(std::string_view json, size_t byte, TextError* error) {
  if (error != nullptr) *error = TextError::kSyntax;
  return absl::InvalidArgumentError(
      absl::StrCat("not JSON: syntax error at byte ", byte, " of ", json.size()));
}

// The DOM way: parse, then JsonToMessage on the document or its member.
absl::Status ReadAsDom(std::string_view json, const std::string_view* member, Message* out,
                       TextError* error) {
  out->Clear();
  const Json doc = Json::parse(json.data(), json.data() + json.size(), nullptr, false);
  if (doc.is_discarded()) return SyntaxError(json, json.size(), error);  // Checked before.
  const Json* value = &doc;
  if (member != nullptr) {
    if (!doc.is_object()) {
      if (error != nullptr) *error = TextError::kNotAnObject;
      return absl::InvalidArgumentError(
          absl::StrCat("(root): expected an object holding \"",
                       absl::string_view(member->data(), member->size()), "\""));
    }
    const auto it = doc.find(std::string(*member));
    if (it == doc.end() || it->is_null()) return absl::OkStatus();
    value = &*it;
  }
  absl::Status status = JsonToMessage(*value, out);
  if (!status.ok() && error != nullptr) *error = TextError::kModel;
  return status;
}

absl::Status ReadText(std::string_view json, const std::string_view* member, Message* out,
                      TextError* error) {
  if (error != nullptr) *error = TextError::kNone;
  if (out == nullptr) return absl::InvalidArgumentError("JsonTextToMessage: null output message");
  if (internal::FastTextToMessage(json, member, out)) return absl::OkStatus();
  size_t error_byte = 0;
  switch (internal::StreamTextToMessage(json, member, out, &error_byte)) {
    case internal::StreamResult::kRead:
      return absl::OkStatus();
    case internal::StreamResult::kSyntax:
      out->Clear();
      return SyntaxError(json, error_byte, error);
    case internal::StreamResult::kRedo:
      break;
  }
  return ReadAsDom(json, member, out, error);
}

}  // namespace

namespace internal {

bool FastTextToMessage(std::string_view json, const std::string_view* member, Message* out) {
  // RapidJSON reads a NUL byte as the end of the text. Past 1 GiB its exponent arithmetic could
  // overflow (CVE-2024-38517, CVE-2024-39684: Debian 12's 1.1.0 predates the fix); upstream
  // bodies are far smaller (curl_multi_client.h: 32 MiB).
  if (json.size() > (size_t{1} << 30) || json.find('\0') != std::string_view::npos) return false;
  std::string text(json);  // In situ: RapidJSON unescapes strings where they are.
  out->Clear();
  TextReader reader(out, member);
  RapidEvents events(&reader);
  rapidjson::InsituStringStream stream(text.data());
  rapidjson::Reader parser;
  constexpr unsigned kFlags = rapidjson::kParseInsituFlag | rapidjson::kParseNumbersAsStringsFlag;
  const rapidjson::ParseResult parsed = parser.Parse<kFlags>(stream, events);
  return !parsed.IsError() && !reader.redo() && !reader.syntax_error();
}

StreamResult StreamTextToMessage(std::string_view json, const std::string_view* member,
                                 Message* out, size_t* error_byte) {
  out->Clear();
  TextReader reader(out, member);
  (void)Json::sax_parse(json.data(), json.data() + json.size(), &reader);
  if (reader.syntax_error()) {
    if (error_byte != nullptr) *error_byte = reader.error_byte();
    return StreamResult::kSyntax;
  }
  return reader.redo() ? StreamResult::kRedo : StreamResult::kRead;
}

}  // namespace internal

absl::Status JsonTextToMessage(std::string_view json, google::protobuf::Message* out,
                               TextError* error) {
  return ReadText(json, nullptr, out, error);
}

absl::Status JsonTextToMessage(std::string_view json, std::string_view member,
                               google::protobuf::Message* out, TextError* error) {
  return ReadText(json, &member, out, error);
}

}  // namespace sag::translate
