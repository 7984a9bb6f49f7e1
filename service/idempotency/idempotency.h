// Idempotent writes: what a keyed write's `idempotency-key` may be, how a call is scoped and
// fingerprinted, the recorded answer, and the Store that claims keys and keeps answers.
//
// Promises:
//   - ValidateKey accepts 1..255 printable ASCII characters (0x20..0x7e) and
//     nothing else; its error is INVALID_ARGUMENT with a google.rpc.BadRequest naming
//     `idempotency-key` and the problem (the value itself is never echoed).
//   - ScopeKey(workspace, caller, key) and Fingerprint(rpc, request) are SHA-256 hex digests:
//     equal inputs give equal strings on every replica (the request is serialized
//     deterministically); no input can make them ambiguous (length-prefixed parts).
//   - EncodeAnswer/DecodeAnswer round-trip an Answer exactly; DecodeAnswer refuses anything it
//     did not produce (INTERNAL), so a corrupt record is never replayed.
//   - A Store gives a key to one call at a time (Begin -> kClaimed), answers a repeat with the
//     same fingerprint from the record (kReplay) or parks it until the holder finishes (kWait),
//     and refuses another fingerprint under the same key (INVALID_ARGUMENT naming the key).
//     Finish(record=false) releases the key (the write was never sent): parked repeats still get
//     the holder's answer, and the next Begin claims the key again.
//
// Thread-safe (every Store implementation). `ready` callbacks run on a timer thread or on the
// thread calling Finish/Abandon, never under a store lock, exactly once per kWait.
#ifndef SAG_SERVICE_IDEMPOTENCY_IDEMPOTENCY_H_
#define SAG_SERVICE_IDEMPOTENCY_IDEMPOTENCY_H_

#include <google/protobuf/message.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sag::idempotency {

inline constexpr char kKeyMetadata[] = "idempotency-key";
inline constexpr char kReplayedMetadata[] = "idempotent-replayed";
inline constexpr size_t kMaxKeyLength = 255;

// OK, or INVALID_ARGUMENT (BadRequest on `idempotency-key`) saying what is wrong.
absl::Status ValidateKey(absl::string_view key);

// Where a key lives: the same key of another caller or workspace is another key.
std::string ScopeKey(absl::string_view workspace, absl::string_view caller, absl::string_view key);

// SHA-256 (hex) of the RPC name and the request's deterministic serialization.
std::string Fingerprint(absl::string_view rpc, const google::protobuf::Message& request);

// A finished call as its caller saw it: gRPC status code, message, binary google.rpc.Status
// details, and (for OK) the serialized response message.
struct Answer {
  int code = 0;
  std::string message;
  std::string details;
  std::string body;
};
bool operator==(const Answer& a, const Answer& b);

std::string EncodeAnswer(const Answer& answer);
absl::StatusOr<Answer> DecodeAnswer(absl::string_view encoded);

class Store {
 public:
  enum class State { kClaimed, kReplay, kWait };
  using WaiterId = uint64_t;
  static constexpr WaiterId kNoWaiter = 0;
  using Ready = std::function<void(absl::StatusOr<Answer>)>;
  struct Begun {
    State state = State::kClaimed;
    Answer answer;                // kReplay
    WaiterId waiter = kNoWaiter;  // kWait
  };

  virtual ~Store() = default;

  // Looks `key` up for a call whose request has `fingerprint`:
  //   kClaimed: the key is this call's until Finish; it stays claimed at most until `hold_until`
  //             (stores that can lose a holder, such as Redis, expire the claim then).
  //   kReplay:  `answer` is the recorded answer of the same request.
  //   kWait:    another call holds the key; `ready` runs once with its answer, or with an error
  //             at `wait_until` (DEADLINE_EXCEEDED) or on Abandon.
  // Errors: INVALID_ARGUMENT (the key was used for another request), RESOURCE_EXHAUSTED (the
  // store is full of calls in progress), UNAVAILABLE (a shared store cannot be reached).
  virtual absl::StatusOr<Begun> Begin(const std::string& key, const std::string& fingerprint,
                                      absl::Time wait_until, absl::Time hold_until,
                                      Ready ready) = 0;

  // Ends this call's claim: records `answer` for the TTL when `record`, else frees the key.
  // Calls waiting for the key get `answer` either way.
  virtual void Finish(const std::string& key, const Answer& answer, bool record) = 0;

  // A parked call leaves: its `ready` runs with `why` unless it already ran.
  virtual void Abandon(WaiterId waiter, absl::Status why) = 0;
};

}  // namespace sag::idempotency

#endif  // SAG_SERVICE_IDEMPOTENCY_IDEMPOTENCY_H_
