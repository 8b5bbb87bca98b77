// TCP over IPv6 (RFC 8200) between two real Stacks over the in-memory link:
// byte-verified transfers (with loss and reordering), the IPv6 MSS, dual-
// stack and v6-only listeners, RST for a closed port, SYN cookies, and next
// hops resolved through the NeighborRequester (the kernel, in the daemon).
#include <arpa/inet.h>

#include <vector>

#include "gtest/gtest.h"
#include "tests/daemon/stack/transfer_util.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kSec = 1'000'000'000ull;

net::Ip6Addr A6(const char* text) {
  net::Ip6Addr a;
  EXPECT_EQ(inet_pton(AF_INET6, text, a.b), 1) << text;
  return a;
}

// Records what the stack asks the kernel to resolve.
class RecordingRequester : public stack::NeighborRequester {
 public:
  void RequestResolution(uint32_t ip) override { v4.push_back(ip); }
  void RequestResolution6(const net::Ip6Addr& ip) override { v6.push_back(ip); }
  std::vector<uint32_t> v4;
  std::vector<net::Ip6Addr> v6;
};

void SeedBoth(LoopbackPair* lp) {
  lp->a().SeedNeighbor(lp->b().config().local_ip, lp->b().config().local_mac);
  lp->b().SeedNeighbor(lp->a().config().local_ip, lp->a().config().local_mac);
  lp->a().SeedNeighbor6(lp->b().config().local_ip6, lp->b().config().local_mac);
  lp->b().SeedNeighbor6(lp->a().config().local_ip6, lp->a().config().local_mac);
}

void RunBulk6(const LinkConfig& link, uint64_t bytes, int conns_n) {
  LoopbackPair lp(link, LoopbackPair::ConfigFor(1), LoopbackPair::ConfigFor(2));
  SeedBoth(&lp);
  std::vector<Conn> conns;
  ASSERT_TRUE(RunTransfers(&lp, conns_n, bytes / conns_n, "cubic", 600 * kSec, &conns,
                           1 << 20, /*ipv6=*/true));
  for (auto& c : conns) {
    EXPECT_EQ(c.stream->received(), bytes / conns_n);
    EXPECT_EQ(c.stream->mismatches(), 0u);
  }
  // Nothing went over IPv4, and the IPv6 frames all parsed.
  EXPECT_EQ(lp.b().counters().rx_ipv6_not_offloaded.Get(), 0u);
  EXPECT_EQ(lp.b().counters().rx_checksum_errors.Get(), 0u);
}

TEST(Ipv6StackTest, Rfc8200_Bulk4MiBByteVerified) { RunBulk6(LinkConfig{}, 4 * kMiB, 2); }

TEST(Ipv6StackTest, Rfc8200_Bulk8MiBWithLossAndReorderByteVerified) {
  LinkConfig link;
  link.loss = 0.01;
  link.reorder = 0.01;
  link.seed = 7;
  RunBulk6(link, 8 * kMiB, 2);
}

// Opens one connection A -> B on `port`; returns the client's close error
// (-1 while open) through *closed_error, the accepted child through *child.
struct OneConn {
  testing::OwnedRing tx{1 << 16}, rx{1 << 16};
  stack::FlowId client = 0, listener = 0, child = 0;
  int closed_error = -1;
  bool established = false;
};

void Drive(LoopbackPair* lp, OneConn* c, uint64_t max_ns) {
  lp->on_event = [c, lp](stack::Stack& s, const stack::FlowEvent& ev) {
    if (&s == &lp->a() && ev.flow == c->client) {
      if (ev.events & tcp::kEventConnected) c->established = true;
      if (ev.events & tcp::kEventClosed) c->closed_error = ev.error;
    }
  };
  lp->on_step = [c, lp] {
    if (c->listener != 0 && c->child == 0) lp->b().TcpAccept(c->listener, 0, &c->child);
  };
  lp->RunUntil([c] { return (c->established && c->child != 0) || c->closed_error >= 0; },
               max_ns);
  lp->on_event = nullptr;
  lp->on_step = nullptr;
}

