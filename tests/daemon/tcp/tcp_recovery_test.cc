// Loss recovery: RFC 5681 3.2 fast retransmit, RFC 6582 NewReno partial and
// full ACKs, RFC 6675 SACK-based recovery, RFC 2883 D-SACK accounting,
// congestion control responses (RFC 5681 Reno, RFC 9438 CUBIC).
#include "tests/daemon/tcp/tcp_fixture.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using tcp::TcpState;

bool SeqGtForTest(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }

class RecoveryTest : public TcpSegmentTest {
 protected:
  // Sends ten full segments (the initial window) and returns their seqs.
  void SendWindow() {
    AppSend(14600);
    std::vector<TcpView> v = Out();
    ASSERT_EQ(v.size(), 10u);
    una_ = snd_;
  }
  // Opens (with SACK unless told) and gives the connection an RTT sample
  // of 20 ms.
  void OpenWithRttSample(bool sack = true) {
    PeerOptions po;
    po.sack = sack;
    ActiveOpen(po);
    AppSend(100);
    Out();
    h_.Advance(20 * kMsNs);
    snd_ += 100;
    h_.Inject(PeerAck());
  }
  Frame DupAck() { return Seg(kTcpAck, rcv_, una_); }
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
  uint32_t una_ = 0;
  static constexpr uint32_t kMss = 1460;
};

TEST_F(RecoveryTest, Rfc5681_ThreeDuplicateAcks_FastRetransmit) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  SendWindow();
  h_.Inject(DupAck());
  h_.Inject(DupAck());
  ExpectSilence();
  h_.Inject(DupAck());
  TcpView r = One();
  EXPECT_EQ(r.f.seq, una_);
  EXPECT_EQ(r.f.payload_len, kMss);
  EXPECT_EQ(h_.s().tcp_counters().fast_retransmits, 1u);
  // RFC 6582: ssthresh = FlightSize/2, cwnd = ssthresh + 3 SMSS.
  EXPECT_EQ(tcb().snd_ssthresh, 5 * kMss);
  EXPECT_EQ(tcb().snd_cwnd, 8 * kMss);
  EXPECT_TRUE(tcb().in_recovery);
}

TEST_F(RecoveryTest, Rfc6582_DupAcksInRecovery_InflateWindowAndSendNewData) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  SendWindow();
  AppSend(14600);  // more data queued behind the window
  Out();
  for (int i = 0; i < 3; ++i) h_.Inject(DupAck());
  Out();
  // cwnd = 8 MSS < flight 10 MSS: each further dupack adds one SMSS.
  h_.Inject(DupAck());
  h_.Inject(DupAck());
  ExpectSilence();  // cwnd 10 MSS == flight
  h_.Inject(DupAck());
  TcpView n = One();
  EXPECT_EQ(n.f.seq, una_ + 10 * kMss);  // new data
}

TEST_F(RecoveryTest, Rfc6582_PartialAck_RetransmitsNextHole) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  SendWindow();
  for (int i = 0; i < 3; ++i) h_.Inject(DupAck());
  Out();
  // Partial ACK: covers the first two segments only.
  h_.Inject(Seg(kTcpAck, rcv_, una_ + 2 * kMss));
  TcpView r = One();
  EXPECT_EQ(r.f.seq, una_ + 2 * kMss);
  EXPECT_TRUE(tcb().in_recovery);
}

TEST_F(RecoveryTest, Rfc6582_FullAck_ExitsRecovery) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  SendWindow();
  for (int i = 0; i < 3; ++i) h_.Inject(DupAck());
  Out();
  h_.Inject(Seg(kTcpAck, rcv_, una_ + 10 * kMss));
  EXPECT_FALSE(tcb().in_recovery);
  EXPECT_LE(tcb().snd_cwnd, tcb().snd_ssthresh);
}

TEST_F(RecoveryTest, Rfc6675_SackRecovery_RetransmitsOnlyTheHole) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  SendWindow();
  // Segment 0 lost; 1..3 arrive and are SACKed.
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 2 * kMss));
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 3 * kMss));
  ExpectSilence();
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 4 * kMss));
  std::vector<TcpView> v = Out();
  ASSERT_GE(v.size(), 1u);
  EXPECT_EQ(v[0].f.seq, una_);
  for (size_t i = 1; i < v.size(); ++i) {
    // Nothing SACKed is sent again.
    EXPECT_FALSE(v[i].f.seq >= una_ + kMss && v[i].f.seq < una_ + 4 * kMss);
  }
  EXPECT_TRUE(tcb().sack_recovery);
  EXPECT_EQ(h_.s().tcp_counters().sack_recoveries, 1u);
}

