// WaitBudget: the one place where the typed API waits; see timeout.h.

#include "api/timeout.h"

#include <errno.h>
#include <poll.h>

#include <algorithm>

namespace offload::sock {

int WaitBudget::Wait(int fd, short events) {
  using std::chrono::steady_clock;
  if (!timeout_.infinite() && !started_) {
    started_ = true;
    deadline_ = steady_clock::now() + timeout_.duration();
  }
  for (;;) {
    int ms = -1;
    if (!timeout_.infinite()) {
      const auto left = deadline_ - steady_clock::now();
      if (left <= steady_clock::duration::zero()) return ETIMEDOUT;
      // Round up, so that the wait never ends just before the deadline and
      // spins on a sub-millisecond remainder; cap so the int cannot
      // overflow (the loop re-polls what is left).
      const auto left_ms =
          std::chrono::ceil<std::chrono::milliseconds>(left).count();
      ms = static_cast<int>(std::min<decltype(left_ms)>(left_ms, 1 << 30));
    }
    pollfd pfd{fd, events, 0};
    const int rc = ::poll(&pfd, 1, ms);
    // Ready, or an error/hang-up that the next call on the socket reports.
    if (rc > 0) return 0;
    if (rc < 0 && errno != EINTR) return errno;
  }
}

}  // namespace offload::sock
