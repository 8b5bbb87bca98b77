// Engine API behaviour: listeners (backlog, close), neighbour resolution for
// connections (on-link and through the gateway), buffer provider, events,
// frame filtering and counters.
#include <errno.h>

#include <map>
#include <string>

#include <vector>

#include "gtest/gtest.h"
#include "tests/daemon/tcp/tcp_fixture.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using net::kTcpRst;
using net::kTcpSyn;

class StackTest : public TcpSegmentTest {
 protected:
  Frame Syn(uint16_t sport, uint32_t seq) {
    TcpSpec s;
    s.src = h_.Peer(sport);
    s.dst = h_.Us(80);
    s.seq = seq;
    s.flags = kTcpSyn;
    return BuildTcp(s);
  }
  Frame Ack(uint16_t sport, uint32_t seq, uint32_t ack) {
    TcpSpec s;
    s.src = h_.Peer(sport);
    s.dst = h_.Us(80);
    s.seq = seq;
    s.ack = ack;
    return BuildTcp(s);
  }
};

TEST_F(StackTest, Linux_ListenBacklogFull_DropsSyn) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 1, 1, &listener_), 0);
  h_.Inject(Syn(1000, 100));
  TcpView sa = One();
  h_.Inject(Ack(1000, 101, sa.f.seq + 1));
  auto ev = h_.Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].flow, listener_);
  EXPECT_TRUE(ev[0].events & tcp::kEventAcceptable);
  h_.Inject(Syn(1001, 200));
  ExpectSilence();
  EXPECT_EQ(h_.s().counters().listen_overflows, 1u);  // Linux ListenOverflows
  stack::FlowId child;
  ASSERT_EQ(h_.s().TcpAccept(listener_, 5, &child), 0);
  h_.Inject(Syn(1001, 200));
  EXPECT_EQ(One().f.tcp_flags, kTcpSyn | kTcpAck);
}

TEST_F(StackTest, Linux_ListenerClose_ResetsUnacceptedChildren) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 8, 1, &listener_), 0);
  h_.Inject(Syn(1000, 100));
  TcpView sa = One();
  h_.Inject(Ack(1000, 101, sa.f.seq + 1));
  h_.Inject(Syn(1001, 500));
  One();
  ASSERT_EQ(h_.s().ActiveConnections(), 3u);
  ASSERT_EQ(h_.s().TcpClose(listener_), 0);
  std::vector<TcpView> out = Out();
  ASSERT_EQ(out.size(), 2u);
  for (auto& v : out) EXPECT_TRUE(v.f.tcp_flags & kTcpRst);
  EXPECT_EQ(h_.s().ActiveConnections(), 0u);
  EXPECT_EQ(h_.provider().released(), 2u);
  // The port is closed now.
  h_.Inject(Syn(1002, 900));
  EXPECT_TRUE(One().f.tcp_flags & kTcpRst);
}

TEST_F(StackTest, Listen_AddressInUse) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 8, 1, &listener_), 0);
  stack::FlowId l2;
  EXPECT_EQ(h_.s().TcpListen(0, 80, 8, 1, &l2), EADDRINUSE);
  EXPECT_EQ(h_.s().TcpListen(h_.us_ip(), 80, 8, 1, &l2), EADDRINUSE);
  EXPECT_EQ(h_.s().TcpListen(Ip("203.0.113.1"), 81, 8, 1, &l2), EADDRNOTAVAIL);
}

TEST_F(StackTest, BufferProviderRefusal_DropsSynAndCounts) {
  h_.provider().set_refuse(true);
  ASSERT_EQ(h_.s().TcpListen(0, 80, 8, 1, &listener_), 0);
  h_.Inject(Syn(1000, 100));
  ExpectSilence();
  EXPECT_EQ(h_.s().counters().tcp_syn_no_memory, 1u);
  EXPECT_EQ(h_.s().ActiveConnections(), 1u);
}

