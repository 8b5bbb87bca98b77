#include "daemon/control/peer_auth.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace offload {
namespace control {

void PeerRegistry::Put(int fd, const ucred& cred) {
  absl::MutexLock lock(&mu_);
  by_fd_[fd] = cred;
}

std::optional<ucred> PeerRegistry::Find(const std::string& grpc_peer) const {
  if (grpc_peer.rfind("fd:", 0) != 0) return std::nullopt;
  int fd = 0;
  for (size_t i = 3; i < grpc_peer.size(); ++i) {
    const char c = grpc_peer[i];
    if (c < '0' || c > '9' || fd > 100000000) return std::nullopt;
    fd = fd * 10 + (c - '0');
  }
  absl::MutexLock lock(&mu_);
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return std::nullopt;
  return it->second;
}

bool ProcessInGroup(pid_t pid, gid_t primary_gid, gid_t gid) {
  if (primary_gid == gid) return true;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream groups(line.substr(7));
    unsigned long g = 0;
    while (groups >> g) {
      if (static_cast<gid_t>(g) == gid) return true;
    }
    return false;
  }
  return false;
}

absl::Status AuthorizeMutation(const ucred& cred, const std::string& action,
                               const char* group_name) {
  const std::string group(group_name);
  if (cred.uid == 0 || cred.uid == ::geteuid()) return absl::OkStatus();
  std::string user = "uid " + std::to_string(cred.uid);
  if (const passwd* pw = ::getpwuid(cred.uid); pw != nullptr) user = pw->pw_name;
  const struct group* gr = ::getgrnam(group_name);
  if (gr != nullptr && ProcessInGroup(cred.pid, cred.gid, gr->gr_gid)) return absl::OkStatus();
  std::string how;
  if (gr == nullptr) {
    how = "the '" + group + "' group does not exist on this host; an administrator "
          "can run: groupadd " + group + " && usermod -aG " + group + " " + user +
          " (then restart offloadd and log in again)";
  } else {
    how = "an administrator can run: usermod -aG " + group + " " + user +
          " (then log in again)";
  }
  return absl::PermissionDeniedError(action + " needs root or membership in the '" + group +
                                     "' group, and " + user + " has neither; " + how);
}

}  // namespace control
}  // namespace offload
