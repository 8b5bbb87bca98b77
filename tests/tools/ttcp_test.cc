// Tests for ttcp (both back ends: plain sockets and the typed C++ API) and
// offload-connrate over loopback.

#include "tools/ttcp/ttcp.h"

#include <sys/socket.h>

#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tools/bench/connrate.h"
#include "tools/bench/socket_util.h"
#include "tools/ttcp/ttcp_cxx.h"

namespace offload::tools {
namespace {

// The transfer tests run on both back ends: plain sockets (CApi) and the
// typed C++ socket API (CxxApi), which must behave the same.
template <class Api>
class TtcpTest : public ::testing::Test {
 protected:
  // A listener on 127.0.0.1 with a kernel-picked port; sets options.port.
  typename Api::Listener Listen(ttcp::Options* options) {
    options->port = 0;
    absl::StatusOr<typename Api::Listener> l =
        Api::Listen("127.0.0.1", *options);
    EXPECT_TRUE(l.ok()) << l.status();
    absl::StatusOr<uint16_t> port = Api::Port(*l);
    EXPECT_TRUE(port.ok()) << port.status();
    options->port = *port;
    return std::move(*l);
  }
};
using Apis = ::testing::Types<ttcp::CApi, ttcp::CxxApi>;
TYPED_TEST_SUITE(TtcpTest, Apis);

TYPED_TEST(TtcpTest, TransfersAndVerifiesEveryByte) {
  ttcp::Options options;
  options.buflen = 10007;  // not a multiple of the 95-byte pattern period
  options.nbuf = 300;
  options.verify = true;
  options.sockbuf = 65536;
  auto listener = this->Listen(&options);
  absl::StatusOr<ttcp::Result> received;
  std::thread r([&] { received = TypeParam::Receive(listener, options); });
  absl::StatusOr<ttcp::Result> sent = TypeParam::Transmit(options);
  r.join();
  ASSERT_TRUE(sent.ok()) << sent.status();
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_EQ(sent->bytes, options.buflen * options.nbuf);
  EXPECT_EQ(received->bytes, sent->bytes);
  EXPECT_EQ(sent->calls, options.nbuf);
  EXPECT_GT(received->seconds, 0);
  EXPECT_GT(sent->effective_sockbuf, 0);
  EXPECT_GT(received->effective_sockbuf, 0);
  const std::string report = ttcp::FormatReport('t', options, *sent);
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrCat("ttcp-result role=t bytes=", sent->bytes)))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "buflen=10007 sockbuf=65536"));
}

TYPED_TEST(TtcpTest, OneByteBuffers) {
  ttcp::Options options;
  options.buflen = 1;
  options.nbuf = 5000;
  options.verify = true;
  auto listener = this->Listen(&options);
  absl::StatusOr<ttcp::Result> received;
  std::thread r([&] { received = TypeParam::Receive(listener, options); });
  absl::StatusOr<ttcp::Result> sent = TypeParam::Transmit(options);
  r.join();
  ASSERT_TRUE(sent.ok()) << sent.status();
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_EQ(sent->calls, 5000u);
  EXPECT_EQ(received->bytes, 5000u);
  // One recv per byte, plus the one that sees end of stream.
  EXPECT_EQ(received->calls, 5001u);
}

TYPED_TEST(TtcpTest, ReceiverDetectsForeignData) {
  ttcp::Options options;
  options.verify = true;
  auto listener = this->Listen(&options);
  absl::StatusOr<ttcp::Result> received;
  std::thread r([&] { received = TypeParam::Receive(listener, options); });
  {
    absl::StatusOr<UniqueFd> c =
        ConnectTo(SOCK_STREAM, "127.0.0.1", options.port, absl::Seconds(5));
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

TYPED_TEST(TtcpTest, CongestionControlIsSetOrNamedInTheError) {
  // "reno" is built into every kernel; an unknown name fails before any data
  // is sent, and the error names the option and the value.
  for (const char* cc : {"reno", "no-such-cc"}) {
    ttcp::Options options;
    options.nbuf = 4;
    options.congestion = cc;
    auto listener = this->Listen(&options);
    absl::StatusOr<ttcp::Result> received;
    std::thread r([&] { received = TypeParam::Receive(listener, options); });
    absl::StatusOr<ttcp::Result> sent = TypeParam::Transmit(options);
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

// A verified transfer from a Tx transmitter to an Rx receiver.
template <class Rx, class Tx>
void Interop() {
  ttcp::Options options;
  options.buflen = 4096;
  options.nbuf = 100;
  options.verify = true;
  options.port = 0;
  absl::StatusOr<typename Rx::Listener> l = Rx::Listen("127.0.0.1", options);
  ASSERT_TRUE(l.ok()) << l.status();
  options.port = *Rx::Port(*l);
  absl::StatusOr<ttcp::Result> received;
  std::thread r([&] { received = Rx::Receive(*l, options); });
  absl::StatusOr<ttcp::Result> sent = Tx::Transmit(options);
  r.join();
  ASSERT_TRUE(sent.ok()) << sent.status();
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_EQ(received->bytes, 4096u * 100u);
}

TEST(TtcpInteropTest, CAndCxxEndsTalkToEachOther) {
  // The wire is the same: a C transmitter to a C++ receiver and back.
  Interop<ttcp::CxxApi, ttcp::CApi>();
  Interop<ttcp::CApi, ttcp::CxxApi>();
}

TEST(TtcpCxxTest, ListenErrorsSayWhatToDo) {
  ttcp::Options options;
  options.port = 0;
  absl::StatusOr<ttcp::CxxApi::Listener> bad =
      ttcp::CxxApi::Listen("not-an-address", options);
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  absl::StatusOr<ttcp::CxxApi::Listener> first =
      ttcp::CxxApi::Listen("127.0.0.1", options);
  ASSERT_TRUE(first.ok());
  options.port = *ttcp::CxxApi::Port(*first);
  absl::StatusOr<ttcp::CxxApi::Listener> second =
      ttcp::CxxApi::Listen("127.0.0.1", options);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::StrContains(second.status().message(),
                                "use --port 0 to let the kernel pick"))
      << second.status();
  // IPv6 literals work with the typed API (when the host has ::1).
  options.port = 0;
  absl::StatusOr<ttcp::CxxApi::Listener> v6 =
      ttcp::CxxApi::Listen("::1", options);
  if (v6.ok()) {
    EXPECT_GT(*ttcp::CxxApi::Port(*v6), 0);
  }
}

TEST(TtcpPatternTest, BufferAndVerifierAgree) {
  const ttcp::AlignedBuffer buf = ttcp::PatternBuffer(10);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % 4096, 0u);
  ASSERT_EQ(buf.size(), 105u);
  for (uint64_t offset : {0u, 1u, 94u, 95u, 1000u}) {
    EXPECT_TRUE(ttcp::VerifyPattern(buf.data() + offset % 95, 10, offset).ok());
  }
  EXPECT_TRUE(absl::IsDataLoss(ttcp::VerifyPattern(buf.data(), 10, 1)));
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
