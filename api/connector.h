// BasicConnector<StreamT>: the active-mode factory. connect() creates a
// socket, optionally binds it, connects it (non-blocking, with a timeout)
// and returns a connected StreamT. It can produce stream objects only:
// BasicConnector<Dgram> does not compile.
//
//   Result<Stream> s = Connector().connect(*InetAddr::Parse("127.0.0.1:5001"),
//                                          {std::chrono::seconds(5)});
//
// Thread safety: stateless; any thread may use one connector.

#ifndef OFFLOAD_API_CONNECTOR_H_
#define OFFLOAD_API_CONNECTOR_H_

#include <sys/socket.h>

#include <utility>

#include "api/addr.h"
#include "api/socket.h"
#include "api/status.h"
#include "api/stream.h"
#include "api/timeout.h"

namespace offload::sock {

struct ConnectOptions {
  // How long the handshake may take (ETIMEDOUT); Infinite: a blocking
  // connect. A finite timeout connects non-blocking and waits in poll().
  Timeout timeout = Timeout::Infinite();
  // SO_SNDBUF / SO_RCVBUF before connect (so TCP window scaling sees
  // them); 0 keeps the kernel default.
  int send_buffer = 0;
  int recv_buffer = 0;
  // With a local address: SO_REUSEADDR before bind (TCP only).
  bool reuse_addr = false;
};

template <class StreamT>
class BasicConnector {
  static_assert(detail::IsStream<StreamT>::value,
                "a Connector produces stream objects (BasicStream) only");

 public:
  using Addr = typename StreamT::Addr;
  using Stream = StreamT;

  // Connects to `remote`. Errors: ETIMEDOUT, ECONNREFUSED (nothing listens
  // there), ENETUNREACH, EAGAIN (AF_UNIX listener's backlog full), or the
  // errno of socket / setsockopt. The socket is closed on failure.
  Result<StreamT> connect(const Addr& remote,
                          const ConnectOptions& options = {}) const {
    return Connect(remote, nullptr, options);
  }
  // The same from `local` (bound first; port 0: the kernel picks).
  Result<StreamT> connect(const Addr& remote, const Addr& local,
                          const ConnectOptions& options = {}) const {
    return Connect(remote, &local, options);
  }

 private:
  static Result<StreamT> Connect(const Addr& remote, const Addr* local,
                                 const ConnectOptions& options) {
    Result<Handle> h =
        detail::OpenSocket(remote.family(), SOCK_STREAM,
                           options.timeout.infinite() ? 0 : SOCK_NONBLOCK,
                           {options.send_buffer, options.recv_buffer,
                            local ? local->sockaddr() : nullptr,
                            local ? local->size() : 0, options.reuse_addr});
    if (!h.ok()) return h.status();
    if (Status s = detail::Connect(h->get(), remote.sockaddr(), remote.size(),
                                   options.timeout);
        !s.ok()) {
      return s;
    }
    return detail::Access::Make<StreamT>(std::move(*h));
  }
};

using Connector = BasicConnector<Stream>;

}  // namespace offload::sock

#endif  // OFFLOAD_API_CONNECTOR_H_
