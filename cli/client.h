// Connecting offloadctl to offloadd's control socket, with errors a user can
// act on.

#ifndef OFFLOAD_CLI_CLIENT_H_
#define OFFLOAD_CLI_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "offload/v1/control.grpc.pb.h"

namespace offload {
namespace cli {

inline constexpr char kDefaultSocket[] = "/run/offloadd/control.sock";

// Exit codes of offloadctl.
enum ExitCode : int {
  kExitOk = 0,
  kExitRejected = 1,     // the daemon refused (bad rule, permission, not found)
  kExitUsage = 2,        // bad command line
  kExitUnreachable = 3,  // no daemon at the socket
};

// Checks that something is listening at `socket_path` before gRPC is used, so
// the user gets a precise message instead of a gRPC timeout. UNAVAILABLE:
// "offloadd is not running (no control socket at PATH); start it with:
// systemctl start offloadd"; PERMISSION_DENIED when the socket's permissions
// exclude the caller (names the group to join).
absl::Status ProbeSocket(const std::string& socket_path);

// A stub bound to `socket_path` (call ProbeSocket first).
std::unique_ptr<v1::Control::Stub> MakeStub(const std::string& socket_path);

}  // namespace cli
}  // namespace offload

#endif  // OFFLOAD_CLI_CLIENT_H_
