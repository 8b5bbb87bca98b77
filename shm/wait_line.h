// The wait line of one side of a ring: who sleeps there, what wake-up is
// owed, and the doorbell ids of the processes that sleep on it. Used by the
// byte ring (shm/ring.h), the datagram rings and the accept queues.
//
// Wake-ups (no lost wake-up, no timing): a side about to sleep counts
// itself in the other side's wait line (`reader_wait` for a reader waiting
// for data, `writer_wait` for a writer waiting for room) and raises the
// line's "wake owed" bit of its kind, in one seq_cst RMW; it fences,
// re-checks the indices, and only then sleeps; it uncounts itself when it
// stops waiting, slept or not. The other side, after publishing its
// index, fences and reads the line: an owed bit it takes (clears) and
// wakes — kArmFutex, every thread sleeping in futex_wait on the `wake_seq`
// eventcount (blocking calls); kArmDoorbell, the doorbell eventfd of every
// thread listed in the waiter set (threads in poll/select/epoll, which
// need an fd to sleep on). Several threads and processes may wait on one
// line; the last of a kind to leave clears its owed bit. So a wake costs
// the other side one system call per sleep, whoever wakes first, and a
// waiter that found data without sleeping leaves nothing behind.

#ifndef OFFLOAD_SHM_WAIT_LINE_H_
#define OFFLOAD_SHM_WAIT_LINE_H_

#include <atomic>
#include <cstdint>

#include "shm/futex.h"

