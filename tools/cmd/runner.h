// Runs one side of an offload-cmd script over a connected stream socket.
//
// Steps execute in order. A send step writes its bytes; a recv step reads
// exactly its bytes and checks each one. After the last step the runner
// shuts down its sending side and requires the peer to do the same without
// sending anything more, so a longer peer script is an error too.
//
// Thread safety: RunScript uses only its arguments; run one per socket.

#ifndef OFFLOAD_TOOLS_CMD_RUNNER_H_
#define OFFLOAD_TOOLS_CMD_RUNNER_H_

#include <ostream>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tools/cmd/script.h"

namespace offload::tools::cmd {

struct RunOptions {
  // Longest wait for the peer on any single read or write.
  absl::Duration timeout = absl::Seconds(10);
  // Print each step as it completes.
  bool verbose = false;
};

// Executes `script` on the connected socket `fd` (not closed here).
// Returns OK if every step completed and the peer ended cleanly; DataLoss
// for a wrong byte ("name:line: recv ...: byte B of message M (stream
// offset O) is 'A' (0x41), expected 'B' (0x42)"), OutOfRange if the peer
// closed early or sent extra bytes, DeadlineExceeded if the peer stalled,
// Unavailable for a reset connection.
absl::Status RunScript(int fd, const Script& script, const RunOptions& options,
                       std::ostream& out);

}  // namespace offload::tools::cmd

#endif  // OFFLOAD_TOOLS_CMD_RUNNER_H_
