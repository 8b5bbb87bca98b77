// Tests for ttcp and offload-connrate over loopback.

#include "tools/ttcp/ttcp.h"

#include <sys/socket.h>

#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tools/bench/connrate.h"
#include "tools/bench/socket_util.h"

namespace offload::tools {
namespace {

TEST(TtcpTest, TransfersAndVerifiesEveryByte) {
  ttcp::Options options;
  options.buflen = 10007;  // not a multiple of the 95-byte pattern period
  options.nbuf = 300;
  options.verify = true;
  options.sockbuf = 65536;
  absl::StatusOr<UniqueFd> listener = BindSocket(
      SOCK_STREAM, "127.0.0.1", 0, 1, options.sockbuf);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<uint16_t> port = LocalPort(listener->get());
  ASSERT_TRUE(port.ok());
  options.port = *port;
  absl::StatusOr<ttcp::Result> received;
  std::thread r([&] { received = ttcp::Receive(listener->get(), options); });
  absl::StatusOr<ttcp::Result> sent = ttcp::Transmit(options);
  r.join();
  ASSERT_TRUE(sent.ok()) << sent.status();
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_EQ(sent->bytes, options.buflen * options.nbuf);
  EXPECT_EQ(received->bytes, sent->bytes);
  EXPECT_EQ(sent->calls, options.nbuf);
  EXPECT_GT(received->seconds, 0);
  EXPECT_GT(sent->effective_sockbuf, 0);
  const std::string report = ttcp::FormatReport('t', options, *sent);
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrCat("ttcp-result role=t bytes=", sent->bytes)))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "buflen=10007 sockbuf=65536"));
}

TEST(TtcpTest, ReceiverDetectsForeignData) {
  ttcp::Options options;
  options.verify = true;
  absl::StatusOr<UniqueFd> listener = BindSocket(SOCK_STREAM, "127.0.0.1", 0);
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<uint16_t> port = LocalPort(listener->get());
  ASSERT_TRUE(port.ok());
  absl::StatusOr<ttcp::Result> received;
  std::thread r([&] { received = ttcp::Receive(listener->get(), options); });
  {
    absl::StatusOr<UniqueFd> c =
        ConnectTo(SOCK_STREAM, "127.0.0.1", *port, absl::Seconds(5));
    ASSERT_TRUE(c.ok());
    // The pattern starts " !\"#"; byte 2 is wrong.
    ASSERT_TRUE(
        WriteFull(c->get(), " !X", 3, absl::Now() + absl::Seconds(5)).ok());
  }
  r.join();
  EXPECT_TRUE(absl::IsDataLoss(received.status())) << received.status();
  EXPECT_TRUE(absl::StrContains(received.status().message(),
                                "stream offset 2: expected 0x22, got 0x58"));
}

TEST(TtcpTest, CongestionControlIsSetOrNamedInTheError) {
  // "reno" is built into every kernel; an unknown name fails before any data
  // is sent, and the error names the option and the value.
  for (const char* cc : {"reno", "no-such-cc"}) {
    ttcp::Options options;
    options.nbuf = 4;
    options.congestion = cc;
    absl::StatusOr<UniqueFd> listener = BindSocket(SOCK_STREAM, "127.0.0.1", 0);
    ASSERT_TRUE(listener.ok());
    absl::StatusOr<uint16_t> port = LocalPort(listener->get());
    ASSERT_TRUE(port.ok());
    options.port = *port;
    absl::StatusOr<ttcp::Result> received;
    std::thread r([&] { received = ttcp::Receive(listener->get(), options); });
    absl::StatusOr<ttcp::Result> sent = ttcp::Transmit(options);
    r.join();
    if (std::string(cc) == "reno") {
      ASSERT_TRUE(sent.ok()) << sent.status();
      EXPECT_EQ(sent->bytes, options.buflen * options.nbuf);
    } else {
      ASSERT_FALSE(sent.ok());
      EXPECT_TRUE(absl::StrContains(sent.status().message(),
                                    "setsockopt(TCP_CONGESTION, no-such-cc)"))
          << sent.status();
    }
  }
}

TEST(ConnrateTest, CountsCompletedCycles) {
  absl::StatusOr<UniqueFd> listener = BindSocket(SOCK_STREAM, "127.0.0.1", 0);
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<uint16_t> port = LocalPort(listener->get());
  ASSERT_TRUE(port.ok());
  connrate::ServerOptions so;
  so.count = 200;
  so.idle_timeout = absl::Seconds(10);
  absl::StatusOr<uint64_t> served;
  std::thread s([&] { served = connrate::RunServer(listener->get(), so); });
  connrate::ClientOptions co;
  co.port = *port;
  co.count = 200;
  co.duration = absl::Seconds(60);
  absl::StatusOr<connrate::ClientResult> r = connrate::RunClient(co);
  s.join();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(r->connections, 200u);
  EXPECT_EQ(*served, 200u);
  EXPECT_GT(r->PerSecond(), 0);
  EXPECT_TRUE(absl::StartsWith(connrate::FormatResult(*r),
                               "connrate: connections=200 seconds="));
}

TEST(ConnrateTest, ServerIdleTimeoutSaysHowManyWereServed) {
  absl::StatusOr<UniqueFd> listener = BindSocket(SOCK_STREAM, "127.0.0.1", 0);
  ASSERT_TRUE(listener.ok());
  connrate::ServerOptions so;
  so.count = 5;
  so.idle_timeout = absl::Milliseconds(50);
  absl::StatusOr<uint64_t> served = connrate::RunServer(listener->get(), so);
  EXPECT_TRUE(absl::IsDeadlineExceeded(served.status()));
  EXPECT_EQ(served.status().message(), "idle timeout after 0 connections");
}

}  // namespace
}  // namespace offload::tools
