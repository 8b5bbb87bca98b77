// Stack: the TCP and UDP operations applications request (via the daemon).
#include <errno.h>

#include <algorithm>
#include <cstring>

#include "daemon/net/checksum.h"
#include "daemon/stack/stack.h"

namespace offload::stack {

using tcp::Tcb;
using tcp::TcpState;

namespace {
constexpr uint32_t kNoIndex = 0xffffffffu;
constexpr int kSomaxconn = 4096;  // Linux net.core.somaxconn
}  // namespace

uint16_t Stack::PickEphemeralPort(const TupleKey& to, bool udp) {
  const uint32_t lo = config_.ephemeral_port_lo;
  const uint32_t range = uint32_t{config_.ephemeral_port_hi} - lo + 1;
  // RFC 6056 3.3.3-like: a per-destination offset plus a running counter.
  const bool v6 = !to.rip.IsV4Mapped() && !to.rip.IsUnspecified();
  const uint32_t rip = AddrWord(v6, to.rip.IsV4Mapped() ? to.rip.V4() : 0, to.rip);
  uint32_t offset = static_cast<uint32_t>(
      tcp::SipHash4Tuple(config_.isn_key, config_.local_ip, 0, rip, to.rport, 2));
  for (uint32_t i = 0; i < range; ++i) {
    uint16_t port = static_cast<uint16_t>(lo + (offset + next_ephemeral_ + i) % range);
    bool busy;
    if (udp) {
      busy = udp_.PortInUse(port);
    } else {
      TupleKey k = to;
      k.lport = port;
      // A listener of the flow's family on the port (any or its address).
      busy = conns_.Find(k) != net::IndexMap<TupleKey>::kNone ||
             listeners_.Find(ListenKey{net::Ip6Addr{}, port, v6}) !=
                 net::IndexMap<ListenKey>::kNone ||
             listeners_.Find(ListenKey{to.lip, port, v6}) != net::IndexMap<ListenKey>::kNone;
    }
    if (!busy) {
      next_ephemeral_ += i + 1;
      return port;
    }
  }
  return 0;
}

int Stack::TcpListen(uint32_t local_ip, uint16_t port, int backlog, uint64_t cookie,
                     FlowId* out, const tcp::SocketOptions* options) {
  if (port == 0) return EINVAL;
  if (local_ip != 0 && !IsLocalAddress(local_ip)) return EADDRNOTAVAIL;
  // A wildcard listener conflicts with a specific one on the port and back.
  if (listeners_.Find(ListenKey4(local_ip, port)) != net::IndexMap<ListenKey>::kNone ||
      listeners_.Find(ListenKey4(0, port)) != net::IndexMap<ListenKey>::kNone ||
      (local_ip == 0 &&
       listeners_.Find(ListenKey4(config_.local_ip, port)) != net::IndexMap<ListenKey>::kNone)) {
    return EADDRINUSE;
  }
  Tcb* l = AllocTcb();
  if (l == nullptr) return ENOBUFS;
  l->state = TcpState::kListen;
  l->local_ip = local_ip;
  l->local_port = port;
  // Linux: backlog is clamped to somaxconn; 0 still admits one connection.
  l->backlog = static_cast<uint32_t>(std::clamp(backlog, 1, kSomaxconn));
  l->cookie = cookie;
  l->cc = config_.tcp.cc;
  l->accepted = true;  // listeners are application handles
  if (options != nullptr) {
    if (int err = tcp::TcpApplyOptions(&ctx_, l, *options); err != 0) {
      FreeTcb(l);
      return err;
    }
  }
  if (!listeners_.Insert(ListenKey4(local_ip, port), l->index)) {
    FreeTcb(l);
    return ENOBUFS;
  }
  *out = IdOf(l);
  return 0;
}

int Stack::TcpConnect(uint32_t remote_ip, uint16_t remote_port, uint16_t local_port,
                      const tcp::RingMemory& tx, const tcp::RingMemory& rx, uint64_t cookie,
                      FlowId* out, const char* congestion,
                      const tcp::SocketOptions* options) {
  if (remote_ip == 0 || remote_port == 0 || !tx.valid() || !rx.valid()) return EINVAL;
  if (net::IsIpv4Multicast(remote_ip) || remote_ip == net::kIpv4Broadcast) return ENETUNREACH;
  Tcb* t = AllocTcb();
  if (t == nullptr) return ENOBUFS;
  t->local_ip = config_.local_ip;
  t->remote_ip = remote_ip;
  t->remote_port = remote_port;
  return StartConnect(t, local_port, tx, rx, cookie, out, congestion, options);
}

int Stack::StartConnect(Tcb* t, uint16_t local_port, const tcp::RingMemory& tx,
                        const tcp::RingMemory& rx, uint64_t cookie, FlowId* out,
                        const char* congestion, const tcp::SocketOptions* options) {
  const tcp::CcOps* cc = config_.tcp.cc;
  if (congestion != nullptr) {
    cc = tcp::FindCongestionControl(congestion);
    if (cc == nullptr) {
      FreeTcb(t);
      return ENOENT;
    }
  }
  TupleKey key = KeyOf(*t);
  if (local_port == 0) {
    local_port = PickEphemeralPort(key, false);
    if (local_port == 0) {
      FreeTcb(t);
      return EADDRNOTAVAIL;
    }
  } else {
    key.lport = local_port;
    if (conns_.Find(key) != net::IndexMap<TupleKey>::kNone) {
      FreeTcb(t);
      return EADDRINUSE;
    }
  }
  t->local_port = local_port;
  key.lport = local_port;
  t->cookie = cookie;
  t->accepted = true;
  t->cc = cc;
  t->tx.Attach(tx);
  t->rx.Attach(rx);
  tcp::TcbInit(&ctx_, t);
  // Options set before connect() shape the SYN (TCP_MAXSEG, SO_RCVBUF's
  // window scale) and the connection from its start.
  if (options != nullptr) {
    if (int err = tcp::TcpApplyOptions(&ctx_, t, *options); err != 0) {
      FreeTcb(t);
      return err;
    }
  }
  if (!conns_.Insert(key, t->index)) {
    FreeTcb(t);
    return ENOBUFS;
  }
  const uint32_t lw = AddrWord(t->ipv6, t->local_ip, t->local_ip6);
  const uint32_t rw = AddrWord(t->ipv6, t->remote_ip, t->remote_ip6);
  uint32_t iss = tcp::GenerateIsn(config_.isn_key, lw, local_port, rw, t->remote_port, now_ns_);
  uint32_t tso = tcp::TimestampOffset(config_.isn_key, lw, local_port, rw, t->remote_port);
  tcp::TcpConnect(&ctx_, t, iss, tso);
  *out = IdOf(t);
  return 0;
}

int Stack::TcpAccept(FlowId listener, uint64_t child_cookie, FlowId* child) {
  Tcb* l = GetTcb(listener);
  if (l == nullptr) return EBADF;
  if (l->state != TcpState::kListen) return EINVAL;
  if (l->accept_head == kNoIndex) return EAGAIN;
  Tcb* c = &tcbs_[l->accept_head];
  l->accept_head = c->next_in_queue;
  if (l->accept_head == kNoIndex) l->accept_tail = kNoIndex;
  l->accept_count--;
  c->next_in_queue = kNoIndex;
  c->in_accept_queue = false;
  c->accepted = true;
  c->listener = kNoIndex;
  c->cookie = child_cookie;
  // Report what happened before accept(): data, EOF, or a reset (Linux
  // returns a connection reset in the queue; its reads fail ECONNRESET).
  uint32_t ev = tcp::kEventWritable;
  if (c->rx.used() > 0) ev |= tcp::kEventReadable;
  if (c->peer_fin) ev |= tcp::kEventPeerFin | tcp::kEventReadable;
  if (c->state == TcpState::kClosed) {
    ev |= tcp::kEventClosed | (c->error != 0 ? uint32_t{tcp::kEventError} : 0u);
  }
  Notify(c, ev);
  *child = IdOf(c);
  return 0;
}

int Stack::TcpSend(FlowId flow, bool more) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  switch (t->state) {
    case TcpState::kListen:
      return ENOTCONN;
    case TcpState::kClosed:
      return t->error != 0 ? t->error : EPIPE;
    default:
      break;
  }
  if (t->fin_queued) return EPIPE;
  tcp::TcpSendReady(&ctx_, t, more);
  return 0;
}

