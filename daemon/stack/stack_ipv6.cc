// Stack: flows of either family (connection and listener keys), and TCP over
// IPv6 (RFC 8200): listen/connect, routes, and neighbours. The kernel is the
// only neighbour resolver for IPv6 as for IPv4 (RFC 4861 neighbour discovery
// stays with it; the XDP program passes ICMPv6): the stack asks
// NeighborRequester::RequestResolution6 and waits for SeedNeighbor6.
#include <errno.h>

#include <algorithm>
#include <cstring>

#include "daemon/stack/stack.h"

namespace offload::stack {

using tcp::Tcb;
using tcp::TcpState;

namespace {

net::Ip6Addr Mapped(bool ipv6, uint32_t v4, const net::Ip6Addr& v6) {
  return ipv6 ? v6 : net::Ip6Addr::V4Mapped(v4);
}

// True if `a` and `b` agree on their first `prefix_len` bits.
bool SamePrefix(const net::Ip6Addr& a, const net::Ip6Addr& b, uint8_t prefix_len) {
  const uint8_t full = std::min<uint8_t>(prefix_len, 128) / 8;
  if (std::memcmp(a.b, b.b, full) != 0) return false;
  const uint8_t rest = std::min<uint8_t>(prefix_len, 128) % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return ((a.b[full] ^ b.b[full]) & mask) == 0;
}

}  // namespace

Stack::TupleKey Stack::KeyOf(const Tcb& t) {
  return TupleKey{Mapped(t.ipv6, t.local_ip, t.local_ip6),
                  Mapped(t.ipv6, t.remote_ip, t.remote_ip6), t.local_port, t.remote_port};
}

Stack::TupleKey Stack::SegmentKey(const net::ParsedFrame& f) {
  return TupleKey{Mapped(f.ipv6, f.dst_ip, f.dst_ip6), Mapped(f.ipv6, f.src_ip, f.src_ip6),
                  f.dst_port, f.src_port};
}

void Stack::SetAddressesFrom(Tcb* t, const net::ParsedFrame& f) {
  t->ipv6 = f.ipv6;
  t->local_ip = f.dst_ip;
  t->remote_ip = f.src_ip;
  t->local_ip6 = f.dst_ip6;
  t->remote_ip6 = f.src_ip6;
  t->local_port = f.dst_port;
  t->remote_port = f.src_port;
}

uint32_t Stack::AddrWord(bool ipv6, uint32_t v4, const net::Ip6Addr& v6) const {
  return ipv6 ? tcp::Ip6Digest(config_.isn_key, v6.b) : v4;
}

uint32_t Stack::FindListener(const net::ParsedFrame& f) const {
  const ListenKey specific =
      f.ipv6 ? ListenKey6(f.dst_ip6, f.dst_port) : ListenKey4(f.dst_ip, f.dst_port);
  uint32_t l = listeners_.Find(specific);
  if (l != net::IndexMap<ListenKey>::kNone) return l;
  return listeners_.Find(ListenKey{net::Ip6Addr{}, f.dst_port, f.ipv6});
}

void Stack::EraseListenKeys(const Tcb& t) {
  if (!t.ipv6) {
    listeners_.Erase(ListenKey4(t.local_ip, t.local_port));
    return;
  }
  listeners_.Erase(ListenKey6(t.local_ip6, t.local_port));
  if (t.dual_stack) listeners_.Erase(ListenKey4(0, t.local_port));
}

int Stack::TcpListen6(const net::Ip6Addr& local_ip, uint16_t port, bool v6only, int backlog,
                      uint64_t cookie, FlowId* out, const tcp::SocketOptions* options) {
  if (port == 0) return EINVAL;
  // RFC 4291 2.5.5.2: a v4-mapped address is the IPv4 address.
  if (local_ip.IsV4Mapped()) {
    if (v6only) return EADDRNOTAVAIL;
    return TcpListen(local_ip.V4(), port, backlog, cookie, out, options);
  }
  const bool any = local_ip.IsUnspecified();
  if (!any && !IsLocalAddress6(local_ip)) return EADDRNOTAVAIL;
  const bool dual = any && !v6only;
  const auto taken = [&](const ListenKey& k) {
    return listeners_.Find(k) != net::IndexMap<ListenKey>::kNone;
  };
  if (taken(ListenKey6(local_ip, port)) || taken(ListenKey6(net::Ip6Addr{}, port)) ||
      (any && !config_.local_ip6.IsUnspecified() && taken(ListenKey6(config_.local_ip6, port))) ||
      (dual && (taken(ListenKey4(0, port)) || taken(ListenKey4(config_.local_ip, port))))) {
    return EADDRINUSE;
  }
  Tcb* l = AllocTcb();
  if (l == nullptr) return ENOBUFS;
  l->state = TcpState::kListen;
  l->ipv6 = true;
  l->dual_stack = dual;
  l->local_ip6 = local_ip;
  l->local_port = port;
  l->backlog = static_cast<uint32_t>(std::clamp(backlog, 1, 4096));  // Linux somaxconn
  l->cookie = cookie;
  l->cc = config_.tcp.cc;
  l->accepted = true;
  if (options != nullptr) {
    if (int err = tcp::TcpApplyOptions(&ctx_, l, *options); err != 0) {
      FreeTcb(l);
      return err;
    }
  }
  if (!listeners_.Insert(ListenKey6(local_ip, port), l->index)) {
    FreeTcb(l);
    return ENOBUFS;
  }
  if (dual && !listeners_.Insert(ListenKey4(0, port), l->index)) {
    listeners_.Erase(ListenKey6(local_ip, port));
    FreeTcb(l);
    return ENOBUFS;
  }
  *out = IdOf(l);
  return 0;
}

int Stack::TcpConnect6(const net::Ip6Addr& remote_ip, uint16_t remote_port, uint16_t local_port,
                       const tcp::RingMemory& tx, const tcp::RingMemory& rx, uint64_t cookie,
                       FlowId* out, const char* congestion,
                       const tcp::SocketOptions* options) {
  if (remote_ip.IsV4Mapped()) {
    return TcpConnect(remote_ip.V4(), remote_port, local_port, tx, rx, cookie, out, congestion,
                      options);
  }
  if (remote_ip.IsUnspecified() || remote_port == 0 || !tx.valid() || !rx.valid()) return EINVAL;
  if (remote_ip.IsMulticast() || config_.local_ip6.IsUnspecified()) return ENETUNREACH;
  Tcb* t = AllocTcb();
  if (t == nullptr) return ENOBUFS;
  t->ipv6 = true;
  t->local_ip6 = config_.local_ip6;
  t->remote_ip6 = remote_ip;
  t->remote_port = remote_port;
  return StartConnect(t, local_port, tx, rx, cookie, out, congestion, options);
}

int Stack::TcpGetAddresses6(FlowId flow, bool* ipv6, net::Ip6Addr* lip, uint16_t* lport,
                            net::Ip6Addr* rip, uint16_t* rport) {
  Tcb* t = GetTcb(flow);
  if (t == nullptr) return EBADF;
  *ipv6 = t->ipv6;
  // A wildcard IPv4 listener has local_ip 0: reported as ::, not ::ffff:0.0.0.0.
  *lip = t->ipv6 || t->local_ip != 0 ? Mapped(t->ipv6, t->local_ip, t->local_ip6)
                                     : net::Ip6Addr{};
  *rip = t->ipv6 || t->remote_ip != 0 ? Mapped(t->ipv6, t->remote_ip, t->remote_ip6)
                                      : net::Ip6Addr{};
  *lport = t->local_port;
  *rport = t->remote_port;
  return 0;
}

// ---------------------------------------------------------------------------
// Routes and neighbours

void Stack::SetLocalIp6(const net::Ip6Addr& ip, uint8_t prefix_len) {
  config_.local_ip6 = ip;
  config_.prefix_len6 = prefix_len;
  if (++route_gen_ == 0) route_gen_ = 1;
}

void Stack::SetRoutes6(const std::vector<StackRoute6>& routes) {
  routes6_ = routes;
  std::stable_sort(routes6_.begin(), routes6_.end(),
                   [](const StackRoute6& a, const StackRoute6& b) {
                     return a.prefix_len > b.prefix_len;
                   });
  if (++route_gen_ == 0) route_gen_ = 1;
}

net::Ip6Addr Stack::NextHop6(const net::Ip6Addr& dst) const {
  // Link-local destinations are always on-link (RFC 4291 2.5.6).
  if (dst.IsLinkLocal()) return dst;
  for (const StackRoute6& r : routes6_) {
    if (SamePrefix(dst, r.dst, r.prefix_len)) {
      return r.gateway.IsUnspecified() ? dst : r.gateway;
    }
  }
  if (config_.gateway6.IsUnspecified() ||
      SamePrefix(dst, config_.local_ip6, config_.prefix_len6)) {
    return dst;
  }
  return config_.gateway6;
}

void Stack::SeedNeighbor6(const net::Ip6Addr& ip, const net::MacAddr& mac, bool permanent) {
  nd_.SeedNeighbor(ip, mac, now_ns_, permanent);
  OnNeighborResolved6(ip);
}

void Stack::ForgetNeighbor6(const net::Ip6Addr& ip) {
  uint32_t pending[net::NdCache::kMaxPendingLimit];
  size_t n = nd_.TakePending(ip, pending, net::NdCache::kMaxPendingLimit);
  for (size_t i = 0; i < n; ++i) pool_.Free(pending[i]);
  nd_.Remove(ip);
}

void Stack::RequestNeighbor6(const net::Ip6Addr& ip) {
  counters_.neighbor_requests++;
  if (config_.neighbours != nullptr) config_.neighbours->RequestResolution6(ip);
}

bool Stack::ResolveFlow6(Tcb* t) {
  if (t->route_gen != route_gen_) {
    t->next_hop6 = NextHop6(t->remote_ip6);
    t->route_gen = route_gen_;
  }
  bool send_request = false;
  net::MacAddr mac;
  net::NeighborResult r = nd_.Lookup(t->next_hop6, now_ns_, &mac, &send_request);
  if (send_request) RequestNeighbor6(t->next_hop6);
  if (r == net::NeighborResult::kResolved) {
    t->remote_mac = mac;
    t->waiting_neighbor = false;
    return true;
  }
  t->waiting_neighbor = true;
  counters_.neighbor_unresolved++;
  return false;
}

void Stack::OnNeighborResolved6(const net::Ip6Addr& ip) {
  net::MacAddr mac;
  bool unused;
  if (nd_.Lookup(ip, now_ns_, &mac, &unused) != net::NeighborResult::kResolved) return;
  uint32_t pending[net::NdCache::kMaxPendingLimit];
  size_t n = nd_.TakePending(ip, pending, net::NdCache::kMaxPendingLimit);
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(pool_.data(pending[i]), mac.b, 6);
    QueueControl(pending[i]);
  }
  for (Tcb& t : tcbs_) {
    if (t.in_use && t.waiting_neighbor &&
        (t.route_gen != route_gen_ || (t.ipv6 && t.next_hop6 == ip))) {
      t.waiting_neighbor = false;
      ScheduleOutput(&t);
    }
  }
}

}  // namespace offload::stack
