// Tests for offload-grind: real server and client over loopback in one
// process, plus the pattern helpers and the corruption path.

#include "tools/grind/grind.h"
#include "tools/grind/wire.h"

#include <sys/socket.h>

#include <algorithm>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tools/bench/socket_util.h"

namespace offload::tools::grind {
namespace {

struct Outcome {
  absl::Status server;
  absl::Status client;
  std::string server_out;
  std::string client_out;
};

Outcome RunPair(const Plan& plan, int64_t corrupt = -1) {
  absl::StatusOr<UniqueFd> listener = BindSocket(SOCK_STREAM, "127.0.0.1", 0);
  EXPECT_TRUE(listener.ok()) << listener.status();
  absl::StatusOr<uint16_t> port = LocalPort(listener->get());
  EXPECT_TRUE(port.ok());
  Outcome o;
  std::ostringstream server_out, client_out;
  ServerOptions so;
  so.io_timeout = absl::Seconds(20);
  std::thread server([&] { o.server = RunServer(listener->get(), so, server_out); });
  ClientOptions co;
  co.plan = plan;
  co.port = *port;
  co.io_timeout = absl::Seconds(20);
  co.corrupt_offset_for_test = corrupt;
  o.client = RunClient(co, client_out);
  server.join();
  o.server_out = server_out.str();
  o.client_out = client_out.str();
  return o;
}

TEST(GrindPatternTest, FindMismatchLocatesFirstBadByte) {
  uint8_t buf[100];
  FillPattern(7, 1000, buf, sizeof(buf));
  EXPECT_EQ(FindMismatch(7, 1000, buf, sizeof(buf)), sizeof(buf));
  buf[42] ^= 1;
  buf[60] ^= 1;
  EXPECT_EQ(FindMismatch(7, 1000, buf, sizeof(buf)), 42u);
}

TEST(GrindPatternTest, ShiftedDataDoesNotMatch) {
  // A stream that lost or repeated one byte must not verify anywhere.
  uint8_t buf[64];
  FillPattern(1, 1, buf, sizeof(buf));
  EXPECT_LT(FindMismatch(1, 0, buf, sizeof(buf)), 8u);
  FillPattern(1, 0, buf, sizeof(buf));
  EXPECT_LT(FindMismatch(1, 8, buf, sizeof(buf)), 8u);
}

TEST(GrindPlanTest, ValidateRejectsBadPlans) {
  Plan p;
  EXPECT_TRUE(ValidatePlan(p).ok());
  p.start = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidatePlan(p)));
  p = Plan();
  p.start = 10;
  p.end = 5;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidatePlan(p)));
  p = Plan();
  p.transport = Transport::kUdp;
  p.end = kMaxUdpMessage + 1;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidatePlan(p)));
  p = Plan();
  p.increment = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidatePlan(p)));
  p = Plan();
  p.wraps = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidatePlan(p)));
}

TEST(GrindPlanTest, MessagesCoverWraps) {
  EXPECT_EQ(MessagesPerSize(1, 1), kWrapBytes);
  EXPECT_EQ(MessagesPerSize(1000, 1), (kWrapBytes + 999) / 1000);
  EXPECT_EQ(MessagesPerSize(1 << 20, 1), 1u);
}

TEST(GrindWireTest, HandshakeRoundTrip) {
  Plan plan;
  plan.transport = Transport::kUdp;
  plan.start = 3;
  plan.end = 9000;
  plan.increment = 17;
  plan.wraps = 5;
  plan.seed = 0x123456789abcdefull;
  uint8_t wire[kHandshakeSize];
  EncodeHandshake(plan, wire);
  absl::StatusOr<Plan> back = DecodeHandshake(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->transport, Transport::kUdp);
  EXPECT_EQ(back->start, 3u);
  EXPECT_EQ(back->end, 9000u);
  EXPECT_EQ(back->increment, 17u);
  EXPECT_EQ(back->wraps, 5u);
  EXPECT_EQ(back->seed, plan.seed);
}

TEST(GrindWireTest, HandshakeRejectsBadVersionTransportAndPlan) {
  uint8_t wire[kHandshakeSize];
  EncodeHandshake(Plan(), wire);
  uint8_t bad[kHandshakeSize];
  std::copy(wire, wire + kHandshakeSize, bad);
  bad[4] = 99;  // version
  EXPECT_NE(std::string(DecodeHandshake(bad).status().message())
                .find("version 99"),
            std::string::npos);
  std::copy(wire, wire + kHandshakeSize, bad);
  bad[5] = 7;  // transport
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeHandshake(bad).status()));
  Plan huge;
  huge.transport = Transport::kUdp;
  huge.end = kMaxUdpMessage;
  EncodeHandshake(huge, bad);
  bad[10] = 0xff;  // end > 65507 for UDP
  bad[11] = 0xff;
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeHandshake(bad).status()));
}

