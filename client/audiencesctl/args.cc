#include "audiencesctl/args.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--") {
      args.positionals.insert(args.positionals.end(), argv.begin() + i + 1, argv.end());
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      args.positionals.push_back(arg);
      continue;
    }
    const FlagSpec* spec = nullptr;
    std::string shown;                 // The flag as the user wrote it, for messages.
    std::optional<std::string> value;  // Attached with '=' (or glued to a short flag).
    bool long_form = arg[1] == '-';
    if (!long_form && arg.size() > 2) {
      // One dash: a long name if it is one ("-addr=x"), else a short flag with a glued value.
      absl::string_view body = absl::string_view(arg).substr(1);
      long_form = FindLong(specs, body.substr(0, body.find('='))) != nullptr ||
                  (arg[2] != '=' && FindShort(specs, arg[1]) == nullptr);
    }
    if (long_form) {
      // --name[=value], or -name[=value] (one dash, long name).
      absl::string_view body = absl::string_view(arg).substr(arg[1] == '-' ? 2 : 1);
      const size_t eq = body.find('=');
      absl::string_view name = body.substr(0, eq);
      if (eq != absl::string_view::npos) value = std::string(body.substr(eq + 1));
      spec = FindLong(specs, name);
      shown = absl::StrCat("--", name);
      if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag ", shown));
    } else {
      // -x, -xVALUE, -x=VALUE.
      spec = FindShort(specs, arg[1]);
      shown = absl::StrCat("-", std::string(1, arg[1]));
      if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag ", shown));
      if (arg.size() > 2) value = arg.substr(arg[2] == '=' ? 3 : 2);
    }
    if (!spec->takes_value) {
      std::string v = "true";
      if (value.has_value()) {
        absl::StatusOr<std::string> b = BoolValue(shown, *value);
        if (!b.ok()) return b.status();
        v = *b;
      }
      args.flags.emplace_back(spec->name, v);
      continue;
    }
    if (!value.has_value()) {
      if (i + 1 >= argv.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag ", shown, " needs a value (", spec->value_name, ")"));
      }
      value = argv[++i];
    }
    args.flags.emplace_back(spec->name, *value);
  }
  return args;
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
