// Building one TCP segment: the window field (RFC 9293 3.8.6 window
// management and receiver SWS avoidance), the option block (RFC 7323
// timestamps, RFC 2018/2883 SACK and D-SACK blocks) and the Ethernet/IP/TCP
// headers and checksum around payload copied from the TX ring. What to send
// and when is tcp_output.cc.
#include <algorithm>

#include "daemon/net/checksum.h"
#include "daemon/net/frame.h"
#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using namespace internal;  // NOLINT
using net::kTcpAck;
using net::kTcpRst;
using net::kTcpSyn;

namespace {

// Chooses the window field for an outgoing segment and records the advertised
// right edge. RFC 9293 3.8.6.2.2 (receiver SWS avoidance: move the right edge
// only by min(RCV.BUFF / 2, MSS) or more) and 3.8.6 (never shrink the window).
uint16_t SelectWindow(Tcb* tcb, bool syn) {
  const uint32_t ring_free = tcb->rx.attached() ? tcb->rx.free() : 0;
  uint32_t free = ring_free;
  // Linux __tcp_select_window: the free space offered is capped by
  // rcv_ssthresh, which starts at the SYN's window and grows with the data
  // received (tcp_receive.cc), so the window opens as the peer sends.
  if (!syn && tcb->rcv_ssthresh != 0) free = std::min(free, tcb->rcv_ssthresh);
  uint32_t cur = ReceiveWindow(tcb);
  uint32_t wnd = cur;
  uint32_t thresh = std::min<uint32_t>(tcb->rx.capacity() / 2, tcb->adv_mss);
  // While holes exist the right edge stays put, so the duplicate ACKs we
  // send keep an unchanged window and count as such at the sender (RFC 5681
  // 2: a window update is not a duplicate ACK).
  if (free > cur && free - cur >= thresh && tcb->ooo.empty()) wnd = free;
  uint32_t field;
  if (syn) {
    // RFC 7323 2.2: the window field of a SYN is never scaled. Like Linux
    // (tcp_select_initial_window), offer a whole number of segments:
    // 65535 -> 64240 with a 1460-byte MSS.
    field = std::min<uint32_t>(wnd, 65535);
    if (field > tcb->adv_mss) field = field / tcb->adv_mss * tcb->adv_mss;
    wnd = field;
    tcb->rcv_ssthresh = std::max(tcb->rcv_ssthresh, wnd);
  } else {
    uint8_t ws = tcb->rcv_wscale;
    field = wnd >> ws;
    // Avoid shrinking the window through scaling granularity (round the
    // promised window up), but never offer more than the ring can hold: an
    // offer the buffer cannot honour would make the sender retransmit into a
    // full buffer until it times out.
    uint32_t up = (cur + (1u << ws) - 1) >> ws;
    if ((field << ws) < cur && (uint64_t{up} << ws) <= ring_free) field = up;
    field = std::min<uint32_t>(field, 65535);
    wnd = field << ws;
  }
  if (SeqGt(tcb->rcv_nxt + wnd, tcb->rcv_adv)) tcb->rcv_adv = tcb->rcv_nxt + wnd;
  tcb->rcv_wnd = wnd;
  return static_cast<uint16_t>(field);
}

// RFC 2018 4: D-SACK first (RFC 2883), then the block holding the most
// recently received segment, then other recent blocks, then the rest.
uint8_t BuildSackBlocks(TcpContext* ctx, Tcb* tcb, SackBlock* out) {
  uint8_t n = 0;
  if (tcb->dsack_pending) {
    out[n++] = tcb->dsack;
    ctx->ctr->dsacks_sent++;
  }
  auto add = [&](uint32_t s, uint32_t e) {
    for (uint8_t i = 0; i < n; ++i) {
      if (out[i].start == s && out[i].end == e) return;
    }
    if (n < kMaxSackBlocks) out[n++] = SackBlock{s, e};
  };
  uint8_t kept = 0;
  for (uint8_t i = 0; i < tcb->num_recent_sack; ++i) {
    int idx = tcb->ooo.Find(tcb->recent_sack[i]);
    if (idx < 0) continue;
    tcb->recent_sack[kept++] = tcb->recent_sack[i];
    add(tcb->ooo[idx].start, tcb->ooo[idx].end);
  }
  tcb->num_recent_sack = kept;
  for (size_t i = tcb->ooo.size(); i > 0 && n < kMaxSackBlocks; --i) {
    add(tcb->ooo[i - 1].start, tcb->ooo[i - 1].end);
  }
  return n;
}

}  // namespace

