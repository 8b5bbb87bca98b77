// UDP datagram sockets of the typed API.
//
//   Dgram           bound to a local address; send_to / recv_from name the
//                   peer with an InetAddr on every call (ACE's SOCK_Dgram)
//   ConnectedDgram  bound and connected to one peer; send / recv (ACE's
//                   SOCK_CDgram); datagrams from other addresses are dropped
//                   by the kernel
//
// Neither has stream calls (send_n, recv_n, close_writer) nor accept; a
// Connector cannot produce them. A datagram is sent whole or not at all;
// a receive buffer shorter than the datagram truncates it (MSG_TRUNC in
// `flags` makes recv return the real length, as recvfrom(2)).
//
// Thread safety: as for any socket; one owner moves or closes it.

#ifndef OFFLOAD_API_DGRAM_H_
#define OFFLOAD_API_DGRAM_H_

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <utility>

#include "api/addr.h"
#include "api/io.h"
#include "api/socket.h"
#include "api/status.h"
#include "api/timeout.h"

namespace offload::sock {

struct DgramOptions {
  // SO_REUSEADDR before bind.
  bool reuse_addr = false;
  // SO_SNDBUF / SO_RCVBUF; 0 keeps the kernel default.
  int send_buffer = 0;
  int recv_buffer = 0;
};

namespace detail {

// Opens a UDP socket of `family`, applies `options`, binds it to `local`
// if given and connects it to `remote` if given. Errors: errno of socket,
// setsockopt, bind or connect.
Result<Handle> OpenDgram(int family, const InetAddr* local,
                         const InetAddr* remote, const DgramOptions& options);

}  // namespace detail

class Dgram : public SocketBase {
 public:
  Dgram() = default;
  Dgram(Dgram&&) noexcept = default;
  Dgram& operator=(Dgram&&) noexcept = default;

  // A UDP socket bound to `local` (port 0: the kernel picks). Errors: errno
  // of socket, setsockopt or bind (EADDRINUSE, EADDRNOTAVAIL, ...).
  static Result<Dgram> Open(const InetAddr& local,
                            const DgramOptions& options = {}) {
    Result<Handle> h =
        detail::OpenDgram(local.family(), &local, nullptr, options);
    if (!h.ok()) return h.status();
    return Dgram(std::move(*h));
  }

  // Ok if `fd` is an IPv4/IPv6 datagram socket.
  static Status CheckHandle(int fd) {
    return detail::CheckKind(fd, {false, SOCK_DGRAM, false, false});
  }

  // One datagram of `len` bytes to `to`. Errors: EMSGSIZE, EAGAIN (non-
  // blocking, or the send queue is full), ECONNREFUSED (an earlier
  // datagram's ICMP error), ...
  IoResult send_to(const void* buf, size_t len, const InetAddr& to,
                   int flags = 0) {
    return detail::Done(::sendto(fd(), buf, len, flags | MSG_NOSIGNAL,
                                 to.sockaddr(), to.size()));
  }
  // One datagram gathered from `count` buffers.
  IoResult send_to(const iovec* iov, int count, const InetAddr& to) {
    msghdr m = detail::IovMsg(iov, count);
    m.msg_name = const_cast<::sockaddr*>(to.sockaddr());
    m.msg_namelen = to.size();
    return detail::Done(::sendmsg(fd(), &m, MSG_NOSIGNAL));
  }

  // The next datagram (blocking unless non-blocking mode); its sender goes
  // to `*from` if given.
  IoResult recv_from(void* buf, size_t len, InetAddr* from, int flags = 0) {
    InetAddr a;
    socklen_t alen = InetAddr::Capacity();
    const ssize_t n =
        ::recvfrom(fd(), buf, len, flags, a.mutable_sockaddr(), &alen);
    if (n < 0) return IoResult(0, errno);
    Store(a, alen, from);
    return IoResult::Ok(static_cast<size_t>(n));
  }
  // The same, waiting at most `timeout` (ETIMEDOUT).
  IoResult recv_from(void* buf, size_t len, InetAddr* from, Timeout timeout) {
    InetAddr a;
    socklen_t alen = InetAddr::Capacity();
    const IoResult r =
        detail::CallOnce(fd(), POLLIN, timeout, [&](int wait_flag) {
          alen = InetAddr::Capacity();
          return ::recvfrom(fd(), buf, len, wait_flag, a.mutable_sockaddr(),
                            &alen);
        });
    if (r.ok()) Store(a, alen, from);
    return r;
  }
  // The next datagram scattered over `count` buffers.
  IoResult recv_from(const iovec* iov, int count, InetAddr* from,
                     Timeout timeout = Timeout::Infinite()) {
    InetAddr a;
    msghdr m{};
    const IoResult r =
        detail::CallOnce(fd(), POLLIN, timeout, [&](int wait_flag) {
          m = detail::IovMsg(iov, count);
          m.msg_name = a.mutable_sockaddr();
          m.msg_namelen = InetAddr::Capacity();
          return ::recvmsg(fd(), &m, wait_flag);
        });
    if (r.ok()) Store(a, m.msg_namelen, from);
    return r;
  }