TEST_F(RecoveryTest, Rfc6675_IsLost_ByteThresholdTriggersWithoutThreeDupacks) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  SendWindow();
  // One ACK SACKing more than (DupThresh - 1) * SMSS above the hole.
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 5 * kMss));
  std::vector<TcpView> v = Out();
  ASSERT_GE(v.size(), 1u);
  EXPECT_EQ(v[0].f.seq, una_);
}

TEST_F(RecoveryTest, Rfc6675_AfterRto_SackedDataIsSkipped) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  SendWindow();
  h_.Inject(SackAck(una_, una_ + 2 * kMss, una_ + 3 * kMss));  // one block
  Out();
  ASSERT_EQ(tcb().ca_state, 1);  // Disorder: no loss probe, the RTO is armed
  h_.Advance(tcb().rtx_deadline - h_.now());
  std::vector<TcpView> v = Out();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].f.seq, una_);
  h_.Inject(Seg(kTcpAck, rcv_, una_ + kMss));
  // cwnd 2 after the ACK: next goes [1,2) then skips the SACKed [2,3).
  std::vector<TcpView> w = Out();
  ASSERT_GE(w.size(), 2u);
  EXPECT_EQ(w[0].f.seq, una_ + kMss);
  EXPECT_EQ(w[1].f.seq, una_ + 3 * kMss);
}

TEST_F(RecoveryTest, Rfc8985_TailLossProbe_SendsLastSegmentAfterPto) {
  OpenWithRttSample();
  SendWindow();
  ASSERT_TRUE(tcb().tlp_armed);
  uint64_t pto = tcb().rtx_deadline - h_.now();
  EXPECT_GE(pto, 2 * static_cast<uint64_t>(tcb().srtt_us) * 1000);
  EXPECT_LT(pto, tcb().rto_ns);
  h_.Advance(pto);
  TcpView probe = One();
  EXPECT_EQ(probe.f.seq, una_ + 9 * kMss);  // the highest segment again
  EXPECT_EQ(probe.f.payload_len, kMss);
  EXPECT_EQ(h_.s().tcp_counters().tail_loss_probes, 1u);
  // The probe's SACK exposes the loss of the first segment (the ACKs of
  // 1..8 were lost): fast recovery.
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 10 * kMss));
  std::vector<TcpView> v = Out();
  ASSERT_GE(v.size(), 1u);
  EXPECT_EQ(v[0].f.seq, una_);
  EXPECT_TRUE(tcb().in_recovery);
}

// RFC 8985 6.2: a hole with a single SACKed segment above it (too few for
// DupThresh, e.g. a short flight or lost ACKs) is repaired once the
// reordering window passes, not by the retransmission timeout.
TEST_F(RecoveryTest, Rfc8985_ReorderTimer_RepairsHoleBelowOneSackedSegment) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  SendWindow();
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 2 * kMss));
  ExpectSilence();
  ASSERT_NE(tcb().reo_deadline, 0u);
  ASSERT_LT(tcb().reo_deadline, tcb().rtx_deadline);
  h_.Advance(tcb().reo_deadline - h_.now());
  std::vector<TcpView> v = Out();
  ASSERT_GE(v.size(), 1u);
  EXPECT_EQ(v[0].f.seq, una_);
  EXPECT_TRUE(tcb().sack_recovery);
  EXPECT_EQ(h_.s().tcp_counters().reorder_timeouts, 1u);
  EXPECT_EQ(h_.s().tcp_counters().rto_timeouts, 0u);
}

// A SACK that arrives before the reordering window ends (the hole was only
// reordered, and its ACK advances) cancels the timer: no retransmission.
TEST_F(RecoveryTest, Rfc8985_ReorderTimer_CancelledWhenHoleFills) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  SendWindow();
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 2 * kMss));
  ASSERT_NE(tcb().reo_deadline, 0u);
  h_.Inject(Seg(kTcpAck, rcv_, una_ + 2 * kMss));
  EXPECT_EQ(tcb().reo_deadline, 0u);
  h_.Advance(5 * kMsNs);
  for (const TcpView& t : Out()) EXPECT_NE(t.f.seq, una_);
  EXPECT_EQ(h_.s().tcp_counters().retrans_segs, 0u);
  EXPECT_FALSE(tcb().in_recovery);
}

