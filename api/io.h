// Inline building blocks of the data calls of Stream, Dgram and
// ConnectedDgram: turning a libc result into an IoResult, the
// retry-or-wait loop of a call with a Timeout, and iovec bookkeeping.
// Internal to api/ (namespace detail); not a public interface.
//
// Thread safety: functions of their arguments.

#ifndef OFFLOAD_API_IO_H_
#define OFFLOAD_API_IO_H_

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <algorithm>

#include "api/status.h"
#include "api/timeout.h"

namespace offload::sock::detail {

// The IoResult of a libc call that returned `n` (errno when n < 0).
inline IoResult Done(ssize_t n) {
  return n >= 0 ? IoResult::Ok(static_cast<size_t>(n)) : IoResult(0, errno);
}

inline bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// MSG_DONTWAIT when the call has a finite timeout, so that it waits in
// poll() (bounded) rather than in the kernel (unbounded); 0 otherwise.
inline int WaitFlag(Timeout t) { return t.infinite() ? 0 : MSG_DONTWAIT; }

// Runs call(WaitFlag(timeout)) -> ssize_t once to completion: EINTR is
// retried; EAGAIN waits for `events` on `fd` (at most `timeout`, then
// ETIMEDOUT) and retries.
template <class Call>
IoResult CallOnce(int fd, short events, Timeout timeout, Call call) {
  WaitBudget budget(timeout);
  for (;;) {
    const ssize_t n = call(WaitFlag(timeout));
    if (n >= 0) return IoResult::Ok(static_cast<size_t>(n));
    const int err = errno;
    if (err == EINTR) continue;
    if (!WouldBlock(err)) return IoResult(0, err);
    if (const int w = budget.Wait(fd, events); w != 0) return IoResult(0, w);
  }
}

// The slow path of the stream calls, after their inline first attempt
// returned `first` (bytes, or -1 with `err`): retries EINTR, waits (at most
// `timeout`, counted from here) when the socket would block, and, if
// `all`, loops until all `len` bytes are transferred or a recv sees end of
// stream. `is_send` chooses send (MSG_NOSIGNAL) or recv. Returns the bytes
// transferred in total (`first` included) and 0 or the errno that stopped
// it.
IoResult FinishTransfer(int fd, bool is_send, void* buf, size_t len,
                        Timeout timeout, bool all, ssize_t first, int err);

// A msghdr over `count` buffers (at most IOV_MAX), without an address.
inline msghdr IovMsg(const iovec* iov, int count) {
  msghdr m{};
  m.msg_iov = const_cast<iovec*>(iov);
  m.msg_iovlen = static_cast<size_t>(std::min(count, IOV_MAX));
  return m;
}

// Moves (*index, *offset) forward by `n` bytes through `iov`.
inline void Advance(const iovec* iov, int count, size_t n, int* index,
                    size_t* offset) {
  while (n > 0 && *index < count) {
    const size_t take = std::min(n, iov[*index].iov_len - *offset);
    *offset += take;
    n -= take;
    if (*offset == iov[*index].iov_len) {
      ++*index;
      *offset = 0;
    }
  }
}

// Skips elements that are empty or done.
inline void SkipDone(const iovec* iov, int count, int* index, size_t* offset) {
  while (*index < count && *offset == iov[*index].iov_len) {
    ++*index;
    *offset = 0;
  }
}

}  // namespace offload::sock::detail

#endif  // OFFLOAD_API_IO_H_
