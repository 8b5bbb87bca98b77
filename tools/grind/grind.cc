// offload-grind implementation; see grind.h for the protocol.

#include "tools/grind/grind.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/bench/socket_util.h"
#include "tools/grind/wire.h"

namespace offload::tools::grind {
namespace {

// Server side of one TCP size step: reads and checks messages*size bytes.
absl::Status ServeTcpStep(int fd, const Plan& plan, uint32_t size,
                          uint64_t base, absl::Duration timeout,
                          std::vector<uint8_t>& buf, Verdict* v) {
  const uint64_t total = MessagesPerSize(size, plan.wraps) * size;
  uint64_t received = 0;
  bool bad = false;
  for (uint64_t j = 0; received < total; ++j) {
    const size_t align = j % 8;
    const size_t want = static_cast<size_t>(
        std::min<uint64_t>(RecvLen(j, size), total - received));
    absl::StatusOr<size_t> n =
        ReadSome(fd, buf.data() + align, want, absl::Now() + timeout);
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return absl::OutOfRangeError(absl::StrCat(
          "client closed the connection during size ", size, " after ",
          received, " of ", total, " bytes"));
    }
    if (!bad) {
      const size_t idx =
          FindMismatch(plan.seed, base + received, buf.data() + align, *n);
      if (idx < *n) {
        bad = true;
        v->code = VerdictCode::kMismatch;
        v->offset = base + received + idx;
        v->message = (received + idx) / size;
        v->expected = PatternByte(plan.seed, v->offset);
        v->got = buf[align + idx];
      }
    }
    received += *n;
  }
  v->bytes = received;
  return absl::OkStatus();
}

// Server side of one UDP size step: receives datagrams in batches, acks each
// batch on the control connection.
absl::Status ServeUdpStep(int ctl, int udp, const Plan& plan, uint32_t size,
                          uint64_t base, absl::Duration timeout,
                          std::vector<uint8_t>& buf1,
                          std::vector<uint8_t>& buf2, Verdict* v) {
  const uint64_t messages = MessagesPerSize(size, plan.wraps);
  const uint64_t batch = std::clamp<uint64_t>(kWrapBytes / size, 1, kMaxUdpBatch);
  bool bad = false;
  for (uint64_t i = 0; i < messages;) {
    const uint64_t end = std::min(messages, i + batch);
    for (; i < end; ++i) {
      if (!WaitFd(udp, POLLIN, absl::Now() + kUdpLossTimeout).ok()) {
        v->code = VerdictCode::kLost;
        v->message = i;
        v->bytes = i * size;
        const uint8_t stop = static_cast<uint8_t>(BatchAck::kStop);
        return WriteFull(ctl, &stop, 1, absl::Now() + timeout);
      }
      // The receive split differs from the send split, and the second iovec
      // is big enough for any datagram, so only a wrong length truncates.
      const size_t split = RecvSplit(i, size);
      iovec iov[2];
      iov[0].iov_base = buf1.data() + (i % 8);
      iov[0].iov_len = split;
      iov[1].iov_base = buf2.data() + ((i / 8) % 8);
      iov[1].iov_len = kMaxUdpMessage + 1 - split;
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = 2;
      ssize_t n;
      do {
        n = ::recvmsg(udp, &msg, MSG_DONTWAIT | MSG_TRUNC);
      } while (n < 0 && errno == EINTR);
      if (n < 0) return ErrnoStatus("recvmsg (udp data)", errno);
      if (static_cast<uint64_t>(n) != size) {
        if (!bad) {
          bad = true;
          v->code = VerdictCode::kBadLength;
          v->message = i;
          v->offset = static_cast<uint64_t>(n);
        }
        continue;
      }
      if (bad) continue;
      const uint64_t off = base + i * size;
      const uint8_t* piece[2] = {static_cast<uint8_t*>(iov[0].iov_base),
                                 static_cast<uint8_t*>(iov[1].iov_base)};
      const size_t len[2] = {split, size - split};
      uint64_t at = off;
      for (int k = 0; k < 2 && !bad; ++k) {
        const size_t idx = FindMismatch(plan.seed, at, piece[k], len[k]);
        if (idx < len[k]) {
          bad = true;
          v->code = VerdictCode::kMismatch;
          v->message = i;
          v->offset = at + idx;
          v->expected = PatternByte(plan.seed, at + idx);
          v->got = piece[k][idx];
        }
        at += len[k];
      }
    }
    const uint8_t ack = static_cast<uint8_t>(BatchAck::kContinue);
    if (absl::Status s = WriteFull(ctl, &ack, 1, absl::Now() + timeout);
        !s.ok()) {
      return s;
    }
  }
  v->bytes = messages * size;
  return absl::OkStatus();
}

absl::Status ServeSession(int fd, int listener, const ServerOptions& options,
                          std::ostream& out) {
  const absl::Duration timeout = options.io_timeout;
  uint8_t hs[kHandshakeSize];
  if (absl::Status s = ReadFull(fd, hs, sizeof(hs), absl::Now() + timeout);
      !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("reading the handshake: ", s.message()));
  }
  absl::StatusOr<Plan> plan = DecodeHandshake(hs);
  uint8_t reply[4] = {0, 0, 0, 0};
  if (!plan.ok()) {
    // Tell the client why, then give up on this session.
    const std::string why(plan.status().message().substr(0, 255));
    reply[0] = 1;
    reply[3] = static_cast<uint8_t>(why.size());
    std::string msg(reinterpret_cast<char*>(reply), sizeof(reply));
    msg += why;
    (void)WriteFull(fd, msg.data(), msg.size(), absl::Now() + timeout);
    return plan.status();
  }
  UniqueFd udp;
  if (plan->transport == Transport::kUdp) {
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    if (::getsockname(listener, reinterpret_cast<sockaddr*>(&local), &len) !=
        0) {
      return ErrnoStatus("getsockname", errno);
    }
    char host[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &local.sin_addr, host, sizeof(host));
    absl::StatusOr<UniqueFd> u = BindSocket(SOCK_DGRAM, host, 0);
    if (!u.ok()) return u.status();
    udp = std::move(*u);
    const int rcvbuf = 1 << 20;  // Best effort; capped by rmem_max.
    (void)::setsockopt(udp.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf,
                       sizeof(rcvbuf));
    absl::StatusOr<uint16_t> port = LocalPort(udp.get());
    if (!port.ok()) return port.status();
    reply[1] = static_cast<uint8_t>(*port);
    reply[2] = static_cast<uint8_t>(*port >> 8);
  }
  if (absl::Status s = WriteFull(fd, reply, sizeof(reply), absl::Now() + timeout);
      !s.ok()) {
    return s;
  }
  out << absl::StrFormat("session: %s sizes %u..%u step %u, %u x 64 KiB each\n",
                         TransportName(plan->transport), plan->start,
                         plan->end, plan->increment, plan->wraps)
      << std::flush;

