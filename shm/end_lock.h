// EndLock: serialises the callers of one side of a socket (its senders, or
// its receivers) whatever thread or process they run in, as Linux's socket
// lock does: a blocking send is never interleaved with another send unless
// it has to wait for room, and a datagram is never torn.
//
// Most sockets are only ever used by one thread, so the lock is biased: the
// first caller becomes its owner and from then on enters with two plain
// stores and a compiler barrier (no atomic read-modify-write, no fence:
// ping-pong and small-message streams cost what they cost without a lock).
// The first call from any other thread or process revokes the bias for good
// and everyone uses a process-shared, robust pthread mutex from then on.
//
// The bias is an asymmetric Dekker handshake (shm/fence.h): the owner stores
// `busy` then loads `owner`; a revoker stores `owner` then issues
// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which puts a full barrier on
// every CPU running a registered process, and then waits for `busy` to drop.
// An owner whose process is not registered for those barriers pays a real
// fence on its fast path instead. A process that dies holding the mutex is
// handled by the kernel's robust futex list (EOWNERDEAD); one that dies in a
// biased section is detected by the revoker (its thread is gone).
//
// Thread safety / invariants: owner, busy and mu live in shared memory.
// `owner` goes 0 -> caller token (under mu) -> kRevoked and never back;
// `busy` is written only by the biased owner (and cleared by a revoker
// after the owner's death). The daemon never takes an EndLock.

#ifndef OFFLOAD_SHM_END_LOCK_H_
#define OFFLOAD_SHM_END_LOCK_H_

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "shm/fence.h"

