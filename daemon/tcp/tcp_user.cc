// Application-facing TCP operations (RFC 9293 3.10.1-3.10.6 OPEN, SEND,
// RECEIVE, CLOSE, ABORT, STATUS), socket options and TCP_INFO.
#include <errno.h>

#include <algorithm>
#include <cstring>

#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using namespace internal;  // NOLINT

const char* TcpStateName(TcpState s) {
  switch (s) {
    case TcpState::kClosed: return "CLOSED";
    case TcpState::kListen: return "LISTEN";
    case TcpState::kSynSent: return "SYN-SENT";
    case TcpState::kSynReceived: return "SYN-RECEIVED";
    case TcpState::kEstablished: return "ESTABLISHED";
    case TcpState::kFinWait1: return "FIN-WAIT-1";
    case TcpState::kFinWait2: return "FIN-WAIT-2";
    case TcpState::kCloseWait: return "CLOSE-WAIT";
    case TcpState::kClosing: return "CLOSING";
    case TcpState::kLastAck: return "LAST-ACK";
    case TcpState::kTimeWait: return "TIME-WAIT";
  }
  return "?";
}

uint8_t LinuxTcpState(TcpState s) {
  switch (s) {
    case TcpState::kEstablished: return 1;
    case TcpState::kSynSent: return 2;
    case TcpState::kSynReceived: return 3;
    case TcpState::kFinWait1: return 4;
    case TcpState::kFinWait2: return 5;
    case TcpState::kTimeWait: return 6;
    case TcpState::kClosed: return 7;
    case TcpState::kCloseWait: return 8;
    case TcpState::kLastAck: return 9;
    case TcpState::kListen: return 10;
    case TcpState::kClosing: return 11;
  }
  return 7;
}

uint8_t InitialWindowScale(const TcpConfig& cfg, uint32_t user_rcvbuf) {
  // RFC 7323 2.3 as Linux tcp_select_initial_window: scale for the largest
  // buffer the socket may grow to (max(tcp_rmem[2], rmem_max)), or for the
  // SO_RCVBUF the application fixed (its usable half of the doubled value).
  uint32_t space = cfg.rcv_space_max;
  if (user_rcvbuf != 0) space = std::min(space, user_rcvbuf);
  int log2 = 31 - __builtin_clz(std::max<uint32_t>(space, 1));
  return static_cast<uint8_t>(std::clamp(log2 - 15, 0, int{kMaxWindowScale}));
}

void TcbInit(TcpContext* ctx, Tcb* tcb) {
  const TcpConfig& cfg = *ctx->cfg;
  if (tcb->cc == nullptr) tcb->cc = cfg.cc;
  tcb->cc->init(tcb);
  tcb->rto_ns = cfg.rto_initial_ns;
  uint32_t mss = cfg.mtu - 20u - IpHeaderLen(tcb->ipv6);
  if (cfg.mss_clamp != 0) mss = std::min<uint32_t>(mss, cfg.mss_clamp);
  if (tcb->user_mss != 0) mss = std::min<uint32_t>(mss, tcb->user_mss);
  tcb->adv_mss = static_cast<uint16_t>(mss);
  tcb->snd_mss = static_cast<uint16_t>(std::min<uint32_t>(kDefaultMss, mss));
  tcb->rcv_mss = tcb->snd_mss;
  tcb->rcv_wscale = cfg.window_scaling ? InitialWindowScale(cfg, tcb->user_rcvbuf) : 0;
  tcb->snd_cwnd = cfg.initial_cwnd_segments * tcb->snd_mss;
  tcb->snd_ssthresh = 0x7fffffff;
}

void TcpConnect(TcpContext* ctx, Tcb* tcb, uint32_t iss, uint32_t ts_offset) {
  // RFC 9293 3.10.1 OPEN (active): ISS, send SYN, enter SYN-SENT.
  tcb->iss = iss;
  tcb->ts_offset = ts_offset;
  tcb->snd_una = tcb->snd_nxt = tcb->snd_max = iss;
  tcb->tx_seq0 = iss + 1;
  tcb->recover = iss;
  tcb->high_rxt = iss;
  tcb->rack_lost_end = iss;
  tcb->snd_sml = iss;
  tcb->passive = false;
  tcb->una_since_ns = ctx->now_ns;
  ctx->ctr->active_opens++;
  EnterState(ctx, tcb, TcpState::kSynSent);
  ctx->host->ScheduleOutput(tcb);
}

void TcpSendReady(TcpContext* ctx, Tcb* tcb, bool more) {
  if (tcb->snd_nxt == tcb->DataEndSeq()) {
    // Everything before this send left: a new hold starts its own 200 ms
    // (a deadline armed by an earlier hold that ended is stale).
    tcb->cork_expired = false;
    tcb->cork_deadline = 0;
  }
  const uint32_t old_end = tcb->DataEndSeq();
  if (!tcb->tx.RefreshTail()) ctx->ctr->bad_app_index++;
  tcb->more = more;
  if (tcb->DataEndSeq() != old_end) tcb->more_released = false;
  if (tcb->state != TcpState::kClosed && tcb->state != TcpState::kListen) {
    ctx->host->ScheduleOutput(tcb);
  }
}