TEST_F(StackTest, Accept_ReportsDataThatArrivedBeforeAccept) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 8, 1, &listener_), 0);
  h_.Inject(Syn(1000, 100));
  TcpView sa = One();
  TcpSpec s;
  s.src = h_.Peer(1000);
  s.dst = h_.Us(80);
  s.seq = 101;
  s.ack = sa.f.seq + 1;
  s.payload = {'h', 'i'};
  h_.Inject(BuildTcp(s));
  h_.Events();
  stack::FlowId child;
  ASSERT_EQ(h_.s().TcpAccept(listener_, 9, &child), 0);
  auto ev = h_.Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].cookie, 9u);
  EXPECT_TRUE(ev[0].events & tcp::kEventReadable);
  EXPECT_EQ(h_.s().TcpAccept(listener_, 9, &child), EAGAIN);
}

// The kernel resolves neighbours: the SYN waits until the next hop arrives
// from its table (SeedNeighbor), after one request to it and no ARP frame.
TEST(StackNeighborTest, Connect_UnresolvedNeighbor_AsksKernelFirstThenSyn) {
  RecordingNeighbors kernel;
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.neighbours = &kernel;
  StackUnderTest h(cfg);
  testing::OwnedRing t(4096), r(4096);
  stack::FlowId f;
  const uint32_t dst = Ip("198.18.0.33");
  ASSERT_EQ(h.s().TcpConnect(dst, 80, 0, t.memory(), r.memory(), 0, &f), 0);
  EXPECT_TRUE(h.Drain().empty());
  ASSERT_EQ(kernel.asked, std::vector<uint32_t>{dst});
  h.s().SeedNeighbor(dst, Mac(33));
  auto syn = h.Drain();
  ASSERT_EQ(syn.size(), 1u);
  TcpView v;
  ASSERT_TRUE(ParseTcp(syn[0], &v));
  EXPECT_EQ(v.f.tcp_flags, kTcpSyn);
  EXPECT_EQ(v.f.dst_mac, Mac(33));
}

TEST_F(StackTest, Connect_OffLinkDestination_ResolvesGateway) {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.gateway = Ip("198.18.0.254");
  StackUnderTest h(cfg);
  h.s().SeedNeighbor(cfg.gateway, Mac(0xfe));
  testing::OwnedRing t(4096), r(4096);
  stack::FlowId f;
  ASSERT_EQ(h.s().TcpConnect(Ip("198.19.5.5"), 443, 0, t.memory(), r.memory(), 0, &f), 0);
  auto out = h.Drain();
  ASSERT_EQ(out.size(), 1u);
  TcpView v;
  ASSERT_TRUE(ParseTcp(out[0], &v));
  EXPECT_EQ(v.f.dst_mac, Mac(0xfe));
  EXPECT_EQ(v.f.dst_ip, Ip("198.19.5.5"));
}

TEST_F(StackTest, Connect_Validation) {
  testing::OwnedRing t(4096), r(4096);
  stack::FlowId f;
  EXPECT_EQ(h_.s().TcpConnect(0, 80, 0, t.memory(), r.memory(), 0, &f), EINVAL);
  EXPECT_EQ(h_.s().TcpConnect(h_.peer_ip(), 80, 0, tcp::RingMemory{}, r.memory(), 0, &f), EINVAL);
  EXPECT_EQ(h_.s().TcpConnect(Ip("224.0.0.1"), 80, 0, t.memory(), r.memory(), 0, &f), ENETUNREACH);
  EXPECT_EQ(h_.s().TcpConnect(h_.peer_ip(), 80, 0, t.memory(), r.memory(), 0, &f, "bbr"), ENOENT);
  ASSERT_EQ(h_.s().TcpConnect(h_.peer_ip(), 80, 4000, t.memory(), r.memory(), 0, &f), 0);
  EXPECT_EQ(h_.s().TcpConnect(h_.peer_ip(), 80, 4000, t.memory(), r.memory(), 0, &f), EADDRINUSE);
}

TEST_F(StackTest, StaleHandle_IsRejected) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpAbort(flow_), 0);
  EXPECT_EQ(h_.s().TcpSend(flow_), EBADF);
  EXPECT_EQ(h_.s().TcpClose(flow_), EBADF);
  EXPECT_EQ(h_.s().TcpSend(0), EBADF);
}