int Stack::TcpReceiveCredit(FlowId flow) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  tcp::TcpReceiveCredit(&ctx_, t);
  return 0;
}

int Stack::TcpShutdown(FlowId flow, bool read, bool write) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  if (t->state == TcpState::kListen || t->state == TcpState::kClosed) return ENOTCONN;
  (void)read;  // SHUT_RD has no effect on the wire (as Linux)
  if (write) tcp::TcpShutdownWrite(&ctx_, t);
  return 0;
}

void Stack::AbortChildren(Tcb* l) {
  for (Tcb& c : tcbs_) {
    if (c.in_use && c.passive && !c.accepted && c.listener == l->index) {
      // Linux inet_csk_listen_stop: unaccepted children are reset (those
      // already reset are just freed).
      c.in_accept_queue = false;
      if (c.state == TcpState::kClosed) {
        FreeTcb(&c);
      } else {
        tcp::TcpAbort(&ctx_, &c, ECONNRESET);
      }
    }
  }
}

int Stack::TcpClose(FlowId flow) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  if (t->state == TcpState::kListen) {
    AbortChildren(t);
    EraseListenKeys(*t);
    t->user_released = true;
    FreeTcb(t);
    return 0;
  }
  tcp::TcpClose(&ctx_, t);
  MaybeFree(t);
  return 0;
}

