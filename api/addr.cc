// InetAddr and UnixAddr: parsing, formatting, validation; see addr.h.

#include "api/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

namespace offload::sock {
namespace {

constexpr const char kParse[] = "InetAddr::Parse";

// Decimal 0-65535, digits only (no sign, no spaces, no hex).
bool ParsePort(std::string_view text, uint16_t* port) {
  if (text.empty() || text.size() > 5) return false;
  uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

InetAddr::InetAddr() {
  memset(&u_, 0, sizeof(u_));
  u_.v4.sin_family = AF_INET;
}

InetAddr InetAddr::Loopback4(uint16_t port) {
  InetAddr a;
  a.u_.v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.set_port(port);
  return a;
}

InetAddr InetAddr::Any4(uint16_t port) {
  InetAddr a;
  a.set_port(port);
  return a;
}

InetAddr InetAddr::Loopback6(uint16_t port) {
  InetAddr a = Any6(port);
  a.u_.v6.sin6_addr = in6addr_loopback;
  return a;
}

InetAddr InetAddr::Any6(uint16_t port) {
  InetAddr a;
  memset(&a.u_, 0, sizeof(a.u_));
  a.u_.v6.sin6_family = AF_INET6;
  a.u_.v6.sin6_addr = in6addr_any;
  a.set_port(port);
  return a;
}

Result<InetAddr> InetAddr::Parse(std::string_view host, uint16_t port) {
  if (host == "localhost") return Loopback4(port);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.find(':') == std::string_view::npos) {
      return Status(EINVAL, kParse);  // brackets are for IPv6 only
    }
  }
  // inet_pton needs a terminated string; INET6_ADDRSTRLEN bounds any
  // literal it accepts.
  char buf[INET6_ADDRSTRLEN];
  if (host.empty() || host.size() >= sizeof(buf)) return Status(EINVAL, kParse);
  memcpy(buf, host.data(), host.size());
  buf[host.size()] = '\0';
  InetAddr a;
  if (::inet_pton(AF_INET, buf, &a.u_.v4.sin_addr) == 1) {
    a.set_port(port);
    return a;
  }
  a = Any6(port);
  if (::inet_pton(AF_INET6, buf, &a.u_.v6.sin6_addr) == 1) return a;
  return Status(EINVAL, kParse);
}

Result<InetAddr> InetAddr::Parse(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return Status(EINVAL, kParse);
  std::string_view host = text.substr(0, colon);
  uint16_t port = 0;
  if (!ParsePort(text.substr(colon + 1), &port)) {
    return Status(EINVAL, kParse);
  }
  // An IPv6 literal with a port must be bracketed: "::1:80" is ambiguous.
  const bool bracketed = !host.empty() && host.front() == '[';
  if (!bracketed && host.find(':') != std::string_view::npos) {
    return Status(EINVAL, kParse);
  }
  return Parse(host, port);
}

Result<InetAddr> InetAddr::FromSockaddr(const ::sockaddr* sa, socklen_t len) {
  InetAddr a;
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) {
    return Status(EINVAL, "InetAddr::FromSockaddr");
  }
  if (len > Capacity()) len = Capacity();
  memcpy(&a.u_, sa, len);
  if (Status s = a.Adopt(len); !s.ok()) {
    return Status(s.code(), "InetAddr::FromSockaddr");
  }
  return a;
}

Status InetAddr::Adopt(socklen_t len) {
  const int fam = len >= static_cast<socklen_t>(sizeof(sa_family_t))
                      ? u_.sa.sa_family
                      : AF_UNSPEC;
  int err = 0;
  if (fam == AF_INET) {
    if (len < static_cast<socklen_t>(sizeof(u_.v4))) err = EINVAL;
  } else if (fam == AF_INET6) {
    if (len < static_cast<socklen_t>(sizeof(u_.v6))) err = EINVAL;
  } else {
    err = EAFNOSUPPORT;
  }
  if (err != 0) {
    *this = InetAddr();
    return Status(err, "InetAddr::Adopt");
  }
  return Status();
}

uint16_t InetAddr::port() const {
  return ntohs(is_v6() ? u_.v6.sin6_port : u_.v4.sin_port);
}

void InetAddr::set_port(uint16_t port) {
  if (is_v6()) {
    u_.v6.sin6_port = htons(port);
  } else {
    u_.v4.sin_port = htons(port);
  }
}

