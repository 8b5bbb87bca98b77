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

// Wakes what `bits` (shm::TakeArmed() of `w`) say sleeps on `w`, the
// doorbells listed in `set` (the line's own waiters unless given). `waker`
// may be null (no doorbells yet: only futex sleepers are woken).
inline void WakeWaitLine(shm::RingWaitLine* w, uint32_t bits, AppWaker* waker,
                         shm::WaiterSet set) {
  if (bits & shm::kArmFutex) shm::WakeFutexWaiters(w);
  if ((bits & shm::kArmDoorbell) && waker != nullptr) {
    for (uint32_t i = 0; i < set.n; ++i) {
      // Acquire: pairs with the waiter's CAS that listed itself.
      const uint64_t id = set.ids[i].load(std::memory_order_acquire);
      if (id != 0) waker->KickDoorbell(id & ~shm::kExclusiveWaiterBit);
    }
  }
}
inline void WakeWaitLine(shm::RingWaitLine* w, uint32_t bits, AppWaker* waker) {
  WakeWaitLine(w, bits, waker, shm::Waiters(w));
}

// After a post to a listener's accept queue (`posted`: its post count,
// which spreads the wake-ups): every non-exclusive sleeper and one
// exclusive one (shm::WakeWaiters); the doorbell wake-up stays owed while
// acceptors sleep.
inline void WakeAcceptLine(shm::RingWaitLine* w, shm::WaiterSet set, uint64_t posted,
                           AppWaker* waker) {
  const uint32_t bits = shm::TakeArmedKeepDoorbell(w);
  if (bits & shm::kArmFutex) shm::WakeFutexWaiters(w);
  if ((bits & shm::kArmDoorbell) && waker != nullptr) {
    shm::WakeWaiters(set, static_cast<uint32_t>(posted % set.n),
                     [waker](uint64_t id) { return waker->KickDoorbell(id); });
  }
}

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_APP_WAKER_H_
