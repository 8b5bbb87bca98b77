// RFC 9293 3.10.7.4 (sequence check, RST, SYN, ACK steps) with the RFC 5961
// blind-attack mitigations and RFC 7323 PAWS.
#include "tests/daemon/tcp/tcp_fixture.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using net::kTcpFin;
using net::kTcpRst;
using net::kTcpSyn;
using tcp::TcpState;

class RstTest : public TcpSegmentTest {};

TEST_F(RstTest, Rfc5961_RstExactSequence_ResetsWithEconnreset) {
  ActiveOpen();
  h_.Inject(Seg(kTcpRst, rcv_, 0));
  ExpectSilence();
  int err = 0;
  EXPECT_TRUE(FlowEvents(&err) & tcp::kEventClosed);
  EXPECT_EQ(err, ECONNRESET);
  EXPECT_EQ(state(), TcpState::kClosed);
}

TEST_F(RstTest, Rfc5961_RstInWindowNotExact_SendsChallengeAck) {
  ActiveOpen();
  h_.Inject(Seg(kTcpRst, rcv_ + 100, 0));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .seq = snd_, .ack = rcv_}));
  EXPECT_EQ(state(), TcpState::kEstablished);
  EXPECT_EQ(h_.s().tcp_counters().challenge_acks, 1u);
}

TEST_F(RstTest, Rfc5961_RstOutOfWindow_IsSilentlyDropped) {
  ActiveOpen();
  h_.Inject(Seg(kTcpRst, rcv_ + 1000000, 0));
  h_.Inject(Seg(kTcpRst, rcv_ - 1, 0));
  ExpectSilence();
  EXPECT_EQ(state(), TcpState::kEstablished);
}

TEST_F(RstTest, Rfc5961_SynInEstablished_SendsChallengeAck) {
  ActiveOpen();
  h_.Inject(Seg(kTcpSyn, rcv_ + 10, 0));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .seq = snd_, .ack = rcv_}));
  EXPECT_EQ(state(), TcpState::kEstablished);
}

TEST_F(RstTest, Rfc5961_SynOutsideWindowInEstablished_AlsoAnsweredWithAck) {
  ActiveOpen();
  h_.Inject(Seg(kTcpSyn, rcv_ - 100000, 0));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .ack = rcv_}));
  EXPECT_EQ(state(), TcpState::kEstablished);
}

TEST_F(RstTest, Rfc5961_ChallengeAckRateLimited) {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.tcp.challenge_ack_limit = 2;
  cfg.tcp.invalid_ratelimit_ns = 0;  // only the per-stack limit here
  StackUnderTest h(cfg);
  std::swap(h_, h);  // (h_ is rebuilt with the limit)
  ActiveOpen();
  size_t acks = 0;
  for (int i = 0; i < 5; ++i) {
    h_.Inject(Seg(kTcpRst, rcv_ + 10 + i, 0));
    acks += Out().size();
  }
  EXPECT_EQ(acks, 2u);
  EXPECT_EQ(h_.s().tcp_counters().challenge_acks_suppressed, 3u);
  h_.Advance(1001 * kMsNs);  // a new one-second window
  h_.Inject(Seg(kTcpRst, rcv_ + 50, 0));
  EXPECT_EQ(Out().size(), 1u);
}

TEST_F(RstTest, Linux_ChallengeAcks_AtMostOnePer500msPerConnection) {
  ActiveOpen();
  h_.Inject(Seg(kTcpRst, rcv_ + 10, 0));
  EXPECT_EQ(Out().size(), 1u);
  h_.Advance(100 * kMsNs);
  h_.Inject(Seg(kTcpRst, rcv_ + 11, 0));
  h_.Inject(Seg(kTcpSyn, rcv_ + 12, 0));
  ExpectSilence();
  EXPECT_EQ(h_.s().tcp_counters().oow_acks_suppressed, 2u);
  h_.Advance(400 * kMsNs);
  h_.Inject(Seg(kTcpRst, rcv_ + 13, 0));
  EXPECT_EQ(Out().size(), 1u);
}

TEST_F(RstTest, Linux_OutOfWindowPureAcks_RateLimitedButDataAlwaysAcked) {
  ActiveOpen();
  h_.Inject(Seg(kTcpAck, rcv_ + 100000, snd_));  // pure ACK, out of window
  EXPECT_EQ(Out().size(), 1u);
  h_.Inject(Seg(kTcpAck, rcv_ + 100000, snd_));
  ExpectSilence();  // within 500 ms: suppressed (ACK-war mitigation)
  h_.Inject(Seg(kTcpAck, rcv_ - 5, snd_, "old"));  // duplicate data
  EXPECT_EQ(Out().size(), 1u);                    // always answered
}

