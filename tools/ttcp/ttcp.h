// ttcp: the classic TCP throughput test (Muuss/Slattery 1984, as used in the
// ACE papers), reimplemented on the plain socket API.
//
// The transmitter connects and writes `nbuf` buffers of `buflen` bytes; the
// receiver accepts one connection and reads until end of stream. Both report
// bytes, elapsed time, Mbit/s and the number of I/O calls, in the classic
// human form and as one machine-readable "ttcp-result" line. The socket
// buffer size (-b) is applied before connect/listen so window scaling sees
// it; sweeping -l and -b reproduces the classic buffer-size curves.
//
// The transmitter's time runs from connect until the receiver has read
// everything and closed (it shuts down its side and waits for EOF), so both
// ends measure delivered, not merely buffered, data.
//
// Thread safety: the functions use only their arguments.

#ifndef OFFLOAD_TOOLS_TTCP_TTCP_H_
#define OFFLOAD_TOOLS_TTCP_TTCP_H_

#include <stdint.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/bench/socket_util.h"

namespace offload::tools::ttcp {

inline constexpr uint64_t kMaxBuflen = 64ull << 20;

struct Options {
  std::string host = "127.0.0.1";  // transmitter: where to connect
  uint16_t port = 5001;
  uint64_t buflen = 8192;  // bytes per write()/read() call
  uint64_t nbuf = 2048;    // buffers the transmitter sends
  int sockbuf = 0;         // SO_SNDBUF/SO_RCVBUF; 0 = kernel default
  bool nodelay = false;    // TCP_NODELAY on the transmitter
  std::string congestion;  // TCP_CONGESTION on the transmitter ("" = default)
  bool verify = false;     // receiver checks the byte pattern
  absl::Duration timeout = absl::Seconds(60);  // longest silence allowed
};

struct Result {
  uint64_t bytes = 0;
  uint64_t calls = 0;
  double seconds = 0;
  int effective_sockbuf = 0;  // SO_SNDBUF (t) or SO_RCVBUF (r) as granted
};

// The byte the transmitter sends at stream offset `offset` (printable
// characters, as the classic ttcp source pattern).
inline char PatternChar(uint64_t offset) {
  return static_cast<char>(' ' + offset % 95);
}

// A page-aligned, zeroed buffer, as classic ttcp aligns its buffers (-A):
// both back ends send from and receive into the same alignment, which at
// small sizes weighs more than the difference between them.
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t size);
  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(char* p) const { free(p); }
  };
  std::unique_ptr<char, Free> data_;
  size_t size_;
};

// `buflen` + 95 bytes of the pattern: buffer i of the stream starts at
// offset (i * buflen) % 95 of it, so no buffer is ever refilled.
AlignedBuffer PatternBuffer(uint64_t buflen);

// Checks `n` received bytes that start at stream offset `offset` against
// the pattern. Errors: DataLoss naming the first bad offset and both bytes.
absl::Status VerifyPattern(const char* data, size_t n, uint64_t offset);

// `status` with the transmitter's context: "buffer <index>: <message>".
absl::Status BufferError(uint64_t index, const absl::Status& status);

// Transmits `nbuf` x `buflen` bytes to host:port.
// Errors: Unavailable if the connection fails or is reset, DeadlineExceeded
// if the receiver stalls longer than `timeout`, InvalidArgument for bad
// options.
absl::StatusOr<Result> Transmit(const Options& options);

// Accepts one connection on `listener` and reads until end of stream,
// checking the pattern if `options.verify`. Errors: DataLoss with the first
// bad offset when verifying, DeadlineExceeded, errno-derived codes.
absl::StatusOr<Result> Receive(int listener, const Options& options);

// The classic report lines plus "ttcp-result role=t|r bytes=... seconds=...
// mbit_per_s=... calls=... buflen=... sockbuf=..." (one line, key=value).
std::string FormatReport(char role, const Options& options,
                         const Result& result);

// The plain-socket implementation as one of the interchangeable back ends
// of the command (see CxxApi in ttcp_cxx.h for the typed C++ one): the
// command is a template over this interface.
struct CApi {
  static constexpr char kName[] = "c";
  using Listener = UniqueFd;
  // A listening socket on bind:options.port with options.sockbuf.
  // Errors: InvalidArgument for a bad address, errno-derived codes.
  static absl::StatusOr<Listener> Listen(const std::string& bind,
                                         const Options& options);
  static absl::StatusOr<uint16_t> Port(const Listener& listener);
  static absl::StatusOr<Result> Receive(Listener& listener,
                                        const Options& options) {
    return ttcp::Receive(listener.get(), options);
  }
  static absl::StatusOr<Result> Transmit(const Options& options) {
    return ttcp::Transmit(options);
  }
};

}  // namespace offload::tools::ttcp

#endif  // OFFLOAD_TOOLS_TTCP_TTCP_H_
