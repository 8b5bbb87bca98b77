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
// The mode is chosen once by the daemon for all its processes
// (ArenaHeader::fence_mode): full fences by default — on virtual machines an
// IPI-based membarrier costs more than it saves for request/response loads —
// asymmetric with OFFLOAD_ASYMMETRIC_FENCES=1 in offloadd's environment.
// Correct in every mix: a process that could not register (seccomp, a forked
// child) keeps real fences on its fast side, and in asymmetric mode every
// slow side issues the membarrier whether or not it registered itself.
//
// Streaming writers (ByteRingProducer::SetLazy) get the asymmetric scheme
// per ring even in full-fence mode: a producer that sends many messages in
// a row publishes RingIndexes::writer_lazy and drops its fast-side fence;
// a consumer about to sleep on that ring sees the flag after its own fence
// and issues the membarrier (PeerBarrier). A request/response exchange
// never goes lazy, so its sleeps cost no IPI; a stream's reader rarely
// sleeps. Lazy mode needs the producer's process registered
// (RegisterForPeerBarriers), which every attached process tries.
//
// Thread safety: any thread. EnableAsymmetricFences() per process.

#ifndef OFFLOAD_SHM_FENCE_H_
#define OFFLOAD_SHM_FENCE_H_

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

namespace offload {
namespace shm {

// 1: this process is a membarrier target (its fast side may skip the fence).
inline std::atomic<int> g_fast_side_registered{0};
// 1: the slow side issues membarrier(GLOBAL_EXPEDITED). Chosen by the daemon
// for every attached process (ArenaHeader::fence_mode), so all peers agree.
inline std::atomic<int> g_heavy_membarrier{0};

// True if the kernel has MEMBARRIER_CMD_GLOBAL_EXPEDITED.
inline bool MembarrierAvailable() {
  const long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  return q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED);
}

// 1: this process receives MEMBARRIER_CMD_GLOBAL_EXPEDITED barriers, so its
// producers may go lazy (ByteRingProducer::SetLazy).
inline std::atomic<int> g_peer_barriers{0};

// Registers this process as a membarrier target. Returns true on success.
inline bool RegisterForPeerBarriers() {
  const bool ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
  g_peer_barriers.store(ok ? 1 : 0, std::memory_order_release);
  return ok;
}

// Asymmetric mode for this process: the slow side issues membarrier and,
// if registration works, the fast side drops its fence. Returns true if the
// fast side is registered.
inline bool EnableAsymmetricFences() {
  g_heavy_membarrier.store(1, std::memory_order_release);
  const bool ok = RegisterForPeerBarriers();
  g_fast_side_registered.store(ok ? 1 : 0, std::memory_order_release);
  return ok;
}

// Full fences on the fast side (a forked child: registrations are not
// inherited; the slow-side mode is kept).
inline void ForgetFastSide() {
  g_fast_side_registered.store(0, std::memory_order_release);
  g_peer_barriers.store(0, std::memory_order_release);
}

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
  if (g_heavy_membarrier.load(std::memory_order_relaxed) == 1) {
    (void)syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
  }
}

// Slow side, after HeavyFence(), when a producer of a ring about to be slept
// on is lazy (RingIndexes::writer_lazy read after the fence): its fast side
// skipped the fence, so force one on every CPU running a registered process.
inline void PeerBarrier() {
  if (g_heavy_membarrier.load(std::memory_order_relaxed) == 1) return;  // HeavyFence did it
  (void)syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
}

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_FENCE_H_
