// SocketWatch: learns when an application's socket is released everywhere,
// following the kernel's own reference count of the socket's file.
//
// An offloaded socket may be held by many processes (fork, exec,
// SCM_RIGHTS); its connection or listener must end exactly when the last
// of them closes it, as in the kernel. The kernel reports that moment to
// inotify: the final release of a file generates IN_CLOSE_WRITE (sockets
// keep their inotify events: Linux exempts pipes and sockets from the
// silencing of pseudo files). So offloadd watches the socket's inode
// (through /proc/self/fd of a copy it was sent, which it then closes) and
// holds no reference: one inotify instance for every watched socket, no
// descriptor per socket in the daemon or the application.
//
// A queue overflow (IN_Q_OVERFLOW) loses events; the watcher then lists the
// watches that still exist (/proc/self/fdinfo of the inotify fd: a watch
// disappears with its inode) and reports the others as released.
//
// Thread safety: one thread (the session manager's loop).

#ifndef OFFLOAD_DAEMON_SESSION_SOCKET_WATCH_H_
#define OFFLOAD_DAEMON_SESSION_SOCKET_WATCH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>

#include "absl/status/statusor.h"
#include "shm/unique_fd.h"

namespace offload {
namespace session {

class SocketWatch {
 public:
  // Errors: Internal (inotify_init1 failed: errno in the message).
  static absl::StatusOr<std::unique_ptr<SocketWatch>> Create();

  // The inotify fd, for the caller's epoll (readable: call Drain()).
  int fd() const { return fd_.get(); }

  // Watches the socket open as `fd` (a copy the caller holds; it may close
  // it afterwards). Returns the watch descriptor (the same one for the same
  // socket), or an error (ResourceExhausted when fs.inotify.max_user_watches
  // is reached: the message says which sysctl to raise).
  absl::StatusOr<int> Watch(int fd);
  // Stops watching (the caller forgets the socket). Unknown wds are ignored.
  void Unwatch(int wd);

  // Reads what is pending and calls `released(wd)` once for every watched
  // socket whose last reference is gone (the watch is dropped).
  void Drain(const std::function<void(int wd)>& released);

  size_t size() const { return watched_.size(); }

 private:
  SocketWatch() = default;
  void Rescan(const std::function<void(int wd)>& released);

  shm::UniqueFd fd_;
  std::set<int> watched_;
};

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_SOCKET_WATCH_H_
