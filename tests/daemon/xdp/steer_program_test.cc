// Data-plane tests of the XDP steering program: the real embedded program is
// loaded (not attached) and run on crafted frames with BPF_PROG_TEST_RUN; the
// verdict and the program's own statistics tell where each frame would go.
// Without an AF_XDP socket in the XSKMAP a steered frame is counted as
// OFFLOAD_STAT_NO_SOCKET and passed, which is how "steered" is observed here.
// Needs CAP_BPF/CAP_SYS_ADMIN (tagged "root").

#include "daemon/xdp/steer_program.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <vector>

#include "daemon/nic/flow.h"
#include "gtest/gtest.h"
#include "tests/daemon/xdp/packet_builder.h"
#include "tests/daemon/xdp/steer_fixture.h"

namespace offload::xdp {
namespace {

using nic::FlowKey;
using nic::IpProto;
using offload::testing::BuildFrame;
using offload::testing::FrameSpec;
using offload::testing::Ip;

class SteerProgramTest : public SteerFixture {
 protected:
  int Classify(const FrameSpec& spec) { return ClassifyFrame(BuildFrame(spec)); }

  static FrameSpec Udp(const char* src, uint16_t sport, const char* dst,
                       uint16_t dport) {
    FrameSpec s;
    s.proto = 17;
    s.src_ip = Ip(src);
    s.dst_ip = Ip(dst);
    s.src_port = sport;
    s.dst_port = dport;
    s.payload = "hello";
    return s;
  }
  static FrameSpec Tcp(const char* src, uint16_t sport, const char* dst,
                       uint16_t dport) {
    FrameSpec s = Udp(src, sport, dst, dport);
    s.proto = 6;
    return s;
  }

};

TEST_F(SteerProgramTest, ArpGoesToKernel) {
  FrameSpec arp;
  arp.ether_type = 0x0806;
  arp.proto = 0;
  arp.payload = std::string(28, '\0');
  EXPECT_EQ(Classify(arp), OFFLOAD_STAT_PASS_NOT_IP);
  // A real ARP reply (RFC 826) addressed to us reaches the kernel even with
  // a wildcard UDP listener steered: its neighbour table is what the engine
  // reads.
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Listener(IpProto::kUdp, 0, 1), 0).ok());
  const uint8_t reply[42] = {
      2, 0, 0,    0, 0, 1, 2,   0,  0, 0, 0, 2, 0x08, 0x06,  // Ethernet
      0, 1, 0x08, 0, 6, 4, 0,   2,          // Ethernet/IPv4 reply
      2, 0, 0,    0, 0, 2, 198, 18, 0, 2,   // sender
      2, 0, 0,    0, 0, 1, 198, 18, 0, 1};  // target: us
  int stat;
  EXPECT_EQ(Run(std::vector<uint8_t>(reply, reply + sizeof(reply)), &stat),
            XDP_PASS);
  EXPECT_EQ(stat, OFFLOAD_STAT_PASS_NOT_IP);
  FrameSpec vlan = arp;
  vlan.ether_type = 0x8100;
  EXPECT_EQ(Classify(vlan), OFFLOAD_STAT_PASS_NOT_IP);
}

TEST_F(SteerProgramTest, IcmpGoesToKernelEvenWithAWildcardListener) {
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Listener(IpProto::kUdp, 0, 7), 0).ok());
  FrameSpec icmp = Udp("198.18.0.2", 0, "198.18.0.1", 7);
  icmp.proto = 1;
  icmp.payload = std::string(8, '\0');
  EXPECT_EQ(Classify(icmp), OFFLOAD_STAT_PASS_NOT_L4);
}

TEST_F(SteerProgramTest, UnsteeredUdpGoesToKernel) {
  EXPECT_EQ(Classify(Udp("198.18.0.2", 4000, "198.18.0.1", 53)),
            OFFLOAD_STAT_PASS_NO_FLOW);
}

