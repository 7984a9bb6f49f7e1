// Command-line front door shared by audiences-gateway and segment-sim, on top of Abseil flags.
//
// Promises: `--help` (and -h, -help, --helpshort, --helpfull, --help=...) prints a usage line and
// every flag the program owns with its explanation and default, exits 0, and never prints a
// build-machine source path; `--version` prints the version and exits 0; an unknown flag gets a
// hint naming the nearest valid flag before Abseil reports the error (exit 1, as before).
//
//   sag::cli::Program program{"segment-sim", "Usage: segment-sim [--listen=HOST:PORT] ...",
//                             "", [](absl::string_view f) { return f == "sim/main.cc"; }};
//   sag::cli::ParseCommandLineOrExit(argc, argv, program);
//
// Not thread-safe: call from main() before other threads start.
#ifndef SAG_SERVICE_COMMON_CLI_H_
#define SAG_SERVICE_COMMON_CLI_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sag::cli {

struct Program {
  std::string name;     // e.g. "audiences-gateway"
  std::string usage;    // what --help prints first: a description and "Usage: ..." line(s)
  std::string version;  // --version prints "<name> <version>"; empty: Abseil's default
  // True for the source file whose flags are the program's own (shown by --help). It is given
  // the file as ShortSourceName makes it ("app/flags.cc"), whatever directory it was built in.
  std::function<bool(absl::string_view file)> owns_flags_in;
};

// The last two components of a source path, the same however the build named the file:
// "/check/work/main/service/app/flags.cc", "../../service/app/flags.cc" (a ccache build with
// base_dir) and "service/app/flags.cc" all become "app/flags.cc". No build-machine directory
// reaches --help, and `owns_flags_in` matches one name in every build.
std::string ShortSourceName(absl::string_view file);

// Whether argv (before a lone "--") asks for help: -h, --help, -help, --helpfull, --helpshort,
// --help=..., --helpon=..., --helpmatch=..., --helppackage.
bool WantsHelp(int argc, const char* const* argv);

// The usage text, a blank line, then each flag of `program` sorted by name, as
// "  --NAME (EXPLANATION); default: VALUE;" (the format Abseil uses), wrapped at 100 columns.
std::string HelpText(const Program& program);

// One line per argument of argv naming an unregistered flag, e.g.
// "unknown flag --lisen (did you mean --listen?)"; the hint is left out when nothing is close.
// `--noNAME` is known when NAME is a flag. Values given as the next argument are skipped.
std::vector<std::string> UnknownFlagHints(int argc, const char* const* argv);

// The candidate nearest to `key` (case-insensitive edit distance at most about a third of its
// length, and at most 3), or "" when none is that close. Keys over 64 characters get "".
std::string Nearest(absl::string_view key, const std::vector<std::string>& candidates);

// Installs the usage configuration (file names shown without directories), handles --help
// (prints HelpText on stdout, exits 0), prints UnknownFlagHints on stderr, then runs
// absl::ParseCommandLine (which exits 1 on a bad flag, 0 after --version).
void ParseCommandLineOrExit(int argc, char** argv, const Program& program);

}  // namespace sag::cli

#endif  // SAG_SERVICE_COMMON_CLI_H_
