// Who is calling the control service, and may they change things.
//
// The control server accepts connections itself, records each connection's
// SO_PEERCRED, then hands the fd to gRPC; gRPC names such a peer "fd:<n>",
// which is how a handler finds the credentials again.
//
// Thread safety: PeerRegistry is thread-safe.

#ifndef OFFLOAD_DAEMON_CONTROL_PEER_AUTH_H_
#define OFFLOAD_DAEMON_CONTROL_PEER_AUTH_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace offload {
namespace control {

inline constexpr char kControlGroup[] = "offload";

class PeerRegistry {
 public:
  // Records the credentials of the connection on `fd` (replacing any record
  // of an earlier connection that had the same fd number).
  void Put(int fd, const ucred& cred);
  // Looks up the credentials for a gRPC peer string ("fd:<n>").
  std::optional<ucred> Find(const std::string& grpc_peer) const;

 private:
  mutable absl::Mutex mu_;
  std::map<int, ucred> by_fd_ ABSL_GUARDED_BY(mu_);
};

// OK when `cred` may make changes: root, the daemon's own user, or a member
// (primary or supplementary group) of `group`. Otherwise PERMISSION_DENIED
// with a message that says which group to join and how. `action` names what
// was attempted ("add-rule").
absl::Status AuthorizeMutation(const ucred& cred, const std::string& action,
                               const char* group_name = kControlGroup);

// True when the process `pid` (or the user's primary gid) is in group `gid`.
bool ProcessInGroup(pid_t pid, gid_t primary_gid, gid_t gid);

}  // namespace control
}  // namespace offload

#endif  // OFFLOAD_DAEMON_CONTROL_PEER_AUTH_H_
