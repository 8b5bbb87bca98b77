// offload-connrate implementation; see connrate.h.

#include "tools/bench/connrate.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/bench/socket_util.h"

namespace offload::tools::connrate {

namespace {

// One connector's cycles until `next` reaches the count or `stop` passes.
absl::Status RunCycles(const ClientOptions& options, absl::Time stop,
                       std::atomic<uint64_t>* next, std::atomic<uint64_t>* done) {
  for (;;) {
    const uint64_t cycle = next->fetch_add(1, std::memory_order_relaxed) + 1;
    if (cycle > options.count || absl::Now() >= stop) return absl::OkStatus();
    absl::StatusOr<UniqueFd> fd =
        ConnectTo(SOCK_STREAM, options.host, options.port, options.io_timeout);
    if (!fd.ok()) {
      return absl::Status(fd.status().code(),
                          absl::StrCat("cycle ", cycle, ": ", fd.status().message()));
    }
    // The server closes first; wait for its FIN so the cycle is complete.
    char byte;
    absl::StatusOr<size_t> n = ReadSome(fd->get(), &byte, 1, absl::Now() + options.io_timeout);
    if (!n.ok() || *n != 0) {
      return absl::DataLossError(absl::StrCat(
          "cycle ", cycle, ": expected the server to close the connection; ",
          n.ok() ? "it sent data" : n.status().message()));
    }
    done->fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

absl::StatusOr<ClientResult> RunClient(const ClientOptions& options) {
  const absl::Time start = absl::Now();
  const absl::Time stop = start + options.duration;
  std::atomic<uint64_t> next{0}, done{0};
  const uint32_t k = std::max<uint32_t>(options.connectors, 1);
  std::vector<absl::Status> status(k);
  std::vector<std::thread> threads;
  for (uint32_t i = 1; i < k; ++i) {
    threads.emplace_back([&, i] { status[i] = RunCycles(options, stop, &next, &done); });
  }
  status[0] = RunCycles(options, stop, &next, &done);
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  ClientResult result;
  result.connections = done.load();
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return result;
}

absl::StatusOr<uint64_t> RunServer(int listener, const ServerOptions& options) {
  uint64_t served = 0;
  while (options.count == 0 || served < options.count) {
    absl::StatusOr<UniqueFd> fd =
        AcceptWithTimeout(listener, options.idle_timeout);
    if (!fd.ok()) {
      if (absl::IsDeadlineExceeded(fd.status())) {
        return absl::DeadlineExceededError(absl::StrCat(
            "idle timeout after ", served, " connections"));
      }
      return fd.status();
    }
    ++served;  // UniqueFd closes the connection here.
  }
  return served;
}

std::string FormatResult(const ClientResult& r) {
  return absl::StrFormat("connrate: connections=%u seconds=%.6f conn_per_s=%.1f",
                         r.connections, r.seconds, r.PerSecond());
}

}  // namespace offload::tools::connrate
