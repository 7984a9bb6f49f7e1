// Who is calling, and what they may do (the `callers` and `access` sections of --config).
//
//   callers:
//     - name: reporting                      # the identity used in access rules and logs
//       cert_names: [reporting.prod.svc]     # client-certificate SAN or CN (mutual TLS)
//       secret_sha256: 5e88489...            # or: SHA-256 (hex) of a secret sent in metadata
//                                            #     `x-api-key` (plaintext behind a mesh)
//       priority: batch                      # interactive (default) or batch
//       weight: 3                            # 1..1000 (default 1): share within its class
//   access:
//     - caller: reporting
//       rpcs: [read]                         # RPC names, or the groups `read` / `write`
//       spaces: ["*"]                        # space ids, or "*"
//
// Identity: under mutual TLS, the client certificate's SAN (else CN) names the caller; else the
// `x-api-key` secret does. With `callers` configured, a call that matches none is
// UNAUTHENTICATED. Without them, the identity is the certificate name, else `x-caller-id`, else
// the peer address, and is used only for fairness and logs.
// Sharing: in each rate-limit lane, interactive callers go before batch ones (batch keeps
// --batch_min_share), and callers of a class share it in proportion to their weights (see
// service/ratelimit/limiter.h). A caller not configured is interactive with weight 1.
// Access: without `access` rules everything is allowed (development). With rules, default deny:
// a call passes when one rule of its caller names its RPC (or its group) and its space
// (PERMISSION_DENIED otherwise).
//
// Immutable after Parse; thread-safe.
#ifndef SAG_SERVICE_AUTH_ACCESS_H_
#define SAG_SERVICE_AUTH_ACCESS_H_

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/ratelimit/limiter.h"

namespace sag::auth {

// What the transport tells about the peer.
struct PeerInfo {
  std::vector<std::string> cert_names;  // SANs, then the CN, of a verified client certificate.
  std::string api_key;                  // Metadata x-api-key.
  std::string caller_id_hint;           // Metadata x-caller-id (unauthenticated).
  std::string address;                  // Peer address.
};

// Hex SHA-256 of `data` (lower case).
std::string Sha256Hex(absl::string_view data);

class AccessPolicy {
 public:
  // Parses the `callers` and `access` sections of the config root (either may be absent).
  // Errors name the key path: "config: access[0].rpcs[1]: unknown RPC or group 'Foo'".
  static absl::StatusOr<AccessPolicy> Parse(const YAML::Node& root,
                                            const std::vector<absl::string_view>& rpcs,
                                            const std::vector<absl::string_view>& write_rpcs);

  // The caller's identity, or UNAUTHENTICATED.
  absl::StatusOr<std::string> Identify(const PeerInfo& peer) const;

  // OK, or PERMISSION_DENIED naming what was refused.
  absl::Status Authorize(absl::string_view caller, absl::string_view rpc,
                         absl::string_view space) const;

  // The configured caller's class and weight; defaults (interactive, 1) for any other name.
  ratelimit::CallerShare ShareOf(absl::string_view caller) const;
  // True when `caller` is the name of a configured caller.
  bool IsConfigured(absl::string_view caller) const { return shares_.contains(caller); }

  bool authenticates() const { return !callers_by_secret_.empty() || !callers_by_cert_.empty(); }
  bool has_rules() const { return has_rules_; }

 private:
  struct Rule {
    absl::flat_hash_set<std::string> rpcs;
    absl::flat_hash_set<std::string> spaces;  // Contains "*" for all.
  };
  // callers[i] at `path`: its name (into `names`), cert names, secret and share.
  absl::Status AddCaller(const YAML::Node& c, const std::string& path,
                         absl::flat_hash_set<std::string>& names);
  // access[i] at `path`, for a caller in `names` (any caller when `names` is empty).
  absl::Status AddRule(const YAML::Node& a, const std::string& path,
                       const absl::flat_hash_set<std::string>& names,
                       const std::vector<absl::string_view>& rpcs,
                       const std::vector<absl::string_view>& write_rpcs);
  // The RPCs an `rpcs` entry names: one RPC, or the groups read, write and *.
  static absl::Status AddRpcs(const std::string& entry, const std::vector<absl::string_view>& rpcs,
                              const std::vector<absl::string_view>& write_rpcs, Rule& rule);
  absl::flat_hash_map<std::string, std::string> callers_by_secret_;  // sha256 -> name
  absl::flat_hash_map<std::string, std::string> callers_by_cert_;    // cert name -> name
  absl::flat_hash_map<std::string, std::vector<Rule>> rules_;        // caller -> rules
  absl::flat_hash_map<std::string, ratelimit::CallerShare> shares_;  // name -> class, weight
  bool has_rules_ = false;
};

}  // namespace sag::auth

#endif  // SAG_SERVICE_AUTH_ACCESS_H_
