// Stack receive path: frame validation and dispatch to ARP, TCP (connections
// and listeners, RFC 9293 3.10.7.1-2) and UDP (RFC 768) demultiplexing.
#include <cstring>

#include "daemon/stack/stack.h"
#include "daemon/tcp/syncookie.h"

namespace offload::stack {

using tcp::Tcb;
using tcp::TcpState;

// ---------------------------------------------------------------------------
// Receive

void Stack::ProcessRx(const RxFrame* frames, size_t n, uint64_t now_ns) {
  SetNow(now_ns);
  for (size_t i = 0; i < n; ++i) {
    counters_.rx_frames++;
    net::ParsedFrame f;
    net::ParseStatus st = net::ParseFrame(frames[i].data, frames[i].len,
                                          config_.rx_l4_checksum, &f);
    if (st != net::ParseStatus::kOk) {
      counters_.rx_parse_drops[static_cast<size_t>(st)]++;
      if (st == net::ParseStatus::kBadIpChecksum || st == net::ParseStatus::kBadL4Checksum) {
        counters_.rx_checksum_errors++;
      }
      if (st == net::ParseStatus::kIpFragment) counters_.rx_ip_fragments++;
      continue;
    }
    if (f.l4_checksum_partial) counters_.rx_checksum_partial++;
    if (f.ipv6 && f.protocol != net::kIpProtoTcp && f.protocol != net::kIpProtoUdp) {
      // Nothing else over IPv6 is the engine's: a misdirected frame.
      counters_.rx_ipv6_not_offloaded++;
      continue;
    }
    if (f.dst_mac != config_.local_mac && !f.dst_mac.IsBroadcast() && !f.dst_mac.IsMulticast()) {
      counters_.rx_not_for_us++;
      continue;
    }
    if (f.arp != nullptr) {
      HandleArp(f);
    } else if (f.protocol == net::kIpProtoTcp) {
      HandleTcp(f);
    } else if (f.protocol == net::kIpProtoUdp) {
      if (f.ipv6) {
        HandleUdp6(f);
      } else {
        HandleUdp(f);
      }
    }
  }
}

void Stack::HandleArp(const net::ParsedFrame& f) {
  // Only where the stack sees ARP at all (a link with no kernel on it; the
  // XDP program passes ARP to the kernel): it answers requests for its
  // address (RFC 826) but learns nothing from them -- neighbours come from
  // the kernel's table (SeedNeighbor).
  counters_.arp_in++;
  const net::ArpPacket* a = f.arp;
  if (net::Load32(a->tpa) != config_.local_ip || net::Load16(a->oper) != net::kArpRequest) return;
  net::MacAddr sha;
  std::memcpy(sha.b, a->sha, 6);
  const uint32_t spa = net::Load32(a->spa);
  uint32_t fr = pool_.Alloc();
  if (fr == FramePool::kNone) {
    counters_.tx_no_buffer++;
    return;
  }
  pool_.len(fr) = static_cast<uint32_t>(net::BuildArpFrame(
      pool_.data(fr), net::kArpReply, sha, config_.local_mac, config_.local_ip, sha, spa));
  arp_.mutable_counters().replies_sent++;
  QueueControl(fr);
}

void Stack::SendRstForSegment(const net::ParsedFrame& f) {
  uint32_t fr = pool_.Alloc();
  if (fr == FramePool::kNone) {
    counters_.tx_no_buffer++;
    return;
  }
  size_t len = tcp::BuildResetForSegment(f, config_.local_mac, pool_.data(fr), pool_.frame_size());
  if (len == 0) {
    pool_.Free(fr);
    return;
  }
  pool_.len(fr) = static_cast<uint32_t>(len);
  tcp_ctr_.resets_sent++;
  QueueControl(fr);
}

void Stack::HandleTcp(const net::ParsedFrame& f) {
  if (f.ipv6 ? !IsLocalAddress6(f.dst_ip6) : !IsLocalAddress(f.dst_ip)) {
    counters_.rx_not_for_us++;  // TCP never to broadcast/multicast (RFC 1122 4.2.3.10)
    return;
  }
  uint32_t idx = conns_.Find(SegmentKey(f));
  if (idx != net::IndexMap<TupleKey>::kNone) {
    Tcb* t = &tcbs_[idx];
    TcpState prior = t->state;
    tcp::TcpInput(&ctx_, t, f);
    // A SYN that ended a TIME-WAIT goes on to the listener (RFC 6191).
    if (!(prior == TcpState::kTimeWait && t->state == TcpState::kClosed &&
          (f.tcp_flags & net::kTcpSyn))) {
      return;
    }
  }
  uint32_t l = FindListener(f);
  if (l != net::IndexMap<ListenKey>::kNone) {
    HandleListen(&tcbs_[l], f);
    return;
  }
  // RFC 9293 3.10.7.1 CLOSED: answer anything but a RST with a RST.
  tcp_ctr_.segs_in++;
  counters_.tcp_no_socket++;
  SendRstForSegment(f);
}

Tcb* Stack::NewChild(Tcb* l, const net::ParsedFrame& f) {
  Tcb* c = AllocTcb();
  if (c == nullptr) {
    counters_.tcp_syn_no_memory++;
    return nullptr;
  }
  tcp::RingMemory tx, rx;
  if (provider_ == nullptr || !provider_->AllocateRings(l->cookie, &tx, &rx) || !tx.valid() ||
      !rx.valid()) {
    counters_.tcp_syn_no_memory++;
    FreeTcb(c);
    return nullptr;
  }
  c->provider_buffers = true;
  SetAddressesFrom(c, f);
  c->listener = l->index;
  c->tx.Attach(tx);
  c->rx.Attach(rx);
  // Children inherit the listener's socket options (as Linux sk_clone).
  c->cc = l->cc;
  c->nodelay = l->nodelay;
  c->cork = l->cork;
  c->keepalive = l->keepalive;
  c->keepidle_ns = l->keepidle_ns;
  c->keepintvl_ns = l->keepintvl_ns;
  c->keepcnt = l->keepcnt;
  c->linger_zero = l->linger_zero;
  c->user_timeout_ns = l->user_timeout_ns;
  c->user_mss = l->user_mss;
  c->user_rcvbuf = l->user_rcvbuf;
  c->user_sndbuf = l->user_sndbuf;
  tcp::TcbInit(&ctx_, c);
  if (!conns_.Insert(KeyOf(*c), c->index)) {
    counters_.tcp_syn_no_memory++;
    FreeTcb(c);
    return nullptr;
  }
  return c;
}

void Stack::SendCookieSynAck(Tcb* l, const net::ParsedFrame& f) {
  tcp::TcpOptions opts;
  tcp::ParseTcpOptions(f.tcp_options, f.tcp_options_len, true, &opts);
  const uint32_t lw = AddrWord(f.ipv6, f.dst_ip, f.dst_ip6);
  const uint32_t rw = AddrWord(f.ipv6, f.src_ip, f.src_ip6);
  const tcp::CookieTuple ct{lw, f.dst_port, rw, f.src_port};
  uint16_t mss = 0;
  const uint32_t cookie = tcp::SynCookieIsn(config_.isn_key, ct, f.seq,
                                            opts.has_mss ? opts.mss : 0, now_ns_, &mss);
  opts.mss = mss;  // the peer is held to the MSS the cookie can encode
  opts.has_mss = true;
  Tcb* t = &cookie_tcb_;
  SetAddressesFrom(t, f);
  t->local_mac = config_.local_mac;
  t->user_mss = l->user_mss;
  t->user_rcvbuf = l->user_rcvbuf;
  t->cc = l->cc;
  tcp::TcbInit(&ctx_, t);
  t->route_gen = 0;  // a new peer: look its next hop up
  if (!ResolveFlow(t)) return;  // the peer retransmits its SYN
  uint32_t fr = pool_.Alloc();
  if (fr == FramePool::kNone) {
    counters_.tx_no_buffer++;
    return;
  }
  const uint32_t tso = tcp::TimestampOffset(config_.isn_key, lw, f.dst_port, rw, f.src_port);
  size_t len = tcp::TcpBuildCookieSynAck(&ctx_, t, f, opts, cookie, tso, pool_.data(fr),
                                         pool_.frame_size());
  if (len == 0) {
    pool_.Free(fr);
    return;
  }
  l->last_syncookie_ns = now_ns_;
  pool_.len(fr) = static_cast<uint32_t>(len);
  QueueControl(fr);
}

bool Stack::TryCookieAck(Tcb* l, const net::ParsedFrame& f) {
  // Linux tcp_synq_no_recent_overflow: cookies are only honoured while the
  // listener recently sent some (always with tcp_syncookies=2).
  const tcp::TcpConfig& cfg = config_.tcp;
  if (cfg.syncookies == 0) return false;
  if (cfg.syncookies != 2 &&
      (l->last_syncookie_ns == 0 ||
       now_ns_ - l->last_syncookie_ns > uint64_t{tcp::kSynCookieMaxAgeMinutes} * 60 * tcp::kSec)) {
    return false;
  }
  const uint32_t lw = AddrWord(f.ipv6, f.dst_ip, f.dst_ip6);
  const uint32_t rw = AddrWord(f.ipv6, f.src_ip, f.src_ip6);
  const tcp::CookieTuple ct{lw, f.dst_port, rw, f.src_port};
  const uint16_t mss = tcp::SynCookieCheck(config_.isn_key, ct, f.seq - 1, f.ack - 1, now_ns_);
  if (mss == 0) {
    tcp_ctr_.syncookies_failed++;
    return false;
  }
  if (l->accept_count >= l->backlog) {
    counters_.listen_overflows++;  // Linux: dropped, the peer retransmits
    return true;
  }
  Tcb* c = NewChild(l, f);
  if (c == nullptr) return true;
  l->syn_count++;  // ChildEstablished moves it to the accept queue
  const uint32_t tso = tcp::TimestampOffset(config_.isn_key, lw, f.dst_port, rw, f.src_port);
  if (!tcp::TcpAcceptCookie(&ctx_, c, f, mss, tso)) {
    l->syn_count--;
    tcp_ctr_.syncookies_failed++;
    FreeTcb(c);
    return false;
  }
  return true;
}

void Stack::HandleListen(Tcb* l, const net::ParsedFrame& f) {
  tcp_ctr_.segs_in++;
  const uint8_t fl = f.tcp_flags;
  // RFC 9293 3.10.7.2 LISTEN: first RST (ignore), second ACK (RST), third SYN.
  if (fl & net::kTcpRst) return;
  if (fl & net::kTcpAck) {
    // RFC 4987 3.6: an ACK may complete a handshake answered with a cookie.
    if (!(fl & net::kTcpSyn) && TryCookieAck(l, f)) return;
    SendRstForSegment(f);
    return;
  }
  if (!(fl & net::kTcpSyn) || (fl & net::kTcpFin)) return;  // Linux drops SYN+FIN
  // Linux tcp_conn_request: a full accept queue drops the SYN; a full SYN
  // queue (the listen backlog) answers with a cookie when tcp_syncookies
  // allows, else drops it (as does tcp_max_syn_backlog without cookies).
  if (l->accept_count >= l->backlog) {
    counters_.listen_overflows++;
    return;
  }
  const uint8_t cookies = config_.tcp.syncookies;
  if (cookies == 2 || (l->syn_count >= l->backlog && cookies == 1)) {
    SendCookieSynAck(l, f);
    return;
  }
  if (l->syn_count >= l->backlog || l->syn_count >= config_.max_syn_backlog) {
    counters_.tcp_syn_backlog_drops++;
    counters_.listen_drops++;
    return;
  }
  Tcb* c = NewChild(l, f);
  if (c == nullptr) return;
  l->syn_count++;
  tcp::TcpOptions opts;
  tcp::ParseTcpOptions(f.tcp_options, f.tcp_options_len, true, &opts);
  const uint32_t lw = AddrWord(c->ipv6, c->local_ip, c->local_ip6);
  const uint32_t rw = AddrWord(c->ipv6, c->remote_ip, c->remote_ip6);
  uint32_t iss = tcp::GenerateIsn(config_.isn_key, lw, c->local_port, rw, c->remote_port, now_ns_);
  uint32_t tso = tcp::TimestampOffset(config_.isn_key, lw, c->local_port, rw, c->remote_port);
  tcp::TcpAcceptSyn(&ctx_, c, f, opts, iss, tso);
}

void Stack::HandleUdp(const net::ParsedFrame& f) {
  counters_.udp_in++;
  const uint32_t dst = f.dst_ip;
  auto deliver = [&](uint32_t i) {
    udp::UdpEndpoint* ep = udp_.Get(i);
    if (ep->queue->Push(f.src_ip, f.src_port, dst, f.payload, f.payload_len)) {
      ep->rx_datagrams++;
      NotifyUdp(i, kUdpReadable);
    } else {
      ep->rx_dropped++;
      counters_.udp_queue_full++;
    }
  };
  const bool mcast = net::IsIpv4Multicast(dst);
  const bool bcast = dst == net::kIpv4Broadcast || dst == (config_.local_ip | ~netmask_);
  if (mcast || bcast) {
    bool any = false;
    udp_.ForEachGroupReceiver(dst, f.dst_port, mcast, [&](uint32_t i) {
      any = true;
      deliver(i);
    });
    if (!any) counters_.udp_no_port++;
    return;
  }
  if (!IsLocalAddress(dst)) {
    counters_.rx_not_for_us++;
    return;
  }
  uint32_t i = udp_.LookupUnicast(dst, f.dst_port, f.src_ip, f.src_port);
  if (i == udp::UdpTable::kNone) {
    counters_.udp_no_port++;  // the kernel would send ICMP port unreachable
    return;
  }
  deliver(i);
}

}  // namespace offload::stack
