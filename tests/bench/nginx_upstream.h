// The upstream of the benchmarks that compare the gateway with nginx (bench_proxy, bench_hops):
// one nginx (Debian's /usr/sbin/nginx, run as the current user in a temporary prefix, one
// process) serving two loopback ports:
//   static  answers GET RestPath() with AudienceBody() (`return 200`, application/json, from
//           memory);
//   proxy   proxy_pass to static over pooled keep-alive connections (upstream `keepalive 64`,
//           HTTP/1.1, `Connection ""`): the textbook reverse proxy.
#ifndef SAG_TESTS_BENCH_NGINX_UPSTREAM_H_
#define SAG_TESTS_BENCH_NGINX_UPSTREAM_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/common/subprocess.h"

namespace sag::bench {

constexpr char kSpace[] = "9aQ1Lj62S4bomZKLF4DPqW";
constexpr char kAudience[] = "aud_2hFjWq0N1zVbQp8mXkR3tYcLd9E";
constexpr char kToken[] = "test-token-7f3a9c";  // What sag::testing::Stack gives the gateway.
constexpr char kAccept[] = "application/vnd.segment.v1beta+json";

// A GetAudience 200 body as the API returns it (every field of
// AudienceSummaryWithAudienceTypeAndLookback in tests/reference, realistic values, 1 schedule).
std::string AudienceBody();
std::string RestPath();

// The nginx binary: `flag` when executable, else "nginx" on PATH; "" when there is none.
std::string FindNginx(const std::string& flag);

// One blocking GET: the HTTP status (0 when the request failed) and the body.
long HttpGet(const std::string& url, std::string* body);

// Removes a directory tree when it goes out of scope.
struct RemoveDirOnExit {
  std::string path;
  ~RemoveDirOnExit();
};

// The nginx process and its prefix directory; stopped and removed on destruction.
struct Nginx {
  RemoveDirOnExit prefix;  // Declared first: removed after the process has stopped.
  std::unique_ptr<sag::testing::Subprocess> process;
  std::string dir;
  int static_port = 0;
  int proxy_port = 0;

  ~Nginx();
  std::string static_url() const;
  std::string proxy_url() const;
};

// Starts nginx and waits (up to 10 s) until both ports serve `body`; retries on other ports
// when nginx exits (a port taken between FreePort and nginx's bind). `body` must hold no '$'.
absl::StatusOr<std::unique_ptr<Nginx>> StartNginx(const std::string& binary,
                                                  const std::string& body);

}  // namespace sag::bench

#endif  // SAG_TESTS_BENCH_NGINX_UPSTREAM_H_
