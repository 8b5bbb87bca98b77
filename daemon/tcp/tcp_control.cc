// Control segments built outside the send path: SYN-cookie SYN,ACKs (RFC
// 4987 3.6) and resets (RFC 9293 3.10.7.1, 3.10.5).
#include <cstring>

#include "daemon/net/checksum.h"
#include "daemon/net/frame.h"
#include "daemon/tcp/syncookie.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using namespace internal;  // NOLINT
using net::kTcpAck;
using net::kTcpRst;
using net::kTcpSyn;

namespace {
constexpr size_t kHeadersLen = net::kEthHeaderLen + net::kIpv4HeaderLen + net::kTcpHeaderLen;
}  // namespace

size_t TcpBuildCookieSynAck(TcpContext* ctx, Tcb* scratch, const net::ParsedFrame& seg,
                            const TcpOptions& opts, uint32_t cookie, uint32_t ts_offset,
                            uint8_t* buf, size_t cap) {
  if (cap < net::kEthHeaderLen + ctx->cfg->mtu) return 0;
  // RFC 9293 3.10.7.2 SYN,ACK <SEQ=ISS><ACK=RCV.NXT> with ISS the cookie
  // (RFC 4987 3.6); the options are negotiated as for a queued SYN.
  scratch->state = TcpState::kSynReceived;
  scratch->iss = scratch->snd_una = scratch->snd_nxt = scratch->snd_max = cookie;
  scratch->irs = seg.seq;
  scratch->rcv_nxt = scratch->rcv_adv = seg.seq + 1;
  scratch->ts_offset = ts_offset;
  scratch->ooo.Clear();
  scratch->dsack_pending = false;
  internal::NegotiateOptions(ctx, scratch, opts);
  if (!scratch->ts_ok) {
    // Linux tcp_conn_request: without timestamps a cookie cannot carry the
    // window scale or SACK-permitted; offer neither.
    scratch->ws_ok = false;
    scratch->sack_ok = false;
  }
  scratch->rcv_wscale =
      scratch->ws_ok ? InitialWindowScale(*ctx->cfg, scratch->user_rcvbuf) : 0;
  OptionsToWrite o;
  PrepareOptions(ctx, scratch, kTcpSyn | kTcpAck, &o);
  if (o.timestamp) {
    o.tsval = SynCookieTsval(o.tsval, scratch->ws_ok ? opts.wscale : -1, scratch->sack_ok);
  }
  // The SYN,ACK window is never scaled (RFC 7323 2.2); as SelectWindow does
  // for a queued SYN: whole segments of at most 64 KiB.
  uint32_t field = 65535;
  if (scratch->adv_mss > 0) field = field / scratch->adv_mss * scratch->adv_mss;
  ctx->ctr->syncookies_sent++;
  return EmitSegment(ctx, scratch, buf, cookie, 0, kTcpSyn | kTcpAck, &o,
                     static_cast<int32_t>(field));
}

size_t BuildResetForTcb(TcpContext* ctx, Tcb* tcb, uint8_t* buf, size_t cap,
                        uint32_t seq, uint32_t ack, bool with_ack) {
  if (cap < kHeadersLen + IpHeaderLen(true) + kMaxOptionBytes) return 0;
  uint32_t saved = tcb->rcv_nxt;
  if (with_ack) tcb->rcv_nxt = ack;
  size_t n = EmitSegment(ctx, tcb, buf, seq, 0, with_ack ? (kTcpRst | kTcpAck) : kTcpRst);
  tcb->rcv_nxt = saved;
  ctx->ctr->resets_sent++;
  return n;
}

size_t BuildResetForSegment(const net::ParsedFrame& seg, const net::MacAddr& src_mac,
                            uint8_t* buf, size_t cap) {
  if (seg.tcp_flags & kTcpRst) return 0;  // RFC 9293 3.10.7.1: never answer a RST
  if (cap < net::kEthHeaderLen + net::kIpv6HeaderLen + net::kTcpHeaderLen) return 0;
  uint32_t seq, ack;
  uint8_t flags;
  if (seg.tcp_flags & kTcpAck) {
    seq = seg.ack;
    ack = 0;
    flags = kTcpRst;
  } else {
    seq = 0;
    ack = seg.seq + SegLen(seg);
    flags = kTcpRst | kTcpAck;
  }
  net::WriteEthHeader(buf, seg.src_mac, src_mac, seg.ipv6 ? net::kEthTypeIpv6 : net::kEthTypeIpv4);
  if (seg.ipv6) {
    net::Ipv6Fields ip;
    ip.src = seg.dst_ip6;
    ip.dst = seg.src_ip6;
    ip.next_header = net::kIpProtoTcp;
    net::WriteIpv6Header(buf + net::kEthHeaderLen, ip, net::kTcpHeaderLen);
  } else {
    net::Ipv4Fields ip;
    ip.src_ip = seg.dst_ip;
    ip.dst_ip = seg.src_ip;
    ip.protocol = net::kIpProtoTcp;
    ip.df = true;
    ip.id = 0;
    net::WriteIpv4Header(buf + net::kEthHeaderLen, ip, net::kTcpHeaderLen);
  }
  const size_t headers = net::kEthHeaderLen + IpHeaderLen(seg.ipv6) + net::kTcpHeaderLen;
  uint8_t* tcp = buf + headers - net::kTcpHeaderLen;
  auto* th = reinterpret_cast<net::TcpHeader*>(tcp);
  net::Store16(th->src_port, seg.dst_port);
  net::Store16(th->dst_port, seg.src_port);
  net::Store32(th->seq, seq);
  net::Store32(th->ack, ack);
  th->data_offset = 5 << 4;
  th->flags = flags;
  net::Store16(th->window, 0);
  net::Store16(th->urgent, 0);
  if (seg.ipv6) {
    net::FinishL4Checksum6(tcp, net::kTcpHeaderLen, net::kIpProtoTcp, seg.dst_ip6, seg.src_ip6);
    return headers;  // 74 bytes: above the Ethernet minimum
  }
  net::FinishL4Checksum(tcp, net::kTcpHeaderLen, net::kIpProtoTcp, seg.dst_ip, seg.src_ip);
  std::memset(buf + kHeadersLen, 0, net::kMinEthFrameLen - kHeadersLen);
  return net::kMinEthFrameLen;
}

}  // namespace offload::tcp
