// TCP segment transmission: what to send and when (RFC 896/Minshall Nagle,
// RFC 5681/6582/6675 transmission rules, persist and retransmission).
// Building a segment (window, options, SACK blocks, headers) is
// tcp_segment.cc.
#include <algorithm>

#include "daemon/tcp/sack.h"
#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using namespace internal;  // NOLINT
using net::kTcpAck;
using net::kTcpFin;
using net::kTcpPsh;
using net::kTcpSyn;

namespace {

// Largest payload that fits the MTU next to the options `o` (Linux
// tcp_current_mss accounts for SACK blocks the same way).
uint32_t PayloadRoom(const TcpContext* ctx, const Tcb* tcb, const OptionsToWrite& o) {
  uint32_t room = ctx->cfg->mtu - 20u - IpHeaderLen(tcb->ipv6) -
                  static_cast<uint32_t>(TcpOptionsLength(o));
  return std::min<uint32_t>(room, tcb->snd_mss);
}

// The first record end (MSG_EOR) after `seq`, or 0 with none; forgets the
// marks of acknowledged records.
uint32_t NextRecordEnd(Tcb* tcb, uint32_t seq) {
  while (tcb->eor_head != tcb->eor_tail &&
         SeqLeq(tcb->eor_marks[tcb->eor_head % kMaxEorMarks], tcb->snd_una)) {
    tcb->eor_head++;
  }
  for (uint32_t i = tcb->eor_head; i != tcb->eor_tail; ++i) {
    const uint32_t m = tcb->eor_marks[i % kMaxEorMarks];
    if (SeqGt(m, seq)) return m;
  }
  return 0;
}

// Sends payload [seq, seq+len) (+FIN when it reaches our FIN) and does the
// bookkeeping for new data or retransmissions. `push`: set PSH even if the
// segment does not end the queued data (see TrySendNext).
// Returns the frame length; *end is the sequence number after the segment.
size_t SendData(TcpContext* ctx, Tcb* tcb, uint8_t* buf, uint32_t seq, uint32_t len,
                uint32_t* end_out, bool push = false) {
  const uint32_t data_end = tcb->DataEndSeq();
  OptionsToWrite o;
  PrepareOptions(ctx, tcb, kTcpAck, &o);
  // Never send sequence space past the data as payload: the FIN's sequence
  // number (which SACK-based retransmission ranges may include) is a flag.
  len = std::min(len, SeqLt(seq, data_end) ? data_end - seq : 0);
  len = std::min(len, PayloadRoom(ctx, tcb, o));
  // MSG_EOR (Linux tcp_skb_can_collapse): a segment never spans a record end,
  // new or retransmitted; the record's last segment is pushed like the end
  // of a send().
  if (const uint32_t rec = NextRecordEnd(tcb, seq); rec != 0 && SeqLt(rec, seq + len)) {
    len = rec - seq;
  }
  uint8_t flags = kTcpAck;
  bool fin = tcb->fin_queued && seq + len == tcb->fin_seq;
  if (fin) flags |= kTcpFin;
  // PSH as Linux (tcp_push / tcp_mark_push): the segment that ends the data
  // queued so far (the end of a send(); not of a MSG_MORE send, which
  // tcp_push leaves unmarked), a record end, or the last segment of a burst
  // cut short by the congestion window.
  const bool pushed_end = seq + len == data_end && !tcb->more;
  if (len > 0 && (push || pushed_end || NextRecordEnd(tcb, seq) == seq + len)) {
    flags |= kTcpPsh;
  }
  const bool retransmit = SeqLt(seq, tcb->snd_max);
  if (tcb->snd_una == tcb->snd_max) tcb->una_since_ns = ctx->now_ns;
  size_t n = EmitSegment(ctx, tcb, buf, seq, len, flags, &o);
  uint32_t end = seq + len + (fin ? 1 : 0);
  *end_out = end;
  // Transmit record for the RFC 8985 loss detection of tcp_rack.cc.
  tcb->sent.OnSend(seq, end, ctx->now_ns);
  if (tcb->in_recovery) tcb->prr_out++;  // RFC 6937 prr_out (segments)
  if (retransmit) {
    ctx->ctr->retrans_segs++;
    if (tcb->undo_armed) tcb->undo_retrans++;
    tcb->total_retrans++;
    tcb->bytes_retrans += len;
    tcb->rtt_timing = false;  // Karn's algorithm
    if (SeqGt(end, tcb->high_rxt)) tcb->high_rxt = end;
  } else if (!tcb->rtt_timing) {
    tcb->rtt_timing = true;
    tcb->rtt_seq = seq;
    tcb->rtt_start_ns = ctx->now_ns;
  }
  if (len > 0) {
    tcb->data_segs_out++;
    ctx->ctr->data_segs_out++;
    tcb->bytes_sent += len;
    tcb->last_data_sent_ns = ctx->now_ns;
    if (len < tcb->snd_mss) tcb->snd_sml = end;  // Minshall's Nagle
  }
  if (fin) tcb->fin_sent = true;
  if (SeqGt(end, tcb->snd_max)) tcb->snd_max = end;
  // RFC 6298 5.1: start the timer when sending data if it is not running;
  // new data in flight may allow an earlier loss probe (RFC 8985 7.2).
  if (tcb->rtx_deadline == 0 || tcb->persist) {
    RestartRtxTimer(ctx, tcb);
  } else if (!retransmit) {
    MaybeArmProbe(ctx, tcb);
  }
  return n;
}

void ArmPersist(TcpContext* ctx, Tcb* tcb) {
  if (tcb->rtx_deadline != 0) return;
  // RFC 9293 3.8.6.1: probe a zero window; Linux backs the interval off
  // exponentially from the RTO, bounded by TCP_RTO_MAX.
  uint64_t t = std::max(tcb->rto_ns, ctx->cfg->rto_min_ns)
               << std::min<uint32_t>(tcb->persist_backoff, 20);
  tcb->persist = true;
  tcb->rtx_deadline = ctx->now_ns + std::min(t, ctx->cfg->rto_max_ns);
  TcpArmTimer(ctx, tcb);
}

// Next new (or go-back-N) data segment within `cwnd_room`. Returns 0 if
// nothing may be sent now.
size_t TrySendNext(TcpContext* ctx, Tcb* tcb, uint8_t* buf, uint32_t cwnd_room,
                   bool ignore_sws) {
  if (tcb->sack_ok && SeqLt(tcb->snd_nxt, tcb->snd_max)) {
    int i;
    while ((i = tcb->scoreboard.Find(tcb->snd_nxt)) >= 0) tcb->snd_nxt = tcb->scoreboard[i].end;
  }
  const uint32_t data_end = tcb->DataEndSeq();
  const bool fin_pending = tcb->fin_queued && (!tcb->fin_sent || SeqLeq(tcb->snd_nxt, tcb->fin_seq));
  const uint32_t avail = SeqLt(tcb->snd_nxt, data_end) ? data_end - tcb->snd_nxt : 0;
  if (avail == 0 && !fin_pending) return 0;
  if (avail == 0) {
    // Only the FIN remains (RFC 9293 3.10.4: it follows all queued data).
    if (tcb->snd_nxt != tcb->fin_seq) return 0;
    uint32_t end;
    size_t n = SendData(ctx, tcb, buf, tcb->snd_nxt, 0, &end);
    tcb->snd_nxt = end;
    return n;
  }
  uint32_t len = std::min<uint32_t>(avail, tcb->snd_mss);
  if (tcb->sack_ok && SeqLt(tcb->snd_nxt, tcb->snd_max)) {
    for (size_t i = 0; i < tcb->scoreboard.size(); ++i) {
      if (SeqGt(tcb->scoreboard[i].start, tcb->snd_nxt)) {
        len = std::min(len, tcb->scoreboard[i].start - tcb->snd_nxt);
        break;
      }
    }
  }
  const uint32_t wnd_end = tcb->snd_una + tcb->snd_wnd;
  const uint32_t wnd_room = SeqGt(wnd_end, tcb->snd_nxt) ? wnd_end - tcb->snd_nxt : 0;
  const uint32_t room = std::min(cwnd_room, wnd_room);
  if (len > room) {
    // RFC 9293 3.8.6.2.1 sender SWS avoidance: a partial segment only if it
    // is at least half the largest window the peer offered.
    if (room == 0 || (!ignore_sws && room < tcb->max_snd_wnd / 2)) {
      if (wnd_room < len && tcb->snd_una == tcb->snd_max) ArmPersist(ctx, tcb);
      return 0;
    }
    len = room;
  }
  // Linux marks PSH on the last segment a congestion-window-limited burst
  // sends in the Open state (what its packetdrill scripts expect); a limited
  // transmit segment (RFC 3042, Disorder) goes without.
  const bool cwnd_cut = len < avail && cwnd_room <= wnd_room && cwnd_room - len < tcb->snd_mss &&
                        tcb->ca_state == 0 && !tcb->in_recovery;
  const bool last = len == avail;
  if (len < tcb->snd_mss && last && !ignore_sws && SeqGeq(tcb->snd_nxt, tcb->snd_max)) {
    // TCP_CORK / MSG_MORE: hold a partial segment (Linux: up to 200 ms).
    if ((tcb->cork || (tcb->more && !tcb->more_released)) && !tcb->cork_expired &&
        !tcb->fin_queued) {
      if (tcb->cork_deadline == 0) {
        tcb->cork_deadline = ctx->now_ns + ctx->cfg->cork_timeout_ns;
        TcpArmTimer(ctx, tcb);
      }
      return 0;
    }
    // RFC 9293 3.7.4 Nagle, Minshall variant (Linux): hold a small segment
    // while a previous small segment is unacknowledged.
    if (!tcb->nodelay && !tcb->cork && SeqGt(tcb->snd_sml, tcb->snd_una) &&
        tcb->snd_una != tcb->snd_max) {
      return 0;
    }
  }
  uint32_t end;
  size_t n = SendData(ctx, tcb, buf, tcb->snd_nxt, len, &end, cwnd_cut);
  tcb->snd_nxt = end;
  return n;
}

// Retransmits from snd_una (fast retransmit / partial ACK / RTO start).
size_t RetransmitHead(TcpContext* ctx, Tcb* tcb, uint8_t* buf) {
  uint32_t limit = SeqMin(tcb->snd_max, tcb->DataEndSeq());
  uint32_t len = SeqGt(limit, tcb->snd_una) ? std::min<uint32_t>(limit - tcb->snd_una, tcb->snd_mss) : 0;
  if (tcb->sack_ok && !tcb->scoreboard.empty() && SeqGt(tcb->scoreboard[0].start, tcb->snd_una)) {
    len = std::min(len, tcb->scoreboard[0].start - tcb->snd_una);
  }
  if (len == 0 && !(tcb->fin_sent && tcb->snd_una == tcb->fin_seq)) return 0;
  uint32_t end;
  size_t n = SendData(ctx, tcb, buf, tcb->snd_una, len, &end);
  if (SeqLt(tcb->snd_nxt, end)) tcb->snd_nxt = end;
  return n;
}

}  // namespace

