#include "tests/fuzz/tcp/tcp_fuzz_env.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "daemon/net/frame.h"
#include "daemon/tcp/seq.h"
#include "tests/testing/owned_ring.h"

namespace offload::fuzz {
namespace {

const net::MacAddr kUs = {{2, 0, 0, 0, 0, 1}};
const net::MacAddr kPeer = {{2, 0, 0, 0, 0, 2}};
constexpr uint32_t kUsIp = 0xc6120001;    // 198.18.0.1
constexpr uint32_t kPeerIp = 0xc6120002;  // 198.18.0.2

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

TcpFuzzEnv::TcpFuzzEnv() : frame_(2048), out_(8 * 2048) {
  stack::StackConfig cfg;
  cfg.local_mac = kUs;
  cfg.local_ip = kUsIp;
  cfg.max_concurrency = 16;
  cfg.max_udp_endpoints = 2;
  cfg.max_num_buffers = 64;
  cfg.rx_l4_checksum = net::L4Checksum::kVerify;
  cfg.isn_key = tcp::SecretKey{1, 2};
  cfg.tcp.challenge_ack_limit = 1u << 30;
  stack_ = std::move(*stack::Stack::Create(cfg, this, now_));
  stack_->SeedNeighbor(kPeerIp, kPeer, true);
  stack_->TcpListen(0, 80, 4, 1, &listener_);
  stack_->TcpConnect(kPeerIp, 443, 0, tx_.memory(), rx_.memory(), 2, &conn_);
  Drain();
  const tcp::Tcb* t = conn();
  our_port_ = t->local_port;
  // Complete the handshake: SYN,ACK with every option.
  uint8_t opts[] = {2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7};
  Segment(false, 443, 1000, t->iss + 1, net::kTcpSyn | net::kTcpAck, 65535, opts, sizeof(opts),
          nullptr, 0);
  Drain();
}

bool TcpFuzzEnv::AllocateRings(uint64_t, tcp::RingMemory* tx, tcp::RingMemory* rx) {
  child_rings_.push_back(std::make_unique<testing::OwnedRing>(1 << 12));
  *tx = child_rings_.back()->memory();
  child_rings_.push_back(std::make_unique<testing::OwnedRing>(1 << 12));
  *rx = child_rings_.back()->memory();
  return true;
}

void TcpFuzzEnv::Segment(bool to_listener, uint16_t sport, uint32_t seq, uint32_t ack,
                         uint8_t flags, uint16_t window, const uint8_t* opts, size_t opt_len,
                         const uint8_t* payload, size_t len) {
  opt_len = std::min<size_t>(opt_len, 40) & ~size_t{3};
  len = std::min<size_t>(len, 1400);
  size_t tcp_len = net::kTcpHeaderLen + opt_len + len;
  uint8_t* f = frame_.data();
  net::WriteEthHeader(f, kUs, kPeer, net::kEthTypeIpv4);
  net::Ipv4Fields ip;
  ip.src_ip = kPeerIp;
  ip.dst_ip = kUsIp;
  ip.protocol = net::kIpProtoTcp;
  net::WriteIpv4Header(f + 14, ip, static_cast<uint16_t>(tcp_len));
  uint8_t* t = f + 34;
  auto* th = reinterpret_cast<net::TcpHeader*>(t);
  net::Store16(th->src_port, to_listener ? sport : 443);
  net::Store16(th->dst_port, to_listener ? 80 : our_port_);
  net::Store32(th->seq, seq);
  net::Store32(th->ack, ack);
  th->data_offset = static_cast<uint8_t>(((20 + opt_len) / 4) << 4);
  th->flags = flags;
  net::Store16(th->window, window);
  net::Store16(th->urgent, 0);
  if (opt_len) std::memcpy(t + 20, opts, opt_len);
  if (len) std::memcpy(t + 20 + opt_len, payload, len);
  net::FinishL4Checksum(t, static_cast<uint16_t>(tcp_len), net::kIpProtoTcp, kPeerIp, kUsIp);
  stack::RxFrame rx{f, static_cast<uint32_t>(34 + tcp_len)};
  stack_->ProcessRx(&rx, 1, now_);
}

void TcpFuzzEnv::Advance(uint64_t ns) {
  now_ += ns;
  stack_->OnTimer(now_);
}

void TcpFuzzEnv::Drain() {
  stack::TxFrame tx[8];
  for (int round = 0; round < 64; ++round) {
    for (int i = 0; i < 8; ++i) tx[i] = stack::TxFrame{out_.data() + i * 2048, 2048, 0};
    size_t n = stack_->PollTx(tx, 8, now_);
    for (size_t i = 0; i < n; ++i) {
      net::ParsedFrame p;
      // Everything the stack emits must be a valid frame of at most the MTU.
      net::ParseStatus st = net::ParseFrame(tx[i].data, tx[i].len, net::L4Checksum::kVerify, &p);
      if (st != net::ParseStatus::kOk || tx[i].len > 14 + 1500) {
        std::fprintf(stderr, "bad output frame: %s len=%u:", net::ParseStatusName(st), tx[i].len);
        for (uint32_t k = 0; k < tx[i].len; ++k) std::fprintf(stderr, " %02x", tx[i].data[k]);
        std::fprintf(stderr, "\n");
        std::abort();
      }
    }
    if (n < 8) break;
  }
  stack::FlowEvent ev[16];
  while (stack_->PollEvents(ev, 16) > 0) {
  }
}

void TcpFuzzEnv::CheckInvariants() {
  const tcp::Tcb* t = conn();
  if (t == nullptr || t->state == tcp::TcpState::kClosed) return;
  using tcp::SeqLeq;
  Check(SeqLeq(t->snd_una, t->snd_nxt) || t->state == tcp::TcpState::kSynSent);
  Check(SeqLeq(t->snd_nxt, t->snd_max));
  Check(t->rx.used() <= t->rx.capacity());
  Check(t->tx.size() <= t->tx.capacity());
  for (size_t i = 0; i < t->ooo.size(); ++i) {
    Check(tcp::SeqGt(t->ooo[i].start, t->rcv_nxt));
    Check(t->ooo[i].end - t->rcv_nxt <= t->rx.free());
  }
  for (size_t i = 0; i < t->scoreboard.size(); ++i) {
    Check(tcp::SeqGeq(t->scoreboard[i].start, t->snd_una));
    Check(SeqLeq(t->scoreboard[i].end, t->snd_max));
  }
}

}  // namespace offload::fuzz
