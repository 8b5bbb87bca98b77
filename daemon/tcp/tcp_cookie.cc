// Completing a SYN-cookie handshake (RFC 4987 3.6): the listener kept no
// state for the SYN, so the ACK alone creates the connection, as Linux's
// cookie_v4_check / tcp_get_cookie_sock do.
#include "daemon/tcp/syncookie.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using namespace internal;  // NOLINT

bool TcpAcceptCookie(TcpContext* ctx, Tcb* child, const net::ParsedFrame& seg, uint16_t mss,
                     uint32_t ts_offset) {
  TcpOptions ack_opts;
  ParseTcpOptions(seg.tcp_options, seg.tcp_options_len, false, &ack_opts);
  // What the SYN negotiated, recovered from the cookie and the echoed TSval
  // (Linux cookie_timestamp_decode).
  TcpOptions syn;
  syn.has_mss = true;
  syn.mss = mss;
  if (ctx->cfg->timestamps && ack_opts.has_timestamp) {
    int wscale = -1;
    bool sack = false;
    if (!SynCookieDecodeTs(ack_opts.tsecr, &wscale, &sack)) return false;
    syn.has_timestamp = true;
    syn.tsval = ack_opts.tsval;
    syn.has_wscale = wscale >= 0;
    syn.wscale = static_cast<uint8_t>(wscale < 0 ? 0 : wscale);
    syn.sack_permitted = sack;
  }
  const uint32_t iss = seg.ack - 1;
  child->passive = true;
  child->iss = iss;
  child->ts_offset = ts_offset;
  child->snd_una = child->snd_nxt = child->snd_max = seg.ack;
  child->tx_seq0 = seg.ack;
  child->recover = iss;
  child->high_rxt = iss;
  child->rack_lost_end = iss;
  child->snd_sml = iss;
  child->irs = seg.seq - 1;
  child->rcv_nxt = seg.seq;
  child->last_ack_sent = seg.seq;
  NegotiateOptions(ctx, child, syn);
  child->rcv_wscale = child->ws_ok ? InitialWindowScale(*ctx->cfg, child->user_rcvbuf) : 0;
  // The SYN,ACK offered whole segments of at most 64 KiB, unscaled.
  uint32_t offered = 65535;
  if (child->adv_mss > 0) offered = offered / child->adv_mss * child->adv_mss;
  child->rcv_wnd = offered;
  child->rcv_ssthresh = offered;
  child->rcv_adv = seg.seq + offered;
  // RFC 7323 2.2: this ACK's window is scaled.
  child->snd_wnd = uint32_t{seg.window} << child->snd_wscale;
  child->max_snd_wnd = child->snd_wnd;
  child->snd_wl1 = seg.seq;
  child->snd_wl2 = seg.ack;
  child->last_rx_ns = ctx->now_ns;
  child->una_since_ns = ctx->now_ns;
  ctx->ctr->passive_opens++;
  ctx->ctr->syncookies_recv++;
  InitCongestionWindow(ctx, child);
  EnterState(ctx, child, TcpState::kEstablished);
  if (child->keepalive) {
    child->keepalive_deadline =
        ctx->now_ns + (child->keepidle_ns ? child->keepidle_ns : ctx->cfg->keepalive_time_ns);
  }
  TcpArmTimer(ctx, child);
  ctx->host->ChildEstablished(child);
  // Data or FIN riding on the ACK (RFC 9293 3.10.7.4 seventh/eighth).
  if (seg.payload_len > 0 || (seg.tcp_flags & net::kTcpFin)) TcpInput(ctx, child, seg);
  return true;
}

}  // namespace offload::tcp
