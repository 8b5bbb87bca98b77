// offload-pingpong: a TCP ping-pong and one-way throughput test that takes
// IPv4 and IPv6 addresses alike (sockperf 3.7, the bench's latency tool,
// has no IPv6). Used to compare the families side by side (issue 18,
// tools/bench/family_compare.sh).
//
// Latency is reported as sockperf does: half the round trip, in usec.
// Throughput counts the messages the server received.
//
// Thread safety: each function runs on the calling thread only.

#ifndef OFFLOAD_TOOLS_BENCH_PINGPONG_H_
#define OFFLOAD_TOOLS_BENCH_PINGPONG_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace offload::tools {

// An IPv4 or IPv6 endpoint from text ("127.0.0.1", "::1",
// "::ffff:127.0.0.1"). Errors: InvalidArgument.
struct Endpoint {
  sockaddr_in6 addr = {};  // holds a sockaddr_in for AF_INET
  socklen_t len = 0;
  int family = 0;
};
absl::StatusOr<Endpoint> ParseEndpoint(const std::string& host, uint16_t port);

// Serves one connection at a time on `ep` until killed: echoes every
// message of `size` bytes (ping-pong) or, for a throughput client, counts
// what arrives and answers the count (8 bytes) after the client's EOF.
// Prints "listening PORT" once it listens (port 0 in `ep`: the kernel
// picks one). Returns only on error.
absl::Status Serve(const Endpoint& ep, bool v6only);

struct PingPongResult {
  uint64_t round_trips = 0;
  double p50_us = 0, p99_us = 0;  // half round trip
};
// `seconds` of ping-pong of `size`-byte messages (a warm-up of 10 % first).
absl::StatusOr<PingPongResult> PingPong(const Endpoint& ep, size_t size, double seconds);

// `seconds` of one-way `size`-byte sends; returns messages/s the server got.
absl::StatusOr<double> Throughput(const Endpoint& ep, size_t size, double seconds);

}  // namespace offload::tools

#endif  // OFFLOAD_TOOLS_BENCH_PINGPONG_H_