int Stack::TcpAbort(FlowId flow) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  if (t->state == TcpState::kListen) return TcpClose(flow);
  t->user_released = true;
  tcp::TcpAbort(&ctx_, t, 0);
  MaybeFree(t);
  return 0;
}

int Stack::TcpSetOption(FlowId flow, tcp::TcpOpt opt, int value) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  return tcp::TcpSetOption(&ctx_, t, opt, value);
}

int Stack::TcpSetOptions(FlowId flow, const tcp::SocketOptions& options) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  return tcp::TcpApplyOptions(&ctx_, t, options);
}

int Stack::TcpGetOptions(FlowId flow, tcp::SocketOptions* options) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  *options = tcp::TcpReadOptions(*t);
  return 0;
}

int Stack::TcpGetSocketValues(FlowId flow, tcp::SocketValues* values) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  if (t->rx.attached()) t->rx.RefreshHead();
  *values = tcp::TcpGetSocketValues(config_.tcp, *t);
  return 0;
}

int Stack::TcpMarkRecordEnd(FlowId flow, uint64_t tx_index) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  if (t->state == TcpState::kListen) return ENOTCONN;
  return tcp::TcpMarkRecordEnd(&ctx_, t, tx_index);
}

int Stack::TcpSetCongestion(FlowId flow, const char* name) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  return tcp::TcpSetCongestion(&ctx_, t, name);
}

int Stack::TcpGetInfo(FlowId flow, tcp::TcpInfo* info) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  tcp::TcpFillInfo(ctx_, *t, info);
  return 0;
}

int Stack::TcpGetAddresses(FlowId flow, uint32_t* lip, uint16_t* lport, uint32_t* rip,
                           uint16_t* rport) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  *lip = t->local_ip;
  *lport = t->local_port;
  *rip = t->remote_ip;
  *rport = t->remote_port;
  return 0;
}

int Stack::TcpGetRings(FlowId flow, tcp::RingMemory* tx, tcp::RingMemory* rx) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  *tx = t->tx.memory();
  *rx = t->rx.memory();
  return 0;
}

// ---------------------------------------------------------------------------
// UDP

udp::UdpEndpoint* Stack::GetUdp(FlowId id, uint32_t* index) {
  uint32_t idx = static_cast<uint32_t>(id);
  if (idx >= config_.max_udp_endpoints) return nullptr;
  udp::UdpEndpoint* ep = udp_.Get(idx);
  if (ep == nullptr || ep->generation != static_cast<uint32_t>(id >> 32)) return nullptr;
  *index = idx;
  return ep;
}

int Stack::UdpBind(uint32_t local_ip, uint16_t port, bool reuse, uint64_t cookie, FlowId* out,
                   uint16_t* bound_port) {
  if (local_ip != 0 && !IsLocalAddress(local_ip) && !net::IsIpv4Multicast(local_ip)) {
    return EADDRNOTAVAIL;
  }
  if (port == 0) {
    port = PickEphemeralPort(TupleKey{}, true);
    if (port == 0) return EADDRINUSE;
  }
  uint32_t idx;
  int err = udp_.Bind(local_ip, port, reuse, cookie, &idx);
  if (err != 0) return err;
  *out = (uint64_t{udp_.Get(idx)->generation} << 32) | idx;
  if (bound_port != nullptr) *bound_port = port;
  return 0;
}

int Stack::UdpConnect(FlowId id, uint32_t remote_ip, uint16_t remote_port) {
  uint32_t idx;
  if (GetUdp(id, &idx) == nullptr) return EBADF;
  return udp_.Connect(idx, remote_ip, remote_port);
}

