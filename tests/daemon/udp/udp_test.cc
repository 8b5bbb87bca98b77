// UDP (RFC 768): checksum, demultiplexing (connected 4-tuple preferred over
// bound address over wildcard), multicast group membership, broadcast,
// datagram queues with byte limits and drop counters, transmission.
#include <errno.h>

#include <vector>

#include "daemon/udp/datagram_queue.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"

namespace offload::testing {
namespace {

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

class UdpTest : public ::testing::Test {
 protected:
  std::string Recv(stack::FlowId ep, uint32_t* src_ip = nullptr, uint16_t* src_port = nullptr) {
    char buf[2048];
    int64_t n = h_.s().UdpRecvFrom(ep, buf, sizeof(buf), src_ip, src_port);
    if (n < 0) return "<" + std::to_string(-n) + ">";
    return std::string(buf, static_cast<size_t>(n));
  }
  Frame From(uint16_t sport, uint32_t dst_ip, uint16_t dport, const std::string& data,
             net::MacAddr dst_mac = kUsMac) {
    return BuildUdp(h_.Peer(sport), Endpoint{dst_mac, dst_ip, dport}, Bytes(data));
  }
  StackUnderTest h_;
};

TEST_F(UdpTest, Rfc768_DatagramDeliveredWithSourceAddress) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind(0, 5353, false, 1, &ep), 0);
  h_.Inject(From(999, h_.us_ip(), 5353, "hello"));
  uint32_t ip;
  uint16_t port;
  EXPECT_EQ(Recv(ep, &ip, &port), "hello");
  EXPECT_EQ(ip, h_.peer_ip());
  EXPECT_EQ(port, 999);
  EXPECT_EQ(Recv(ep), "<" + std::to_string(EAGAIN) + ">");
  auto ev = h_.Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, stack::FlowKind::kUdp);
  EXPECT_EQ(ev[0].cookie, 1u);
}

TEST_F(UdpTest, Rfc768_BadChecksumDroppedAndCounted) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind(0, 5353, false, 1, &ep), 0);
  Frame f = From(999, h_.us_ip(), 5353, "hello");
  f[net::kEthHeaderLen + 20 + 8] ^= 0xff;  // payload byte
  h_.Inject(f);
  EXPECT_EQ(h_.s().counters().rx_checksum_errors, 1u);
  EXPECT_EQ(Recv(ep), "<" + std::to_string(EAGAIN) + ">");
}

TEST_F(UdpTest, Demux_ConnectedPreferredOverBoundOverWildcard) {
  stack::FlowId any, bound, conn;
  ASSERT_EQ(h_.s().UdpBind(0, 7000, true, 1, &any), 0);
  ASSERT_EQ(h_.s().UdpBind(h_.us_ip(), 7000, true, 2, &bound), 0);
  ASSERT_EQ(h_.s().UdpBind(h_.us_ip(), 7000, true, 3, &conn), 0);
  ASSERT_EQ(h_.s().UdpConnect(conn, h_.peer_ip(), 1111), 0);
  h_.Inject(From(1111, h_.us_ip(), 7000, "to-conn"));
  h_.Inject(From(2222, h_.us_ip(), 7000, "to-bound"));
  EXPECT_EQ(Recv(conn), "to-conn");
  EXPECT_EQ(Recv(bound), "to-bound");
  EXPECT_EQ(Recv(any), "<" + std::to_string(EAGAIN) + ">");
}

TEST_F(UdpTest, Demux_NoSocketCounted) {
  h_.Inject(From(1, h_.us_ip(), 9, "x"));
  EXPECT_EQ(h_.s().counters().udp_no_port, 1u);
  EXPECT_TRUE(h_.Drain().empty());  // (ICMP is left to the kernel)
}

TEST_F(UdpTest, Linux_BindConflictWithoutReuse) {
  stack::FlowId a, b;
  ASSERT_EQ(h_.s().UdpBind(0, 7000, false, 1, &a), 0);
  EXPECT_EQ(h_.s().UdpBind(h_.us_ip(), 7000, false, 1, &b), EADDRINUSE);
  uint16_t port = 0;
  ASSERT_EQ(h_.s().UdpBind(0, 0, false, 1, &b, &port), 0);
  EXPECT_GE(port, 32768);
}

