// TCP segment arrival (RFC 9293 3.10.7), with RFC 5961 (blind attacks),
// RFC 7323 (PAWS, timestamps), RFC 2018/2883 (SACK), RFC 5681/6582/6675
// (loss recovery) and RFC 6298 (RTT). Structure follows the RFC's steps.
// The seventh and eighth steps (segment text, FIN) are tcp_receive.cc.
#include <errno.h>

#include <algorithm>

#include "daemon/tcp/sack.h"
#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using net::kTcpAck;
using net::kTcpFin;
using net::kTcpRst;
using net::kTcpSyn;


using namespace internal;  // NOLINT: file-local use of the shared helpers

namespace internal {

void NegotiateOptions(TcpContext* ctx, Tcb* tcb, const TcpOptions& o) {
  const TcpConfig& cfg = *ctx->cfg;
  tcb->ws_ok = cfg.window_scaling && o.has_wscale;
  tcb->snd_wscale = tcb->ws_ok ? o.wscale : 0;
  if (!tcb->ws_ok) tcb->rcv_wscale = 0;
  tcb->ts_ok = cfg.timestamps && o.has_timestamp;
  if (tcb->ts_ok) {
    tcb->ts_recent = o.tsval;
    tcb->ts_recent_stamp_ns = ctx->now_ns;
  }
  tcb->sack_ok = cfg.sack && o.sack_permitted;
  tcb->peer_mss = o.has_mss ? o.mss : kDefaultMss;
  uint32_t mss = std::min<uint32_t>(tcb->peer_mss, cfg.mtu - 20u - IpHeaderLen(tcb->ipv6));
  if (cfg.mss_clamp != 0) mss = std::min<uint32_t>(mss, cfg.mss_clamp);
  if (tcb->user_mss != 0) mss = std::min<uint32_t>(mss, tcb->user_mss);
  // Linux mss_cache: the MSS less the per-segment option overhead.
  if (tcb->ts_ok) mss -= 12;
  tcb->snd_mss = static_cast<uint16_t>(std::max<uint32_t>(mss, 64));
}

void InitCongestionWindow(TcpContext* ctx, Tcb* tcb) {
  // RFC 6928 (Linux TCP_INIT_CWND = 10); RFC 5681 3.1 / Linux: 1 segment if
  // the handshake needed more than one retransmission.
  uint32_t segs = tcb->total_retrans > 1 ? 1 : ctx->cfg->initial_cwnd_segments;
  tcb->snd_cwnd = segs * tcb->snd_mss;
  tcb->snd_cwnd_cnt = 0;
  // Linux enters quick-ACK mode at connection start.
  uint32_t q = tcb->rx.capacity() / (2u * std::max<uint16_t>(tcb->adv_mss, 1));
  tcb->quickack = std::clamp<uint32_t>(q, 2, ctx->cfg->quickack_segments);
}

}  // namespace internal