bool InetAddr::is_loopback() const {
  if (is_v6()) return IN6_IS_ADDR_LOOPBACK(&u_.v6.sin6_addr);
  return (ntohl(u_.v4.sin_addr.s_addr) >> 24) == 127;
}

bool InetAddr::is_any() const {
  if (is_v6()) return IN6_IS_ADDR_UNSPECIFIED(&u_.v6.sin6_addr);
  return u_.v4.sin_addr.s_addr == htonl(INADDR_ANY);
}

std::string InetAddr::HostString() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (is_v6()) {
    ::inet_ntop(AF_INET6, &u_.v6.sin6_addr, buf, sizeof(buf));
  } else {
    ::inet_ntop(AF_INET, &u_.v4.sin_addr, buf, sizeof(buf));
  }
  return buf;
}

std::string InetAddr::ToString() const {
  const std::string port_text = ":" + std::to_string(port());
  if (is_v6()) return "[" + HostString() + "]" + port_text;
  return HostString() + port_text;
}

bool operator==(const InetAddr& a, const InetAddr& b) {
  if (a.family() != b.family() || a.port() != b.port()) return false;
  if (a.is_v6()) {
    return memcmp(&a.u_.v6.sin6_addr, &b.u_.v6.sin6_addr, sizeof(in6_addr)) ==
               0 &&
           a.u_.v6.sin6_scope_id == b.u_.v6.sin6_scope_id;
  }
  return a.u_.v4.sin_addr.s_addr == b.u_.v4.sin_addr.s_addr;
}

UnixAddr::UnixAddr() : len_(kPathOffset) {
  memset(&un_, 0, sizeof(un_));
  un_.sun_family = AF_UNIX;
}

Result<UnixAddr> UnixAddr::Make(std::string_view name, bool abstract) {
  const char* op = abstract ? "UnixAddr::Abstract" : "UnixAddr::Path";
  if (name.empty() || name.find('\0') != std::string_view::npos) {
    return Status(EINVAL, op);
  }
  UnixAddr a;
  // A path needs its terminator inside sun_path; an abstract name starts
  // after the leading NUL and has none.
  if (name.size() + 1 > sizeof(a.un_.sun_path)) {
    return Status(ENAMETOOLONG, op);
  }
  char* dst = a.un_.sun_path + (abstract ? 1 : 0);
  memcpy(dst, name.data(), name.size());
  a.len_ = static_cast<socklen_t>(kPathOffset + name.size() + 1);
  return a;
}

Result<UnixAddr> UnixAddr::Path(std::string_view path) {
  return Make(path, false);
}

Result<UnixAddr> UnixAddr::Abstract(std::string_view name) {
  return Make(name, true);
}

Result<UnixAddr> UnixAddr::Parse(std::string_view text) {
  if (!text.empty() && text.front() == '@') return Abstract(text.substr(1));
  return Path(text);
}

bool UnixAddr::is_abstract() const {
  return !is_unnamed() && un_.sun_path[0] == '\0';
}

std::string_view UnixAddr::name() const {
  if (is_unnamed()) return {};
  if (is_abstract()) {
    return std::string_view(un_.sun_path + 1, len_ - kPathOffset - 1);
  }
  // A path as the kernel returns it may or may not count its terminator.
  return std::string_view(un_.sun_path,
                          strnlen(un_.sun_path, len_ - kPathOffset));
}

std::string UnixAddr::ToString() const {
  if (is_unnamed()) return "(unnamed)";
  if (is_abstract()) return "@" + std::string(name());
  return std::string(name());
}

Status UnixAddr::Adopt(socklen_t len) {
  int err = 0;
  if (len > Capacity()) {
    err = EINVAL;
  } else if (len >= static_cast<socklen_t>(sizeof(sa_family_t)) &&
             un_.sun_family != AF_UNIX) {
    err = EAFNOSUPPORT;
  }
  if (err != 0) {
    *this = UnixAddr();
    return Status(err, "UnixAddr::Adopt");
  }
  // An unnamed peer is reported with len == sizeof(sa_family_t).
  len_ = len < kPathOffset ? kPathOffset : len;
  return Status();
}

bool operator==(const UnixAddr& a, const UnixAddr& b) {
  return a.is_abstract() == b.is_abstract() && a.name() == b.name();
}

}  // namespace offload::sock