  Result<InetAddr> local_addr() const {
    return detail::SocketName<InetAddr>(fd(), false);
  }

 private:
  friend struct detail::Access;
  explicit Dgram(Handle h) : SocketBase(std::move(h)) {}

  static void Store(InetAddr& a, socklen_t len, InetAddr* from) {
    if (from == nullptr) return;
    (void)a.Adopt(len);  // an unknown family leaves the default address
    *from = a;
  }
};

class ConnectedDgram : public SocketBase {
 public:
  ConnectedDgram() = default;
  ConnectedDgram(ConnectedDgram&&) noexcept = default;
  ConnectedDgram& operator=(ConnectedDgram&&) noexcept = default;

  // A UDP socket connected to `remote`, bound to `local` first if given
  // (otherwise the kernel picks the address and port). Errors: errno of
  // socket, setsockopt, bind or connect.
  static Result<ConnectedDgram> Open(const InetAddr& remote,
                                     const DgramOptions& options = {}) {
    return Open(remote, nullptr, options);
  }
  static Result<ConnectedDgram> Open(const InetAddr& remote,
                                     const InetAddr& local,
                                     const DgramOptions& options = {}) {
    return Open(remote, &local, options);
  }

  // Ok if `fd` is an IPv4/IPv6 datagram socket with a peer.
  static Status CheckHandle(int fd) {
    return detail::CheckKind(fd, {false, SOCK_DGRAM, false, true});
  }

  // One datagram to the peer. Errors as Dgram::send_to; ECONNREFUSED when
  // the peer's port answered an earlier datagram with ICMP unreachable.
  IoResult send(const void* buf, size_t len, int flags = 0) {
    return detail::Done(::send(fd(), buf, len, flags | MSG_NOSIGNAL));
  }
  IoResult sendv(const iovec* iov, int count) {
    const msghdr m = detail::IovMsg(iov, count);
    return detail::Done(::sendmsg(fd(), &m, MSG_NOSIGNAL));
  }
  // The next datagram from the peer.
  IoResult recv(void* buf, size_t len, int flags = 0) {
    return detail::Done(::recv(fd(), buf, len, flags));
  }
  // The same, waiting at most `timeout` (ETIMEDOUT).
  IoResult recv(void* buf, size_t len, Timeout timeout) {
    return detail::CallOnce(fd(), POLLIN, timeout, [&](int wait_flag) {
      return ::recv(fd(), buf, len, wait_flag);
    });
  }
  IoResult recvv(const iovec* iov, int count,
                 Timeout timeout = Timeout::Infinite()) {
    return detail::CallOnce(fd(), POLLIN, timeout, [&](int wait_flag) {
      msghdr m = detail::IovMsg(iov, count);
      return ::recvmsg(fd(), &m, wait_flag);
    });
  }

  Result<InetAddr> local_addr() const {
    return detail::SocketName<InetAddr>(fd(), false);
  }
  Result<InetAddr> peer_addr() const {
    return detail::SocketName<InetAddr>(fd(), true);
  }

 private:
  friend struct detail::Access;
  explicit ConnectedDgram(Handle h) : SocketBase(std::move(h)) {}

  static Result<ConnectedDgram> Open(const InetAddr& remote,
                                     const InetAddr* local,
                                     const DgramOptions& options) {
    Result<Handle> h =
        detail::OpenDgram(remote.family(), local, &remote, options);
    if (!h.ok()) return h.status();
    return ConnectedDgram(std::move(*h));
  }
};

}  // namespace offload::sock

#endif  // OFFLOAD_API_DGRAM_H_
