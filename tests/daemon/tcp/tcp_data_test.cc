// Data transfer rules: RFC 9293 3.10.7.4 seventh step, RFC 5681 4.2 ACK
// generation (delayed ACK, quick-ACK, out-of-order), RFC 2018/2883 SACK and
// D-SACK generation, RFC 9293 3.7.4 Nagle (Minshall, as Linux), TCP_NODELAY,
// TCP_CORK/MSG_MORE, 3.8.6 window management and zero-window probing.
#include "tests/daemon/tcp/tcp_fixture.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using net::kTcpFin;
using net::kTcpPsh;
using tcp::TcpState;

class DataTest : public TcpSegmentTest {
 protected:
  // Exhausts the quick-ACK segments granted at connection start.
  void EndQuickAck() {
    for (int i = 0; i < 16; ++i) h_.Inject(PeerData("q"));
    Out();
    AppRead();
    Out();
    ASSERT_EQ(tcb().quickack, 0u);
  }
};

TEST_F(DataTest, Rfc9293_InOrderData_DeliveredToRxRingWithReadableEvent) {
  ActiveOpen();
  h_.Inject(PeerData("hello world"));
  EXPECT_TRUE(FlowEvents() & tcp::kEventReadable);
  EXPECT_EQ(AppRead(), "hello world");
  EXPECT_EQ(tcb().rcv_nxt, rcv_);
}

TEST_F(DataTest, Linux_QuickAckAtStart_AcksEverySegmentImmediately) {
  ActiveOpen();
  h_.Inject(PeerData("a"));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .ack = rcv_}));
}

TEST_F(DataTest, Rfc5681_DelayedAck_SentAfter40ms) {
  ActiveOpen();
  EndQuickAck();
  h_.Inject(PeerData("x"));
  ExpectSilence();
  h_.Advance(39 * kMsNs);
  ExpectSilence();
  h_.Advance(1 * kMsNs);
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .ack = rcv_}));
  EXPECT_EQ(h_.s().tcp_counters().delayed_acks, 1u);
}

TEST_F(DataTest, Rfc5681_AckAtLeastEverySecondFullSizedSegment) {
  ActiveOpen();
  EndQuickAck();
  std::string full(1460, 'f');
  h_.Inject(PeerData(full));
  ExpectSilence();
  h_.Inject(PeerData(full));
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .ack = rcv_}));
}

TEST_F(DataTest, Rfc5681_DelayedAckPiggybacksOnData) {
  ActiveOpen();
  EndQuickAck();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kNoDelay, 1), 0);
  h_.Inject(PeerData("req"));
  ExpectSilence();
  AppSend("resp");
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 4u);
  EXPECT_EQ(v.f.ack, rcv_);
  h_.Advance(50 * kMsNs);
  ExpectSilence();  // the delayed ACK was cancelled by the piggyback
}

TEST_F(DataTest, Linux_TcpQuickAck_SendsPendingAckNow) {
  ActiveOpen();
  EndQuickAck();
  h_.Inject(PeerData("x"));
  ExpectSilence();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kQuickAck, 1), 0);
  EXPECT_EQ(One().f.ack, rcv_);
}

TEST_F(DataTest, Rfc5681_OutOfOrderSegment_ImmediateDuplicateAck) {
  ActiveOpen();
  EndQuickAck();
  h_.Inject(Seg(kTcpAck, rcv_ + 100, snd_, "later"));
  TcpView v = One();
  EXPECT_EQ(v.f.ack, rcv_);
  EXPECT_EQ(v.opts.num_sack, 0);  // no SACK negotiated
  EXPECT_EQ(AppRead(), "");
}

