// Helpers shared by the TCP input, output and timer paths: state changes,
// RTT/RTO estimation (RFC 6298), loss-probe scheduling (RFC 8985), ACK
// scheduling, challenge-ACK rate limiting (RFC 5961 7).
#include <errno.h>

#include <algorithm>

#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

namespace internal {

void EnterState(TcpContext* ctx, Tcb* tcb, TcpState s) {
  if (s == TcpState::kEstablished && tcb->state != TcpState::kEstablished) {
    ctx->ctr->established++;
  }
  tcb->state = s;
  // RFC 9293 3.10.4: a CLOSE queued in SYN-SENT/SYN-RECEIVED takes effect
  // on entering ESTABLISHED.
  if (s == TcpState::kEstablished && tcb->fin_queued) tcb->state = TcpState::kFinWait1;
}

void CloseConnection(TcpContext* ctx, Tcb* tcb, int error) {
  if (tcb->state == TcpState::kClosed) return;
  if (error != 0) tcb->error = error;
  tcb->state = TcpState::kClosed;
  tcb->rtx_deadline = tcb->delack_deadline = tcb->keepalive_deadline = 0;
  tcb->close_deadline = tcb->cork_deadline = 0;
  tcb->ack_now = tcb->probe_pending = tcb->force_rtx = false;
  ctx->wheel->Cancel(&tcb->timer);
  ctx->host->Notify(tcb, kEventClosed | (error != 0 ? uint32_t{kEventError} : 0u));
  ctx->host->ConnectionClosed(tcb);
}

uint32_t TsNow(const TcpContext* ctx, const Tcb* tcb) {
  // RFC 7323 5.4: a millisecond clock (as Linux), offset per connection.
  return static_cast<uint32_t>(ctx->now_ns / kMs) + tcb->ts_offset;
}

void UpdateRto(TcpContext* ctx, Tcb* tcb, int64_t r) {
  r = std::max<int64_t>(r, 1);
  if (tcb->min_rtt_us == 0 || r < tcb->min_rtt_us) tcb->min_rtt_us = r;
  if (tcb->srtt_us == 0) {
    // RFC 6298 2.2: first measurement.
    tcb->srtt_us = r;
    tcb->rttvar_us = r / 2;
  } else {
    // RFC 6298 2.3, alpha = 1/8, beta = 1/4.
    int64_t delta = tcb->srtt_us - r;
    if (delta < 0) delta = -delta;
    tcb->rttvar_us = (3 * tcb->rttvar_us + delta) / 4;
    tcb->srtt_us = (7 * tcb->srtt_us + r) / 8;
  }
  // RFC 6298 2.3/2.4 with Linux's floor: RTO = SRTT + max(4 * RTTVAR, RTO_MIN).
  uint64_t var_ns = static_cast<uint64_t>(4 * tcb->rttvar_us) * 1000;
  uint64_t rto = static_cast<uint64_t>(tcb->srtt_us) * 1000 +
                 std::max(var_ns, ctx->cfg->rto_min_ns);
  tcb->rto_ns = std::min(rto, ctx->cfg->rto_max_ns);
}

// RFC 8985 7.2 (as Linux: with SACK, in the Open state, one probe at a
// time): returns the probe timeout PTO = 2 * SRTT (at least 10 ms; plus the
// worst-case delayed ACK when one segment is in flight), or 0 if no probe
// may be scheduled now.
uint64_t ProbeTimeout(const TcpContext* ctx, const Tcb* tcb) {
  if (!ctx->cfg->tlp || !tcb->sack_ok || tcb->in_recovery || tcb->ca_state != 0 ||
      tcb->tlp_in_flight || tcb->srtt_us <= 0 || tcb->backoff != 0 ||
      tcb->snd_una == tcb->snd_max) {
    return 0;
  }
  if (tcb->state != TcpState::kEstablished && tcb->state != TcpState::kCloseWait &&
      tcb->state != TcpState::kFinWait1 && tcb->state != TcpState::kLastAck) {
    return 0;
  }
  uint64_t srtt_ns = static_cast<uint64_t>(tcb->srtt_us) * 1000;
  uint64_t pto = std::max<uint64_t>(2 * srtt_ns, 10 * kMs);
  if (tcb->snd_max - tcb->snd_una <= tcb->snd_mss) {
    pto = std::max<uint64_t>(pto, srtt_ns + srtt_ns / 2 + 200 * kMs);
  }
  return pto;
}

uint64_t ClampToUserTimeout(const TcpContext* ctx, const Tcb* tcb, uint64_t timeout) {
  // Linux tcp_clamp_rto_to_user_timeout (RFC 5482): with TCP_USER_TIMEOUT the
  // timer fires when the timeout ends, not at the next backed-off RTO, so
  // the connection does not outlive it.
  if (tcb->user_timeout_ns == 0) return timeout;
  const uint64_t end = tcb->una_since_ns + tcb->user_timeout_ns;
  const uint64_t left = end > ctx->now_ns ? end - ctx->now_ns : 0;
  return std::max<uint64_t>(std::min(timeout, left), kMs);
}

void MaybeArmProbe(TcpContext* ctx, Tcb* tcb) {
  if (tcb->persist) return;
  uint64_t pto = ProbeTimeout(ctx, tcb);
  if (pto == 0) return;
  // RFC 8985 7.2: when the RTO would fire first, the probe is sent at the
  // RTO's time instead (Linux tcp_schedule_loss_probe: min(PTO, RTO left)).
  // A probe already armed only moves earlier (more in flight: a shorter PTO
  // without the delayed-ACK allowance).
  uint64_t at = ctx->now_ns + pto;
  if (tcb->rtx_deadline != 0) at = std::min(at, tcb->rtx_deadline);
  if (tcb->tlp_armed && at == tcb->rtx_deadline) return;
  tcb->tlp_armed = true;
  tcb->rtx_deadline = at;
  TcpArmTimer(ctx, tcb);
}

void RestartRtxTimer(TcpContext* ctx, Tcb* tcb) {
  // RFC 6298 5.1/5.3: (re)start the timer to expire after RTO, with backoff;
  // RFC 8985 7.2: a loss probe when one may be scheduled, at PTO or at the
  // RTO's time if that is earlier (Linux: a FIN alone after close() is
  // probed at the RTO, then retransmitted by the RTO one RTO later).
  uint64_t rto = tcb->rto_ns << std::min<uint32_t>(tcb->backoff, 20);
  rto = std::min(rto, ctx->cfg->rto_max_ns);
  tcb->persist = false;
  tcb->tlp_armed = false;
  uint64_t pto = ProbeTimeout(ctx, tcb);
  if (pto != 0) {
    tcb->tlp_armed = true;
    rto = std::min(rto, pto);
  }
  rto = ClampToUserTimeout(ctx, tcb, rto);
  tcb->rtx_deadline = ctx->now_ns + rto;
  TcpArmTimer(ctx, tcb);
}

uint32_t ReceiveWindow(const Tcb* tcb) {
  return SeqGt(tcb->rcv_adv, tcb->rcv_nxt) ? tcb->rcv_adv - tcb->rcv_nxt : 0;
}

void ScheduleAck(TcpContext* ctx, Tcb* tcb, bool now) {
  if (now) {
    if (!tcb->ack_now) {
      tcb->ack_now = true;
      ctx->host->ScheduleOutput(tcb);
    }
    return;
  }
  if (tcb->delack_deadline == 0) {
    tcb->delack_deadline = ctx->now_ns + ctx->cfg->delack_ns;
    TcpArmTimer(ctx, tcb);
  }
}

void EnterTimeWait(TcpContext* ctx, Tcb* tcb) {
  EnterState(ctx, tcb, TcpState::kTimeWait);
  tcb->rtx_deadline = tcb->keepalive_deadline = tcb->cork_deadline = 0;
  tcb->delack_deadline = 0;
  tcb->close_deadline = ctx->now_ns + ctx->cfg->time_wait_ns;
  TcpArmTimer(ctx, tcb);
}

bool ChallengeAckAllowed(TcpContext* ctx) {
  // RFC 5961 7: limit challenge ACKs per time unit (Linux: per second).
  if (ctx->now_ns - ctx->challenge_window_ns >= kSec) {
    ctx->challenge_window_ns = ctx->now_ns;
    ctx->challenge_count = 0;
  }
  if (ctx->challenge_count >= ctx->cfg->challenge_ack_limit) {
    ctx->ctr->challenge_acks_suppressed++;
    return false;
  }
  ctx->challenge_count++;
  ctx->ctr->challenge_acks++;
  return true;
}

bool OowRateLimited(TcpContext* ctx, Tcb* tcb) {
  const uint64_t limit = ctx->cfg->invalid_ratelimit_ns;
  if (limit != 0 && tcb->last_oow_ack_ns != 0 && ctx->now_ns - tcb->last_oow_ack_ns < limit) {
    ctx->ctr->oow_acks_suppressed++;
    return true;
  }
  tcb->last_oow_ack_ns = ctx->now_ns;
  return false;
}

void SendChallengeAck(TcpContext* ctx, Tcb* tcb) {
  // Linux tcp_send_challenge_ack: the per-socket limit first, then the
  // per-stack RFC 5961 7 limit.
  if (OowRateLimited(ctx, tcb)) return;
  if (ChallengeAckAllowed(ctx)) ScheduleAck(ctx, tcb, true);
}

}  // namespace internal

}  // namespace offload::tcp
