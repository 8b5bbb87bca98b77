// offload-connrate: TCP connection-rate test for the benchmark.
//
// One cycle = client connect() -> server accept() -> server close() ->
// client sees end of stream -> client close(). The client runs cycles one
// after the other until `count` cycles or `duration` have passed and reports
// completed cycles per second. The server accepts and closes until `count`
// connections (0 = until killed) or until it has been idle for
// `idle_timeout`.
//
// Thread safety: the functions use only their arguments.

#ifndef OFFLOAD_TOOLS_BENCH_CONNRATE_H_
#define OFFLOAD_TOOLS_BENCH_CONNRATE_H_

#include <stdint.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace offload::tools::connrate {

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  uint64_t count = 10000;                          // stop after this many
  absl::Duration duration = absl::Seconds(5);      // ... or after this long
  absl::Duration io_timeout = absl::Seconds(10);   // per-cycle limit
  uint32_t connectors = 1;  // threads running cycles at once (count is shared)
};

struct ClientResult {
  uint64_t connections = 0;
  double seconds = 0;
  double PerSecond() const { return seconds > 0 ? connections / seconds : 0; }
};

// Runs cycles against host:port from `connectors` threads at once (each
// stops at the shared count or the duration). Errors: the first failed
// cycle's status, with the cycle number in the message.
absl::StatusOr<ClientResult> RunClient(const ClientOptions& options);

struct ServerOptions {
  uint64_t count = 0;  // exit after this many connections; 0 = no limit
  absl::Duration idle_timeout = absl::InfiniteDuration();
};

// Accepts and closes connections on `listener`. Returns the number served;
// DeadlineExceeded if idle_timeout passes with `count` not reached (the
// message says how many were served).
absl::StatusOr<uint64_t> RunServer(int listener, const ServerOptions& options);

// "connrate: connections=N seconds=S conn_per_s=R" (one line, key=value).
std::string FormatResult(const ClientResult& result);

}  // namespace offload::tools::connrate

#endif  // OFFLOAD_TOOLS_BENCH_CONNRATE_H_
