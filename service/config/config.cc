#include "service/config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <map>
#include <sstream>
#include <utility>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/common/cli.h"
#include "service/common/utf8.h"

namespace sag {
namespace config {
namespace {

// At most this many problems are listed; the rest are counted.
constexpr size_t kMaxErrors = 20;

// Flags that make no sense in a file (or would recurse into another file).
constexpr const char* kNotFromFile[] = {
    "config",    "flagfile",    "fromenv", "tryfromenv", "undefok", "help",           "helpfull",
    "helpshort", "helppackage", "helpon",  "helpmatch",  "version", "only_check_args"};

bool IsSection(absl::string_view key) {
  for (const char* section : kConfigSections) {
    if (key == section) return true;
  }
  return false;
}

// What to use instead of an unsupported section, or null when `key` is not one.
const char* UnsupportedSectionHint(absl::string_view key) {
  for (const auto& section : kUnsupportedSections) {
    if (key == section[0]) return section[1];
  }
  return nullptr;
}

bool IsNotFromFile(absl::string_view key) {
  for (const char* name : kNotFromFile) {
    if (key == name) return true;
  }
  return false;
}

// " (line N)" for a node that has a position, "" otherwise.
std::string At(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0) return "";
  return absl::StrCat(" (line ", mark.line + 1, ")");
}

// Keeps messages printable whatever the input: non-ASCII and control bytes become '?', and the
// text is cut at 80 characters.
std::string Printable(absl::string_view text) {
  std::string out;
  for (char c : text.substr(0, 80)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  if (text.size() > 80) out += "...";
  return out;
}

// Joins problems, one per line, at most kMaxErrors of them.
absl::Status Problems(const std::vector<std::string>& errors) {
  std::vector<std::string> shown(errors.begin(),
                                 errors.begin() + std::min(errors.size(), kMaxErrors));
  std::string message = absl::StrJoin(shown, "\n");
  if (errors.size() > kMaxErrors) {
    absl::StrAppend(&message, "\nconfig: ... and ", errors.size() - kMaxErrors, " more problems");
  }
  return absl::InvalidArgumentError(message);
}

// " (did you mean 'listen'?)" when a flag or section name is close to `key`.
std::string Suggestion(absl::string_view key) {
  std::vector<std::string> candidates;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsNotFromFile(name)) candidates.emplace_back(name);
  }
  for (const char* section : kConfigSections) candidates.emplace_back(section);
  std::sort(candidates.begin(), candidates.end());
  const std::string best = ::sag::cli::Nearest(key, candidates);
  return best.empty() ? "" : absl::StrCat(" (did you mean '", best, "'?)");
}

// 1-based line of byte `offset`.
size_t LineOf(absl::string_view text, size_t offset) {
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
}

// The text of a flag value: a scalar as written, a list of scalars joined with ",".
bool ValueText(const YAML::Node& value, std::string* text, std::string* why) {
  if (value.IsScalar()) {
    *text = value.Scalar();
    return true;
  }
  if (value.IsSequence()) {
    std::vector<std::string> parts;
    for (const YAML::Node& element : value) {
      if (!element.IsScalar()) {
        *why = "a list value may only hold plain values";
        return false;
      }
      parts.push_back(element.Scalar());
    }
    *text = absl::StrJoin(parts, ",");
    return true;
  }
  *why = value.IsMap() ? "expected a value, not a mapping" : "has no value";
  return false;
}

// Records where each document starts; ignores the rest.
class DocumentStarts final : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

bool IsValidId(absl::string_view id) {
  if (id.empty() || id.size() > 128 || !absl::ascii_isalnum(static_cast<unsigned char>(id[0]))) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

absl::StatusOr<YAML::Node> ParseConfigText(absl::string_view text, absl::string_view source) {
  const std::string where = absl::StrCat("config: ", source, ": ");
  if (text.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "larger than ", kMaxConfigBytes, " bytes; refusing to read it"));
  }
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '\0') {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "NUL byte on line ", LineOf(text, i), ": not a text file"));
    }
    const size_t len = ::sag::Utf8SequenceLength(text, i);
    if (len == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "invalid UTF-8 on line ", LineOf(text, i), ": not a text file"));
    }
    i += len;
  }
  YAML::Node root;
  try {
    // One document, found with our own bounded loop: yaml-cpp 0.7's LoadAll() loops forever,
    // allocating, on some malformed input (a stray ',' where a document starts: the parser
    // reports a null document without consuming anything, again and again; jbeder/yaml-cpp#1040,
    // fixed upstream by #1319). A document starting where the previous one did means it is stuck.
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    DocumentStarts starts;
    int documents = 0;
    while (documents < 3 && parser.HandleNextDocument(starts)) ++documents;
    for (size_t i = 1; i < starts.marks.size(); ++i) {
      if (starts.marks[i].pos == starts.marks[i - 1].pos) {
        const YAML::Mark& mark = starts.marks[i];
        return absl::InvalidArgumentError(absl::StrCat(
            where, "line ", mark.line + 1, ", column ", mark.column + 1, ": unexpected '",
            Printable(text.substr(static_cast<size_t>(mark.pos), 1)), "'"));
      }
    }
    if (documents > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "holds several YAML documents (---); want one"));
    }
    if (documents == 0) return YAML::Node(YAML::NodeType::Null);
    root = YAML::Load(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "line ", e.mark.line + 1, ": nested too deeply"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, "line ", e.mark.line + 1, ", column ",
                                                   e.mark.column + 1, ": ", Printable(e.msg)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, Printable(e.what())));
  }
  if (!root.IsNull() && !root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "the top level must be a mapping of keys to values", At(root)));
  }
  return root;
}

