// UDP over IPv6 in the stack (RFC 768 over RFC 8200): the IPv6 pseudo-header
// checksum both ways (checked here by an independent sum), the zero-checksum
// rules (RFC 8200 8.1: a computed 0 leaves as 0xffff; a received 0 is
// dropped even when the parser skips checksums), dual-stack and v6-only
// endpoints (Linux semantics: IPv4 sources of a dual-stack socket come
// v4-mapped), bind conflicts across the families, send errors, neighbours
// asked of the kernel, and IPv6 multicast left to the kernel.
#include <arpa/inet.h>
#include <errno.h>

#include <cstring>
#include <string>
#include <vector>

#include "daemon/net/frame.h"
#include "gtest/gtest.h"
#include "tests/daemon/udp/udp6_frames.h"
#include "tests/testing/harness.h"

namespace offload::testing {
namespace {

const net::Ip6Addr kUs6 = A6("2001:db8::1");
const net::Ip6Addr kPeer6 = A6("2001:db8::2");

class RecordingNeighbors6 : public stack::NeighborRequester {
 public:
  void RequestResolution(uint32_t) override {}
  void RequestResolution6(const net::Ip6Addr& ip) override { asked.push_back(ip); }
  std::vector<net::Ip6Addr> asked;
};

stack::StackConfig Config6() {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.local_ip6 = kUs6;
  cfg.prefix_len6 = 64;
  return cfg;
}

class Udp6Test : public ::testing::Test {
 protected:
  explicit Udp6Test(const stack::StackConfig& cfg = Config6()) : h_(cfg) {
    h_.s().SeedNeighbor6(kPeer6, kPeerMac, /*permanent=*/true);
  }
  std::string Recv(stack::FlowId ep, net::Ip6Addr* src = nullptr, uint16_t* sport = nullptr) {
    char buf[2048];
    const int64_t n = h_.s().UdpRecvFrom6(ep, buf, sizeof(buf), src, sport);
    if (n < 0) return "<" + std::to_string(-n) + ">";
    return std::string(buf, static_cast<size_t>(n));
  }
  // The one frame the stack sent, parsed with checksum verification.
  net::ParsedFrame SentOne(Frame* keep) {
    std::vector<Frame> out = h_.Drain();
    EXPECT_EQ(out.size(), 1u);
    net::ParsedFrame p;
    if (out.size() != 1) return p;
    *keep = out[0];
    EXPECT_EQ(net::ParseFrame(keep->data(), keep->size(), net::L4Checksum::kVerify, &p),
              net::ParseStatus::kOk);
    return p;
  }
  const std::string kAgain = "<" + std::to_string(EAGAIN) + ">";
  StackUnderTest h_;
};

TEST_F(Udp6Test, Rfc8200_SendToBuildsIpv6DatagramWithPseudoHeaderChecksum) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 5000, false, false, 1, &ep), 0);
  ASSERT_EQ(h_.s().UdpSendTo6(ep, kPeer6, 53, "query", 5), 0);
  Frame f;
  const net::ParsedFrame p = SentOne(&f);
  EXPECT_TRUE(p.ipv6);
  EXPECT_EQ(p.ethertype, net::kEthTypeIpv6);
  EXPECT_EQ(p.dst_mac, kPeerMac);
  EXPECT_EQ(p.src_ip6, kUs6);
  EXPECT_EQ(p.dst_ip6, kPeer6);
  EXPECT_EQ(p.ttl, 64);
  EXPECT_EQ(p.src_port, 5000);
  EXPECT_EQ(p.dst_port, 53);
  EXPECT_EQ(std::string(p.payload, p.payload + p.payload_len), "query");
  // Independent check: the sum over pseudo-header and datagram is 0xffff.
  EXPECT_EQ(Fold(PseudoSum6(kUs6, kPeer6, p.l4, 8 + 5)), 0xffff);
  EXPECT_EQ(h_.s().counters().udp6_out, 1u);
}

