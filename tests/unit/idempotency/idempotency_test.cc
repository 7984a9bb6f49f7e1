// service/idempotency/idempotency.h: key checks (malformed, oversized, hostile), scope keys,
// fingerprints and the recorded answer's encoding.
#include "service/idempotency/idempotency.h"

#include <string>

#include "absl/strings/match.h"
#include "google/protobuf/struct.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "segment/audiences/v1/audiences.pb.h"
#include "service/common/status_util.h"

namespace sag::idempotency {
namespace {

namespace v1 = segment::audiences::v1;

// The BadRequest field of an INVALID_ARGUMENT status ("" when there is none).
std::string BadField(const absl::Status& s) {
  grpc::Status g = ToGrpcStatus(s);
  google::rpc::Status rpc;
  if (!ParseGrpcDetails(g, &rpc)) return "";
  for (const auto& any : rpc.details()) {
    google::rpc::BadRequest bad;
    if (any.UnpackTo(&bad) && bad.field_violations_size() > 0) {
      return bad.field_violations(0).field();
    }
  }
  return "";
}

TEST(ValidateKeyTest, AcceptsPrintableAsciiUpTo255) {
  EXPECT_TRUE(ValidateKey("a").ok());
  EXPECT_TRUE(ValidateKey("order-42 retry:#1 {x}~").ok());
  EXPECT_TRUE(ValidateKey(std::string(255, 'k')).ok());
}

TEST(ValidateKeyTest, RefusesEmptyOversizedControlNonAsciiAndHostile) {
  struct Case {
    std::string key;
    const char* says;
  } cases[] = {
      {"", "empty"},
      {std::string(256, 'k'), "256 characters"},
      {std::string(100000, 'k'), "100000 characters"},
      {"abc\ndef", "character 4"},
      {std::string("ab\0c", 4), "character 3"},
      {"tab\there", "0x09"},
      {"del\x7f", "0x7f"},
      {"caf\xc3\xa9", "character 4"},             // UTF-8 é
      {"\xff\xfe", "0xff"},                       // not even UTF-8
      {"k\r\nx-api-key: stolen", "character 2"},  // header injection
  };
  for (const Case& c : cases) {
    absl::Status s = ValidateKey(c.key);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.says;
    EXPECT_TRUE(absl::StrContains(s.message(), c.says)) << s.message();
    EXPECT_EQ(BadField(s), kKeyMetadata);
    EXPECT_LT(s.message().size(), 200u) << "the value is not echoed";
  }
}

TEST(ScopeKeyTest, EqualOnlyForTheSameWorkspaceCallerAndKey) {
  std::string base = ScopeKey("ws", "caller", "key");
  EXPECT_EQ(base, ScopeKey("ws", "caller", "key"));
  EXPECT_EQ(base.size(), 64u);
  EXPECT_NE(base, ScopeKey("ws2", "caller", "key"));
  EXPECT_NE(base, ScopeKey("ws", "other", "key"));
  EXPECT_NE(base, ScopeKey("ws", "caller", "key2"));
  // No part can run into the next.
  EXPECT_NE(ScopeKey("ab", "c", "k"), ScopeKey("a", "bc", "k"));
  EXPECT_NE(ScopeKey("", "1:a", "k"), ScopeKey("1:a", "", "k"));
}

TEST(FingerprintTest, SameRequestSameFingerprintOtherwiseNot) {
  v1::CreateAudienceRequest a;
  a.set_space_id("spa_1");
  a.mutable_audience()->set_name("A");
  v1::CreateAudienceRequest b = a;
  EXPECT_EQ(Fingerprint("CreateAudience", a), Fingerprint("CreateAudience", b));
  b.mutable_audience()->set_name("B");
  EXPECT_NE(Fingerprint("CreateAudience", a), Fingerprint("CreateAudience", b));
  EXPECT_NE(Fingerprint("CreateAudience", a), Fingerprint("UpdateAudienceForSpace", a));
}

TEST(FingerprintTest, MapOrderDoesNotMatter) {
  // Struct fields are a map: insertion order must not change the fingerprint.
  google::protobuf::Struct s1, s2;
  (*s1.mutable_fields())["x"].set_number_value(1);
  (*s1.mutable_fields())["y"].set_number_value(2);
  (*s2.mutable_fields())["y"].set_number_value(2);
  (*s2.mutable_fields())["x"].set_number_value(1);
  EXPECT_EQ(Fingerprint("R", s1), Fingerprint("R", s2));
}

TEST(AnswerTest, RoundTripsExactly) {
  Answer a{3, "bad: thing", std::string("\0\x01\xff details", 11), std::string("\0body:5:", 8)};
  absl::StatusOr<Answer> back = DecodeAnswer(EncodeAnswer(a));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == a);
  Answer empty;
  back = DecodeAnswer(EncodeAnswer(empty));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == empty);
}

TEST(AnswerTest, RefusesWhatItDidNotWrite) {
  std::string good = EncodeAnswer(Answer{0, "m", "", "b"});
  for (const std::string& bad :
       {std::string(""), std::string("garbage"), good.substr(0, good.size() - 1), good + "x",
        std::string("10:sag-idem-1") + "2:99" + "0:" + "0:" + "0:", std::string("99999999999:x")}) {
    EXPECT_TRUE(absl::IsInternal(DecodeAnswer(bad).status())) << bad;
  }
}

}  // namespace
}  // namespace sag::idempotency