absl::StatusOr<YAML::Node> LoadConfigFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message =
        absl::StrCat("config: cannot open ", path, ": ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    if (err == EACCES) return absl::PermissionDeniedError(message);
    return absl::InvalidArgumentError(message);
  }
  struct stat st;
  if (::fstat(fd, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat("config: ", path, " is a directory"));
    }
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > kMaxConfigBytes) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(
          "config: ", path, ": larger than ", kMaxConfigBytes, " bytes; refusing to read it"));
    }
  }
  // Read at most one byte more than allowed, so that pipes and growing files are bounded too.
  std::string text;
  char buf[64 * 1024];
  while (text.size() <= kMaxConfigBytes) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat("config: cannot read ", path, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return ParseConfigText(text, path);
}

absl::Status ApplyFlagsFromConfig(const YAML::Node& root,
                                  const std::set<std::string>& flags_set_on_command_line) {
  if (!root.IsDefined() || root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: the top level must be a mapping of keys to values", At(root)));
  }
  std::vector<std::string> errors;
  std::set<std::string> seen;
  struct Saved {
    absl::CommandLineFlag* flag;
    std::string value;
  };
  std::vector<Saved> applied;
  for (const auto& entry : root) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    if (!key.IsScalar()) {
      errors.push_back(absl::StrCat("config: keys must be plain names", At(key)));
      continue;
    }
    const std::string name = key.Scalar();
    const std::string shown = Printable(name);
    if (!seen.insert(name).second) {
      errors.push_back(absl::StrCat("config: duplicate key '", shown, "'", At(key)));
      continue;
    }
    if (IsSection(name)) continue;
    if (const char* instead = UnsupportedSectionHint(name)) {
      errors.push_back(
          absl::StrCat("config: section '", name, "' is not supported", At(key), ": ", instead));
      continue;
    }
    if (IsNotFromFile(name)) {
      errors.push_back(
          absl::StrCat("config: key '", shown, "' cannot be set in the config file", At(key)));
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {
      errors.push_back(
          absl::StrCat("config: unknown key '", shown, "'", At(key), Suggestion(name)));
      continue;
    }
    std::string text;
    std::string why;
    if (!ValueText(value, &text, &why)) {
      errors.push_back(absl::StrCat("config: key '", name, "' ", why, At(key)));
      continue;
    }
    // The value is checked even when the command line overrides it: a broken file is an error
    // whatever hides it today. An overridden flag gets its command-line value back at once.
    const std::string saved = flag->CurrentValue();
    std::string error;
    if (!flag->ParseFrom(text, &error)) {
      errors.push_back(absl::StrCat("config: key '", name, "'", At(key), ": ", Printable(error)));
      continue;
    }
    if (flags_set_on_command_line.count(name) != 0) {
      std::string ignored;
      flag->ParseFrom(saved, &ignored);
    } else {
      applied.push_back({flag, saved});
    }
  }
  if (errors.empty()) return absl::OkStatus();
  for (auto it = applied.rbegin(); it != applied.rend(); ++it) {
    std::string ignored;
    it->flag->ParseFrom(it->value, &ignored);
  }
  return Problems(errors);
}

