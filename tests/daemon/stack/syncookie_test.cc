// RFC 4987 3.6 SYN cookies at the stack level: engaged when the listener's
// SYN queue (its backlog) is full, stateless SYN,ACK, the completing ACK
// creates the connection with the options the cookie and TSval carried.
#include "daemon/tcp/syncookie.h"
#include "tests/daemon/tcp/tcp_fixture.h"

namespace offload::testing {
namespace {

using net::kTcpAck;
using net::kTcpRst;
using net::kTcpSyn;

class SynCookieTest : public TcpSegmentTest {
 protected:
  Frame Syn(uint16_t sport, uint32_t seq, bool ts) {
    TcpSpec s;
    s.src = h_.Peer(sport);
    s.dst = h_.Us(80);
    s.seq = seq;
    s.flags = kTcpSyn;
    s.options.mss = true;
    s.options.mss_value = 1460;
    s.options.sack_permitted = ts;
    s.options.wscale = ts;
    s.options.wscale_value = 7;
    s.options.timestamp = ts;
    s.options.tsval = 5000;
    return BuildTcp(s);
  }
  Frame Ack(uint16_t sport, uint32_t seq, uint32_t ack, uint32_t tsecr, bool ts) {
    TcpSpec s;
    s.src = h_.Peer(sport);
    s.dst = h_.Us(80);
    s.seq = seq;
    s.ack = ack;
    s.window = 100;
    s.options.timestamp = ts;
    s.options.tsval = 5001;
    s.options.tsecr = tsecr;
    return BuildTcp(s);
  }
  // Listens with backlog 1 and leaves one half-open child (the queue full).
  void FillSynQueue() {
    ASSERT_EQ(h_.s().TcpListen(0, 80, 1, 1, &listener_), 0);
    h_.Inject(Syn(1000, 100, false));
    ASSERT_EQ(One().f.tcp_flags, kTcpSyn | kTcpAck);
    ASSERT_EQ(h_.s().ActiveConnections(), 2u);
  }
};

TEST_F(SynCookieTest, Rfc4987_SynQueueFull_AnswersWithCookieAndKeepsNoState) {
  FillSynQueue();
  h_.Inject(Syn(2000, 7000, true));
  TcpView sa = One();
  EXPECT_EQ(sa.f.tcp_flags, kTcpSyn | kTcpAck);
  EXPECT_EQ(sa.f.ack, 7001u);
  EXPECT_EQ(h_.s().ActiveConnections(), 2u);  // no child for the cookie
  EXPECT_EQ(h_.s().tcp_counters().syncookies_sent, 1u);
  // Linux cookie_init_timestamp: wscale 7 and SACK in the TSval's low bits.
  ASSERT_TRUE(sa.opts.has_timestamp);
  EXPECT_EQ(sa.opts.tsval & 0x3f, 7u | 0x10u);
  EXPECT_TRUE(sa.opts.has_wscale);
  EXPECT_TRUE(sa.opts.sack_permitted);
}

TEST_F(SynCookieTest, Rfc4987_ValidCookieAck_CreatesAcceptableConnection) {
  FillSynQueue();
  h_.Inject(Syn(2000, 7000, true));
  TcpView sa = One();
  h_.Inject(Ack(2000, 7001, sa.f.seq + 1, sa.opts.tsval, true));
  EXPECT_EQ(h_.s().tcp_counters().syncookies_recv, 1u);
  std::vector<stack::FlowEvent> ev = h_.Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_TRUE(ev[0].events & tcp::kEventAcceptable);
  stack::FlowId child;
  ASSERT_EQ(h_.s().TcpAccept(listener_, 9, &child), 0);
  const tcp::Tcb& c = *h_.s().TcbForTest(child);
  EXPECT_EQ(c.state, tcp::TcpState::kEstablished);
  EXPECT_TRUE(c.ws_ok);
  EXPECT_EQ(c.snd_wscale, 7);
  EXPECT_TRUE(c.sack_ok);
  EXPECT_TRUE(c.ts_ok);
  EXPECT_EQ(c.snd_wnd, 100u << 7);
  EXPECT_EQ(c.peer_mss, 1460);
}

TEST_F(SynCookieTest, Rfc4987_ForgedCookieAck_IsAnsweredWithReset) {
  FillSynQueue();
  h_.Inject(Syn(2000, 7000, false));
  TcpView sa = One();
  EXPECT_FALSE(sa.opts.has_wscale);  // no timestamps: no room for the options
  h_.Inject(Ack(2000, 7001, sa.f.seq + 12345, 0, false));
  TcpView r = One();
  EXPECT_EQ(r.f.tcp_flags, kTcpRst);
  EXPECT_EQ(h_.s().tcp_counters().syncookies_failed, 1u);
  EXPECT_EQ(h_.s().ActiveConnections(), 2u);
}

TEST_F(SynCookieTest, Linux_Syncookies0_QueueFullDropsTheSyn) {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.tcp.syncookies = 0;
  StackUnderTest h(cfg);
  std::swap(h_, h);
  FillSynQueue();
  h_.Inject(Syn(2000, 7000, true));
  ExpectSilence();
  EXPECT_EQ(h_.s().counters().listen_drops, 1u);
}

TEST(SynCookieEncoding, Rfc4987_CookieExpiresAfterTwoMinutes) {
  const tcp::SecretKey key{1, 2};
  const tcp::CookieTuple t{1, 80, 2, 4000};
  uint16_t mss = 0;
  const uint64_t now = 1000 * tcp::kSec;
  const uint32_t c = tcp::SynCookieIsn(key, t, 55, 1400, now, &mss);
  EXPECT_EQ(mss, 1300);  // the largest table value not above 1400
  EXPECT_EQ(tcp::SynCookieCheck(key, t, 55, c, now + 119 * tcp::kSec), 1300);
  EXPECT_EQ(tcp::SynCookieCheck(key, t, 55, c, now + 200 * tcp::kSec), 0);
  EXPECT_EQ(tcp::SynCookieCheck(key, t, 56, c, now), 0);  // another peer ISN
}

}  // namespace
}  // namespace offload::testing
