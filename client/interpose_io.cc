// The exported data-path entry points of liboffload.so (read/write/send/
// recv families, sendfile). One fd-table lookup, then straight to libc or
// to the offloaded path; every function is noexcept.

#include <errno.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "client/fd_table.h"
#include "client/libc.h"
#include "client/ops.h"

using offload::client::Path;
using offload::client::Real;
using offload::client::Socket;

namespace oc = offload::client;

#define EXPORT extern "C" __attribute__((visibility("default")))

EXPORT ssize_t read(int fd, void* buf, size_t n) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr) s = oc::UndecidedDgram(fd);  // counted kernel receive (io.cc)
  if (s == nullptr) return Real().read(fd, buf, n);
  iovec iov = {buf, n};
  return oc::SocketRecv(s, fd, &iov, 1, 0, nullptr, nullptr);
}

EXPORT ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) noexcept {
  if (n > buflen) abort();
  return read(fd, buf, n);
}

EXPORT ssize_t readv(int fd, const iovec* iov, int iovcnt) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr) s = oc::UndecidedDgram(fd);
  if (s == nullptr) return Real().readv(fd, iov, iovcnt);
  return oc::SocketRecv(s, fd, iov, iovcnt, 0, nullptr, nullptr);
}

EXPORT ssize_t write(int fd, const void* buf, size_t n) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr) return Real().write(fd, buf, n);
  iovec iov = {const_cast<void*>(buf), n};
  return oc::SocketSend(s, fd, &iov, 1, 0, nullptr, 0);
}

EXPORT ssize_t writev(int fd, const iovec* iov, int iovcnt) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr) return Real().writev(fd, iov, iovcnt);
  return oc::SocketSend(s, fd, iov, iovcnt, 0, nullptr, 0);
}

EXPORT ssize_t recv(int fd, void* buf, size_t n, int flags) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr) s = oc::UndecidedDgram(fd);
  if (s == nullptr) return Real().recv(fd, buf, n, flags);
  iovec iov = {buf, n};
  return oc::SocketRecv(s, fd, &iov, 1, flags, nullptr, nullptr);
}

EXPORT ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) noexcept {
  if (n > buflen) abort();
  return recv(fd, buf, n, flags);
}

EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* from,
                        socklen_t* fromlen) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr) s = oc::UndecidedDgram(fd);
  if (s == nullptr) return Real().recvfrom(fd, buf, n, flags, from, fromlen);
  iovec iov = {buf, n};
  return oc::SocketRecv(s, fd, &iov, 1, flags, from, fromlen);
}

EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags,
                              sockaddr* from, socklen_t* fromlen) noexcept {
  if (n > buflen) abort();
  return recvfrom(fd, buf, n, flags, from, fromlen);
}

EXPORT ssize_t recvmsg(int fd, msghdr* msg, int flags) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr) {
    ssize_t n;
    if (Socket* u = oc::UndecidedDgram(fd)) {
      bool retry = false;
      n = oc::KernelRecvmsg(u, fd, msg, flags, &retry);
      if (retry) return recvmsg(fd, msg, flags);
    } else {
      n = Real().recvmsg(fd, msg, flags);
    }
    // Sockets passed to us (SCM_RIGHTS) may be offloaded ones: adopt them.
    if (n >= 0 && msg != nullptr && msg->msg_controllen != 0) oc::AdoptFdsInMessage(msg);
    return n;
  }
  if (s->path.load() == Path::kUdp) return oc::UdpRecv(s, msg, flags);
  socklen_t namelen = msg->msg_namelen;
  const ssize_t n = oc::SocketRecv(s, fd, msg->msg_iov, static_cast<int>(msg->msg_iovlen), flags,
                                   static_cast<sockaddr*>(msg->msg_name), &namelen);
  if (n >= 0) {
    msg->msg_namelen = namelen;
    msg->msg_flags = 0;
    if (__builtin_expect(s->tcp != nullptr && s->tcp->inq, 0)) {
      oc::PipeRecvControl(s, msg);  // the TCP_INQ control message
    } else {
      msg->msg_controllen = 0;
    }
  }
  return n;
}

