// MetricsServer over a real loopback socket, scraped with cpp-httplib's client.
#include "service/telemetry/metrics_server.h"

#include <httplib.h>

#include <string>

#include "gtest/gtest.h"
#include "service/telemetry/metrics.h"

namespace sag {
namespace telemetry {
namespace {

MetricsServerOptions Loopback() {
  MetricsServerOptions options;
  options.address = "127.0.0.1:0";
  return options;
}

TEST(MetricsServerTest, ServesMetricsOnLoopback) {
  Registry registry;
  Counter* calls = (*registry.AddCounter("calls_total", "Calls.", {"rpc"}))->WithLabels({"Get"});
  MetricsServer server(&registry, Loopback());
  ASSERT_TRUE(server.Start().ok());
  ASSERT_GT(server.port(), 0);

  httplib::Client client("127.0.0.1", server.port());
  client.set_connection_timeout(5);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(res->body, registry.Serialize());
  EXPECT_NE(res->body.find("calls_total{rpc=\"Get\"} 0\n"), std::string::npos);

  calls->Increment(5);
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("calls_total{rpc=\"Get\"} 5\n"), std::string::npos) << res->body;
  server.Stop();
}

TEST(MetricsServerTest, ServesNothingElse) {
  Registry registry;
  MetricsServer server(&registry, Loopback());
  ASSERT_TRUE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  auto res = client.Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  res = client.Head("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(MetricsServerTest, StartAndStopContract) {
  Registry registry;
  MetricsServer server(&registry, Loopback());
  EXPECT_EQ(server.port(), 0);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_EQ(server.Start().code(), absl::StatusCode::kFailedPrecondition);

  // The port is taken now.
  MetricsServerOptions same;
  same.address = "127.0.0.1:" + std::to_string(server.port());
  MetricsServer second(&registry, same);
  EXPECT_EQ(second.Start().code(), absl::StatusCode::kUnavailable);

  const int port = server.port();
  server.Stop();
  server.Stop();  // idempotent
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  EXPECT_FALSE(client.Get("/metrics"));
}

TEST(MetricsServerTest, StopRightAfterStartDoesNotHang) {
  Registry registry;
  for (int i = 0; i < 20; ++i) {
    MetricsServer server(&registry, Loopback());
    ASSERT_TRUE(server.Start().ok());
  }  // the destructor stops
}

TEST(MetricsServerTest, BadAddresses) {
  Registry registry;
  for (const char* address : {"nonsense", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:-1", "[::1",
                              "::1:80", "127.0.0.1:8o"}) {
    MetricsServerOptions options;
    options.address = address;
    MetricsServer server(&registry, options);
    EXPECT_EQ(server.Start().code(), absl::StatusCode::kInvalidArgument) << address;
  }
}

TEST(MetricsServerTest, ParseHostPort) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(ParseHostPort("0.0.0.0:9464", &host, &port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 9464);
  ASSERT_TRUE(ParseHostPort(":80", &host, &port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 80);
  ASSERT_TRUE(ParseHostPort("[::1]:0", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(ParseHostPort("localhost:65535", &host, &port).ok());
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, 65535);
  EXPECT_FALSE(ParseHostPort("localhost", &host, &port).ok());
  EXPECT_FALSE(ParseHostPort("localhost:65536", &host, &port).ok());
}

}  // namespace
}  // namespace telemetry
}  // namespace sag
