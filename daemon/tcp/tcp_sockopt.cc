// Socket options on an engine connection: setsockopt (TcpSetOption), the
// SocketOptions struct the application side carries, and getsockopt values
// (see socket_options.h).
#include <errno.h>

#include <algorithm>

#include "daemon/tcp/seq.h"
#include "daemon/tcp/socket_options.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using namespace internal;  // NOLINT

namespace {

constexpr uint32_t kSockMinBuf = 4608;  // Linux SOCK_MIN_SNDBUF (2 * 2304)

// Linux tcp_sndbuf_expand: room for two congestion windows of skbs (at least
// TCP_INIT_CWND), each segment charged its truesize (MSS + MAX_TCP_HEADER +
// skb_shared_info rounded up to a power of two, + struct sk_buff).
uint32_t AutotunedSndBuf(const TcpConfig& cfg, const Tcb& t) {
  const uint32_t mss = std::max<uint32_t>(t.peer_mss, t.snd_mss);
  uint32_t per = mss + 320 + 320;
  uint32_t pow2 = 1;
  while (pow2 < per) pow2 <<= 1;
  per = pow2 + 256;
  const uint32_t segs = std::max<uint32_t>(
      {10u, t.snd_cwnd / std::max<uint32_t>(t.snd_mss, 1), cfg.dupthresh + 1});
  return std::min<uint32_t>(2 * segs * per, cfg.sndbuf_max);
}

bool Synchronized(TcpState s) {
  return s != TcpState::kClosed && s != TcpState::kListen && s != TcpState::kSynSent &&
         s != TcpState::kSynReceived;
}

}  // namespace