  const size_t cap = plan->transport == Transport::kUdp
                         ? kMaxUdpMessage + 16
                         : 2 * static_cast<size_t>(plan->end) + 16;
  std::vector<uint8_t> buf1(cap), buf2(kMaxUdpMessage + 16);
  uint64_t base = 0;
  uint64_t total = 0;
  for (uint64_t size = plan->start; size <= plan->end;
       size += plan->increment) {
    Verdict v;
    v.size = static_cast<uint32_t>(size);
    absl::Status s =
        plan->transport == Transport::kTcp
            ? ServeTcpStep(fd, *plan, v.size, base, timeout, buf1, &v)
            : ServeUdpStep(fd, udp.get(), *plan, v.size, base, timeout, buf1,
                           buf2, &v);
    if (!s.ok()) return s;
    uint8_t wire[kVerdictSize];
    EncodeVerdict(v, wire);
    if (absl::Status w = WriteFull(fd, wire, sizeof(wire), absl::Now() + timeout);
        !w.ok()) {
      return w;
    }
    if (options.verbose && v.code == VerdictCode::kOk) {
      out << absl::StrFormat("size %7u: %u bytes ok\n", v.size, v.bytes);
    }
    if (absl::Status bad = VerdictStatus(v, base); !bad.ok()) return bad;
    total += v.bytes;
    base += MessagesPerSize(v.size, plan->wraps) * v.size;
  }
  out << absl::StrFormat("%u bytes checked\n", total);
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePlan(const Plan& plan) {
  const uint32_t max = plan.transport == Transport::kUdp ? kMaxUdpMessage
                                                         : kMaxTcpMessage;
  if (plan.start < 1 || plan.start > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--start must be in [1, ", max, "], got ", plan.start));
  }
  if (plan.end < plan.start || plan.end > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--end must be in [--start, ", max, "], got ", plan.end));
  }
  if (plan.increment < 1) {
    return absl::InvalidArgumentError("--increment must be at least 1");
  }
  if (plan.wraps < 1 || plan.wraps > kMaxWraps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--wraps must be in [1, ", kMaxWraps, "], got ", plan.wraps));
  }
  return absl::OkStatus();
}

uint64_t MessagesPerSize(uint32_t size, uint32_t wraps) {
  const uint64_t bytes = static_cast<uint64_t>(wraps) * kWrapBytes;
  return std::max<uint64_t>(1, (bytes + size - 1) / size);
}

void FillPattern(uint64_t seed, uint64_t offset, uint8_t* out, size_t len) {
  for (size_t i = 0; i < len; ++i) out[i] = PatternByte(seed, offset + i);
}

size_t FindMismatch(uint64_t seed, uint64_t offset, const uint8_t* data,
                    size_t len) {
  for (size_t i = 0; i < len; ++i) {
    if (data[i] != PatternByte(seed, offset + i)) return i;
  }
  return len;
}

absl::Status RunServer(int listener, const ServerOptions& options,
                       std::ostream& out) {
  absl::Status result = absl::OkStatus();
  for (uint64_t n = 0; options.sessions == 0 || n < options.sessions; ++n) {
    absl::StatusOr<UniqueFd> conn =
        AcceptWithTimeout(listener, absl::InfiniteDuration());
    if (!conn.ok()) return conn.status();
    absl::Status s = ServeSession(conn->get(), listener, options, out);
    if (s.ok()) {
      out << "LOOKS GOOD\n" << std::flush;
    } else {
      out << s.message() << "\n" << std::flush;
      if (result.ok()) result = s;
    }
  }
  return result;
}

absl::Status RunClient(const ClientOptions& options, std::ostream& out) {
  const Plan& plan = options.plan;
  if (absl::Status s = ValidatePlan(plan); !s.ok()) return s;
  const absl::Duration timeout = options.io_timeout;
  absl::StatusOr<UniqueFd> ctl = ConnectTo(SOCK_STREAM, options.host,
                                           options.port, absl::Seconds(10));
  if (!ctl.ok()) return ctl.status();
  const int fd = ctl->get();
  uint8_t hs[kHandshakeSize];
  EncodeHandshake(plan, hs);
  if (absl::Status s = WriteFull(fd, hs, sizeof(hs), absl::Now() + timeout);
      !s.ok()) {
    return s;
  }
  uint8_t reply[4];
  if (absl::Status s = ReadFull(fd, reply, sizeof(reply), absl::Now() + timeout);
      !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("waiting for the server's "
                                               "handshake reply: ",
                                               s.message()));
  }
  if (reply[0] != 0) {
    std::string why(reply[3], '\0');
    (void)ReadFull(fd, why.data(), why.size(), absl::Now() + timeout);
    return absl::InvalidArgumentError(
        absl::StrCat("server rejected the test plan: ", why));
  }
  UniqueFd udp;
  if (plan.transport == Transport::kUdp) {
    const uint16_t port = static_cast<uint16_t>(reply[1] | (reply[2] << 8));
    absl::StatusOr<UniqueFd> u =
        ConnectTo(SOCK_DGRAM, options.host, port, absl::Seconds(1));
    if (!u.ok()) return u.status();
    udp = std::move(*u);
  }