int Stack::UdpJoinGroup(FlowId id, uint32_t group) {
  uint32_t idx;
  if (GetUdp(id, &idx) == nullptr) return EBADF;
  return udp_.JoinGroup(idx, group);
}

int Stack::UdpLeaveGroup(FlowId id, uint32_t group) {
  uint32_t idx;
  if (GetUdp(id, &idx) == nullptr) return EBADF;
  return udp_.LeaveGroup(idx, group);
}

int Stack::UdpSendTo(FlowId id, uint32_t dst_ip, uint16_t dst_port, const void* data,
                     uint32_t len, int multicast_ttl) {
  uint32_t idx;
  udp::UdpEndpoint* ep = GetUdp(id, &idx);
  if (ep == nullptr) return EBADF;
  if (!ep->takes_v4) return ENETUNREACH;  // an IPv6 endpoint without IPv4 (v6-only, or bound to one)
  if (dst_ip == 0) {
    if (!ep->connected) return EDESTADDRREQ;
    dst_ip = ep->remote_ip;
    dst_port = ep->remote_port;
  }
  if (dst_port == 0) return EINVAL;
  // No fragmentation: the datagram must fit the MTU (Linux with DF: EMSGSIZE).
  if (len > config_.mtu - net::kIpv4HeaderLen - net::kUdpHeaderLen) return EMSGSIZE;
  uint32_t f = pool_.Alloc();
  if (f == FramePool::kNone) {
    counters_.tx_no_buffer++;
    return ENOBUFS;
  }
  uint8_t* p = pool_.data(f);
  net::WriteEthHeader(p, net::MacAddr{}, config_.local_mac, net::kEthTypeIpv4);
  const uint16_t l4_len = static_cast<uint16_t>(net::kUdpHeaderLen + len);
  net::Ipv4Fields ip;
  ip.src_ip = config_.local_ip;
  ip.dst_ip = dst_ip;
  ip.protocol = net::kIpProtoUdp;
  ip.id = static_cast<uint16_t>(ep->tx_datagrams + idx * 7919);
  ip.df = !net::IsIpv4Multicast(dst_ip);
  // RFC 1112 6.1: multicast TTL 1 unless the application chose one.
  ip.ttl = !net::IsIpv4Multicast(dst_ip)                  ? 64
           : multicast_ttl >= 0 && multicast_ttl <= 255 ? static_cast<uint8_t>(multicast_ttl)
                                                          : 1;
  net::WriteIpv4Header(p + net::kEthHeaderLen, ip, l4_len);
  uint8_t* l4 = p + net::kEthHeaderLen + net::kIpv4HeaderLen;
  auto* uh = reinterpret_cast<net::UdpHeader*>(l4);
  net::Store16(uh->src_port, ep->local_port);
  net::Store16(uh->dst_port, dst_port);
  net::Store16(uh->length, l4_len);
  if (len > 0) std::memcpy(l4 + net::kUdpHeaderLen, data, len);
  net::FinishL4Checksum(l4, l4_len, net::kIpProtoUdp, config_.local_ip, dst_ip);
  size_t total = net::kEthHeaderLen + net::kIpv4HeaderLen + l4_len;
  if (total < net::kMinEthFrameLen) {
    std::memset(p + total, 0, net::kMinEthFrameLen - total);
    total = net::kMinEthFrameLen;
  }
  pool_.len(f) = static_cast<uint32_t>(total);
  ep->tx_datagrams++;
  counters_.udp_out++;
  TransmitIp(f, dst_ip);
  return 0;
}

int64_t Stack::UdpRecvFrom(FlowId id, void* buf, uint32_t cap, uint32_t* src_ip,
                           uint16_t* src_port) {
  uint32_t idx;
  udp::UdpEndpoint* ep = GetUdp(id, &idx);
  if (ep == nullptr) return -EBADF;
  udp::DatagramInfo info;
  if (!ep->queue->Pop(static_cast<uint8_t*>(buf), cap, &info)) return -EAGAIN;
  if (src_ip != nullptr) *src_ip = info.src_ip;
  if (src_port != nullptr) *src_port = info.src_port;
  return info.length;
}

int Stack::UdpClose(FlowId id) {
  uint32_t idx;
  if (GetUdp(id, &idx) == nullptr) return EBADF;
  udp_.Close(idx);
  return 0;
}

}  // namespace offload::stack
