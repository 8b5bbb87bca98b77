// The address-family-dependent pieces of the wire plane's flows: steering
// keys of connections and listeners (a dual-stack listener is steered as an
// IPv6 key plus an IPv4 wildcard key, as Linux's :: socket takes both), and
// pipe-record names of IPv6 ends.

#ifndef OFFLOAD_DAEMON_WIRE_FAMILY_H_
#define OFFLOAD_DAEMON_WIRE_FAMILY_H_

#include <arpa/inet.h>

#include <cstring>

#include "daemon/net/headers.h"
#include "daemon/nic/flow.h"
#include "daemon/wire/wire_plane.h"
#include "shm/sockaddr.h"

namespace offload::wire {

inline nic::Ip6Bytes Bytes6(const net::Ip6Addr& a) {
  nic::Ip6Bytes b;
  std::memcpy(b.data(), a.b, 16);
  return b;
}

// The name of an IPv6 end in a pipe record; `port` in host order.
inline shm::SockAddr FromV6(const net::Ip6Addr& a, uint16_t port) {
  shm::SockAddr s = {};
  s.family = AF_INET6;
  s.port = htons(port);
  std::memcpy(s.addr, a.b, 16);
  return s;
}

// The steering key of an accepted connection.
inline nic::FlowKey ChildKey(const AcceptedConnection& c) {
  if (c.ipv6) {
    return nic::FlowKey::Connection6(nic::IpProto::kTcp, Bytes6(c.local_ip6), c.local_port,
                                     Bytes6(c.remote_ip6), c.remote_port);
  }
  return nic::FlowKey::Connection(nic::IpProto::kTcp, c.local_ip, c.local_port, c.remote_ip,
                                  c.remote_port);
}

// The (first) steering key of a listener.
inline nic::FlowKey ListenKeyOf(const TcpListenParams& p) {
  if (p.ipv6) return nic::FlowKey::Listener6(nic::IpProto::kTcp, Bytes6(p.local_ip6), p.port);
  return nic::FlowKey::Listener(nic::IpProto::kTcp, p.local_ip, p.port);
}

// A dual-stack listener's IPv4 key; a key with port 0 (none) otherwise.
inline nic::FlowKey DualStackKey(const TcpListenParams& p) {
  if (!p.ipv6 || p.v6only || !p.local_ip6.IsUnspecified()) return nic::FlowKey{};
  return nic::FlowKey::Listener(nic::IpProto::kTcp, 0, p.port);
}

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_FAMILY_H_
