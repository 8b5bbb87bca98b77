// Timeouts of the typed socket API, and the single place where a call waits
// for a socket to become ready.
//
// A Timeout bounds how long one call may *wait* for its peer. The clock
// starts when the call first has to wait, not when it is entered: a send_n
// whose data fits in the socket buffer never reads the clock, so timeouts
// cost nothing on the fast path. Timeout::Infinite() waits forever (the
// plain blocking call); a zero Timeout never waits (one non-blocking
// attempt). A call that runs out of time fails with ETIMEDOUT.
//
// Thread safety: values; WaitBudget belongs to one call.

#ifndef OFFLOAD_API_TIMEOUT_H_
#define OFFLOAD_API_TIMEOUT_H_

#include <stdint.h>

#include <chrono>

namespace offload::sock {

class Timeout {
 public:
  // Waits forever.
  static constexpr Timeout Infinite() { return Timeout(); }

  // Any std::chrono duration; negative durations count as zero.
  template <class Rep, class Period>
  constexpr Timeout(std::chrono::duration<Rep, Period> d)  // NOLINT
      : ns_(NonNegative(
            std::chrono::duration_cast<std::chrono::nanoseconds>(d).count())) {}

  constexpr bool infinite() const { return ns_ == kInfinite; }
  // REQUIRES: !infinite().
  constexpr std::chrono::nanoseconds duration() const {
    return std::chrono::nanoseconds(ns_);
  }

 private:
  static constexpr int64_t kInfinite = -1;
  constexpr Timeout() : ns_(kInfinite) {}
  static constexpr int64_t NonNegative(int64_t ns) { return ns < 0 ? 0 : ns; }

  int64_t ns_;
};

// What one call may still wait. Starts the clock at the first Wait().
class WaitBudget {
 public:
  explicit WaitBudget(Timeout timeout) : timeout_(timeout) {}

  // Waits until `fd` reports one of `events` (POLLIN, POLLOUT), an error or
  // a hang-up, or the budget is spent. Returns 0, ETIMEDOUT, or the errno of
  // poll(). EINTR is retried with what is left of the budget.
  int Wait(int fd, short events);

 private:
  Timeout timeout_;
  bool started_ = false;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace offload::sock

#endif  // OFFLOAD_API_TIMEOUT_H_
