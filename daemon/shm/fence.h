// Asymmetric fences for the need-wake-up handshake (abi.h RingIndexes).
//
// The handshake is a Dekker pattern: the fast side (a producer after
// publishing data, a consumer after freeing space) stores its index and then
// loads the other side's "need wake-up" flag; the slow side (about to sleep)
// stores the flag and then loads the index. Both need StoreLoad ordering.
// Paying a full fence on every send would serialise each message behind its
// cache-line transfers, so the fast side uses only a compiler barrier and
// the slow side, which is about to make a syscall anyway, issues
// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED): a full barrier on every CPU
// running a registered process (liburcu / folly asymmetric-fence scheme).
//
// Correct in every mix: a process that could not register (old kernel,
// seccomp) uses real fences on its fast side; HeavyFence() always issues the
// membarrier when the kernel has it, whether or not the caller registered.
//
// Thread safety: any thread. RegisterFastSide() per process (again after
// fork: registrations are not inherited).

#ifndef OFFLOAD_DAEMON_SHM_FENCE_H_
#define OFFLOAD_DAEMON_SHM_FENCE_H_

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

namespace offload {
namespace shm {

// 1: this process is a membarrier target (fast side may skip the fence).
inline std::atomic<int> g_fast_side_registered{0};
// 1: the kernel has MEMBARRIER_CMD_GLOBAL_EXPEDITED; -1: unknown yet.
inline std::atomic<int> g_heavy_available{-1};

inline bool HeavyAvailable() {
  int v = g_heavy_available.load(std::memory_order_relaxed);
  if (v < 0) {
    const long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    v = (q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED)) ? 1 : 0;
    g_heavy_available.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

// Registers the calling process as a target of the slow side's membarrier.
// Returns true when the fast side may use compiler barriers only.
inline bool RegisterFastSide() {
  const bool ok = HeavyAvailable() &&
                  syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
  g_fast_side_registered.store(ok ? 1 : 0, std::memory_order_release);
  return ok;
}

// Forgets the registration (a forked child is not registered).
inline void ForgetFastSide() { g_fast_side_registered.store(0, std::memory_order_release); }

// Fast side: between the index store and the flag load.
inline void LightFence() {
  if (g_fast_side_registered.load(std::memory_order_relaxed) == 1) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

// Slow side: between the flag store and the index re-check.
inline void HeavyFence() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (HeavyAvailable()) (void)syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
}

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SHM_FENCE_H_
