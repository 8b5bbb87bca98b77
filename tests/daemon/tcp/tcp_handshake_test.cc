// RFC 9293 3.5 / 3.10.7.1-3 connection establishment, option negotiation
// (RFC 9293 3.7.1 MSS, RFC 7323 window scale + timestamps, RFC 2018 SACK),
// RFC 6928 initial window, segments to closed ports and listeners.
#include "tests/daemon/tcp/tcp_fixture.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using net::kTcpFin;
using net::kTcpRst;
using net::kTcpSyn;
using tcp::TcpState;

class HandshakeTest : public TcpSegmentTest {};

TEST_F(HandshakeTest, Rfc9293_ActiveOpen_SendsSynWithLinuxOptionOrder) {
  flow_ = h_.Connect(80, &tx_, &rx_);
  TcpView syn = One();
  EXPECT_EQ(syn.f.tcp_flags, kTcpSyn);
  EXPECT_EQ(syn.f.ack, 0u);
  // RFC 7323 2.2: never scaled; Linux offers whole segments (44 * 1460).
  EXPECT_EQ(syn.f.window, 64240);
  // Linux tcp_options_write order: MSS, SACK-permitted+TS, NOP+WS.
  ASSERT_EQ(syn.raw_options.size(), 20u);
  const std::vector<uint8_t>& o = syn.raw_options;
  EXPECT_EQ(std::vector<uint8_t>(o.begin(), o.begin() + 4), (std::vector<uint8_t>{2, 4, 0x05, 0xb4}));
  EXPECT_EQ(std::vector<uint8_t>(o.begin() + 4, o.begin() + 8), (std::vector<uint8_t>{4, 2, 8, 10}));
  EXPECT_EQ(std::vector<uint8_t>(o.begin() + 12, o.begin() + 16), (std::vector<uint8_t>{0, 0, 0, 0}));
  EXPECT_EQ(o[16], 1);
  EXPECT_EQ(o[17], 3);
  EXPECT_EQ(o[18], 3);
  EXPECT_EQ(state(), TcpState::kSynSent);
}

TEST_F(HandshakeTest, Rfc6528_IsnDiffersPerConnectionAndOverTime) {
  stack::FlowId a = h_.Connect(80);
  TcpView s1 = One();
  h_.Advance(1 * kMsNs);
  stack::FlowId b = h_.Connect(81);
  TcpView s2 = One();
  EXPECT_NE(s1.f.seq, s2.f.seq);
  (void)a;
  (void)b;
}

TEST_F(HandshakeTest, Rfc9293_SynSentSynAck_EntersEstablishedAndAcks) {
  flow_ = h_.Connect(80, &tx_, &rx_);
  TcpView syn = One();
  our_iss_ = syn.f.seq;
  our_port_ = syn.f.src_port;
  h_.Inject(Seg(kTcpSyn | kTcpAck, peer_iss_, our_iss_ + 1));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .seq = our_iss_ + 1,
                                          .ack = peer_iss_ + 1, .payload_len = 0u}));
  EXPECT_EQ(state(), TcpState::kEstablished);
  EXPECT_TRUE(FlowEvents() & tcp::kEventConnected);
}

TEST_F(HandshakeTest, Rfc9293_SynSentRstWithAcceptableAck_ClosesWithEconnrefused) {
  flow_ = h_.Connect(80, &tx_, &rx_);
  TcpView syn = One();
  our_port_ = syn.f.src_port;
  h_.Inject(Seg(kTcpRst | kTcpAck, 0, syn.f.seq + 1));
  ExpectSilence();
  int err = 0;
  EXPECT_TRUE(FlowEvents(&err) & tcp::kEventClosed);
  EXPECT_EQ(err, ECONNREFUSED);
  EXPECT_EQ(state(), TcpState::kClosed);
}

TEST_F(HandshakeTest, Rfc9293_SynSentRstWithoutAck_IsIgnored) {
  flow_ = h_.Connect(80, &tx_, &rx_);
  TcpView syn = One();
  our_port_ = syn.f.src_port;
  h_.Inject(Seg(kTcpRst, 0, 0));
  ExpectSilence();
  EXPECT_EQ(state(), TcpState::kSynSent);
}

