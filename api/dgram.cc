// Opening datagram sockets; see dgram.h.

#include "api/dgram.h"

namespace offload::sock::detail {

Result<Handle> OpenDgram(int family, const InetAddr* local,
                         const InetAddr* remote, const DgramOptions& options) {
  Result<Handle> h =
      OpenSocket(family, SOCK_DGRAM, 0,
                 {options.send_buffer, options.recv_buffer,
                  local ? local->sockaddr() : nullptr,
                  local ? local->size() : 0, options.reuse_addr});
  if (!h.ok()) return h.status();
  if (remote != nullptr &&
      ::connect(h->get(), remote->sockaddr(), remote->size()) != 0) {
    return Status(errno, "connect");
  }
  return h;
}

}  // namespace offload::sock::detail