TEST_F(UdpTest, Rfc1112_MulticastDeliveredOnlyToMembers) {
  const uint32_t group = Ip("239.1.2.3");
  stack::FlowId m1, m2, other;
  ASSERT_EQ(h_.s().UdpBind(0, 6000, true, 1, &m1), 0);
  ASSERT_EQ(h_.s().UdpBind(0, 6000, true, 2, &m2), 0);
  ASSERT_EQ(h_.s().UdpBind(0, 6000, true, 3, &other), 0);
  ASSERT_EQ(h_.s().UdpJoinGroup(m1, group), 0);
  ASSERT_EQ(h_.s().UdpJoinGroup(m2, group), 0);
  EXPECT_EQ(h_.s().UdpJoinGroup(m2, group), EADDRINUSE);
  EXPECT_EQ(h_.s().UdpJoinGroup(m2, Ip("10.0.0.1")), EINVAL);
  h_.Inject(From(1, group, 6000, "mc", net::MacAddr::ForIpv4Multicast(group)));
  EXPECT_EQ(Recv(m1), "mc");
  EXPECT_EQ(Recv(m2), "mc");
  EXPECT_EQ(Recv(other), "<" + std::to_string(EAGAIN) + ">");
  ASSERT_EQ(h_.s().UdpLeaveGroup(m1, group), 0);
  h_.Inject(From(1, group, 6000, "mc2", net::MacAddr::ForIpv4Multicast(group)));
  EXPECT_EQ(Recv(m1), "<" + std::to_string(EAGAIN) + ">");
  EXPECT_EQ(Recv(m2), "mc2");
}

TEST_F(UdpTest, BroadcastDeliveredToPortListeners) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind(0, 67, false, 1, &ep), 0);
  h_.Inject(From(68, 0xffffffffu, 67, "dhcp", net::MacAddr::Broadcast()));
  EXPECT_EQ(Recv(ep), "dhcp");
}

TEST_F(UdpTest, QueueByteLimit_DropsAndCounts) {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.udp_rcvbuf_bytes = 4096;
  StackUnderTest h(cfg);
  stack::FlowId ep;
  ASSERT_EQ(h.s().UdpBind(0, 5000, false, 1, &ep), 0);
  std::string big(1000, 'b');
  for (int i = 0; i < 10; ++i) {
    h.Inject(BuildUdp(h.Peer(1), h.Us(5000), Bytes(big)));
  }
  EXPECT_EQ(h.s().counters().udp_queue_full, 6u);  // 4 x (1000 + 16) fit in 4096
  char buf[2000];
  int got = 0;
  while (h.s().UdpRecvFrom(ep, buf, sizeof(buf), nullptr, nullptr) > 0) ++got;
  EXPECT_EQ(got, 4);
}

TEST_F(UdpTest, RecvTruncatesButReportsFullLength) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind(0, 5000, false, 1, &ep), 0);
  h_.Inject(From(1, h_.us_ip(), 5000, "0123456789"));
  char buf[4];
  EXPECT_EQ(h_.s().UdpRecvFrom(ep, buf, 4, nullptr, nullptr), 10);
  EXPECT_EQ(std::string(buf, 4), "0123");
}

TEST_F(UdpTest, SendTo_BuildsValidDatagram) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind(0, 5000, false, 1, &ep), 0);
  ASSERT_EQ(h_.s().UdpSendTo(ep, h_.peer_ip(), 53, "query", 5), 0);
  auto out = h_.Drain();
  ASSERT_EQ(out.size(), 1u);
  net::ParsedFrame p;
  ASSERT_EQ(net::ParseFrame(out[0].data(), out[0].size(), net::L4Checksum::kVerify, &p),
            net::ParseStatus::kOk);
  EXPECT_EQ(p.protocol, net::kIpProtoUdp);
  EXPECT_EQ(p.dst_mac, kPeerMac);
  EXPECT_EQ(p.src_port, 5000);
  EXPECT_EQ(p.dst_port, 53);
  EXPECT_EQ(std::string(p.payload, p.payload + p.payload_len), "query");
  EXPECT_TRUE(p.df);
}

TEST_F(UdpTest, SendTo_TooBigForMtu_Emsgsize) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind(0, 5000, false, 1, &ep), 0);
  std::string big(1473, 'x');
  EXPECT_EQ(h_.s().UdpSendTo(ep, h_.peer_ip(), 53, big.data(), 1473), EMSGSIZE);
  EXPECT_EQ(h_.s().UdpSendTo(ep, h_.peer_ip(), 53, big.data(), 1472), 0);
  EXPECT_EQ(h_.s().UdpSendTo(ep, 0, 0, "x", 1), EDESTADDRREQ);
}

TEST_F(UdpTest, SendTo_Multicast_UsesGroupMacAndTtl1) {
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind(0, 5000, false, 1, &ep), 0);
  ASSERT_EQ(h_.s().UdpSendTo(ep, Ip("239.1.1.1"), 5000, "m", 1), 0);
  auto out = h_.Drain();
  ASSERT_EQ(out.size(), 1u);
  net::ParsedFrame p;
  ASSERT_EQ(net::ParseFrame(out[0].data(), out[0].size(), net::L4Checksum::kVerify, &p),
            net::ParseStatus::kOk);
  EXPECT_EQ(p.dst_mac, net::MacAddr::ForIpv4Multicast(Ip("239.1.1.1")));
  EXPECT_EQ(p.ttl, 1);
}

