#include "tests/daemon/tcp/tcp_fixture.h"

namespace offload::testing {

namespace {
tcp::OptionsToWrite SynOptions(const PeerOptions& po, bool ack, uint32_t tsval, uint32_t tsecr) {
  tcp::OptionsToWrite o;
  o.mss = po.mss;
  o.mss_value = po.mss_value;
  o.wscale = po.wscale;
  o.wscale_value = po.wscale_value;
  o.sack_permitted = po.sack;
  o.timestamp = po.timestamps;
  o.tsval = tsval;
  o.tsecr = ack ? tsecr : 0;
  return o;
}
}  // namespace

void TcpSegmentTest::ActiveOpen(const PeerOptions& po) {
  po_ = po;
  flow_ = h_.Connect(peer_port_, &tx_, &rx_);
  std::vector<TcpView> syn = Out();
  ASSERT_EQ(syn.size(), 1u);
  ASSERT_EQ(syn[0].f.tcp_flags, net::kTcpSyn);
  our_iss_ = syn[0].f.seq;
  our_port_ = syn[0].f.src_port;
  our_last_tsval_ = syn[0].opts.tsval;
  TcpSpec s;
  s.src = h_.Peer(peer_port_);
  s.dst = h_.Us(our_port_);
  s.seq = peer_iss_;
  s.ack = our_iss_ + 1;
  s.flags = net::kTcpSyn | net::kTcpAck;
  s.window = po.window;
  s.options = SynOptions(po, true, peer_tsval_, our_last_tsval_);
  h_.Inject(BuildTcp(s));
  peer_ts_ = po.timestamps;
  snd_ = our_iss_ + 1;
  rcv_ = peer_iss_ + 1;
  std::vector<TcpView> ack = Out();
  ASSERT_EQ(ack.size(), 1u);
  ASSERT_EQ(ack[0].f.tcp_flags, net::kTcpAck);
  ASSERT_EQ(state(), tcp::TcpState::kEstablished);
  FlowEvents();
}

void TcpSegmentTest::PassiveOpen(const PeerOptions& po) {
  po_ = po;
  ASSERT_EQ(h_.s().TcpListen(0, 80, 16, 1, &listener_), 0);
  our_port_ = 80;
  peer_port_ = 40000;
  TcpSpec s;
  s.src = h_.Peer(peer_port_);
  s.dst = h_.Us(our_port_);
  s.seq = peer_iss_;
  s.flags = net::kTcpSyn;
  s.window = po.window;
  s.options = SynOptions(po, false, peer_tsval_, 0);
  h_.Inject(BuildTcp(s));
  std::vector<TcpView> sa = Out();
  ASSERT_EQ(sa.size(), 1u);
  ASSERT_EQ(sa[0].f.tcp_flags, net::kTcpSyn | net::kTcpAck);
  ASSERT_EQ(sa[0].f.ack, peer_iss_ + 1);
  our_iss_ = sa[0].f.seq;
  peer_ts_ = po.timestamps;
  if (peer_ts_) our_last_tsval_ = sa[0].opts.tsval;
  snd_ = our_iss_ + 1;
  rcv_ = peer_iss_ + 1;
  if (po.handshake_rtt_ns != 0) h_.Advance(po.handshake_rtt_ns);
  h_.Inject(Seg(net::kTcpAck, rcv_, snd_));
  ExpectSilence();
  ASSERT_EQ(h_.s().TcpAccept(listener_, 2, &flow_), 0);
  const tcp::Tcb* t = h_.s().TcbForTest(flow_);
  ASSERT_NE(t, nullptr);
  tx_ = h_.provider().Find(t->tx.memory().base);
  rx_ = h_.provider().Find(t->rx.memory().base);
  ASSERT_EQ(state(), tcp::TcpState::kEstablished);
  h_.Events();
}

Frame TcpSegmentTest::Seg(uint8_t flags, uint32_t seq, uint32_t ack, const std::string& payload,
                          uint16_t window, bool with_ts) {
  TcpSpec s;
  s.src = h_.Peer(peer_port_);
  s.dst = h_.Us(our_port_);
  s.seq = seq;
  s.ack = ack;
  s.flags = flags;
  s.window = window == 0xffff ? po_.window : window;
  if (peer_ts_ && with_ts) {
    s.options.timestamp = true;
    s.options.tsval = ++peer_tsval_;
    s.options.tsecr = our_last_tsval_;
  }
  s.payload.assign(payload.begin(), payload.end());
  return BuildTcp(s);
}

Frame TcpSegmentTest::PeerData(const std::string& payload, uint8_t extra_flags) {
  Frame f = Seg(net::kTcpAck | extra_flags, rcv_, snd_, payload);
  rcv_ += payload.size() + ((extra_flags & net::kTcpFin) ? 1 : 0);
  return f;
}

Frame TcpSegmentTest::PeerAck(uint16_t window) { return Seg(net::kTcpAck, rcv_, snd_, "", window); }

std::vector<TcpView> TcpSegmentTest::Out() {
  std::vector<TcpView> out;
  for (const Frame& f : h_.Drain()) {
    TcpView v;
    EXPECT_TRUE(ParseTcp(f, &v));
    if (v.opts.has_timestamp) our_last_tsval_ = v.opts.tsval;
    out.push_back(std::move(v));
  }
  return out;
}

TcpView TcpSegmentTest::One() {
  std::vector<TcpView> v = Out();
  EXPECT_EQ(v.size(), 1u) << "expected exactly one segment";
  if (v.empty()) return TcpView{};
  return v[0];
}

void TcpSegmentTest::ExpectSilence() {
  std::vector<TcpView> v = Out();
  EXPECT_TRUE(v.empty()) << "unexpected " << v.size() << " segment(s), first: "
                         << FlagsToString(v[0].f.tcp_flags) << " seq=" << v[0].f.seq
                         << " ack=" << v[0].f.ack << " len=" << v[0].f.payload_len;
}

void TcpSegmentTest::AppSend(size_t n, bool more) {
  std::string s(n, 'x');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  AppSend(s, more);
}

void TcpSegmentTest::AppSend(const std::string& s, bool more) {
  ASSERT_EQ(tx_->AppWrite(s.data(), static_cast<uint32_t>(s.size())), s.size());
  ASSERT_EQ(h_.s().TcpSend(flow_, more), 0);
}

std::string TcpSegmentTest::AppRead() {
  std::string s(rx_->AppUsed(), '\0');
  rx_->AppRead(s.data(), static_cast<uint32_t>(s.size()));
  h_.s().TcpReceiveCredit(flow_);
  return s;
}

uint32_t TcpSegmentTest::FlowEvents(int* error) {
  uint32_t bits = 0;
  for (const stack::FlowEvent& e : h_.Events()) {
    if (e.flow == flow_) {
      bits |= e.events;
      if (error) *error = e.error;
    }
  }
  return bits;
}

}  // namespace offload::testing
