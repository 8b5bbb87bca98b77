// RFC 8985 (RACK) time-based loss detection over the per-segment transmit
// records of Tcb::sent (sent_log.h).
//
// Every ACK that delivers a segment (cumulatively or by SACK) advances
// RACK.xmit_ts to the send time of the most recently sent delivered segment
// (RFC 8985 6.2 steps 1-2). Then (step 5) every unSACKed segment sent before
// it is lost once RACK.rtt + RACK.reo_wnd has passed since its own send
// time; the earliest segment not yet due arms the reordering timer.
//
// A segment found lost that was never retransmitted extends
// Tcb::rack_lost_end, which RFC 6675's IsLost() (LostBoundary) honours: the
// hole is retransmitted by NextSeg() and leaves the pipe. A retransmission
// found lost (data sent after it was delivered) is sent again: in SACK
// recovery by NextSeg() (Tcb::rack_lost_rtx), after an RTO by rewinding the
// go-back-N point, otherwise as a head retransmission. This repairs what
// RFC 6675 alone leaves to the RTO: holes with fewer than DupThresh SACKed
// segments above them, lost retransmissions, and lost tail loss probes.
#include <algorithm>

#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {
namespace internal {
namespace {

// RFC 8985 6.2 step 4: reo_wnd = min(reo_wnd_mult * min_rtt / 4, SRTT);
// 0 while no reordering was seen and the connection is in recovery or
// DupThresh segments are SACKed (Linux tcp_rack_reo_wnd): then everything
// sent before the delivered segment that had its RTT is lost at once.
uint64_t ReoWnd(const Tcb& tcb, uint32_t dupthresh) {
  if (!tcb.rack_reord) {
    if (tcb.in_recovery || tcb.ca_state == 4) return 0;
    const uint32_t mss = std::max<uint32_t>(tcb.snd_mss, 1);
    if (tcb.scoreboard.TotalBytes() / mss >= dupthresh) return 0;
  }
  const int64_t base_us = tcb.min_rtt_us > 0 ? tcb.min_rtt_us : tcb.srtt_us;
  uint64_t reo = base_us > 0 ? static_cast<uint64_t>(base_us) * 1000 / 4 : kMs;
  reo *= tcb.reo_wnd_mult;
  if (tcb.srtt_us > 0) reo = std::min<uint64_t>(reo, static_cast<uint64_t>(tcb.srtt_us) * 1000);
  return std::max<uint64_t>(reo, 1000);  // 1 us: a deadline strictly after this ACK
}

bool Synchronized(TcpState s) {
  return s == TcpState::kEstablished || s == TcpState::kCloseWait ||
         s == TcpState::kFinWait1 || s == TcpState::kClosing || s == TcpState::kLastAck;
}

// RFC 8985 6.2 step 5 (RACK_detect_loss): marks the segments due as lost and
// returns the earliest deadline of those not yet due (0: none). Sets
// *any_lost, and *any_rtx with *lowest_rtx the start of the lowest lost
// retransmission.
uint64_t DetectLoss(TcpContext* ctx, Tcb* tcb, bool* any_lost, bool* any_rtx,
                    uint32_t* lowest_rtx) {
  *any_lost = false;
  *any_rtx = false;
  if (tcb->rack_xmit_ns == 0) return 0;
  const uint64_t reo = ReoWnd(*tcb, ctx->cfg->dupthresh);
  uint64_t next = 0;
  SentLog& log = tcb->sent;
  for (size_t i = 0; i < log.size(); ++i) {
    SentSeg& r = log[i];
    if (r.sacked || (r.lost && !r.retrans)) continue;
    const bool before = r.xmit_ns < tcb->rack_xmit_ns ||
                        (r.xmit_ns == tcb->rack_xmit_ns && SeqLeq(r.end, tcb->rack_end));
    const uint64_t deadline = r.xmit_ns + tcb->rack_rtt_ns + reo;
    if (!before || deadline > ctx->now_ns) {
      if (before && (next == 0 || deadline < next)) next = deadline;
      // Originals are sent in sequence order: everything above an original
      // that is not due was sent after it and is not due either.
      if (!r.retrans) break;
      continue;
    }
    *any_lost = true;
    if (r.retrans) {
      ctx->ctr->lost_retransmits++;
      r.retrans = false;
      if (!*any_rtx || SeqLt(r.start, *lowest_rtx)) *lowest_rtx = r.start;
      *any_rtx = true;
    }
    r.lost = true;
    if (SeqGt(r.end, tcb->rack_lost_end) || !SeqGt(tcb->rack_lost_end, tcb->snd_una)) {
      tcb->rack_lost_end = r.end;
    }
  }
  return next;
}

// Acts on the losses DetectLoss() found.
void RepairLosses(TcpContext* ctx, Tcb* tcb, bool any_rtx, uint32_t lowest_rtx) {
  // RFC 6675 5 / RFC 6582 3.2 step 2: one window reduction per episode.
  const bool may_enter =
      !tcb->in_recovery && tcb->ca_state != 4 &&
      (tcb->recover == tcb->iss || SeqGeq(tcb->snd_una, tcb->recover));
  if (may_enter) {
    EnterRecovery(ctx, tcb);
    if (any_rtx) tcb->rack_lost_rtx = true;
    return;
  }
  if (any_rtx) {
    if (tcb->sack_recovery) {
      tcb->rack_lost_rtx = true;  // NextSeg() sends it again
    } else if (tcb->ca_state == 4 && SeqLt(lowest_rtx, tcb->snd_nxt)) {
      // Go-back-N after an RTO: resend from the lost retransmission
      // (SACKed ranges are skipped).
      tcb->snd_nxt = SeqMax(lowest_rtx, tcb->snd_una);
    } else if (lowest_rtx == tcb->snd_una) {
      tcb->force_rtx = true;
    }
  }
  ctx->host->ScheduleOutput(tcb);
}

// Returns whether a loss was found.
bool RunDetection(TcpContext* ctx, Tcb* tcb) {
  bool any_lost, any_rtx;
  uint32_t lowest_rtx = 0;
  const uint64_t next = DetectLoss(ctx, tcb, &any_lost, &any_rtx, &lowest_rtx);
  if (any_lost) RepairLosses(ctx, tcb, any_rtx, lowest_rtx);
  tcb->reo_deadline = next;
  if (next != 0) TcpArmTimer(ctx, tcb);
  return any_lost;
}

}  // namespace

void RackOnDelivered(TcpContext* ctx, Tcb* tcb, const SentSeg& seg) {
  // RFC 8985 6.2 step 3: an original transmission delivered below what an
  // earlier ACK SACKed arrived out of order.
  if (!seg.ever_retrans && SeqLt(seg.end, tcb->rack_fack)) {
    if (!tcb->rack_reord) ctx->ctr->reordering_seen++;
    tcb->rack_reord = true;
    // Linux tcp_check_sack_reordering: the distance in segments from the
    // delivered segment to the highest SACKed byte (bounded as
    // tcp_max_reordering's default, 300), reported as tcpi_reordering.
    const uint32_t mss = std::max<uint32_t>(tcb->snd_mss, 1);
    const uint32_t degree = std::min<uint32_t>((tcb->rack_fack - seg.start + mss - 1) / mss, 300);
    tcb->reordering = std::max(tcb->reordering, degree);
  }
  // RFC 8985 6.2 step 2: an ACK of a retransmitted segment sooner than the
  // minimum RTT after its retransmission was for the original transmission.
  if (seg.retrans && tcb->min_rtt_us > 0 &&
      ctx->now_ns - seg.xmit_ns < static_cast<uint64_t>(tcb->min_rtt_us) * 1000) {
    return;
  }
  // RFC 8985 6.2 step 1/3: remember the most recently sent delivered segment.
  if (seg.xmit_ns > tcb->rack_xmit_ns ||
      (seg.xmit_ns == tcb->rack_xmit_ns && SeqGt(seg.end, tcb->rack_end))) {
    tcb->rack_xmit_ns = seg.xmit_ns;
    tcb->rack_end = seg.end;
    tcb->rack_rtt_ns = ctx->now_ns - seg.xmit_ns;
  }
}

void RackAfterAck(TcpContext* ctx, Tcb* tcb) {
  if (!Synchronized(tcb->state) || tcb->snd_una == tcb->snd_max) {
    tcb->reo_deadline = 0;
    return;
  }
  RunDetection(ctx, tcb);
}

void RackOnTimeout(TcpContext* ctx, Tcb* tcb) {
  tcb->reo_deadline = 0;
  if (!Synchronized(tcb->state) || tcb->snd_una == tcb->snd_max) return;
  if (RunDetection(ctx, tcb)) ctx->ctr->reorder_timeouts++;
}

void RackOnDsack(TcpContext* ctx, Tcb* tcb) {
  // RFC 8985 6.2 step 4: at most one increase per round trip; keep the wider
  // window for 16 recoveries.
  const uint64_t srtt_ns = static_cast<uint64_t>(std::max<int64_t>(tcb->srtt_us, 0)) * 1000;
  if (tcb->reo_adjust_ns == 0 || ctx->now_ns - tcb->reo_adjust_ns >= srtt_ns) {
    if (tcb->reo_wnd_mult < 64) tcb->reo_wnd_mult++;
    tcb->reo_adjust_ns = ctx->now_ns;
  }
  tcb->reo_wnd_persist = 16;
}

void RackOnRecoveryExit(Tcb* tcb) {
  if (tcb->reo_wnd_persist > 0) tcb->reo_wnd_persist--;
  if (tcb->reo_wnd_persist == 0) tcb->reo_wnd_mult = 1;
}

}  // namespace internal
}  // namespace offload::tcp