TEST(Ipv6StackTest, Rfc8200_MssIsMtuLess60AndFlowsAreIpv6) {
  LoopbackPair lp(LinkConfig{}, LoopbackPair::ConfigFor(1), LoopbackPair::ConfigFor(2));
  SeedBoth(&lp);
  OneConn c;
  ASSERT_EQ(lp.b().TcpListen6(net::Ip6Addr{}, 80, true, 16, 1, &c.listener), 0);
  ASSERT_EQ(lp.a().TcpConnect6(lp.b().config().local_ip6, 80, 0, c.tx.memory(), c.rx.memory(),
                               2, &c.client),
            0);
  Drive(&lp, &c, 5 * kSec);
  ASSERT_TRUE(c.established);
  ASSERT_NE(c.child, 0u);
  const tcp::Tcb* a = lp.a().TcbForTest(c.client);
  const tcp::Tcb* b = lp.b().TcbForTest(c.child);
  EXPECT_TRUE(a->ipv6 && b->ipv6);
  EXPECT_EQ(a->adv_mss, 1500 - 60);
  EXPECT_EQ(b->adv_mss, 1500 - 60);
  EXPECT_EQ(a->snd_mss, 1500 - 60 - 12);  // timestamps on
  bool v6;
  net::Ip6Addr lip, rip;
  uint16_t lport, rport;
  ASSERT_EQ(lp.b().TcpGetAddresses6(c.child, &v6, &lip, &lport, &rip, &rport), 0);
  EXPECT_TRUE(v6);
  EXPECT_EQ(lip, lp.b().config().local_ip6);
  EXPECT_EQ(rip, lp.a().config().local_ip6);
  EXPECT_EQ(lport, 80);
  ASSERT_EQ(lp.a().TcpGetAddresses6(c.client, &v6, &lip, &lport, &rip, &rport), 0);
  EXPECT_EQ(rport, 80);
  EXPECT_EQ(lp.b().counters().rx_ipv6_not_offloaded.Get(), 0u);
}

TEST(Ipv6StackTest, DualStackListenerTakesIpv4AsIpv4Children) {
  LoopbackPair lp(LinkConfig{}, LoopbackPair::ConfigFor(1), LoopbackPair::ConfigFor(2));
  SeedBoth(&lp);
  OneConn c;
  ASSERT_EQ(lp.b().TcpListen6(net::Ip6Addr{}, 80, false, 16, 1, &c.listener), 0);
  // The port is taken for IPv4 too (Linux: bind of 0.0.0.0:80 fails).
  stack::FlowId other;
  EXPECT_EQ(lp.b().TcpListen(0, 80, 16, 1, &other), EADDRINUSE);
  ASSERT_EQ(lp.a().TcpConnect(lp.b().config().local_ip, 80, 0, c.tx.memory(), c.rx.memory(), 2,
                              &c.client),
            0);
  Drive(&lp, &c, 5 * kSec);
  ASSERT_TRUE(c.established);
  ASSERT_NE(c.child, 0u);
  EXPECT_FALSE(lp.b().TcbForTest(c.child)->ipv6);
  EXPECT_EQ(lp.b().TcbForTest(c.child)->adv_mss, 1500 - 40);
  bool v6;
  net::Ip6Addr lip, rip;
  uint16_t lport, rport;
  ASSERT_EQ(lp.b().TcpGetAddresses6(c.child, &v6, &lip, &lport, &rip, &rport), 0);
  EXPECT_FALSE(v6);
  EXPECT_EQ(rip, A6("::ffff:198.18.0.1"));  // as accept() on a dual-stack socket
  // Closing the listener frees both of its keys: both families can listen.
  ASSERT_EQ(lp.b().TcpClose(c.listener), 0);
  EXPECT_EQ(lp.b().TcpListen(0, 80, 16, 1, &other), 0);
  EXPECT_EQ(lp.b().TcpListen6(net::Ip6Addr{}, 80, true, 16, 1, &other), 0);
}

TEST(Ipv6StackTest, V6OnlyListenerRefusesIpv4) {
  LoopbackPair lp(LinkConfig{}, LoopbackPair::ConfigFor(1), LoopbackPair::ConfigFor(2));
  SeedBoth(&lp);
  OneConn c;
  ASSERT_EQ(lp.b().TcpListen6(net::Ip6Addr{}, 80, true, 16, 1, &c.listener), 0);
  ASSERT_EQ(lp.a().TcpConnect(lp.b().config().local_ip, 80, 0, c.tx.memory(), c.rx.memory(), 2,
                              &c.client),
            0);
  Drive(&lp, &c, 5 * kSec);
  EXPECT_EQ(c.closed_error, ECONNREFUSED);
  EXPECT_EQ(c.child, 0u);
}

TEST(Ipv6StackTest, Rfc9293_ClosedPortAnswersRstOverIpv6) {
  LoopbackPair lp(LinkConfig{}, LoopbackPair::ConfigFor(1), LoopbackPair::ConfigFor(2));
  SeedBoth(&lp);
  OneConn c;
  ASSERT_EQ(lp.a().TcpConnect6(lp.b().config().local_ip6, 81, 0, c.tx.memory(), c.rx.memory(),
                               2, &c.client),
            0);
  Drive(&lp, &c, 5 * kSec);
  EXPECT_EQ(c.closed_error, ECONNREFUSED);
  EXPECT_EQ(lp.b().counters().tcp_no_socket.Get(), 1u);
}