TEST_F(SteerProgramTest, ConnectionMatchesOnlyItsFiveTuple) {
  ASSERT_TRUE(prog_
                  ->SetFlow(FlowKey::Connection(IpProto::kUdp, Ip("198.18.0.1"),
                                                7000, Ip("198.18.0.2"), 4000),
                            0)
                  .ok());
  EXPECT_EQ(Classify(Udp("198.18.0.2", 4000, "198.18.0.1", 7000)),
            OFFLOAD_STAT_NO_SOCKET);
  EXPECT_EQ(Classify(Udp("198.18.0.2", 4001, "198.18.0.1", 7000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
  EXPECT_EQ(Classify(Udp("198.18.0.3", 4000, "198.18.0.1", 7000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
  EXPECT_EQ(Classify(Tcp("198.18.0.2", 4000, "198.18.0.1", 7000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
}

TEST_F(SteerProgramTest, WildcardListenerMatchesAnyPeerAndAddress) {
  ASSERT_TRUE(
      prog_->SetFlow(FlowKey::Listener(IpProto::kTcp, 0, 8000), 0).ok());
  EXPECT_EQ(Classify(Tcp("198.18.0.2", 4000, "198.18.0.1", 8000)),
            OFFLOAD_STAT_NO_SOCKET);
  EXPECT_EQ(Classify(Tcp("198.18.9.9", 1, "198.18.0.7", 8000)),
            OFFLOAD_STAT_NO_SOCKET);
  EXPECT_EQ(Classify(Tcp("198.18.0.2", 4000, "198.18.0.1", 8001)),
            OFFLOAD_STAT_PASS_NO_FLOW);
  EXPECT_EQ(Classify(Udp("198.18.0.2", 4000, "198.18.0.1", 8000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
}

TEST_F(SteerProgramTest, AddressListenerMatchesOnlyItsAddress) {
  ASSERT_TRUE(
      prog_
          ->SetFlow(FlowKey::Listener(IpProto::kTcp, Ip("198.18.0.1"), 8000), 0)
          .ok());
  EXPECT_EQ(Classify(Tcp("198.18.0.2", 4000, "198.18.0.1", 8000)),
            OFFLOAD_STAT_NO_SOCKET);
  EXPECT_EQ(Classify(Tcp("198.18.0.2", 4000, "198.18.0.5", 8000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
}

TEST_F(SteerProgramTest, MulticastGroupIsSteered) {
  ASSERT_TRUE(
      prog_->SetFlow(FlowKey::MulticastGroup(Ip("239.1.2.3"), 5000), 0).ok());
  EXPECT_EQ(Classify(Udp("198.18.0.2", 4000, "239.1.2.3", 5000)),
            OFFLOAD_STAT_NO_SOCKET);
  EXPECT_EQ(Classify(Udp("198.18.0.2", 4000, "239.1.2.4", 5000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
}

TEST_F(SteerProgramTest, FragmentsOfSteeredFlowGoToKernel) {
  ASSERT_TRUE(
      prog_->SetFlow(FlowKey::Listener(IpProto::kUdp, 0, 7000), 0).ok());
  FrameSpec first = Udp("198.18.0.2", 4000, "198.18.0.1", 7000);
  first.frag_off = 0x2000;  // MF
  EXPECT_EQ(Classify(first), OFFLOAD_STAT_PASS_FRAGMENT);
  FrameSpec later = first;
  later.frag_off = 0x0010;  // offset 128, last
  EXPECT_EQ(Classify(later), OFFLOAD_STAT_PASS_FRAGMENT);
  FrameSpec df = first;
  df.frag_off = 0x4000;  // DF only: not a fragment
  EXPECT_EQ(Classify(df), OFFLOAD_STAT_NO_SOCKET);
}

TEST_F(SteerProgramTest, IpOptionsAreSkippedToFindPorts) {
  ASSERT_TRUE(
      prog_->SetFlow(FlowKey::Listener(IpProto::kUdp, 0, 7000), 0).ok());
  FrameSpec s = Udp("198.18.0.2", 4000, "198.18.0.1", 7000);
  s.ip_options_words = 3;
  EXPECT_EQ(Classify(s), OFFLOAD_STAT_NO_SOCKET);
}

TEST_F(SteerProgramTest, TruncatedHeadersGoToKernel) {
  ASSERT_TRUE(
      prog_->SetFlow(FlowKey::Listener(IpProto::kUdp, 0, 7000), 0).ok());
  std::vector<uint8_t> f =
      BuildFrame(Udp("198.18.0.2", 4000, "198.18.0.1", 7000));
  int stat;
  std::vector<uint8_t> cut(f.begin(), f.begin() + 14 + 20 + 2);  // half ports
  EXPECT_EQ(Run(cut, &stat), XDP_PASS);
  EXPECT_EQ(stat, OFFLOAD_STAT_PASS_MALFORMED);
  std::vector<uint8_t> bad_ihl = f;
  bad_ihl[14] = 0x44;  // IHL 4 < 5
  EXPECT_EQ(Run(bad_ihl, &stat), XDP_PASS);
  EXPECT_EQ(stat, OFFLOAD_STAT_PASS_MALFORMED);
}

TEST_F(SteerProgramTest, UnsteerReturnsFlowToKernel) {
  FlowKey k = FlowKey::Listener(IpProto::kUdp, 0, 7000);
  ASSERT_TRUE(prog_->SetFlow(k, 0).ok());
  EXPECT_EQ(Classify(Udp("198.18.0.2", 4000, "198.18.0.1", 7000)),
            OFFLOAD_STAT_NO_SOCKET);
  ASSERT_TRUE(prog_->DeleteFlow(k).ok());
  EXPECT_EQ(Classify(Udp("198.18.0.2", 4000, "198.18.0.1", 7000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
  EXPECT_EQ(prog_->DeleteFlow(k).code(), absl::StatusCode::kNotFound);
}

TEST_F(SteerProgramTest, QueueMismatchIsCounted) {
  ASSERT_TRUE(
      prog_->SetFlow(FlowKey::Listener(IpProto::kUdp, 0, 7000), 3).ok());
  auto before = prog_->ReadStats();
  ASSERT_TRUE(before.ok());
  int stat;
  Run(BuildFrame(Udp("198.18.0.2", 4000, "198.18.0.1", 7000)), &stat);
  auto after = prog_->ReadStats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)[OFFLOAD_STAT_QUEUE_MISMATCH],
            (*before)[OFFLOAD_STAT_QUEUE_MISMATCH] + 1);
}

TEST_F(SteerProgramTest, InvalidKeysAreRejected) {
  EXPECT_EQ(prog_->SetFlow(FlowKey::Listener(IpProto::kUdp, 0, 0), 0).code(),
            absl::StatusCode::kInvalidArgument);
  FlowKey half = FlowKey::Connection(IpProto::kTcp, Ip("198.18.0.1"), 80,
                                     Ip("198.18.0.2"), 0);
  EXPECT_EQ(prog_->SetFlow(half, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      prog_->SetFlow(FlowKey::Listener(IpProto::kTcp, Ip("239.1.1.1"), 80), 0)
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(SteerProgramTest, FullFlowTableIsResourceExhausted) {
  absl::Status last;
  for (uint32_t port = 1; port <= 1025 && last.ok(); ++port) {
    last = prog_->SetFlow(
        FlowKey::Listener(IpProto::kUdp, 0, static_cast<uint16_t>(port)), 0);
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace offload::xdp