TEST_F(StackTest, FramesForOtherMacOrIpAreCounted) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 8, 1, &listener_), 0);
  Frame f = Syn(1000, 1);
  f[5] = 0x99;  // another unicast MAC
  h_.Inject(f);
  TcpSpec s;
  s.src = h_.Peer(1000);
  s.dst = Endpoint{kUsMac, Ip("198.18.0.200"), 80};
  s.flags = kTcpSyn;
  h_.Inject(BuildTcp(s));
  ExpectSilence();
  EXPECT_EQ(h_.s().counters().rx_not_for_us, 2u);
}

TEST_F(StackTest, CountersAreNamedOnceAndReadBack) {
  ActiveOpen();
  Frame bad = Seg(kTcpAck, rcv_, snd_);
  bad[net::kEthHeaderLen + 20 + 18] ^= 0x5a;  // urgent pointer: the checksum no longer holds
  h_.Inject(bad);
  std::map<std::string, uint64_t> seen;
  size_t calls = 0;
  h_.s().ForEachCounter([&](const char* name, uint64_t v) {
    ++calls;
    seen[name] = v;
  });
  EXPECT_EQ(seen.size(), calls) << "a counter name is used twice";
  EXPECT_EQ(seen["tcp.active_opens"], 1u);
  EXPECT_EQ(seen["tcp.segs_out"], h_.s().tcp_counters().segs_out);
  EXPECT_EQ(seen["ip.rx_checksum_errors"], 1u);
  EXPECT_EQ(seen["ip.drop.bad_l4_checksum"], 1u);
  EXPECT_EQ(seen["ip.rx_checksum_partial"], 0u);
  EXPECT_EQ(seen["arp.in"], h_.s().counters().arp_in);
  EXPECT_EQ(seen.count("ip.drop.ok"), 0u);
}

TEST(StackCreateTest, RejectsBadConfig) {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.local_ip = 0;
  EXPECT_FALSE(stack::Stack::Create(cfg, nullptr, 0).ok());
  cfg = DefaultTestConfig();
  cfg.mtu = 100;
  EXPECT_FALSE(stack::Stack::Create(cfg, nullptr, 0).ok());
  cfg = DefaultTestConfig();
  cfg.max_num_buffers = 1;
  EXPECT_FALSE(stack::Stack::Create(cfg, nullptr, 0).ok());
}

}  // namespace
}  // namespace offload::testing

namespace offload::testing {
namespace {

class AcceptQueueTest : public TcpSegmentTest {};

TEST_F(AcceptQueueTest, Linux_ResetBeforeAccept_AcceptReturnsItWithEconnreset) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 4, 1, &listener_), 0);
  TcpSpec s;
  s.src = h_.Peer(40000);
  s.dst = h_.Us(80);
  s.seq = 100;
  s.flags = net::kTcpSyn;
  h_.Inject(BuildTcp(s));
  TcpView sa = One();
  s.flags = net::kTcpAck;
  s.seq = 101;
  s.ack = sa.f.seq + 1;
  h_.Inject(BuildTcp(s));
  s.flags = net::kTcpRst;
  h_.Inject(BuildTcp(s));  // reset after the handshake, before accept()
  ExpectSilence();
  stack::FlowId child;
  ASSERT_EQ(h_.s().TcpAccept(listener_, 9, &child), 0);
  std::vector<stack::FlowEvent> ev = h_.Events();
  bool closed = false;
  for (const auto& e : ev) {
    if (e.flow == child && (e.events & tcp::kEventClosed)) {
      closed = true;
      EXPECT_EQ(e.error, ECONNRESET);
    }
  }
  EXPECT_TRUE(closed);
  EXPECT_EQ(h_.s().TcpAccept(listener_, 10, &child), EAGAIN);
  ASSERT_EQ(h_.s().TcpClose(child), 0);
  EXPECT_EQ(h_.s().ActiveConnections(), 1u);  // only the listener
}

}  // namespace
}  // namespace offload::testing
