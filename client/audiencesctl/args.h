// The command-line parser of audiencesctl: flags and positional arguments mixed in any order,
// in the GNU/kubectl style.
//
//   --name=value   --name value   -n value   -nvalue   -n=value   --flag (boolean)
//   --flag=false   -name=value (one dash, a long name: absl-flags compatible)
//   --             everything after is positional
//   -              a positional (stdin)
//
// Every flag is declared once (FlagSpec) with whether it takes a value, so "--id aud_1" and
// "--all aud_1" parse without knowing the command; the command then checks that the flags given
// are its own.
#ifndef SAG_CLIENT_AUDIENCESCTL_ARGS_H_
#define SAG_CLIENT_AUDIENCESCTL_ARGS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace audiencesctl {

struct FlagSpec {
  const char* name;        // Long name, without "--".
  char short_name;         // 0 when none.
  bool takes_value;        // false: a boolean flag.
  const char* value_name;  // For help: "ID", "FILE"...
  const char* help;
};

struct Args {
  std::vector<std::string> positionals;
  // Flags in the order given, by long name; a boolean flag's value is "true" or "false".
  std::vector<std::pair<std::string, std::string>> flags;

  bool Has(absl::string_view name) const;
  // The last value given for `name`, else `fallback`.
  std::string Get(absl::string_view name, const std::string& fallback = "") const;
  bool GetBool(absl::string_view name) const;
};

// Parses argv (without the program name) against `specs`.
absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& argv,
                               const std::vector<FlagSpec>& specs);

// "30s", "1m30s", "500ms" (absl durations) or a plain number of seconds.
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view name, absl::string_view text);
// A base-10 integer.
absl::StatusOr<int> ParseIntFlag(absl::string_view name, absl::string_view text);
// "1,3,5" -> {1,3,5}.
absl::StatusOr<std::vector<int>> ParseIntList(absl::string_view name, absl::string_view text);
// Days of the week, 0 = Sunday .. 6 = Saturday, as numbers or names ("mon,wed", "sunday").
absl::StatusOr<std::vector<int>> ParseDays(absl::string_view text);
// "a,b,c" -> {"a","b","c"} (empty pieces dropped, spaces trimmed).
std::vector<std::string> SplitList(absl::string_view text);

}  // namespace audiencesctl

#endif  // SAG_CLIENT_AUDIENCESCTL_ARGS_H_
