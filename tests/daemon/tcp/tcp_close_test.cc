// Connection termination (RFC 9293 3.6, 3.10.4, 3.10.7.4 eighth step,
// TIME-WAIT 3.10.8 with configurable 2MSL, RFC 6191 TIME-WAIT reuse,
// SO_LINGER {1,0}, RFC 2525 2.17 reset on close with unread data).
#include "tests/daemon/tcp/tcp_fixture.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using net::kTcpFin;
using net::kTcpRst;
using net::kTcpSyn;
using tcp::TcpState;

stack::StackConfig ShortTimeWait() {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.tcp.time_wait_ns = 5 * kSecNs;
  return cfg;
}

class CloseTest : public TcpSegmentTest {
 protected:
  CloseTest() : TcpSegmentTest(ShortTimeWait()) {}
};

TEST_F(CloseTest, Rfc9293_ActiveClose_FinWait1FinWait2TimeWaitClosed) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  TcpView fin = One();
  EXPECT_EQ(fin.f.tcp_flags, kTcpFin | kTcpAck);
  EXPECT_EQ(fin.f.seq, snd_);
  EXPECT_EQ(state(), TcpState::kFinWait1);
  snd_ += 1;
  h_.Inject(PeerAck());
  EXPECT_EQ(state(), TcpState::kFinWait2);
  h_.Inject(PeerData("", kTcpFin));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .seq = snd_, .ack = rcv_}));
  EXPECT_EQ(state(), TcpState::kTimeWait);
  EXPECT_TRUE(FlowEvents() & tcp::kEventPeerFin);
  h_.Advance(5 * kSecNs - 1);
  EXPECT_EQ(state(), TcpState::kTimeWait);
  h_.Advance(1);
  EXPECT_EQ(state(), TcpState::kClosed);
  int err = -1;
  EXPECT_TRUE(FlowEvents(&err) & tcp::kEventClosed);
  EXPECT_EQ(err, 0);
}

TEST_F(CloseTest, Rfc9293_FinCarriedWithLastData) {
  ActiveOpen();
  AppSend("bye");
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 3u);
  EXPECT_TRUE(v.f.tcp_flags & kTcpFin);
}

TEST_F(CloseTest, Linux_LoneFinAfterData_AckDelayedInPingPongMode) {
  ActiveOpen();
  h_.Inject(PeerData("abc"));
  Out();
  h_.Inject(PeerData("", kTcpFin));
  // Linux tcp_fin: ping-pong mode delays the ACK of a lone FIN (ato 40 ms
  // once data has arrived).
  ExpectSilence();
  h_.Advance(40 * kMsNs);
  EXPECT_EQ(One().f.ack, rcv_);
  EXPECT_EQ(state(), TcpState::kCloseWait);
}

TEST_F(CloseTest, Rfc9293_PassiveClose_CloseWaitLastAckClosed) {
  ActiveOpen();
  h_.Inject(PeerData("", kTcpFin));
  EXPECT_EQ(One().f.ack, rcv_);  // no data yet: Linux's ato is 0, ACK at once
  EXPECT_EQ(state(), TcpState::kCloseWait);
  EXPECT_TRUE(FlowEvents() & tcp::kEventPeerFin);
  ASSERT_EQ(h_.s().TcpClose(flow_), 0);
  TcpView fin = One();
  EXPECT_EQ(fin.f.tcp_flags, kTcpFin | kTcpAck);
  EXPECT_EQ(state(), TcpState::kLastAck);
  snd_ += 1;
  h_.Inject(PeerAck());
  EXPECT_TRUE(FlowGone());  // closed and released
}

TEST_F(CloseTest, Rfc9293_SimultaneousClose_ClosingThenTimeWait) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  One();
  // The peer's FIN crosses ours (it has not seen our FIN).
  h_.Inject(Seg(kTcpFin | kTcpAck, rcv_, snd_));
  rcv_ += 1;
  EXPECT_EQ(One().f.ack, rcv_);
  EXPECT_EQ(state(), TcpState::kClosing);
  snd_ += 1;
  h_.Inject(PeerAck());
  EXPECT_EQ(state(), TcpState::kTimeWait);
}

TEST_F(CloseTest, Rfc9293_FinWait1_FinWithAckOfOurFin_GoesToTimeWait) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  One();
  snd_ += 1;
  h_.Inject(PeerData("", kTcpFin));
  EXPECT_EQ(state(), TcpState::kTimeWait);
}

TEST_F(CloseTest, Rfc9293_TimeWait_RetransmittedFinIsAckedAndTimerRestarted) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  One();
  snd_ += 1;
  h_.Inject(PeerData("", kTcpFin));
  Out();
  h_.Advance(4 * kSecNs);
  h_.Inject(Seg(kTcpFin | kTcpAck, rcv_ - 1, snd_));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .ack = rcv_}));
  h_.Advance(4 * kSecNs);
  EXPECT_EQ(state(), TcpState::kTimeWait);
}

TEST_F(CloseTest, Rfc9293_PassiveCloserFullyClosed_SameTupleSynIsANewConnection) {
  PassiveOpen();
  h_.Inject(PeerData("", kTcpFin));
  Out();
  ASSERT_EQ(h_.s().TcpClose(flow_), 0);
  One();  // our FIN
  snd_ += 1;
  h_.Inject(PeerAck());
  // The passive closer ends in CLOSED (no TIME-WAIT): a SYN on the same
  // 4-tuple is simply a new connection for the listener.
  h_.Inject(Seg(kTcpSyn, rcv_ + 100000, 0));
  EXPECT_EQ(One().f.tcp_flags, kTcpSyn | kTcpAck);
}

