// Linux policies the engine follows (issue 16): RFC 3042 limited transmit,
// PSH placement, MSG_EOR record boundaries, the window scale from the
// largest receive buffer, RFC 5482 user timeout enforcement, socket values.
#include "daemon/tcp/socket_options.h"
#include "tests/daemon/tcp/tcp_fixture.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using net::kTcpPsh;

class PolicyTest : public TcpSegmentTest {
 protected:
  Frame SackAck(uint32_t ack, uint32_t s, uint32_t e) {
    TcpSpec sp;
    sp.src = h_.Peer(peer_port_);
    sp.dst = h_.Us(our_port_);
    sp.seq = rcv_;
    sp.ack = ack;
    sp.window = 65535;
    sp.options.num_sack = 1;
    sp.options.sack[0] = tcp::SackBlock{s, e};
    return BuildTcp(sp);
  }
  static constexpr uint32_t kMss = 1460;
};

TEST_F(PolicyTest, Rfc3042_LimitedTransmit_EachSackReleasesOneNewSegment) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  AppSend(15 * kMss);
  ASSERT_EQ(Out().size(), 10u);  // the initial window
  const uint32_t una = snd_;
  h_.Inject(SackAck(una, una + kMss, una + 2 * kMss));
  TcpView a = One();
  EXPECT_EQ(a.f.seq, una + 10 * kMss);
  EXPECT_FALSE(a.f.tcp_flags & kTcpPsh);  // Linux: no PSH in Disorder
  h_.Inject(SackAck(una, una + kMss, una + 3 * kMss));
  EXPECT_EQ(One().f.seq, una + 11 * kMss);
  EXPECT_EQ(h_.s().tcp_counters().limited_transmits, 2u);
}

TEST_F(PolicyTest, Rfc3042_LimitedTransmit_WithoutSackOnePerDuplicateAck) {
  ActiveOpen();
  AppSend(15 * kMss);
  ASSERT_EQ(Out().size(), 10u);
  const uint32_t una = snd_;
  h_.Inject(Seg(kTcpAck, rcv_, una));
  EXPECT_EQ(One().f.seq, una + 10 * kMss);
  h_.Inject(Seg(kTcpAck, rcv_, una));
  EXPECT_EQ(One().f.seq, una + 11 * kMss);
}

TEST_F(PolicyTest, Linux_Psh_OnLastSegmentOfCwndLimitedBurst) {
  ActiveOpen();
  AppSend(15 * kMss);
  std::vector<TcpView> v = Out();
  ASSERT_EQ(v.size(), 10u);
  for (size_t i = 0; i + 1 < v.size(); ++i) EXPECT_FALSE(v[i].f.tcp_flags & kTcpPsh) << i;
  EXPECT_TRUE(v[9].f.tcp_flags & kTcpPsh);
}

TEST_F(PolicyTest, Linux_MsgEor_NoSegmentSpansARecordEnd) {
  ActiveOpen();
  tcp::SocketOptions o;
  o.nodelay = true;  // else Nagle holds the second record, as on Linux
  ASSERT_EQ(h_.s().TcpSetOptions(flow_, o), 0);
  const uint64_t start = tx_->memory().tail->load();
  AppSend(std::string(100, 'a'));
  // The record ends after the first 100 bytes; more data follows at once.
  ASSERT_EQ(h_.s().TcpMarkRecordEnd(flow_, start + 100), 0);
  AppSend(std::string(200, 'b'));
  std::vector<TcpView> v = Out();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].f.payload_len, 100u);
  EXPECT_TRUE(v[0].f.tcp_flags & kTcpPsh);
  EXPECT_EQ(v[1].f.payload_len, 200u);
  EXPECT_EQ(h_.s().TcpMarkRecordEnd(flow_, start + 100000), EINVAL);  // beyond the data
}

TEST_F(PolicyTest, Rfc7323_WindowScale_FromTcpRmemMaxNotTheRing) {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.tcp.rcv_space_max = 15 * 1024 * 1024;  // gtests' defaults.sh: 15 MiB
  StackUnderTest h(cfg);
  std::swap(h_, h);
  flow_ = h_.Connect(80, &tx_, &rx_);
  TcpView syn = One();
  EXPECT_TRUE(syn.opts.has_wscale);
  EXPECT_EQ(syn.opts.wscale, 8);
}