int TcpSetOption(TcpContext* ctx, Tcb* tcb, TcpOpt opt, int value) {
  switch (opt) {
    case TcpOpt::kNoDelay:
      tcb->nodelay = value != 0;
      if (tcb->nodelay) {
        // Linux TCP_NAGLE_PUSH: setting it pushes what is pending once,
        // even a partial segment TCP_CORK or MSG_MORE holds (the cork
        // holds again from the next send on).
        tcb->cork_deadline = 0;
        tcb->cork_expired = true;
        ctx->host->ScheduleOutput(tcb);
      }
      return 0;
    case TcpOpt::kCork:
      tcb->cork = value != 0;
      if (!tcb->cork) {
        // Uncorking pushes pending partial segments out (Linux).
        tcb->cork_deadline = 0;
        tcb->cork_expired = true;
        ctx->host->ScheduleOutput(tcb);
      }
      return 0;
    case TcpOpt::kQuickAck:
      if (value != 0) {
        tcb->quickack = ctx->cfg->quickack_segments;
        if (tcb->delack_deadline != 0) ScheduleAck(ctx, tcb, true);
      } else {
        tcb->quickack = 0;
      }
      return 0;
    case TcpOpt::kKeepAlive:
      tcb->keepalive = value != 0;
      if (tcb->keepalive) {
        uint64_t idle = tcb->keepidle_ns ? tcb->keepidle_ns : ctx->cfg->keepalive_time_ns;
        tcb->keepalive_deadline = std::max(tcb->last_rx_ns, ctx->now_ns - std::min(ctx->now_ns, idle)) + idle;
        if (tcb->keepalive_deadline <= ctx->now_ns) tcb->keepalive_deadline = ctx->now_ns + idle;
      } else {
        tcb->keepalive_deadline = 0;
      }
      TcpArmTimer(ctx, tcb);
      return 0;
    case TcpOpt::kKeepIdle:
      if (value < 1 || value > 32767) return EINVAL;  // Linux MAX_TCP_KEEPIDLE
      tcb->keepidle_ns = static_cast<uint64_t>(value) * kSec;
      if (tcb->keepalive) {
        tcb->keepalive_deadline = std::max(tcb->last_rx_ns, ctx->now_ns) + tcb->keepidle_ns;
        TcpArmTimer(ctx, tcb);
      }
      return 0;
    case TcpOpt::kKeepIntvl:
      if (value < 1 || value > 32767) return EINVAL;
      tcb->keepintvl_ns = static_cast<uint64_t>(value) * kSec;
      return 0;
    case TcpOpt::kKeepCnt:
      if (value < 1 || value > 127) return EINVAL;
      tcb->keepcnt = static_cast<uint32_t>(value);
      return 0;
    case TcpOpt::kLingerZero:
      tcb->linger_zero = value != 0;
      return 0;
    case TcpOpt::kUserTimeout:
      if (value < 0) return EINVAL;
      tcb->user_timeout_ns = static_cast<uint64_t>(value) * kMs;
      return 0;
    case TcpOpt::kRcvBuf:
    case TcpOpt::kSndBuf: {
      // SO_RCVBUF / SO_SNDBUF: Linux doubles the value (bookkeeping
      // overhead) and caps it at core.rmem_max / wmem_max; we keep the
      // usable half. 0 or less is Linux's minimum, not "unset".
      if (value < 0) value = 0;
      const uint32_t v = std::max<uint32_t>(static_cast<uint32_t>(value), 1);
      if (opt == TcpOpt::kRcvBuf) {
        tcb->user_rcvbuf = std::min(v, ctx->cfg->rcv_space_max);
        // Before the SYN it also fixes the window scale (Linux: a locked
        // SO_RCVBUF bounds window_clamp).
        if ((tcb->state == TcpState::kClosed || tcb->state == TcpState::kListen) &&
            ctx->cfg->window_scaling) {
          tcb->rcv_wscale = InitialWindowScale(*ctx->cfg, tcb->user_rcvbuf);
        }
      } else {
        tcb->user_sndbuf = std::min(v, ctx->cfg->sndbuf_max);
      }
      return 0;
    }
    case TcpOpt::kMaxSeg:
      // Linux: 88..32767, effective only before the connection is set up.
      if (value != 0 && (value < 88 || value > 32767)) return EINVAL;
      tcb->user_mss = static_cast<uint16_t>(value);
      // Before our SYN is on the wire the announced MSS can still change.
      if ((tcb->state == TcpState::kClosed || tcb->state == TcpState::kSynSent) &&
          tcb->snd_max == tcb->iss && value != 0) {
        tcb->adv_mss = std::min<uint16_t>(tcb->adv_mss, static_cast<uint16_t>(value));
      }
      return 0;
  }
  return EINVAL;
}

int TcpApplyOptions(TcpContext* ctx, Tcb* tcb, const SocketOptions& o) {
  const SocketOptions cur = TcpReadOptions(*tcb);
  struct Change {
    bool differs;
    TcpOpt opt;
    uint32_t value;
  } changes[] = {
      {o.keepidle_s != cur.keepidle_s && o.keepidle_s != 0, TcpOpt::kKeepIdle, o.keepidle_s},
      {o.keepintvl_s != cur.keepintvl_s && o.keepintvl_s != 0, TcpOpt::kKeepIntvl,
       o.keepintvl_s},
      {o.keepcnt != cur.keepcnt && o.keepcnt != 0, TcpOpt::kKeepCnt, o.keepcnt},
      {o.keepalive != cur.keepalive, TcpOpt::kKeepAlive, o.keepalive},
      {o.user_timeout_ms != cur.user_timeout_ms, TcpOpt::kUserTimeout, o.user_timeout_ms},
      {o.maxseg != cur.maxseg, TcpOpt::kMaxSeg, o.maxseg},
      {o.rcvbuf != cur.rcvbuf && o.rcvbuf != 0, TcpOpt::kRcvBuf, o.rcvbuf},
      {o.sndbuf != cur.sndbuf && o.sndbuf != 0, TcpOpt::kSndBuf, o.sndbuf},
      {o.linger_zero != cur.linger_zero, TcpOpt::kLingerZero, o.linger_zero},
      // Last: a flush after everything else is in force.
      {o.cork != cur.cork, TcpOpt::kCork, o.cork},
      {o.nodelay != cur.nodelay, TcpOpt::kNoDelay, o.nodelay},
  };
  for (const Change& c : changes) {
    if (!c.differs) continue;
    if (c.value > 0x7fffffffu) return EINVAL;
    if (int err = TcpSetOption(ctx, tcb, c.opt, static_cast<int>(c.value)); err != 0) return err;
  }
  return 0;
}

