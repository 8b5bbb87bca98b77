// Data-path helpers shared by the interposed read/write/send/recv family:
// dispatch on the socket's path (pipe, UDP rings, kernel).

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <sys/socket.h>

#include "client/fd_table.h"
#include "client/libc.h"
#include "client/inet_name.h"
#include "client/ops.h"

namespace offload {
namespace client {

ssize_t KernelRecvmsg(Socket* s, int fd, msghdr* msg, int flags, bool* retry) {
  *retry = false;
  UdpState* u = s->type == SOCK_DGRAM ? s->udp.get() : nullptr;
  if (u == nullptr || s->path.load(std::memory_order_acquire) != Path::kUndecided) {
    return Real().recvmsg(fd, msg, flags);
  }
  // Counted while in the kernel, so that a decision made meanwhile
  // (another thread's first send) keeps the socket there (UdpAfterBind).
  // A decision already under way: wait for it; the caller receives again
  // on the path it chose.
  u->kernel_receivers.fetch_add(1, std::memory_order_seq_cst);
  if (u->deciding.load(std::memory_order_seq_cst) ||
      s->path.load(std::memory_order_seq_cst) != Path::kUndecided) {
    u->kernel_receivers.fetch_sub(1, std::memory_order_release);
    while (u->deciding.load(std::memory_order_acquire)) sched_yield();
    *retry = true;
    return -1;
  }
  const ssize_t n = Real().recvmsg(fd, msg, flags);
  const int err = errno;
  u->kernel_receivers.fetch_sub(1, std::memory_order_release);
  errno = err;
  return n;
}

Socket* UndecidedDgram(int fd) {
  Socket* s = GetSocket(fd);
  return s != nullptr && s->type == SOCK_DGRAM && s->udp != nullptr &&
                 s->path.load(std::memory_order_acquire) == Path::kUndecided
             ? s
             : nullptr;
}

ssize_t SocketRecv(Socket* s, int fd, const iovec* iov, int iovcnt, int flags, sockaddr* from,
                   socklen_t* fromlen) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe:
      if (fromlen != nullptr) *fromlen = 0;
      return PipeRecv(s, iov, iovcnt, flags);
    case Path::kUdp: {
      msghdr mh = {};
      mh.msg_iov = const_cast<iovec*>(iov);
      mh.msg_iovlen = iovcnt;
      mh.msg_name = from;
      mh.msg_namelen = fromlen != nullptr ? *fromlen : 0;
      const ssize_t n = UdpRecv(s, &mh, flags);
      if (n >= 0 && fromlen != nullptr) *fromlen = mh.msg_namelen;
      return n;
    }
    case Path::kListener:
      errno = ENOTCONN;
      return -1;
    default: {
      msghdr mh = {};
      mh.msg_iov = const_cast<iovec*>(iov);
      mh.msg_iovlen = iovcnt;
      mh.msg_name = from;
      mh.msg_namelen = fromlen != nullptr ? *fromlen : 0;
      bool retry = false;
      const ssize_t n = KernelRecvmsg(s, fd, &mh, flags, &retry);
      if (retry) return SocketRecv(s, fd, iov, iovcnt, flags, from, fromlen);
      if (n >= 0 && fromlen != nullptr) *fromlen = mh.msg_namelen;
      return n;
    }
  }
}

ssize_t SocketSend(Socket* s, int fd, const iovec* iov, int iovcnt, int flags,
                   const sockaddr* to, socklen_t tolen) {
  const Path p = s->path.load(std::memory_order_acquire);
  if (p == Path::kPipe) return PipeSend(s, iov, iovcnt, flags);
  if (s->type == SOCK_DGRAM && p != Path::kKernel &&
      (to == nullptr || IsInetOf(s->family, to, tolen))) {
    shm::SockAddr d;
    const ssize_t n = UdpSend(s, iov, iovcnt, flags,
                              to != nullptr && shm::FromSockaddr(to, tolen, &d) ? &d : nullptr);
    if (n != kUseKernel) return n;
  }
  msghdr mh = {};
  mh.msg_iov = const_cast<iovec*>(iov);
  mh.msg_iovlen = iovcnt;
  mh.msg_name = const_cast<sockaddr*>(to);
  mh.msg_namelen = tolen;
  const ssize_t n = Real().sendmsg(fd, &mh, flags);
  // Multicast through the kernel, for the statistics (udp.cc "Multicast").
  if (n >= 0 && s->type == SOCK_DGRAM && s->slot != nullptr &&
      ((to != nullptr && IsInet(to, tolen) &&
        (ntohl(reinterpret_cast<const sockaddr_in*>(to)->sin_addr.s_addr) >> 28) == 0xe) ||
       (to == nullptr && s->connected && (ntohl(s->remote.v4.sin_addr.s_addr) >> 28) == 0xe))) {
    Add(s->slot->mc_tx_kernel, 1);
  }
  return n;
}

}  // namespace client
}  // namespace offload