void TcpReceiveCredit(TcpContext* ctx, Tcb* tcb) {
  if (!tcb->rx.RefreshHead()) {
    ctx->ctr->bad_app_index++;
    return;
  }
  switch (tcb->state) {
    case TcpState::kEstablished:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
      break;
    default:
      return;
  }
  // Window update (Linux tcp_cleanup_rbuf): when the window we could offer is
  // at least twice what the peer currently sees and the increase is worth a
  // segment (RFC 9293 3.8.6.2.2).
  uint32_t cur = ReceiveWindow(tcb);
  uint32_t free = tcb->rx.free();
  if (tcb->rcv_ssthresh != 0) free = std::min(free, tcb->rcv_ssthresh);  // as SelectWindow
  uint32_t thresh = std::min<uint32_t>(tcb->rx.capacity() / 2, tcb->adv_mss);
  if (free >= 2 * cur && free - cur >= thresh) ScheduleAck(ctx, tcb, true);
}

void TcpShutdownWrite(TcpContext* ctx, Tcb* tcb) {
  if (tcb->fin_queued) return;
  switch (tcb->state) {
    case TcpState::kClosed:
    case TcpState::kListen:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
    case TcpState::kClosing:
    case TcpState::kLastAck:
    case TcpState::kTimeWait:
      return;
    default:
      break;
  }
  if (!tcb->tx.RefreshTail()) ctx->ctr->bad_app_index++;
  tcb->tx.Freeze();
  tcb->fin_queued = true;
  tcb->fin_seq = tcb->DataEndSeq();
  tcb->cork = false;
  tcb->more = false;
  // RFC 9293 3.10.4 CLOSE: ESTABLISHED -> FIN-WAIT-1, CLOSE-WAIT -> LAST-ACK;
  // in SYN-SENT / SYN-RECEIVED the FIN waits for ESTABLISHED.
  if (tcb->state == TcpState::kEstablished) {
    EnterState(ctx, tcb, TcpState::kFinWait1);
  } else if (tcb->state == TcpState::kCloseWait) {
    EnterState(ctx, tcb, TcpState::kLastAck);
  }
  ctx->host->ScheduleOutput(tcb);
}

void TcpAbort(TcpContext* ctx, Tcb* tcb, int error) {
  switch (tcb->state) {
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
    case TcpState::kCloseWait:
      // RFC 9293 3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST> (Linux adds ACK).
      ctx->host->SendReset(tcb, tcb->snd_nxt, tcb->rcv_nxt, true);
      break;
    default:
      break;
  }
  CloseConnection(ctx, tcb, error);
}

void TcpClose(TcpContext* ctx, Tcb* tcb) {
  tcb->user_released = true;
  if (tcb->state == TcpState::kClosed) return;
  tcb->rx.RefreshHead();
  // RFC 2525 2.17 / Linux: closing with unread (in-order) data, or
  // SO_LINGER {1, 0}, resets the connection instead of a graceful FIN.
  if (tcb->linger_zero || (tcb->rx.attached() && tcb->rx.used() > 0)) {
    TcpAbort(ctx, tcb, 0);
    return;
  }
  switch (tcb->state) {
    case TcpState::kSynSent:
      CloseConnection(ctx, tcb, 0);  // RFC 9293 3.10.4: delete the TCB
      return;
    case TcpState::kFinWait2:
      tcb->close_deadline = ctx->now_ns + ctx->cfg->fin_timeout_ns;
      TcpArmTimer(ctx, tcb);
      return;
    default:
      TcpShutdownWrite(ctx, tcb);
      return;
  }
}

int TcpSetCongestion(TcpContext* ctx, Tcb* tcb, const char* name) {
  const CcOps* ops = FindCongestionControl(name);
  if (ops == nullptr) return ENOENT;
  tcb->cc = ops;
  ops->init(tcb);
  return 0;
}

