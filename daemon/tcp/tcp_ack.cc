// ACK processing (RFC 9293 3.10.7.4 fifth step): send-window update,
// RFC 5961 5.2 ACK acceptability, RTT sampling (RFC 6298, RFC 7323 4),
// SACK scoreboard updates (RFC 2018/2883) and loss recovery: RFC 5681 fast
// retransmit, RFC 6582 NewReno, RFC 6675 SACK-based recovery (with the
// RFC 8985 reordering timer of tcp_rack.cc).
#include <algorithm>

#include "daemon/tcp/sack.h"
#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using net::kTcpFin;
using net::kTcpSyn;

namespace internal {

// RFC 6937 3 in segments, as Linux tcp_cwnd_reduction: cwnd = pipe +
// sndcnt from prr_delivered (this ACK already counted) and the current pipe.
// Idempotent for one ACK: called again once RACK has marked losses, since
// Linux identifies losses (tcp_identify_packet_loss) before the reduction.
void PrrSetCwnd(TcpContext* ctx, Tcb* tcb, bool una_advanced) {
  const uint32_t mss = std::max<uint32_t>(tcb->snd_mss, 1);
  const uint32_t newly = (tcb->acked_sacked + mss - 1) / mss;
  if (newly == 0 || tcb->prior_cwnd == 0) return;
  const uint32_t pipe = Pipe(*tcb, LostBoundary(*tcb, ctx->cfg->dupthresh));
  const int64_t pipe_segs = (pipe + mss - 1) / mss;
  const int64_t ssthresh = tcb->snd_ssthresh / mss;
  int64_t sndcnt;
  if (pipe_segs > ssthresh) {
    // Proportional part: sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
    const int64_t prior = std::max<int64_t>(tcb->prior_cwnd / mss, 1);
    sndcnt = (int64_t{tcb->prr_delivered} * ssthresh + prior - 1) / prior - tcb->prr_out;
  } else {
    // PRR-SSRB: grow back to ssthresh at most one segment faster than the
    // ACK clock (the extra segment when SND.UNA advanced).
    sndcnt = std::max<int64_t>(int64_t{tcb->prr_delivered} - tcb->prr_out, newly);
    if (una_advanced) sndcnt++;
    sndcnt = std::min(ssthresh - pipe_segs, sndcnt);
  }
  // The fast retransmit itself always goes out.
  sndcnt = std::max<int64_t>(sndcnt, tcb->prr_out == 0 ? 1 : 0);
  tcb->snd_cwnd = static_cast<uint32_t>(pipe + std::max<int64_t>(sndcnt, 0) * mss);
}

void PrrUpdate(TcpContext* ctx, Tcb* tcb, bool una_advanced) {
  const uint32_t mss = std::max<uint32_t>(tcb->snd_mss, 1);
  const uint32_t newly = (tcb->acked_sacked + mss - 1) / mss;
  if (newly == 0 || tcb->prior_cwnd == 0) return;
  tcb->prr_delivered += newly;  // RFC 6937 prr_delivered (segments)
  PrrSetCwnd(ctx, tcb, una_advanced);
}

void EnterRecovery(TcpContext* ctx, Tcb* tcb) {
  const CcOps* cc = tcb->cc;
  ArmUndo(tcb);
  tcb->snd_ssthresh = cc->ssthresh(tcb);
  if (cc->on_event) cc->on_event(tcb, CcEvent::kEnterRecovery, ctx->now_ns);
  tcb->in_recovery = true;
  tcb->recover = tcb->snd_max;
  tcb->rtt_timing = false;  // Karn
  tcb->ca_state = 3;        // TCP_CA_Recovery
  if (tcb->sack_ok) {
    // RFC 6675 5 (4.1-4.3) with RFC 6937 PRR setting cwnd on each ACK (as
    // Linux tcp_init_cwnd_reduction / tcp_cwnd_reduction): retransmit, then
    // pipe-driven transmission.
    tcb->sack_recovery = true;
    tcb->high_rxt = tcb->snd_una;
    tcb->prior_cwnd = tcb->snd_cwnd;
    tcb->prr_delivered = 0;
    tcb->prr_out = 0;
    if (ctx->cfg->prr) {
      PrrUpdate(ctx, tcb, false);
    } else {
      tcb->snd_cwnd = tcb->snd_ssthresh;
    }
    ctx->ctr->sack_recoveries++;
  } else {
    // RFC 6582 3.2 step 2/3: cwnd = ssthresh + 3 * SMSS.
    tcb->sack_recovery = false;
    tcb->snd_cwnd = tcb->snd_ssthresh + 3 * tcb->snd_mss;
    ctx->ctr->newreno_recoveries++;
  }
  tcb->force_rtx = true;
  ctx->ctr->fast_retransmits++;
  ctx->host->ScheduleOutput(tcb);
}

namespace {

void ExitRecovery(TcpContext* ctx, Tcb* tcb) {
  if (tcb->sack_recovery) {
    tcb->snd_cwnd = tcb->snd_ssthresh;  // RFC 6675 5: cwnd = ssthresh
  } else {
    // RFC 6582 3.2 step 3 (1): min(ssthresh, max(FlightSize, SMSS) + SMSS).
    uint32_t flight = tcb->snd_max - tcb->snd_una;
    tcb->snd_cwnd = std::min(tcb->snd_ssthresh,
                             std::max(flight, uint32_t{tcb->snd_mss}) + tcb->snd_mss);
  }
  tcb->in_recovery = false;
  tcb->sack_recovery = false;
  tcb->rack_lost_rtx = false;
  tcb->ca_state = 0;
  tcb->snd_cwnd_cnt = 0;
  RackOnRecoveryExit(tcb);
  if (tcb->cc->on_event) tcb->cc->on_event(tcb, CcEvent::kExitRecovery, ctx->now_ns);
}

// Reverts the episode's window reduction: every retransmission it made was
// D-SACKed, so nothing was lost (reordering, or ACKs lost or delayed). The
// D-SACKs may arrive during the episode or after it ended (Linux
// tcp_try_undo_loss, tcp_try_undo_dsack).
void Undo(TcpContext* ctx, Tcb* tcb) {
  tcb->undo_armed = false;
  tcb->snd_cwnd = std::max(tcb->snd_cwnd, tcb->undo_cwnd);
  tcb->snd_ssthresh = std::max(tcb->snd_ssthresh, tcb->undo_ssthresh);
  tcb->snd_cwnd_cnt = 0;
  if (tcb->ca_state == 4) {
    ctx->ctr->rto_undos++;
  } else {
    ctx->ctr->recovery_undos++;
  }
  if (tcb->in_recovery || tcb->ca_state == 4) {
    // Still in the episode: the losses were not losses. Forget them, so that
    // nothing more is retransmitted for them (after an RTO: stop the
    // go-back-N) and a later real loss starts a new episode.
    for (size_t i = 0; i < tcb->sent.size(); ++i) tcb->sent[i].lost = false;
    tcb->rack_lost_end = tcb->snd_una;
    tcb->rack_lost_rtx = false;
    tcb->recover = tcb->snd_una;
    tcb->high_rxt = tcb->snd_una;
    tcb->force_rtx = false;
    if (tcb->ca_state == 4) {
      tcb->snd_nxt = tcb->snd_max;
      tcb->retransmits = 0;
      tcb->backoff = 0;
    }
    if (tcb->in_recovery) RackOnRecoveryExit(tcb);
    tcb->in_recovery = false;
    tcb->sack_recovery = false;
    tcb->ca_state = tcb->scoreboard.empty() ? 0 : 1;  // Open or Disorder
    if (tcb->cc->on_event) tcb->cc->on_event(tcb, CcEvent::kExitRecovery, ctx->now_ns);
  }
  ctx->host->ScheduleOutput(tcb);
}

}  // namespace

void ArmUndo(Tcb* tcb) {
  // Linux tcp_init_undo: an episode that is still running keeps its record
  // (an RTO during recovery undoes to the state before the recovery).
  if (tcb->undo_armed && (tcb->in_recovery || tcb->ca_state == 4)) return;
  tcb->undo_armed = true;
  tcb->undo_marker = tcb->snd_una;
  tcb->undo_retrans = 0;
  tcb->undo_cwnd = tcb->snd_cwnd;
  tcb->undo_ssthresh = tcb->snd_ssthresh;
}

void UndoOnDsack(TcpContext* ctx, Tcb* tcb, uint32_t start, uint32_t end) {
  // RFC 2883 4 / Linux tcp_check_dsack: only duplicates of data sent in this
  // episode (above its marker) count, one per segment's worth of bytes.
  if (!tcb->undo_armed || tcb->undo_retrans == 0 || !SeqGt(end, tcb->undo_marker)) return;
  const uint32_t mss = std::max<uint32_t>(tcb->snd_mss, 1);
  const uint32_t segs = std::max<uint32_t>((end - start + mss - 1) / mss, 1);
  tcb->undo_retrans -= std::min(tcb->undo_retrans, segs);
  if (tcb->undo_retrans == 0) Undo(ctx, tcb);
}

void UpdateWindow(TcpContext* ctx, Tcb* tcb, const net::ParsedFrame& seg) {
  // RFC 9293 3.10.7.4 fifth, ESTABLISHED: update the send window if the
  // segment is newer (SND.WL1 < SEG.SEQ or (= and SND.WL2 =< SEG.ACK)).
  if (SeqLt(tcb->snd_wl1, seg.seq) ||
      (tcb->snd_wl1 == seg.seq && SeqLeq(tcb->snd_wl2, seg.ack))) {
    uint32_t old = tcb->snd_wnd;
    tcb->snd_wnd = uint32_t{seg.window} << tcb->snd_wscale;
    tcb->snd_wl1 = seg.seq;
    tcb->snd_wl2 = seg.ack;
    tcb->max_snd_wnd = std::max(tcb->max_snd_wnd, tcb->snd_wnd);
    if (tcb->snd_wnd > old) {
      if (tcb->persist && tcb->snd_wnd > 0) {
        tcb->persist = false;
        tcb->rtx_deadline = 0;
        tcb->persist_backoff = 0;
        if (tcb->snd_una != tcb->snd_max) RestartRtxTimer(ctx, tcb);
      }
      ctx->host->ScheduleOutput(tcb);
    }
  }
}

bool ProcessAck(TcpContext* ctx, Tcb* tcb, const net::ParsedFrame& seg,
                const TcpOptions& opts) {
  const uint32_t ack = seg.ack;
  // RFC 5961 5.2: acceptable iff SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.NXT.
  if (SeqGt(ack, tcb->snd_max)) {
    ctx->ctr->ack_too_new++;
    // RFC 9293 / RFC 5961 5.2: send an ACK (rate-limited) and drop.
    if (!OowRateLimited(ctx, tcb)) ScheduleAck(ctx, tcb, true);
    return false;
  }
  if (SeqLt(ack, tcb->snd_una - std::max<uint32_t>(tcb->max_snd_wnd, 1))) {
    SendChallengeAck(ctx, tcb);
    return false;
  }
  tcb->last_ack_recv_ns = ctx->now_ns;
  tcb->persist_backoff = 0;
  if (tcb->more && !tcb->more_released) {
    // Linux tcp_data_snd_check: an incoming ACK pushes with the socket's
    // own Nagle setting (tp->nonagle); MSG_MORE corks only the push of its
    // own send, so the partial segment it held may leave now (no PSH).
    // Bytes the application queued before this ACK go with it, as on Linux,
    // even if the engine has not polled the ring since (the wire layer's
    // later TcpSendReady for that tail then changes nothing).
    if (!tcb->tx.RefreshTail()) ctx->ctr->bad_app_index++;
    tcb->more_released = true;
    ctx->host->ScheduleOutput(tcb);
  }
  bool sack_new = false;
  // RACK.reord detection compares against what earlier ACKs SACKed (with
  // nothing SACKed, SND.UNA: no newly delivered segment ends below it).
  const uint32_t una_before = tcb->snd_una;
  const uint32_t sacked_before = tcb->scoreboard.TotalBytes();
  tcb->rack_fack = tcb->scoreboard.empty()
                       ? tcb->snd_una
                       : tcb->scoreboard[tcb->scoreboard.size() - 1].end;
  if (tcb->sack_ok && opts.num_sack > 0) {
    const uint32_t dsacks = tcb->dsack_dups;
    sack_new = UpdateScoreboard(ctx, tcb, opts, ack);
    if (tcb->dsack_dups != dsacks) RackOnDsack(ctx, tcb);
  }

  if (SeqGt(ack, tcb->snd_una)) {
    uint32_t acked = ack - tcb->snd_una;
    // Release acknowledged payload from the TX ring (SYN/FIN carry none).
    uint32_t data_end = SeqMin(ack, tcb->DataEndSeq());
    if (SeqGt(data_end, tcb->tx_seq0)) {
      uint32_t n = data_end - tcb->tx_seq0;
      tcb->tx.Consume(n);
      tcb->tx_seq0 = data_end;
      ctx->host->Notify(tcb, kEventWritable);
    }
    tcb->snd_una = ack;
    if (SeqLt(tcb->snd_nxt, ack)) tcb->snd_nxt = ack;
    // RFC 8985 7.4: the probe's episode ends once its data is acknowledged.
    if (tcb->tlp_in_flight && SeqGeq(ack, tcb->tlp_high_seq)) tcb->tlp_in_flight = false;
    if (SeqLt(tcb->high_rxt, ack)) tcb->high_rxt = ack;
    tcb->sent.AckTo(ack, [&](const SentSeg& s) { RackOnDelivered(ctx, tcb, s); });
    tcb->bytes_acked += acked;
    tcb->scoreboard.RemoveBelow(ack);
    // RFC 6298 / 7323 4: RTT sample (Karn's rule for the timed segment).
    int64_t rtt_us = -1;
    if (tcb->rtt_timing && SeqGt(ack, tcb->rtt_seq)) {
      rtt_us = static_cast<int64_t>((ctx->now_ns - tcb->rtt_start_ns) / 1000);
      tcb->rtt_timing = false;
    } else if (tcb->ts_ok && opts.has_timestamp && opts.tsecr != 0 &&
               tcb->retransmits == 0) {
      int64_t ms = static_cast<int32_t>(TsNow(ctx, tcb) - opts.tsecr);
      if (ms >= 0) rtt_us = ms * 1000;
    }
    if (rtt_us >= 0) UpdateRto(ctx, tcb, rtt_us);
    // RFC 6298 5.2/5.3 and backoff reset (RFC 6298 5.7 note).
    tcb->backoff = 0;
    tcb->retransmits = 0;
    tcb->una_since_ns = ctx->now_ns;
    if (tcb->in_recovery) {
      if (SeqGeq(ack, tcb->recover)) {
        ExitRecovery(ctx, tcb);
      } else if (!tcb->sack_recovery) {
        // RFC 6582 3.2 step 5: partial ACK: retransmit the next hole and
        // deflate cwnd by the amount acked, adding back one SMSS.
        tcb->force_rtx = true;
        tcb->snd_cwnd = tcb->snd_cwnd > acked ? tcb->snd_cwnd - acked : tcb->snd_mss;
        if (acked >= tcb->snd_mss) tcb->snd_cwnd += tcb->snd_mss;
      }
    } else if (tcb->state != TcpState::kSynReceived) {
      tcb->cc->cong_avoid(tcb, acked, ctx->now_ns);
      // Leave TCP_CA_Loss, and TCP_CA_Disorder once nothing is SACKed.
      if (tcb->ca_state == 4 || (tcb->ca_state == 1 && tcb->scoreboard.empty())) {
        tcb->ca_state = 0;
      }
    }
    tcb->dupacks = 0;
    if (tcb->snd_una == tcb->snd_max) {
      if (!tcb->persist) tcb->rtx_deadline = 0;
    } else {
      RestartRtxTimer(ctx, tcb);
    }
    ctx->host->ScheduleOutput(tcb);
  } else if (ack == tcb->snd_una && tcb->snd_una != tcb->snd_max &&
             seg.payload_len == 0 && (seg.tcp_flags & (kTcpSyn | kTcpFin)) == 0 &&
             (uint32_t{seg.window} << tcb->snd_wscale) == tcb->snd_wnd) {
    // RFC 5681 2 "duplicate acknowledgment" (RFC 6675 2: with new SACK info
    // when SACK is in use).
    if (!tcb->sack_ok || sack_new || opts.num_sack == 0) tcb->dupacks++;
    if (tcb->in_recovery) {
      if (!tcb->sack_recovery) tcb->snd_cwnd += tcb->snd_mss;  // RFC 6582 step 4
      ctx->host->ScheduleOutput(tcb);
    } else {
      if (tcb->ca_state == 0 && tcb->dupacks > 0) tcb->ca_state = 1;  // TCP_CA_Disorder
      // RFC 3042: a duplicate ACK may release a new segment (TcpOutput).
      ctx->host->ScheduleOutput(tcb);
    }
  }
  // Data this ACK newly reported delivered, cumulatively or by SACK (RFC
  // 6937 DeliveredData).
  tcb->acked_sacked = (tcb->snd_una - una_before) + tcb->scoreboard.TotalBytes() - sacked_before;
  if (tcb->acked_sacked > 0) {
    // A delivery-rate sample per round trip (Linux tcp_rate_gen, coarser).
    const uint64_t delivered = tcb->bytes_acked + tcb->scoreboard.TotalBytes();
    const uint64_t window = std::max<uint64_t>(static_cast<uint64_t>(tcb->srtt_us) * 1000, kMs);
    if (tcb->rate_window_start_ns == 0) {
      tcb->rate_window_start_ns = ctx->now_ns;
      tcb->rate_window_delivered = delivered;
    } else if (ctx->now_ns - tcb->rate_window_start_ns >= window) {
      tcb->delivery_rate = (delivered - tcb->rate_window_delivered) * kSec /
                           (ctx->now_ns - tcb->rate_window_start_ns);
      tcb->rate_window_start_ns = ctx->now_ns;
      tcb->rate_window_delivered = delivered;
    }
  }
  if (tcb->sack_recovery && ctx->cfg->prr) PrrUpdate(ctx, tcb, tcb->snd_una != una_before);
  // Loss detection: DupThresh duplicate ACKs (RFC 5681 3.2), or RFC 6675 5
  // IsLost(HighACK + 1). RFC 6582 3.2 step 2: without SACK only if the ACK
  // covers more than "recover" (avoids multiple reductions per window). With
  // SACK the scoreboard tells new losses from old ones: RFC 6675 5.1 only
  // bars recovery until the data outstanding at an RTO is acknowledged, so
  // a loss at exactly the previous recovery point (or RTO point) is repaired
  // by fast retransmit, not by another timeout.
  const bool past_recover = tcb->sack_ok ? SeqGeq(ack, tcb->recover) : SeqGt(ack, tcb->recover);
  if (!tcb->in_recovery && tcb->snd_una != tcb->snd_max &&
      (past_recover || tcb->recover == tcb->iss)) {
    // Once reordering was seen, RACK's timer decides alone (RFC 8985 6.2
    // step 4, Linux tcp_time_to_recover with RACK).
    bool lost = !tcb->rack_reord && tcb->dupacks >= ctx->cfg->dupthresh;
    if (!lost && !tcb->rack_reord && tcb->sack_ok && !tcb->scoreboard.empty()) {
      lost = SeqGt(LostBoundary(*tcb, ctx->cfg->dupthresh), tcb->snd_una);
    }
    if (lost) EnterRecovery(ctx, tcb);
  }
  // A loss probe is only allowed in the Open state (RFC 8985 7.2 / Linux
  // tcp_schedule_loss_probe): once SACKs or dupacks arrive, the RTO guards.
  if (tcb->tlp_armed && ProbeTimeout(ctx, tcb) == 0) RestartRtxTimer(ctx, tcb);
  // RFC 8985 6.2: losses the duplicate-ACK / SACK-count rules cannot see.
  const uint32_t lost_end_before = tcb->rack_lost_end;
  RackAfterAck(ctx, tcb);
  // What RACK marked lost leaves the pipe: this ACK's PRR window is set
  // from the pipe after the marks (else a recovery entry could release a
  // burst of retransmissions where Linux sends one).
  if (tcb->sack_recovery && ctx->cfg->prr && tcb->rack_lost_end != lost_end_before) {
    PrrSetCwnd(ctx, tcb, tcb->snd_una != una_before);
  }
  tcb->acked_sacked = 0;  // a recovery entered from a timer has delivered nothing
  return true;
}

}  // namespace internal
}  // namespace offload::tcp
