// UDP endpoint table and demultiplexing; see udp_table.h.
#include "daemon/udp/udp_table.h"

#include <errno.h>

#include "daemon/net/headers.h"

namespace offload::udp {

UdpTable::UdpTable(uint32_t max_endpoints, uint32_t rcvbuf_bytes)
    : rcvbuf_bytes_(rcvbuf_bytes),
      eps_(max_endpoints),
      bound_(max_endpoints),
      bound6_(max_endpoints),
      connected_(max_endpoints),
      port_heads_(max_endpoints) {
  for (uint32_t i = max_endpoints; i > 0; --i) free_.push_back(i - 1);
}

bool UdpTable::PortInUse(uint16_t port) const {
  return port_heads_.Find(PortKey{port}) != kNone;
}

int UdpTable::Bind(uint32_t local_ip, uint16_t port, bool reuse, uint64_t cookie,
                   uint32_t* index) {
  return Add(Scope{true, local_ip, false, net::Ip6Addr{}}, false, port, reuse, cookie, index);
}

int UdpTable::Bind6(const net::Ip6Addr& local_ip, uint16_t port, bool v6only, bool reuse,
                    uint64_t cookie, uint32_t* index) {
  // RFC 4291 2.5.5.2: a v4-mapped address is the IPv4 address.
  if (local_ip.IsV4Mapped()) {
    return Add(Scope{true, local_ip.V4(), false, net::Ip6Addr{}}, true, port, reuse, cookie,
               index);
  }
  const bool dual = local_ip.IsUnspecified() && !v6only;
  return Add(Scope{dual, 0, true, local_ip}, true, port, reuse, cookie, index);
}

int UdpTable::Add(const Scope& scope, bool ipv6, uint16_t port, bool reuse, uint64_t cookie,
                  uint32_t* index) {
  // Linux: a port can be shared only if every user set SO_REUSEADDR; a
  // wildcard bind conflicts with any specific bind of its family on the port.
  for (uint32_t i = port_heads_.Find(PortKey{port}); i != kNone; i = eps_[i].next_same_port) {
    const UdpEndpoint& e = eps_[i];
    const bool overlap4 = scope.v4 && e.takes_v4 &&
                          (e.local_ip == 0 || scope.ip == 0 || e.local_ip == scope.ip);
    const bool overlap6 = scope.v6 && e.takes_v6 &&
                          (e.local_ip6.IsUnspecified() || scope.ip6.IsUnspecified() ||
                           e.local_ip6 == scope.ip6);
    if ((overlap4 || overlap6) && !(reuse && e.reuse)) return EADDRINUSE;
  }
  if (free_.empty()) return ENOBUFS;
  uint32_t idx = free_.back();
  free_.pop_back();
  UdpEndpoint& e = eps_[idx];
  uint32_t gen = e.generation + 1;
  std::unique_ptr<DatagramQueue> q = std::move(e.queue);
  // A stale entry in the owner's event queue may still name this slot; keep
  // the flag so the slot is never queued twice.
  bool in_event_list = e.in_event_list;
  e = UdpEndpoint{};
  e.in_event_list = in_event_list;
  e.generation = gen;
  e.in_use = true;
  e.reuse = reuse;
  e.ipv6 = ipv6;
  e.takes_v4 = scope.v4;
  e.takes_v6 = scope.v6;
  e.local_ip = scope.ip;
  e.local_ip6 = scope.ip6;
  e.local_port = port;
  e.cookie = cookie;
  // Queues are allocated at first bind of a slot and reused (control path).
  e.queue = q ? std::move(q) : std::make_unique<DatagramQueue>(rcvbuf_bytes_);
  while (e.queue->count() > 0) {
    DatagramInfo info;
    e.queue->Pop(nullptr, 0, &info);
  }
  // Sharing an address (SO_REUSEADDR), an AF_INET endpoint takes its IPv4
  // datagrams before a dual-stack one (Linux scores AF_INET sockets higher).
  const uint32_t holder = scope.v4 ? bound_.Find(AddrKey{scope.ip, port}) : kNone;
  if (scope.v4 && (holder == kNone || (!ipv6 && eps_[holder].ipv6))) {
    bound_.Insert(AddrKey{scope.ip, port}, idx);
  }
  if (scope.v6 && bound6_.Find(AddrKey6{scope.ip6, port}) == kNone) {
    bound6_.Insert(AddrKey6{scope.ip6, port}, idx);
  }
  e.next_same_port = port_heads_.Find(PortKey{port});
  port_heads_.Insert(PortKey{port}, idx);
  *index = idx;
  return 0;
}

int UdpTable::Connect(uint32_t index, uint32_t remote_ip, uint16_t remote_port) {
  UdpEndpoint* e = Get(index);
  if (e == nullptr) return EBADF;
  if (e->connected) {
    connected_.Erase(TupleKey{e->local_ip, e->remote_ip, e->local_port, e->remote_port});
    e->connected = false;
  }
  if (remote_ip == 0) return 0;  // AF_UNSPEC: dissolve the association
  if (remote_port == 0) return EINVAL;
  e->remote_ip = remote_ip;
  e->remote_port = remote_port;
  e->connected = true;
  connected_.Insert(TupleKey{e->local_ip, remote_ip, e->local_port, remote_port}, index);
  return 0;
}

int UdpTable::JoinGroup(uint32_t index, uint32_t group) {
  UdpEndpoint* e = Get(index);
  if (e == nullptr) return EBADF;
  if (!net::IsIpv4Multicast(group)) return EINVAL;
  for (uint32_t g = 0; g < e->num_groups; ++g) {
    if (e->groups[g] == group) return EADDRINUSE;  // Linux
  }
  if (e->num_groups >= kMaxGroups) return ENOBUFS;
  e->groups[e->num_groups++] = group;
  return 0;
}

int UdpTable::LeaveGroup(uint32_t index, uint32_t group) {
  UdpEndpoint* e = Get(index);
  if (e == nullptr) return EBADF;
  for (uint32_t g = 0; g < e->num_groups; ++g) {
    if (e->groups[g] == group) {
      e->groups[g] = e->groups[--e->num_groups];
      return 0;
    }
  }
  return EADDRNOTAVAIL;
}

bool UdpTable::IsMember(uint32_t group) const {
  for (const UdpEndpoint& e : eps_) {
    if (!e.in_use) continue;
    for (uint32_t g = 0; g < e.num_groups; ++g) {
      if (e.groups[g] == group) return true;
    }
  }
  return false;
}

void UdpTable::UnlinkPort(uint32_t index) {
  UdpEndpoint& e = eps_[index];
  PortKey pk{e.local_port};
  uint32_t head = port_heads_.Find(pk);
  if (head == index) {
    if (e.next_same_port == kNone) {
      port_heads_.Erase(pk);
    } else {
      port_heads_.Insert(pk, e.next_same_port);
    }
  } else {
    for (uint32_t i = head; i != kNone; i = eps_[i].next_same_port) {
      if (eps_[i].next_same_port == index) {
        eps_[i].next_same_port = e.next_same_port;
        break;
      }
    }
  }
  // Re-point the bound entries at another endpoint with the same address.
  AddrKey ak{e.local_ip, e.local_port};
  if (e.takes_v4 && bound_.Find(ak) == index) {
    bound_.Erase(ak);
    uint32_t next = kNone;
    for (uint32_t i = port_heads_.Find(pk); i != kNone; i = eps_[i].next_same_port) {
      if (i != index && eps_[i].takes_v4 && eps_[i].local_ip == e.local_ip &&
          (next == kNone || (eps_[next].ipv6 && !eps_[i].ipv6))) {
        next = i;
      }
    }
    if (next != kNone) bound_.Insert(ak, next);
  }
  AddrKey6 ak6{e.local_ip6, e.local_port};
  if (e.takes_v6 && bound6_.Find(ak6) == index) {
    bound6_.Erase(ak6);
    for (uint32_t i = port_heads_.Find(pk); i != kNone; i = eps_[i].next_same_port) {
      if (i != index && eps_[i].takes_v6 && eps_[i].local_ip6 == e.local_ip6) {
        bound6_.Insert(ak6, i);
        break;
      }
    }
  }
}

void UdpTable::Close(uint32_t index) {
  UdpEndpoint* e = Get(index);
  if (e == nullptr) return;
  if (e->connected) {
    connected_.Erase(TupleKey{e->local_ip, e->remote_ip, e->local_port, e->remote_port});
  }
  UnlinkPort(index);
  e->in_use = false;
  e->connected = false;
  free_.push_back(index);
}

uint32_t UdpTable::LookupUnicast(uint32_t dst_ip, uint16_t dst_port, uint32_t src_ip,
                                 uint16_t src_port) const {
  uint32_t i = connected_.Find(TupleKey{dst_ip, src_ip, dst_port, src_port});
  if (i != kNone) return i;
  i = connected_.Find(TupleKey{0, src_ip, dst_port, src_port});
  if (i != kNone) return i;
  i = bound_.Find(AddrKey{dst_ip, dst_port});
  if (i != kNone && !eps_[i].connected) return i;
  i = bound_.Find(AddrKey{0, dst_port});
  if (i != kNone && !eps_[i].connected) return i;
  return kNone;
}

uint32_t UdpTable::LookupUnicast6(const net::Ip6Addr& dst_ip, uint16_t dst_port) const {
  uint32_t i = bound6_.Find(AddrKey6{dst_ip, dst_port});
  if (i != kNone) return i;
  return bound6_.Find(AddrKey6{net::Ip6Addr{}, dst_port});
}

}  // namespace offload::udp
