// SocketBase and the set-up helpers of the socket classes; see socket.h.

#include "api/socket.h"

#include <fcntl.h>
#include <poll.h>

namespace offload::sock {

Status SocketBase::set_option(int level, int name, const void* value,
                              socklen_t len) {
  if (::setsockopt(fd(), level, name, value, len) != 0) {
    return Status(errno, "setsockopt");
  }
  return Status();
}

Status SocketBase::set_nonblocking(bool on) {
  const int flags = ::fcntl(fd(), F_GETFL);
  if (flags < 0) return Status(errno, "fcntl(F_GETFL)");
  const int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (want != flags && ::fcntl(fd(), F_SETFL, want) != 0) {
    return Status(errno, "fcntl(F_SETFL)");
  }
  return Status();
}

namespace detail {
namespace {

constexpr const char kCheck[] = "AdoptHandle";

Result<int> IntOption(int fd, int name) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (::getsockopt(fd, SOL_SOCKET, name, &v, &len) != 0) {
    return Status(errno, kCheck);
  }
  return v;
}

}  // namespace

Status CheckKind(int fd, const SocketKind& kind) {
  if (fd < 0) return Status(EBADF, kCheck);
  Result<int> domain = IntOption(fd, SO_DOMAIN);
  if (!domain.ok()) return domain.status();  // ENOTSOCK for a non-socket
  Result<int> type = IntOption(fd, SO_TYPE);
  if (!type.ok()) return type.status();
  Result<int> listening = IntOption(fd, SO_ACCEPTCONN);
  if (!listening.ok()) return listening.status();
  const bool unix_domain = *domain == AF_UNIX;
  if (unix_domain != kind.unix_domain ||
      (!unix_domain && *domain != AF_INET && *domain != AF_INET6)) {
    return Status(EAFNOSUPPORT, kCheck);
  }
  if (*type != kind.type || (*listening != 0) != kind.listening) {
    return Status(EPROTOTYPE, kCheck);
  }
  if (kind.connected) {
    sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
      return Status(errno, kCheck);
    }
  }
  return Status();
}

Result<Handle> OpenSocket(int family, int type, int extra_flags,
                          const SocketSetup& setup) {
  Handle h(::socket(family, type | SOCK_CLOEXEC | extra_flags, 0));
  if (!h.valid()) return Status(errno, "socket");
  const int fd = h.get();
  if (setup.send_buffer > 0 &&
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &setup.send_buffer,
                   sizeof(setup.send_buffer)) != 0) {
    return Status(errno, "setsockopt(SO_SNDBUF)");
  }
  if (setup.recv_buffer > 0 &&
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &setup.recv_buffer,
                   sizeof(setup.recv_buffer)) != 0) {
    return Status(errno, "setsockopt(SO_RCVBUF)");
  }
  if (setup.local == nullptr) return h;
  if (setup.reuse_addr && family != AF_UNIX) {
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      return Status(errno, "setsockopt(SO_REUSEADDR)");
    }
  }
  if (::bind(fd, setup.local, setup.local_len) != 0) {
    return Status(errno, "bind");
  }
  return h;
}

Status Connect(int fd, const ::sockaddr* addr, socklen_t len, Timeout timeout) {
  if (::connect(fd, addr, len) != 0) {
    // EINTR: the handshake goes on in the background (connect(2)); wait for
    // it like for EINPROGRESS. Anything else failed at once (ECONNREFUSED
    // from a local port without a listener, EAGAIN from an AF_UNIX listener
    // whose backlog is full, ...).
    if (errno != EINPROGRESS && errno != EINTR) return Status(errno, "connect");
    WaitBudget budget(timeout);
    if (const int err = budget.Wait(fd, POLLOUT); err != 0) {
      return Status(err, "connect");
    }
    int so_error = 0;
    socklen_t so_len = sizeof(so_error);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0) {
      return Status(errno, "getsockopt(SO_ERROR)");
    }
    if (so_error != 0) return Status(so_error, "connect");
  }
  if (!timeout.infinite()) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
      return Status(errno, "fcntl(F_SETFL)");
    }
  }
  return Status();
}

}  // namespace detail
}  // namespace offload::sock