TEST_F(Udp6Test, Rfc8200_ComputedZeroChecksumLeavesAsFfff) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind6(kUs6, 5000, true, false, 1, &ep), 0);
  // Choose the last payload word so that the one's-complement sum is 0xffff
  // (checksum field 0): the computed checksum is then 0.
  std::string payload = "zero?\0\0";
  payload.resize(8, '\0');
  uint8_t l4[16] = {0x13, 0x88, 0, 53, 0, 16, 0, 0};
  std::memcpy(l4 + 8, payload.data(), 8);
  const uint16_t s = Fold(PseudoSum6(kUs6, kPeer6, l4, 16));
  const uint16_t w = static_cast<uint16_t>(~s);
  payload[6] = static_cast<char>(w >> 8);
  payload[7] = static_cast<char>(w & 0xff);
  ASSERT_EQ(h_.s().UdpSendTo6(ep, kPeer6, 53, payload.data(), 8), 0);
  Frame f;
  const net::ParsedFrame p = SentOne(&f);
  ASSERT_TRUE(p.ipv6);
  EXPECT_EQ(p.l4[6], 0xff);
  EXPECT_EQ(p.l4[7], 0xff);
}

TEST_F(Udp6Test, Rfc8200_ReceivedZeroOrBadChecksumDropped) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 5353, false, false, 1, &ep), 0);
  h_.Inject(Udp6Frame(kPeer6, kUs6, 999, 5353, "zero", /*force=*/true, 0));
  Frame bad = Udp6Frame(kPeer6, kUs6, 999, 5353, "bad!");
  bad.back() ^= 0x5a;
  h_.Inject(bad);
  EXPECT_EQ(Recv(ep), kAgain);
  EXPECT_EQ(h_.s().counters().rx_checksum_errors, 2u);
  h_.Inject(Udp6Frame(kPeer6, kUs6, 999, 5353, "good"));
  EXPECT_EQ(Recv(ep), "good");
}

class Udp6NoVerifyTest : public Udp6Test {
 protected:
  static stack::StackConfig NoVerify() {
    stack::StackConfig cfg = Config6();
    cfg.rx_l4_checksum = net::L4Checksum::kSkip;  // as with hardware-verified sums
    return cfg;
  }
  Udp6NoVerifyTest() : Udp6Test(NoVerify()) {}
};

TEST_F(Udp6NoVerifyTest, Rfc8200_ZeroChecksumDroppedEvenWithoutVerification) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 5353, false, false, 1, &ep), 0);
  h_.Inject(Udp6Frame(kPeer6, kUs6, 999, 5353, "zero", /*force=*/true, 0));
  EXPECT_EQ(Recv(ep), kAgain);
  EXPECT_EQ(h_.s().counters().udp6_zero_checksum, 1u);
}

TEST_F(Udp6Test, DualStack_WildcardTakesBothFamiliesIpv4SourcesV4Mapped) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 5353, /*v6only=*/false, false, 7, &ep), 0);
  h_.Inject(Udp6Frame(kPeer6, kUs6, 1111, 5353, "six"));
  h_.Inject(BuildUdp(h_.Peer(2222), h_.Us(5353), {'f', 'o', 'u', 'r'}));
  net::Ip6Addr src;
  uint16_t sport = 0;
  EXPECT_EQ(Recv(ep, &src, &sport), "six");
  EXPECT_EQ(src, kPeer6);
  EXPECT_EQ(sport, 1111);
  EXPECT_EQ(Recv(ep, &src, &sport), "four");
  EXPECT_EQ(src, net::Ip6Addr::V4Mapped(h_.peer_ip()));
  EXPECT_EQ(sport, 2222);
  EXPECT_EQ(h_.s().counters().udp6_in, 1u);
  auto ev = h_.Events();
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev[0].cookie, 7u);
}

