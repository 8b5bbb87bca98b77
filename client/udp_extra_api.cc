// The extra API's entry points for UDP sockets (offload_extra.h):
// register_recv_callback, recvfrom_zcopy and free_packets. They find the
// socket the API applies to and call into udp_extra.cc, which has the
// receive path and the lending of ring records.

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "client/fd_table.h"
#include "client/libc.h"
#include "client/offload_extra.h"
#include "client/ops.h"
#include "client/udp_internal.h"

namespace offload {
namespace client {

namespace {

// Whether the extra API applies to `s` (from GetSocket, may be null): an
// offloaded UDP socket (not on the kernel, not shared); undecided ones too
// if `undecided_ok`.
bool ApiApplies(const Socket* s, bool undecided_ok) {
  if (s == nullptr || s->type != SOCK_DGRAM || s->closed.load(std::memory_order_acquire)) {
    return false;
  }
  const Path p = s->path.load(std::memory_order_acquire);
  if (p == Path::kUdp && !s->udp_shared.load(std::memory_order_acquire)) return true;
  return p == Path::kUndecided && undecided_ok;
}

}  // namespace

int RegisterRecvCallback(int fd, offload_recv_callback_t cb, void* context) {
  Socket* s = GetSocket(fd);
  if (!ApiApplies(s, /*undecided_ok=*/true)) {
    errno = EINVAL;  // VMA: not an offloaded socket
    return -1;
  }
  UdpExtra* x = EnsureExtra(s);
  if (x == nullptr) {
    errno = ENOMEM;
    return -1;
  }
  if (InOwnCallback(x)) {
    errno = EDEADLK;
    return -1;
  }
  MutexGuard rx(&s->udp->rx_mu);
  x->cb = cb;
  x->cb_ctx = context;
  return 0;
}

int RecvfromZcopy(int fd, void* buf, size_t len, int* flags, sockaddr* from, socklen_t* fromlen) {
  if (flags == nullptr) {
    errno = EINVAL;
    return -1;
  }
  const int in = *flags;
  const bool force = (in & OFFLOAD_MSG_ZCOPY_FORCE) != 0;
  const int sys_flags = in & ~(OFFLOAD_MSG_ZCOPY_FORCE | OFFLOAD_MSG_ZCOPY);
  Socket* s = GetSocket(fd);  // the one fd-table lookup
  iovec iov = {buf, len};
  ssize_t n;
  if ((in & MSG_PEEK) || !ApiApplies(s, /*undecided_ok=*/false)) {
    // Zero copy cannot apply: a copy, as recvfrom (VMA: EIO if forced).
    if (force && s != nullptr) {
      errno = EIO;
      return -1;
    }
    if (s != nullptr) {
      n = SocketRecv(s, fd, &iov, 1, sys_flags, from, fromlen);
    } else {
      n = Real().recvfrom(fd, buf, len, sys_flags, from, fromlen);
    }
    if (n >= 0) *flags = in & ~OFFLOAD_MSG_ZCOPY;
    return static_cast<int>(n);
  }
  if (buf == nullptr || len < kDescriptorBytes) {
    errno = ENOBUFS;
    return -1;
  }
  if (s->udp->extra.load(std::memory_order_acquire) == nullptr && EnsureExtra(s) == nullptr) {
    errno = ENOMEM;
    return -1;
  }
  ZcopyOut out = {buf, len, force, false};
  msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_name = from;
  mh.msg_namelen = fromlen != nullptr ? *fromlen : 0;
  n = UdpRecvExtra(s, &mh, sys_flags, &out);
  if (n < 0) return -1;
  if (fromlen != nullptr) *fromlen = mh.msg_namelen;
  *flags = out.zcopy ? (in | OFFLOAD_MSG_ZCOPY) : (in & ~OFFLOAD_MSG_ZCOPY);
  return static_cast<int>(n);
}

int FreePackets(int fd, offload_packet_t* pkts, size_t count) {
  Socket* s = GetSocket(fd);
  // Shared sockets (back on the kernel) may still hold what they lent
  // before; everything else on the kernel is EINVAL, as VMA.
  if (s == nullptr || s->type != SOCK_DGRAM || s->path.load(std::memory_order_acquire) != Path::kUdp) {
    errno = EINVAL;
    return -1;
  }
  UdpExtra* x = s->udp->extra.load(std::memory_order_acquire);
  if (x == nullptr) {
    if (count == 0) return 0;
    errno = ENOENT;
    return -1;
  }
  if (InOwnCallback(x)) {
    errno = EDEADLK;
    return -1;
  }
  if (count != 0 && pkts == nullptr) {
    errno = EINVAL;
    return -1;
  }
  MutexGuard rx(&s->udp->rx_mu);
  if (FreeLent(s, x, pkts, count) != count) {
    errno = ENOENT;
    return -1;
  }
  return 0;
}

}  // namespace client
}  // namespace offload
