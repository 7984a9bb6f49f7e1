#include "audiencesctl/args.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <deque>
#include <optional>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace audiencesctl {
namespace {

const FlagSpec* FindLong(const std::vector<FlagSpec>& specs, absl::string_view name) {
  for (const FlagSpec& spec : specs) {
    if (name == spec.name) return &spec;
  }
  return nullptr;
}

const FlagSpec* FindShort(const std::vector<FlagSpec>& specs, char c) {
  for (const FlagSpec& spec : specs) {
    if (spec.short_name != 0 && spec.short_name == c) return &spec;
  }
  return nullptr;
}

absl::StatusOr<std::string> BoolValue(absl::string_view flag, absl::string_view text) {
  const std::string v = absl::AsciiStrToLower(text);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return std::string("true");
  if (v == "false" || v == "0" || v == "no" || v == "off") return std::string("false");
  return absl::InvalidArgumentError(
      absl::StrCat("flag ", flag, " is true or false, not '", text, "'"));
}

// Rewrites what CLI11 does not read itself into what it does: "-name=v" (one dash, a long name)
// -> "--name=v"; "-o=v" -> "-o" "v"; "--name=" -> "--name" ""; "--flag=no" -> "--flag=false".
absl::StatusOr<std::vector<std::string>> Normalize(const std::vector<std::string>& argv,
                                                   const std::vector<FlagSpec>& specs) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      out.insert(out.end(), argv.begin() + i, argv.end());
      break;
    }
    if (arg.size() > 2 && arg[0] == '-' && arg[1] != '-') {
      absl::string_view body = absl::string_view(arg).substr(1);
      if (FindLong(specs, body.substr(0, body.find('='))) != nullptr) {
        arg = absl::StrCat("-", arg);
      } else if (arg[2] == '=' && FindShort(specs, arg[1]) != nullptr) {
        out.push_back(arg.substr(0, 2));
        out.push_back(arg.substr(3));
        continue;
      }
    }
    const size_t eq = arg.find('=');
    if (absl::StartsWith(arg, "--") && eq != std::string::npos) {
      const std::string name = arg.substr(2, eq - 2);
      const FlagSpec* spec = FindLong(specs, name);
      if (spec != nullptr && !spec->takes_value) {
        absl::StatusOr<std::string> b = BoolValue(absl::StrCat("--", name), arg.substr(eq + 1));
        if (!b.ok()) return b.status();
        arg = absl::StrCat("--", name, "=", *b);
      } else if (spec != nullptr && eq + 1 == arg.size()) {
        out.push_back(arg.substr(0, eq));
        out.push_back("");
        continue;
      }
    }
    out.push_back(std::move(arg));
  }
  return out;
}

// "--space: 1 required TEXT missing" -> the spec of --space.
const FlagSpec* SpecNamedIn(const std::vector<FlagSpec>& specs, const std::string& message) {
  for (const FlagSpec& spec : specs) {
    if (absl::StartsWith(message, absl::StrCat("--", spec.name, ":")) ||
        (spec.short_name != 0 &&
         absl::StartsWith(message, absl::StrCat("-", std::string(1, spec.short_name), ":")))) {
      return &spec;
    }
  }
  return nullptr;
}

}  // namespace

bool Args::Has(absl::string_view name) const {
  return std::any_of(flags.begin(), flags.end(), [&](const auto& f) { return f.first == name; });
}

std::string Args::Get(absl::string_view name, const std::string& fallback) const {
  for (auto it = flags.rbegin(); it != flags.rend(); ++it) {
    if (it->first == name) return it->second;
  }
  return fallback;
}

bool Args::GetBool(absl::string_view name) const { return Get(name, "false") == "true"; }

absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& argv,
                               const std::vector<FlagSpec>& specs) {
  absl::StatusOr<std::vector<std::string>> normalized = Normalize(argv, specs);
  if (!normalized.ok()) return normalized.status();
  CLI::App app;
  app.set_help_flag();
  app.allow_extras(true);
  std::deque<std::string> values(specs.size());
  std::deque<bool> bools(specs.size(), false);
  std::vector<CLI::Option*> options;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::string names = absl::StrCat("--", specs[i].name);
    if (specs[i].short_name != 0)
      names = absl::StrCat("-", std::string(1, specs[i].short_name), ",", names);
    options.push_back(specs[i].takes_value ? app.add_option(names, values[i])
                                           : app.add_flag(names, bools[i]));
    options.back()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  Args args;
  app.add_option("args", args.positionals);
  std::vector<std::string> reversed(normalized->rbegin(), normalized->rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    const FlagSpec* spec = SpecNamedIn(specs, e.what());
    if (spec != nullptr && spec->takes_value) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", spec->name, " needs a value (", spec->value_name, ")"));
    }
    return absl::InvalidArgumentError(e.what());
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (options[i]->count() == 0) continue;
    args.flags.emplace_back(specs[i].name,
                            specs[i].takes_value ? values[i] : (bools[i] ? "true" : "false"));
  }
  for (const std::string& extra : app.remaining()) {
    if (extra.size() > 1 && extra[0] == '-') {
      args.unknown.push_back(extra.substr(0, extra.find('=')));
    } else {
      args.positionals.push_back(extra);
    }
  }
  return args;
}

