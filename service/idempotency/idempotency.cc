#include "service/idempotency/idempotency.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/evp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "service/common/status_util.h"

namespace sag::idempotency {
namespace {

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

// "<length>:<bytes>" so that no part can run into the next.
void AppendPart(std::string* out, absl::string_view part) {
  absl::StrAppend(out, part.size(), ":", part);
}

// Reads one part written by AppendPart from the front of `in`.
bool ReadPart(absl::string_view* in, std::string* part) {
  size_t colon = in->find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon > 10) return false;
  uint64_t n = 0;
  if (!absl::SimpleAtoi(in->substr(0, colon), &n) || n > in->size() - colon - 1) return false;
  *part = std::string(in->substr(colon + 1, n));
  in->remove_prefix(colon + 1 + n);
  return true;
}

constexpr char kAnswerVersion[] = "sag-idem-1";

}  // namespace

absl::Status ValidateKey(absl::string_view key) {
  if (key.empty()) return InvalidField(kKeyMetadata, "must not be empty");
  if (key.size() > kMaxKeyLength) {
    return InvalidField(kKeyMetadata, absl::StrCat("is ", key.size(), " characters long; at most ",
                                                   kMaxKeyLength, " are allowed"));
  }
  for (size_t i = 0; i < key.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c > 0x7e) {
      return InvalidField(kKeyMetadata,
                          absl::StrCat("character ", i + 1, " is not printable ASCII (byte 0x",
                                       absl::Hex(c, absl::kZeroPad2), ")"));
    }
  }
  return absl::OkStatus();
}

std::string ScopeKey(absl::string_view workspace, absl::string_view caller, absl::string_view key) {
  std::string scope;
  AppendPart(&scope, workspace);
  AppendPart(&scope, caller);
  AppendPart(&scope, key);
  return Sha256Hex(scope);
}

std::string Fingerprint(absl::string_view rpc, const google::protobuf::Message& request) {
  std::string data;
  AppendPart(&data, rpc);
  {
    google::protobuf::io::StringOutputStream out(&data);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    request.SerializeToCodedStream(&coded);
  }
  return Sha256Hex(data);
}

bool operator==(const Answer& a, const Answer& b) {
  return a.code == b.code && a.message == b.message && a.details == b.details && a.body == b.body;
}

std::string EncodeAnswer(const Answer& answer) {
  std::string out;
  AppendPart(&out, kAnswerVersion);
  AppendPart(&out, absl::StrCat(answer.code));
  AppendPart(&out, answer.message);
  AppendPart(&out, answer.details);
  AppendPart(&out, answer.body);
  return out;
}

absl::StatusOr<Answer> DecodeAnswer(absl::string_view encoded) {
  std::string version, code;
  Answer a;
  if (!ReadPart(&encoded, &version) || version != kAnswerVersion || !ReadPart(&encoded, &code) ||
      !absl::SimpleAtoi(code, &a.code) || a.code < 0 || a.code > 16 ||
      !ReadPart(&encoded, &a.message) || !ReadPart(&encoded, &a.details) ||
      !ReadPart(&encoded, &a.body) || !encoded.empty()) {
    return absl::InternalError("a recorded idempotent answer is corrupt");
  }
  return a;
}

}  // namespace sag::idempotency
