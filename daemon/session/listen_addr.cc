#include "daemon/session/listen_addr.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "shm/sockaddr.h"

namespace offload {
namespace session {

bool ListenAddrOf(int fd, ListenAddr* out, uint16_t* port) {
  sockaddr_in6 a = {};
  socklen_t len = sizeof(a);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return false;
  shm::SockAddr s;
  if (!shm::FromSockaddr(reinterpret_cast<const sockaddr*>(&a), len, &s)) return false;
  ListenAddr l;
  l.family = a.sin6_family;
  shm::Addr16Of(s, l.addr);
  if (l.family == AF_INET6) {
    int on = 0;
    socklen_t olen = sizeof(on);
    l.v6only = getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, &olen) == 0 && on != 0;
  }
  *out = l;
  *port = s.port;
  return true;
}

bool ListenerTakes(const ListenAddr& l, const uint8_t dst[16],
                   const std::function<bool()>& is_local) {
  const bool dst_v4 = shm::IsV4Mapped(dst);
  if (dst_v4 ? l.v6only : l.family != AF_INET6) return false;
  if (std::memcmp(l.addr, dst, 16) == 0) return true;
  // Wildcards: dual-stack unless v6only, checked above.
  return IsWildcard(l) && is_local();
}

bool IsWildcard(const ListenAddr& l) {
  // 0.0.0.0 (v4-mapped) of an AF_INET socket, :: of an AF_INET6 one.
  static constexpr uint8_t kV4Any[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  return l.family == AF_INET ? std::memcmp(l.addr, kV4Any, 16) == 0 : shm::IsV6Any(l.addr);
}

bool IsLocalAddress6(const uint8_t a[16]) {
  static constexpr uint8_t kOne[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (std::memcmp(a, kOne, 16) == 0) return true;
  struct ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return false;
  bool local = false;
  for (struct ifaddrs* i = ifa; i != nullptr && !local; i = i->ifa_next) {
    if (i->ifa_addr != nullptr && i->ifa_addr->sa_family == AF_INET6) {
      local = std::memcmp(reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr.s6_addr, a,
                          16) == 0;
    }
  }
  freeifaddrs(ifa);
  return local;
}

}  // namespace session
}  // namespace offload