namespace offload {
namespace shm {

// Kinds of sleepers, and the "wake owed" bits of RingWaitLine::sleepers.
inline constexpr uint32_t kArmFutex = 1;     // threads in futex_wait on the wake_seq word
inline constexpr uint32_t kArmDoorbell = 2;  // threads whose doorbell is in the waiter set
// RingWaitLine::sleepers: the owed bits (above), then how many sleepers of
// each kind are counted (15 bits each).
inline constexpr uint32_t kSleeperOwed = kArmFutex | kArmDoorbell;
inline constexpr uint32_t kFutexSleeper = 1u << 2;
inline constexpr uint32_t kDoorbellSleeper = 1u << 17;
inline constexpr uint32_t kFutexSleeperMask = 0x7fffu << 2;
inline constexpr uint32_t kDoorbellSleeperMask = 0x7fffu << 17;

// A process that sleeps on a ring in poll/select/epoll is listed by its
// doorbell id: 64 random bits the process chose when it first attached
// (top bit clear), kept for its lifetime, daemon restarts included, so an
// id never names another process; an engine's doorbell has the top bit
// set. 0 = empty.
inline constexpr uint32_t kMaxRingWaiters = 4;
inline constexpr uint64_t kEngineDoorbellBit = uint64_t{1} << 63;
// Set on a listed id (never part of a doorbell id) when its sleeper waits
// exclusively, as Linux's blocking accept() and EPOLLEXCLUSIVE do: a
// wake-up of an accept line kicks one exclusive sleeper (WakeWaiters).
inline constexpr uint64_t kExclusiveWaiterBit = uint64_t{1} << 62;

// Waiters of one side of a ring (with its arm word; placed on a line of its
// own by its user).
struct RingWaitLine {
  // Byte rings: who sleeps here and what wake-up is owed (kSleeper* below).
  // A waiter adds itself (seq_cst RMW) before it re-checks and sleeps and
  // removes itself when it stops waiting; the other side takes the owed
  // bits after it published its index and fenced. Pairs as described in
  // the file comment.
  std::atomic<uint32_t> sleepers;
  // Datagram rings only (dgram_ring.h): one sleeper's flag, set before it
  // sleeps, exchanged to 0 by the producer that kicks it.
  std::atomic<uint32_t> armed;
  // Futex eventcount: bumped (release) by the side that clears `armed`
  // with kArmFutex, before FUTEX_WAKE; a waiter reads it (acquire) before
  // arming and sleeps only while it is unchanged.
  std::atomic<uint32_t> wake_seq;
  // Doorbell ids of processes that sleep on this side through their
  // doorbell (CAS from 0 by the process itself; cleared by it, or by the
  // daemon after its death). Read by the waking side after `armed`.
  std::atomic<uint64_t> waiters[kMaxRingWaiters];
  // 1 when a process found the waiter set full: it sleeps with a short
  // timeout instead (counted in stats), never unwoken.
  std::atomic<uint32_t> waiter_overflow;
};

// The waking side, after its index store and fence: takes the wake-ups
// owed on `w`, as kArmFutex / kArmDoorbell bits (0 if none). The caller
// then wakes them (WakeFutexWaiters, and its own doorbell kicker for
// kArmDoorbell).
inline uint32_t TakeArmed(RingWaitLine* w) {
  if ((w->sleepers.load(std::memory_order_relaxed) & kSleeperOwed) == 0) return 0;
  return w->sleepers.fetch_and(~kSleeperOwed, std::memory_order_acq_rel) & kSleeperOwed;
}

// TakeArmed() for a line whose doorbell sleepers may be woken one at a
// time (a listener's acceptors): the doorbell wake-up stays owed while any
// of them sleeps (DisarmWait() of the last one clears it), so that the
// next post wakes the next sleeper; futex sleepers are all taken.
inline uint32_t TakeArmedKeepDoorbell(RingWaitLine* w) {
  const uint32_t owed = w->sleepers.load(std::memory_order_acquire) & kSleeperOwed;
  if (owed & kArmFutex) w->sleepers.fetch_and(~kArmFutex, std::memory_order_acq_rel);
  return owed;
}

// Wakes the futex sleepers of `w` (after TakeArmed() returned kArmFutex).
inline void WakeFutexWaiters(RingWaitLine* w) {
  // Release: pairs with the sleeper's acquire load of wake_seq in ArmWait().
  w->wake_seq.fetch_add(1, std::memory_order_release);
  FutexWakeAll(&w->wake_seq);
}

// The waiting side: counts itself (`bits`: kArmFutex / kArmDoorbell, the
// kinds it sleeps as) and raises their owed bits before the fence and
// re-check. Returns the eventcount to pass to FutexWait(). Every ArmWait()
// is followed by a DisarmWait() with the same bits once the caller stops
// waiting.
inline uint32_t ArmWait(RingWaitLine* w, uint32_t bits) {
  const uint32_t seq = w->wake_seq.load(std::memory_order_acquire);
  const uint32_t add = ((bits & kArmFutex) ? kFutexSleeper : 0u) +
                       ((bits & kArmDoorbell) ? kDoorbellSleeper : 0u);
  uint32_t old = w->sleepers.load(std::memory_order_relaxed);
  while (!w->sleepers.compare_exchange_weak(old, (old + add) | (bits & kSleeperOwed),
                                            std::memory_order_seq_cst,
                                            std::memory_order_relaxed)) {
  }
  return seq;
}

// Uncounts `n` sleepers of each kind in `bits`. The last of a kind clears
// its owed bit: a wake-up nobody waits for costs nothing.
inline void DisarmWait(RingWaitLine* w, uint32_t bits, uint32_t n = 1) {
  const uint32_t sub = ((bits & kArmFutex) ? kFutexSleeper * n : 0u) +
                       ((bits & kArmDoorbell) ? kDoorbellSleeper * n : 0u);
  if (sub == 0) return;
  uint32_t old = w->sleepers.load(std::memory_order_relaxed);
  uint32_t next;
  do {
    next = old - sub;
    if ((next & kFutexSleeperMask) == 0) next &= ~kArmFutex;
    if ((next & kDoorbellSleeperMask) == 0) next &= ~kArmDoorbell;
  } while (!w->sleepers.compare_exchange_weak(old, next, std::memory_order_acq_rel,
                                              std::memory_order_relaxed));
}

// The doorbell ids listed on a wait line: the line's own kMaxRingWaiters,
// or a larger array next to it (a listener's acceptors, shm/listener.h).
// A thread lists its doorbell while it sleeps on the line and takes it off
// when it stops waiting, so the set holds sleepers, not past watchers.
struct WaiterSet {
  std::atomic<uint64_t>* ids;
  uint32_t n;
  std::atomic<uint32_t>* overflow;
};
inline WaiterSet Waiters(RingWaitLine* w) {
  return {w->waiters, kMaxRingWaiters, &w->waiter_overflow};
}

// Lists doorbell `id` in `set` (idempotent). Returns false when the set is
// full (the caller then sleeps with a timeout).
inline bool AddWaiter(WaiterSet set, uint64_t id) {
  for (uint32_t i = 0; i < set.n; ++i) {
    if (set.ids[i].load(std::memory_order_relaxed) == id) return true;
  }
  for (uint32_t i = 0; i < set.n; ++i) {
    uint64_t expected = 0;
    if (set.ids[i].load(std::memory_order_relaxed) == 0 &&
        set.ids[i].compare_exchange_strong(expected, id, std::memory_order_acq_rel)) {
      return true;
    }
  }
  set.overflow->store(1, std::memory_order_relaxed);
  return false;
}
inline bool AddWaiter(RingWaitLine* w, uint64_t id) { return AddWaiter(Waiters(w), id); }

// Takes doorbell `id` off `set` (a sleeper that stopped waiting, a socket
// closed, or the daemon after that process died).
inline void RemoveWaiter(WaiterSet set, uint64_t id) {
  for (uint32_t i = 0; i < set.n; ++i) {
    if (set.ids[i].load(std::memory_order_relaxed) != id) continue;
    uint64_t expected = id;
    set.ids[i].compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
  }
}
inline void RemoveWaiter(RingWaitLine* w, uint64_t id) { RemoveWaiter(Waiters(w), id); }

// What a kicker says of a doorbell id (WakeWaiters).
enum class KickResult { kKicked, kGone, kUnknown };

// Kicks the doorbells listed in `set`: every one listed without
// kExclusiveWaiterBit, and the first exclusive one found from index
// `start` on (spread the wake-ups by varying it) -- so one blocked
// accept() or EPOLLEXCLUSIVE waiter is woken per wake-up, as on Linux,
// and the others sleep on (the line keeps the wake-up owed:
// TakeArmedKeepDoorbell). `kick(id)` writes the doorbell of `id` (the
// exclusive bit cleared); an id whose process is gone (kGone) is taken off
// the set and the next exclusive one is tried; kUnknown (cannot tell now)
// leaves it listed and tries the next as well.
template <typename Kick>
inline void WakeWaiters(WaiterSet set, uint32_t start, Kick&& kick) {
  bool exclusive_woken = false;
  for (uint32_t k = 0; k < set.n; ++k) {
    const uint32_t i = (start + k) % set.n;
    // Acquire: pairs with the waiter's CAS that listed itself.
    const uint64_t id = set.ids[i].load(std::memory_order_acquire);
    if (id == 0) continue;
    const bool exclusive = (id & kExclusiveWaiterBit) != 0;
    if (exclusive && exclusive_woken) continue;
    const KickResult r = kick(id & ~kExclusiveWaiterBit);
    if (r == KickResult::kKicked) {
      exclusive_woken |= exclusive;
    } else if (r == KickResult::kGone) {
      uint64_t expected = id;
      set.ids[i].compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
    }
  }
}
}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_WAIT_LINE_H_
