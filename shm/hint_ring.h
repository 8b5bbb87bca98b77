// The hint ring of a doorbell: which registration a wake-up is for.
//
// An epoll set of the client library sleeps on a doorbell of its own (an
// eventfd in its kernel epoll instance) and keeps its offloaded sockets'
// wait lines armed between calls, each listed under the set's doorbell id
// plus a token (the set's name for that socket: kHintTokenMask below). A
// waker that takes a line's owed wake-up (ring.h TakeArmed) posts the
// token of every listed id it kicks here before it writes the eventfd, so
// the set looks at the sockets that changed instead of at all of them.
//
// Layout: a memfd of HintRingBytes() made by the waiting process, sealed
// against shrinking, mapped by every waker (peer processes, offloadd for
// its engines and its cleanup). Many producers, one consumer (the set,
// under its mutex).
//
// Trust: offloadd posts into a page an application made: it never follows
// anything it reads there (positions are masked, the reservation loop is
// bounded) and the page cannot shrink under it. A broken ring only costs
// its owner lost hints, and a lost hint is never a lost wake-up: a waker
// that cannot post raises `overflow`, and the consumer then looks at
// everything.
//
// Thread safety / invariants: every atomic names the operation it pairs
// with below.

#ifndef OFFLOAD_SHM_HINT_RING_H_
#define OFFLOAD_SHM_HINT_RING_H_

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shm/ring.h"
#include "shm/segment.h"
#include "shm/unique_fd.h"

namespace offload {
namespace shm {

inline constexpr uint64_t kHintRingMagic = 0x4f46464c48494e31ull;  // "OFFLHIN1"
inline constexpr uint32_t kHintRingEntries = 4096;                 // a power of two

struct HintRingHeader {
  uint64_t magic;     // kHintRingMagic, written by the owner before it shares the fd
  uint32_t entries;   // kHintRingEntries
  uint32_t reserved;
  // Producers' reservation counter: CAS from t to t + 1 while t - head <
  // entries, then store the token in entry t (release).
  alignas(kCacheLine) std::atomic<uint64_t> tail;
  // Consumer: store-release after it cleared the entries below it; pairs
  // with the producers' load-acquire before they reserve.
  alignas(kCacheLine) std::atomic<uint64_t> head;
  // 1 once a producer found the ring full (or contended beyond its bound)
  // and dropped a token: the consumer exchanges it to 0 (acq_rel) and looks
  // at every registration. Stored (release) before the producer's kick.
  std::atomic<uint32_t> overflow;
};

struct HintRing {
  HintRingHeader hdr;
  // 0 = empty (not yet written, or consumed); otherwise a token. A
  // producer's store-release pairs with the consumer's load-acquire; the
  // consumer stores 0 (relaxed) before it publishes head past the entry.
  alignas(kCacheLine) std::atomic<uint32_t> slot[kHintRingEntries];
};

inline constexpr size_t HintRingBytes() { return (sizeof(HintRing) + 4095) & ~size_t{4095}; }

// The owner: a new hint ring in a sealed memfd (returned; invalid with
// errno set on failure), mapped into `*map`.
inline UniqueFd CreateHintRing(Mapping* map) {
  UniqueFd fd = MakeSealedMemfd("offload-hints", HintRingBytes(), map);
  if (!fd.valid()) return fd;
  HintRing* r = map->as<HintRing>();
  r->hdr.entries = kHintRingEntries;
  r->hdr.magic = kHintRingMagic;
  return fd;
}

// A waker (possibly untrusting): maps the hint ring in `fd`. Returns an
// invalid Mapping if `fd` is not a memfd sealed against shrinking, of at
// least HintRingBytes(), holding a hint ring.
inline Mapping MapHintRing(int fd) {
  struct stat st;
  const int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0 || fstat(fd, &st) != 0 ||
      st.st_size < static_cast<off_t>(HintRingBytes())) {
    return Mapping();
  }
  Mapping m = Mapping::MapShared(fd, HintRingBytes());
  if (!m.valid()) return m;
  const HintRing* r = m.as<HintRing>();
  if (r->hdr.magic != kHintRingMagic || r->hdr.entries != kHintRingEntries) return Mapping();
  return m;
}

// Producer (any waker, any process): records `token` (non-zero). Never
// blocks; a full or contended ring raises the overflow flag instead.
inline void PostHint(HintRing* r, uint32_t token) {
  uint64_t t = r->hdr.tail.load(std::memory_order_relaxed);
  for (int attempt = 0; attempt < 64; ++attempt) {
    // Acquire: pairs with the consumer's head store-release, so the entry
    // below has been cleared before it is reused.
    const uint64_t h = r->hdr.head.load(std::memory_order_acquire);
    if (t - h >= kHintRingEntries) break;
    if (r->hdr.tail.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
      r->slot[t & (kHintRingEntries - 1)].store(token, std::memory_order_release);
      return;
    }
  }
  r->hdr.overflow.store(1, std::memory_order_release);
}

// Consumer (the owner, serialised by its own lock): calls `fn(token)` for
// each posted token in order, stopping at an entry still being written
// (its producer kicks the doorbell after writing it, so it is seen on the
// next look). Returns true if the overflow flag was raised (the caller
// must look at everything).
template <typename Fn>
inline bool DrainHints(HintRing* r, Fn&& fn) {
  const bool overflow = r->hdr.overflow.load(std::memory_order_relaxed) != 0 &&
                        r->hdr.overflow.exchange(0, std::memory_order_acq_rel) != 0;
  uint64_t h = r->hdr.head.load(std::memory_order_relaxed);
  const uint64_t start = h;
  const uint64_t t = r->hdr.tail.load(std::memory_order_acquire);
  while (h != t) {
    std::atomic<uint32_t>& e = r->slot[h & (kHintRingEntries - 1)];
    const uint32_t token = e.load(std::memory_order_acquire);
    if (token == 0) break;
    e.store(0, std::memory_order_relaxed);
    fn(token);
    ++h;
  }
  if (h != start) r->hdr.head.store(h, std::memory_order_release);
  return overflow;
}

// True when the consumer has nothing to look at (a cheap check for spins).
inline bool HintsPending(const HintRing* r) {
  return r->hdr.tail.load(std::memory_order_acquire) !=
             r->hdr.head.load(std::memory_order_relaxed) ||
         r->hdr.overflow.load(std::memory_order_relaxed) != 0;
}

// Doorbell ids with a token (ring.h: ids a sleeper lists in a waiter set).
// A doorbell's own id has its low kHintTokenBits clear; a registration
// lists id | token (token != 0), and a waker kicks the doorbell id &
// ~kHintTokenMask after posting the token to its hint ring. Engine ids
// (kEngineDoorbellBit) carry no token.
inline constexpr uint32_t kHintTokenBits = 22;
inline constexpr uint64_t kHintTokenMask = (uint64_t{1} << kHintTokenBits) - 1;
inline constexpr uint32_t kMaxHintTokens = (1u << kHintTokenBits) - 1;

inline uint64_t DoorbellOf(uint64_t listed_id) {
  if (listed_id & kEngineDoorbellBit) return listed_id & ~kExclusiveWaiterBit;
  return listed_id & ~(kExclusiveWaiterBit | kHintTokenMask);
}
inline uint32_t TokenOf(uint64_t listed_id) {
  if (listed_id & kEngineDoorbellBit) return 0;
  return static_cast<uint32_t>(listed_id & kHintTokenMask);
}

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_HINT_RING_H_
