// offload-connrate implementation; see connrate.h.

#include "tools/bench/connrate.h"

#include <sys/socket.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/bench/socket_util.h"

namespace offload::tools::connrate {

absl::StatusOr<ClientResult> RunClient(const ClientOptions& options) {
  ClientResult result;
  const absl::Time start = absl::Now();
  const absl::Time stop = start + options.duration;
  while (result.connections < options.count && absl::Now() < stop) {
    absl::StatusOr<UniqueFd> fd =
        ConnectTo(SOCK_STREAM, options.host, options.port, options.io_timeout);
    if (!fd.ok()) {
      return absl::Status(fd.status().code(),
                          absl::StrCat("cycle ", result.connections + 1, ": ",
                                       fd.status().message()));
    }
    // The server closes first; wait for its FIN so the cycle is complete.
    char byte;
    absl::StatusOr<size_t> n =
        ReadSome(fd->get(), &byte, 1, absl::Now() + options.io_timeout);
    if (!n.ok() || *n != 0) {
      return absl::DataLossError(absl::StrCat(
          "cycle ", result.connections + 1,
          ": expected the server to close the connection; ",
          n.ok() ? "it sent data" : n.status().message()));
    }
    ++result.connections;
  }
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
