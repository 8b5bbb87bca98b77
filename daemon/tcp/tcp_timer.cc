// TCP timers (RFC 9293 3.8.1, RFC 6298 5 retransmission with backoff,
// RFC 9293 3.8.6.1 persist, RFC 1122 4.2.3.6 keep-alive, 3.10.7.4 TIME-WAIT,
// RFC 5482 user timeout, delayed ACK RFC 9293 3.8.6.3). One wheel entry per
// TCB at the earliest deadline; deadlines fire lazily.
#include <errno.h>

#include <algorithm>

#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using namespace internal;  // NOLINT

void TcpArmTimer(TcpContext* ctx, Tcb* tcb) {
  uint64_t next = timer::TimerWheel::kNever;
  for (uint64_t d : {tcb->rtx_deadline, tcb->delack_deadline, tcb->keepalive_deadline,
                     tcb->close_deadline, tcb->cork_deadline, tcb->reo_deadline}) {
    if (d != 0) next = std::min(next, d);
  }
  if (next == timer::TimerWheel::kNever) {
    ctx->wheel->Cancel(&tcb->timer);
    return;
  }
  // Only move the wheel entry earlier; a later deadline is found when the
  // earlier entry fires (saves a wheel operation per ACK).
  if (!tcb->timer.scheduled() || next < tcb->timer.expiry_ns) {
    ctx->wheel->Schedule(&tcb->timer, next);
  }
}

namespace {

uint64_t UserTimeout(const Tcb* tcb) { return tcb->user_timeout_ns; }

void OnRetransmitTimeout(TcpContext* ctx, Tcb* tcb) {
  const TcpConfig& cfg = *ctx->cfg;
  tcb->rtx_deadline = 0;
  if (tcb->state == TcpState::kSynSent || tcb->state == TcpState::kSynReceived) {
    uint32_t limit = tcb->state == TcpState::kSynSent ? cfg.syn_retries : cfg.synack_retries;
    const bool user_expired =
        UserTimeout(tcb) && ctx->now_ns - tcb->una_since_ns >= UserTimeout(tcb);
    if (tcb->retransmits >= limit || user_expired) {
      ctx->ctr->timeouts++;
      if (user_expired) ctx->ctr->user_timeouts++;
      CloseConnection(ctx, tcb, ETIMEDOUT);
      return;
    }
    tcb->retransmits++;
    // Linux tcp_syn_linear_timeouts: the first SYN retransmissions of an
    // active open keep the initial RTO; then RFC 6298 5.5 doubling.
    if (tcb->state != TcpState::kSynSent || tcb->retransmits > ctx->cfg->syn_linear_timeouts) {
      tcb->backoff++;
    }
    tcb->snd_nxt = tcb->iss;  // resend SYN / SYN,ACK
    tcb->rtt_timing = false;
    ctx->ctr->rto_timeouts++;
    RestartRtxTimer(ctx, tcb);
    ctx->host->ScheduleOutput(tcb);
    return;
  }
  if (tcb->snd_una == tcb->snd_max) return;  // nothing outstanding
  if (tcb->tlp_armed) {
    // RFC 8985 7.3: the probe timeout fired: send one probe segment (new
    // data if possible, else the last segment) and fall back to the RTO.
    tcb->tlp_armed = false;
    tcb->tlp_pending = true;
    tcb->tlp_in_flight = true;
    tcb->tlp_high_seq = tcb->snd_max;
    ctx->ctr->tail_loss_probes++;
    RestartRtxTimer(ctx, tcb);
    ctx->host->ScheduleOutput(tcb);
    return;
  }
  // RFC 5482 / Linux tcp_retries2: give up.
  bool user_expired = UserTimeout(tcb) != 0 &&
                      ctx->now_ns - tcb->una_since_ns >= UserTimeout(tcb);
  if (user_expired || (UserTimeout(tcb) == 0 && tcb->retransmits >= cfg.retries2)) {
    ctx->ctr->timeouts++;
    if (user_expired) ctx->ctr->user_timeouts++;
    CloseConnection(ctx, tcb, ETIMEDOUT);
    return;
  }
  ctx->ctr->rto_timeouts++;
  // RFC 5681 3.1 eq. 4 on the first timeout for this data; RFC 6298 5.5
  // back off; RFC 5681 3.1 loss window of one segment.
  if (tcb->retransmits == 0 || tcb->ca_state != 4) {
    ArmUndo(tcb);
    tcb->snd_ssthresh = tcb->cc->ssthresh(tcb);
  }
  if (tcb->cc->on_event) tcb->cc->on_event(tcb, CcEvent::kRto, ctx->now_ns);
  tcb->snd_cwnd = tcb->snd_mss;
  tcb->snd_cwnd_cnt = 0;
  tcb->ca_state = 4;  // TCP_CA_Loss
  tcb->retransmits++;
  tcb->backoff++;
  tcb->in_recovery = false;
  tcb->sack_recovery = false;
  tcb->dupacks = 0;
  tcb->recover = tcb->snd_max;  // RFC 6582 4.1
  tcb->high_rxt = tcb->snd_una;
  tcb->rtt_timing = false;
  tcb->tlp_in_flight = false;
  tcb->tlp_pending = false;
  tcb->reo_deadline = 0;
  tcb->rack_lost_rtx = false;
  // Go back: retransmit from SND.UNA (SACKed ranges are skipped on output).
  tcb->snd_nxt = tcb->snd_una;
  tcb->force_rtx = true;
  RestartRtxTimer(ctx, tcb);
  ctx->host->ScheduleOutput(tcb);
}

void OnPersistTimeout(TcpContext* ctx, Tcb* tcb) {
  tcb->rtx_deadline = 0;
  tcb->persist = false;
  if (tcb->snd_una != tcb->snd_max) return;  // data in flight: RTO governs
  if (tcb->DataEndSeq() == tcb->snd_nxt && !tcb->fin_queued) return;
  if (UserTimeout(tcb) && ctx->now_ns - tcb->last_ack_recv_ns >= UserTimeout(tcb)) {
    ctx->ctr->timeouts++;
    ctx->ctr->user_timeouts++;
    CloseConnection(ctx, tcb, ETIMEDOUT);
    return;
  }
  if (tcb->persist_backoff >= ctx->cfg->retries2) {
    ctx->ctr->timeouts++;
    CloseConnection(ctx, tcb, ETIMEDOUT);
    return;
  }
  tcb->persist_backoff++;
  if (tcb->snd_wnd == 0) {
    tcb->probe_pending = true;
    ctx->ctr->zero_window_probes++;
  } else {
    tcb->sws_override = true;  // fill the small window (RFC 9293 3.8.6.2.1)
  }
  ctx->host->ScheduleOutput(tcb);
  // Re-armed by output (TrySendNext) if the window is still closed; make sure
  // the probe keeps going even if output sends nothing.
  uint64_t t = std::max(tcb->rto_ns, ctx->cfg->rto_min_ns)
               << std::min<uint32_t>(tcb->persist_backoff, 20);
  tcb->persist = true;
  tcb->rtx_deadline = ctx->now_ns + std::min(t, ctx->cfg->rto_max_ns);
}

void OnKeepalive(TcpContext* ctx, Tcb* tcb) {
  const TcpConfig& cfg = *ctx->cfg;
  tcb->keepalive_deadline = 0;
  if (!tcb->keepalive) return;
  if (tcb->state != TcpState::kEstablished && tcb->state != TcpState::kCloseWait &&
      tcb->state != TcpState::kFinWait2) {
    return;
  }
  uint64_t idle = tcb->keepidle_ns ? tcb->keepidle_ns : cfg.keepalive_time_ns;
  uint64_t intvl = tcb->keepintvl_ns ? tcb->keepintvl_ns : cfg.keepalive_intvl_ns;
  uint32_t cnt = tcb->keepcnt ? tcb->keepcnt : cfg.keepalive_probes;
  uint64_t since = ctx->now_ns - tcb->last_rx_ns;
  // RFC 1122 4.2.3.6: probe only an idle connection (Linux: no data in
  // flight and nothing queued).
  if (tcb->snd_una != tcb->snd_max || tcb->DataEndSeq() != tcb->snd_nxt) {
    tcb->keepalive_deadline = ctx->now_ns + idle;
    return;
  }
  if (since < idle && tcb->keepalive_sent == 0) {
    tcb->keepalive_deadline = tcb->last_rx_ns + idle;
    return;
  }
  if (tcb->keepalive_sent >= cnt ||
      (UserTimeout(tcb) && tcb->keepalive_sent > 0 && since >= UserTimeout(tcb))) {
    ctx->ctr->timeouts++;
    CloseConnection(ctx, tcb, ETIMEDOUT);
    return;
  }
  tcb->keepalive_sent++;
  tcb->probe_pending = true;
  ctx->ctr->keepalive_probes++;
  tcb->keepalive_deadline = ctx->now_ns + intvl;
  ctx->host->ScheduleOutput(tcb);
}

}  // namespace