TEST_F(HandshakeTest, Rfc5961_SynSentRstWithWrongAck_IsIgnored) {
  flow_ = h_.Connect(80, &tx_, &rx_);
  TcpView syn = One();
  our_port_ = syn.f.src_port;
  h_.Inject(Seg(kTcpRst | kTcpAck, 0, syn.f.seq + 77));
  ExpectSilence();
  EXPECT_EQ(state(), TcpState::kSynSent);
}

TEST_F(HandshakeTest, Rfc9293_SynSentUnacceptableAck_SendsResetWithSeqEqualAck) {
  flow_ = h_.Connect(80, &tx_, &rx_);
  TcpView syn = One();
  our_port_ = syn.f.src_port;
  h_.Inject(Seg(kTcpAck, 7, syn.f.seq + 1000));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpRst, .seq = syn.f.seq + 1000}));
  EXPECT_EQ(state(), TcpState::kSynSent);
}

TEST_F(HandshakeTest, Rfc9293_SimultaneousOpen_SynInSynSent_SendsSynAckThenEstablishes) {
  flow_ = h_.Connect(80, &tx_, &rx_);
  TcpView syn = One();
  our_iss_ = syn.f.seq;
  our_port_ = syn.f.src_port;
  h_.Inject(Seg(kTcpSyn, peer_iss_, 0));
  TcpView sa = One();
  EXPECT_EQ(sa.f.tcp_flags, kTcpSyn | kTcpAck);
  EXPECT_EQ(sa.f.seq, our_iss_);
  EXPECT_EQ(sa.f.ack, peer_iss_ + 1);
  EXPECT_EQ(state(), TcpState::kSynReceived);
  // The peer's SYN,ACK acknowledges our SYN: ESTABLISHED.
  h_.Inject(Seg(kTcpSyn | kTcpAck, peer_iss_, our_iss_ + 1));
  // (its SYN is old now: answered with an ACK, RFC 9293 3.10.7.4)
  h_.Inject(Seg(kTcpAck, peer_iss_ + 1, our_iss_ + 1));
  EXPECT_EQ(state(), TcpState::kEstablished);
  EXPECT_TRUE(FlowEvents() & tcp::kEventConnected);
}

TEST_F(HandshakeTest, Rfc9293_ListenSyn_SendsSynAckWithNegotiatedOptions) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 16, 1, &listener_), 0);
  TcpSpec s;
  s.src = h_.Peer(40000);
  s.dst = h_.Us(80);
  s.seq = 1234;
  s.flags = kTcpSyn;
  s.options.mss = true;
  s.options.mss_value = 1200;
  s.options.sack_permitted = true;  // no timestamps, no window scale
  h_.Inject(BuildTcp(s));
  TcpView sa = One();
  EXPECT_EQ(sa.f.tcp_flags, kTcpSyn | kTcpAck);
  EXPECT_EQ(sa.f.ack, 1235u);
  EXPECT_TRUE(sa.opts.has_mss);
  EXPECT_EQ(sa.opts.mss, 1460);
  EXPECT_TRUE(sa.opts.sack_permitted);
  EXPECT_FALSE(sa.opts.has_timestamp);  // only if the peer offered them
  EXPECT_FALSE(sa.opts.has_wscale);
  // Linux layout without timestamps: MSS, NOP, NOP, SACK-permitted.
  EXPECT_EQ(sa.raw_options, (std::vector<uint8_t>{2, 4, 0x05, 0xb4, 1, 1, 4, 2}));
}

TEST_F(HandshakeTest, Rfc9293_SynReceived_DuplicateSyn_RetransmitsSynAck) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 16, 1, &listener_), 0);
  our_port_ = 80;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpSyn, peer_iss_, 0));
  TcpView sa = One();
  h_.Inject(Seg(kTcpSyn, peer_iss_, 0));
  TcpView sa2 = One();
  EXPECT_EQ(sa2.f.tcp_flags, kTcpSyn | kTcpAck);
  EXPECT_EQ(sa2.f.seq, sa.f.seq);
}

