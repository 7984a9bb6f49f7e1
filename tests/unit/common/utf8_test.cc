// service/common/utf8.h: IsValidUtf8's 8-bytes-at-a-time ASCII path must give what the
// sequence-by-sequence definition gives, wherever a non-ASCII byte falls in a word.
#include "service/common/utf8.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sag {
namespace {

// The definition, one sequence at a time (what IsValidUtf8 did before its ASCII path).
bool Reference(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

TEST(Utf8Test, AsciiRunsOfEveryLengthAreValid) {
  for (size_t n = 0; n <= 40; ++n) EXPECT_TRUE(IsValidUtf8(std::string(n, 'a'))) << n;
}

TEST(Utf8Test, EveryKindOfSequenceAtEveryPlaceAgreesWithTheDefinition) {
  const std::vector<std::string> pieces = {
      "\xC3\xA9",          // é
      "\xE2\x82\xAC",      // €
      "\xF0\x9F\x98\x80",  // U+1F600
      "\xFF",              // never valid
      "\x80",              // a lone continuation byte
      "\xC0\xAF",          // overlong '/'
      "\xED\xA0\x80",      // a surrogate
      "\xF4\x90\x80\x80",  // above U+10FFFF
      "\xE2\x82",          // truncated
  };
  for (const std::string& piece : pieces) {
    for (size_t before = 0; before <= 17; ++before) {
      for (size_t after : {0, 1, 7, 8, 9}) {
        const std::string s = std::string(before, 'x') + piece + std::string(after, 'y');
        EXPECT_EQ(IsValidUtf8(s), Reference(s)) << before << " + piece + " << after;
      }
    }
  }
  EXPECT_TRUE(
      IsValidUtf8("abcdefgh\xC3\xA9"
                  "abcdefgh"));
  EXPECT_FALSE(
      IsValidUtf8("abcdefgh\xFF"
                  "abcdefgh"));
  EXPECT_FALSE(
      IsValidUtf8("abcdefgh"
                  "abcdefg\xC3"));  // truncated at the very end
}

TEST(Utf8Test, SanitizeReplacesOnlyTheBrokenBytes) {
  EXPECT_EQ(SanitizeUtf8("abcdefgh\xFFij"), "abcdefgh\xEF\xBF\xBDij");
  EXPECT_EQ(SanitizeUtf8("abcdefghij"), "abcdefghij");
}

}  // namespace
}  // namespace sag
