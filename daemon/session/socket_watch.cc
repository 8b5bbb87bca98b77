// SocketWatch (socket_watch.h).

#include "daemon/session/socket_watch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/common/errors.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

absl::StatusOr<std::unique_ptr<SocketWatch>> SocketWatch::Create() {
  std::unique_ptr<SocketWatch> w(new SocketWatch());
  w->fd_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!w->fd_.valid()) return ErrnoStatus(errno, "inotify_init1 (socket release watcher)");
  return w;
}

absl::StatusOr<int> SocketWatch::Watch(int fd) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  const int wd = inotify_add_watch(fd_.get(), path, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE);
  if (wd < 0) {
    if (errno == ENOSPC) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot watch more sockets: fs.inotify.max_user_watches (", watched_.size(),
          " in use) is reached; raise it (sysctl fs.inotify.max_user_watches=N)"));
    }
    return ErrnoStatus(errno, "inotify_add_watch on a socket");
  }
  watched_.insert(wd);
  return wd;
}

void SocketWatch::Unwatch(int wd) {
  if (watched_.erase(wd) == 0) return;
  inotify_rm_watch(fd_.get(), wd);
}

void SocketWatch::Drain(const std::function<void(int wd)>& released) {
  alignas(struct inotify_event) char buf[16384];
  for (;;) {
    const ssize_t n = read(fd_.get(), buf, sizeof(buf));
    if (n <= 0) return;  // EAGAIN: drained
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
      off += sizeof(inotify_event) + e->len;
      if (e->mask & IN_Q_OVERFLOW) {
        spdlog::warn("socket release watcher: event queue overflow; rescanning {} watches "
                     "(raise fs.inotify.max_queued_events)",
                     watched_.size());
        Rescan(released);
        continue;
      }
      if (!(e->mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_IGNORED))) continue;
      if (watched_.erase(e->wd) == 0) continue;  // already reported
      if (!(e->mask & IN_IGNORED)) inotify_rm_watch(fd_.get(), e->wd);
      released(e->wd);
    }
  }
}

void SocketWatch::Rescan(const std::function<void(int wd)>& released) {
  // Each live watch is a line "inotify wd:N ino:... " of our fdinfo.
  std::set<int> live;
  std::ifstream in(absl::StrCat("/proc/self/fdinfo/", fd_.get()));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("inotify wd:", 0) != 0) continue;
    live.insert(static_cast<int>(strtol(line.c_str() + 11, nullptr, 16)));
  }
  for (auto it = watched_.begin(); it != watched_.end();) {
    if (live.count(*it)) {
      ++it;
      continue;
    }
    const int wd = *it;
    it = watched_.erase(it);
    released(wd);
  }
}

}  // namespace session
}  // namespace offload
