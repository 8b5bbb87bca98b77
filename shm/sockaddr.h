// SockAddr: an IPv4 or IPv6 endpoint in shared memory (fixed size, no
// pointers), and its conversion to and from struct sockaddr.
//
// Canonical form: an IPv4 endpoint, and an IPv6 one whose address is
// v4-mapped (::ffff:a.b.c.d), are stored as AF_INET; every other IPv6
// endpoint as AF_INET6. Whoever shows an endpoint to an application
// converts it to the family of that application's socket (ToSockaddr),
// which is how one record serves an IPv4 connector and a dual-stack
// acceptor alike (Linux shows the acceptor ::ffff:a.b.c.d).
//
// Thread safety: plain data; written before the structure that holds it is
// published.

#ifndef OFFLOAD_SHM_SOCKADDR_H_
#define OFFLOAD_SHM_SOCKADDR_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>

namespace offload {
namespace shm {

struct SockAddr {
  uint16_t family;    // AF_INET, AF_INET6, or 0 (unset)
  uint16_t port;      // network order
  uint32_t flowinfo;  // AF_INET6
  uint8_t addr[16];   // AF_INET: the first 4 bytes (network order)
  uint32_t scope_id;  // AF_INET6
  uint32_t reserved;
};
static_assert(sizeof(SockAddr) == 32, "shm layout");

inline SockAddr FromSockaddrIn(const sockaddr_in& a) {
  SockAddr s = {};
  s.family = AF_INET;
  s.port = a.sin_port;
  std::memcpy(s.addr, &a.sin_addr.s_addr, 4);
  return s;
}

inline SockAddr FromV4(uint32_t addr_net, uint16_t port_net) {
  SockAddr s = {};
  s.family = AF_INET;
  s.port = port_net;
  std::memcpy(s.addr, &addr_net, 4);
  return s;
}

inline uint32_t V4Of(const SockAddr& s) {
  uint32_t a;
  std::memcpy(&a, s.addr, 4);
  return a;
}

// True for ::ffff:a.b.c.d.
inline bool IsV4Mapped(const uint8_t a[16]) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, kPrefix, 12) == 0;
}

// True for :: (in6addr_any).
inline bool IsV6Any(const uint8_t a[16]) {
  static constexpr uint8_t kZero[16] = {};
  return std::memcmp(a, kZero, 16) == 0;
}

// The canonical SockAddr of `a` (see above). Returns false, `*out` unset,
// unless `a` is an AF_INET endpoint of at least sizeof(sockaddr_in) bytes
// or an AF_INET6 one of at least sizeof(sockaddr_in6).
inline bool FromSockaddr(const sockaddr* a, socklen_t len, SockAddr* out) {
  if (a == nullptr) return false;
  if (a->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in v4;
    std::memcpy(&v4, a, sizeof(v4));
    *out = FromSockaddrIn(v4);
    return true;
  }
  if (a->sa_family != AF_INET6 || len < sizeof(sockaddr_in6)) return false;
  sockaddr_in6 v6;
  std::memcpy(&v6, a, sizeof(v6));
  SockAddr s = {};
  s.port = v6.sin6_port;
  if (IsV4Mapped(v6.sin6_addr.s6_addr)) {
    s.family = AF_INET;
    std::memcpy(s.addr, v6.sin6_addr.s6_addr + 12, 4);
  } else {
    s.family = AF_INET6;
    s.flowinfo = v6.sin6_flowinfo;
    s.scope_id = v6.sin6_scope_id;
    std::memcpy(s.addr, v6.sin6_addr.s6_addr, 16);
  }
  *out = s;
  return true;
}

// The 16-byte form of `s`'s address: an AF_INET one v4-mapped.
inline void Addr16Of(const SockAddr& s, uint8_t out[16]) {
  if (s.family == AF_INET6) {
    std::memcpy(out, s.addr, 16);
    return;
  }
  std::memset(out, 0, 10);
  out[10] = out[11] = 0xff;
  std::memcpy(out + 12, s.addr, 4);
}

// `s` as a sockaddr of `family` (AF_INET or AF_INET6) in `out`, as Linux
// shows it to a socket of that family: an IPv4 endpoint v4-mapped for an
// AF_INET6 socket. Returns the length written (sizeof(sockaddr_in) or
// sizeof(sockaddr_in6)); an AF_INET6 endpoint asked for as AF_INET (which
// no IPv4 socket can have) comes out as 0.0.0.0 with its port.
inline socklen_t ToSockaddr(const SockAddr& s, int family, sockaddr_in6* out) {
  std::memset(out, 0, sizeof(*out));
  if (family == AF_INET6) {
    out->sin6_family = AF_INET6;
    out->sin6_port = s.port;
    Addr16Of(s, out->sin6_addr.s6_addr);
    if (s.family == AF_INET6) {
      out->sin6_flowinfo = s.flowinfo;
      out->sin6_scope_id = s.scope_id;
    }
    return sizeof(sockaddr_in6);
  }
  sockaddr_in v4 = {};
  v4.sin_family = AF_INET;
  v4.sin_port = s.port;
  if (s.family == AF_INET) std::memcpy(&v4.sin_addr.s_addr, s.addr, 4);
  std::memcpy(out, &v4, sizeof(v4));
  return sizeof(sockaddr_in);
}

inline sockaddr_in ToSockaddrIn(const SockAddr& s) {
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = s.port;
  std::memcpy(&a.sin_addr.s_addr, s.addr, 4);
  return a;
}

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_SOCKADDR_H_
