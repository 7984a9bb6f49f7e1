#include "service/common/cli.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sag::cli {
namespace {

constexpr size_t kWidth = 100;

// "--name=value" / "-name" -> "name"; "" for anything that is not a flag.
absl::string_view FlagName(absl::string_view arg, bool* has_value) {
  if (arg.size() < 2 || arg[0] != '-') return "";
  arg.remove_prefix(arg[1] == '-' ? 2 : 1);
  const size_t eq = arg.find('=');
  *has_value = eq != absl::string_view::npos;
  return arg.substr(0, eq);
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Appends `text` to `out` wrapped at kWidth, continuation lines indented by `indent` spaces.
void AppendWrapped(absl::string_view text, size_t indent, size_t column, std::string* out) {
  bool first = true;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!first && column + 1 + word.size() > kWidth) {
      absl::StrAppend(out, "\n", std::string(indent, ' '));
      column = indent;
    } else if (!first) {
      out->push_back(' ');
      ++column;
    }
    absl::StrAppend(out, word);
    column += word.size();
    first = false;
  }
}

}  // namespace

std::string ShortSourceName(absl::string_view file) {
  const size_t last = file.rfind('/');
  if (last == absl::string_view::npos || last == 0) return std::string(file);
  const size_t before = file.rfind('/', last - 1);
  if (before != absl::string_view::npos) file.remove_prefix(before + 1);
  return std::string(file);
}

bool WantsHelp(int argc, const char* const* argv) {
  for (int i = 1; i < argc && argv[i] != nullptr; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") return false;
    if (arg == "-h") return true;
    bool has_value = false;
    const absl::string_view name = FlagName(arg, &has_value);
    if (name == "help" || name == "helpfull" || name == "helpshort" || name == "helppackage" ||
        name == "helpon" || name == "helpmatch") {
      return true;
    }
  }
  return false;
}

std::string HelpText(const Program& program) {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (program.owns_flags_in && program.owns_flags_in(flag->Filename())) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  std::string out = absl::StrCat(program.usage, "\n\nFlags:\n");
  for (const absl::CommandLineFlag* flag : flags) {
    std::string value = flag->DefaultValue();
    if (flag->IsOfType<std::string>()) value = absl::StrCat("\"", value, "\"");
    const std::string head = absl::StrCat("  --", flag->Name(), " (");
    out += head;
    AppendWrapped(absl::StrCat(flag->Help(), "); default: ", value, ";"), 6, head.size(), &out);
    out += "\n";
  }
  absl::StrAppend(&out, "\nAlso: --version; --flagfile=FILE (one flag a line).\n");
  return out;
}

std::string Nearest(absl::string_view key, const std::vector<std::string>& candidates) {
  if (key.empty() || key.size() > 64) return "";
  const std::string lower = absl::AsciiStrToLower(key);
  std::string best;
  size_t best_distance = std::min<size_t>(3, std::max<size_t>(1, key.size() / 3)) + 1;
  for (const std::string& candidate : candidates) {
    const size_t d = EditDistance(lower, candidate);
    if (d < best_distance) {  // The first of equally near candidates wins.
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

std::vector<std::string> UnknownFlagHints(int argc, const char* const* argv) {
  std::vector<std::string> names;
  for (const auto& [name, flag] : absl::GetAllFlags()) names.emplace_back(name);
  std::sort(names.begin(), names.end());
  std::vector<std::string> hints;
  for (int i = 1; i < argc && argv[i] != nullptr; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    bool has_value = false;
    const absl::string_view name = FlagName(arg, &has_value);
    if (name.empty()) continue;
    if (const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name)) {
      if (!has_value && !flag->IsOfType<bool>()) ++i;  // "--listen ADDR": skip ADDR.
      continue;
    }
    if (absl::StartsWith(name, "no")) {
      const absl::CommandLineFlag* positive = absl::FindCommandLineFlag(name.substr(2));
      if (positive != nullptr && positive->IsOfType<bool>()) continue;
    }
    std::string shown(name.substr(0, 64));  // Printable: control and non-ASCII bytes become '?'.
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    const std::string near = Nearest(name, names);
    hints.push_back(near.empty()
                        ? absl::StrCat("unknown flag --", shown)
                        : absl::StrCat("unknown flag --", shown, " (did you mean --", near, "?)"));
  }
  return hints;
}

void ParseCommandLineOrExit(int argc, char** argv, const Program& program) {
  absl::FlagsUsageConfig config;
  // CommandLineFlag::Filename() returns this, so `owns_flags_in` sees it too.
  config.normalize_filename = [](absl::string_view file) { return ShortSourceName(file); };
  config.contains_help_flags = program.owns_flags_in;
  config.contains_helpshort_flags = program.owns_flags_in;
  if (!program.version.empty()) {
    config.version_string = [text = absl::StrCat(program.name, " ", program.version, "\n")] {
      return text;
    };
  }
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(program.usage);
  if (WantsHelp(argc, argv)) {
    std::cout << HelpText(program) << std::flush;
    std::exit(0);
  }
  for (const std::string& hint : UnknownFlagHints(argc, argv)) {
    std::cerr << program.name << ": " << hint << "\n";
  }
  absl::ParseCommandLine(argc, argv);
}

}  // namespace sag::cli
