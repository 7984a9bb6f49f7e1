#include "service/cache/in_memory_store.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"

namespace sag::cache {
namespace {

Entry MakeEntry(std::string value, FakeClock& clock, std::vector<std::string> tags = {}) {
  Entry entry;
  entry.value = std::move(value);
  entry.stored = clock.Now();
  entry.tags = std::move(tags);
  return entry;
}

class InMemoryStoreTest : public ::testing::Test {
 protected:
  InMemoryStore::Options Opts(size_t max_bytes, size_t max_entry_bytes = size_t{4} << 20) {
    InMemoryStore::Options options;
    options.max_bytes = max_bytes;
    options.max_entry_bytes = max_entry_bytes;
    options.clock = &clock_;
    return options;
  }
  FakeClock clock_;
};

TEST_F(InMemoryStoreTest, PutGetErase) {
  InMemoryStore store(Opts(1 << 20));
  EXPECT_EQ(store.Get("k"), nullptr);
  ASSERT_TRUE(store.Put("k", MakeEntry("v", clock_, {"t"})));
  auto entry = store.Get("k");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->value, "v");
  EXPECT_EQ(entry->stored, clock_.Now());
  EXPECT_EQ(store.Stats().entries, 1u);
  EXPECT_EQ(store.Stats().bytes, InMemoryStore::Charge("k", *entry));
  store.Erase("k");
  EXPECT_EQ(store.Get("k"), nullptr);
  EXPECT_EQ(entry->value, "v");  // A held entry outlives its removal.
  EXPECT_EQ(store.Stats().entries, 0u);
  EXPECT_EQ(store.Stats().bytes, 0u);
  EXPECT_EQ(store.InvalidateTag("t"), 0u);  // The tag index was cleaned up too.
}

TEST_F(InMemoryStoreTest, ChargeCountsKeyValueTagsAndOverhead) {
  Entry entry = MakeEntry(std::string(100, 'v'), clock_, {"tag1", "tag22"});
  EXPECT_EQ(InMemoryStore::Charge(std::string(10, 'k'), entry),
            InMemoryStore::kEntryOverhead + 10 + 100 + 4 + 5 + 2 * InMemoryStore::kTagOverhead);
}

TEST_F(InMemoryStoreTest, ReplaceUpdatesBytes) {
  InMemoryStore store(Opts(1 << 20));
  store.Put("k", MakeEntry(std::string(1000, 'a'), clock_));
  store.Put("k", MakeEntry("b", clock_));
  EXPECT_EQ(store.Get("k")->value, "b");
  EXPECT_EQ(store.Stats().entries, 1u);
  EXPECT_EQ(store.Stats().bytes, InMemoryStore::Charge("k", MakeEntry("b", clock_)));
}

TEST_F(InMemoryStoreTest, ExpiredEntriesAreNotReturned) {
  InMemoryStore store(Opts(1 << 20));
  Entry entry = MakeEntry("v", clock_);
  entry.expires = clock_.Now() + absl::Seconds(10);
  store.Put("k", std::move(entry));
  clock_.Advance(absl::Seconds(9));
  EXPECT_NE(store.Get("k"), nullptr);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(store.Get("k"), nullptr);
  EXPECT_EQ(store.Stats().expired, 1u);
  EXPECT_EQ(store.Stats().entries, 0u);
  EXPECT_EQ(store.Stats().bytes, 0u);
}

TEST_F(InMemoryStoreTest, ByteBoundHoldsAndEvictsLeastRecentlyUsed) {
  const size_t one = InMemoryStore::Charge("k0", MakeEntry(std::string(100, 'x'), clock_));
  InMemoryStore store(Opts(3 * one));  // Room for exactly three.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store.Put(absl::StrCat("k", i), MakeEntry(std::string(100, 'x'), clock_)));
  }
  EXPECT_EQ(store.Stats().bytes, 3 * one);
  ASSERT_NE(store.Get("k0"), nullptr);  // k0 is now the most recently used: k1 goes first.
  store.Put("k3", MakeEntry(std::string(100, 'x'), clock_));
  EXPECT_EQ(store.Get("k1"), nullptr);
  EXPECT_NE(store.Get("k0"), nullptr);
  EXPECT_NE(store.Get("k2"), nullptr);
  EXPECT_NE(store.Get("k3"), nullptr);
  EXPECT_EQ(store.Stats().evictions, 1u);
  // The Get()s above leave the order (most recent first) k3 k2 k0: k0 goes next, then k2.
  store.Put("k4", MakeEntry(std::string(100, 'x'), clock_));
  EXPECT_EQ(store.Get("k0"), nullptr);
  store.Put("k5", MakeEntry(std::string(100, 'x'), clock_));
  EXPECT_EQ(store.Get("k2"), nullptr);
  EXPECT_NE(store.Get("k3"), nullptr);
  EXPECT_EQ(store.Stats().evictions, 3u);
  EXPECT_LE(store.Stats().bytes, 3 * one);