// Regression: out-of-order segments arriving in one receive batch were
// answered with a single (coalesced) ACK, starving the sender of the three
// duplicate ACKs fast retransmit needs.
TEST_F(DataTest, Rfc5681_OutOfOrderBatch_OneDuplicateAckPerSegment) {
  ActiveOpen();
  EndQuickAck();
  h_.Inject(Seg(kTcpAck, rcv_ + 100, snd_, "a"));
  h_.Inject(Seg(kTcpAck, rcv_ + 200, snd_, "b"));
  h_.Inject(Seg(kTcpAck, rcv_ + 300, snd_, "c"));
  std::vector<TcpView> v = Out();
  ASSERT_EQ(v.size(), 3u);
  for (auto& a : v) {
    EXPECT_EQ(a.f.ack, rcv_);
    EXPECT_EQ(a.f.window, v[0].f.window);  // unchanged: true duplicates
  }
}

TEST_F(DataTest, Rfc5681_HoleFill_ImmediateAckAndReassembly) {
  ActiveOpen();
  EndQuickAck();
  h_.Inject(Seg(kTcpAck, rcv_ + 3, snd_, "def"));
  Out();
  h_.Inject(Seg(kTcpAck, rcv_, snd_, "abc"));
  rcv_ += 6;
  EXPECT_TRUE(MatchTcp(h_.Drain().at(0), {.flags = kTcpAck, .ack = rcv_}));
  EXPECT_EQ(AppRead(), "abcdef");
}

TEST_F(DataTest, Rfc2018_SackBlocks_FirstBlockIsMostRecentSegment) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  h_.Inject(Seg(kTcpAck, rcv_ + 10, snd_, "AAAAA"));  // [10,15)
  Out();
  h_.Inject(Seg(kTcpAck, rcv_ + 30, snd_, "BBBBB"));  // [30,35)
  TcpView v = One();
  ASSERT_EQ(v.opts.num_sack, 2);
  EXPECT_EQ(v.opts.sack[0].start, rcv_ + 30);
  EXPECT_EQ(v.opts.sack[0].end, rcv_ + 35);
  EXPECT_EQ(v.opts.sack[1].start, rcv_ + 10);
  EXPECT_EQ(v.opts.sack[1].end, rcv_ + 15);
  // Linux layout: NOP NOP SACK.
  EXPECT_EQ(v.raw_options[0], 1);
  EXPECT_EQ(v.raw_options[2], 5);
  // A segment extending the older block makes it first again.
  h_.Inject(Seg(kTcpAck, rcv_ + 15, snd_, "CC"));
  TcpView w = One();
  ASSERT_EQ(w.opts.num_sack, 2);
  EXPECT_EQ(w.opts.sack[0].start, rcv_ + 10);
  EXPECT_EQ(w.opts.sack[0].end, rcv_ + 17);
}

TEST_F(DataTest, Rfc2018_SackBlocksWithTimestamps_AtMostThree) {
  PeerOptions po;
  po.sack = true;
  po.timestamps = true;
  ActiveOpen(po);
  for (int i = 1; i <= 5; ++i) {
    h_.Inject(Seg(kTcpAck, rcv_ + 10 * i, snd_, "x"));
    Out();
  }
  h_.Inject(Seg(kTcpAck, rcv_ + 60, snd_, "x"));
  TcpView v = One();
  EXPECT_EQ(v.opts.num_sack, 3);
  EXPECT_TRUE(v.opts.has_timestamp);
}

TEST_F(DataTest, Rfc2883_DuplicateSegment_ReportedAsDsack) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  uint32_t start = rcv_;
  h_.Inject(PeerData("dup!"));
  Out();
  h_.Inject(Seg(kTcpAck, start, snd_, "dup!"));
  TcpView v = One();
  ASSERT_GE(v.opts.num_sack, 1);
  EXPECT_EQ(v.opts.sack[0].start, start);
  EXPECT_EQ(v.opts.sack[0].end, start + 4);
  EXPECT_EQ(v.f.ack, rcv_);
}

