// Handle ownership and what every socket class of the typed API shares:
// Handle (an owned descriptor, move-only), SocketBase (options, blocking
// mode, close), AdoptHandle<T> (a descriptor from elsewhere, checked to be
// the right kind of socket before it becomes a T), and the set-up helpers
// the factories are built from.
//
// Everything calls the ordinary libc socket functions: over the kernel this
// is plain sockets, and under the offload launcher the same calls reach the
// interposed ones in liboffload.so.
//
// Thread safety: a Handle / socket object has one owner; the kernel (or
// liboffload) serialises concurrent calls on one socket, but moving, closing
// or destroying an object while another thread uses it is a race.

#ifndef OFFLOAD_API_SOCKET_H_
#define OFFLOAD_API_SOCKET_H_

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <type_traits>
#include <utility>

#include "api/status.h"
#include "api/timeout.h"

namespace offload::sock {

// Owns one file descriptor (any kind: a socket, a file, a pipe) and closes
// it on destruction. Move-only.
class Handle {
 public:
  Handle() = default;
  // Takes ownership of `fd` (-1 for none).
  explicit Handle(int fd) : fd_(fd) {}
  Handle(Handle&& other) noexcept : fd_(other.release()) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership; returns the descriptor (or -1).
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the descriptor now. Returns ok, or the errno of close() (the
  // descriptor is released either way, as Linux always frees it).
  Status close() {
    if (fd_ < 0) return Status();
    const int rc = ::close(release());
    return rc == 0 ? Status() : Status(errno, "close");
  }

 private:
  void reset() {
    if (fd_ >= 0) ::close(release());
  }

  int fd_ = -1;
};

// Socket-level options and blocking mode; the base of every socket class.
// It has no constructor of its own that a user can call: only the factories
// (Acceptor, Connector, Dgram::Open, ...) and AdoptHandle make sockets.
class SocketBase {
 public:
  // The descriptor, for poll/epoll and for interop; still owned by this.
  int native_handle() const { return handle_.get(); }
  bool is_open() const { return handle_.valid(); }
  // Closes the socket now (the destructor does it otherwise).
  Status close() { return handle_.close(); }
  // Gives up the socket as an untyped Handle.
  Handle release() && { return std::move(handle_); }

  // setsockopt / getsockopt with a typed value (int, linger, timeval...).
  template <class T>
  Status set_option(int level, int name, const T& value) {
    static_assert(std::is_trivially_copyable<T>::value, "plain option value");
    return set_option(level, name, &value, sizeof(value));
  }
  Status set_option(int level, int name, const void* value, socklen_t len);
  template <class T>
  Result<T> get_option(int level, int name) const {
    static_assert(std::is_trivially_copyable<T>::value, "plain option value");
    T value{};
    socklen_t len = sizeof(value);
    if (::getsockopt(handle_.get(), level, name, &value, &len) != 0) {
      return Status(errno, "getsockopt");
    }
    return value;
  }

  // SO_SNDBUF / SO_RCVBUF (the kernel doubles what it is asked for; the
  // getters return what it granted).
  Status set_send_buffer(int bytes) {
    return set_option(SOL_SOCKET, SO_SNDBUF, bytes);
  }
  Status set_recv_buffer(int bytes) {
    return set_option(SOL_SOCKET, SO_RCVBUF, bytes);
  }
  Result<int> send_buffer() const {
    return get_option<int>(SOL_SOCKET, SO_SNDBUF);
  }
  Result<int> recv_buffer() const {
    return get_option<int>(SOL_SOCKET, SO_RCVBUF);
  }

  // O_NONBLOCK on or off. The calls that take a Timeout work in both modes;
  // the plain ones then return EAGAIN instead of waiting.
  Status set_nonblocking(bool on);

 protected:
  SocketBase() = default;
  explicit SocketBase(Handle handle) : handle_(std::move(handle)) {}
  SocketBase(SocketBase&&) noexcept = default;
  SocketBase& operator=(SocketBase&&) noexcept = default;
  ~SocketBase() = default;

  int fd() const { return handle_.get(); }

 private:
  Handle handle_;
};

namespace detail {

// Lets the factories reach the private constructors of the socket classes
// (which take an already checked Handle).
struct Access {
  template <class T>
  static T Make(Handle h) {
    return T(std::move(h));
  }
};

// What a descriptor must be to become a given socket class.
struct SocketKind {
  bool unix_domain;  // AF_UNIX; otherwise AF_INET or AF_INET6
  int type;          // SOCK_STREAM or SOCK_DGRAM
  bool listening;    // SO_ACCEPTCONN
  bool connected;    // has a peer (getpeername succeeds)
};

// Ok if `fd` is an open socket of `kind`. Errors: EBADF, ENOTSOCK,
// EAFNOSUPPORT (wrong family), EPROTOTYPE (wrong type, or listening when it
// should not, or the reverse), ENOTCONN (no peer when one is needed).
Status CheckKind(int fd, const SocketKind& kind);

// How the factories prepare a new socket before listen / connect.
struct SocketSetup {
  int send_buffer = 0;  // SO_SNDBUF when positive
  int recv_buffer = 0;  // SO_RCVBUF when positive
  // Bound to this address when not null (`local_len` bytes), with
  // SO_REUSEADDR first if `reuse_addr` and the family is not AF_UNIX.
  const ::sockaddr* local = nullptr;
  socklen_t local_len = 0;
  bool reuse_addr = false;
};

// socket(family, type | SOCK_CLOEXEC | extra_flags), then `setup`.
// Errors: errno of socket, setsockopt or bind (the socket is closed).
Result<Handle> OpenSocket(int family, int type, int extra_flags,
                          const SocketSetup& setup);

// The local (getsockname) or peer (getpeername) address of `fd` as an
// InetAddr or UnixAddr. Errors: errno of the call, or Addr::Adopt's.
template <class Addr>
Result<Addr> SocketName(int fd, bool peer) {
  Addr a;
  socklen_t len = Addr::Capacity();
  const int rc = peer ? ::getpeername(fd, a.mutable_sockaddr(), &len)
                      : ::getsockname(fd, a.mutable_sockaddr(), &len);
  if (rc != 0) return Status(errno, peer ? "getpeername" : "getsockname");
  if (Status s = a.Adopt(len); !s.ok()) return s;
  return a;
}

// Connects `fd`, which is non-blocking if `timeout` is finite, and waits
// for the handshake; clears O_NONBLOCK afterwards. Errors: ETIMEDOUT, or
// the errno of connect / SO_ERROR (ECONNREFUSED, ENETUNREACH, ...).
Status Connect(int fd, const ::sockaddr* addr, socklen_t len, Timeout timeout);

}  // namespace detail

// Makes a socket object of class T (Stream, Acceptor, Dgram, LocalStream,
// ...) from a descriptor obtained elsewhere, after checking that it is that
// kind of socket. Takes ownership: on failure the descriptor is closed.
// Errors: as detail::CheckKind.
template <class T>
Result<T> AdoptHandle(Handle handle) {
  if (Status s = T::CheckHandle(handle.get()); !s.ok()) return s;
  return detail::Access::Make<T>(std::move(handle));
}

}  // namespace offload::sock

#endif  // OFFLOAD_API_SOCKET_H_
