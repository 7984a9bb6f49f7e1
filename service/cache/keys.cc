#include "service/cache/keys.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace sag::cache {
namespace {

// Appends "<size>:<bytes>": unambiguous whatever the bytes.
void AppendPart(std::string* out, absl::string_view part) {
  absl::StrAppend(out, part.size(), ":", part);
}

std::string Build(char kind, std::initializer_list<absl::string_view> parts) {
  std::string out(1, kind);
  for (absl::string_view part : parts) AppendPart(&out, part);
  return out;
}

}  // namespace

std::string MakeKey(absl::string_view workspace, absl::string_view space, absl::string_view rpc,
                    absl::string_view canonical_params) {
  return Build('k', {workspace, space, rpc, canonical_params});
}

std::string SpaceTag(absl::string_view workspace, absl::string_view space, absl::string_view rpc) {
  return Build('s', {workspace, space, rpc});
}

std::string AudienceTag(absl::string_view workspace, absl::string_view space, absl::string_view rpc,
                        absl::string_view audience_id) {
  return Build('a', {workspace, space, rpc, audience_id});
}

std::vector<std::string> ListingTags(absl::string_view workspace, absl::string_view space,
                                     absl::string_view rpc, absl::string_view audience_id) {
  std::vector<std::string> tags = {SpaceTag(workspace, space, rpc)};
  if (!audience_id.empty()) tags.push_back(AudienceTag(workspace, space, rpc, audience_id));
  return tags;
}

std::vector<std::string> InvalidationTags(absl::string_view workspace, absl::string_view space,
                                          absl::string_view audience_id,
                                          const std::vector<absl::string_view>& invalidates) {
  std::vector<std::string> tags;
  for (absl::string_view rpc : invalidates) {
    if (rpc == kListSchedules && !audience_id.empty()) {
      tags.push_back(AudienceTag(workspace, space, rpc, audience_id));
    } else {
      tags.push_back(SpaceTag(workspace, space, rpc));
    }
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

}  // namespace sag::cache
