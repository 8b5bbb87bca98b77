// BasicStream<Addr>: a connected stream socket (TCP for InetAddr, AF_UNIX
// SOCK_STREAM for UnixAddr). Only an Acceptor or a Connector (or AdoptHandle
// after a kind check) makes one, so a Stream is always connected; it has the
// data-transfer calls and nothing of the other roles (no bind, listen,
// accept, connect or sendto).
//
//   send / recv          one call, as the BSD functions (never SIGPIPE:
//                        EPIPE instead); with a Timeout, waits at most that
//   send_n / recv_n      all `len` bytes: loop over short transfers and
//                        EINTR; recv_n stops early only at end of stream
//   sendv / recvv(_n)    the same with an iovec array
//   recv_view            bytes lent to the caller (see RecvView)
//
// The data calls are inline up to their first system call: a send_n that
// the socket takes whole compiles to the send() call and two tests; what
// follows a short transfer, EINTR or EAGAIN (the loop, waiting) is out of
// line. See timeout.h for what a Timeout bounds.
//
// Thread safety: as for any socket, concurrent sends (or recvs) from
// several threads interleave at the kernel's discretion; moving or closing
// the object while another thread uses it is a race.

#ifndef OFFLOAD_API_STREAM_H_
#define OFFLOAD_API_STREAM_H_

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <type_traits>
#include <utility>

#include "api/addr.h"
#include "api/io.h"
#include "api/socket.h"
#include "api/status.h"
#include "api/timeout.h"

namespace offload::sock {

// Received bytes lent to the caller by BasicStream::recv_view: data() and
// size() stay valid until the view is destroyed or reset(), and until the
// next receive call on the stream. Move-only: giving the view back is what
// will return the space to the sender (see recv_view).
class RecvView {
 public:
  RecvView() = default;
  RecvView(RecvView&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  RecvView& operator=(RecvView&& other) noexcept {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }
  RecvView(const RecvView&) = delete;
  RecvView& operator=(const RecvView&) = delete;
  ~RecvView() { reset(); }

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Gives the bytes back. Copying fallback: nothing to return.
  void reset() {
    data_ = nullptr;
    size_ = 0;
  }

 private:
  template <class>
  friend class BasicStream;
  RecvView(const char* data, size_t size) : data_(data), size_(size) {}

  const char* data_ = nullptr;
  size_t size_ = 0;
};

template <class AddrT>
class BasicStream : public SocketBase {
 public:
  using Addr = AddrT;

  // An empty (closed) stream, e.g. to move a real one into later.
  BasicStream() = default;
  BasicStream(BasicStream&&) noexcept = default;
  BasicStream& operator=(BasicStream&&) noexcept = default;

  // Ok if `fd` is a connected stream socket of this address family.
  static Status CheckHandle(int fd) {
    return detail::CheckKind(
        fd, {std::is_same<Addr, UnixAddr>::value, SOCK_STREAM, false, true});
  }

  // --- one call -----------------------------------------------------------

  // send(2) with MSG_NOSIGNAL. Returns the bytes queued (possibly fewer than
  // `len`), or EAGAIN (non-blocking), EPIPE, ECONNRESET, EINTR, ...
  IoResult send(const void* buf, size_t len, int flags = 0) {
    return detail::Done(::send(fd(), buf, len, flags | MSG_NOSIGNAL));
  }
  // recv(2). Returns the bytes received, 0 at end of stream, or an errno.
  IoResult recv(void* buf, size_t len, int flags = 0) {
    return detail::Done(::recv(fd(), buf, len, flags));
  }
  // One send that waits at most `timeout` for buffer space (ETIMEDOUT).
  // EINTR is retried.
  IoResult send(const void* buf, size_t len, Timeout timeout) {
    const ssize_t n =
        ::send(fd(), buf, len, MSG_NOSIGNAL | detail::WaitFlag(timeout));
    if (n >= 0) return IoResult::Ok(static_cast<size_t>(n));
    return detail::FinishTransfer(fd(), true, const_cast<void*>(buf), len,
                                  timeout, false, n, errno);
  }
  // One recv that waits at most `timeout` for data (ETIMEDOUT). EINTR is
  // retried.
  IoResult recv(void* buf, size_t len, Timeout timeout) {
    const ssize_t n = ::recv(fd(), buf, len, detail::WaitFlag(timeout));
    if (n >= 0) return IoResult::Ok(static_cast<size_t>(n));
    return detail::FinishTransfer(fd(), false, buf, len, timeout, false, n,
                                  errno);
  }

  // --- all bytes ----------------------------------------------------------

  // Sends all `len` bytes, looping over short writes and EINTR, waiting at
  // most `timeout` in total for the peer to make room. Returns ok with
  // bytes() == len, or the error and how many bytes went before it.
  IoResult send_n(const void* buf, size_t len,
                  Timeout timeout = Timeout::Infinite()) {
    const ssize_t n =
        ::send(fd(), buf, len, MSG_NOSIGNAL | detail::WaitFlag(timeout));
    if (n >= 0 && static_cast<size_t>(n) == len) return IoResult::Ok(len);
    return detail::FinishTransfer(fd(), true, const_cast<void*>(buf), len,
                                  timeout, true, n, errno);
  }
  // Receives `len` bytes, looping over short reads and EINTR, waiting at
  // most `timeout` in total. Returns ok with bytes() == len, ok with fewer
  // bytes if the stream ended first, or the error and the bytes before it.
  IoResult recv_n(void* buf, size_t len,
                  Timeout timeout = Timeout::Infinite()) {
    const ssize_t n = ::recv(fd(), buf, len, detail::WaitFlag(timeout));
    if (n == 0 || (n > 0 && static_cast<size_t>(n) == len)) {
      return IoResult::Ok(static_cast<size_t>(n));
    }
    return detail::FinishTransfer(fd(), false, buf, len, timeout, true, n,
                                  errno);
  }

