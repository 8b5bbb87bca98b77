// ttcp implementation; see ttcp.h.

#include "tools/ttcp/ttcp.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>


#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/bench/socket_util.h"

namespace offload::tools::ttcp {
namespace {

int GetBuf(int fd, int which) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (::getsockopt(fd, SOL_SOCKET, which, &v, &len) != 0) return -1;
  return v;
}

}  // namespace

AlignedBuffer::AlignedBuffer(size_t size) : size_(size) {
  constexpr size_t kPage = 4096;
  const size_t rounded = (size + kPage - 1) / kPage * kPage;
  data_.reset(
      static_cast<char*>(aligned_alloc(kPage, rounded ? rounded : kPage)));
  if (!data_) abort();  // out of memory at start-up: nothing to measure
  memset(data_.get(), 0, rounded);
}

AlignedBuffer PatternBuffer(uint64_t buflen) {
  AlignedBuffer buf(buflen + 95);
  for (size_t i = 0; i < buf.size(); ++i) buf.data()[i] = PatternChar(i);
  return buf;
}

absl::Status VerifyPattern(const char* data, size_t n, uint64_t offset) {
  for (size_t i = 0; i < n; ++i) {
    if (data[i] != PatternChar(offset + i)) {
      return absl::DataLossError(absl::StrFormat(
          "data mismatch at stream offset %u: expected 0x%02x, got 0x%02x",
          offset + i, static_cast<unsigned char>(PatternChar(offset + i)),
          static_cast<unsigned char>(data[i])));
    }
  }
  return absl::OkStatus();
}

absl::Status BufferError(uint64_t index, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat("buffer ", index, ": ", status.message()));
}

absl::StatusOr<CApi::Listener> CApi::Listen(const std::string& bind,
                                            const Options& options) {
  return BindSocket(SOCK_STREAM, bind, options.port, 1, options.sockbuf);
}

absl::StatusOr<uint16_t> CApi::Port(const Listener& listener) {
  return LocalPort(listener.get());
}

absl::StatusOr<Result> Transmit(const Options& options) {
  if (options.buflen < 1 || options.buflen > kMaxBuflen || options.nbuf < 1) {
    return absl::InvalidArgumentError("buflen and nbuf must be positive");
  }
  const AlignedBuffer buf = PatternBuffer(options.buflen);

  const absl::Time start = absl::Now();
  absl::StatusOr<UniqueFd> fd =
      ConnectTo(SOCK_STREAM, options.host, options.port, absl::Seconds(10),
                options.sockbuf);
  if (!fd.ok()) return fd.status();
  if (options.nodelay) {
    int one = 1;
    if (::setsockopt(fd->get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) !=
        0) {
      return ErrnoStatus("setsockopt(TCP_NODELAY)", errno);
    }
  }
  if (!options.congestion.empty() &&
      ::setsockopt(fd->get(), IPPROTO_TCP, TCP_CONGESTION,
                   options.congestion.data(), options.congestion.size()) != 0) {
    // EPERM: a network namespace other than the first only offers
    // net.ipv4.tcp_allowed_congestion_control without CAP_NET_ADMIN.
    return ErrnoStatus(
        absl::StrCat("setsockopt(TCP_CONGESTION, ", options.congestion, ")"),
        errno);
  }
  Result result;
  result.effective_sockbuf = GetBuf(fd->get(), SO_SNDBUF);
  uint64_t offset = 0;
  for (uint64_t i = 0; i < options.nbuf; ++i) {
    if (absl::Status s = WriteFull(fd->get(), buf.data() + offset % 95,
                                   options.buflen, options.timeout);
        !s.ok()) {
      return BufferError(i, s);
    }
    offset += options.buflen;
    ++result.calls;
  }
  if (::shutdown(fd->get(), SHUT_WR) != 0) {
    return ErrnoStatus("shutdown(SHUT_WR)", errno);
  }
  // Wait for the receiver to read everything and close.
  char sink[64];
  absl::StatusOr<size_t> n =
      ReadSome(fd->get(), sink, sizeof(sink), options.timeout);
  if (!n.ok()) {
    return absl::Status(n.status().code(),
                        absl::StrCat("waiting for the receiver to finish: ",
                                     n.status().message()));
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  result.bytes = offset;
  return result;
}

absl::StatusOr<Result> Receive(int listener, const Options& options) {
  if (options.buflen < 1 || options.buflen > kMaxBuflen) {
    return absl::InvalidArgumentError("buflen must be positive");
  }
  absl::StatusOr<UniqueFd> fd =
      AcceptWithTimeout(listener, absl::InfiniteDuration());
  if (!fd.ok()) return fd.status();
  const absl::Time start = absl::Now();
  Result result;
  result.effective_sockbuf = GetBuf(fd->get(), SO_RCVBUF);
  AlignedBuffer buf(options.buflen);
  for (;;) {
    absl::StatusOr<size_t> n =
        ReadSome(fd->get(), buf.data(), buf.size(), options.timeout);
    if (!n.ok()) return n.status();
    ++result.calls;
    if (*n == 0) break;
    if (options.verify) {
      if (absl::Status s = VerifyPattern(buf.data(), *n, result.bytes);
          !s.ok()) {
        return s;
      }
    }
    result.bytes += *n;
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return result;
}

std::string FormatReport(char role, const Options& options, const Result& r) {
  const double secs = r.seconds > 0 ? r.seconds : 1e-9;
  const double mbit = r.bytes * 8.0 / secs / 1e6;
  const double kbytes = r.bytes / secs / 1024.0;
  std::string out;
  absl::StrAppendFormat(&out,
                        "ttcp-%c: %u bytes in %.6f real seconds = %.2f KB/sec "
                        "= %.2f Mbit/s +++\n",
                        role, r.bytes, r.seconds, kbytes, mbit);
  absl::StrAppendFormat(
      &out, "ttcp-%c: %u I/O calls, msec/call = %.4f, calls/sec = %.2f\n", role,
      r.calls, r.calls ? r.seconds * 1e3 / r.calls : 0.0, r.calls / secs);
  absl::StrAppendFormat(&out,
                        "ttcp-result role=%c bytes=%u seconds=%.6f "
                        "mbit_per_s=%.3f calls=%u buflen=%u sockbuf=%d "
                        "effective_sockbuf=%d\n",
                        role, r.bytes, r.seconds, mbit, r.calls, options.buflen,
                        options.sockbuf, r.effective_sockbuf);
  return out;
}

}  // namespace offload::tools::ttcp