TEST(Ipv6StackTest, Rfc4987_SynCookiesOverIpv6) {
  stack::StackConfig b = LoopbackPair::ConfigFor(2);
  b.tcp.syncookies = 2;  // always
  LoopbackPair lp(LinkConfig{}, LoopbackPair::ConfigFor(1), b);
  SeedBoth(&lp);
  OneConn c;
  ASSERT_EQ(lp.b().TcpListen6(net::Ip6Addr{}, 80, true, 16, 1, &c.listener), 0);
  ASSERT_EQ(lp.a().TcpConnect6(lp.b().config().local_ip6, 80, 0, c.tx.memory(), c.rx.memory(),
                               2, &c.client),
            0);
  Drive(&lp, &c, 5 * kSec);
  ASSERT_TRUE(c.established);
  ASSERT_NE(c.child, 0u);
  EXPECT_TRUE(lp.b().TcbForTest(c.child)->ipv6);
  EXPECT_GE(lp.b().tcp_counters().syncookies_sent.Get(), 1u);
}

TEST(Ipv6StackTest, Rfc4861_NextHopIsAskedOfTheKernelThenSynLeaves) {
  RecordingRequester req;
  stack::StackConfig a = LoopbackPair::ConfigFor(1);
  a.neighbours = &req;
  a.gateway6 = A6("2001:db8::fe");
  LoopbackPair lp(LinkConfig{}, a, LoopbackPair::ConfigFor(2));
  lp.b().SeedNeighbor6(lp.a().config().local_ip6, lp.a().config().local_mac);
  OneConn c;
  ASSERT_EQ(lp.b().TcpListen6(net::Ip6Addr{}, 80, true, 16, 1, &c.listener), 0);
  ASSERT_EQ(lp.a().TcpConnect6(lp.b().config().local_ip6, 80, 0, c.tx.memory(), c.rx.memory(),
                               2, &c.client),
            0);
  lp.RunUntil([&] { return !req.v6.empty(); }, kSec);
  // On-link (same /64): the peer itself, not the router, and no IPv4 ARP.
  ASSERT_EQ(req.v6.size(), 1u);
  EXPECT_EQ(req.v6[0], lp.b().config().local_ip6);
  EXPECT_TRUE(req.v4.empty());
  EXPECT_EQ(lp.a().counters().tx_frames.Get(), 0u);  // the SYN waits
  lp.a().SeedNeighbor6(lp.b().config().local_ip6, lp.b().config().local_mac);
  Drive(&lp, &c, 5 * kSec);
  EXPECT_TRUE(c.established);
  // Off-link destinations go to the router; a route beats the default.
  EXPECT_EQ(lp.a().TcpConnect6(A6("2001:db9::7"), 80, 0, c.tx.memory(), c.rx.memory(), 3,
                               &c.client),
            0);
  lp.RunUntil([&] { return req.v6.size() >= 2; }, kSec);
  ASSERT_GE(req.v6.size(), 2u);
  EXPECT_EQ(req.v6[1], A6("2001:db8::fe"));
  lp.a().SetRoutes6({stack::StackRoute6{A6("2001:db9::"), 32, A6("2001:db8::fd")}});
  testing::OwnedRing tx2(1 << 16), rx2(1 << 16);
  stack::FlowId third;
  EXPECT_EQ(lp.a().TcpConnect6(A6("2001:db9::8"), 80, 0, tx2.memory(), rx2.memory(), 4, &third),
            0);
  lp.RunUntil([&] { return req.v6.size() >= 3; }, kSec);
  ASSERT_GE(req.v6.size(), 3u);
  EXPECT_EQ(req.v6.back(), A6("2001:db8::fd"));
}

TEST(Ipv6StackTest, ConnectErrors) {
  LoopbackPair lp(LinkConfig{}, LoopbackPair::ConfigFor(1), LoopbackPair::ConfigFor(2));
  testing::OwnedRing tx(1 << 12), rx(1 << 12);
  stack::FlowId id;
  EXPECT_EQ(lp.a().TcpConnect6(A6("ff02::1"), 80, 0, tx.memory(), rx.memory(), 1, &id),
            ENETUNREACH);
  EXPECT_EQ(lp.a().TcpConnect6(net::Ip6Addr{}, 80, 0, tx.memory(), rx.memory(), 1, &id), EINVAL);
  EXPECT_EQ(lp.a().TcpListen6(A6("2001:db8::99"), 80, true, 1, 1, &id), EADDRNOTAVAIL);
  EXPECT_EQ(lp.a().ActiveConnections(), 0u);  // nothing leaked
  stack::StackConfig no6 = LoopbackPair::ConfigFor(1);
  no6.local_ip6 = net::Ip6Addr{};
  LoopbackPair lp2(LinkConfig{}, no6, LoopbackPair::ConfigFor(2));
  EXPECT_EQ(lp2.a().TcpConnect6(A6("2001:db8::2"), 80, 0, tx.memory(), rx.memory(), 1, &id),
            ENETUNREACH);
  // A v4-mapped peer is an IPv4 connection.
  ASSERT_EQ(lp.a().TcpConnect6(A6("::ffff:198.18.0.2"), 80, 0, tx.memory(), rx.memory(), 1, &id),
            0);
  EXPECT_FALSE(lp.a().TcbForTest(id)->ipv6);
  EXPECT_EQ(lp.a().TcbForTest(id)->remote_ip, 0xc6120002u);
}

}  // namespace
}  // namespace offload::testing
