// Conversions between the endpoints an application passes or is shown
// (InetName: sockaddr_in or sockaddr_in6, in its socket's family) and the
// canonical form the offload paths work with (shm::SockAddr: IPv4 and
// v4-mapped IPv6 as AF_INET, other IPv6 as AF_INET6), plus the pieces of
// the attach protocol that carry them. One code path serves AF_INET and
// AF_INET6 sockets: only what is shown to the application depends on the
// socket's family.
//
// Thread safety: pure functions.

#ifndef OFFLOAD_CLIENT_INET_NAME_H_
#define OFFLOAD_CLIENT_INET_NAME_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include "client/socket.h"
#include "shm/abi.h"
#include "shm/sockaddr.h"

namespace offload {
namespace client {

// True if `a` (`len` bytes) is an endpoint a socket of `family` takes:
// AF_INET for AF_INET, AF_INET6 for AF_INET6, of the family's full size.
inline bool IsInetOf(int family, const sockaddr* a, socklen_t len) {
  if (a == nullptr || a->sa_family != family) return false;
  return len >= (family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
}

// The canonical form of `n` (all zero with family 0 when `n` is unset).
inline shm::SockAddr Canonical(const InetName& n) {
  shm::SockAddr s = {};
  shm::FromSockaddr(&n.sa, sizeof(n), &s);
  return s;
}

// `s` as a socket of `family` shows it (an IPv4 endpoint v4-mapped for
// AF_INET6).
inline InetName NameIn(const shm::SockAddr& s, int family) {
  InetName n;
  shm::ToSockaddr(s, family, &n.v6);
  return n;
}

// Length of `n` as returned by getsockname() and friends.
inline socklen_t NameLen(const InetName& n) {
  return n.sa.sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

// Copies `n` to an application buffer as Linux does: at most *len bytes,
// *len set to the full length.
inline void CopyName(const InetName& n, sockaddr* addr, socklen_t* len) {
  const socklen_t full = NameLen(n);
  memcpy(addr, &n, *len < full ? *len : full);
  *len = full;
}

// True for an address of this host that only the loopback reaches:
// 127.0.0.0/8 (also v4-mapped) and ::1.
inline bool IsLoopback(const shm::SockAddr& s) {
  if (s.family == AF_INET) return s.addr[0] == 127;
  static constexpr uint8_t kOne[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return memcmp(s.addr, kOne, 16) == 0;
}

// Puts the canonical endpoint `s` in a message: IPv4 in `a`; IPv6 with the
// port in `a` and, when `a6` is given, the address there.
inline void ToMsg(const shm::SockAddr& s, shm::Addr4* a, shm::Dst6* a6) {
  a->port = s.port;
  a->addr = s.family == AF_INET ? shm::V4Of(s) : 0;
  if (a6 != nullptr && s.family == AF_INET6) {
    memcpy(a6->addr, s.addr, 16);
    a6->family = AF_INET6;
    a6->scope_id = s.scope_id;
  }
}

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_INET_NAME_H_
