// PSH and the MSG_MORE hold as Linux sets them (tcp_push, tcp_mark_push,
// tcp_data_snd_check, tcp_write_wakeup): what packetdrill's nagle scripts
// sendmsg_msg_more and sockopt_cork_nodelay check. RFC 9293 3.9.1 leaves
// the PSH policy to the implementation; Linux's is the reference.
#include "tests/daemon/tcp/tcp_fixture.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using net::kTcpPsh;

class PushTest : public TcpSegmentTest {
 protected:
  void NoDelay() { ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kNoDelay, 1), 0); }
  // The peer acknowledges `bytes` of our data.
  Frame AckOf(uint32_t bytes) { return Seg(kTcpAck, rcv_, snd_ + bytes); }
};

TEST_F(PushTest, Linux_SendEnd_IsPushed) {
  ActiveOpen();
  NoDelay();
  AppSend(100);
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 100u);
  EXPECT_TRUE(v.f.tcp_flags & kTcpPsh);
}

TEST_F(PushTest, Linux_MsgMore_AckReleasesThePartialSegmentWithoutPsh) {
  ActiveOpen();
  NoDelay();
  AppSend(1460 + 150, /*more=*/true);
  TcpView full = One();  // the full segment leaves; 150 bytes held
  EXPECT_EQ(full.f.payload_len, 1460u);
  EXPECT_FALSE(full.f.tcp_flags & kTcpPsh);
  h_.Inject(AckOf(1460));
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 150u);
  EXPECT_FALSE(v.f.tcp_flags & kTcpPsh);  // MSG_MORE data is never marked
}

TEST_F(PushTest, Linux_MsgMore_NextMoreSendHoldsAgainAfterTheAck) {
  ActiveOpen();
  NoDelay();
  AppSend(1460 + 150, /*more=*/true);
  One();
  h_.Inject(AckOf(1460));
  One();
  AppSend(10, /*more=*/true);
  ExpectSilence();  // a new MSG_MORE send corks its own push again
  AppSend(10, /*more=*/false);
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 20u);
  EXPECT_TRUE(v.f.tcp_flags & kTcpPsh);
}

TEST_F(PushTest, Linux_MsgMore_HoldTimerSendsWithPsh) {
  ActiveOpen();
  NoDelay();
  AppSend(40, /*more=*/true);
  ExpectSilence();
  h_.Advance(200 * kMsNs);
  TcpView v = One();  // tcp_write_wakeup marks PSH
  EXPECT_EQ(v.f.payload_len, 40u);
  EXPECT_TRUE(v.f.tcp_flags & kTcpPsh);
}

// A hold that ended (its data left) leaves no deadline behind: the next
// MSG_MORE hold gets its full 200 ms, released by an ACK before then.
TEST_F(PushTest, Linux_MsgMore_EarlierHoldsDeadlineDoesNotCutANewHold) {
  ActiveOpen();
  NoDelay();
  AppSend(100, /*more=*/true);  // hold 1 starts: deadline +200 ms
  ExpectSilence();
  h_.Advance(50 * kMsNs);
  AppSend(5);  // a plain send ends it
  EXPECT_EQ(One().f.payload_len, 105u);
  h_.Inject(AckOf(105));
  snd_ += 105;
  AppSend(1460 + 150, /*more=*/true);  // hold 2 (150 bytes)
  One();
  h_.Advance(160 * kMsNs);  // past hold 1's deadline, within hold 2's
  ExpectSilence();
  h_.Inject(AckOf(1460));
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 150u);
  EXPECT_FALSE(v.f.tcp_flags & kTcpPsh);
}

// The engine may see the ACK before it polls the ring for a MSG_MORE send
// the application made earlier: the ACK releases those bytes too, and the
// late notice of that send holds nothing back.
TEST_F(PushTest, Linux_MsgMore_AckReleasesBytesQueuedBeforeItNotYetPolled) {
  ActiveOpen();
  NoDelay();
  AppSend(1460 + 100, /*more=*/true);
  One();
  ASSERT_EQ(tx_->AppWrite("fifty", 5), 5u);  // queued, engine not told yet
  h_.Inject(AckOf(1460));
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 105u);
  EXPECT_FALSE(v.f.tcp_flags & kTcpPsh);
  ASSERT_EQ(h_.s().TcpSend(flow_, /*more=*/true), 0);  // the late notice
  ExpectSilence();
}

TEST_F(PushTest, Linux_MsgMore_NodelayPushSendsWithoutPsh) {
  ActiveOpen();
  AppSend(80, /*more=*/true);
  ExpectSilence();
  NoDelay();  // TCP_NAGLE_PUSH: out now, still unmarked
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 80u);
  EXPECT_FALSE(v.f.tcp_flags & kTcpPsh);
}

TEST_F(PushTest, Linux_Cork_UncorkSendsWithPsh) {
  ActiveOpen();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kCork, 1), 0);
  AppSend(80);  // a plain send under TCP_CORK is marked (tcp_push)
  ExpectSilence();
  ASSERT_EQ(h_.s().TcpSetOption(flow_, tcp::TcpOpt::kCork, 0), 0);
  TcpView v = One();
  EXPECT_EQ(v.f.payload_len, 80u);
  EXPECT_TRUE(v.f.tcp_flags & kTcpPsh);
}

}  // namespace
}  // namespace offload::testing
