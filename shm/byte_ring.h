// Single-producer/single-consumer byte ring over shared memory: one direction
// of a same-host TCP pipe (abi.h PipeHeader::dir[i]).
//
// The producer and consumer objects live in process memory and cache the
// other side's index, so a send touches one shared cache line (the producer
// line) plus the data, and reads the consumer line only when the ring looks
// full.
//
// Thread safety: one producer thread and one consumer thread at a time (the
// caller serialises users of the same socket side). No locks, no syscalls,
// no allocation. Wake-ups are the caller's business: Commit()/Consume()
// return true when the other side asked to be woken (need-wake-up handshake,
// abi.h RingIndexes).

#ifndef OFFLOAD_SHM_BYTE_RING_H_
#define OFFLOAD_SHM_BYTE_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "shm/abi.h"
#include "shm/fence.h"

namespace offload {
namespace shm {

// CLFLUSHOPT (CPUID.(EAX=7,ECX=0):EBX bit 23), checked once.
inline bool HaveClflushopt() {
#if defined(__x86_64__)
  static const bool have = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 && (b & (1u << 23)) != 0;
  }();
  return have;
#else
  return false;
#endif
}

// PREFETCHW: fetch a line for writing (a NOP on x86 CPUs without it). GCC
// drops a conditional __builtin_prefetch, hence the asm.
inline void PrefetchForWrite(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

#if defined(__x86_64__)
__attribute__((target("clflushopt"))) inline void EvictLines(const uint8_t* p, size_t n) {
  for (size_t off = 0; off < n; off += kCacheLine) __builtin_ia32_clflushopt(p + off);
}
#else
inline void EvictLines(const uint8_t*, size_t) {}
#endif

class ByteRingProducer {
 public:
  ByteRingProducer() = default;
  // REQUIRES: `capacity` is a power of two; `idx` and `data` stay mapped for
  // the lifetime of this object.
  void Init(RingIndexes* idx, uint8_t* data, uint32_t capacity) {
    idx_ = idx;
    data_ = data;
    mask_ = capacity - 1;
    capacity_ = capacity;
    tail_ = idx->tail.load(std::memory_order_relaxed);
    cached_head_ = idx->head.load(std::memory_order_acquire);
    lazy_ = false;
  }
  bool valid() const { return idx_ != nullptr; }
  uint32_t capacity() const { return capacity_; }

  // Bytes that can be written now. Refreshes the cached head only when the
  // cached value says the ring is full or `want` bytes do not fit.
  size_t Writable(size_t want = 1) {
    size_t free_bytes = capacity_ - (tail_ - cached_head_);
    if (free_bytes < want) {
      // Pairs with the consumer's store-release of head in Consume().
      cached_head_ = idx_->head.load(std::memory_order_acquire);
      free_bytes = capacity_ - (tail_ - cached_head_);
    }
    return free_bytes;
  }

  // Copies `n` bytes to offset `off` past the uncommitted tail.
  // REQUIRES: off + n <= Writable().
  void CopyIn(size_t off, const void* src, size_t n) {
    const size_t pos = (tail_ + off) & mask_;
    const size_t first = n < capacity_ - pos ? n : capacity_ - pos;
    std::memcpy(data_ + pos, src, first);
    if (n > first) std::memcpy(data_, static_cast<const uint8_t*>(src) + first, n - first);
  }

  // Publishes `n` copied bytes. Returns true if the consumer is (about to be)
  // asleep and must be kicked.
  bool Commit(size_t n) {
    tail_ += n;
    // Pairs with the consumer's load-acquire of tail in Readable().
    idx_->tail.store(tail_, std::memory_order_release);
    // StoreLoad (fence.h, fast side): the tail store before the flag load;
    // pairs with the consumer's flag store + HeavyFence + tail re-check in
    // PrepareSleep(). A lazy producer leaves it to the consumer's
    // PeerBarrier() (registration is lost in a forked child: fence again).
    if (lazy_ && g_peer_barriers.load(std::memory_order_relaxed) == 1) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
      PrefetchAhead();
    } else {
      LightFence();
    }
    return TakeReaderWakeup();
  }

  // Lazy mode for a stream of sends (fence.h): on, the fast-side fence is
  // skipped and sleeping consumers issue a membarrier instead; off, every
  // commit fences again. No-op unless this process is registered.
  void SetLazy(bool on) {
    if (on == lazy_) return;
    if (on) {
      if (g_peer_barriers.load(std::memory_order_relaxed) != 1) return;
      // Before any fence-less commit: a consumer that does not see the
      // flag after its own fence is seen by our next flag load (Dekker).
      idx_->writer_lazy.store(1, std::memory_order_seq_cst);
      std::atomic_thread_fence(std::memory_order_seq_cst);
    } else {
      // After the last lazy commit (TSO/release: a consumer that sees 0
      // also sees every earlier tail).
      idx_->writer_lazy.store(0, std::memory_order_release);
    }
    lazy_ = on;
  }
  bool lazy() const { return lazy_; }

  // Sets the writer's need-wake-up flag before sleeping on a full ring.
  // Returns the free space seen after setting it: non-zero means do not
  // sleep.
  size_t PrepareSleep() {
    SetSleepFlag();
    HeavyFence();
    return RecheckAfterFence();
  }
  // PrepareSleep() in two halves, so a caller arming many rings pays one
  // HeavyFence() between all the flag stores and all the re-checks.
  // Slow side of the handshake; pairs with the consumer's head store +
  // LightFence + flag load in Consume().
  void SetSleepFlag() { idx_->writer_needs_wakeup.store(1, std::memory_order_seq_cst); }
  size_t RecheckAfterFence() {
    cached_head_ = idx_->head.load(std::memory_order_seq_cst);
    return capacity_ - (tail_ - cached_head_);
  }
  void CancelSleep() { idx_->writer_needs_wakeup.store(0, std::memory_order_relaxed); }

  // Marks the end of the stream (kShutFin) or an abort (kShutRst).
  // Returns true if the consumer must be kicked.
  bool Shut(uint32_t how) {
    // Pairs with the consumer's load-acquire of shut after an empty ring.
    idx_->shut.store(how, std::memory_order_release);
    LightFence();
    return TakeReaderWakeup();
  }
  // The consumer's head (epoll EPOLLET: space was freed since last time).
  uint64_t ConsumerHead() const { return idx_->head.load(std::memory_order_acquire); }
  // The consumer closed: 0 open, 1 closed, 2 closed with unread data.
  uint32_t ReaderClosed() const {
    // Pairs with the consumer's store-release in ByteRingConsumer::Close().
    return idx_->reader_closed.load(std::memory_order_acquire);
  }

 private:
  bool TakeReaderWakeup() {
    if (idx_->reader_needs_wakeup.load(std::memory_order_relaxed) == 0) return false;
    return idx_->reader_needs_wakeup.exchange(0, std::memory_order_acq_rel) != 0;
  }

  // A stream: ask for ownership of the lines kPrefetchAhead bytes past the
  // tail now, so their transfers overlap instead of queueing behind the
  // store buffer one message at a time. Only lines the consumer is done
  // with (within the free space last seen).
  static constexpr size_t kPrefetchAhead = 2048;
  void PrefetchAhead() {
    const uint64_t at = tail_ + kPrefetchAhead;
    if (at + 2 * kCacheLine - cached_head_ > capacity_) {
      // A load, which does not hold up our stores like a lost line does.
      cached_head_ = idx_->head.load(std::memory_order_acquire);
      if (at + 2 * kCacheLine - cached_head_ > capacity_) return;
    }
    PrefetchForWrite(data_ + (at & mask_));
    PrefetchForWrite(data_ + ((at + kCacheLine) & mask_));
  }

  RingIndexes* idx_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t mask_ = 0;
  size_t capacity_ = 0;
  uint64_t tail_ = 0;         // our own index, mirrored to idx_->tail
  uint64_t cached_head_ = 0;  // last head seen
  bool lazy_ = false;         // SetLazy(true) in effect
};

class ByteRingConsumer {
 public:
  ByteRingConsumer() = default;
  // REQUIRES: as ByteRingProducer::Init.
  void Init(RingIndexes* idx, uint8_t* data, uint32_t capacity) {
    idx_ = idx;
    data_ = data;
    mask_ = capacity - 1;
    capacity_ = capacity;
    head_ = idx->head.load(std::memory_order_relaxed);
    cached_tail_ = idx->tail.load(std::memory_order_acquire);
  }
  bool valid() const { return idx_ != nullptr; }

