// BasicAcceptor<StreamT>: the passive-mode factory. Open() does socket,
// bind and listen; accept() produces connected StreamT objects. It has no
// data-transfer calls: an acceptor cannot send or receive.
//
//   Result<Acceptor> a = Acceptor::Open(InetAddr::Loopback4(0));
//   Result<Stream> s = a->accept();
//
// The listening socket is kept non-blocking (accept() waits in poll()), so
// that a timed accept cannot block past its timeout when another thread or
// process took the connection first. Accepted streams are blocking.
//
// Thread safety: several threads may accept on one acceptor; each
// connection goes to one of them.

#ifndef OFFLOAD_API_ACCEPTOR_H_
#define OFFLOAD_API_ACCEPTOR_H_

#include <poll.h>
#include <sys/socket.h>

#include <type_traits>
#include <utility>

#include "api/addr.h"
#include "api/socket.h"
#include "api/status.h"
#include "api/stream.h"
#include "api/timeout.h"

namespace offload::sock {

struct AcceptorOptions {
  int backlog = 128;
  // SO_REUSEADDR (TCP only): rebinding a port with connections in
  // TIME-WAIT.
  bool reuse_addr = true;
  // SO_SNDBUF / SO_RCVBUF before listen, so accepted streams inherit them
  // and TCP window scaling sees them; 0 keeps the kernel default.
  int send_buffer = 0;
  int recv_buffer = 0;
};

template <class StreamT>
class BasicAcceptor : public SocketBase {
  static_assert(detail::IsStream<StreamT>::value,
                "an Acceptor produces stream objects (BasicStream) only");

 public:
  using Addr = typename StreamT::Addr;
  using Stream = StreamT;

  BasicAcceptor() = default;
  BasicAcceptor(BasicAcceptor&&) noexcept = default;
  BasicAcceptor& operator=(BasicAcceptor&&) noexcept = default;

  // Listens on `local` (port 0: the kernel picks; see local_addr()). An
  // AF_UNIX path must not exist yet (EADDRINUSE); the caller removes it
  // when done. Errors: errno of socket, setsockopt, bind or listen.
  static Result<BasicAcceptor> Open(const Addr& local,
                                    const AcceptorOptions& options = {}) {
    Result<Handle> h = detail::OpenSocket(
        local.family(), SOCK_STREAM, SOCK_NONBLOCK,
        {options.send_buffer, options.recv_buffer, local.sockaddr(),
         local.size(), options.reuse_addr});
    if (!h.ok()) return h.status();
    if (::listen(h->get(), options.backlog) != 0) {
      return Status(errno, "listen");
    }
    return BasicAcceptor(std::move(*h));
  }

  // Ok if `fd` is a listening stream socket of this address family.
  static Status CheckHandle(int fd) {
    return detail::CheckKind(
        fd, {std::is_same<Addr, UnixAddr>::value, SOCK_STREAM, true, false});
  }

  // Waits for the next connection (at most `timeout`: ETIMEDOUT) and
  // returns it; stores the peer's address in `*peer` if given. EINTR and
  // connections aborted before they were accepted are skipped. Errors:
  // ETIMEDOUT, EMFILE/ENFILE, ENOBUFS, ...
  Result<StreamT> accept(Addr* peer = nullptr,
                         Timeout timeout = Timeout::Infinite()) {
    WaitBudget budget(timeout);
    for (;;) {
      Addr from;
      socklen_t len = Addr::Capacity();
      const int fd =
          ::accept4(this->fd(), from.mutable_sockaddr(), &len, SOCK_CLOEXEC);
      if (fd >= 0) {
        if (peer != nullptr) {
          // A family we cannot represent leaves the default address.
          (void)from.Adopt(len);
          *peer = from;
        }
        return detail::Access::Make<StreamT>(Handle(fd));
      }
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err != EAGAIN && err != EWOULDBLOCK) return Status(err, "accept");
      if (const int w = budget.Wait(this->fd(), POLLIN); w != 0) {
        return Status(w, "accept");
      }
    }
  }
  Result<StreamT> accept(Timeout timeout) { return accept(nullptr, timeout); }

  // The address it listens on (with the port the kernel picked).
  Result<Addr> local_addr() const {
    return detail::SocketName<Addr>(fd(), false);
  }

 private:
  friend struct detail::Access;
  // A socket from AdoptHandle may be blocking; accept() relies on
  // O_NONBLOCK (if setting it fails, a timed accept may block longer).
  explicit BasicAcceptor(Handle h) : SocketBase(std::move(h)) {
    (void)set_nonblocking(true);
  }
};

using Acceptor = BasicAcceptor<Stream>;

}  // namespace offload::sock

#endif  // OFFLOAD_API_ACCEPTOR_H_