std::set<std::string> FlagsSetOnCommandLine(int argc, const char* const* argv) {
  std::set<std::string> names;
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == nullptr) break;
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    if (name.empty()) continue;
    names.emplace(name);
    if (absl::StartsWith(name, "no") && name.size() > 2) {
      const absl::string_view positive = name.substr(2);
      if (absl::FindCommandLineFlag(positive) != nullptr) names.emplace(positive);
    }
  }
  return names;
}

namespace {

using Errors = std::vector<std::string>;

// One `workspaces[i]` entry while it is read.
struct WorkspaceEntry {
  WorkspaceConfig ws;
  std::set<std::string> keys;
  bool has_name = false;
  bool has_token_file = false;
};

// `name`, `token_file` or `upstream_url` of an entry: a string, checked for its key.
void ParseWorkspaceString(const std::string& field, const std::string& name, const YAML::Node& key,
                          const YAML::Node& value, WorkspaceEntry& e, Errors& errors) {
  if (value.IsNull() || !value.IsDefined()) {
    // name and token_file are reported as required by CheckWorkspaceEntry.
    if (name == "upstream_url") {
      errors.push_back(absl::StrCat("config: ", field, ": has no value", At(key)));
    }
    return;
  }
  if (!value.IsScalar()) {
    errors.push_back(absl::StrCat("config: ", field, ": expected a string", At(value)));
    return;
  }
  const std::string text = value.Scalar();
  if (name == "name") {
    if (!IsValidId(text)) {
      errors.push_back(absl::StrCat("config: ", field, ": invalid name '", Printable(text),
                                    "' (want [A-Za-z0-9][A-Za-z0-9_.-]{0,127})", At(value)));
      return;
    }
    e.has_name = true;
    e.ws.name = text;
  } else if (name == "token_file") {
    if (text.empty()) return;  // Reported as required by CheckWorkspaceEntry.
    e.has_token_file = true;
    e.ws.token_file = text;
  } else {
    const bool http = absl::StartsWith(text, "http://") && text.size() > 7;
    const bool https = absl::StartsWith(text, "https://") && text.size() > 8;
    if (!http && !https) {
      errors.push_back(absl::StrCat("config: ", field, ": '", Printable(text),
                                    "' is not an http:// or https:// URL", At(value)));
      return;
    }
    e.ws.upstream_url = text;
  }
}

// `spaces` of an entry: null (no restriction) or a list of distinct space ids.
void ParseWorkspaceSpaces(const std::string& field, const YAML::Node& value, WorkspaceEntry& e,
                          Errors& errors) {
  if (value.IsNull()) return;
  if (!value.IsSequence()) {
    errors.push_back(absl::StrCat("config: ", field, ": expected a list of space ids", At(value)));
    return;
  }
  size_t s = 0;
  std::set<std::string> mine;
  for (const YAML::Node& space : value) {
    const std::string space_path = absl::StrCat(field, "[", s++, "]");
    if (!space.IsScalar() || !IsValidId(space.Scalar())) {
      errors.push_back(
          absl::StrCat("config: ", space_path, ": invalid space id",
                       space.IsScalar() ? absl::StrCat(" '", Printable(space.Scalar()), "'") : "",
                       " (want [A-Za-z0-9][A-Za-z0-9_.-]{0,127})", At(space)));
      continue;
    }
    if (!mine.insert(space.Scalar()).second) {
      errors.push_back(absl::StrCat("config: ", space_path, ": space '", space.Scalar(),
                                    "' listed twice", At(space)));
      continue;
    }
    e.ws.spaces.push_back(space.Scalar());
  }
}

// The keys of one entry (a mapping), each checked on its own.
WorkspaceEntry ParseWorkspaceEntry(const std::string& path, const YAML::Node& item,
                                   Errors& errors) {
  WorkspaceEntry e;
  for (const auto& entry : item) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    if (!key.IsScalar()) {
      errors.push_back(absl::StrCat("config: ", path, ": keys must be plain names", At(key)));
      continue;
    }
    const std::string name = key.Scalar();
    const std::string field = absl::StrCat(path, ".", Printable(name));
    if (!e.keys.insert(name).second) {
      errors.push_back(absl::StrCat("config: ", field, ": duplicate key", At(key)));
    } else if (name == "name" || name == "token_file" || name == "upstream_url") {
      ParseWorkspaceString(field, name, key, value, e, errors);
    } else if (name == "spaces") {
      ParseWorkspaceSpaces(field, value, e, errors);
    } else {
      errors.push_back(absl::StrCat("config: ", field,
                                    ": unknown key (want name, token_file, spaces, upstream_url)",
                                    At(key)));
    }
  }
  return e;
}

