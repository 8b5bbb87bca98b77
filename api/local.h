// Local (AF_UNIX) stream sockets that also pass open descriptors between
// processes (SCM_RIGHTS): ACE's LSOCK_Stream. A LocalStream is a Stream
// over a UnixAddr plus
//
//   send_handle(obj)     sends a socket object (or any Handle) to the peer
//   recv_handle<T>()     receives one as a T, after checking that the
//                        descriptor really is a T (a Stream, an Acceptor...)
//
//   auto pair = LocalStream::Pair();             // socketpair
//   pair->first.send_handle(stream);             // process A
//   Result<Stream> s = pair->second.recv_handle<Stream>();   // process B
//
// A handle travels with one marker byte of the stream; mixing plain data
// and handles on one LocalStream needs the application's own framing
// (recv_handle fails with EBADMSG if it reads a data byte instead).
//
// Thread safety: as for any socket.

#ifndef OFFLOAD_API_LOCAL_H_
#define OFFLOAD_API_LOCAL_H_

#include <sys/socket.h>

#include <utility>

#include "api/acceptor.h"
#include "api/addr.h"
#include "api/connector.h"
#include "api/socket.h"
#include "api/status.h"
#include "api/stream.h"
#include "api/timeout.h"

namespace offload::sock {

namespace detail {

// Sends `fd` with SCM_RIGHTS and one marker byte over the AF_UNIX stream
// `via`. Errors: errno of sendmsg (EPIPE, ETOOMANYREFS, ...), ETIMEDOUT.
Status SendFd(int via, int fd, Timeout timeout);

// Receives one descriptor sent by SendFd. Errors: ENODATA (end of stream
// before a handle), EBADMSG (a byte without a descriptor, or another
// marker), ETIMEDOUT, errno of recvmsg. Extra descriptors are closed.
Result<Handle> RecvFd(int via, Timeout timeout);

}  // namespace detail

class LocalStream : public BasicStream<UnixAddr> {
 public:
  LocalStream() = default;
  LocalStream(LocalStream&&) noexcept = default;
  LocalStream& operator=(LocalStream&&) noexcept = default;

  // Two connected local streams (socketpair), e.g. for a parent and the
  // child it forks. Errors: errno of socketpair.
  static Result<std::pair<LocalStream, LocalStream>> Pair();

  // Sends the descriptor of `object` (any socket class of this API, e.g. a
  // Stream or an Acceptor) to the peer. The sender keeps its object; both
  // then refer to the same socket (close this side's if the peer should own
  // it alone). Errors: see detail::SendFd.
  Status send_handle(const SocketBase& object,
                     Timeout timeout = Timeout::Infinite()) {
    return detail::SendFd(fd(), object.native_handle(), timeout);
  }
  // The same for a descriptor that is not one of this API's sockets (a
  // file, a pipe).
  Status send_handle(const Handle& handle,
                     Timeout timeout = Timeout::Infinite()) {
    return detail::SendFd(fd(), handle.get(), timeout);
  }

  // Receives a descriptor sent with send_handle as a T: a socket class of
  // this API (checked as AdoptHandle does) or Handle (anything). Errors:
  // see detail::RecvFd; EPROTOTYPE / EAFNOSUPPORT / ENOTCONN / ENOTSOCK if
  // it is not a T (the descriptor is then closed).
  template <class T>
  Result<T> recv_handle(Timeout timeout = Timeout::Infinite()) {
    Result<Handle> h = detail::RecvFd(fd(), timeout);
    if (!h.ok()) return h.status();
    if constexpr (std::is_same<T, Handle>::value) {
      return std::move(*h);
    } else {
      return AdoptHandle<T>(std::move(*h));
    }
  }

  static Status CheckHandle(int fd) {
    return BasicStream<UnixAddr>::CheckHandle(fd);
  }

 private:
  friend struct detail::Access;
  explicit LocalStream(Handle h) : BasicStream<UnixAddr>(std::move(h)) {}
};

using LocalAcceptor = BasicAcceptor<LocalStream>;
using LocalConnector = BasicConnector<LocalStream>;

}  // namespace offload::sock

#endif  // OFFLOAD_API_LOCAL_H_
