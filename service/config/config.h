// The `--config` file: YAML or JSON (JSON is YAML), read once at start-up.
//
//   # every gateway flag may be set here; the command line wins over the file
//   listen: 0.0.0.0:50051
//   metrics_listen: 0.0.0.0:9464
//   cache_ttl: 30s
//   rate_limits: [ListAudiences=5/1m, default=100/1m]    # a list is joined with ","
//   workspaces:
//     - name: acme
//       token_file: /var/run/secrets/segment/acme
//       spaces: [spa_123, spa_456]
//       upstream_url: https://eu1.api.segmentapis.com    # optional
//   callers: ...   # sections parsed by their own components: callers, access
//
// Use at start-up, in this order:
//
//   std::set<std::string> given = sag::config::FlagsSetOnCommandLine(argc, argv);
//   absl::ParseCommandLine(argc, argv);
//   auto root = sag::config::LoadConfigFile(absl::GetFlag(FLAGS_config));
//   absl::Status st = root.ok() ? sag::config::ApplyFlagsFromConfig(*root, given) : root.status();
//   auto workspaces = sag::config::ParseWorkspaces(*root);
//   // on any error: print the message, exit(sag::config::kConfigErrorExitCode)
//
// Every error message starts with "config: " and names the key (with its path inside sections)
// and, when known, the line: "config: unknown key 'foo' (line 3)",
// "config: workspaces[1].token_file: required (line 7)".
//
// Thread safety: call from main() before other threads read flags; the functions keep no state.
// Hostile input (files over 1 MiB, binary, NUL bytes, nesting deeper than yaml-cpp's guard)
// gives an error, never a crash.
#ifndef SAG_SERVICE_CONFIG_CONFIG_H_
#define SAG_SERVICE_CONFIG_CONFIG_H_

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sag {
namespace config {

// The gateway's exit code for a configuration error.
inline constexpr int kConfigErrorExitCode = 2;
// Larger config files are refused.
inline constexpr size_t kMaxConfigBytes = 1 << 20;
// Top-level keys that are sections, not flags. ApplyFlagsFromConfig skips them.
inline constexpr const char* kConfigSections[] = {"workspaces", "callers", "access"};
// Sections once reserved but never read: refused with an error naming them and what to use
// instead, so that a setting there is not silently ignored.
inline constexpr const char* kUnsupportedSections[][2] = {
    {"limits", "set --rate_limits (key rate_limits) instead"},
    {"cache", "set the cache_* keys (cache_ttl, cache_max_bytes, ...) instead"}};

// Reads and parses `path`. Errors: NotFound / PermissionDenied (cannot open), InvalidArgument
// (over kMaxConfigBytes, not text, not YAML/JSON, top level neither a mapping nor empty). An
// empty file gives a Null node.
absl::StatusOr<YAML::Node> LoadConfigFile(const std::string& path);
// The same for text in memory; `source` names it in messages (e.g. the file name).
absl::StatusOr<YAML::Node> ParseConfigText(absl::string_view text, absl::string_view source);

// Sets flags from the top-level scalar keys of `root`: for each key that names a registered absl
// flag (absl::FindCommandLineFlag) and is not in `flags_set_on_command_line`, the flag is parsed
// from the value (a list of scalars is joined with ","). Keys in kConfigSections are skipped;
// kUnsupportedSections are errors ("config: section 'limits' is not supported: set ... (line 4)").
// InvalidArgument, listing every problem (one per line) in file order: an unknown key (with a
// suggestion when a flag name is close), a duplicate key, a key that may not be set from a file
// (config, flagfile, help..., version), a value that is not a scalar or is null, a value the flag
// refuses (with the flag's own message). On error no flag is changed (the ones already set are
// restored). A Null root (empty file) sets nothing and is OK.
absl::Status ApplyFlagsFromConfig(const YAML::Node& root,
                                  const std::set<std::string>& flags_set_on_command_line);

// The names of the flags given in argv, scanned before absl parses it: every argument of the form
// `--name`, `--name=value`, `-name`, `-name=value` up to a lone `--`; for `--noname` both "noname"
// and, when "name" is a registered flag, "name". The values themselves are not checked (absl
// does that). Flags inside a --flagfile are not seen: use --config instead. argv[0] is skipped.
std::set<std::string> FlagsSetOnCommandLine(int argc, const char* const* argv);

// One Segment workspace the gateway talks to.
struct WorkspaceConfig {
  std::string name;                         // [A-Za-z0-9][A-Za-z0-9_.-]{0,127}, unique
  std::string token_file;                   // required; relative to the working directory
  std::vector<std::string> spaces;          // space ids it serves; empty = not restricted
  std::optional<std::string> upstream_url;  // overrides --upstream_url; http:// or https://
};

// The `workspaces` section: a list of mappings with keys name, token_file, spaces, upstream_url.
// Absent section (or Null root) -> empty list. InvalidArgument, listing every problem with its
// key path: `workspaces[1].token_file: required`, `workspaces[0].spaces[2]: invalid space id
// 'a b'`, duplicate names, a space listed by two workspaces, unknown keys.
absl::StatusOr<std::vector<WorkspaceConfig>> ParseWorkspaces(const YAML::Node& root);

// True when `id` matches [A-Za-z0-9][A-Za-z0-9_.-]{0,127} (space ids and workspace names).
bool IsValidId(absl::string_view id);

}  // namespace config
}  // namespace sag

#endif  // SAG_SERVICE_CONFIG_CONFIG_H_
