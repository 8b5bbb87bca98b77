// AppWaker: how the daemon wakes application threads that sleep on a ring
// (shm/ring.h): futex sleepers directly, poll/epoll sleepers through their
// process's doorbell eventfd, which offloadd's session manager knows by id.
//
// Thread safety: KickDoorbell may be called from any thread (engines).

#ifndef OFFLOAD_DAEMON_WIRE_APP_WAKER_H_
#define OFFLOAD_DAEMON_WIRE_APP_WAKER_H_

#include <cstdint>

#include "shm/ring.h"

namespace offload::wire {

class AppWaker {
 public:
  virtual ~AppWaker() = default;
  // Writes the eventfd behind doorbell `id`. kGone: the id's process has
  // gone away; kUnknown: not registered (yet) with this offloadd.
  virtual shm::KickResult KickDoorbell(uint64_t id) = 0;
};

// Wakes what `bits` (shm::TakeArmed() of `w`) say sleeps on `w`: futex
// sleepers, and the doorbells listed in `set` (the line's own waiters
// unless given) as shm::WakeWaiters does, the search for the one exclusive
// waiter starting at `start`. `waker` may be null (no doorbells yet: only
// futex sleepers are woken).
inline void WakeWaitLine(shm::RingWaitLine* w, uint32_t bits, AppWaker* waker,
                         shm::WaiterSet set, uint32_t start = 0) {
  if (bits & shm::kArmFutex) shm::WakeFutexWaiters(w);
  if ((bits & shm::kArmDoorbell) && waker != nullptr) {
    shm::WakeWaiters(set, start, [waker](uint64_t id) { return waker->KickDoorbell(id); });
  }
}
inline void WakeWaitLine(shm::RingWaitLine* w, uint32_t bits, AppWaker* waker) {
  WakeWaitLine(w, bits, waker, shm::Waiters(w));
}

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_APP_WAKER_H_
