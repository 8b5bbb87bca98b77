// Data-plane tests of the XDP steering program for IPv6 (RFC 8200): the real
// embedded program run on crafted frames with BPF_PROG_TEST_RUN, as in
// steer_program_test.cc. IPv6 TCP/UDP of steered flows is redirected;
// ICMPv6 (neighbour discovery), extension headers, fragments and the other
// family of a listener's port go to the kernel. Needs root.

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "daemon/nic/flow.h"
#include "daemon/xdp/steer_program.h"
#include "gtest/gtest.h"
#include "tests/daemon/xdp/packet_builder.h"
#include "tests/daemon/xdp/steer_fixture.h"

namespace offload::xdp {
namespace {

using nic::FlowKey;
using nic::IpProto;
using nic::Ip6Bytes;

Ip6Bytes A6(const char* text) {
  Ip6Bytes a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
  return a;
}

// Ethernet/IPv6 with `next` as Next Header and a 20-byte upper layer whose
// first 4 bytes are the ports (enough for steering; checksums unused).
std::vector<uint8_t> Frame6(const char* src, uint16_t sport, const char* dst,
                            uint16_t dport, uint8_t next = IPPROTO_TCP) {
  std::vector<uint8_t> f(14 + 40 + 20, 0);
  const uint8_t mac[12] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
  memcpy(f.data(), mac, 12);
  f[12] = 0x86;
  f[13] = 0xdd;
  f[14] = 0x60;
  f[14 + 5] = 20;  // payload length
  f[14 + 6] = next;
  f[14 + 7] = 64;
  Ip6Bytes s = A6(src), d = A6(dst);
  memcpy(&f[14 + 8], s.data(), 16);
  memcpy(&f[14 + 24], d.data(), 16);
  f[54] = static_cast<uint8_t>(sport >> 8);
  f[55] = static_cast<uint8_t>(sport);
  f[56] = static_cast<uint8_t>(dport >> 8);
  f[57] = static_cast<uint8_t>(dport);
  return f;
}

class SteerProgramIpv6Test : public SteerFixture {
 protected:
  int Classify(const std::vector<uint8_t>& frame) { return ClassifyFrame(frame); }
};

TEST_F(SteerProgramIpv6Test, ConnectionMatchesOnlyItsFiveTuple) {
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Connection6(IpProto::kTcp, A6("2001:db8::1"), 7000,
                                                  A6("2001:db8::2"), 4000),
                             0)
                  .ok());
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "2001:db8::1", 7000)), OFFLOAD_STAT_NO_SOCKET);
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4001, "2001:db8::1", 7000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
  EXPECT_EQ(Classify(Frame6("2001:db8::3", 4000, "2001:db8::1", 7000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
  // The last byte of the 16 counts (not only an IPv4-sized prefix).
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "2001:db8::1:1", 7000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "2001:db8::1", 7000, IPPROTO_UDP)),
            OFFLOAD_STAT_PASS_NO_FLOW);
}

TEST_F(SteerProgramIpv6Test, AddressListenerMatchesOnlyItsAddress) {
  ASSERT_TRUE(
      prog_->SetFlow(FlowKey::Listener6(IpProto::kUdp, A6("2001:db8::1"), 53), 0).ok());
  EXPECT_EQ(Classify(Frame6("2001:db8::9", 1, "2001:db8::1", 53, IPPROTO_UDP)),
            OFFLOAD_STAT_NO_SOCKET);
  EXPECT_EQ(Classify(Frame6("2001:db8::9", 1, "2001:db8::5", 53, IPPROTO_UDP)),
            OFFLOAD_STAT_PASS_NO_FLOW);
}

TEST_F(SteerProgramIpv6Test, WildcardListenerIsPerFamily) {
  // An IPv6-only (v6only) listener: IPv4 clients of the port are not its.
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Listener6(IpProto::kTcp, Ip6Bytes{}, 8000), 0).ok());
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "2001:db8::1", 8000)), OFFLOAD_STAT_NO_SOCKET);
  testing::FrameSpec v4;
  v4.proto = IPPROTO_TCP;
  v4.src_ip = testing::Ip("198.18.0.2");
  v4.dst_ip = testing::Ip("198.18.0.1");
  v4.src_port = 4000;
  v4.dst_port = 8000;
  EXPECT_EQ(Classify(testing::BuildFrame(v4)), OFFLOAD_STAT_PASS_NO_FLOW);
  // An IPv4 wildcard listener on another port does not take IPv6 either.
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Listener(IpProto::kTcp, 0, 8001), 0).ok());
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "2001:db8::1", 8001)),
            OFFLOAD_STAT_PASS_NO_FLOW);
  // A dual-stack listener is both keys.
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Listener(IpProto::kTcp, 0, 8000), 0).ok());
  EXPECT_EQ(Classify(testing::BuildFrame(v4)), OFFLOAD_STAT_NO_SOCKET);
  ASSERT_TRUE(prog_->DeleteFlow(FlowKey::Listener6(IpProto::kTcp, Ip6Bytes{}, 8000)).ok());
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "2001:db8::1", 8000)),
            OFFLOAD_STAT_PASS_NO_FLOW);
  EXPECT_EQ(Classify(testing::BuildFrame(v4)), OFFLOAD_STAT_NO_SOCKET);
}

