// Futex wait and wake on 32-bit words in shared memory (memfd mappings that
// several processes map at different addresses; the kernel keys such a
// futex by file and offset, so the private flag is never used). Raw
// syscalls: the preload library must not re-enter interposed calls.
//
// Thread safety: any thread; async-signal-safe.

#ifndef OFFLOAD_SHM_FUTEX_H_
#define OFFLOAD_SHM_FUTEX_H_

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

namespace offload {
namespace shm {

// Sleeps while `*word == expected`, at most `timeout_ns` (< 0: no limit).
// Returns 0 when woken (or the value had changed: EAGAIN is folded into 0),
// ETIMEDOUT, or EINTR.
inline int FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) {
  struct timespec ts;
  struct timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;
    tsp = &ts;
  }
  const long rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, tsp,
                          nullptr, 0);
  if (rc == 0) return 0;
  if (errno == EAGAIN) return 0;
  return errno == ETIMEDOUT ? ETIMEDOUT : errno == EINTR ? EINTR : 0;
}

// Wakes every waiter on `word`.
inline void FutexWakeAll(std::atomic<uint32_t>* word) {
  (void)syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr,
                nullptr, 0);
}

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_FUTEX_H_
