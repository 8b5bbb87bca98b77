// offload-grind: byte-integrity stress test for stream (TCP) and datagram
// (UDP) sockets, after VMMC's sockgrind.
//
// For every message size from `start` to `end` (step `increment`) the client
// sends `wraps` x 64 KiB of a pseudo-random, position-dependent byte pattern
// and the server checks every byte. Alignment is varied on purpose: the
// sender's buffer starts at offset 0..7 and each message is split into two
// pieces at a varying point (two send() calls for TCP, two iovecs for UDP);
// the receiver reads with its own varying buffer offset and length (TCP) or
// iovec split (UDP). A shifted, dropped, duplicated or corrupted byte
// therefore shows up as a mismatch at an exact stream offset.
//
// Wire protocol (all integers little-endian), on the TCP control connection:
//   client -> server  Handshake (kHandshakeSize bytes)
//   server -> client  HandshakeReply: status byte, UDP data port (u16)
//   per size:  data (TCP: on the control connection; UDP: datagrams to the
//              data port, in batches acknowledged on the control connection)
//   server -> client  Verdict (kVerdictSize bytes) after each size
// The server treats the handshake as untrusted input and validates it.
//
// Thread safety: the Run* functions are independent and may run concurrently
// in different threads (the tests run server and client in one process).

#ifndef OFFLOAD_TOOLS_GRIND_GRIND_H_
#define OFFLOAD_TOOLS_GRIND_GRIND_H_

#include <stddef.h>
#include <stdint.h>

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace offload::tools::grind {

enum class Transport { kTcp, kUdp };

inline constexpr size_t kWrapBytes = 64 * 1024;
inline constexpr uint32_t kMaxTcpMessage = 4 * 1024 * 1024;
// Largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP).
inline constexpr uint32_t kMaxUdpMessage = 65507;
inline constexpr uint32_t kMaxWraps = 4096;

// What one test run covers; both sides must agree (the client sends it).
struct Plan {
  Transport transport = Transport::kTcp;
  uint32_t start = 1;
  uint32_t end = 1500;
  uint32_t increment = 37;
  uint32_t wraps = 4;
  uint64_t seed = 1;
};

// Returns OK if the plan is usable, else InvalidArgument saying which field
// is wrong and what the limits are.
absl::Status ValidatePlan(const Plan& plan);

// Number of messages of `size` bytes sent for one size step: enough to cover
// `wraps` x 64 KiB, at least one.
uint64_t MessagesPerSize(uint32_t size, uint32_t wraps);

// The expected byte at absolute stream offset `offset` for `seed`. Position
// dependent and not periodic at any small distance, so any shift shows.
inline uint8_t PatternByte(uint64_t seed, uint64_t offset) {
  uint64_t x = (offset + seed * 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  return static_cast<uint8_t>(x >> 24);
}

// Fills `len` bytes at `out` with the pattern starting at stream `offset`.
void FillPattern(uint64_t seed, uint64_t offset, uint8_t* out, size_t len);

// Compares `len` received bytes against the pattern at stream `offset`.
// Returns the index of the first mismatching byte, or `len` if all match.
size_t FindMismatch(uint64_t seed, uint64_t offset, const uint8_t* data,
                    size_t len);

struct ServerOptions {
  // Stop after this many client sessions (0 = serve forever).
  uint64_t sessions = 1;
  // Give up on a silent peer after this long.
  absl::Duration io_timeout = absl::Seconds(30);
  bool verbose = false;
};

struct ClientOptions {
  Plan plan;
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  absl::Duration io_timeout = absl::Seconds(30);
  bool verbose = false;
  // Test hook: if set, the client flips the byte at this absolute stream
  // offset before sending it, so tests can prove the server detects it.
  int64_t corrupt_offset_for_test = -1;
};

// Serves grind sessions on `listener` (a listening TCP socket; the UDP data
// socket is created per session on the same address). Prints per-size
// results and "LOOKS GOOD" or the first mismatch to `out`.
// Returns OK if every session passed; DataLoss for a mismatch (message holds
// offset, expected and received byte); other codes for I/O errors or a bad
// handshake.
absl::Status RunServer(int listener, const ServerOptions& options,
                       std::ostream& out);

// Connects to the server and runs `options.plan`. Prints per-size results
// and "LOOKS GOOD" or the server's mismatch report to `out`. Same error
// codes as RunServer.
absl::Status RunClient(const ClientOptions& options, std::ostream& out);

}  // namespace offload::tools::grind

#endif  // OFFLOAD_TOOLS_GRIND_GRIND_H_