TEST_F(RstTest, Rfc5961_AckBelowSndUnaMinusMaxWindow_SendsChallengeAckAndDrops) {
  ActiveOpen();
  AppSend(100);
  Out();
  h_.Inject(Seg(kTcpAck, rcv_, snd_ - 200000, "data"));
  TcpView v = One();
  EXPECT_EQ(v.f.tcp_flags, kTcpAck);
  EXPECT_EQ(AppRead(), "");  // the segment was dropped
}

TEST_F(RstTest, Rfc9293_AckOfUnsentData_SendsAckAndDropsSegment) {
  ActiveOpen();
  h_.Inject(Seg(kTcpAck, rcv_, snd_ + 5000, "zz"));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .seq = snd_, .ack = rcv_}));
  EXPECT_EQ(AppRead(), "");
  EXPECT_EQ(h_.s().tcp_counters().ack_too_new, 1u);
}

TEST_F(RstTest, Rfc9293_SegmentBeyondWindow_UnacceptableSendsAck) {
  ActiveOpen();
  h_.Inject(Seg(kTcpAck, rcv_ + 70000, snd_, "x"));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .seq = snd_, .ack = rcv_}));
  EXPECT_EQ(h_.s().tcp_counters().out_of_window, 1u);
}

TEST_F(RstTest, Rfc9293_SegmentWithoutAckBit_IsDropped) {
  ActiveOpen();
  h_.Inject(Seg(0, rcv_, 0, "hello"));
  ExpectSilence();
  EXPECT_EQ(AppRead(), "");
}

TEST_F(RstTest, Rfc7323_PawsRejectsOldTimestamp) {
  PeerOptions po;
  po.timestamps = true;
  ActiveOpen(po);
  h_.Inject(PeerData("new"));
  Out();
  EXPECT_EQ(AppRead(), "new");
  // A segment whose TSval is older than TS.Recent is a duplicate (R1).
  TcpSpec s;
  s.src = h_.Peer(peer_port_);
  s.dst = h_.Us(our_port_);
  s.seq = rcv_;
  s.ack = snd_;
  s.options.timestamp = true;
  s.options.tsval = peer_tsval_ - 50;
  s.options.tsecr = our_last_tsval_;
  s.payload = {'o', 'l', 'd'};
  h_.Inject(BuildTcp(s));
  TcpView ack = One();
  EXPECT_EQ(ack.f.ack, rcv_);  // acknowledged, not accepted
  EXPECT_EQ(AppRead(), "");
  EXPECT_EQ(h_.s().tcp_counters().paws_rejected, 1u);
}

TEST_F(RstTest, Rfc7323_PawsDoesNotApplyToRst) {
  PeerOptions po;
  po.timestamps = true;
  ActiveOpen(po);
  TcpSpec s;
  s.src = h_.Peer(peer_port_);
  s.dst = h_.Us(our_port_);
  s.seq = rcv_;
  s.flags = kTcpRst;
  s.options.timestamp = true;
  s.options.tsval = peer_tsval_ - 50;
  h_.Inject(BuildTcp(s));
  EXPECT_EQ(state(), TcpState::kClosed);
}

TEST_F(RstTest, Rfc7323_TsRecentEchoedInTsecr) {
  PeerOptions po;
  po.timestamps = true;
  ActiveOpen(po);
  h_.Inject(PeerData("abc"));
  h_.Advance(50 * kMsNs);
  TcpView ack = Out().back();
  EXPECT_TRUE(ack.opts.has_timestamp);
  EXPECT_EQ(ack.opts.tsecr, peer_tsval_);
}

TEST_F(RstTest, Rfc9293_RstInCloseWait_Econnreset) {
  ActiveOpen();
  h_.Inject(PeerData("", kTcpFin));
  Out();
  EXPECT_EQ(state(), TcpState::kCloseWait);
  h_.Inject(Seg(kTcpRst, rcv_, 0));
  int err = 0;
  EXPECT_TRUE(FlowEvents(&err) & tcp::kEventClosed);
  EXPECT_EQ(err, ECONNRESET);
}

TEST_F(RstTest, Rfc9293_RstInLastAck_ClosesWithoutError) {
  ActiveOpen();
  h_.Inject(PeerData("", kTcpFin));
  Out();
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  Out();
  EXPECT_EQ(state(), TcpState::kLastAck);
  h_.Inject(Seg(kTcpRst, rcv_, 0));
  EXPECT_EQ(state(), TcpState::kClosed);
  int err = -1;
  FlowEvents(&err);
  EXPECT_EQ(err, 0);
}

}  // namespace
}  // namespace offload::testing
