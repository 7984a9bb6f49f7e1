#include "service/cache/keys.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "service/operations/operation_table.h"

namespace sag::cache {
namespace {

TEST(KeysTest, EveryComponentSeparatesKeys) {
  const std::string base = MakeKey("ws1", "spa_1", kListAudiences, "params");
  EXPECT_EQ(base, MakeKey("ws1", "spa_1", kListAudiences, "params"));
  EXPECT_NE(base, MakeKey("ws2", "spa_1", kListAudiences, "params"));
  EXPECT_NE(base, MakeKey("ws1", "spa_2", kListAudiences, "params"));
  EXPECT_NE(base, MakeKey("ws1", "spa_1", kListConsumers, "params"));
  EXPECT_NE(base, MakeKey("ws1", "spa_1", kListAudiences, "params2"));
  EXPECT_NE(base, MakeKey("ws1", "spa_1", kListAudiences, ""));
}

TEST(KeysTest, ComponentBoundariesAreUnambiguous) {
  // Moving bytes from one component to the next never yields the same key.
  EXPECT_NE(MakeKey("ab", "c", "r", "p"), MakeKey("a", "bc", "r", "p"));
  EXPECT_NE(MakeKey("a", "", "r", "p"), MakeKey("", "a", "r", "p"));
  EXPECT_NE(MakeKey("w", "s", "r", "1:x"), MakeKey("w", "s", "r1:", "x"));
  // Workspace names that look like encodings cannot collide either.
  EXPECT_NE(MakeKey("1:a1:b", "", "r", "p"), MakeKey("1:a", "b", "r", "p"));
  // Binary parameters (a serialized message) are fine.
  const std::string binary("\0\x01\xff", 3);
  EXPECT_NE(MakeKey("w", "s", "r", binary), MakeKey("w", "s", "r", std::string("\0\x01", 2)));
}

TEST(KeysTest, TagsAreDistinctFromEachOtherAndScoped) {
  EXPECT_NE(SpaceTag("w", "s", kListAudiences), SpaceTag("w2", "s", kListAudiences));
  EXPECT_NE(SpaceTag("w", "s", kListAudiences), SpaceTag("w", "s2", kListAudiences));
  EXPECT_NE(SpaceTag("w", "s", kListAudiences), SpaceTag("w", "s", kListConsumers));
  EXPECT_NE(AudienceTag("w", "s", kListSchedules, "a1"),
            AudienceTag("w", "s", kListSchedules, "a2"));
  EXPECT_NE(AudienceTag("w", "s", kListSchedules, ""), SpaceTag("w", "s", kListSchedules));
}

TEST(KeysTest, ListingTags) {
  EXPECT_EQ(ListingTags("w", "s", kListAudiences),
            std::vector<std::string>{SpaceTag("w", "s", kListAudiences)});
  EXPECT_EQ(ListingTags("w", "s", kListSchedules, "aud"),
            (std::vector<std::string>{SpaceTag("w", "s", kListSchedules),
                                      AudienceTag("w", "s", kListSchedules, "aud")}));
}

// The tags each write of the operation table drops.
std::set<std::string> WriteTags(absl::string_view rpc, absl::string_view audience) {
  const ops::Operation* op = ops::FindOperation(rpc);
  EXPECT_NE(op, nullptr) << rpc;
  if (op == nullptr) return {};
  std::vector<std::string> tags = InvalidationTags("w", "s", audience, op->invalidates);
  return std::set<std::string>(tags.begin(), tags.end());
}

// Whether a listing with these tags is dropped by a write dropping `dropped`.
bool Dropped(const std::vector<std::string>& listing_tags, const std::set<std::string>& dropped) {
  for (const std::string& tag : listing_tags) {
    if (dropped.count(tag) > 0) return true;
  }
  return false;
}

TEST(KeysTest, AudienceWritesDropTheSpacesAudienceAndConsumerListings) {
  for (absl::string_view write : {"CreateAudience", "UpdateAudienceForSpace"}) {
    SCOPED_TRACE(write);
    const std::set<std::string> dropped = WriteTags(write, write == "CreateAudience" ? "" : "a1");
    EXPECT_TRUE(Dropped(ListingTags("w", "s", kListAudiences), dropped));
    EXPECT_TRUE(Dropped(ListingTags("w", "s", kListConsumers, "a1"), dropped));
    EXPECT_TRUE(Dropped(ListingTags("w", "s", kListConsumers, "other"), dropped));
    EXPECT_FALSE(Dropped(ListingTags("w", "s", kListSchedules, "a1"), dropped));
    // Other spaces and workspaces keep their entries.
    EXPECT_FALSE(Dropped(ListingTags("w", "s2", kListAudiences), dropped));
    EXPECT_FALSE(Dropped(ListingTags("w2", "s", kListAudiences), dropped));
  }
  const std::set<std::string> removed = WriteTags("RemoveAudienceFromSpace", "a1");
  EXPECT_TRUE(Dropped(ListingTags("w", "s", kListAudiences), removed));
  EXPECT_TRUE(Dropped(ListingTags("w", "s", kListConsumers, "other"), removed));
  EXPECT_TRUE(Dropped(ListingTags("w", "s", kListSchedules, "a1"), removed));
  EXPECT_FALSE(Dropped(ListingTags("w", "s", kListSchedules, "a2"), removed));
}

TEST(KeysTest, ScheduleWritesDropThatAudiencesSchedulesAndTheSpacesAudienceListings) {
  for (absl::string_view write :
       {"AddAudienceScheduleToAudience", "UpdateAudienceScheduleForAudience",
        "RemoveAudienceScheduleFromAudience"}) {
    SCOPED_TRACE(write);
    const std::set<std::string> dropped = WriteTags(write, "a1");
    EXPECT_TRUE(Dropped(ListingTags("w", "s", kListSchedules, "a1"), dropped));
    EXPECT_FALSE(Dropped(ListingTags("w", "s", kListSchedules, "a2"), dropped));
    EXPECT_TRUE(Dropped(ListingTags("w", "s", kListAudiences), dropped));
    EXPECT_FALSE(Dropped(ListingTags("w", "s", kListConsumers, "a1"), dropped));
    EXPECT_FALSE(Dropped(ListingTags("w", "s2", kListAudiences), dropped));
  }
}

TEST(KeysTest, ReadsAndPreviewsDropNothing) {
  for (absl::string_view rpc : {"GetAudience", "ListAudiences", "CreateAudiencePreview"}) {
    EXPECT_TRUE(WriteTags(rpc, "a1").empty()) << rpc;
  }
}

TEST(KeysTest, InvalidationTagsWithoutAudienceFallBackToTheSpace) {
  EXPECT_EQ(InvalidationTags("w", "s", "", {kListSchedules, kListSchedules}),
            std::vector<std::string>{SpaceTag("w", "s", kListSchedules)});
}

}  // namespace
}  // namespace sag::cache