  // A bigger entry evicts as many as it needs.
  store.Put("big", MakeEntry(std::string(one + 100, 'x'), clock_));
  EXPECT_LE(store.Stats().bytes, 3 * one);
  EXPECT_NE(store.Get("big"), nullptr);
  EXPECT_EQ(store.Stats().entries, 1u);
}

TEST_F(InMemoryStoreTest, EvictionsAreReportedOutsideTheLock) {
  const size_t one = InMemoryStore::Charge("k0", MakeEntry(std::string(100, 'x'), clock_));
  InMemoryStore::Options options = Opts(3 * one);
  std::vector<size_t> reported;
  InMemoryStore* self = nullptr;
  options.on_evict = [&](size_t n) {
    reported.push_back(n);
    EXPECT_GT(self->Stats().evictions, 0u);  // Would deadlock if called under the lock.
  };
  InMemoryStore store(options);
  self = &store;
  for (int i = 0; i < 3; ++i)
    store.Put(absl::StrCat("k", i), MakeEntry(std::string(100, 'x'), clock_));
  EXPECT_TRUE(reported.empty());
  store.Put("k3", MakeEntry(std::string(100, 'x'), clock_));
  store.Put("big", MakeEntry(std::string(2 * one, 'x'), clock_));   // Needs all three gone.
  store.Put("huge", MakeEntry(std::string(4 * one, 'x'), clock_));  // Refused: evicts nothing.
  EXPECT_EQ(reported, (std::vector<size_t>{1, 3}));
  EXPECT_EQ(store.Stats().evictions, 4u);
}

TEST_F(InMemoryStoreTest, BoundHoldsUnderManyPuts) {
  InMemoryStore store(Opts(64 * 1024));
  for (int i = 0; i < 5000; ++i) {
    store.Put(absl::StrCat("key-", i), MakeEntry(std::string(i % 700, 'v'), clock_, {"t"}));
    ASSERT_LE(store.Stats().bytes, 64u * 1024) << i;
  }
  EXPECT_GT(store.Stats().evictions, 0u);
}

TEST_F(InMemoryStoreTest, PerEntryCapRefusesAndDropsTheOlderEntry) {
  InMemoryStore store(Opts(1 << 20, /*max_entry_bytes=*/1000));
  ASSERT_TRUE(store.Put("k", MakeEntry("small", clock_)));
  EXPECT_FALSE(store.Put("k", MakeEntry(std::string(1000, 'x'), clock_)));
  EXPECT_EQ(store.Get("k"), nullptr);  // The older answer must not outlive the newer one.
  EXPECT_EQ(store.Stats().rejected, 1u);
  EXPECT_EQ(store.Stats().bytes, 0u);
  // An entry charged exactly the cap is stored.
  const size_t room = 1000 - InMemoryStore::kEntryOverhead - 1;
  EXPECT_TRUE(store.Put("k", MakeEntry(std::string(room, 'x'), clock_)));
  // An entry bigger than the whole store is refused too, without evicting anything.
  InMemoryStore tiny(Opts(500, 10000));
  ASSERT_TRUE(tiny.Put("a", MakeEntry("v", clock_)));
  EXPECT_FALSE(tiny.Put("b", MakeEntry(std::string(600, 'x'), clock_)));
  EXPECT_NE(tiny.Get("a"), nullptr);
}

TEST_F(InMemoryStoreTest, InvalidateTagDropsExactlyTheTaggedEntries) {
  InMemoryStore store(Opts(1 << 20));
  store.Put("a", MakeEntry("1", clock_, {"space", "aud1"}));
  store.Put("b", MakeEntry("2", clock_, {"space", "aud2"}));
  store.Put("c", MakeEntry("3", clock_, {"other"}));
  EXPECT_EQ(store.InvalidateTag("aud1"), 1u);
  EXPECT_EQ(store.Get("a"), nullptr);
  EXPECT_NE(store.Get("b"), nullptr);
  EXPECT_EQ(store.InvalidateTag("space"), 1u);  // "a" is already gone.
  EXPECT_EQ(store.Get("b"), nullptr);
  EXPECT_NE(store.Get("c"), nullptr);
  EXPECT_EQ(store.InvalidateTag("aud2"), 0u);
  EXPECT_EQ(store.InvalidateTag("missing"), 0u);
  EXPECT_EQ(store.Stats().invalidated, 2u);
  EXPECT_EQ(store.Stats().entries, 1u);
  EXPECT_EQ(store.Stats().bytes, InMemoryStore::Charge("c", MakeEntry("3", clock_, {"other"})));
  // A replaced entry no longer answers to its old tags.
  store.Put("c", MakeEntry("4", clock_, {"new"}));
  EXPECT_EQ(store.InvalidateTag("other"), 0u);
  EXPECT_EQ(store.InvalidateTag("new"), 1u);
}

}  // namespace
}  // namespace sag::cache