void TcpFillInfo(const TcpContext& ctx, const Tcb& t, TcpInfo* info) {
  std::memset(info, 0, sizeof(*info));
  auto ago_ms = [&](uint64_t ns) -> uint32_t {
    return ns == 0 ? 0 : static_cast<uint32_t>((ctx.now_ns - ns) / kMs);
  };
  info->tcpi_state = LinuxTcpState(t.state);
  info->tcpi_ca_state = t.ca_state;
  info->tcpi_retransmits = static_cast<uint8_t>(std::min<uint32_t>(t.retransmits, 255));
  info->tcpi_probes = static_cast<uint8_t>(std::min<uint32_t>(
      std::max(t.keepalive_sent, t.persist_backoff), 255));
  info->tcpi_backoff = static_cast<uint8_t>(std::min<uint32_t>(t.backoff, 255));
  uint8_t opts = 0;
  if (t.ts_ok) opts |= TCPI_OPT_TIMESTAMPS;
  if (t.sack_ok) opts |= TCPI_OPT_SACK;
  if (t.ws_ok) opts |= TCPI_OPT_WSCALE;
  info->tcpi_options = opts;
  info->tcpi_snd_wscale = t.snd_wscale & 0xf;
  info->tcpi_rcv_wscale = t.rcv_wscale & 0xf;
  info->tcpi_rto = static_cast<uint32_t>(
      std::min<uint64_t>(t.rto_ns << std::min<uint32_t>(t.backoff, 20), ctx.cfg->rto_max_ns) / 1000);
  info->tcpi_ato = static_cast<uint32_t>(ctx.cfg->delack_ns / 1000);
  info->tcpi_snd_mss = t.snd_mss;
  info->tcpi_rcv_mss = t.rcv_mss;
  uint32_t mss = std::max<uint32_t>(t.snd_mss, 1);
  info->tcpi_unacked = (t.snd_max - t.snd_una + mss - 1) / mss;
  info->tcpi_sacked = (t.scoreboard.TotalBytes() + mss - 1) / mss;
  info->tcpi_retrans = t.in_recovery || t.ca_state == 4 ? 1 : 0;
  info->tcpi_last_data_sent = ago_ms(t.last_data_sent_ns);
  info->tcpi_last_data_recv = ago_ms(t.last_data_recv_ns);
  info->tcpi_last_ack_recv = ago_ms(t.last_ack_recv_ns);
  info->tcpi_pmtu = ctx.cfg->mtu;
  info->tcpi_rcv_ssthresh = t.rcv_ssthresh != 0 ? t.rcv_ssthresh : t.rcv_wnd;
  info->tcpi_rtt = static_cast<uint32_t>(t.srtt_us);
  info->tcpi_rttvar = static_cast<uint32_t>(t.rttvar_us);
  info->tcpi_snd_ssthresh = t.snd_ssthresh >= 0x7fffffff ? 0x7fffffff : t.snd_ssthresh / mss;
  info->tcpi_snd_cwnd = t.snd_cwnd / mss;
  info->tcpi_advmss = t.adv_mss;
  info->tcpi_reordering = std::max(ctx.cfg->dupthresh, t.reordering);
  info->tcpi_rcv_space = t.rx.capacity();
  info->tcpi_total_retrans = t.total_retrans;
  info->tcpi_bytes_acked = t.bytes_acked;
  info->tcpi_bytes_received = t.bytes_received;
  info->tcpi_segs_out = t.segs_out;
  info->tcpi_segs_in = t.segs_in;
  info->tcpi_notsent_bytes = SeqGt(t.DataEndSeq(), t.snd_max) ? t.DataEndSeq() - t.snd_max : 0;
  info->tcpi_min_rtt = static_cast<uint32_t>(t.min_rtt_us);
  info->tcpi_data_segs_in = t.data_segs_in;
  info->tcpi_data_segs_out = t.data_segs_out;
  info->tcpi_bytes_sent = t.bytes_sent;
  info->tcpi_bytes_retrans = t.bytes_retrans;
  info->tcpi_dsack_dups = t.dsack_dups;
  info->tcpi_rcv_ooopack = t.rcv_ooopack;
  info->tcpi_snd_wnd = t.snd_wnd;
  // Linux tcp_update_pacing_rate: cwnd * MSS / SRTT, times 200 % in slow
  // start (cwnd < ssthresh / 2) or 120 % after; no SO_MAX_PACING_RATE.
  if (t.srtt_us > 0) {
    const uint64_t ratio = t.snd_cwnd < t.snd_ssthresh / 2 ? 200 : 120;
    info->tcpi_pacing_rate = uint64_t{t.snd_cwnd} * 1'000'000 / static_cast<uint64_t>(t.srtt_us) *
                             ratio / 100;
  }
  info->tcpi_max_pacing_rate = ~uint64_t{0};
  info->tcpi_delivery_rate = t.delivery_rate;
  info->tcpi_delivered = static_cast<uint32_t>((t.bytes_acked + t.scoreboard.TotalBytes()) / mss);
  // Linux lost_out: segments marked lost (retransmitted or not) that are
  // neither acknowledged nor SACKed: the unSACKed bytes below RACK's mark.
  if (SeqGt(t.rack_lost_end, t.snd_una)) {
    const uint32_t lost = t.rack_lost_end - t.snd_una - t.scoreboard.CoveredIn(t.snd_una, t.rack_lost_end);
    info->tcpi_lost = (lost + mss - 1) / mss;
  }
  info->tcpi_reord_seen = t.rack_reord ? 1 : 0;
  info->tcpi_busy_time = t.una_since_ns != 0 && t.snd_una != t.snd_max
                             ? (ctx.now_ns - t.una_since_ns) / 1000
                             : 0;
}

}  // namespace offload::tcp