namespace {

// Edit distance with transpositions (optimal string alignment), case-insensitive.
size_t Distance(absl::string_view a_in, absl::string_view b_in) {
  const std::string a = absl::AsciiStrToLower(a_in);
  const std::string b = absl::AsciiStrToLower(b_in);
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::vector<std::string> Nearest(absl::string_view typed,
                                 const std::vector<std::string>& candidates) {
  if (typed.size() > 256) return {};  // Hostile input: no quadratic work on it.
  const size_t limit = 1 + typed.size() / 4;
  size_t best = limit + 1;
  std::vector<std::string> out;
  for (const std::string& c : candidates) {
    const size_t d = Distance(typed, c);
    if (d > best || std::find(out.begin(), out.end(), c) != out.end()) continue;
    if (d < best) out.clear();
    best = d;
    if (out.size() < 3) out.push_back(c);
  }
  return out;
}

std::string DidYouMean(absl::string_view typed, const std::vector<std::string>& candidates) {
  std::vector<std::string> near = Nearest(typed, candidates);
  if (near.empty()) return "";
  if (near.size() == 1) return absl::StrCat(" (did you mean ", near[0], "?)");
  const std::string last = near.back();
  near.pop_back();
  return absl::StrCat(" (did you mean ", absl::StrJoin(near, ", "), " or ", last, "?)");
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) return absl::StrCat("-", HumanDuration(-d));
  if (d < absl::Seconds(1)) return absl::StrCat(absl::ToInt64Milliseconds(d), "ms");
  const int64_t tenths = absl::ToInt64Milliseconds(d + absl::Milliseconds(50)) / 100;
  const int64_t hours = tenths / 36000;
  const int64_t minutes = tenths / 600 % 60;
  const int64_t sec_tenths = tenths % 600;
  std::string out;
  if (hours > 0) absl::StrAppend(&out, hours, "h");
  if (hours > 0 || minutes > 0) absl::StrAppend(&out, minutes, "m");
  if (hours > 0) return sec_tenths == 0 ? out : absl::StrCat(out, sec_tenths / 10, "s");
  if (sec_tenths == 0 && !out.empty()) return out;
  absl::StrAppend(&out, sec_tenths / 10);
  if (sec_tenths % 10 != 0) absl::StrAppend(&out, ".", sec_tenths % 10);
  return absl::StrCat(out, "s");
}

std::string HumanizeDurations(absl::string_view text) {
  static const std::regex kDuration(R"(\b(\d+h)?(\d+m(?![a-z]))?\d+(\.\d+)?(ns|us|ms|s)\b)");
  const std::string in(text);
  std::string out;
  size_t last = 0;
  for (auto it = std::sregex_iterator(in.begin(), in.end(), kDuration);
       it != std::sregex_iterator(); ++it) {
    absl::Duration d;
    out.append(in, last, it->position() - last);
    out += absl::ParseDuration(it->str(), &d) ? HumanDuration(d) : it->str();
    last = it->position() + it->length();
  }
  out.append(in, last, std::string::npos);
  return out;
}

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view name, absl::string_view text) {
  absl::Duration d;
  int64_t seconds = 0;
  if (absl::SimpleAtoi(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " is a duration like 30s, 2m or ", "500ms, not '", text, "'"));
  }
  if (d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be positive"));
  }
  return d;
}

absl::StatusOr<int> ParseIntFlag(absl::string_view name, absl::string_view text) {
  int v = 0;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " is a number, not '", text, "'"));
  }
  return v;
}

std::vector<std::string> SplitList(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(piece));
  }
  return out;
}

absl::StatusOr<std::vector<int>> ParseIntList(absl::string_view name, absl::string_view text) {
  std::vector<int> out;
  for (const std::string& piece : SplitList(text)) {
    int v = 0;
    if (!absl::SimpleAtoi(piece, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " is a comma-separated list of numbers, not '", text, "'"));
    }
    out.push_back(v);
  }
  return out;
}

absl::StatusOr<std::vector<int>> ParseDays(absl::string_view text) {
  static const char* kDays[] = {"sunday",   "monday", "tuesday", "wednesday",
                                "thursday", "friday", "saturday"};
  std::vector<int> out;
  for (const std::string& piece : SplitList(text)) {
    int v = -1;
    int number = 0;
    if (absl::SimpleAtoi(piece, &number)) {
      v = number;
    } else {
      const std::string lower = absl::AsciiStrToLower(piece);
      for (int d = 0; d < 7 && lower.size() >= 3; ++d) {
        if (absl::StartsWith(kDays[d], lower)) v = d;
      }
      if (v < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--days: '", piece, "' is not a day (0-6 with 0 = Sunday, or sun..sat)"));
      }
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace audiencesctl