  // Bytes available to read. Re-reads the producer's tail only when the
  // cached value says the ring is empty.
  size_t Readable() {
    size_t avail = cached_tail_ - head_;
    if (avail == 0) {
      // Pairs with the producer's store-release of tail in Commit().
      cached_tail_ = idx_->tail.load(std::memory_order_acquire);
      avail = cached_tail_ - head_;
    }
    return avail;
  }
  // Like Readable() but always re-reads tail (FIONREAD, poll).
  size_t ReadableFresh() {
    cached_tail_ = idx_->tail.load(std::memory_order_acquire);
    return cached_tail_ - head_;
  }
  // Of `avail` readable bytes, those before the page that holds the tail
  // (all of them if that leaves none). A reader that stays out of the page
  // the producer is filling keeps its hardware prefetcher from taking
  // lines the producer has just claimed (PrefetchAhead).
  size_t BelowProducerPage(size_t avail) const {
    constexpr uintptr_t kPage = 4096;
    const uintptr_t base = reinterpret_cast<uintptr_t>(data_);
    const uintptr_t at = base + ((head_ + avail) & mask_);
    const uintptr_t page = at & ~(kPage - 1);
    const size_t cut = page > base ? at - page : at - base;
    return cut < avail ? avail - cut : avail;
  }
  // Peek at the producer's tail without touching the cache (epoll ET).
  uint64_t ProducerTail() const { return idx_->tail.load(std::memory_order_acquire); }