  // --- scatter/gather -----------------------------------------------------

  // One sendmsg / recvmsg over `count` buffers (at most IOV_MAX are used).
  IoResult sendv(const iovec* iov, int count) {
    const msghdr m = detail::IovMsg(iov, count);
    return detail::Done(::sendmsg(fd(), &m, MSG_NOSIGNAL));
  }
  IoResult recvv(const iovec* iov, int count) {
    msghdr m = detail::IovMsg(iov, count);
    return detail::Done(::recvmsg(fd(), &m, 0));
  }
  // All bytes of all `count` buffers, as send_n / recv_n. `iov` is not
  // modified: a partly sent element is finished with a plain send first.
  IoResult sendv_n(const iovec* iov, int count,
                   Timeout timeout = Timeout::Infinite()) {
    return VecN<true>(iov, count, timeout);
  }
  IoResult recvv_n(const iovec* iov, int count,
                   Timeout timeout = Timeout::Infinite()) {
    return VecN<false>(iov, count, timeout);
  }

  // --- lent receive buffers (offload-aware hook) --------------------------

  // Receives up to `len` bytes and sets `*view` to them, waiting at most
  // `timeout`. Returns as recv (bytes() == 0: end of stream).
  //
  // This is the hook for a zero-copy receive: when the socket is offloaded,
  // liboffload.so could lend the bytes in place in the socket's receive
  // ring and take the space back when the view is reset (api/README.md,
  // "recv_view"). That entry point does not exist yet, so this portable
  // version copies into `scratch` (`len` bytes, which must outlive the
  // view) with one recv, exactly as recv() would: the view then points into
  // `scratch`. Code written against recv_view keeps working unchanged when
  // the lending path arrives; it must not assume the data is in `scratch`.
  IoResult recv_view(RecvView* view, void* scratch, size_t len,
                     Timeout timeout = Timeout::Infinite()) {
    view->reset();
    const IoResult r = recv(scratch, len, timeout);
    if (r.ok()) *view = RecvView(static_cast<const char*>(scratch), r.bytes());
    return r;
  }

  // --- connection ---------------------------------------------------------

  // shutdown(SHUT_WR): the peer reads end of stream; this side can still
  // receive. ACE's close_writer.
  Status close_writer() { return Shutdown(SHUT_WR); }
  // shutdown(SHUT_RD).
  Status close_reader() { return Shutdown(SHUT_RD); }

  Result<Addr> local_addr() const {
    return detail::SocketName<Addr>(fd(), false);
  }
  Result<Addr> peer_addr() const {
    return detail::SocketName<Addr>(fd(), true);
  }

  // TCP_NODELAY. Exists on TCP streams only.
  template <class A = Addr,
            std::enable_if_t<std::is_same<A, InetAddr>::value, int> = 0>
  Status set_no_delay(bool on) {
    return set_option(IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
  }

 protected:
  friend struct detail::Access;
  explicit BasicStream(Handle h) : SocketBase(std::move(h)) {}

 private:
  template <bool kSend>
  IoResult VecN(const iovec* iov, int count, Timeout timeout) {
    const int flags = kSend ? MSG_NOSIGNAL | detail::WaitFlag(timeout)
                            : detail::WaitFlag(timeout);
    WaitBudget budget(timeout);
    size_t done = 0;
    int index = 0;
    size_t offset = 0;
    for (;;) {
      detail::SkipDone(iov, count, &index, &offset);
      if (index >= count) return IoResult::Ok(done);
      ssize_t n;
      char* base = static_cast<char*>(iov[index].iov_base) + offset;
      const size_t rest = iov[index].iov_len - offset;
      if (offset > 0) {
        n = kSend ? ::send(fd(), base, rest, flags)
                  : ::recv(fd(), base, rest, flags);
      } else {
        msghdr m = detail::IovMsg(iov + index, count - index);
        n = kSend ? ::sendmsg(fd(), &m, flags) : ::recvmsg(fd(), &m, flags);
      }
      if (n > 0) {
        done += static_cast<size_t>(n);
        detail::Advance(iov, count, static_cast<size_t>(n), &index, &offset);
      } else if (n == 0 && !kSend) {
        return IoResult::Ok(done);  // end of stream
      } else if (n < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        if (!detail::WouldBlock(err)) return IoResult(done, err);
        if (const int w = budget.Wait(fd(), kSend ? POLLOUT : POLLIN); w != 0) {
          return IoResult(done, w);
        }
      }
    }
  }

  Status Shutdown(int how) {
    if (::shutdown(fd(), how) != 0) return Status(errno, "shutdown");
    return Status();
  }
};

using Stream = BasicStream<InetAddr>;

namespace detail {
// True for BasicStream and the classes built on it (LocalStream): what
// acceptors and connectors may produce.
template <class T, class = void>
struct IsStream : std::false_type {};
template <class T>
struct IsStream<T, std::void_t<typename T::Addr>>
    : std::is_base_of<BasicStream<typename T::Addr>, T> {};
}  // namespace detail

}  // namespace offload::sock

#endif  // OFFLOAD_API_STREAM_H_
