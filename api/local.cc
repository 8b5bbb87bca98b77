// Descriptor passing over AF_UNIX streams and LocalStream::Pair; see
// local.h.

#include "api/local.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "api/io.h"

namespace offload::sock {
namespace detail {
namespace {

// The byte that carries a handle. A different byte means the peer sent
// data where a handle was expected.
constexpr char kHandleMarker = 'H';

// Room for a few descriptors: a peer that sends more than one has them
// closed here instead of leaking into this process unseen.
constexpr int kMaxFds = 8;

}  // namespace

Status SendFd(int via, int fd, Timeout timeout) {
  if (fd < 0) return Status(EBADF, "send_handle");
  char marker = kHandleMarker;
  iovec iov{&marker, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  memset(control, 0, sizeof(control));
  msghdr m = IovMsg(&iov, 1);
  m.msg_control = control;
  m.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return CallOnce(via, POLLOUT, timeout,
                  [&](int wait_flag) {
                    return ::sendmsg(via, &m, MSG_NOSIGNAL | wait_flag);
                  })
      .status("send_handle");
}

Result<Handle> RecvFd(int via, Timeout timeout) {
  char marker = 0;
  iovec iov{&marker, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
  msghdr m{};
  const IoResult r = CallOnce(via, POLLIN, timeout, [&](int wait_flag) {
    m = IovMsg(&iov, 1);
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    return ::recvmsg(via, &m, MSG_CMSG_CLOEXEC | wait_flag);
  });
  if (!r.ok()) return r.status("recv_handle");
  // Take ownership of everything that arrived before judging the message.
  Handle first;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      Handle h(fd);
      if (!first.valid()) first = std::move(h);  // the rest close here
    }
  }
  if (r.bytes() == 0) return Status(ENODATA, "recv_handle");
  if (marker != kHandleMarker || !first.valid() ||
      (m.msg_flags & MSG_CTRUNC) != 0) {
    return Status(EBADMSG, "recv_handle");
  }
  return first;
}

}  // namespace detail

Result<std::pair<LocalStream, LocalStream>> LocalStream::Pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return Status(errno, "socketpair");
  }
  return std::make_pair(LocalStream(Handle(fds[0])),
                        LocalStream(Handle(fds[1])));
}

}  // namespace offload::sock
