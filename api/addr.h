// Socket addresses of the typed API: InetAddr (IPv4 or IPv6 address and
// port) and UnixAddr (a filesystem path or a Linux abstract name). They hide
// sockaddr_in / sockaddr_in6 / sockaddr_un, byte order and length fields;
// the socket classes take and return them instead of `sockaddr*`.
//
// Parsing is literal: numeric addresses and "localhost" only, never a DNS
// lookup (which could block for seconds on the caller's hot path).
//
// Thread safety: values.

#ifndef OFFLOAD_API_ADDR_H_
#define OFFLOAD_API_ADDR_H_

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <string>
#include <string_view>

#include "api/status.h"

namespace offload::sock {

// An IPv4 or IPv6 socket address (address + port; IPv6 flow info and scope
// id are kept as given but not parsed or printed).
class InetAddr {
 public:
  // 0.0.0.0 port 0: "any address, a port the kernel picks".
  InetAddr();

  // "a.b.c.d:port", "[v6]:port" or "localhost:port" (127.0.0.1). The port
  // is decimal, 0-65535. Errors: EINVAL (the Status names "InetAddr::Parse").
  static Result<InetAddr> Parse(std::string_view text);
  // A literal host ("a.b.c.d", "v6", "[v6]" or "localhost") and a port.
  // Errors: EINVAL.
  static Result<InetAddr> Parse(std::string_view host, uint16_t port);
  // Copies a kernel address. Errors: EAFNOSUPPORT for a family other than
  // AF_INET/AF_INET6, EINVAL if `len` is too short for its family.
  static Result<InetAddr> FromSockaddr(const ::sockaddr* sa, socklen_t len);

  static InetAddr Loopback4(uint16_t port);  // 127.0.0.1
  static InetAddr Loopback6(uint16_t port);  // ::1
  static InetAddr Any4(uint16_t port);       // 0.0.0.0
  static InetAddr Any6(uint16_t port);       // ::

  int family() const { return u_.sa.sa_family; }
  bool is_v4() const { return family() == AF_INET; }
  bool is_v6() const { return family() == AF_INET6; }
  uint16_t port() const;
  void set_port(uint16_t port);
  bool is_loopback() const;
  bool is_any() const;

  // The host part alone: "127.0.0.1", "::1".
  std::string HostString() const;
  // "127.0.0.1:5001", "[::1]:5001".
  std::string ToString() const;

  // For the socket classes and for interop with code that takes sockaddr.
  const ::sockaddr* sockaddr() const { return &u_.sa; }
  socklen_t size() const { return is_v6() ? sizeof(u_.v6) : sizeof(u_.v4); }
  // Storage for a call that writes an address (accept, recvfrom); finish
  // with Adopt(). Capacity(): the bytes it may write.
  ::sockaddr* mutable_sockaddr() { return &u_.sa; }
  static constexpr socklen_t Capacity() { return sizeof(Storage); }
  // Checks what the kernel wrote (`len` bytes). On failure the address is
  // reset to the default. Errors: as FromSockaddr.
  Status Adopt(socklen_t len);

  friend bool operator==(const InetAddr& a, const InetAddr& b);
  friend bool operator!=(const InetAddr& a, const InetAddr& b) {
    return !(a == b);
  }

 private:
  union Storage {
    ::sockaddr sa;
    ::sockaddr_in v4;
    ::sockaddr_in6 v6;
  };
  Storage u_;
};

// An AF_UNIX socket address: a filesystem path, a Linux abstract-namespace
// name (no file; written "@name"), or unnamed (an unbound or socketpair end).
class UnixAddr {
 public:
  // Unnamed.
  UnixAddr();

  // Errors: EINVAL for an empty path or one containing NUL, ENAMETOOLONG
  // when it does not fit sun_path (107 bytes plus the terminator).
  static Result<UnixAddr> Path(std::string_view path);
  // Abstract-namespace `name` (without the leading NUL). Errors: EINVAL if
  // empty, ENAMETOOLONG over 107 bytes.
  static Result<UnixAddr> Abstract(std::string_view name);
  // "@name" for an abstract name, anything else for a path.
  static Result<UnixAddr> Parse(std::string_view text);

  int family() const { return AF_UNIX; }
  bool is_unnamed() const { return len_ <= kPathOffset; }
  bool is_abstract() const;
  // The path or the abstract name (without '@'); "" when unnamed.
  std::string_view name() const;
  // The path, "@name", or "(unnamed)".
  std::string ToString() const;

  const ::sockaddr* sockaddr() const {
    return reinterpret_cast<const ::sockaddr*>(&un_);
  }
  socklen_t size() const { return len_; }
  ::sockaddr* mutable_sockaddr() { return reinterpret_cast<::sockaddr*>(&un_); }
  static constexpr socklen_t Capacity() { return sizeof(::sockaddr_un); }
  // Errors: EAFNOSUPPORT if the kernel wrote another family, EINVAL if
  // `len` exceeds Capacity().
  Status Adopt(socklen_t len);

  friend bool operator==(const UnixAddr& a, const UnixAddr& b);
  friend bool operator!=(const UnixAddr& a, const UnixAddr& b) {
    return !(a == b);
  }

 private:
  static constexpr socklen_t kPathOffset = offsetof(::sockaddr_un, sun_path);
  static Result<UnixAddr> Make(std::string_view name, bool abstract);

  ::sockaddr_un un_;
  socklen_t len_;
};

}  // namespace offload::sock

#endif  // OFFLOAD_API_ADDR_H_
