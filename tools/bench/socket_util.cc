// Implementation of the shared test-program helpers; see socket_util.h.

#include "tools/bench/socket_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace offload::tools {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

int UniqueFd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

absl::Status ErrnoStatus(absl::string_view what, int err) {
  std::string message = absl::StrCat(what, ": ", strerror(err));
  switch (err) {
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
      return absl::UnavailableError(message);
    case EADDRINUSE:
      return absl::AlreadyExistsError(message);
    case EINVAL:
    case EAFNOSUPPORT:
      return absl::InvalidArgumentError(message);
    case ETIMEDOUT:
      return absl::DeadlineExceededError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<in_addr> ParseIpv4(absl::string_view text) {
  std::string host(text == "localhost" ? "127.0.0.1" : text);
  in_addr addr{};
  if (::inet_pton(AF_INET, host.c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not an IPv4 address (expected a.b.c.d or localhost)"));
  }
  return addr;
}

absl::StatusOr<sockaddr_in> MakeAddress(absl::string_view host, uint16_t port) {
  absl::StatusOr<in_addr> addr = ParseIpv4(host);
  if (!addr.ok()) return addr.status();
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr = *addr;
  return sin;
}

namespace {

absl::Status SetBuffers(int fd, int sock_buf) {
  if (sock_buf <= 0) return absl::OkStatus();
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sock_buf, sizeof(sock_buf)) !=
          0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sock_buf, sizeof(sock_buf)) !=
          0) {
    return ErrnoStatus(
        absl::StrCat("setsockopt(SO_RCVBUF/SO_SNDBUF, ", sock_buf, ")"), errno);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<UniqueFd> BindSocket(int type, absl::string_view host,
                                    uint16_t port, int backlog, int sock_buf) {
  absl::StatusOr<sockaddr_in> sin = MakeAddress(host, port);
  if (!sin.ok()) return sin.status();
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus("socket", errno);
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) !=
      0) {
    return ErrnoStatus("setsockopt(SO_REUSEADDR)", errno);
  }
  if (absl::Status s = SetBuffers(fd.get(), sock_buf); !s.ok()) return s;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*sin),
             sizeof(*sin)) != 0) {
    return ErrnoStatus(absl::StrCat("bind ", host, ":", port,
                                    " (use --port 0 to let the kernel pick)"),
                       errno);
  }
  if (type == SOCK_STREAM && ::listen(fd.get(), backlog) != 0) {
    return ErrnoStatus("listen", errno);
  }
  return fd;
}

absl::StatusOr<UniqueFd> ConnectTo(int type, absl::string_view host,
                                   uint16_t port, absl::Duration timeout,
                                   int sock_buf) {
  absl::StatusOr<sockaddr_in> sin = MakeAddress(host, port);
  if (!sin.ok()) return sin.status();
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(5);
  for (;;) {
    UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return ErrnoStatus("socket", errno);
    if (absl::Status s = SetBuffers(fd.get(), sock_buf); !s.ok()) return s;
    int rc;
    do {
      rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*sin),
                     sizeof(*sin));
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) return fd;
    const int err = errno;
    if (err != ECONNREFUSED || absl::Now() + backoff > deadline) {
      return ErrnoStatus(absl::StrCat("connect to ", host, ":", port), err);
    }
    absl::SleepFor(backoff);  // Retry pacing while the server starts.
    backoff = std::min(backoff * 2, absl::Milliseconds(200));
  }
}

absl::Status WaitFd(int fd, short events, absl::Time deadline) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("timed out waiting for the peer");
    }
    pollfd pfd{fd, events, 0};
    // Round up so we never spin on a sub-millisecond remainder; cap so the
    // int conversion cannot overflow (an infinite deadline just re-polls).
    const int64_t ms =
        std::min<int64_t>(absl::ToInt64Milliseconds(left), 1 << 30) + 1;
    const int rc = ::poll(&pfd, 1, static_cast<int>(ms));
    if (rc > 0) return absl::OkStatus();
    if (rc < 0 && errno != EINTR) return ErrnoStatus("poll", errno);
  }
}

absl::StatusOr<UniqueFd> AcceptWithTimeout(int listener,
                                           absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (absl::Status s = WaitFd(listener, POLLIN, deadline); !s.ok()) {
      return absl::DeadlineExceededError(
          "no client connected before the timeout");
    }
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
    if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
      return ErrnoStatus("accept", errno);
    }
  }
}

absl::StatusOr<uint16_t> LocalPort(int fd) {
  sockaddr_in sin{};
  socklen_t len = sizeof(sin);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
    return ErrnoStatus("getsockname", errno);
  }
  return ntohs(sin.sin_port);
}