TEST(GrindWireTest, VerdictRoundTripAndDescription) {
  Verdict v;
  v.code = VerdictCode::kMismatch;
  v.size = 150;
  v.bytes = 1000;
  v.offset = 65600 + 3 * 150 + 7;
  v.message = 3;
  v.expected = 0x3a;
  v.got = 0x60;
  uint8_t wire[kVerdictSize];
  EncodeVerdict(v, wire);
  absl::StatusOr<Verdict> back = DecodeVerdict(wire);
  ASSERT_TRUE(back.ok());
  absl::Status s = VerdictStatus(*back, 65600);
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_EQ(s.message(),
            "MISMATCH: size 150, message 3, byte 7 of the message (stream "
            "offset 66057): expected 0x3a, got 0x60");
  wire[0] = 42;
  EXPECT_FALSE(DecodeVerdict(wire).ok());
}

TEST(GrindWireTest, SplitsStayInRange) {
  for (uint32_t size : {1u, 2u, 7u, 1500u, 65507u}) {
    for (uint64_t i = 0; i < 1000; ++i) {
      EXPECT_LE(SendSplit(i, size), size);
      EXPECT_LE(RecvSplit(i, size), size);
      EXPECT_GE(RecvLen(i, size), 1u);
      EXPECT_LE(RecvLen(i, size), 2u * size);
    }
  }
}

TEST(GrindLoopbackTest, TcpLooksGood) {
  Plan plan;
  plan.start = 1;
  plan.end = 300;
  plan.increment = 13;
  plan.wraps = 1;
  Outcome o = RunPair(plan);
  EXPECT_TRUE(o.client.ok()) << o.client;
  EXPECT_TRUE(o.server.ok()) << o.server;
  EXPECT_NE(o.server_out.find("LOOKS GOOD"), std::string::npos) << o.server_out;
}

TEST(GrindLoopbackTest, TcpLargeMessages) {
  Plan plan;
  plan.start = 60000;
  plan.end = 200000;
  plan.increment = 70001;
  plan.wraps = 4;
  Outcome o = RunPair(plan);
  EXPECT_TRUE(o.client.ok()) << o.client;
  EXPECT_TRUE(o.server.ok()) << o.server;
}

TEST(GrindLoopbackTest, UdpLooksGood) {
  Plan plan;
  plan.transport = Transport::kUdp;
  plan.start = 1;
  plan.end = kMaxUdpMessage;
  plan.increment = 4099;
  plan.wraps = 1;
  Outcome o = RunPair(plan);
  EXPECT_TRUE(o.client.ok()) << o.client;
  EXPECT_TRUE(o.server.ok()) << o.server;
}

TEST(GrindLoopbackTest, TcpCorruptionReportedAtExactOffset) {
  Plan plan;
  plan.start = 100;
  plan.end = 200;
  plan.increment = 50;
  plan.wraps = 1;
  // Size 100 covers offsets [0, 65600); size 150 starts there. Corrupt byte
  // 7 of message 3 of the second size.
  const uint64_t base = MessagesPerSize(100, 1) * 100;
  const int64_t bad = static_cast<int64_t>(base + 3 * 150 + 7);
  Outcome o = RunPair(plan, bad);
  EXPECT_TRUE(absl::IsDataLoss(o.server)) << o.server;
  EXPECT_TRUE(absl::IsDataLoss(o.client)) << o.client;
  const std::string msg(o.client.message());
  EXPECT_NE(msg.find("size 150, message 3, byte 7"), std::string::npos) << msg;
  EXPECT_NE(msg.find(absl::StrCat("stream offset ", bad)), std::string::npos)
      << msg;
}

TEST(GrindLoopbackTest, UdpCorruptionReported) {
  Plan plan;
  plan.transport = Transport::kUdp;
  plan.start = 1000;
  plan.end = 1000;
  plan.wraps = 1;
  Outcome o = RunPair(plan, 1000 * 5 + 999);
  EXPECT_TRUE(absl::IsDataLoss(o.client)) << o.client;
  EXPECT_NE(std::string(o.client.message()).find("message 5, byte 999"),
            std::string::npos)
      << o.client;
}

TEST(GrindServerTest, RejectsGarbageHandshake) {
  absl::StatusOr<UniqueFd> listener = BindSocket(SOCK_STREAM, "127.0.0.1", 0);
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<uint16_t> port = LocalPort(listener->get());
  ASSERT_TRUE(port.ok());
  absl::Status server_status;
  std::ostringstream out;
  std::thread server([&] {
    server_status = RunServer(listener->get(), ServerOptions(), out);
  });
  absl::StatusOr<UniqueFd> c =
      ConnectTo(SOCK_STREAM, "127.0.0.1", *port, absl::Seconds(5));
  ASSERT_TRUE(c.ok());
  const char garbage[30] = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_TRUE(WriteFull(c->get(), garbage, sizeof(garbage),
                        absl::Now() + absl::Seconds(5))
                  .ok());
  char reply[4];
  ASSERT_TRUE(
      ReadFull(c->get(), reply, sizeof(reply), absl::Now() + absl::Seconds(5))
          .ok());
  EXPECT_EQ(reply[0], 1);  // rejected
  server.join();
  EXPECT_TRUE(absl::IsInvalidArgument(server_status)) << server_status;
  EXPECT_NE(out.str().find("bad magic"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace offload::tools::grind
