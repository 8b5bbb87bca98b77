// Which same-host connections an offloaded TCP listener takes, for IPv4,
// IPv6 and dual-stack listeners alike: addresses are compared in their
// 16-byte form (IPv4 v4-mapped, shm/sockaddr.h), the way Linux's
// inet6_bind / inet_lookup pick a listener:
//   * an AF_INET listener takes IPv4 destinations (its address, or any
//     local one if it is bound to 0.0.0.0);
//   * an AF_INET6 listener takes IPv6 destinations (its address, or any
//     local one if it is bound to ::) and, unless IPV6_V6ONLY is set,
//     IPv4 ones the same way (bound to :: or to ::ffff:a.b.c.d).
//
// Thread safety: pure functions, apart from the interface lookup of
// IsLocalAddress6 (getifaddrs).

#ifndef OFFLOAD_DAEMON_SESSION_LISTEN_ADDR_H_
#define OFFLOAD_DAEMON_SESSION_LISTEN_ADDR_H_

#include <cstdint>
#include <functional>

namespace offload {
namespace session {

struct ListenAddr {
  uint8_t addr[16] = {};  // 16-byte form
  int family = 0;         // of the listening socket: AF_INET or AF_INET6
  bool v6only = false;    // AF_INET6 with IPV6_V6ONLY
};

// The address the listening socket `fd` is bound to, read from the kernel
// (the proof; nothing the process claims). Returns false for a socket that
// is neither AF_INET nor AF_INET6 or that getsockname() rejects; `*port`
// is its port in network order.
bool ListenAddrOf(int fd, ListenAddr* out, uint16_t* port);

// True if a connection to `dst` (16-byte form) on the listener's port is
// the listener's. `is_local(dst)` answers whether an address is one of this
// host's (called only for listeners bound to a wildcard).
bool ListenerTakes(const ListenAddr& l, const uint8_t dst[16],
                   const std::function<bool()>& is_local);
// True if `l` is bound to the wildcard of its family (0.0.0.0, ::).
bool IsWildcard(const ListenAddr& l);

// True for ::1 and the IPv6 addresses of this network namespace's
// interfaces (v4-mapped addresses are not IPv6 ones: ask IsLocalAddress).
bool IsLocalAddress6(const uint8_t a[16]);

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_LISTEN_ADDR_H_