// RFC 8985 6.2 (RFC 6675 cannot see it): the retransmission of SND.UNA is
// lost too. Once data first sent after that retransmission is SACKed, the
// head is retransmitted again -- at once: in recovery the reordering window
// is 0 (step 4) -- instead of waiting for the RTO, without a second window
// reduction.
TEST_F(RecoveryTest, Rfc8985_LostRetransmission_SentAgainBeforeRto) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  SendWindow();
  AppSend(14600);  // new data queued behind the window
  Out();
  h_.Advance(1 * kMsNs);  // the retransmission leaves after the originals
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 5 * kMss));
  std::vector<TcpView> v = Out();
  ASSERT_GE(v.size(), 1u);
  ASSERT_EQ(v[0].f.seq, una_);  // fast retransmit of the head (then lost)
  const uint32_t ssthresh = tcb().snd_ssthresh;
  // Everything else arrives: pipe drops and new data goes out.
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 10 * kMss));
  std::vector<TcpView> n = Out();
  ASSERT_GE(n.size(), 1u);
  for (const TcpView& t : n) EXPECT_GE(t.f.seq, una_ + 10 * kMss);
  ExpectSilence();
  // The new data is SACKed; the head is still missing.
  h_.Inject(SackAck(una_, una_ + kMss, tcb().snd_max));
  std::vector<TcpView> r = Out();
  ASSERT_GE(r.size(), 1u);
  EXPECT_EQ(r[0].f.seq, una_);
  EXPECT_EQ(h_.s().tcp_counters().lost_retransmits, 1u);
  EXPECT_EQ(h_.s().tcp_counters().rto_timeouts, 0u);
  EXPECT_EQ(h_.s().tcp_counters().sack_recoveries, 1u);
  EXPECT_EQ(tcb().snd_ssthresh, ssthresh);
  // The repaired hole completes recovery.
  h_.Inject(Seg(kTcpAck, rcv_, tcb().snd_max));
  EXPECT_FALSE(tcb().in_recovery);
}

// RFC 6675 5.1 bars a new recovery only until the data outstanding at the
// previous recovery/RTO point is acknowledged; a loss exactly at that point
// ("recover") is repaired by fast retransmit, not by a timeout.
TEST_F(RecoveryTest, Rfc6675_LossAtRecoveryPoint_EntersNewRecovery) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  SendWindow();
  AppSend(14600 * 3);
  Out();
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 5 * kMss));
  Out();
  const uint32_t recover = tcb().recover;
  ASSERT_EQ(recover, una_ + 10 * kMss);
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 10 * kMss));
  Out();
  h_.Inject(Seg(kTcpAck, rcv_, recover));  // full ACK: recovery ends
  ASSERT_FALSE(tcb().in_recovery);
  Out();
  ASSERT_TRUE(SeqGtForTest(tcb().snd_max, recover + 3 * kMss))
      << (tcb().snd_max - recover) << " cwnd=" << tcb().snd_cwnd << " una=" << (tcb().snd_una - una_);
  // The segment at "recover" is lost; three above it are SACKed.
  h_.Inject(SackAck(recover, recover + kMss, recover + 4 * kMss));
  std::vector<TcpView> v = Out();
  ASSERT_GE(v.size(), 1u);
  EXPECT_EQ(v[0].f.seq, recover);
  EXPECT_TRUE(tcb().in_recovery);
  EXPECT_EQ(h_.s().tcp_counters().sack_recoveries, 2u);
}

TEST_F(RecoveryTest, Rfc8985_NoProbeWithoutSack) {
  OpenWithRttSample(/*sack=*/false);
  SendWindow();
  EXPECT_FALSE(tcb().tlp_armed);
}

