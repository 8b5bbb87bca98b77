// Timers: RFC 6298 retransmission timeout, RTT estimation and backoff,
// Linux tcp_retries2 and TCP_USER_TIMEOUT (RFC 5482), RFC 1122 4.2.3.6
// keep-alive; TCP_INFO fields.
#include "tests/daemon/tcp/tcp_fixture.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using tcp::TcpState;

class TimerTest : public TcpSegmentTest {};

TEST_F(TimerTest, Rfc6298_RttSample_SetsSrttAndRto) {
  ActiveOpen();
  AppSend(100);
  One();
  h_.Advance(50 * kMsNs);
  snd_ += 100;
  h_.Inject(PeerAck());
  tcp::TcpInfo info;
  ASSERT_EQ(h_.s().TcpGetInfo(flow_, &info), 0);
  // The handshake gave a ~0 sample; 50 ms now: SRTT = 7/8*0 + 1/8*50 ms.
  EXPECT_NEAR(info.tcpi_rtt, 6250, 10);
  EXPECT_GE(tcb().rto_ns, 200 * kMsNs);  // Linux floor: SRTT + max(4 RTTVAR, 200 ms)
}

// RFC 8985 7.2 (Linux tcp_schedule_loss_probe): when the RTO would fire
// before the probe timeout (one segment in flight: PTO includes the worst
// delayed ACK), the probe is sent at the RTO's time, and the RTO proper
// follows one un-backed-off RTO later. packetdrill user_timeout.pkt: a FIN
// alone after close() goes again at +RTO, +RTO, +2 RTO.
TEST_F(TimerTest, Rfc8985_FinAlone_ProbedAtRtoTimeThenRto) {
  PeerOptions po;
  po.sack = true;
  ActiveOpen(po);
  AppSend(100);  // an RTT sample: loss probes need an SRTT
  One();
  h_.Advance(20 * kMsNs);
  snd_ += 100;
  h_.Inject(PeerAck());
  ASSERT_EQ(h_.s().TcpShutdown(flow_, false, true), 0);
  const uint64_t rto = tcb().rto_ns;
  TcpView fin = One();
  ASSERT_TRUE(fin.f.tcp_flags & net::kTcpFin);
  h_.Advance(rto - 1);
  ExpectSilence();
  h_.Advance(1);
  TcpView probe = One();
  EXPECT_TRUE(probe.f.tcp_flags & net::kTcpFin);
  EXPECT_EQ(probe.f.seq, fin.f.seq);
  EXPECT_EQ(h_.s().tcp_counters().tail_loss_probes, 1u);
  EXPECT_EQ(tcb().backoff, 0u);
  h_.Advance(rto - 1);
  ExpectSilence();
  h_.Advance(1);
  TcpView r1 = One();
  EXPECT_TRUE(r1.f.tcp_flags & net::kTcpFin);
  EXPECT_EQ(h_.s().tcp_counters().rto_timeouts, 1u);
  h_.Advance(2 * rto - 1);
  ExpectSilence();
  h_.Advance(1);
  EXPECT_TRUE(One().f.tcp_flags & net::kTcpFin);
}

TEST_F(TimerTest, Rfc6298_RetransmissionTimeout_BackoffDoubles) {
  ActiveOpen();
  uint64_t rto = tcb().rto_ns;
  AppSend(100);
  TcpView first = One();
  h_.Advance(rto - 1);
  ExpectSilence();
  h_.Advance(1);
  TcpView r1 = One();
  EXPECT_EQ(r1.f.seq, first.f.seq);
  EXPECT_EQ(r1.f.payload_len, 100u);
  h_.Advance(2 * rto - 1);
  ExpectSilence();
  h_.Advance(1);
  EXPECT_EQ(One().f.seq, first.f.seq);
  h_.Advance(4 * rto);
  EXPECT_EQ(One().f.seq, first.f.seq);
  tcp::TcpInfo info;
  h_.s().TcpGetInfo(flow_, &info);
  EXPECT_EQ(info.tcpi_backoff, 3);
  EXPECT_EQ(info.tcpi_retransmits, 3);
  EXPECT_EQ(info.tcpi_total_retrans, 3u);
}

TEST_F(TimerTest, Rfc5681_Timeout_SetsLossWindowOfOneSegment) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetCongestion(flow_, "reno"), 0);
  AppSend(14600);
  Out();
  h_.Advance(tcb().rto_ns);
  std::vector<TcpView> v = Out();
  EXPECT_EQ(v.size(), 1u);  // cwnd = 1 SMSS: one retransmission
  tcp::TcpInfo info;
  h_.s().TcpGetInfo(flow_, &info);
  EXPECT_EQ(info.tcpi_snd_cwnd, 1u);
  EXPECT_EQ(info.tcpi_snd_ssthresh, 5u);  // RFC 5681 eq. 4: FlightSize / 2
  EXPECT_EQ(info.tcpi_ca_state, 4);       // TCP_CA_Loss
}

