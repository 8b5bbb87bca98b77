// select() and pselect() (interpose.cc): a set with no offloaded socket
// goes to the kernel as it is; any other becomes a poll() set and runs
// PollImpl (mux.cc), whose result is written back into the fd_sets.

#include <errno.h>
#include <poll.h>
#include <sys/select.h>

#include <vector>

#include "client/fd_table.h"
#include "client/libc.h"
#include "client/ops.h"

namespace offload {
namespace client {

int SelectImpl(int nfds, fd_set* r, fd_set* w, fd_set* e, int64_t timeout_ns,
               const sigset_t* mask) {
  if (nfds < 0 || nfds > FD_SETSIZE) {
    errno = EINVAL;
    return -1;
  }
  bool any = false;
  for (int fd = 0; fd < nfds && !any; ++fd) {
    if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w))) any = GetOffloaded(fd) != nullptr;
  }
  if (!any) {
    if (mask == nullptr) {
      timeval tv = {timeout_ns / 1000000000, (timeout_ns % 1000000000) / 1000};
      return Real().select(nfds, r, w, e, timeout_ns < 0 ? nullptr : &tv);
    }
    timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
    return Real().pselect(nfds, r, w, e, timeout_ns < 0 ? nullptr : &ts, mask);
  }
  std::vector<pollfd> p;
  for (int fd = 0; fd < nfds; ++fd) {
    short ev = 0;
    if (r && FD_ISSET(fd, r)) ev |= POLLIN;
    if (w && FD_ISSET(fd, w)) ev |= POLLOUT;
    if (e && FD_ISSET(fd, e)) ev |= POLLPRI;
    if (ev) p.push_back({fd, ev, 0});
  }
  const int rc = PollImpl(p.data(), p.size(), timeout_ns, mask);
  if (rc < 0) return -1;
  for (const pollfd& x : p) {
    if (x.revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
  }
  if (r) FD_ZERO(r);
  if (w) FD_ZERO(w);
  if (e) FD_ZERO(e);
  int n = 0;
  for (const pollfd& x : p) {
    if ((x.events & POLLIN) && (x.revents & (POLLIN | POLLHUP | POLLERR))) {
      FD_SET(x.fd, r);
      ++n;
    }
    if ((x.events & POLLOUT) && (x.revents & (POLLOUT | POLLERR | POLLHUP))) {
      FD_SET(x.fd, w);
      ++n;
    }
    if ((x.events & POLLPRI) && (x.revents & POLLPRI)) {
      FD_SET(x.fd, e);
      ++n;
    }
  }
  return n;
}

}  // namespace client
}  // namespace offload