namespace offload {
namespace shm {

struct EndLock {
  // 0: nobody biased it yet; kRevoked: shared for good; else the biased
  // owner's token (pid << 32 | tid). Stored under mu; loaded by the owner's
  // fast path (relaxed, ordered by the Dekker handshake above).
  std::atomic<uint64_t> owner;
  // 1 while the biased owner is inside its critical section. Plain store by
  // the owner; pairs with the revoker's load after its membarrier.
  std::atomic<uint32_t> busy;
  uint32_t reserved;
  pthread_mutex_t mu;  // process-shared, robust
};
static_assert(sizeof(EndLock) <= 64, "an EndLock fits one cache line");

inline constexpr uint64_t kEndLockRevoked = ~uint64_t{0};

// How a lock was taken; pass it back to ReleaseEndLock().
enum class EndLockMode : uint8_t { kBiased, kLocked };

// Initialises `l` in place (a fresh or reused slot nobody uses).
inline void InitEndLock(EndLock* l) {
  l->owner.store(0, std::memory_order_relaxed);
  l->busy.store(0, std::memory_order_relaxed);
  l->reserved = 0;
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&l->mu, &a);
  pthread_mutexattr_destroy(&a);
}

namespace end_lock_internal {

inline bool TokenThreadGone(uint64_t token) {
  const pid_t pid = static_cast<pid_t>(token >> 32);
  const pid_t tid = static_cast<pid_t>(token & 0xffffffffu);
  return syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH;
}

inline void LockMutex(EndLock* l) {
  const int rc = pthread_mutex_lock(&l->mu);
  // The holder died inside its critical section: what it protected is
  // shared-memory state that every step leaves consistent (indices are
  // published last), so the lock is simply taken over.
  if (rc == EOWNERDEAD) pthread_mutex_consistent(&l->mu);
}

// REQUIRES: mu held; `o` is a token (not 0, not kRevoked).
inline void Revoke(EndLock* l, uint64_t o) {
  l->owner.store(kEndLockRevoked, std::memory_order_seq_cst);
  // Either the owner's next load sees kRevoked, or its busy store is
  // visible to our load below (the membarrier is its missing fence).
  (void)syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
  // The owner may be waiting for room with the lock held (an atomic send):
  // yield at first, then sleep in growing steps up to 1 ms.
  for (uint32_t i = 0; l->busy.load(std::memory_order_acquire) != 0; ++i) {
    if ((i & 63) == 63 && TokenThreadGone(o)) {
      l->busy.store(0, std::memory_order_release);
      break;
    }
    if (i < 256) {
      sched_yield();
    } else {
      struct timespec ts = {0, i < 1024 ? 50000 : 1000000};
      nanosleep(&ts, nullptr);
    }
  }
}

}  // namespace end_lock_internal

namespace end_lock_internal {

// The mutex half of AcquireEndLock(): first use, shared use, revocation.
// Out of line, so the biased fast path inlines into every send and receive.
__attribute__((noinline)) inline EndLockMode AcquireLocked(EndLock* l, uint64_t token) {
  LockMutex(l);
  const uint64_t o = l->owner.load(std::memory_order_acquire);
  if (o == 0) {
    l->owner.store(token, std::memory_order_release);  // biased to us from the next call
  } else if (o != kEndLockRevoked && o != token) {
    Revoke(l, o);
  }
  return EndLockMode::kLocked;
}

}  // namespace end_lock_internal

// Takes `l` if it is biased to `token` (the fast path: two plain stores
// and a compiler barrier); false if it is not (take it with
// AcquireEndLock()). Release with ReleaseEndLock(l, EndLockMode::kBiased).
__attribute__((always_inline)) inline bool TryBiasedEndLock(EndLock* l, uint64_t token) {
  if (__builtin_expect(l->owner.load(std::memory_order_relaxed) != token, 0)) return false;
  l->busy.store(1, std::memory_order_relaxed);
  if (__builtin_expect(g_peer_barriers.load(std::memory_order_relaxed) == 1, 1)) {
    std::atomic_signal_fence(std::memory_order_seq_cst);  // a revoker's membarrier fences us
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  if (__builtin_expect(l->owner.load(std::memory_order_relaxed) == token, 1)) return true;
  l->busy.store(0, std::memory_order_release);  // revoked meanwhile
  return false;
}

// Takes `l` for the caller identified by `token` (pid << 32 | tid, never 0
// or kEndLockRevoked). Blocks while another caller holds it.
__attribute__((always_inline)) inline EndLockMode AcquireEndLock(EndLock* l, uint64_t token) {
  if (TryBiasedEndLock(l, token)) return EndLockMode::kBiased;
  return end_lock_internal::AcquireLocked(l, token);
}

inline void ReleaseEndLock(EndLock* l, EndLockMode mode) {
  if (mode == EndLockMode::kBiased) {
    // Release: everything done inside is visible to a revoker that sees 0.
    l->busy.store(0, std::memory_order_release);
  } else {
    pthread_mutex_unlock(&l->mu);
  }
}

// True if only the biased owner has ever used `l` (its caches of shared
// indices are then authoritative; after revocation they must be reloaded
// under the lock).
inline bool EndLockBiasedTo(const EndLock* l, uint64_t token) {
  return l->owner.load(std::memory_order_relaxed) == token;
}

// RAII holder.
class EndLockGuard {
 public:
  EndLockGuard(EndLock* l, uint64_t token) : lock_(l), l_(l), mode_(AcquireEndLock(l, token)) {}
  ~EndLockGuard() {
    if (l_ != nullptr) ReleaseEndLock(l_, mode_);
  }
  EndLockGuard(const EndLockGuard&) = delete;
  EndLockGuard& operator=(const EndLockGuard&) = delete;
  // Releases early (before a wait for room or data).
  void Unlock() {
    if (l_ != nullptr) ReleaseEndLock(l_, mode_);
    l_ = nullptr;
  }
  // Takes the lock again after Unlock().
  void Relock(uint64_t token) {
    if (l_ != nullptr) return;
    l_ = lock_;
    mode_ = AcquireEndLock(l_, token);
  }
  bool held() const { return l_ != nullptr; }
  EndLockMode mode() const { return mode_; }

 private:
  EndLock* const lock_;
  EndLock* l_;
  EndLockMode mode_;
};

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_END_LOCK_H_