TEST_F(RecoveryTest, Rfc2883_DsackBlock_CountedNotTreatedAsSack) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  SendWindow();
  h_.Inject(Seg(kTcpAck, rcv_, una_ + 2 * kMss));
  h_.Inject(SackAck(una_ + 2 * kMss, una_, una_ + kMss));  // below the ACK
  EXPECT_EQ(h_.s().tcp_counters().dsacks_received, 1u);
  EXPECT_TRUE(tcb().scoreboard.empty());
}

// RFC 8985 6.2 step 3: once an original segment is delivered below data an
// earlier ACK SACKed, the DupThresh rule is off; a hole is repaired when
// RACK's reordering window has passed, not on the third SACKed segment.
TEST_F(RecoveryTest, Rfc8985_ReorderingSeen_LossesFoundByTimeOnly) {
  OpenWithRttSample();
  SendWindow();
  // Segment 1 arrives after 2: reordering.
  h_.Inject(SackAck(una_, una_ + 2 * kMss, una_ + 3 * kMss));
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 3 * kMss));
  ASSERT_TRUE(tcb().rack_reord);
  // Segment 0 is still missing with 3..5 SACKed: DupThresh alone would
  // retransmit it now; RACK waits for its reordering window.
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 6 * kMss));
  ExpectSilence();
  EXPECT_FALSE(tcb().in_recovery);
  ASSERT_NE(tcb().reo_deadline, 0u);
  h_.Advance(tcb().reo_deadline - h_.now());
  std::vector<TcpView> v = Out();
  ASSERT_GE(v.size(), 1u);
  EXPECT_EQ(v[0].f.seq, una_);
  EXPECT_TRUE(tcb().in_recovery);
}

// Reordering, not loss: segment 0 arrives late, after our fast retransmit.
// The receiver's D-SACK for the retransmission proves it unnecessary, and
// the window reduction is undone (RFC 2883 4, Linux tcp_try_undo_dsack).
TEST_F(RecoveryTest, Rfc2883_DsackOfEveryRetransmission_UndoesTheReduction) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  SendWindow();
  AppSend(4 * kMss);  // queued: new data for the recovery to send
  ExpectSilence();
  const uint32_t cwnd_before = tcb().snd_cwnd;
  const uint32_t ssthresh_before = tcb().snd_ssthresh;
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 5 * kMss));  // enters recovery
  std::vector<TcpView> v = Out();
  ASSERT_GE(v.size(), 1u);
  ASSERT_EQ(v[0].f.seq, una_);
  ASSERT_TRUE(tcb().in_recovery);
  ASSERT_LT(tcb().snd_cwnd, cwnd_before);
  for (size_t i = 1; i < v.size(); ++i) {
    ASSERT_GE(v[i].f.seq, una_ + 10 * kMss) << "new data only";
  }
  // The original segment 0 arrives: everything sent is acknowledged, which
  // ends the recovery; then the retransmission arrives as a duplicate.
  const uint32_t all = tcb().snd_max;
  h_.Inject(Seg(kTcpAck, rcv_, all));
  EXPECT_FALSE(tcb().in_recovery);
  Out();
  h_.Inject(SackAck(all, una_, una_ + kMss));  // D-SACK below the ACK
  EXPECT_EQ(h_.s().tcp_counters().recovery_undos, 1u);
  EXPECT_GE(tcb().snd_cwnd, cwnd_before);
  EXPECT_EQ(tcb().snd_ssthresh, ssthresh_before);
}

// One of two retransmissions D-SACKed: a real loss remains, nothing undone.
TEST_F(RecoveryTest, Rfc2883_DsackOfSomeRetransmissions_KeepsTheReduction) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  SendWindow();
  // Segments 0 and 1 missing, 2..6 SACKed: both retransmitted.
  h_.Inject(SackAck(una_, una_ + 2 * kMss, una_ + 7 * kMss));
  std::vector<TcpView> v = Out();
  ASSERT_GE(v.size(), 2u);
  ASSERT_EQ(v[0].f.seq, una_);
  ASSERT_EQ(v[1].f.seq, una_ + kMss);
  const uint32_t reduced = tcb().snd_ssthresh;
  h_.Inject(Seg(kTcpAck, rcv_, una_ + 10 * kMss));
  h_.Inject(SackAck(una_ + 10 * kMss, una_, una_ + kMss));  // only segment 0
  EXPECT_EQ(h_.s().tcp_counters().recovery_undos, 0u);
  EXPECT_EQ(tcb().snd_ssthresh, reduced);
}

