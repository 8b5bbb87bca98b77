// SockAddr: an IPv4 or IPv6 endpoint in shared memory (fixed size, no
// pointers), and its conversion to and from struct sockaddr.
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