namespace {

// A deadline that is either fixed or starts when first asked for: Get()
// reads the clock once, the first time a call has to wait.
class LazyDeadline {
 public:
  static LazyDeadline At(absl::Time deadline) {
    return LazyDeadline(deadline, absl::ZeroDuration());
  }
  static LazyDeadline After(absl::Duration timeout) {
    return LazyDeadline(absl::InfinitePast(), timeout);
  }
  absl::Time Get() {
    if (deadline_ == absl::InfinitePast()) deadline_ = absl::Now() + timeout_;
    return deadline_;
  }

 private:
  LazyDeadline(absl::Time deadline, absl::Duration timeout)
      : deadline_(deadline), timeout_(timeout) {}
  absl::Time deadline_;
  absl::Duration timeout_;
};

// Sends all `len` bytes. `first` and `err` are the result of a send the
// caller already made (first > 0: bytes it sent; first < 0: it failed with
// `err`), or first == 0 when none was made.
absl::Status WriteFullUntil(int fd, const char* p, size_t len,
                            LazyDeadline deadline, ssize_t first = 0,
                            int err = 0) {
  ssize_t n = first;
  for (;;) {
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
    } else if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
      if (absl::Status s = WaitFd(fd, POLLOUT, deadline.Get()); !s.ok()) {
        return absl::DeadlineExceededError(absl::StrCat(
            "timed out sending: the peer has not read for too long (", len,
            " bytes left)"));
      }
    } else if (n < 0 && err != EINTR) {
      return ErrnoStatus("send", err);
    }
    if (len == 0) return absl::OkStatus();
    n = ::send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    err = n < 0 ? errno : 0;
    if (n == 0) return ErrnoStatus("send", EPIPE);
  }
}

// Receives once; `err`, if not 0, is the errno of a recv the caller
// already made.
absl::StatusOr<size_t> ReadSomeUntil(int fd, void* data, size_t len,
                                     LazyDeadline deadline, int err = 0) {
  for (;;) {
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (absl::Status s = WaitFd(fd, POLLIN, deadline.Get()); !s.ok()) {
        return s;
      }
    } else if (err != 0 && err != EINTR) {
      return ErrnoStatus("recv", err);
    }
    const ssize_t n = ::recv(fd, data, len, MSG_DONTWAIT);
    if (n >= 0) return static_cast<size_t>(n);
    err = errno;
  }
}

}  // namespace

absl::Status WriteFull(int fd, const void* data, size_t len,
                       absl::Time deadline) {
  return WriteFullUntil(fd, static_cast<const char*>(data), len,
                        LazyDeadline::At(deadline));
}

absl::Status WriteFullSlow(int fd, const char* data, size_t len,
                           absl::Duration timeout, ssize_t first, int err) {
  return WriteFullUntil(fd, data, len, LazyDeadline::After(timeout), first,
                        err);
}

absl::StatusOr<size_t> ReadSome(int fd, void* data, size_t len,
                                absl::Time deadline) {
  return ReadSomeUntil(fd, data, len, LazyDeadline::At(deadline));
}

absl::StatusOr<size_t> ReadSomeSlow(int fd, void* data, size_t len,
                                    absl::Duration timeout, int err) {
  return ReadSomeUntil(fd, data, len, LazyDeadline::After(timeout), err);
}

absl::Status ReadFull(int fd, void* data, size_t len, absl::Time deadline) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < len) {
    absl::StatusOr<size_t> n = ReadSome(fd, p + got, len - got, deadline);
    if (!n.ok()) {
      return absl::Status(n.status().code(),
                          absl::StrCat(n.status().message(), " (received ", got,
                                       " of ", len, " bytes)"));
    }
    if (*n == 0) {
      return absl::OutOfRangeError(absl::StrCat(
          "peer closed the connection after ", got, " of ", len, " bytes"));
    }
    got += *n;
  }
  return absl::OkStatus();
}

absl::Status WritePortFile(const std::string& path, uint16_t port) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  UniqueFd fd(
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoStatus(absl::StrCat("open ", tmp), errno);
  const std::string text = absl::StrCat(port, "\n");
  if (::write(fd.get(), text.data(), text.size()) !=
      static_cast<ssize_t>(text.size())) {
    return ErrnoStatus(absl::StrCat("write ", tmp), errno);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(absl::StrCat("rename ", tmp, " -> ", path), errno);
  }
  return absl::OkStatus();
}

}  // namespace offload::tools
