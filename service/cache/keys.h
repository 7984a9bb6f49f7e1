// Cache keys and invalidation tags for the listing cache.
//
// A key names one listing answer: workspace + space + RPC + every request parameter. A tag names a
// group of keys that one write can make stale. Both are built here, in one place, so the listing
// path (which tags an entry carries) and the write path (which tags a write drops) cannot drift.
//
// Encoding: every component is length-prefixed ("<size>:<bytes>"), so no choice of workspace,
// space, RPC or parameter bytes can make two different tuples produce the same key or tag. In
// particular two workspaces (two Segment tokens) never share an entry, whatever their names.
//
// Tagging scheme (what the gateway does):
//   A cached listing of RPC R in (workspace W, space S) carries SpaceTag(W, S, R); a listing scoped
//   to one audience A (schedules, consumers) also carries AudienceTag(W, S, R, A).
//   See ListingTags().
//
//   A successful write drops, for each listing R in its operation-table row's `invalidates`:
//     - ListAudienceSchedulesFromSpaceAndAudience: AudienceTag(W, S, R, A) for the written audience
//     A
//       (a schedule write changes only that audience's schedules);
//     - every other listing: SpaceTag(W, S, R).
//   With the operation table this gives:
//     CreateAudience / UpdateAudienceForSpace   -> every ListAudiences and every
//                                                  ListAudienceConsumersFromSpaceAndAudience entry
//                                                  of the space (a new or changed audience can
//                                                  reference any other audience of the space);
//     RemoveAudienceFromSpace                   -> the same, plus that audience's schedule
//     listings; Add/Update/RemoveAudienceSchedule...      -> that audience's schedule listings, and
//     every
//                                                  ListAudiences entry of the space (listings made
//                                                  with include=schedules embed schedules; all
//                                                  ListAudiences entries of the space are dropped,
//                                                  whatever their parameters).
//   See InvalidationTags().
//
// Thread-safe: all functions are pure.
#ifndef SAG_SERVICE_CACHE_KEYS_H_
#define SAG_SERVICE_CACHE_KEYS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sag::cache {

// RPC names of the cacheable listings (as in the operation table).
inline constexpr absl::string_view kListAudiences = "ListAudiences";
inline constexpr absl::string_view kListSchedules = "ListAudienceSchedulesFromSpaceAndAudience";
inline constexpr absl::string_view kListConsumers = "ListAudienceConsumersFromSpaceAndAudience";

// The key of one listing answer. `canonical_params` must be a deterministic encoding of every
// request parameter (the gateway passes the request message's deterministic serialization), so
// that two requests share a key exactly when they would get the same upstream answer.
std::string MakeKey(absl::string_view workspace, absl::string_view space, absl::string_view rpc,
                    absl::string_view canonical_params);

// Every `rpc` listing of `space` in `workspace`.
std::string SpaceTag(absl::string_view workspace, absl::string_view space, absl::string_view rpc);

// Every `rpc` listing of one audience.
std::string AudienceTag(absl::string_view workspace, absl::string_view space, absl::string_view rpc,
                        absl::string_view audience_id);

// The tags a cached `rpc` listing carries: SpaceTag, plus AudienceTag when `audience_id` is not
// empty (the listing is scoped to one audience).
std::vector<std::string> ListingTags(absl::string_view workspace, absl::string_view space,
                                     absl::string_view rpc, absl::string_view audience_id = {});

// The tags a successful write drops, given the listings it invalidates (its operation-table row's
// `invalidates`) and the audience it wrote (empty when it has none, e.g. CreateAudience). Rules in
// the file comment. Duplicates are removed; the order is unspecified.
std::vector<std::string> InvalidationTags(absl::string_view workspace, absl::string_view space,
                                          absl::string_view audience_id,
                                          const std::vector<absl::string_view>& invalidates);

}  // namespace sag::cache

#endif  // SAG_SERVICE_CACHE_KEYS_H_