// An RTO whose retransmission is D-SACKed (the ACKs were lost, not the
// data): the loss-state reduction is undone and the go-back-N stops.
TEST_F(RecoveryTest, Rfc2883_DsackAfterRto_UndoesLossState) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  SendWindow();
  const uint32_t cwnd_before = tcb().snd_cwnd;
  h_.Inject(SackAck(una_, una_ + 9 * kMss, una_ + 10 * kMss));  // one block: Disorder
  Out();
  h_.Advance(tcb().rtx_deadline - h_.now());
  std::vector<TcpView> v = Out();
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].f.seq, una_);
  ASSERT_EQ(tcb().ca_state, 4);
  // The peer had segment 0..8 all along: ACK 9 with a D-SACK for segment 0.
  tcp::SackBlock dsack{una_, una_ + kMss};
  TcpSpec sp;
  sp.src = h_.Peer(peer_port_);
  sp.dst = h_.Us(our_port_);
  sp.seq = rcv_;
  sp.ack = una_ + 9 * kMss;
  sp.window = 65535;
  sp.options.num_sack = 2;
  sp.options.sack[0] = dsack;
  sp.options.sack[1] = tcp::SackBlock{una_ + 9 * kMss, una_ + 10 * kMss};
  h_.Inject(BuildTcp(sp));
  EXPECT_EQ(h_.s().tcp_counters().rto_undos, 1u);
  EXPECT_EQ(tcb().ca_state, 1);  // segment 9 is still SACKed above SND.UNA
  EXPECT_GE(tcb().snd_cwnd, cwnd_before);
  // Nothing more is resent by the go-back-N: the next output (if any) is new data.
  for (const TcpView& w : Out()) EXPECT_TRUE(SeqGtForTest(w.f.seq, una_ + 9 * kMss)) << w.f.seq;
}

TEST_F(RecoveryTest, Rfc9438_Cubic_ReducesSsthreshToSeventyPercent) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "cubic"), 0);
  SendWindow();
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 5 * kMss));
  Out();
  EXPECT_EQ(tcb().snd_ssthresh, 7 * kMss);  // beta_cubic = 0.7 of 10 segments
}

TEST_F(RecoveryTest, Rfc5681_Reno_HalvesOnLoss) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  SendWindow();
  h_.Inject(SackAck(una_, una_ + kMss, una_ + 5 * kMss));
  Out();
  EXPECT_EQ(tcb().snd_ssthresh, 5 * kMss);
}

TEST_F(RecoveryTest, Rfc5681_SlowStart_CwndGrowsByAckedBytes) {
  ActiveOpen();
  SendWindow();
  h_.Inject(Seg(kTcpAck, rcv_, una_ + 10 * kMss));
  EXPECT_EQ(tcb().snd_cwnd, 20 * kMss);
}

TEST_F(RecoveryTest, Rfc5681_CongestionAvoidance_OneSegmentPerWindow) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  h_.s().MutableTcbForTest(flow_)->snd_ssthresh = 10 * kMss;  // start in CA
  SendWindow();
  h_.Inject(Seg(kTcpAck, rcv_, una_ + 5 * kMss));
  EXPECT_EQ(tcb().snd_cwnd, 10 * kMss);
  h_.Inject(Seg(kTcpAck, rcv_, una_ + 10 * kMss));
  EXPECT_EQ(tcb().snd_cwnd, 11 * kMss);
}