namespace {

void SynSentInput(TcpContext* ctx, Tcb* tcb, const net::ParsedFrame& seg,
                  const TcpOptions& opts) {
  const uint8_t f = seg.tcp_flags;
  // RFC 9293 3.10.7.3 first: check the ACK bit.
  if (f & kTcpAck) {
    if (SeqLeq(seg.ack, tcb->iss) || SeqGt(seg.ack, tcb->snd_max)) {
      if (!(f & kTcpRst)) ctx->host->SendReset(tcb, seg.ack, 0, false);
      ctx->ctr->ack_too_new++;
      return;
    }
  }
  // Second: the RST bit (RFC 5961 3.2 for SYN-SENT: only with an acceptable ACK).
  if (f & kTcpRst) {
    if (f & kTcpAck) {
      ctx->ctr->resets_received++;
      CloseConnection(ctx, tcb, ECONNREFUSED);
    }
    return;
  }
  // Fourth: the SYN bit.
  if (!(f & kTcpSyn)) return;
  tcb->irs = seg.seq;
  tcb->rcv_nxt = seg.seq + 1;
  tcb->last_ack_sent = tcb->rcv_nxt;
  // The window offered in our SYN now has a left edge.
  tcb->rcv_adv = tcb->rcv_nxt + tcb->rcv_wnd;
  NegotiateOptions(ctx, tcb, opts);
  if (f & kTcpAck) {
    tcb->snd_una = seg.ack;
    tcb->tx_seq0 = tcb->iss + 1;
    tcb->snd_wnd = seg.window;  // RFC 7323 2.2: never scaled on a SYN
    tcb->max_snd_wnd = tcb->snd_wnd;
    tcb->snd_wl1 = seg.seq;
    tcb->snd_wl2 = seg.ack;
    if (tcb->rtt_timing && tcb->retransmits == 0) {
      UpdateRto(ctx, tcb, static_cast<int64_t>((ctx->now_ns - tcb->rtt_start_ns) / 1000));
    }
    tcb->rtt_timing = false;
    tcb->backoff = 0;
    tcb->retransmits = 0;
    tcb->rtx_deadline = 0;
    InitCongestionWindow(ctx, tcb);
    EnterState(ctx, tcb, TcpState::kEstablished);
    tcb->last_rx_ns = ctx->now_ns;
    if (tcb->keepalive) {
      tcb->keepalive_deadline = ctx->now_ns + (tcb->keepidle_ns ? tcb->keepidle_ns
                                                                : ctx->cfg->keepalive_time_ns);
    }
    TcpArmTimer(ctx, tcb);
    ctx->host->Notify(tcb, kEventConnected | kEventWritable);
    // ACK the SYN (and any data or FIN carried with it).
    ProcessData(ctx, tcb, tcb->rcv_nxt, seg.payload, seg.payload_len,
                (f & kTcpFin) != 0);
    ScheduleAck(ctx, tcb, true);
    ctx->host->ScheduleOutput(tcb);
    return;
  }
  // Simultaneous open: SYN-RECEIVED, send <SEQ=ISS><ACK=RCV.NXT><SYN,ACK>.
  tcb->snd_wnd = seg.window;
  tcb->max_snd_wnd = tcb->snd_wnd;
  tcb->snd_wl1 = seg.seq;
  tcb->snd_wl2 = tcb->iss;
  EnterState(ctx, tcb, TcpState::kSynReceived);
  tcb->snd_nxt = tcb->iss;  // the next output is SYN,ACK with our ISS
  ctx->host->ScheduleOutput(tcb);
}

}  // namespace

void TcpAcceptSyn(TcpContext* ctx, Tcb* child, const net::ParsedFrame& seg,
                  const TcpOptions& opts, uint32_t iss, uint32_t ts_offset) {
  // RFC 9293 3.10.7.2 LISTEN, third: SYN.
  child->passive = true;
  child->iss = iss;
  child->ts_offset = ts_offset;
  child->snd_una = child->snd_nxt = child->snd_max = iss;
  child->tx_seq0 = iss + 1;
  child->recover = iss;
  child->high_rxt = iss;
  child->rack_lost_end = iss;
  child->snd_sml = iss;
  child->irs = seg.seq;
  child->rcv_nxt = seg.seq + 1;
  child->rcv_adv = child->rcv_nxt;
  child->last_ack_sent = child->rcv_nxt;
  NegotiateOptions(ctx, child, opts);
  child->snd_wnd = seg.window;  // unscaled on SYN
  child->max_snd_wnd = child->snd_wnd;
  child->snd_wl1 = seg.seq;
  child->snd_wl2 = iss;
  child->last_rx_ns = ctx->now_ns;
  child->una_since_ns = ctx->now_ns;  // the SYN,ACK is outstanding from now
  ctx->ctr->passive_opens++;
  EnterState(ctx, child, TcpState::kSynReceived);
  ctx->host->ScheduleOutput(child);
}

