// Eventfd wake-ups for the need-wake-up handshake. Raw syscalls, so the
// preload library never re-enters its own interposed read()/write().
//
// Thread safety: any thread; async-signal-safe.

#ifndef OFFLOAD_SHM_WAKEUP_H_
#define OFFLOAD_SHM_WAKEUP_H_

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace offload {
namespace shm {

// Wakes whoever sleeps on `efd` (an eventfd). A full counter (EAGAIN) means
// a wake-up is already pending, which is as good.
inline void Kick(int efd) {
  const uint64_t one = 1;
  (void)syscall(SYS_write, efd, &one, sizeof(one));
}

// Resets a non-blocking eventfd after a wake-up.
inline void Drain(int efd) {
  uint64_t v;
  (void)syscall(SYS_read, efd, &v, sizeof(v));
}

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_WAKEUP_H_