// Linux tcpi_lost (lost_out) counts segments marked lost that are neither
// acknowledged nor SACKed, retransmitted or not (packetdrill
// sack-shift-sacked-2-6-8-3-9-nofack): SACKs of segments 3, 7 and 9 of ten
// an RTT after they left make 1, 2, 4, 5, 6 and 8 lost (RFC 8985 6.2).
TEST_F(RecoveryTest, Rfc8985_TcpInfoLost_CountsUnsackedSegmentsMarkedLost) {
  OpenWithRttSample();
  SendWindow();
  h_.Advance(20 * kMsNs);
  TcpSpec sp;
  sp.src = h_.Peer(peer_port_);
  sp.dst = h_.Us(our_port_);
  sp.seq = rcv_;
  sp.ack = una_;
  sp.window = 65535;
  sp.options.num_sack = 3;
  sp.options.sack[0] = tcp::SackBlock{una_ + 2 * kMss, una_ + 3 * kMss};
  sp.options.sack[1] = tcp::SackBlock{una_ + 6 * kMss, una_ + 7 * kMss};
  sp.options.sack[2] = tcp::SackBlock{una_ + 8 * kMss, una_ + 9 * kMss};
  h_.Inject(BuildTcp(sp));
  Out();
  ASSERT_TRUE(tcb().in_recovery);
  tcp::TcpInfo info;
  ASSERT_EQ(h_.s().TcpGetInfo(flow_, &info), 0);
  EXPECT_EQ(info.tcpi_lost, 6u);
  EXPECT_EQ(info.tcpi_sacked, 3u);
  EXPECT_EQ(info.tcpi_reordering, 3u);
  // Segment 4 SACKed: it was not lost but reordered, six segments below the
  // highest SACKed byte (Linux tcp_check_sack_reordering).
  sp.options.sack[0] = tcp::SackBlock{una_ + 2 * kMss, una_ + 4 * kMss};
  h_.Inject(BuildTcp(sp));
  Out();
  ASSERT_EQ(h_.s().TcpGetInfo(flow_, &info), 0);
  EXPECT_EQ(info.tcpi_lost, 5u);
  EXPECT_EQ(info.tcpi_reordering, 6u);
  // The first segment acknowledged: four lost remain.
  sp.ack = una_ + kMss;
  h_.Inject(BuildTcp(sp));
  Out();
  ASSERT_EQ(h_.s().TcpGetInfo(flow_, &info), 0);
  EXPECT_EQ(info.tcpi_lost, 4u);
}

// RFC 6937 with RFC 8985 marks (Linux tcp_identify_packet_loss before
// tcp_cwnd_reduction), packetdrill sack-shift-sacked-2-6-8-3-9-nofack: ten
// segments an RTT of 100 ms after the handshake, SACKs for 3, 7 and 9 mark
// six lost and enter recovery with ONE retransmission (PRR's sndcnt from the
// pipe after the marks), the next SACK (segment 4, reordered) releases one
// more, and tcpi_reordering reports 6.
TEST_F(RecoveryTest, Rfc6937_EntryAfterRackMarks_SendsOneRetransmission) {
  PeerOptions po;
  po.sack = true;
  po.wscale = true;
  po.mss_value = 1000;
  po.handshake_rtt_ns = 100 * kMsNs;
  PassiveOpen(po);
  AppSend(10000);
  ASSERT_EQ(Out().size(), 10u);
  una_ = snd_;
  h_.Advance(100 * kMsNs);
  auto sack = [&](std::vector<std::pair<uint32_t, uint32_t>> blocks) {
    TcpSpec sp;
    sp.src = h_.Peer(peer_port_);
    sp.dst = h_.Us(our_port_);
    sp.seq = rcv_;
    sp.ack = una_;
    sp.window = 257;
    sp.options.num_sack = static_cast<uint8_t>(blocks.size());
    for (size_t i = 0; i < blocks.size(); ++i) {
      sp.options.sack[i] = tcp::SackBlock{una_ + blocks[i].first, una_ + blocks[i].second};
    }
    h_.Inject(BuildTcp(sp));
    return Out();
  };
  EXPECT_TRUE(sack({{2000, 3000}}).empty());
  h_.Advance(1 * kMsNs);
  EXPECT_TRUE(sack({{2000, 3000}, {6000, 7000}}).empty());
  h_.Advance(1 * kMsNs);
  std::vector<TcpView> v = sack({{2000, 3000}, {6000, 7000}, {8000, 9000}});
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].f.seq, una_);
  tcp::TcpInfo info;
  ASSERT_EQ(h_.s().TcpGetInfo(flow_, &info), 0);
  EXPECT_EQ(info.tcpi_lost, 6u);
  h_.Advance(7 * kMsNs);
  v = sack({{2000, 4000}, {6000, 7000}, {8000, 9000}});
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].f.seq, una_ + 1000);
  ASSERT_EQ(h_.s().TcpGetInfo(flow_, &info), 0);
  EXPECT_EQ(info.tcpi_lost, 5u);
  EXPECT_EQ(info.tcpi_reordering, 6u);
}

}  // namespace
}  // namespace offload::testing