TEST_F(CloseTest, Rfc6191_TimeWaitSocket_NewSynReopensThroughListener) {
  PassiveOpen();
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);  // we close first
  One();
  snd_ += 1;
  h_.Inject(PeerAck());
  h_.Inject(PeerData("", kTcpFin));
  Out();
  ASSERT_EQ(state(), TcpState::kTimeWait);
  h_.Inject(Seg(kTcpSyn, rcv_ + 100000, 0));
  TcpView sa = One();
  EXPECT_EQ(sa.f.tcp_flags, kTcpSyn | kTcpAck);
  EXPECT_EQ(sa.f.ack, rcv_ + 100001);
}

TEST_F(CloseTest, Rfc9293_FinOutOfOrder_ProcessedAfterHoleFilled) {
  ActiveOpen();
  h_.Inject(Seg(kTcpAck | kTcpFin, rcv_ + 3, snd_, "def"));
  Out();
  EXPECT_EQ(state(), TcpState::kEstablished);
  h_.Inject(Seg(kTcpAck, rcv_, snd_, "abc"));
  rcv_ += 7;
  EXPECT_EQ(One().f.ack, rcv_);
  EXPECT_EQ(state(), TcpState::kCloseWait);
  EXPECT_EQ(AppRead(), "abcdef");
}

TEST_F(CloseTest, Linux_SoLingerZero_CloseSendsRstAndReleases) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kLingerZero, 1), 0);
  ASSERT_EQ(h_.s().TcpClose(flow_), 0);
  TcpView r = One();
  EXPECT_EQ(r.f.tcp_flags, kTcpRst | kTcpAck);
  EXPECT_EQ(r.f.seq, snd_);
  EXPECT_TRUE(FlowGone());
}

TEST_F(CloseTest, Rfc2525_CloseWithUnreadData_SendsRst) {
  ActiveOpen();
  h_.Inject(PeerData("unread"));
  Out();
  ASSERT_EQ(h_.s().TcpClose(flow_), 0);
  TcpView r = One();
  EXPECT_TRUE(r.f.tcp_flags & kTcpRst);
  EXPECT_TRUE(FlowGone());
}

TEST_F(CloseTest, Rfc9293_Abort_SendsRst) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpAbort(flow_), 0);
  EXPECT_TRUE(One().f.tcp_flags & kTcpRst);
  EXPECT_TRUE(FlowGone());
}

TEST_F(CloseTest, Rfc9293_CloseInSynSent_DeletesTcbSilently) {
  flow_ = h_.Connect(80, &tx_, &rx_);
  One();
  ASSERT_EQ(h_.s().TcpClose(flow_), 0);
  ExpectSilence();
  EXPECT_TRUE(FlowGone());
}

TEST_F(CloseTest, Linux_OrphanedFinWait2_TimesOut) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpClose(flow_), 0);
  One();
  snd_ += 1;
  h_.Inject(PeerAck());
  ASSERT_FALSE(FlowGone());
  EXPECT_EQ(state(), TcpState::kFinWait2);
  h_.Advance(60 * kSecNs);  // tcp_fin_timeout
  EXPECT_TRUE(FlowGone());
}

TEST_F(CloseTest, Rfc9293_DataAfterPeerFin_IsIgnored) {
  ActiveOpen();
  h_.Inject(PeerData("", kTcpFin));
  Out();
  h_.Inject(Seg(kTcpAck, rcv_, snd_, "late"));
  Out();
  EXPECT_EQ(AppRead(), "");
}

// Linux TCPAbortOnData (packetdrill user_timeout.pkt): data for a
// connection the application closed, in FIN-WAIT-1, is answered with
// <SEQ=SEG.ACK><CTL=RST> and the connection is gone.
TEST_F(CloseTest, Linux_DataAfterClose_InFinWait1_Resets) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpClose(flow_), 0);
  One();  // FIN, not acknowledged
  ASSERT_EQ(state(), TcpState::kFinWait1);
  h_.Inject(Seg(kTcpAck, rcv_, snd_, "x"));
  TcpView rst = One();
  EXPECT_EQ(rst.f.tcp_flags, net::kTcpRst);
  EXPECT_EQ(rst.f.seq, snd_);
  EXPECT_TRUE(FlowGone());
}

// A half-close keeps receiving (RFC 9293 3.10.4: only CLOSE ends the
// receive side).
TEST_F(CloseTest, Rfc9293_DataAfterShutdownWrite_IsDelivered) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  One();
  h_.Inject(PeerData("more"));
  EXPECT_EQ(AppRead(), "more");
  EXPECT_EQ(state(), TcpState::kFinWait1);
}

TEST_F(CloseTest, Rfc9293_FinRetransmittedOnTimeout) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  TcpView fin = One();
  h_.Advance(tcb().rto_ns);
  TcpView again = One();
  EXPECT_EQ(again.f.tcp_flags, kTcpFin | kTcpAck);
  EXPECT_EQ(again.f.seq, fin.f.seq);
}

}  // namespace
}  // namespace offload::testing