void TcpInput(TcpContext* ctx, Tcb* tcb, const net::ParsedFrame& seg) {
  ctx->ctr->segs_in++;
  tcb->segs_in++;
  const uint8_t f = seg.tcp_flags;
  TcpOptions opts;
  ParseTcpOptions(seg.tcp_options, seg.tcp_options_len, (f & kTcpSyn) != 0, &opts);

  if (tcb->state == TcpState::kSynSent) {
    SynSentInput(ctx, tcb, seg, opts);
    return;
  }
  if (tcb->state == TcpState::kClosed || tcb->state == TcpState::kListen) return;
  tcb->last_rx_ns = ctx->now_ns;
  if (tcb->keepalive_sent > 0) {
    // The peer answered a keep-alive probe: idle time starts over.
    tcb->keepalive_sent = 0;
    if (tcb->keepalive) {
      tcb->keepalive_deadline =
          ctx->now_ns + (tcb->keepidle_ns ? tcb->keepidle_ns : ctx->cfg->keepalive_time_ns);
      TcpArmTimer(ctx, tcb);
    }
  }

  // RFC 7323 5.3 R1: PAWS. A segment whose TSval is older than TS.Recent is
  // a duplicate: ACK it (unless RST) and drop. TS.Recent older than 24 days is
  // invalid (R3).
  if (tcb->ts_ok && opts.has_timestamp && SeqLt(opts.tsval, tcb->ts_recent) &&
      ctx->now_ns - tcb->ts_recent_stamp_ns < 24ull * 86400 * kSec) {
    if (!(f & kTcpRst)) {
      ctx->ctr->paws_rejected++;
      // Linux: a duplicate ACK, rate-limited unless the segment has data.
      if (SegLen(seg) > 0 || !OowRateLimited(ctx, tcb)) ScheduleAck(ctx, tcb, true);
      return;
    }
  }

  // RFC 6191 / Linux tcp_timewait_state_process: a new SYN in TIME-WAIT with
  // a higher sequence number (or newer timestamp) may reopen the connection.
  // The TIME-WAIT TCB is closed; the host sees CLOSED and passes the SYN on
  // to the listener.
  if (tcb->state == TcpState::kTimeWait && (f & kTcpSyn) && !(f & (kTcpAck | kTcpRst)) &&
      (SeqGt(seg.seq, tcb->rcv_nxt) ||
       (tcb->ts_ok && opts.has_timestamp && SeqGt(opts.tsval, tcb->ts_recent)))) {
    CloseConnection(ctx, tcb, 0);
    return;
  }

  // RFC 9293 3.10.7.4 first: sequence number check (acceptability table).
  const uint32_t seg_len = SegLen(seg);
  const uint32_t wnd = ReceiveWindow(tcb);
  uint32_t seq = seg.seq;
  bool acceptable;
  if (seg_len == 0) {
    acceptable = wnd == 0 ? seq == tcb->rcv_nxt
                          : SeqInRange(seq, tcb->rcv_nxt, tcb->rcv_nxt + wnd);
  } else if (wnd == 0) {
    acceptable = false;
  } else {
    acceptable = SeqInRange(seq, tcb->rcv_nxt, tcb->rcv_nxt + wnd) ||
                 SeqInRange(seq + seg_len - 1, tcb->rcv_nxt, tcb->rcv_nxt + wnd);
  }
  bool zero_window_data = false;
  if (!acceptable && wnd == 0 && seq == tcb->rcv_nxt) {
    // RFC 9293 3.10.7.4: with a zero window, still process valid ACKs and
    // RSTs; the text is dropped.
    acceptable = true;
    zero_window_data = true;
  }
  if (!acceptable) {
    // RFC 9293 3.10.7.4 first (SYN in a synchronized state is handled by the
    // RFC 5961 4 challenge ACK below, which also answers this way).
    ctx->ctr->out_of_window++;
    if (tcb->state == TcpState::kTimeWait && (f & kTcpFin) && !(f & kTcpRst)) {
      // RFC 9293 3.10.7.4 eighth (TIME-WAIT): a retransmitted FIN restarts
      // the 2 MSL timeout (and is acknowledged below).
      EnterTimeWait(ctx, tcb);
    }
    if (f & kTcpSyn) {
      // A SYN outside the window in a synchronized state: RFC 5961 4.2. In
      // SYN-RECEIVED a retransmitted SYN gets the SYN,ACK again (Linux
      // tcp_check_req, rate-limited the same way).
      if (tcb->state != TcpState::kSynReceived) {
        SendChallengeAck(ctx, tcb);
      } else if (!OowRateLimited(ctx, tcb)) {
        ScheduleAck(ctx, tcb, true);
      }
      return;
    }
    if (!(f & kTcpRst)) {
      if (seg.payload_len > 0 && SeqLeq(seq + seg.payload_len, tcb->rcv_nxt)) {
        ctx->ctr->duplicate_segments++;
        if (tcb->sack_ok && ctx->cfg->dsack) {
          // RFC 2883 4: report the duplicate in a D-SACK block.
          tcb->dsack_pending = true;
          tcb->dsack = SackBlock{seq, seq + seg.payload_len};
        }
      }
      // Linux tcp_oow_rate_limited: segments occupying sequence space are
      // always acknowledged; pure ACKs at most once per 500 ms.
      if (seg_len > 0 || !OowRateLimited(ctx, tcb)) ScheduleAck(ctx, tcb, true);
    }
    return;
  }

  // Second: the RST bit (RFC 5961 3.2).
  if (f & kTcpRst) {
    if (seq != tcb->rcv_nxt) {
      // In the window but not exact: challenge ACK (RFC 5961 3.2 item 3).
      SendChallengeAck(ctx, tcb);
      return;
    }
    ctx->ctr->resets_received++;
    switch (tcb->state) {
      case TcpState::kSynReceived:
        // Passive: return to LISTEN (the child just disappears). Active
        // (simultaneous open): connection refused.
        CloseConnection(ctx, tcb, tcb->passive ? ECONNRESET : ECONNREFUSED);
        return;
      case TcpState::kEstablished:
      case TcpState::kFinWait1:
      case TcpState::kFinWait2:
      case TcpState::kCloseWait:
        CloseConnection(ctx, tcb, ECONNRESET);
        return;
      default:  // CLOSING, LAST-ACK, TIME-WAIT
        CloseConnection(ctx, tcb, 0);
        return;
    }
  }

  // Fourth: the SYN bit (RFC 5961 4.2: challenge ACK in synchronized states;
  // in SYN-RECEIVED a retransmitted SYN makes us resend the SYN,ACK).
  if (f & kTcpSyn) {
    if (tcb->state == TcpState::kSynReceived && tcb->passive && seq == tcb->irs) {
      ScheduleAck(ctx, tcb, true);
      return;
    }
    SendChallengeAck(ctx, tcb);
    return;
  }

  // Fifth: the ACK bit.
  if (!(f & kTcpAck)) return;
  if (tcb->state == TcpState::kSynReceived) {
    if (!SeqLt(tcb->snd_una, seg.ack) || SeqGt(seg.ack, tcb->snd_max)) {
      // Unacceptable ACK: <SEQ=SEG.ACK><CTL=RST>.
      ctx->host->SendReset(tcb, seg.ack, 0, false);
      return;
    }
    tcb->snd_una = seg.ack;
    if (SeqLt(tcb->snd_nxt, seg.ack)) tcb->snd_nxt = seg.ack;
    tcb->snd_wnd = uint32_t{seg.window} << tcb->snd_wscale;
    tcb->max_snd_wnd = tcb->snd_wnd;
    tcb->snd_wl1 = seg.seq;
    tcb->snd_wl2 = seg.ack;
    if (tcb->rtt_timing && tcb->retransmits == 0) {
      UpdateRto(ctx, tcb, static_cast<int64_t>((ctx->now_ns - tcb->rtt_start_ns) / 1000));
    }
    tcb->rtt_timing = false;
    tcb->backoff = tcb->retransmits = 0;
    tcb->rtx_deadline = 0;
    InitCongestionWindow(ctx, tcb);
    EnterState(ctx, tcb, TcpState::kEstablished);
    if (tcb->keepalive) {
      tcb->keepalive_deadline = ctx->now_ns + (tcb->keepidle_ns ? tcb->keepidle_ns
                                                                : ctx->cfg->keepalive_time_ns);
    }
    TcpArmTimer(ctx, tcb);
    if (tcb->passive) {
      ctx->host->ChildEstablished(tcb);
    } else {
      ctx->host->Notify(tcb, kEventConnected | kEventWritable);
    }
  } else {
    if (!ProcessAck(ctx, tcb, seg, opts)) return;
    if (tcb->state == TcpState::kClosed) return;
    UpdateWindow(ctx, tcb, seg);
  }

  // Our FIN acknowledged?
  const bool fin_acked = tcb->fin_sent && SeqGt(tcb->snd_una, tcb->fin_seq);
  switch (tcb->state) {
    case TcpState::kFinWait1:
      if (fin_acked) {
        EnterState(ctx, tcb, TcpState::kFinWait2);
        if (tcb->user_released) {
          // Orphaned FIN-WAIT-2 (Linux tcp_fin_timeout).
          tcb->close_deadline = ctx->now_ns + ctx->cfg->fin_timeout_ns;
          TcpArmTimer(ctx, tcb);
        }
      }
      break;
    case TcpState::kClosing:
      if (fin_acked) EnterTimeWait(ctx, tcb);
      break;
    case TcpState::kLastAck:
      if (fin_acked) {
        CloseConnection(ctx, tcb, 0);
        return;
      }
      break;
    default:
      break;
  }

  // RFC 7323 4.3: update TS.Recent from a segment that covers Last.ACK.sent.
  if (tcb->ts_ok && opts.has_timestamp && SeqGeq(opts.tsval, tcb->ts_recent) &&
      SeqLeq(seq, tcb->last_ack_sent)) {
    tcb->ts_recent = opts.tsval;
    tcb->ts_recent_stamp_ns = ctx->now_ns;
  }

  // Sixth (URG) is not supported: urgent data is treated as normal data.
  // Seventh: segment text; eighth: FIN.
  const uint8_t* data = seg.payload;
  uint32_t len = zero_window_data ? 0 : seg.payload_len;
  bool fin = (f & kTcpFin) != 0 && !zero_window_data;
  if (len > 0 && SeqLt(seq, tcb->rcv_nxt)) {
    uint32_t skip = tcb->rcv_nxt - seq;  // trim the already-received prefix
    data += skip;
    len -= skip;
    seq = tcb->rcv_nxt;
  }
  if (len > 0 || fin) {
    uint32_t right = tcb->rcv_nxt + wnd;
    if (SeqGt(seq + len, right)) {  // trim to the window
      len = SeqGt(right, seq) ? right - seq : 0;
      fin = false;
    }
  }
  if (len > 0 && tcb->user_released &&
      (tcb->state == TcpState::kFinWait1 || tcb->state == TcpState::kFinWait2)) {
    // RFC 9293 3.10.7.4 seventh leaves text after CLOSE to the
    // implementation; Linux (tcp_rcv_state_process, TCPAbortOnData) resets:
    // nobody will read it. <SEQ=SEG.ACK><CTL=RST>, and the TCB goes.
    ctx->host->SendReset(tcb, seg.ack, 0, false);
    CloseConnection(ctx, tcb, ECONNRESET);
    return;
  }
  switch (tcb->state) {
    case TcpState::kEstablished:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
      ProcessData(ctx, tcb, seq, data, len, fin);
      break;
    case TcpState::kCloseWait:
    case TcpState::kClosing:
    case TcpState::kLastAck:
      break;  // the peer already sent FIN: ignore text and FIN
    case TcpState::kTimeWait:
      // Only a retransmitted FIN can arrive: ACK it, restart 2 MSL.
      if (f & kTcpFin) {
        ScheduleAck(ctx, tcb, true);
        EnterTimeWait(ctx, tcb);
      }
      break;
    default:
      break;
  }
}

}  // namespace offload::tcp