// Across entries: names are unique, a space is served by one workspace.
struct WorkspaceOwners {
  std::map<std::string, std::string> name;   // name -> path of the workspace using it
  std::map<std::string, std::string> space;  // space id -> workspace name
};

// What an entry must have (name, token_file), and what no other entry may have.
void CheckWorkspaceEntry(const std::string& path, const YAML::Node& item, const WorkspaceEntry& e,
                         WorkspaceOwners& owners, Errors& errors) {
  if (!e.has_name) {
    if (e.keys.count("name") == 0 || item["name"].IsNull()) {
      errors.push_back(absl::StrCat("config: ", path, ".name: required", At(item)));
    }
  } else if (auto [it, inserted] = owners.name.emplace(e.ws.name, path); !inserted) {
    errors.push_back(absl::StrCat("config: ", path, ".name: '", e.ws.name,
                                  "' is already the name of ", it->second, At(item)));
  }
  const YAML::Node token_file = item["token_file"];
  if (!e.has_token_file && (!token_file.IsDefined() || token_file.IsNull() ||
                            (token_file.IsScalar() && token_file.Scalar().empty()))) {
    errors.push_back(absl::StrCat("config: ", path, ".token_file: required", At(item)));
  }
  if (!e.has_name) return;
  for (const std::string& space : e.ws.spaces) {
    auto [it, inserted] = owners.space.emplace(space, e.ws.name);
    if (!inserted && it->second != e.ws.name) {
      errors.push_back(absl::StrCat("config: ", path, ".spaces: space '", space,
                                    "' is already served by workspace '", it->second, "'",
                                    At(item)));
    }
  }
}

}  // namespace

absl::StatusOr<std::vector<WorkspaceConfig>> ParseWorkspaces(const YAML::Node& root) {
  std::vector<WorkspaceConfig> workspaces;
  if (!root.IsDefined() || !root.IsMap()) return workspaces;
  const YAML::Node section = root["workspaces"];
  if (!section.IsDefined()) return workspaces;
  if (!section.IsSequence()) {
    return Problems(
        {absl::StrCat("config: workspaces: expected a list of workspaces", At(section))});
  }
  Errors errors;
  WorkspaceOwners owners;
  size_t index = 0;
  for (const YAML::Node& item : section) {
    const std::string path = absl::StrCat("workspaces[", index++, "]");
    if (!item.IsMap()) {
      errors.push_back(absl::StrCat(
          "config: ", path, ": expected a mapping with name, token_file, spaces", At(item)));
      continue;
    }
    WorkspaceEntry e = ParseWorkspaceEntry(path, item, errors);
    CheckWorkspaceEntry(path, item, e, owners, errors);
    workspaces.push_back(std::move(e.ws));
  }
  if (!errors.empty()) return Problems(errors);
  return workspaces;
}

}  // namespace config
}  // namespace sag
