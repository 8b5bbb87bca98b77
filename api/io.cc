// The slow path of the stream transfers; see io.h.

#include "api/io.h"

#include <poll.h>

namespace offload::sock::detail {

IoResult FinishTransfer(int fd, bool is_send, void* buf, size_t len,
                        Timeout timeout, bool all, ssize_t first, int err) {
  char* p = static_cast<char*>(buf);
  WaitBudget budget(timeout);
  size_t done = 0;
  ssize_t n = first;
  for (;;) {
    if (n > 0) {
      done += static_cast<size_t>(n);
      if (!all || done == len) return IoResult::Ok(done);
    } else if (n == 0) {
      return IoResult::Ok(done);  // end of stream (or nothing to send)
    } else if (WouldBlock(err)) {
      if (const int w = budget.Wait(fd, is_send ? POLLOUT : POLLIN); w != 0) {
        return IoResult(done, w);
      }
    } else if (err != EINTR) {
      return IoResult(done, err);
    }
    n = is_send
            ? ::send(fd, p + done, len - done, MSG_NOSIGNAL | WaitFlag(timeout))
            : ::recv(fd, p + done, len - done, WaitFlag(timeout));
    err = n < 0 ? errno : 0;
  }
}

}  // namespace offload::sock::detail