TEST_F(Udp6Test, V6Only_TakesNoIpv4AndLeavesThePortToAnIpv4Socket) {
  stack::FlowId v6, v4;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 5353, /*v6only=*/true, false, 1, &v6), 0);
  h_.Inject(BuildUdp(h_.Peer(2222), h_.Us(5353), {'x'}));
  EXPECT_EQ(h_.s().counters().udp_no_port, 1u);
  EXPECT_EQ(Recv(v6), kAgain);
  // 0.0.0.0 and a v6-only :: do not overlap (Linux).
  ASSERT_EQ(h_.s().UdpBind(0, 5353, false, 2, &v4), 0);
  h_.Inject(BuildUdp(h_.Peer(2222), h_.Us(5353), {'4'}));
  h_.Inject(Udp6Frame(kPeer6, kUs6, 1111, 5353, "6"));
  EXPECT_EQ(Recv(v6), "6");
  uint32_t ip = 0;
  char c = 0;
  EXPECT_EQ(h_.s().UdpRecvFrom(v4, &c, 1, &ip, nullptr), 1);
  EXPECT_EQ(c, '4');
  EXPECT_EQ(ip, h_.peer_ip());
}

TEST_F(Udp6Test, Linux_BindConflictsAcrossFamilies) {
  stack::FlowId a, b, c;
  ASSERT_EQ(h_.s().UdpBind(0, 6000, false, 1, &a), 0);
  EXPECT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 6000, false, false, 2, &b), EADDRINUSE);
  EXPECT_EQ(h_.s().UdpBind6(net::Ip6Addr::V4Mapped(h_.us_ip()), 6000, false, false, 2, &b),
            EADDRINUSE);
  ASSERT_EQ(h_.s().UdpBind6(kUs6, 6000, false, false, 2, &b), 0);  // IPv6 only: no overlap
  EXPECT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 6000, true, false, 3, &c), EADDRINUSE);
  h_.s().UdpClose(b);
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 6000, true, false, 3, &c), 0);
  // SO_REUSEADDR on both: 0.0.0.0 and a dual-stack :: share the port.
  stack::FlowId r4, r6;
  ASSERT_EQ(h_.s().UdpBind(0, 6001, true, 4, &r4), 0);
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 6001, false, true, 5, &r6), 0);
  h_.Inject(Udp6Frame(kPeer6, kUs6, 1, 6001, "v6"));
  EXPECT_EQ(Recv(r6), "v6");
}

// Linux scores an AF_INET socket above a dual-stack one for IPv4
// datagrams, whichever was bound first.
TEST_F(Udp6Test, Linux_ReuseAddr_Ipv4SocketTakesIpv4BeforeDualStack) {
  stack::FlowId dual, v4;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 6002, false, true, 1, &dual), 0);
  ASSERT_EQ(h_.s().UdpBind(0, 6002, true, 2, &v4), 0);
  h_.Inject(BuildUdp(h_.Peer(1), h_.Us(6002), {'4'}));
  h_.Inject(Udp6Frame(kPeer6, kUs6, 1, 6002, "6"));
  char c = 0;
  EXPECT_EQ(h_.s().UdpRecvFrom(v4, &c, 1, nullptr, nullptr), 1);
  EXPECT_EQ(c, '4');
  EXPECT_EQ(Recv(dual), "6");
  EXPECT_EQ(Recv(dual), kAgain);
  // The AF_INET socket gone, the dual-stack one takes IPv4 again.
  h_.s().UdpClose(v4);
  h_.Inject(BuildUdp(h_.Peer(1), h_.Us(6002), {'m'}));
  net::Ip6Addr src;
  EXPECT_EQ(Recv(dual, &src), "m");
  EXPECT_EQ(src, net::Ip6Addr::V4Mapped(h_.peer_ip()));
}

