// Small helpers shared by the offload test programs (offload-grind,
// offload-cmd, ttcp, offload-connrate): an owning fd, IPv4 address parsing,
// listen/connect with clear errors, deadline-bounded full reads and writes.
//
// Everything here uses only the plain BSD socket API so that the programs
// behave the same with and without liboffload.so preloaded.
//
// Thread safety: free functions are thread-safe; a UniqueFd has one owner.

#ifndef OFFLOAD_TOOLS_BENCH_SOCKET_UTIL_H_
#define OFFLOAD_TOOLS_BENCH_SOCKET_UTIL_H_

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace offload::tools {

// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership and returns the fd (or -1).
  int release();
  // Closes the current fd (if any) and takes ownership of `fd`.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Returns a status with `what` and the text of `err` (an errno value).
absl::Status ErrnoStatus(absl::string_view what, int err);

// Parses a dotted-quad IPv4 address or "localhost" (127.0.0.1).
// Errors: InvalidArgument naming the bad text.
absl::StatusOr<in_addr> ParseIpv4(absl::string_view text);

// Builds a sockaddr_in for `host` (see ParseIpv4) and `port`.
absl::StatusOr<sockaddr_in> MakeAddress(absl::string_view host, uint16_t port);

// Creates a socket of `type` (SOCK_STREAM or SOCK_DGRAM) bound to
// `host:port` (port 0 = kernel picks); for SOCK_STREAM also listens with
// `backlog`. SO_REUSEADDR is set. `sock_buf` > 0 sets SO_RCVBUF and SO_SNDBUF
// before bind/listen.
absl::StatusOr<UniqueFd> BindSocket(int type, absl::string_view host,
                                    uint16_t port, int backlog = 128,
                                    int sock_buf = 0);

// Connects a new socket of `type` to `host:port`, waiting at most `timeout`
// (retrying ECONNREFUSED until then, so a client may start just before its
// server). `sock_buf` > 0 sets SO_RCVBUF/SO_SNDBUF before connecting.
absl::StatusOr<UniqueFd> ConnectTo(int type, absl::string_view host,
                                   uint16_t port, absl::Duration timeout,
                                   int sock_buf = 0);

// Accepts one connection on `listener`, waiting at most `timeout`.
absl::StatusOr<UniqueFd> AcceptWithTimeout(int listener,
                                           absl::Duration timeout);

// Returns the local port `fd` is bound to.
absl::StatusOr<uint16_t> LocalPort(int fd);

// Waits until `fd` is readable (POLLIN) or writable (POLLOUT) or `deadline`
// passes. Returns DeadlineExceeded on timeout.
absl::Status WaitFd(int fd, short events, absl::Time deadline);

// Writes all `len` bytes with send(MSG_NOSIGNAL), waiting at most until
// `deadline`. Works on blocking and non-blocking sockets.
absl::Status WriteFull(int fd, const void* data, size_t len,
                       absl::Time deadline);

// The same with a bound on silence instead of a deadline: the call fails
// (DeadlineExceeded) once it has waited `timeout` for the peer, counted
// from the moment it first had to wait. The common case, one send that
// takes everything, is inline and reads no clock: per call at small sizes
// an out-of-line call and absl::Now() (~50 ns) cost as much as an
// offloaded send itself.
absl::Status WriteFullSlow(int fd, const char* data, size_t len,
                           absl::Duration timeout, ssize_t first, int err);
inline absl::Status WriteFull(int fd, const void* data, size_t len,
                              absl::Duration timeout) {
  const ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n >= 0 && static_cast<size_t>(n) == len) return absl::OkStatus();
  return WriteFullSlow(fd, static_cast<const char*>(data), len, timeout, n,
                       errno);
}

// Reads exactly `len` bytes. Errors: OutOfRange if the peer closes first
// (message says how many bytes arrived), DeadlineExceeded, or errno errors.
absl::Status ReadFull(int fd, void* data, size_t len, absl::Time deadline);

// Reads at most `len` bytes (one recv) waiting until `deadline`; returns the
// count, 0 on EOF.
absl::StatusOr<size_t> ReadSome(int fd, void* data, size_t len,
                                absl::Time deadline);

// The same with a bound on silence (see WriteFull above); the first recv
// is inline.
absl::StatusOr<size_t> ReadSomeSlow(int fd, void* data, size_t len,
                                    absl::Duration timeout, int err);
inline absl::StatusOr<size_t> ReadSome(int fd, void* data, size_t len,
                                       absl::Duration timeout) {
  const ssize_t n = ::recv(fd, data, len, MSG_DONTWAIT);
  if (n >= 0) return static_cast<size_t>(n);
  return ReadSomeSlow(fd, data, len, timeout, errno);
}

// Writes "<port>\n" to `path` atomically (temp file + rename) so a script
// polling for the file never sees a partial number.
absl::Status WritePortFile(const std::string& path, uint16_t port);

}  // namespace offload::tools

#endif  // OFFLOAD_TOOLS_BENCH_SOCKET_UTIL_H_