TEST_F(TimerTest, Rfc6298_AckOfNewData_ResetsBackoff) {
  ActiveOpen();
  AppSend(100);
  One();
  h_.Advance(tcb().rto_ns);
  One();
  EXPECT_EQ(tcb().backoff, 1u);
  snd_ += 100;
  h_.Inject(PeerAck());
  EXPECT_EQ(tcb().backoff, 0u);
  EXPECT_EQ(tcb().rtx_deadline, 0u);
}

TEST_F(TimerTest, Linux_Retries2_AbortsWithEtimedout) {
  ActiveOpen();
  AppSend(100);
  One();
  int retrans = 0;
  for (int i = 0; i < 40 && state() != TcpState::kClosed; ++i) {
    h_.Advance(tcb().rtx_deadline - h_.now());
    retrans += static_cast<int>(Out().size());
  }
  EXPECT_EQ(retrans, 15);
  EXPECT_EQ(state(), TcpState::kClosed);
  int err = 0;
  EXPECT_TRUE(FlowEvents(&err) & tcp::kEventError);
  EXPECT_EQ(err, ETIMEDOUT);
}

TEST_F(TimerTest, Rfc5482_UserTimeout_AbortsUnacknowledgedData) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kUserTimeout, 1000), 0);
  AppSend(100);
  One();
  uint64_t start = h_.now();
  while (state() != TcpState::kClosed && h_.now() - start < 10 * kSecNs) {
    h_.Advance(tcb().rtx_deadline - h_.now());
    Out();
  }
  EXPECT_EQ(state(), TcpState::kClosed);
  EXPECT_GE(h_.now() - start, 1 * kSecNs);
  EXPECT_LT(h_.now() - start, 2 * kSecNs);
  EXPECT_EQ(tcb().error, ETIMEDOUT);
}

TEST_F(TimerTest, Rfc1122_Keepalive_ProbesIdleConnectionThenAborts) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kKeepIdle, 10), 0);
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kKeepIntvl, 2), 0);
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kKeepCnt, 3), 0);
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kKeepAlive, 1), 0);
  h_.Advance(10 * kSecNs - 1);
  ExpectSilence();
  h_.Advance(1);
  TcpView p = One();
  EXPECT_EQ(p.f.seq, snd_ - 1);  // RFC 1122: an old sequence number, no data
  EXPECT_EQ(p.f.payload_len, 0u);
  h_.Advance(2 * kSecNs);
  One();
  h_.Advance(2 * kSecNs);
  One();
  EXPECT_EQ(state(), TcpState::kEstablished);
  h_.Advance(2 * kSecNs);
  EXPECT_EQ(state(), TcpState::kClosed);
  EXPECT_EQ(tcb().error, ETIMEDOUT);
  EXPECT_EQ(h_.s().tcp_counters().keepalive_probes, 3u);
}

TEST_F(TimerTest, Rfc1122_Keepalive_AnsweredProbeKeepsConnectionAlive) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kKeepIdle, 10), 0);
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kKeepAlive, 1), 0);
  for (int i = 0; i < 5; ++i) {
    h_.Advance(10 * kSecNs);
    EXPECT_EQ(Out().size(), 1u);
    h_.Inject(PeerAck());  // the peer answers the probe
  }
  EXPECT_EQ(state(), TcpState::kEstablished);
}

TEST_F(TimerTest, Rfc1122_Keepalive_OffByDefault) {
  ActiveOpen();
  h_.Advance(3 * 3600 * kSecNs);
  ExpectSilence();
  EXPECT_EQ(state(), TcpState::kEstablished);
}

TEST_F(TimerTest, Linux_KeepaliveOptionRanges) {
  ActiveOpen();
  EXPECT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kKeepIdle, 0), EINVAL);
  EXPECT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kKeepCnt, 128), EINVAL);
  EXPECT_EQ(h_.s().TcpSetCongestion(flow_, "vegas"), ENOENT);
}

TEST_F(TimerTest, Linux_TcpInfo_ReportsRealState) {
  PeerOptions po;
  po.sack = true;
  po.timestamps = true;
  po.wscale = true;
  ActiveOpen(po);
  AppSend(3000);
  Out();
  tcp::TcpInfo info;
  ASSERT_EQ(h_.s().TcpGetInfo(flow_, &info), 0);
  EXPECT_EQ(info.tcpi_state, 1);  // TCP_ESTABLISHED
  EXPECT_EQ(info.tcpi_options, TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
  EXPECT_EQ(info.tcpi_snd_wscale, 7);
  EXPECT_EQ(info.tcpi_snd_mss, 1448u);
  EXPECT_EQ(info.tcpi_snd_cwnd, 10u);
  EXPECT_EQ(info.tcpi_unacked, 3u);
  EXPECT_EQ(info.tcpi_bytes_sent, 3000u);
  EXPECT_EQ(info.tcpi_data_segs_out, 3u);
  EXPECT_EQ(info.tcpi_pmtu, 1500u);
  EXPECT_EQ(info.tcpi_snd_wnd, 65535u);
}

}  // namespace
}  // namespace offload::testing