TEST_F(DataTest, Rfc9293_RetransmittedOverlap_TrimmedToNewData) {
  ActiveOpen();
  uint32_t start = rcv_;
  h_.Inject(PeerData("abc"));
  h_.Inject(Seg(kTcpAck, start, snd_, "abcdef"));
  rcv_ = start + 6;
  EXPECT_EQ(AppRead(), "abcdef");
}

TEST_F(DataTest, Rfc9293_Nagle_HoldsSmallSegmentWhileSmallSegmentUnacked) {
  ActiveOpen();
  AppSend("a");
  EXPECT_EQ(One().f.payload_len, 1u);
  AppSend("b");
  ExpectSilence();  // Minshall: a small segment is outstanding
  snd_ += 1;
  h_.Inject(PeerAck());
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 1u);
  EXPECT_EQ(v.f.seq, snd_);
}

TEST_F(DataTest, Rfc9293_NoDelay_SendsSmallSegmentsImmediately) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kNoDelay, 1), 0);
  AppSend("a");
  EXPECT_EQ(One().f.payload_len, 1u);
  AppSend("b");  // unacknowledged small segment outstanding: sent anyway
  EXPECT_EQ(One().f.payload_len, 1u);
}

TEST_F(DataTest, Rfc9293_Nagle_FullSegmentsAreNotDelayed) {
  ActiveOpen();
  AppSend("a");
  One();
  AppSend(2920);
  std::vector<TcpView> v = Out();
  ASSERT_EQ(v.size(), 2u);  // two full segments; nothing small held behind
  EXPECT_EQ(v[0].f.payload_len, 1460u);
}

TEST_F(DataTest, Linux_Cork_HoldsPartialSegmentUntilUncork) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kCork, 1), 0);
  AppSend(100);
  ExpectSilence();
  AppSend(1500);
  TcpView v = One();  // one full segment, the 140-byte tail is held
  EXPECT_EQ(v.f.payload_len, 1460u);
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kCork, 0), 0);
  EXPECT_EQ(One().f.payload_len, 140u);
}

TEST_F(DataTest, Linux_Cork_PartialSegmentSentAfter200ms) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kCork, 1), 0);
  AppSend(100);
  ExpectSilence();
  h_.Advance(199 * kMsNs);
  ExpectSilence();
  h_.Advance(1 * kMsNs);
  EXPECT_EQ(One().f.payload_len, 100u);
}

TEST_F(DataTest, Linux_MsgMore_HoldsPartialUntilSendWithoutMore) {
  ActiveOpen();
  AppSend(100, /*more=*/true);
  ExpectSilence();
  AppSend(50, /*more=*/false);
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 150u);
  EXPECT_TRUE(v.f.tcp_flags & kTcpPsh);
}

TEST_F(DataTest, Rfc9293_SendWindowLimitsTransmission) {
  ActiveOpen();
  h_.Inject(PeerAck(3000));
  AppSend(10000);
  std::vector<TcpView> v = Out();
  uint32_t sent = 0;
  for (auto& s : v) sent += s.f.payload_len;
  EXPECT_EQ(sent, 2920u);  // 2 full segments; 80 bytes held (sender SWS)
}

TEST_F(DataTest, Rfc9293_ZeroWindow_PersistProbeWithBackoff) {
  ActiveOpen();
  h_.Inject(PeerAck(0));
  AppSend(100);
  ExpectSilence();
  // Probes at RTO-based, doubling intervals; Linux probe: SEQ = SND.UNA - 1.
  uint64_t rto = tcb().rto_ns;
  h_.Advance(rto);
  TcpView p1 = One();
  EXPECT_EQ(p1.f.seq, snd_ - 1);
  EXPECT_EQ(p1.f.payload_len, 0u);
  h_.Advance(2 * rto - 1);
  ExpectSilence();
  h_.Advance(1);
  EXPECT_EQ(One().f.seq, snd_ - 1);
  EXPECT_EQ(h_.s().tcp_counters().zero_window_probes, 2u);
  // The window opens: data flows and probing stops.
  h_.Inject(PeerAck(1000));
  TcpView d = One();
  EXPECT_EQ(d.f.payload_len, 100u);
  EXPECT_EQ(d.f.seq, snd_);
}