TEST_F(HandshakeTest, Rfc6298_SynAckRetransmitted_ThenChildDroppedAfterSynackRetries) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 16, 1, &listener_), 0);
  our_port_ = 80;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpSyn, peer_iss_, 0));
  TcpView sa = One();
  int resent = 0;
  for (int i = 0; i < 6; ++i) {
    h_.Advance((1ull << i) * kSecNs);
    for (auto& v : Out()) {
      EXPECT_EQ(v.f.tcp_flags, kTcpSyn | kTcpAck);
      EXPECT_EQ(v.f.seq, sa.f.seq);
      ++resent;
    }
  }
  EXPECT_EQ(resent, 5);  // tcp_synack_retries = 5, then the child is gone
  EXPECT_EQ(h_.s().ActiveConnections(), 1u);
  h_.Inject(Seg(kTcpAck, peer_iss_ + 1, sa.f.seq + 1));
  EXPECT_TRUE(One().f.tcp_flags & kTcpRst);  // no SYN-RECEIVED state left
}

TEST_F(HandshakeTest, Rfc9293_ListenAck_SendsResetWithSeqEqualAck) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 16, 1, &listener_), 0);
  our_port_ = 80;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpAck, 10, 424242));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpRst, .seq = 424242u}));
}

TEST_F(HandshakeTest, Rfc9293_ListenRst_IsIgnored) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 16, 1, &listener_), 0);
  our_port_ = 80;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpRst, 10, 0));
  ExpectSilence();
}

TEST_F(HandshakeTest, Linux_ListenSynFin_IsDropped) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 16, 1, &listener_), 0);
  our_port_ = 80;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpSyn | kTcpFin, 10, 0));
  ExpectSilence();
}

TEST_F(HandshakeTest, Rfc9293_ClosedPortSyn_SendsRstAckAcknowledgingSyn) {
  our_port_ = 9;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpSyn, 777, 0, "abc"));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpRst | kTcpAck, .seq = 0u, .ack = 777u + 4,
                                          .src_port = uint16_t{9}, .dst_port = uint16_t{40000}}));
  EXPECT_EQ(h_.s().counters().tcp_no_socket, 1u);
}

TEST_F(HandshakeTest, Rfc9293_ClosedPortAck_SendsRstWithSeqEqualAck) {
  our_port_ = 9;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpAck, 777, 5555, "abc"));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpRst, .seq = 5555u}));
}

TEST_F(HandshakeTest, Rfc9293_ClosedPortRst_NoReply) {
  our_port_ = 9;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpRst | kTcpAck, 777, 5555));
  ExpectSilence();
}

TEST_F(HandshakeTest, Rfc9293_SynReceivedUnacceptableAck_SendsReset) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 16, 1, &listener_), 0);
  our_port_ = 80;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpSyn, peer_iss_, 0));
  TcpView sa = One();
  h_.Inject(Seg(kTcpAck, peer_iss_ + 1, sa.f.seq + 50));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpRst, .seq = sa.f.seq + 50}));
  EXPECT_NE(h_.s().TcpAccept(listener_, 0, &flow_), 0);
}

TEST_F(HandshakeTest, Rfc9293_SynReceivedRst_ChildIsDroppedListenerStays) {
  ASSERT_EQ(h_.s().TcpListen(0, 80, 16, 1, &listener_), 0);
  our_port_ = 80;
  peer_port_ = 40000;
  h_.Inject(Seg(kTcpSyn, peer_iss_, 0));
  TcpView sa = One();
  h_.Inject(Seg(kTcpRst, peer_iss_ + 1, 0));
  ExpectSilence();
  EXPECT_EQ(h_.s().TcpAccept(listener_, 0, &flow_), EAGAIN);
  EXPECT_EQ(h_.s().ActiveConnections(), 1u);  // only the listener
  EXPECT_EQ(h_.provider().released(), 1u);
  // The listener still answers new SYNs.
  h_.Inject(Seg(kTcpSyn, peer_iss_ + 100000, 0));
  EXPECT_EQ(One().f.tcp_flags, kTcpSyn | kTcpAck);
}

