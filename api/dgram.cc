// Opening datagram sockets; see dgram.h.

#include "api/dgram.h"

namespace offload::sock::detail {

Result<Handle> OpenDgram(int family, const InetAddr* local,
                         const InetAddr* remote, const DgramOptions& options) {
  Result<Handle> h = NewSocket(family, SOCK_DGRAM);
  if (!h.ok()) return h.status();
  const int fd = h->get();
  if (Status s = SetBuffers(fd, options.send_buffer, options.recv_buffer);
      !s.ok()) {
    return s;
  }
  if (local != nullptr) {
    if (Status s =
            Bind(fd, local->sockaddr(), local->size(), options.reuse_addr);
        !s.ok()) {
      return s;
    }
  }
  if (remote != nullptr &&
      ::connect(fd, remote->sockaddr(), remote->size()) != 0) {
    return Status(errno, "connect");
  }
  return h;
}

}  // namespace offload::sock::detail