TEST_F(DataTest, Rfc9293_ZeroWindowProbeAnswered_ConnectionSurvives) {
  ActiveOpen();
  h_.Inject(PeerAck(0));
  AppSend(100);
  for (int i = 0; i < 20; ++i) {
    h_.Advance(120 * kSecNs);
    if (!Out().empty()) h_.Inject(PeerAck(0));
  }
  EXPECT_EQ(state(), TcpState::kEstablished);
}

TEST_F(DataTest, Rfc9293_ReceiveWindowTracksRingSpace) {
  ActiveOpen();
  std::string big(1460, 'z');
  for (int i = 0; i < 10; ++i) h_.Inject(PeerData(big));
  std::vector<TcpView> v = Out();
  ASSERT_FALSE(v.empty());
  // The right edge advertised in the SYN (64240 bytes, 44 segments as
  // Linux) stays: the 1296 bytes of extra ring space are less than one MSS,
  // not worth moving the edge (RFC 9293 3.8.6.2.2).
  EXPECT_EQ(v.back().f.window, 64240 - 14600);
}

TEST_F(DataTest, Rfc9293_ReceiverSws_SmallReadDoesNotAdvertiseWindowUpdate) {
  ActiveOpen();
  std::string big(1460, 'z');
  // Fill the 64 KiB ring completely.
  for (int i = 0; i < 44; ++i) h_.Inject(PeerData(big.substr(0, i == 44 ? 0 : 1460)));
  Out();
  uint32_t used = rx_->AppUsed();
  ASSERT_GT(used, 60000u);
  // Read 100 bytes: less than min(buffer/2, MSS) -> no window update.
  std::string tmp(100, 0);
  rx_->AppRead(tmp.data(), 100);
  h_.s().TcpReceiveCredit(flow_);
  ExpectSilence();
  // Read everything: a window update goes out.
  AppRead();
  TcpView v = One();
  EXPECT_GT(v.f.window, 60000);
}

TEST_F(DataTest, Rfc9293_DataBeyondReceiveWindow_TrimmedAndAcked) {
  ActiveOpen();
  // Peer ignores our window: 70000 bytes can never be accepted at once.
  std::string big(1400, 'y');
  for (int i = 0; i < 48; ++i) h_.Inject(PeerData(big));
  Out();
  EXPECT_LE(rx_->AppUsed(), 65536u);
  EXPECT_EQ(tcb().rcv_nxt - (peer_iss_ + 1), rx_->AppUsed());
}

TEST_F(DataTest, Rfc9293_WriteAfterShutdown_Epipe) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  tx_->AppWrite("x", 1);
  EXPECT_EQ(h_.s().TcpSend(flow_), EPIPE);
}

TEST_F(DataTest, Untrusted_BogusTxTailFromApp_IsRejected) {
  ActiveOpen();
  tx_->indices().tail.store(tx_->indices().tail.load() + (1u << 30));
  EXPECT_EQ(h_.s().TcpSend(flow_), 0);
  ExpectSilence();
  EXPECT_EQ(h_.s().tcp_counters().bad_app_index, 1u);
}

TEST_F(DataTest, Untrusted_BogusRxHeadFromApp_IsRejected) {
  ActiveOpen();
  h_.Inject(PeerData("abc"));
  Out();
  rx_->indices().head.store(rx_->indices().head.load() + 1000);  // beyond tail
  h_.s().TcpReceiveCredit(flow_);
  EXPECT_EQ(h_.s().tcp_counters().bad_app_index, 1u);
  EXPECT_EQ(tcb().rx.used(), 3u);
}

}  // namespace
}  // namespace offload::testing
