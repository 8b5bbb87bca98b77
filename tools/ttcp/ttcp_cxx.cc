// ttcp on the typed C++ socket API; see ttcp_cxx.h.

#include "tools/ttcp/ttcp_cxx.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "api/connector.h"
#include "api/stream.h"
#include "tools/bench/socket_util.h"

namespace offload::tools::ttcp {
namespace {

sock::Timeout ToTimeout(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return sock::Timeout::Infinite();
  return absl::ToChronoNanoseconds(d);
}

absl::Status ToStatus(const sock::Status& s) {
  return ErrnoStatus(s.op(), s.code());
}

absl::StatusOr<sock::InetAddr> Address(const std::string& host, uint16_t port) {
  sock::Result<sock::InetAddr> a = sock::InetAddr::Parse(host, port);
  if (!a.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", host,
                     "' is not an IP address (expected a.b.c.d, an IPv6 "
                     "literal or localhost)"));
  }
  return *a;
}

// Connects like tools::ConnectTo: ECONNREFUSED is retried until `timeout`
// has passed, so a transmitter may start just before its receiver.
absl::StatusOr<sock::Stream> ConnectWithRetry(const sock::InetAddr& to,
                                              int sockbuf,
                                              absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(5);
  sock::ConnectOptions options;
  options.send_buffer = options.recv_buffer = sockbuf;
  for (;;) {
    options.timeout =
        ToTimeout(std::max(deadline - absl::Now(), absl::ZeroDuration()));
    sock::Result<sock::Stream> s = sock::Connector().connect(to, options);
    if (s.ok()) return std::move(*s);
    if (s.status().code() != ECONNREFUSED || absl::Now() + backoff > deadline) {
      return ErrnoStatus(absl::StrCat("connect to ", to.ToString()),
                         s.status().code());
    }
    absl::SleepFor(backoff);  // Retry pacing while the server starts.
    backoff = std::min(backoff * 2, absl::Milliseconds(200));
  }
}

}  // namespace

absl::StatusOr<CxxApi::Listener> CxxApi::Listen(const std::string& bind,
                                                const Options& options) {
  absl::StatusOr<sock::InetAddr> at = Address(bind, options.port);
  if (!at.ok()) return at.status();
  sock::AcceptorOptions ao;
  ao.backlog = 1;
  ao.send_buffer = ao.recv_buffer = options.sockbuf;
  sock::Result<sock::Acceptor> a = sock::Acceptor::Open(*at, ao);
  if (!a.ok()) {
    return ErrnoStatus(absl::StrCat(a.status().op(), " ", at->ToString(),
                                    " (use --port 0 to let the kernel pick)"),
                       a.status().code());
  }
  return std::move(*a);
}

absl::StatusOr<uint16_t> CxxApi::Port(const Listener& listener) {
  sock::Result<sock::InetAddr> a = listener.local_addr();
  if (!a.ok()) return ToStatus(a.status());
  return a->port();
}

absl::StatusOr<Result> CxxApi::Transmit(const Options& options) {
  if (options.buflen < 1 || options.buflen > kMaxBuflen || options.nbuf < 1) {
    return absl::InvalidArgumentError("buflen and nbuf must be positive");
  }
  absl::StatusOr<sock::InetAddr> to = Address(options.host, options.port);
  if (!to.ok()) return to.status();
  const AlignedBuffer buf = PatternBuffer(options.buflen);

  const absl::Time start = absl::Now();
  absl::StatusOr<sock::Stream> s =
      ConnectWithRetry(*to, options.sockbuf, absl::Seconds(10));
  if (!s.ok()) return s.status();
  if (options.nodelay) {
    if (sock::Status st = s->set_no_delay(true); !st.ok()) {
      return ErrnoStatus("setsockopt(TCP_NODELAY)", st.code());
    }
  }
  if (!options.congestion.empty()) {
    if (sock::Status st = s->set_option(
            IPPROTO_TCP, TCP_CONGESTION, options.congestion.data(),
            static_cast<socklen_t>(options.congestion.size()));
        !st.ok()) {
      // EPERM: see ttcp.cc.
      return ErrnoStatus(
          absl::StrCat("setsockopt(TCP_CONGESTION, ", options.congestion, ")"),
          st.code());
    }
  }
  Result result;
  const sock::Result<int> granted = s->send_buffer();
  result.effective_sockbuf = granted.ok() ? *granted : -1;
  const sock::Timeout timeout = ToTimeout(options.timeout);
  uint64_t offset = 0;
  for (uint64_t i = 0; i < options.nbuf; ++i) {
    const sock::IoResult r =
        s->send_n(buf.data() + offset % 95, options.buflen, timeout);
    if (!r.ok()) return BufferError(i, ErrnoStatus("send", r.error()));
    offset += options.buflen;
    ++result.calls;
  }
  if (sock::Status st = s->close_writer(); !st.ok()) {
    return ErrnoStatus("shutdown(SHUT_WR)", st.code());
  }
  // Wait for the receiver to read everything and close.
  char sink[64];
  const sock::IoResult end = s->recv(sink, sizeof(sink), timeout);
  if (!end.ok()) {
    const absl::Status e = ErrnoStatus("recv", end.error());
    return absl::Status(
        e.code(),
        absl::StrCat("waiting for the receiver to finish: ", e.message()));
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  result.bytes = offset;
  return result;
}

absl::StatusOr<Result> CxxApi::Receive(Listener& listener,
                                       const Options& options) {
  if (options.buflen < 1 || options.buflen > kMaxBuflen) {
    return absl::InvalidArgumentError("buflen must be positive");
  }
  sock::Result<sock::Stream> s = listener.accept();
  if (!s.ok()) return ToStatus(s.status());
  const absl::Time start = absl::Now();
  Result result;
  const sock::Result<int> granted = s->recv_buffer();
  result.effective_sockbuf = granted.ok() ? *granted : -1;
  AlignedBuffer buf(options.buflen);
  const sock::Timeout timeout = ToTimeout(options.timeout);
  for (;;) {
    const sock::IoResult n = s->recv(buf.data(), buf.size(), timeout);
    if (!n.ok()) return ErrnoStatus("recv", n.error());
    ++result.calls;
    if (n.bytes() == 0) break;
    if (options.verify) {
      if (absl::Status v = VerifyPattern(buf.data(), n.bytes(), result.bytes);
          !v.ok()) {
        return v;
      }
    }
    result.bytes += n.bytes();
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return result;
}

}  // namespace offload::tools::ttcp