TEST_F(HandshakeTest, Linux_SynLinearTimeouts_FirstRetransmissionsEverySecond) {
  // tcp_syn_linear_timeouts = 4 (Linux default): the RTO doubles only once
  // more than 4 timeouts happened (Linux tcp_retransmit_timer): SYNs at 0,
  // 1, 2, 3, 4, 5 s, then 7 s.
  flow_ = h_.Connect(80, &tx_, &rx_);
  One();
  for (int i = 0; i < 5; ++i) {
    h_.Advance(999 * kMsNs);
    ExpectSilence();
    h_.Advance(1 * kMsNs);
    EXPECT_EQ(One().f.tcp_flags, kTcpSyn) << "linear retransmission " << i + 1;
  }
  h_.Advance(1999 * kMsNs);
  ExpectSilence();
  h_.Advance(1 * kMsNs);
  EXPECT_EQ(One().f.tcp_flags, kTcpSyn);
}

TEST_F(HandshakeTest, Rfc6298_SynRetransmission_BackoffDoublesFromOneSecond) {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.tcp.syn_linear_timeouts = 0;  // as kernels before tcp_syn_linear_timeouts
  StackUnderTest h(cfg);
  std::swap(h_, h);
  flow_ = h_.Connect(80, &tx_, &rx_);
  TcpView syn = One();
  h_.Advance(999 * kMsNs);
  ExpectSilence();
  h_.Advance(1 * kMsNs);
  TcpView r1 = One();
  EXPECT_EQ(r1.f.tcp_flags, kTcpSyn);
  EXPECT_EQ(r1.f.seq, syn.f.seq);
  h_.Advance(1999 * kMsNs);
  ExpectSilence();
  h_.Advance(1 * kMsNs);
  EXPECT_EQ(One().f.tcp_flags, kTcpSyn);
}

TEST_F(HandshakeTest, Linux_SynRetries_TimesOutWithEtimedout) {
  flow_ = h_.Connect(80, &tx_, &rx_);
  One();
  int sent = 0;
  for (int i = 0; i < 7; ++i) {
    h_.Advance((1ull << i) * kSecNs);
    sent += static_cast<int>(Out().size());
  }
  EXPECT_EQ(sent, 6);  // tcp_syn_retries = 6
  int err = 0;
  EXPECT_TRUE(FlowEvents(&err) & tcp::kEventClosed);
  EXPECT_EQ(err, ETIMEDOUT);
}

TEST_F(HandshakeTest, Rfc6928_InitialWindowIsTenSegments) {
  ActiveOpen();
  AppSend(60000);
  std::vector<TcpView> segs = Out();
  ASSERT_EQ(segs.size(), 10u);
  for (auto& s : segs) EXPECT_EQ(s.f.payload_len, 1460u);
}

TEST_F(HandshakeTest, Rfc9293_MssOption_LimitsSegmentSize) {
  PeerOptions po;
  po.mss_value = 536;
  ActiveOpen(po);
  AppSend(2000);
  std::vector<TcpView> segs = Out();
  ASSERT_EQ(segs.size(), 4u);
  EXPECT_EQ(segs[0].f.payload_len, 536u);
  EXPECT_EQ(segs[3].f.payload_len, 2000u - 3 * 536);
}

TEST_F(HandshakeTest, Rfc9293_NoMssOption_Defaults536) {
  PeerOptions po;
  po.mss = false;
  ActiveOpen(po);
  AppSend(1000);
  std::vector<TcpView> segs = Out();
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[0].f.payload_len, 536u);
}