namespace internal {

void PrepareOptions(TcpContext* ctx, Tcb* tcb, uint8_t flags, OptionsToWrite* out) {
  const TcpConfig& cfg = *ctx->cfg;
  const bool syn = (flags & kTcpSyn) != 0;
  const bool active_syn = syn && !(flags & kTcpAck);
  OptionsToWrite& o = *out;
  o = OptionsToWrite{};
  if (syn) {
    o.mss = true;
    o.mss_value = tcb->adv_mss;
    o.wscale = cfg.window_scaling && (active_syn || tcb->ws_ok);
    o.wscale_value = tcb->rcv_wscale;
    o.sack_permitted = cfg.sack && (active_syn || tcb->sack_ok);
    o.timestamp = cfg.timestamps && (active_syn || tcb->ts_ok);
  } else {
    o.timestamp = tcb->ts_ok;
  }
  if (o.timestamp) {
    o.tsval = TsNow(ctx, tcb);
    o.tsecr = (flags & kTcpAck) ? tcb->ts_recent : 0;
  }
  if (!syn && tcb->sack_ok && (flags & kTcpAck) && !(flags & kTcpRst) &&
      (tcb->dsack_pending || !tcb->ooo.empty())) {
    o.num_sack = BuildSackBlocks(ctx, tcb, o.sack);
  }
}

}  // namespace internal

namespace internal {

size_t EmitSegment(TcpContext* ctx, Tcb* tcb, uint8_t* buf, uint32_t seq,
                   uint32_t len, uint8_t flags, const OptionsToWrite* prebuilt,
                   int32_t window_field) {
  const bool syn = (flags & kTcpSyn) != 0;
  OptionsToWrite local;
  if (prebuilt == nullptr) PrepareOptions(ctx, tcb, flags, &local);
  const OptionsToWrite& o = prebuilt ? *prebuilt : local;
  const size_t ip_len = IpHeaderLen(tcb->ipv6);
  uint8_t* tcp = buf + net::kEthHeaderLen + ip_len;
  size_t opt_len = WriteTcpOptions(o, tcp + net::kTcpHeaderLen);
  size_t tcp_len = net::kTcpHeaderLen + opt_len + len;

  net::WriteEthHeader(buf, tcb->remote_mac, tcb->local_mac,
                      tcb->ipv6 ? net::kEthTypeIpv6 : net::kEthTypeIpv4);
  if (tcb->ipv6) {
    net::Ipv6Fields ip;
    ip.src = tcb->local_ip6;
    ip.dst = tcb->remote_ip6;
    ip.next_header = net::kIpProtoTcp;
    net::WriteIpv6Header(buf + net::kEthHeaderLen, ip, static_cast<uint16_t>(tcp_len));
  } else {
    net::Ipv4Fields ip;
    ip.src_ip = tcb->local_ip;
    ip.dst_ip = tcb->remote_ip;
    ip.protocol = net::kIpProtoTcp;
    ip.id = tcb->ip_id++;
    ip.df = true;  // RFC 1191 path MTU discovery, as Linux
    net::WriteIpv4Header(buf + net::kEthHeaderLen, ip, static_cast<uint16_t>(tcp_len));
  }

  auto* th = reinterpret_cast<net::TcpHeader*>(tcp);
  net::Store16(th->src_port, tcb->local_port);
  net::Store16(th->dst_port, tcb->remote_port);
  net::Store32(th->seq, seq);
  net::Store32(th->ack, (flags & kTcpAck) ? tcb->rcv_nxt : 0);
  th->data_offset = static_cast<uint8_t>(((net::kTcpHeaderLen + opt_len) / 4) << 4);
  th->flags = flags;
  net::Store16(th->window, (flags & kTcpRst)     ? 0
                           : window_field >= 0 ? static_cast<uint16_t>(window_field)
                                               : SelectWindow(tcb, syn));
  net::Store16(th->urgent, 0);
  if (len > 0) {
    tcb->tx.CopyOut(seq - tcb->tx_seq0, tcp + net::kTcpHeaderLen + opt_len, len);
  }
  if (tcb->ipv6) {
    net::FinishL4Checksum6(tcp, static_cast<uint16_t>(tcp_len), net::kIpProtoTcp,
                           tcb->local_ip6, tcb->remote_ip6);
  } else {
    net::FinishL4Checksum(tcp, static_cast<uint16_t>(tcp_len), net::kIpProtoTcp,
                          tcb->local_ip, tcb->remote_ip);
  }
  if (flags & kTcpAck) {
    tcb->last_ack_sent = tcb->rcv_nxt;
    tcb->ack_now = false;
    tcb->delack_deadline = 0;
    if (o.num_sack > 0) tcb->dsack_pending = false;
  }
  tcb->segs_out++;
  ctx->ctr->segs_out++;
  return net::kEthHeaderLen + ip_len + tcp_len;
}

}  // namespace internal

}  // namespace offload::tcp
