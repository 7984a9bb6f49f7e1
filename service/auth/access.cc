#include "service/auth/access.h"

#include <openssl/evp.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sag::auth {
namespace {

absl::Status ConfigError(const std::string& path, absl::string_view what, const YAML::Node& at) {
  std::string line =
      at.IsDefined() && at.Mark().line >= 0 ? absl::StrCat(" (line ", at.Mark().line + 1, ")") : "";
  return absl::InvalidArgumentError(absl::StrCat("config: ", path, ": ", what, line));
}

absl::StatusOr<std::vector<std::string>> StringList(const YAML::Node& node,
                                                    const std::string& path) {
  std::vector<std::string> out;
  if (!node.IsDefined() || node.IsNull()) return out;
  if (node.IsScalar()) {
    out.push_back(node.Scalar());
    return out;
  }
  if (!node.IsSequence()) return ConfigError(path, "must be a list of strings", node);
  for (size_t i = 0; i < node.size(); ++i) {
    if (!node[i].IsScalar()) {
      return ConfigError(absl::StrCat(path, "[", i, "]"), "must be a string", node[i]);
    }
    out.push_back(node[i].Scalar());
  }
  return out;
}

bool IsHex64(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// `priority` and `weight` of callers[i] (both optional).
absl::StatusOr<ratelimit::CallerShare> ParseShare(const YAML::Node& c, const std::string& path) {
  ratelimit::CallerShare share;
  if (const YAML::Node p = c["priority"]; p.IsDefined()) {
    const std::string v = p.IsScalar() ? p.Scalar() : "";
    if (v == "batch") {
      share.priority = ratelimit::Priority::kBatch;
    } else if (v != "interactive") {
      return ConfigError(
          path + ".priority",
          absl::StrCat("unknown class '", v.substr(0, 64), "': use interactive or batch"), p);
    }
  }
  if (const YAML::Node w = c["weight"]; w.IsDefined()) {
    const std::string v = w.IsScalar() ? w.Scalar() : "";
    int weight = 0;
    const bool digits = !v.empty() && v.size() <= 4 && std::all_of(v.begin(), v.end(), [](char ch) {
      return ch >= '0' && ch <= '9';
    });
    if (!digits || !absl::SimpleAtoi(v, &weight) || weight < 1 || weight > ratelimit::kMaxWeight) {
      return ConfigError(path + ".weight",
                         absl::StrCat("must be an integer from 1 to ", ratelimit::kMaxWeight,
                                      ", got '", v.substr(0, 64), "'"),
                         w);
    }
    share.weight = weight;
  }
  return share;
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

absl::Status AccessPolicy::AddCaller(const YAML::Node& c, const std::string& path,
                                     absl::flat_hash_set<std::string>& names) {
  if (!c.IsMap()) return ConfigError(path, "must be a mapping", c);
  for (const auto& kv : c) {
    std::string key = kv.first.Scalar();
    if (key != "name" && key != "cert_names" && key != "secret_sha256" && key != "priority" &&
        key != "weight") {
      return ConfigError(absl::StrCat(path, ".", key), "unknown key", kv.first);
    }
  }
  if (!c["name"].IsScalar() || c["name"].Scalar().empty()) {
    return ConfigError(path + ".name", "required", c);
  }
  std::string name = c["name"].Scalar();
  if (!names.insert(name).second) return ConfigError(path + ".name", "duplicate name", c);
  auto certs = StringList(c["cert_names"], path + ".cert_names");
  if (!certs.ok()) return certs.status();
  for (const auto& cert : *certs) {
    if (!callers_by_cert_.emplace(cert, name).second) {
      return ConfigError(path + ".cert_names", absl::StrCat("'", cert, "' names two callers"), c);
    }
  }
  if (c["secret_sha256"].IsDefined()) {
    std::string hash = absl::AsciiStrToLower(c["secret_sha256"].Scalar());
    if (!IsHex64(hash)) {
      return ConfigError(path + ".secret_sha256", "must be 64 hex digits (SHA-256)", c);
    }
    if (!callers_by_secret_.emplace(hash, name).second) {
      return ConfigError(path + ".secret_sha256", "the same secret names two callers", c);
    }
  }
  if (certs->empty() && !c["secret_sha256"].IsDefined()) {
    return ConfigError(path, "needs cert_names or secret_sha256", c);
  }
  absl::StatusOr<ratelimit::CallerShare> share = ParseShare(c, path);
  if (!share.ok()) return share.status();
  shares_.emplace(name, *share);
  return absl::OkStatus();
}

absl::Status AccessPolicy::AddRpcs(const std::string& entry,
                                   const std::vector<absl::string_view>& rpcs,
                                   const std::vector<absl::string_view>& write_rpcs, Rule& rule) {
  if (entry == "read" || entry == "write" || entry == "*") {
    for (absl::string_view rpc : rpcs) {
      bool is_write = std::find(write_rpcs.begin(), write_rpcs.end(), rpc) != write_rpcs.end();
      if (entry == "*" || (entry == "write") == is_write) rule.rpcs.insert(std::string(rpc));
    }
    return absl::OkStatus();
  }
  if (std::find(rpcs.begin(), rpcs.end(), entry) == rpcs.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown RPC or group '", entry, "'"));
  }
  rule.rpcs.insert(entry);
  return absl::OkStatus();
}

absl::Status AccessPolicy::AddRule(const YAML::Node& a, const std::string& path,
                                   const absl::flat_hash_set<std::string>& names,
                                   const std::vector<absl::string_view>& rpcs,
                                   const std::vector<absl::string_view>& write_rpcs) {
  if (!a.IsMap()) return ConfigError(path, "must be a mapping", a);
  for (const auto& kv : a) {
    std::string key = kv.first.Scalar();
    if (key != "caller" && key != "rpcs" && key != "spaces") {
      return ConfigError(absl::StrCat(path, ".", key), "unknown key", kv.first);
    }
  }
  if (!a["caller"].IsScalar() || a["caller"].Scalar().empty()) {
    return ConfigError(path + ".caller", "required", a);
  }
  std::string caller = a["caller"].Scalar();
  if (!names.empty() && !names.contains(caller)) {
    return ConfigError(path + ".caller", absl::StrCat("no caller named '", caller, "'"), a);
  }
  Rule rule;
  auto rpc_list = StringList(a["rpcs"], path + ".rpcs");
  if (!rpc_list.ok()) return rpc_list.status();
  if (rpc_list->empty()) return ConfigError(path + ".rpcs", "required", a);
  for (const auto& r : *rpc_list) {
    if (absl::Status added = AddRpcs(r, rpcs, write_rpcs, rule); !added.ok()) {
      return ConfigError(path + ".rpcs", std::string(added.message()), a);
    }
  }
  auto spaces = StringList(a["spaces"], path + ".spaces");
  if (!spaces.ok()) return spaces.status();
  if (spaces->empty()) return ConfigError(path + ".spaces", "required (use \"*\" for all)", a);
  rule.spaces.insert(spaces->begin(), spaces->end());
  rules_[caller].push_back(std::move(rule));
  return absl::OkStatus();
}

absl::StatusOr<AccessPolicy> AccessPolicy::Parse(const YAML::Node& root,
                                                 const std::vector<absl::string_view>& rpcs,
                                                 const std::vector<absl::string_view>& write_rpcs) {
  AccessPolicy p;
  if (!root.IsDefined() || root.IsNull() || !root.IsMap()) return p;
  absl::flat_hash_set<std::string> names;
  YAML::Node callers = root["callers"];
  if (callers.IsDefined() && !callers.IsNull()) {
    if (!callers.IsSequence()) return ConfigError("callers", "must be a list", callers);
    for (size_t i = 0; i < callers.size(); ++i) {
      absl::Status added = p.AddCaller(callers[i], absl::StrCat("callers[", i, "]"), names);
      if (!added.ok()) return added;
    }
  }
  YAML::Node access = root["access"];
  if (access.IsDefined() && !access.IsNull()) {
    if (!access.IsSequence()) return ConfigError("access", "must be a list", access);
    p.has_rules_ = true;
    for (size_t i = 0; i < access.size(); ++i) {
      absl::Status added =
          p.AddRule(access[i], absl::StrCat("access[", i, "]"), names, rpcs, write_rpcs);
      if (!added.ok()) return added;
    }
  }
  return p;
}

absl::StatusOr<std::string> AccessPolicy::Identify(const PeerInfo& peer) const {
  if (!authenticates()) {
    if (!peer.cert_names.empty()) return peer.cert_names.front();
    if (!peer.caller_id_hint.empty()) return peer.caller_id_hint;
    return peer.address;
  }
  for (const auto& name : peer.cert_names) {
    auto it = callers_by_cert_.find(name);
    if (it != callers_by_cert_.end()) return it->second;
  }
  if (!peer.api_key.empty()) {
    auto it = callers_by_secret_.find(Sha256Hex(peer.api_key));
    if (it != callers_by_secret_.end()) return it->second;
  }
  if (!peer.cert_names.empty()) {
    return absl::UnauthenticatedError(absl::StrCat("client certificate '", peer.cert_names.front(),
                                                   "' names no configured caller"));
  }
  return absl::UnauthenticatedError(
      peer.api_key.empty() ? "no caller credentials: present a client certificate or x-api-key"
                           : "x-api-key matches no configured caller");
}

ratelimit::CallerShare AccessPolicy::ShareOf(absl::string_view caller) const {
  auto it = shares_.find(caller);
  return it == shares_.end() ? ratelimit::CallerShare{} : it->second;
}

absl::Status AccessPolicy::Authorize(absl::string_view caller, absl::string_view rpc,
                                     absl::string_view space) const {
  if (!has_rules_) return absl::OkStatus();
  auto it = rules_.find(caller);
  if (it != rules_.end()) {
    for (const Rule& rule : it->second) {
      if (rule.rpcs.contains(rpc) && (rule.spaces.contains("*") || rule.spaces.contains(space))) {
        return absl::OkStatus();
      }
    }
  }
  return absl::PermissionDeniedError(
      absl::StrCat("caller '", caller, "' may not call ", rpc, " on space '", space, "'"));
}

}  // namespace sag::auth
