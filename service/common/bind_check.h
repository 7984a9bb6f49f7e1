// Why a listening address cannot be bound, for start-up error messages.
//
// Promises: BindError("127.0.0.1:50051") binds (SO_REUSEADDR only, never SO_REUSEPORT) and closes
// a socket on that address and returns what bind() said ("address already in use", ...), or ""
// when it could be bound (or the address does not parse: the caller's own error stands).
// Nothing is kept open. Call it at start-up (it uses strerror).
#ifndef SAG_SERVICE_COMMON_BIND_CHECK_H_
#define SAG_SERVICE_COMMON_BIND_CHECK_H_

#include <string>

namespace sag {

// `address` is HOST:PORT or [V6]:PORT. The reason, lower case, or "".
std::string BindError(const std::string& address);

}  // namespace sag

#endif  // SAG_SERVICE_COMMON_BIND_CHECK_H_