void TcpOnTimer(TcpContext* ctx, Tcb* tcb) {
  const uint64_t now = ctx->now_ns;
  if (tcb->close_deadline != 0 && now >= tcb->close_deadline) {
    // TIME-WAIT expiry (RFC 9293 3.10.8) or orphaned FIN-WAIT-2 timeout.
    tcb->close_deadline = 0;
    CloseConnection(ctx, tcb, 0);
    return;
  }
  if (tcb->rtx_deadline != 0 && now >= tcb->rtx_deadline) {
    if (tcb->persist) {
      OnPersistTimeout(ctx, tcb);
    } else {
      OnRetransmitTimeout(ctx, tcb);
    }
    if (tcb->state == TcpState::kClosed) return;
  }
  if (tcb->reo_deadline != 0 && now >= tcb->reo_deadline) RackOnTimeout(ctx, tcb);
  if (tcb->delack_deadline != 0 && now >= tcb->delack_deadline) {
    tcb->delack_deadline = 0;
    ctx->ctr->delayed_acks++;
    ScheduleAck(ctx, tcb, true);
  }
  if (tcb->keepalive_deadline != 0 && now >= tcb->keepalive_deadline) {
    OnKeepalive(ctx, tcb);
    if (tcb->state == TcpState::kClosed) return;
  }
  if (tcb->cork_deadline != 0 && now >= tcb->cork_deadline) {
    tcb->cork_deadline = 0;
    tcb->cork_expired = true;
    // Linux sends a held partial segment from its probe timer
    // (tcp_write_wakeup), which sets PSH even on MSG_MORE data.
    tcb->more = false;
    ctx->host->ScheduleOutput(tcb);
  }
  TcpArmTimer(ctx, tcb);
}

}  // namespace offload::tcp