  // REQUIRES: off + n <= Readable().
  void CopyOut(size_t off, void* dst, size_t n) const {
    const size_t pos = (head_ + off) & mask_;
    const size_t first = n < capacity_ - pos ? n : capacity_ - pos;
    std::memcpy(dst, data_ + pos, first);
    if (n > first) std::memcpy(static_cast<uint8_t*>(dst) + first, data_, n - first);
  }

  // Before Consume(n) of a large read from a stream: evicts the cache
  // lines the read used up entirely from every cache. The producer's next
  // lap then writes lines no core holds, instead of invalidating this
  // core's copies one remote snoop at a time; across CPU complexes (AMD
  // CCDs, sockets) that snoop is what bounds a stream of small messages.
  // Never the line the producer is still filling. Content is unchanged
  // (CLFLUSHOPT writes back), so this is only a hint.
  void EvictConsumed(size_t n) {
    if (!HaveClflushopt()) return;
    const uint64_t first = (head_ + kCacheLine - 1) & ~uint64_t{kCacheLine - 1};
    const uint64_t last = (head_ + n) & ~uint64_t{kCacheLine - 1};
    if (last <= first) return;
    const size_t pos = first & mask_;
    const size_t len = last - first;
    const size_t run = len < capacity_ - pos ? len : capacity_ - pos;
    EvictLines(data_ + pos, run);
    if (len > run) EvictLines(data_, len - run);
  }

  // Releases `n` bytes. Returns true if the producer sleeps on a full ring
  // and must be kicked.
  bool Consume(size_t n) {
    head_ += n;
    // Pairs with the producer's load-acquire of head in Writable().
    idx_->head.store(head_, std::memory_order_release);
    // StoreLoad (fence.h, fast side) against the producer's PrepareSleep():
    // its flag store and our head store must not both be missed.
    LightFence();
    if (idx_->writer_needs_wakeup.load(std::memory_order_relaxed) == 0) return false;
    return idx_->writer_needs_wakeup.exchange(0, std::memory_order_acq_rel) != 0;
  }

  // Sets the reader's need-wake-up flag before sleeping. Returns the bytes
  // readable after setting it (non-zero: do not sleep) — the caller must
  // also re-check Shut() after this.
  size_t PrepareSleep() {
    SetSleepFlag();
    HeavyFence();
    if (WriterLazy()) PeerBarrier();
    return RecheckAfterFence();
  }
  // After HeavyFence(): the producer is lazy, so PeerBarrier() must come
  // before RecheckAfterFence().
  bool WriterLazy() const { return idx_->writer_lazy.load(std::memory_order_seq_cst) != 0; }
  // PrepareSleep() in two halves (one HeavyFence() for many rings; then
  // PeerBarrier() once if any ring's WriterLazy()).
  // Slow side of the handshake; pairs with the producer's tail store +
  // LightFence + flag load in Commit()/Shut().
  void SetSleepFlag() { idx_->reader_needs_wakeup.store(1, std::memory_order_seq_cst); }
  size_t RecheckAfterFence() {
    cached_tail_ = idx_->tail.load(std::memory_order_seq_cst);
    return cached_tail_ - head_;
  }
  void CancelSleep() { idx_->reader_needs_wakeup.store(0, std::memory_order_relaxed); }

  // kShutFin / kShutRst once the producer is done; meaningful only after
  // Readable() returned 0 (the shut store follows the last tail store).
  uint32_t Shut() const {
    // Pairs with the producer's store-release in ByteRingProducer::Shut().
    return idx_->shut.load(std::memory_order_acquire);
  }
  // Tells the producer we are gone (`how`: 1 clean, 2 unread data).
  void Close(uint32_t how) { idx_->reader_closed.store(how, std::memory_order_release); }

  uint32_t capacity() const { return capacity_; }

 private:
  RingIndexes* idx_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t mask_ = 0;
  size_t capacity_ = 0;
  uint64_t head_ = 0;
  uint64_t cached_tail_ = 0;
};

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_BYTE_RING_H_