TEST_F(SteerProgramIpv6Test, Icmpv6AndNeighbourDiscoveryGoToKernel) {
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Listener6(IpProto::kTcp, Ip6Bytes{}, 34560), 0).ok());
  // A neighbour solicitation (type 135 = 0x87; the "ports" word overlaps
  // type/code/checksum and here equals the listener's port).
  std::vector<uint8_t> ns = Frame6("fe80::2", 0x8700, "ff02::1:ff00:1", 34560, 58);
  EXPECT_EQ(Classify(ns), OFFLOAD_STAT_PASS_NOT_L4);
}

// RFC 4291 2.5.6: a link-local client of a wildcard listener goes to the
// kernel (the engine serves the global address; the listener's kernel
// socket accepts it) instead of reaching an engine that would drop it.
TEST_F(SteerProgramIpv6Test, Rfc4291_LinkLocalDestinationsGoToKernel) {
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Listener6(IpProto::kTcp, Ip6Bytes{}, 8080), 0).ok());
  EXPECT_EQ(Classify(Frame6("fe80::2", 4000, "fe80::1", 8080)), OFFLOAD_STAT_PASS_LINK_LOCAL);
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "febf::1", 8080)),
            OFFLOAD_STAT_PASS_LINK_LOCAL);
  // fec0::/10 is not link-local: steered as any other address.
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "fec0::1", 8080)), OFFLOAD_STAT_NO_SOCKET);
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "2001:db8::1", 8080)), OFFLOAD_STAT_NO_SOCKET);
}

TEST_F(SteerProgramIpv6Test, Rfc8200_ExtensionHeadersAndFragmentsGoToKernel) {
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Listener6(IpProto::kTcp, Ip6Bytes{}, 80), 0).ok());
  for (uint8_t next : {0, 43, 50, 51, 59, 60, 135, 139, 140}) {
    EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "2001:db8::1", 80, next)),
              OFFLOAD_STAT_PASS_IPV6_EXT)
        << int{next};
  }
  EXPECT_EQ(Classify(Frame6("2001:db8::2", 4000, "2001:db8::1", 80, 44)),
            OFFLOAD_STAT_PASS_FRAGMENT);
}

TEST_F(SteerProgramIpv6Test, TruncatedHeadersGoToKernel) {
  ASSERT_TRUE(prog_->SetFlow(FlowKey::Listener6(IpProto::kTcp, Ip6Bytes{}, 80), 0).ok());
  std::vector<uint8_t> f = Frame6("2001:db8::2", 4000, "2001:db8::1", 80);
  EXPECT_EQ(Classify(std::vector<uint8_t>(f.begin(), f.begin() + 14 + 39)),
            OFFLOAD_STAT_PASS_MALFORMED);
  EXPECT_EQ(Classify(std::vector<uint8_t>(f.begin(), f.begin() + 14 + 40 + 3)),
            OFFLOAD_STAT_PASS_MALFORMED);
  std::vector<uint8_t> v4 = f;
  v4[14] = 0x40;  // version 4 under the IPv6 ethertype
  EXPECT_EQ(Classify(v4), OFFLOAD_STAT_PASS_MALFORMED);
}

TEST_F(SteerProgramIpv6Test, InvalidKeysAreRejected) {
  EXPECT_EQ(prog_->SetFlow(FlowKey::Listener6(IpProto::kUdp, A6("ff02::1"), 5000), 0).code(),
            absl::StatusCode::kInvalidArgument);
  FlowKey half = FlowKey::Connection6(IpProto::kTcp, A6("2001:db8::1"), 80, A6("2001:db8::2"), 0);
  EXPECT_EQ(prog_->SetFlow(half, 0).code(), absl::StatusCode::kInvalidArgument);
  FlowKey mixed = FlowKey::Listener6(IpProto::kTcp, Ip6Bytes{}, 80);
  mixed.local_ip = testing::Ip("198.18.0.1");
  EXPECT_EQ(prog_->SetFlow(mixed, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FlowKey::Connection6(IpProto::kTcp, A6("2001:db8::1"), 80, A6("2001:db8::2"), 9)
                .ToString(),
            "tcp [2001:db8::1]:80 <- [2001:db8::2]:9");
}

}  // namespace
}  // namespace offload::xdp
