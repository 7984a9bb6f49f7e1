// W3C Trace Context parsing (service/server/trace_context.h): what is forwarded upstream and what
// is dropped, for valid, malformed, oversized and hostile values; and UpstreamAuthState
// (service/server/upstream_auth.h), the per-workspace "token rejected" state.
#include "service/server/trace_context.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "service/server/upstream_auth.h"

namespace sag {
namespace {

constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kParentId[] = "00f067aa0ba902b7";
constexpr char kValid[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string Parent(const std::string& version, const std::string& trace, const std::string& parent,
                   const std::string& flags) {
  return absl::StrCat(version, "-", trace, "-", parent, "-", flags);
}

TEST(TraceparentTest, ValidVersion00IsParsedAndForwardedAsIs) {
  auto parsed = ParseTraceparent(kValid);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->trace_id, kTraceId);
  EXPECT_EQ(parsed->parent_id, kParentId);
  EXPECT_EQ(parsed->flags, "01");
  EXPECT_EQ(parsed->Header(), kValid);
  // Any flags value of two lowercase hex digits (unknown bits are kept).
  for (const char* flags : {"00", "ff", "a7"}) {
    auto p = ParseTraceparent(Parent("00", kTraceId, kParentId, flags));
    ASSERT_TRUE(p.has_value()) << flags;
    EXPECT_EQ(p->flags, flags);
  }
}

TEST(TraceparentTest, UppercaseHexIsInvalid) {
  EXPECT_FALSE(ParseTraceparent(Parent("00", "4BF92F3577B34DA6A3CE929D0E0E4736", kParentId, "01")));
  EXPECT_FALSE(ParseTraceparent(Parent("00", kTraceId, "00F067AA0BA902B7", "01")));
  EXPECT_FALSE(ParseTraceparent(Parent("00", kTraceId, kParentId, "0A")));
  EXPECT_FALSE(ParseTraceparent(Parent("0A", kTraceId, kParentId, "01")));
}

TEST(TraceparentTest, WrongLengthsAndSeparatorsAreInvalid) {
  const std::string trace(kTraceId);
  const std::string parent(kParentId);
  for (const std::string& bad : {
           std::string(""), std::string("00"),
           Parent("00", trace.substr(1), parent, "01"),       // 31 hex trace id
           Parent("00", trace + "a", parent, "01"),           // 33
           Parent("00", trace, parent.substr(1), "01"),       // 15 hex parent id
           Parent("00", trace, parent + "a", "01"),           // 17
           Parent("00", trace, parent, "1"),                  // 1 flag digit
           Parent("00", trace, parent, "011"),                // 3
           Parent("0", trace, parent, "01"),                  // 1 version digit
           Parent("000", trace, parent, "01"),                // 3
           absl::StrCat(kValid, "-"),                         // version 00 is exactly 55 chars
           absl::StrCat(kValid, "-extra"),                    //
           absl::StrCat("00_", trace, "-", parent, "-01"),    // wrong separators
           absl::StrCat("00-", trace, "_", parent, "-01"),    //
           absl::StrCat("00-", trace, "-", parent, "_01"),    //
           absl::StrCat(" ", kValid),                         // surrounding blanks
           absl::StrCat(kValid, " "),                         //
           Parent("00", std::string(32, 'g'), parent, "01"),  // not hex
       }) {
    EXPECT_FALSE(ParseTraceparent(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(TraceparentTest, AllZeroIdsAreInvalid) {
  EXPECT_FALSE(ParseTraceparent(Parent("00", std::string(32, '0'), kParentId, "01")));
  EXPECT_FALSE(ParseTraceparent(Parent("00", kTraceId, std::string(16, '0'), "01")));
  // Zero flags are fine; one non-zero digit makes an id valid.
  EXPECT_TRUE(ParseTraceparent(Parent("00", std::string(31, '0') + "1", kParentId, "00")));
}

TEST(TraceparentTest, VersionFfIsInvalid) {
  EXPECT_FALSE(ParseTraceparent(Parent("ff", kTraceId, kParentId, "01")));
  EXPECT_FALSE(ParseTraceparent(Parent("ff", kTraceId, kParentId, "01") + "-more"));
}

TEST(TraceparentTest, AFutureVersionIsReadByTheVersion00LayoutAndForwardedAs00) {
  for (const std::string& future :
       {Parent("01", kTraceId, kParentId, "01"), Parent("cc", kTraceId, kParentId, "01") + "-",
        Parent("cc", kTraceId, kParentId, "01") + "-what-the-future-holds"}) {
    auto p = ParseTraceparent(future);
    ASSERT_TRUE(p.has_value()) << future;
    EXPECT_EQ(p->trace_id, kTraceId);
    EXPECT_EQ(p->Header(), kValid) << "rebuilt as version 00, without the unknown tail";
  }
  // After the flags: the end or a dash, nothing else.
  EXPECT_FALSE(ParseTraceparent(Parent("cc", kTraceId, kParentId, "01") + "x"));
  EXPECT_FALSE(ParseTraceparent(Parent("cc", kTraceId, kParentId, "0")));
  // The version-00 rules still hold for the fields it has.
  EXPECT_FALSE(ParseTraceparent(Parent("cc", std::string(32, '0'), kParentId, "01")));
}

TEST(TraceparentTest, OversizedIsInvalid) {
  const std::string head = Parent("cc", kTraceId, kParentId, "01") + "-";
  const std::string at_limit = head + std::string(kMaxTraceparentLength - head.size(), 'a');
  EXPECT_TRUE(ParseTraceparent(at_limit).has_value());
  EXPECT_FALSE(ParseTraceparent(at_limit + "a").has_value());
  EXPECT_FALSE(ParseTraceparent(std::string(1 << 20, 'a')).has_value());
}

TEST(TraceparentTest, HostileBytesAreInvalid) {
  for (const std::string& bad : {
           absl::StrCat(kValid, "\r\nX-Injected: 1"),
           Parent("cc", kTraceId, kParentId, "01") + "-\r\nX-Injected: 1",
           Parent("cc", kTraceId, kParentId, "01") + "-\n",
           Parent("cc", kTraceId, kParentId, "01") + std::string("-\0x", 3),
           std::string(kValid).substr(0, 54) + std::string("\0", 1),
           Parent("cc", kTraceId, kParentId, "01") + "-\xc3\xa9",  // non-ASCII (é)
           Parent("cc", kTraceId, kParentId, "01") + "-\x7f",      // DEL
       }) {
    EXPECT_FALSE(ParseTraceparent(bad).has_value()) << absl::CEscape(bad);
  }
}

TEST(TracestateTest, PrintableAsciiUpTo512IsValid) {
  EXPECT_TRUE(ValidTracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
  EXPECT_TRUE(ValidTracestate(std::string(kMaxTracestateLength, 'a')));
  EXPECT_FALSE(ValidTracestate(std::string(kMaxTracestateLength + 1, 'a')));
  EXPECT_FALSE(ValidTracestate(""));
  for (const std::string& bad :
       {std::string("a=b\r\nX-Injected: 1"), std::string("a=b\n"), std::string("a=\0b", 4),
        std::string("a=\tb"), std::string("a=\xc3\xa9"), std::string("a=\x7f")}) {
    EXPECT_FALSE(ValidTracestate(bad)) << absl::CEscape(bad);
  }
}

TEST(TraceContextTest, ForwardsTracestateOnlyWithAValidTraceparent) {
  TraceContext both = MakeTraceContext({kValid}, {"congo=t61rcWkgMzE"});
  EXPECT_EQ(both.traceparent, kValid);
  EXPECT_EQ(both.tracestate, "congo=t61rcWkgMzE");
  EXPECT_EQ(both.trace_id, kTraceId);

  TraceContext alone = MakeTraceContext({}, {"congo=t61rcWkgMzE"});
  EXPECT_EQ(alone.traceparent, "");
  EXPECT_EQ(alone.tracestate, "");
  EXPECT_EQ(alone.trace_id, "");

  TraceContext invalid = MakeTraceContext({"00-zz"}, {"congo=t61rcWkgMzE"});
  EXPECT_EQ(invalid.traceparent, "");
  EXPECT_EQ(invalid.tracestate, "");
  EXPECT_EQ(invalid.trace_id, "");

  // Two traceparents: which one is meant is unknown, so neither is forwarded.
  TraceContext two = MakeTraceContext({kValid, kValid}, {"congo=t61rcWkgMzE"});
  EXPECT_EQ(two.traceparent, "");
  EXPECT_EQ(two.tracestate, "");
}

TEST(TraceContextTest, SeveralTracestatesAreJoinedAndABadOneIsDroppedAlone) {
  TraceContext joined = MakeTraceContext({kValid}, {"a=1", "b=2"});
  EXPECT_EQ(joined.tracestate, "a=1,b=2");

  TraceContext hostile = MakeTraceContext({kValid}, {"a=1\r\nX-Injected: 1"});
  EXPECT_EQ(hostile.traceparent, kValid) << "a bad tracestate does not cost the traceparent";
  EXPECT_EQ(hostile.tracestate, "");

  TraceContext oversized =
      MakeTraceContext({kValid}, {std::string(300, 'a'), std::string(300, 'b')});
  EXPECT_EQ(oversized.traceparent, kValid);
  EXPECT_EQ(oversized.tracestate, "");

  std::vector<std::string> many(100000, "a=1");
  std::vector<absl::string_view> views(many.begin(), many.end());
  EXPECT_EQ(MakeTraceContext({kValid}, views).tracestate, "");
}

TEST(TraceContextTest, HeadersAreAddedOnlyForWhatIsForwarded) {
  upstream::Headers headers;
  AddTraceHeaders(MakeTraceContext({}, {}), &headers);
  EXPECT_TRUE(headers.empty());
  AddTraceHeaders(MakeTraceContext({kValid}, {}), &headers);
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0], (std::pair<std::string, std::string>("traceparent", kValid)));
  headers.clear();
  AddTraceHeaders(MakeTraceContext({kValid}, {"a=1"}), &headers);
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[1], (std::pair<std::string, std::string>("tracestate", "a=1")));
}

// --- UpstreamAuthState -------------------------------------------------------------------------

class RecordingAuthObserver final : public UpstreamAuthObserver {
 public:
  void OnTokenRejected(const std::string& workspace, long status, bool first) override {
    events.push_back(absl::StrCat("rejected ", workspace, " ", status, first ? " first" : ""));
  }
  void OnTokenAccepted(const std::string& workspace) override {
    events.push_back(absl::StrCat("accepted ", workspace));
  }
  std::vector<std::string> events;
};

TEST(UpstreamAuthStateTest, RejectedFromTheFirst401Or403UntilA2xx) {
  RecordingAuthObserver observer;
  UpstreamAuthState state(&observer);
  state.Record("a", 200);
  EXPECT_FALSE(state.Rejected("a"));
  state.Record("a", 401);
  EXPECT_TRUE(state.Rejected("a"));
  EXPECT_FALSE(state.Rejected("b")) << "per workspace";
  // Neither a failure to answer nor an answer about the request says the token works.
  for (long status : {0L, 404L, 422L, 429L, 500L, 503L}) {
    state.Record("a", status);
    EXPECT_TRUE(state.Rejected("a")) << status;
  }
  state.Record("a", 403);
  state.Record("a", 204);
  EXPECT_FALSE(state.Rejected("a"));
  state.Record("a", 200);
  state.Record("b", 403);
  EXPECT_EQ(observer.events, (std::vector<std::string>{"rejected a 401 first", "rejected a 403",
                                                       "accepted a", "rejected b 403 first"}));
}

TEST(UpstreamAuthStateTest, WorksWithoutAnObserver) {
  UpstreamAuthState state(nullptr);
  state.Record("a", 401);
  EXPECT_TRUE(state.Rejected("a"));
  state.Record("a", 200);
  EXPECT_FALSE(state.Rejected("a"));
}

}  // namespace
}  // namespace sag