TEST_F(Udp6Test, Bind6_AddressChecks) {
  stack::FlowId ep;
  EXPECT_EQ(h_.s().UdpBind6(A6("2001:db8::99"), 7000, false, false, 1, &ep), EADDRNOTAVAIL);
  EXPECT_EQ(h_.s().UdpBind6(A6("ff02::1"), 7000, false, false, 1, &ep), EADDRNOTAVAIL);
  EXPECT_EQ(h_.s().UdpBind6(net::Ip6Addr::V4Mapped(h_.us_ip()), 7000, true, false, 1, &ep),
            EADDRNOTAVAIL);
  EXPECT_EQ(h_.s().UdpBind6(net::Ip6Addr::V4Mapped(0x0a000001), 7000, false, false, 1, &ep),
            EADDRNOTAVAIL);
  uint16_t port = 0;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 0, false, false, 1, &ep, &port), 0);
  EXPECT_NE(port, 0);
}

TEST_F(Udp6Test, MappedBind_IsAnIpv4EndpointReportedV4Mapped) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr::V4Mapped(h_.us_ip()), 7000, false, false, 1, &ep), 0);
  h_.Inject(Udp6Frame(kPeer6, kUs6, 1, 7000, "six"));
  h_.Inject(BuildUdp(h_.Peer(2), h_.Us(7000), {'4'}));
  net::Ip6Addr src;
  EXPECT_EQ(Recv(ep, &src), "4");
  EXPECT_EQ(src, net::Ip6Addr::V4Mapped(h_.peer_ip()));
  EXPECT_EQ(Recv(ep), kAgain);
  EXPECT_EQ(h_.s().UdpSendTo6(ep, kPeer6, 9, "x", 1), ENETUNREACH);
}

TEST_F(Udp6Test, SendTo6_ErrorsAndV4MappedDestinations) {
  stack::FlowId dual, only, v4;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 5000, false, false, 1, &dual), 0);
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 5001, true, false, 2, &only), 0);
  ASSERT_EQ(h_.s().UdpBind(0, 5002, false, 3, &v4), 0);
  EXPECT_EQ(h_.s().UdpSendTo6(dual, A6("ff02::1"), 9, "x", 1), ENETUNREACH);
  EXPECT_EQ(h_.s().UdpSendTo6(dual, A6("fe80::2"), 9, "x", 1), ENETUNREACH);
  EXPECT_EQ(h_.s().UdpSendTo6(dual, net::Ip6Addr{}, 9, "x", 1), EINVAL);
  EXPECT_EQ(h_.s().UdpSendTo6(dual, kPeer6, 0, "x", 1), EINVAL);
  EXPECT_EQ(h_.s().UdpSendTo6(v4, kPeer6, 9, "x", 1), EAFNOSUPPORT);
  EXPECT_EQ(h_.s().UdpSendTo6(only, net::Ip6Addr::V4Mapped(h_.peer_ip()), 9, "x", 1),
            ENETUNREACH);
  std::string big(1453, 'x');  // MTU 1500 - 40 - 8 = 1452
  EXPECT_EQ(h_.s().UdpSendTo6(dual, kPeer6, 9, big.data(), 1453), EMSGSIZE);
  EXPECT_TRUE(h_.Drain().empty());
  EXPECT_EQ(h_.s().UdpSendTo6(dual, kPeer6, 9, big.data(), 1452), 0);
  EXPECT_EQ(h_.Drain().size(), 1u);
  // A v4-mapped destination leaves as IPv4 from the IPv4 address.
  ASSERT_EQ(h_.s().UdpSendTo6(dual, net::Ip6Addr::V4Mapped(h_.peer_ip()), 9, "v4", 2), 0);
  Frame f;
  const net::ParsedFrame p = SentOne(&f);
  EXPECT_FALSE(p.ipv6);
  EXPECT_EQ(p.src_ip, h_.us_ip());
  EXPECT_EQ(p.dst_ip, h_.peer_ip());
  EXPECT_EQ(p.src_port, 5000);
}

TEST_F(Udp6Test, Multicast_LeftToTheKernelCounted) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 5353, false, false, 1, &ep), 0);
  Frame f = Udp6Frame(kPeer6, A6("ff02::fb"), 1, 5353, "mdns");
  std::memcpy(f.data(), net::MacAddr{{0x33, 0x33, 0, 0, 0, 0xfb}}.b, 6);
  h_.Inject(f);
  EXPECT_EQ(Recv(ep), kAgain);
  EXPECT_EQ(h_.s().counters().udp6_multicast, 1u);
}