EXPORT int recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags,
                    struct timespec* timeout) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr) return Real().recvmmsg(fd, vec, vlen, flags, timeout);
  unsigned int i = 0;
  for (; i < vlen; ++i) {
    const ssize_t n = recvmsg(fd, &vec[i].msg_hdr, flags);
    if (n < 0) {
      if (i > 0) break;
      return -1;
    }
    vec[i].msg_len = static_cast<unsigned int>(n);
    if (flags & MSG_WAITFORONE) flags |= MSG_DONTWAIT;
  }
  return static_cast<int>(i);
}

EXPORT ssize_t send(int fd, const void* buf, size_t n, int flags) noexcept {
  Socket* s = oc::GetSocket(fd);
  if (s == nullptr || s->path.load(std::memory_order_relaxed) == Path::kKernel) {
    return Real().send(fd, buf, n, flags);
  }
  iovec iov = {const_cast<void*>(buf), n};
  return oc::SocketSend(s, fd, &iov, 1, flags, nullptr, 0);
}

EXPORT ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* to,
                      socklen_t tolen) noexcept {
  Socket* s = oc::GetSocket(fd);
  if (s == nullptr || s->path.load(std::memory_order_relaxed) == Path::kKernel) {
    return Real().sendto(fd, buf, n, flags, to, tolen);
  }
  iovec iov = {const_cast<void*>(buf), n};
  return oc::SocketSend(s, fd, &iov, 1, flags, to, tolen);
}

EXPORT ssize_t sendmsg(int fd, const msghdr* msg, int flags) noexcept {
  Socket* s = oc::GetSocket(fd);
  if (msg != nullptr && msg->msg_controllen != 0) {
    // Offloaded sockets passed in SCM_RIGHTS become shared first.
    oc::ShareFdsInMessage(msg);
    return Real().sendmsg(fd, msg, flags);
  }
  if (s == nullptr || s->path.load(std::memory_order_relaxed) == Path::kKernel) {
    return Real().sendmsg(fd, msg, flags);
  }
  return oc::SocketSend(s, fd, msg->msg_iov, static_cast<int>(msg->msg_iovlen), flags,
                        static_cast<const sockaddr*>(msg->msg_name), msg->msg_namelen);
}

EXPORT int sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags) noexcept {
  Socket* s = oc::GetSocket(fd);
  if (s == nullptr || s->path.load(std::memory_order_relaxed) == Path::kKernel) {
    return Real().sendmmsg(fd, vec, vlen, flags);
  }
  unsigned int i = 0;
  for (; i < vlen; ++i) {
    const ssize_t n = sendmsg(fd, &vec[i].msg_hdr, flags);
    if (n < 0) {
      if (i > 0) break;
      return -1;
    }
    vec[i].msg_len = static_cast<unsigned int>(n);
  }
  return static_cast<int>(i);
}

// sendfile(2) to an offloaded pipe: the file is read into a bounce buffer
// and sent through the pipe (nginx serves static files this way).
EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) noexcept {
  Socket* s = oc::GetOffloaded(out_fd);
  if (s == nullptr || s->path.load() != Path::kPipe) {
    return Real().sendfile(out_fd, in_fd, offset, count);
  }
  static thread_local char buf[65536];
  size_t total = 0;
  while (total < count) {
    const size_t chunk = std::min(count - total, sizeof(buf));
    const ssize_t n = offset != nullptr ? pread(in_fd, buf, chunk, *offset)
                                        : Real().read(in_fd, buf, chunk);
    if (n <= 0) {
      if (total > 0) return static_cast<ssize_t>(total);
      return n;
    }
    iovec iov = {buf, static_cast<size_t>(n)};
    const ssize_t sent = oc::PipeSend(s, &iov, 1, 0);
    const size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
    if (offset != nullptr) {
      *offset += done;
    } else if (done < static_cast<size_t>(n)) {
      lseek(in_fd, static_cast<off_t>(done) - n, SEEK_CUR);  // give back what was not sent
    }
    total += done;
    if (sent < 0) return total > 0 ? static_cast<ssize_t>(total) : -1;
    if (done < static_cast<size_t>(n)) break;  // non-blocking and full
  }
  return static_cast<ssize_t>(total);
}

EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t* offset, size_t count) noexcept {
  return sendfile(out_fd, in_fd, offset, count);
}

