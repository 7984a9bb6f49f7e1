// The command-line parser of audiencesctl (on CLI11): flags and positional arguments mixed in
// any order, in the GNU/kubectl style.
//
//   --name=value   --name value   -n value   -nvalue   -n=value   --flag (boolean)
//   --flag=false   -name=value (one dash, a long name: absl-flags compatible)
//   --             everything after is positional
//   -              a positional (stdin)
//
// Every flag is declared once (FlagSpec) with whether it takes a value, so "--id aud_1" and
// "--all aud_1" parse without knowing the command. Flags not in the specs are not an error here:
// they are returned in Args::unknown for the caller to explain (with a suggestion).
// Also the value parsers of flags, and the "did you mean" of every name a user types.
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
  // Flags given, by long name (the last value of each); a boolean flag's value is "true"/"false".
  std::vector<std::pair<std::string, std::string>> flags;
  // Flags not in the specs, as written ("--nmae", "-x"), in order.
  std::vector<std::string> unknown;

  bool Has(absl::string_view name) const;
  // The value given for `name`, else `fallback`.
  std::string Get(absl::string_view name, const std::string& fallback = "") const;
  bool GetBool(absl::string_view name) const;
};

// Parses argv (without the program name) against `specs`. Fails on a flag missing its value or
// a boolean flag given something other than true/false.
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

// The candidates nearest to `typed` by edit distance (case-insensitive, a transposition counts
// one): those at the smallest distance, if it is small enough to be a typo (at most 1 + a
// quarter of the length); at most 3.
std::vector<std::string> Nearest(absl::string_view typed,
                                 const std::vector<std::string>& candidates);
// " (did you mean X?)" / " (did you mean X or Y?)", or "" when nothing is near.
std::string DidYouMean(absl::string_view typed, const std::vector<std::string>& candidates);

// A duration for people: "10.2s", "1m5s", "250ms", "0s" (a tenth of a second at most).
std::string HumanDuration(absl::Duration d);
// `text` with every absl-formatted duration ("10.193676945s", "1m0.5s") written by HumanDuration.
std::string HumanizeDurations(absl::string_view text);

}  // namespace audiencesctl

#endif  // SAG_CLIENT_AUDIENCESCTL_ARGS_H_