size_t TcpOutput(TcpContext* ctx, Tcb* tcb, uint8_t* buf, size_t cap) {
  if (cap < net::kEthHeaderLen + ctx->cfg->mtu) return 0;
  switch (tcb->state) {
    case TcpState::kClosed:
    case TcpState::kListen:
      return 0;
    case TcpState::kSynSent:
    case TcpState::kSynReceived: {
      const bool rcvd = tcb->state == TcpState::kSynReceived;
      if (tcb->snd_nxt != tcb->iss && !(rcvd && tcb->ack_now)) return 0;
      // RFC 9293 3.10.1 / 3.10.7.2: <SEQ=ISS><CTL=SYN> or <SYN,ACK>.
      size_t n = EmitSegment(ctx, tcb, buf, tcb->iss, 0,
                             rcvd ? (kTcpSyn | kTcpAck) : kTcpSyn);
      if (tcb->retransmits > 0 || tcb->snd_max != tcb->iss) {
        tcb->total_retrans++;
        ctx->ctr->retrans_segs++;
      } else {
        tcb->rtt_timing = true;
        tcb->rtt_seq = tcb->iss;
        tcb->rtt_start_ns = ctx->now_ns;
      }
      tcb->snd_nxt = tcb->iss + 1;
      tcb->snd_max = tcb->iss + 1;
      if (tcb->rtx_deadline == 0) RestartRtxTimer(ctx, tcb);
      return n;
    }
    case TcpState::kTimeWait:
      if (tcb->ack_now) return EmitSegment(ctx, tcb, buf, tcb->snd_nxt, 0, kTcpAck);
      return 0;
    default:
      break;
  }
  if (tcb->probe_pending) {
    tcb->probe_pending = false;
    // Zero-window probe / keepalive (Linux tcp_xmit_probe_skb): an ACK with
    // an old sequence number that the peer must answer (RFC 9293 3.8.6.1,
    // RFC 1122 4.2.3.6).
    return EmitSegment(ctx, tcb, buf, tcb->snd_una - 1, 0, kTcpAck);
  }
  if (tcb->force_rtx) {
    tcb->force_rtx = false;
    size_t n = RetransmitHead(ctx, tcb, buf);
    if (n > 0) return n;
  }
  if (tcb->tlp_pending) {
    // RFC 8985 7.3: new data if the window allows, else the highest segment.
    tcb->tlp_pending = false;
    size_t n = TrySendNext(ctx, tcb, buf, ~0u, true);
    if (n > 0) {
      tcb->tlp_high_seq = tcb->snd_max;
      return n;
    }
    uint32_t data_end = SeqMin(tcb->snd_max, tcb->DataEndSeq());
    if (SeqGt(data_end, tcb->snd_una) || tcb->fin_sent) {
      uint32_t start = SeqGt(data_end, tcb->snd_una + tcb->snd_mss) ? data_end - tcb->snd_mss
                                                                    : tcb->snd_una;
      uint32_t end;
      n = SendData(ctx, tcb, buf, start, data_end - start, &end);
      if (n > 0) return n;
    }
  }
  size_t n = 0;
  if (tcb->sack_recovery) {
    // RFC 6675 5 (C): while cwnd - pipe >= SMSS, send NextSeg().
    uint32_t lb = LostBoundary(*tcb, ctx->cfg->dupthresh);
    uint32_t pipe = Pipe(*tcb, lb);
    if (tcb->snd_cwnd > pipe && tcb->snd_cwnd - pipe >= tcb->snd_mss) {
      uint32_t seq, max_len;
      if (NextSegRetransmit(*tcb, lb, false, &seq, &max_len)) {  // rule 1
        uint32_t end;
        n = SendData(ctx, tcb, buf, seq, std::min<uint32_t>(max_len, tcb->snd_mss), &end);
      } else {
        n = TrySendNext(ctx, tcb, buf, tcb->snd_cwnd - pipe, false);  // rule 2
        if (n == 0 && NextSegRetransmit(*tcb, lb, true, &seq, &max_len)) {  // rule 3
          uint32_t end;
          n = SendData(ctx, tcb, buf, seq, std::min<uint32_t>(max_len, tcb->snd_mss), &end);
        }
      }
    }
  } else {
    uint32_t flight = tcb->snd_nxt - tcb->snd_una;
    // RFC 3042 limited transmit, as Linux counts packets in flight: what the
    // receiver reported holding above SND.UNA (SACKed, or one segment per
    // duplicate ACK without SACK) has left the network, so each duplicate
    // ACK before recovery releases one new segment.
    uint32_t left = 0;
    if (!tcb->in_recovery && tcb->ca_state != 4) {
      left = tcb->sack_ok ? tcb->scoreboard.TotalBytes()
                          : std::min(tcb->dupacks, ctx->cfg->dupthresh - 1) * tcb->snd_mss;
      left = std::min(left, flight);
    }
    flight -= left;
    uint32_t cwnd_room = tcb->snd_cwnd > flight ? tcb->snd_cwnd - flight : 0;
    n = TrySendNext(ctx, tcb, buf, cwnd_room, tcb->sws_override);
    if (n > 0) {
      tcb->sws_override = false;
      if (left > 0) ctx->ctr->limited_transmits++;
    }
  }
  if (n > 0) return n;
  if (tcb->ack_now) {
    n = EmitSegment(ctx, tcb, buf, tcb->snd_nxt, 0, kTcpAck);
    if (tcb->extra_acks > 0) {  // more duplicate ACKs owed (see tcp_receive.cc)
      tcb->extra_acks--;
      tcb->ack_now = true;
    }
    return n;
  }
  tcb->extra_acks = 0;
  return 0;
}

}  // namespace offload::tcp
