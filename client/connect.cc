// connect() (interpose.cc) on a socket of ours, as a state machine over
// the socket's path: a second connect() during or after a non-blocking
// one on a pipe (EALREADY, the outcome once, then EISCONN), the first
// connect of an undecided TCP socket (TcpConnect: a same-host pipe or an
// engine connection, tcp.cc), the kernel's connect with the statistics row
// kept truthful, and UDP's default destination and udp_connect rules.

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <cstring>

#include "client/decision.h"
#include "client/fd_table.h"
#include "client/inet_name.h"
#include "client/libc.h"
#include "client/ops.h"

namespace offload {
namespace client {

int ConnectImpl(int fd, const sockaddr* addr, socklen_t len) {
  Socket* s = GetSocket(fd);
  if (s == nullptr) return Real().connect(fd, addr, len);
  const Path p = s->path.load();
  if (s->type == SOCK_STREAM) {
    if (p == Path::kPipe) {
      // A second connect() during / after a non-blocking one, as Linux.
      // Linux: the first connect() after the handshake ended returns its
      // outcome (0, or the pending error / ECONNABORTED), later ones EISCONN.
      PipeEnd* pe = s->pipe.get();
      if (ConnectProgress(s) == EINPROGRESS) {
        errno = EALREADY;
        return -1;
      }
      if (pe->async_connect) {
        pe->async_connect = false;
        if (!pe->connect_failed) return 0;
        const int err = pe->me().so_error.exchange(0, std::memory_order_acq_rel);
        errno = err != 0 ? err : ECONNABORTED;
        return -1;
      }
      errno = pe->connect_failed ? ECONNABORTED : EISCONN;
      return -1;
    }
    if (p == Path::kUndecided && IsInetOf(s->family, addr, len)) {
      const int rc = TcpConnect(s, addr, len);
      if (rc != kUseKernel) return rc;  // offloaded: connected, or failed with errno
    }
    const int rc = Real().connect(fd, addr, len);
    if ((rc == 0 || errno == EINPROGRESS) && IsInetOf(s->family, addr, len)) {
      // A kernel connection: keep its stats row truthful (offloadctl stats).
      const int saved = errno;
      socklen_t l = sizeof(s->local);
      Real().getsockname(fd, &s->local.sa, &l);
      std::memcpy(&s->remote, addr, s->family == AF_INET6 ? sizeof(sockaddr_in6)
                                                          : sizeof(sockaddr_in));
      s->slot->state = static_cast<uint8_t>(rc == 0 ? shm::SocketState::kEstablished
                                                    : shm::SocketState::kConnecting);
      UpdateSlotAddrs(s);
      errno = saved;
    }
    return rc;
  }
  // UDP: the kernel keeps the default destination too (kernel fallback).
  const int rc = Real().connect(fd, addr, len);
  if (rc != 0) return rc;
  if (addr != nullptr && addr->sa_family == AF_UNSPEC) {
    s->connected = false;
  } else if (IsInetOf(s->family, addr, len)) {
    memcpy(&s->remote, addr, s->family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    s->connected = true;
    if (p == Path::kUdp) UdpConnected(s);
    if (p == Path::kUndecided) {
      // udp_connect rules decide a connected UDP socket (libvma.conf).
      socklen_t l = sizeof(s->local);
      Real().getsockname(fd, &s->local.sa, &l);
      if (!Decide(s, rules::Role::kUdpConnect, &s->local, &s->remote)) {
        OnKernel(s, s->fallback, nullptr);
      } else {
        UdpAfterBind(s);
      }
    }
  }
  return rc;
}

}  // namespace client
}  // namespace offload