  const size_t cap = plan.end + 16;
  std::vector<uint8_t> buf1(cap), buf2(cap);
  uint64_t base = 0;
  uint64_t total = 0;
  for (uint64_t size64 = plan.start; size64 <= plan.end;
       size64 += plan.increment) {
    const uint32_t size = static_cast<uint32_t>(size64);
    const uint64_t messages = MessagesPerSize(size, plan.wraps);
    const uint64_t batch =
        std::clamp<uint64_t>(kWrapBytes / size, 1, kMaxUdpBatch);
    bool stopped = false;
    for (uint64_t i = 0; i < messages && !stopped; ++i) {
      const uint64_t off = base + i * size;
      const size_t split = SendSplit(i, size);
      uint8_t* p1 = buf1.data() + (i % 8);
      uint8_t* p2 = plan.transport == Transport::kUdp
                        ? buf2.data() + ((i / 8) % 8)
                        : p1 + split;
      FillPattern(plan.seed, off, p1, split);
      FillPattern(plan.seed, off + split, p2, size - split);
      const int64_t bad = options.corrupt_offset_for_test;
      if (bad >= 0 && static_cast<uint64_t>(bad) >= off &&
          static_cast<uint64_t>(bad) < off + size) {
        const uint64_t k = static_cast<uint64_t>(bad) - off;
        uint8_t* b = k < split ? p1 + k : p2 + (k - split);
        *b ^= 0x5A;
      }
      if (plan.transport == Transport::kTcp) {
        const absl::Time deadline = absl::Now() + timeout;
        absl::Status s = WriteFull(fd, p1, split, deadline);
        if (s.ok()) s = WriteFull(fd, p2, size - split, deadline);
        if (!s.ok()) return s;
        continue;
      }
      iovec iov[2] = {{p1, split}, {p2, size - split}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = 2;
      for (;;) {
        if (::sendmsg(udp.get(), &msg, 0) == static_cast<ssize_t>(size)) break;
        if (errno == EINTR) continue;
        return ErrnoStatus(absl::StrCat("sendmsg (udp, ", size, " bytes)"),
                           errno);
      }
      if ((i + 1) % batch == 0 || i + 1 == messages) {
        uint8_t ack;
        if (absl::Status s = ReadFull(fd, &ack, 1, absl::Now() + timeout);
            !s.ok()) {
          return s;
        }
        stopped = ack == static_cast<uint8_t>(BatchAck::kStop);
      }
    }
    uint8_t wire[kVerdictSize];
    if (absl::Status s = ReadFull(fd, wire, sizeof(wire), absl::Now() + timeout);
        !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("waiting for the verdict on "
                                                 "size ",
                                                 size, ": ", s.message()));
    }
    absl::StatusOr<Verdict> v = DecodeVerdict(wire);
    if (!v.ok()) return v.status();
    if (absl::Status s = VerdictStatus(*v, base); !s.ok()) return s;
    if (options.verbose) {
      out << absl::StrFormat("size %7u: %u messages, %u bytes ok\n", size,
                             messages, v->bytes);
    }
    total += v->bytes;
    base += messages * size;
  }
  out << absl::StrFormat("%s: %u bytes in sizes %u..%u step %u verified\n",
                         TransportName(plan.transport), total, plan.start,
                         plan.end, plan.increment);
  return absl::OkStatus();
}

}  // namespace offload::tools::grind