// The kernel is the only ARP resolver: an unresolved next hop is asked of
// it (StackConfig::neighbours), the datagrams wait, and the neighbour's
// arrival from the kernel's table (SeedNeighbor: offloadd's netlink feed)
// releases both.
TEST(UdpNeighborTest, SendTo_UnresolvedNeighbor_AsksKernelQueuesThenSends) {
  RecordingNeighbors kernel;
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.neighbours = &kernel;
  StackUnderTest h(cfg);
  stack::FlowId ep;
  ASSERT_EQ(h.s().UdpBind(0, 5000, false, 1, &ep), 0);
  const uint32_t other = Ip("198.18.0.77");
  ASSERT_EQ(h.s().UdpSendTo(ep, other, 9, "one", 3), 0);
  ASSERT_EQ(h.s().UdpSendTo(ep, other, 9, "two", 3), 0);
  EXPECT_TRUE(h.Drain().empty());  // no ARP request of its own
  ASSERT_EQ(kernel.asked, std::vector<uint32_t>{other});
  h.s().SeedNeighbor(other, Mac(77));
  auto sent = h.Drain();
  ASSERT_EQ(sent.size(), 2u);
  net::ParsedFrame p;
  ASSERT_EQ(net::ParseFrame(sent[0].data(), sent[0].size(), net::L4Checksum::kVerify, &p),
            net::ParseStatus::kOk);
  EXPECT_EQ(p.dst_mac, Mac(77));
}

TEST_F(UdpTest, Arp_RequestForOurAddress_AnsweredNotLearned) {
  h_.Inject(BuildArp(net::kArpRequest, net::MacAddr::Broadcast(), Mac(50), Ip("198.18.0.50"),
                     net::MacAddr{}, h_.us_ip()));
  auto out = h_.Drain();
  ASSERT_EQ(out.size(), 1u);
  net::ParsedFrame p;
  ASSERT_EQ(net::ParseFrame(out[0].data(), out[0].size(), net::L4Checksum::kVerify, &p),
            net::ParseStatus::kOk);
  ASSERT_NE(p.arp, nullptr);
  EXPECT_EQ(net::Load16(p.arp->oper), net::kArpReply);
  EXPECT_EQ(p.dst_mac, Mac(50));
  EXPECT_EQ(net::Load32(p.arp->spa), h_.us_ip());
  // ... but the requester is not learned: neighbours come from the
  // kernel's table only, so a datagram to it waits for SeedNeighbor.
  stack::FlowId ep;
  ASSERT_EQ(h_.s().UdpBind(0, 5000, false, 1, &ep), 0);
  ASSERT_EQ(h_.s().UdpSendTo(ep, Ip("198.18.0.50"), 9, "x", 1), 0);
  EXPECT_TRUE(h_.Drain().empty());
}

TEST_F(UdpTest, Arp_RequestForOtherAddress_Ignored) {
  h_.Inject(BuildArp(net::kArpRequest, net::MacAddr::Broadcast(), Mac(50), Ip("198.18.0.50"),
                     net::MacAddr{}, Ip("198.18.0.99")));
  EXPECT_TRUE(h_.Drain().empty());
}

TEST(DatagramQueueTest, WrapsAroundPreservingOrderAndContent) {
  udp::DatagramQueue q(1000);
  int pushed = 0, popped = 0;
  uint8_t data[300];
  for (int round = 0; round < 200; ++round) {
    uint32_t len = static_cast<uint32_t>((round * 37) % 250 + 1);
    for (uint32_t i = 0; i < len; ++i) data[i] = static_cast<uint8_t>(round + i);
    while (!q.Push(round, 1, 2, data, len)) {
      uint8_t out[300];
      udp::DatagramInfo info;
      ASSERT_TRUE(q.Pop(out, sizeof(out), &info));
      int r = static_cast<int>(info.src_ip);
      EXPECT_EQ(r, popped);
      EXPECT_EQ(info.length, static_cast<uint32_t>((r * 37) % 250 + 1));
      for (uint32_t i = 0; i < info.length; ++i) ASSERT_EQ(out[i], static_cast<uint8_t>(r + i));
      ++popped;
    }
    ++pushed;
  }
  EXPECT_GT(popped, 100);
  EXPECT_EQ(static_cast<int>(q.count()), pushed - popped);
}

}  // namespace
}  // namespace offload::testing