TEST_F(Udp6Test, Ipv6NotForUs_Ignored) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind6(net::Ip6Addr{}, 5353, false, false, 1, &ep), 0);
  h_.Inject(Udp6Frame(kPeer6, A6("2001:db8::77"), 1, 5353, "other"));
  EXPECT_EQ(Recv(ep), kAgain);
  EXPECT_EQ(h_.s().counters().rx_not_for_us, 1u);
}

TEST(Udp6NeighborTest, SendTo6_UnresolvedNeighbour_AsksKernelQueuesThenSends) {
  RecordingNeighbors6 kernel;
  stack::StackConfig cfg = Config6();
  cfg.neighbours = &kernel;
  StackUnderTest h(cfg);
  stack::FlowId ep;
  ASSERT_EQ(h.s().UdpBind6(net::Ip6Addr{}, 5000, false, false, 1, &ep), 0);
  const net::Ip6Addr other = A6("2001:db8::77");
  ASSERT_EQ(h.s().UdpSendTo6(ep, other, 9, "one", 3), 0);
  ASSERT_EQ(h.s().UdpSendTo6(ep, other, 9, "two", 3), 0);
  EXPECT_TRUE(h.Drain().empty());
  ASSERT_EQ(kernel.asked.size(), 1u);
  EXPECT_EQ(kernel.asked[0], other);
  h.s().SeedNeighbor6(other, Mac(77));
  std::vector<Frame> sent = h.Drain();
  ASSERT_EQ(sent.size(), 2u);
  net::ParsedFrame p;
  ASSERT_EQ(net::ParseFrame(sent[1].data(), sent[1].size(), net::L4Checksum::kVerify, &p),
            net::ParseStatus::kOk);
  EXPECT_EQ(p.dst_mac, Mac(77));
  EXPECT_EQ(std::string(p.payload, p.payload + p.payload_len), "two");
}

TEST(DatagramQueue6Test, Ipv6SourcesKeptAcrossWrapAndCountedInTheByteLimit) {
  udp::DatagramQueue q(256);
  const std::string d(40, 'd');
  uint32_t pushed = 0;
  while (q.Push6(kPeer6, 7, reinterpret_cast<const uint8_t*>(d.data()), 40)) ++pushed;
  EXPECT_EQ(pushed, 256u / (16 + 16 + 40));
  uint8_t buf[64];
  for (int round = 0; round < 5; ++round) {
    udp::DatagramInfo info;
    ASSERT_TRUE(q.FrontIsIpv6());
    ASSERT_TRUE(q.Pop(buf, sizeof(buf), &info));
    EXPECT_TRUE(info.ipv6);
    EXPECT_EQ(info.src_ip6, kPeer6);
    EXPECT_EQ(info.length, 40u);
    EXPECT_EQ(std::string(buf, buf + 40), d);
    ASSERT_TRUE(q.Push6(kPeer6, 7, reinterpret_cast<const uint8_t*>(d.data()), 40));
  }
  udp::DatagramInfo info;
  while (q.Pop(buf, sizeof(buf), &info)) EXPECT_TRUE(info.ipv6);
  // Both kinds in one queue, in order.
  ASSERT_TRUE(q.Push(0x01020304, 9, 0, buf, 4));
  ASSERT_TRUE(q.Push6(kPeer6, 7, buf, 4));
  EXPECT_FALSE(q.FrontIsIpv6());
  ASSERT_TRUE(q.Pop(buf, sizeof(buf), &info));
  EXPECT_FALSE(info.ipv6);
  EXPECT_EQ(info.src_ip, 0x01020304u);
  ASSERT_TRUE(q.Pop(buf, sizeof(buf), &info));
  EXPECT_TRUE(info.ipv6);
  EXPECT_EQ(info.src_ip6, kPeer6);
}

}  // namespace
}  // namespace offload::testing