TEST_F(PolicyTest, Linux_SoRcvbufBeforeConnect_BoundsTheWindowScale) {
  tcp::SocketOptions o;
  o.rcvbuf = 65536;
  o.maxseg = 1000;
  testing::OwnedRing* tx = nullptr;
  testing::OwnedRing* rx = nullptr;
  flow_ = h_.Connect(80, &tx, &rx, 1 << 16, &o);
  TcpView syn = One();
  EXPECT_EQ(syn.opts.wscale, 1);  // ilog2(64 KiB) - 15
  EXPECT_EQ(syn.opts.mss, 1000);
  tcp::SocketValues v;
  ASSERT_EQ(h_.s().TcpGetSocketValues(flow_, &v), 0);
  EXPECT_EQ(v.rcvbuf, 131072u);  // Linux reports the doubled value
  EXPECT_EQ(v.maxseg, 988u);  // Linux in SYN-SENT: TCP_MAXSEG less the timestamp option
}

TEST_F(PolicyTest, Linux_TcpMaxseg_ReportsNegotiatedMssNot536) {
  PeerOptions po;
  po.timestamps = true;
  ActiveOpen(po);
  tcp::SocketValues v;
  ASSERT_EQ(h_.s().TcpGetSocketValues(flow_, &v), 0);
  EXPECT_EQ(v.maxseg, 1448u);  // 1460 less the timestamp option, as mss_cache
  // Reset by the peer: Linux keeps mss_cache (getsockopt after the close,
  // e.g. a script whose peer's kernel answers our segments with RST).
  h_.Inject(Seg(net::kTcpRst | net::kTcpAck, rcv_, snd_));
  ASSERT_EQ(state(), tcp::TcpState::kClosed);
  ASSERT_EQ(h_.s().TcpGetSocketValues(flow_, &v), 0);
  EXPECT_EQ(v.maxseg, 1448u);
}

TEST_F(PolicyTest, Rfc5482_UserTimeout_AbortsAtTheDeadlineNotTheNextBackoff) {
  ActiveOpen();
  tcp::SocketOptions o;
  o.user_timeout_ms = 1500;
  ASSERT_EQ(h_.s().TcpSetOptions(flow_, o), 0);
  AppSend(100);
  One();
  h_.Advance(1000 * kMsNs);  // RTO 1 s: first retransmission
  One();
  // The next backed-off RTO would be at 3 s; the user timeout ends at 1.5 s.
  h_.Advance(499 * kMsNs);
  EXPECT_EQ(state(), tcp::TcpState::kEstablished);
  h_.Advance(2 * kMsNs);
  int err = 0;
  EXPECT_TRUE(FlowEvents(&err) & tcp::kEventClosed);
  EXPECT_EQ(err, ETIMEDOUT);
  EXPECT_EQ(h_.s().tcp_counters().user_timeouts, 1u);
}

}  // namespace
}  // namespace offload::testing

namespace offload::testing {
namespace {

TEST_F(PolicyTest, Linux_TcpInfo_ReportsStateRttCwndAndPacing) {
  ActiveOpen();
  AppSend(1000);
  One();
  h_.Advance(10 * kMsNs);
  h_.Inject(Seg(kTcpAck, rcv_, snd_ + 1000));
  tcp::TcpInfo info;
  ASSERT_EQ(h_.s().TcpGetInfo(flow_, &info), 0);
  EXPECT_EQ(info.tcpi_state, 1);  // TCP_ESTABLISHED
  EXPECT_GT(info.tcpi_rtt, 0u);
  EXPECT_EQ(info.tcpi_snd_cwnd, 10u);
  EXPECT_EQ(info.tcpi_snd_mss, 1460u);
  EXPECT_EQ(info.tcpi_bytes_acked, 1000u);
  EXPECT_GT(info.tcpi_pacing_rate, 0u);
  EXPECT_EQ(info.tcpi_max_pacing_rate, ~uint64_t{0});
}

}  // namespace
}  // namespace offload::testing
