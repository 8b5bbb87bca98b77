// RFC 8985 (RACK) time-based loss detection in a coarse form that needs no
// per-segment transmit records: send order is inferred from sequence order
// and from marks left by retransmissions (Tcb::head_rxt_*, last_rxt_mark).
//
// RFC 8985 6.2 marks a segment lost once a segment sent after it has been
// delivered (cumulatively ACKed or SACKed) and RACK.rtt + RACK.reo_wnd has
// passed since it was sent. The first SACK that proves "sent before a
// delivered segment" arrives no earlier than that segment's send time plus
// RACK.rtt, so arming the reordering timer for reo_wnd from that ACK is the
// RFC rule evaluated at a time never earlier than the RFC's. It repairs the
// two cases RFC 6675 leaves to the RTO: a hole with fewer than DupThresh
// SACKed segments above it (short flights, ACK loss), and a lost
// retransmission of SND.UNA (recognised once data first sent after that
// retransmission is SACKed).
#include <algorithm>

#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {
namespace internal {
namespace {

// RFC 8985 6.2 step 4: reo_wnd = min(reo_wnd_mult * min_rtt / 4, SRTT).
uint64_t ReoWnd(const Tcb& tcb) {
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

}  // namespace

bool HeadSentBeforeDelivered(const Tcb& tcb) {
  if (!tcb.sack_ok || tcb.scoreboard.empty() || tcb.snd_una == tcb.snd_max) return false;
  const uint32_t sacked_end = tcb.scoreboard[tcb.scoreboard.size() - 1].end;
  if (tcb.head_rxt_valid && tcb.head_rxt_seq == tcb.snd_una) {
    // Retransmitted at a known point: only data first sent after it counts.
    return SeqGt(sacked_end, tcb.head_rxt_mark);
  }
  if (SeqLt(tcb.snd_una, tcb.high_rxt)) {
    // Retransmitted at an unknown point (go-back-N after an RTO, RFC 6675
    // rule 3): bounded by the latest retransmission of anything.
    return SeqGt(sacked_end, tcb.last_rxt_mark);
  }
  // Only the original transmission: SACKed data above it was sent later.
  return true;
}

void RackAfterAck(TcpContext* ctx, Tcb* tcb) {
  if (!Synchronized(tcb->state) || tcb->force_rtx || !HeadSentBeforeDelivered(*tcb)) {
    tcb->reo_deadline = 0;
    return;
  }
  if (tcb->reo_deadline == 0) {
    tcb->reo_deadline = ctx->now_ns + ReoWnd(*tcb);
    TcpArmTimer(ctx, tcb);
  }
}

void RackOnTimeout(TcpContext* ctx, Tcb* tcb) {
  tcb->reo_deadline = 0;
  if (!Synchronized(tcb->state) || tcb->force_rtx || !HeadSentBeforeDelivered(*tcb)) return;
  ctx->ctr->reorder_timeouts++;
  // RFC 6675 5 (SACK: once all data outstanding at an RTO is acknowledged,
  // RFC 6675 5.1) / RFC 6582 3.2 step 2 (NewReno: more than "recover").
  const bool may_enter =
      !tcb->in_recovery && tcb->ca_state != 4 &&
      (tcb->recover == tcb->iss || SeqGeq(tcb->snd_una, tcb->recover));
  if (may_enter) {
    EnterRecovery(ctx, tcb);
    return;
  }
  // Inside a recovery episode (fast recovery, or the go-back-N after an
  // RTO): the head's retransmission is lost. Send it again; the window was
  // already reduced once for this episode (RFC 5681 3.2, RFC 8985 9.3).
  if ((tcb->head_rxt_valid && tcb->head_rxt_seq == tcb->snd_una) ||
      SeqLt(tcb->snd_una, tcb->high_rxt)) {
    ctx->ctr->lost_retransmits++;
  }
  tcb->force_rtx = true;
  ctx->host->ScheduleOutput(tcb);
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