TEST_F(HandshakeTest, Rfc7323_TimestampsReduceMss) {
  PeerOptions po;
  po.timestamps = true;
  ActiveOpen(po);
  AppSend(3000);
  std::vector<TcpView> segs = Out();
  ASSERT_GE(segs.size(), 2u);
  EXPECT_EQ(segs[0].f.payload_len, 1448u);  // 1460 - 12 (Linux mss_cache)
  EXPECT_TRUE(segs[0].opts.has_timestamp);
  EXPECT_EQ(segs[0].raw_options[0], 1);  // NOP NOP TS
  EXPECT_EQ(segs[0].raw_options[2], 8);
}

TEST_F(HandshakeTest, Rfc7323_WindowScaleNotOfferedByPeer_NoScaling) {
  ActiveOpen();
  EXPECT_FALSE(tcb().ws_ok);
  EXPECT_EQ(tcb().rcv_wscale, 0);
  h_.Inject(PeerAck(1000));
  EXPECT_EQ(tcb().snd_wnd, 1000u);
}

TEST_F(HandshakeTest, Rfc7323_WindowScale_AppliedToPeerWindowsAfterSyn) {
  PeerOptions po;
  po.wscale = true;
  po.wscale_value = 7;
  po.window = 1000;  // the SYN,ACK window is not scaled
  ActiveOpen(po);
  EXPECT_EQ(tcb().snd_wnd, 1000u);
  h_.Inject(PeerAck(100));
  EXPECT_EQ(tcb().snd_wnd, 12800u);
  // Our own windows are scaled by the shift we announced: Linux's, from the
  // largest buffer (tcp_rmem[2] = 6 MiB: 7), not from the 64 KiB ring. The
  // 64240-byte window of the SYN is now sent as 502 << 7 (rounded up, still
  // within the free ring).
  EXPECT_EQ(tcb().rcv_wscale, 7);
  AppSend(10);
  TcpView d = One();
  EXPECT_EQ(d.f.window, 502);
}

TEST_F(HandshakeTest, Rfc7323_WindowScaleAbove14_TreatedAs14) {
  PeerOptions po;
  po.wscale = true;
  po.wscale_value = 20;
  ActiveOpen(po);
  EXPECT_EQ(tcb().snd_wscale, 14);
}

TEST_F(HandshakeTest, Linux_TcpMaxSeg_ClampsAdvertisedAndSentMss) {
  testing::OwnedRing t(1 << 16), r(1 << 16);
  ASSERT_EQ(h_.s().TcpConnect(h_.peer_ip(), 80, 0, t.memory(), r.memory(), 0, &flow_), 0);
  tx_ = &t;
  rx_ = &r;
  // TCP_MAXSEG before the SYN leaves (the SYN is built at PollTx time).
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kMaxSeg, 1000), 0);
  EXPECT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kMaxSeg, 50), EINVAL);
  TcpView syn = One();
  EXPECT_EQ(syn.opts.mss, 1000);
  our_iss_ = syn.f.seq;
  our_port_ = syn.f.src_port;
  TcpSpec s;
  s.src = h_.Peer(80);
  s.dst = h_.Us(our_port_);
  s.seq = peer_iss_;
  s.ack = our_iss_ + 1;
  s.flags = kTcpSyn | kTcpAck;
  s.options.mss = true;
  s.options.mss_value = 1460;
  h_.Inject(BuildTcp(s));
  Out();
  AppSend(3000);
  std::vector<TcpView> segs = Out();
  ASSERT_EQ(segs.size(), 3u);
  EXPECT_EQ(segs[0].f.payload_len, 1000u);
}

TEST_F(HandshakeTest, MssClampConfig_LimitsAdvertisedMss) {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.tcp.mss_clamp = 1200;
  StackUnderTest h(cfg);
  testing::OwnedRing t(4096), r(4096);
  stack::FlowId f;
  ASSERT_EQ(h.s().TcpConnect(h.peer_ip(), 80, 0, t.memory(), r.memory(), 0, &f), 0);
  auto out = h.Drain();
  ASSERT_EQ(out.size(), 1u);
  TcpView v;
  ASSERT_TRUE(ParseTcp(out[0], &v));
  EXPECT_EQ(v.opts.mss, 1200);
}

}  // namespace
}  // namespace offload::testing
