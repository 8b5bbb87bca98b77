#include "tools/bench/pingpong.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/bench/socket_util.h"

namespace offload::tools {
namespace {

constexpr char kPingPong = 'P';
constexpr char kThroughput = 'T';

double NowSec() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

bool ReadFull(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t k = read(fd, p, n);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool WriteFull(int fd, const void* buf, size_t n) {
  auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t k = write(fd, p, n);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

absl::StatusOr<UniqueFd> Dial(const Endpoint& ep, char mode, uint32_t size) {
  UniqueFd fd(socket(ep.family, SOCK_STREAM, 0));
  if (!fd.valid()) return ErrnoStatus("socket", errno);
  // Ping-pong without Nagle; throughput with it, as sockperf does.
  const int one = 1;
  if (mode == kPingPong) setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0) {
    return ErrnoStatus("connect", errno);
  }
  char hello[5];
  hello[0] = mode;
  memcpy(hello + 1, &size, 4);
  if (!WriteFull(fd.get(), hello, sizeof(hello))) return ErrnoStatus("send hello", errno);
  return fd;
}

void ServeOne(int c) {
  char hello[5];
  if (!ReadFull(c, hello, sizeof(hello))) return;
  uint32_t size;
  memcpy(&size, hello + 1, 4);
  if (size == 0 || size > (1u << 20)) return;
  std::vector<char> buf(std::max<size_t>(size, 65536));
  if (hello[0] == kPingPong) {
    while (ReadFull(c, buf.data(), size) && WriteFull(c, buf.data(), size)) {
    }
    return;
  }
  uint64_t bytes = 0;
  for (;;) {
    const ssize_t k = read(c, buf.data(), buf.size());
    if (k <= 0) break;
    bytes += static_cast<uint64_t>(k);
  }
  const uint64_t msgs = bytes / size;
  WriteFull(c, &msgs, sizeof(msgs));
}

}  // namespace

absl::StatusOr<Endpoint> ParseEndpoint(const std::string& host, uint16_t port) {
  Endpoint ep;
  sockaddr_in v4 = {};
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    memcpy(&ep.addr, &v4, sizeof(v4));
    ep.len = sizeof(v4);
    ep.family = AF_INET;
    return ep;
  }
  if (inet_pton(AF_INET6, host.c_str(), &ep.addr.sin6_addr) == 1) {
    ep.addr.sin6_family = AF_INET6;
    ep.addr.sin6_port = htons(port);
    ep.len = sizeof(sockaddr_in6);
    ep.family = AF_INET6;
    return ep;
  }
  return absl::InvalidArgumentError(absl::StrCat("not an IPv4 or IPv6 address: '", host, "'"));
}

absl::Status Serve(const Endpoint& ep, bool v6only) {
  UniqueFd l(socket(ep.family, SOCK_STREAM, 0));
  if (!l.valid()) return ErrnoStatus("socket", errno);
  const int one = 1;
  setsockopt(l.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ep.family == AF_INET6) {
    const int v = v6only ? 1 : 0;
    setsockopt(l.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v));
  }
  if (bind(l.get(), reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0) {
    return ErrnoStatus("bind", errno);
  }
  if (listen(l.get(), 16) != 0) return ErrnoStatus("listen", errno);
  sockaddr_in6 bound = {};  // sin_port and sin6_port are at the same offset
  socklen_t blen = sizeof(bound);
  getsockname(l.get(), reinterpret_cast<sockaddr*>(&bound), &blen);
  printf("listening %u\n", ntohs(bound.sin6_port));
  fflush(stdout);
  for (;;) {
    UniqueFd c(accept(l.get(), nullptr, nullptr));
    if (!c.valid()) return ErrnoStatus("accept", errno);
    setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ServeOne(c.get());
  }
}

absl::StatusOr<PingPongResult> PingPong(const Endpoint& ep, size_t size, double seconds) {
  absl::StatusOr<UniqueFd> fd = Dial(ep, kPingPong, static_cast<uint32_t>(size));
  if (!fd.ok()) return fd.status();
  std::vector<char> buf(size, 'x');
  std::vector<double> half_rtt_us;
  half_rtt_us.reserve(1 << 20);
  const double start = NowSec(), warm = start + seconds * 0.1, end = start + seconds;
  for (double now = start; now < end;) {
    const double t0 = NowSec();
    if (!WriteFull(fd->get(), buf.data(), size) || !ReadFull(fd->get(), buf.data(), size)) {
      return ErrnoStatus("ping-pong", errno);
    }
    now = NowSec();
    if (t0 >= warm && half_rtt_us.size() < (32u << 20)) half_rtt_us.push_back((now - t0) * 5e5);
  }
  if (half_rtt_us.empty()) return absl::DeadlineExceededError("no round trip completed");
  std::sort(half_rtt_us.begin(), half_rtt_us.end());
  PingPongResult r;
  r.round_trips = half_rtt_us.size();
  r.p50_us = half_rtt_us[half_rtt_us.size() / 2];
  r.p99_us = half_rtt_us[half_rtt_us.size() * 99 / 100];
  return r;
}

absl::StatusOr<double> Throughput(const Endpoint& ep, size_t size, double seconds) {
  absl::StatusOr<UniqueFd> fd = Dial(ep, kThroughput, static_cast<uint32_t>(size));
  if (!fd.ok()) return fd.status();
  std::vector<char> buf(size, 'y');
  const double start = NowSec(), end = start + seconds;
  uint64_t sent = 0;
  while ((sent & 255) != 0 || NowSec() < end) {
    if (!WriteFull(fd->get(), buf.data(), size)) return ErrnoStatus("send", errno);
    ++sent;
  }
  const double elapsed = NowSec() - start;
  shutdown(fd->get(), SHUT_WR);
  uint64_t got = 0;
  if (!ReadFull(fd->get(), &got, sizeof(got))) return ErrnoStatus("server's count", errno);
  if (got != sent) {
    return absl::DataLossError(absl::StrCat("sent ", sent, " messages, server got ", got));
  }
  return got / elapsed;
}

}  // namespace offload::tools
