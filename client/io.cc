// Data-path helpers shared by the interposed read/write/send/recv family:
// dispatch on the socket's path (pipe, UDP rings, kernel).

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>

#include <atomic>

#include "client/attach.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/inet_name.h"
#include "client/ops.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

namespace {

// A blocking receive on an undecided UDP socket (no port yet: a thread that
// receives before another one sends, as sockperf's client does). It sleeps
// in poll() on the kernel socket and the socket's eventfd instead of in the
// kernel's recvmsg, so that the decision (the first send, connect or bind)
// can wake it whichever path it picks; it then receives again on that path
// (*retry). Datagrams the kernel socket gets meanwhile are returned as
// recvmsg would; SO_RCVTIMEO gives EAGAIN; a signal gives EINTR, or
// continues the wait as recvmsg would (SignalsRestart). Returns
// -2 when the socket has no eventfd (EMFILE): the caller then blocks in
// the kernel, counted, and the decision keeps the socket there.
ssize_t UndecidedWait(Socket* s, int fd, msghdr* msg, int flags, bool* retry) {
  const int efd = EnsureSocketEventFd(s);
  if (efd < 0) return -2;
  UdpState* u = s->udp.get();
  const int64_t timeout = s->rcvtimeo_ms;
  const int64_t deadline = timeout < 0 ? INT64_MAX : NowNs() + timeout * 1000000;
  bool drained = false;
  ssize_t n = -1;
  int err = 0;
  // Seq_cst pair with WakeUndecidedReceivers: either the decision sees
  // this count (and kicks), or this thread sees the new path.
  u->waiting_receivers.fetch_add(1, std::memory_order_seq_cst);
  for (;;) {
    if (s->path.load(std::memory_order_seq_cst) != Path::kUndecided) {
      *retry = true;
      // A kick this thread drained may have been the one the others wait
      // for: pass it on.
      if (drained) shm::Kick(efd);
      break;
    }
    n = Real().recvmsg(fd, msg, flags | MSG_DONTWAIT);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      err = errno;
      break;
    }
    const int64_t now = NowNs();
    if (now >= deadline) {
      n = -1;
      err = EAGAIN;
      break;
    }
    const int ms =
        deadline == INT64_MAX ? -1 : static_cast<int>((deadline - now + 999999) / 1000000);
    struct pollfd p[2] = {{fd, POLLIN | POLLRDHUP, 0}, {efd, POLLIN, 0}};
    const int rc = Real().poll(p, 2, ms);
    if (rc < 0 && errno == EINTR) {
      if (timeout < 0 && SignalsRestart()) continue;  // as Linux's recvmsg
      n = -1;
      err = EINTR;
      break;
    }
    if (rc > 0 && (p[0].revents & (POLLRDHUP | POLLHUP))) {
      // shutdown(SHUT_RD) from another thread: Linux's blocking receive
      // returns 0 then, a non-blocking one EAGAIN; the blocking call
      // answers at once.
      n = Real().recvmsg(fd, msg, flags);
      err = errno;
      break;
    }
    if (p[1].revents & POLLIN) {
      // Left from before (a kick for another reason): drained only while
      // undecided, and re-checked after, so the decision's kick (made
      // after it publishes the path) is never lost.
      if (s->path.load(std::memory_order_seq_cst) == Path::kUndecided) {
        shm::Drain(efd);
        drained = true;
      }
    }
  }
  u->waiting_receivers.fetch_sub(1, std::memory_order_release);
  errno = err;
  return n;
}

}  // namespace

ssize_t KernelRecvmsg(Socket* s, int fd, msghdr* msg, int flags, bool* retry) {
  *retry = false;
  UdpState* u = s->type == SOCK_DGRAM ? s->udp.get() : nullptr;
  if (u == nullptr || s->path.load(std::memory_order_acquire) != Path::kUndecided ||
      s->nonblock || (flags & (MSG_DONTWAIT | MSG_ERRQUEUE))) {
    return Real().recvmsg(fd, msg, flags);  // (an error queue read never blocks)
  }
  const ssize_t w = UndecidedWait(s, fd, msg, flags, retry);
  if (w != -2) return w;
  // No eventfd: counted while in the kernel, so that a decision made
  // meanwhile keeps the socket there (UdpAfterBind). A decision already
  // under way: wait for it; the caller receives again on the path it chose.
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

void WakeUndecidedReceivers(Socket* s) {
  if (s->type != SOCK_DGRAM || s->udp == nullptr) return;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (s->udp->waiting_receivers.load(std::memory_order_seq_cst) == 0) return;
  const int efd = EnsureSocketEventFd(s);  // created by the waiter already
  if (efd >= 0) shm::Kick(efd);
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