SocketOptions TcpReadOptions(const Tcb& t) {
  SocketOptions o;
  o.nodelay = t.nodelay;
  o.cork = t.cork;
  o.keepalive = t.keepalive;
  o.linger_zero = t.linger_zero;
  o.keepidle_s = static_cast<uint32_t>(t.keepidle_ns / kSec);
  o.keepintvl_s = static_cast<uint32_t>(t.keepintvl_ns / kSec);
  o.keepcnt = t.keepcnt;
  o.user_timeout_ms = static_cast<uint32_t>(t.user_timeout_ns / kMs);
  o.maxseg = t.user_mss;
  o.rcvbuf = t.user_rcvbuf;
  o.sndbuf = t.user_sndbuf;
  return o;
}

SocketValues TcpGetSocketValues(const TcpConfig& cfg, const Tcb& t) {
  SocketValues v;
  // Linux do_tcp_getsockopt TCP_MAXSEG: mss_cache, or user_mss while the
  // socket is closed or listening (mss_cache is then TCP_MSS_DEFAULT).
  // Before the SYN,ACK arrives mss_cache comes from the route's MTU (our
  // advertised MSS, TCP_MAXSEG included) less the timestamp option Linux
  // expects to send (tcp_connect_init / tcp_mtu_to_mss).
  if (Synchronized(t.state)) {
    v.maxseg = t.snd_mss;
  } else if (t.state == TcpState::kSynSent || t.state == TcpState::kSynReceived) {
    v.maxseg = t.adv_mss - (cfg.timestamps ? 12u : 0u);
  } else {
    // CLOSED or LISTEN: user_mss if set, else mss_cache (still the
    // negotiated value after a connection closed; TCP_MSS_DEFAULT before).
    v.maxseg = t.user_mss != 0 ? t.user_mss : t.snd_mss;
  }
  v.sndbuf = t.user_sndbuf != 0 ? std::max(2 * t.user_sndbuf, kSockMinBuf)
             : Synchronized(t.state) ? std::max(AutotunedSndBuf(cfg, t), cfg.sndbuf_default)
                                     : cfg.sndbuf_default;
  v.rcvbuf = t.user_rcvbuf != 0 ? std::max(2 * t.user_rcvbuf, kSockMinBuf) : cfg.rcvbuf_default;
  v.inq = t.rx.attached() ? t.rx.used() : 0;
  const uint32_t end = t.DataEndSeq();
  v.outq = Synchronized(t.state) && SeqGt(end, t.snd_una) ? end - t.snd_una : 0;
  v.notsent = Synchronized(t.state) && SeqGt(end, t.snd_max) ? end - t.snd_max : 0;
  return v;
}

int TcpMarkRecordEnd(TcpContext* ctx, Tcb* tcb, uint64_t tx_index) {
  if (!tcb->tx.RefreshTail()) ctx->ctr->bad_app_index++;
  const uint64_t head = tcb->tx.head_index();
  if (tx_index < head || tx_index > tcb->tx.tail_index()) {
    ctx->ctr->bad_app_index++;
    return EINVAL;
  }
  const uint32_t seq = tcb->tx_seq0 + static_cast<uint32_t>(tx_index - head);
  if (tcb->eor_tail != tcb->eor_head &&
      tcb->eor_marks[(tcb->eor_tail - 1) % kMaxEorMarks] == seq) {
    return 0;  // the same record end again
  }
  if (tcb->eor_tail - tcb->eor_head >= kMaxEorMarks) return ENOBUFS;
  tcb->eor_marks[tcb->eor_tail++ % kMaxEorMarks] = seq;
  return 0;
}

}  // namespace offload::tcp
