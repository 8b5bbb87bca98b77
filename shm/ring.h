// The byte ring: one direction of a TCP connection in shared memory (a pipe
// between two processes, or between a process and an engine of offloadd).
// This file and shm/wait_line.h are the whole protocol: here the shared
// indices and flags (RingIndexes) and the application's producer and
// consumer; there the wake-up handshake. The engine's validating view of
// the same indices is daemon/tcp/byte_ring.h (it must not trust what an
// application writes).
//
// Data: `tail` and `head` are free-running byte counts; the data area has
// `capacity` (a power of two) bytes; [head, tail) is unread.
//
// Wake-ups: a side about to sleep counts itself in the other side's wait
// line (`reader_wait` for a reader waiting for data, `writer_wait` for a
// writer waiting for room); the handshake is described in shm/wait_line.h.
//
// Callers: ByteRingProducer/Consumer objects live in process memory and
// cache the other side's index; all callers of one side are serialised by
// that side's EndLock (shm/end_lock.h), and must Resync() after taking it
// unless the lock is biased to them.
//
// Thread safety / invariants: every atomic below names the operation it
// pairs with. Lines are split by writer so the steady state touches only
// what it must.

#ifndef OFFLOAD_SHM_RING_H_
#define OFFLOAD_SHM_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "shm/end_lock.h"
#include "shm/fence.h"
#include "shm/wait_line.h"

namespace offload {
namespace shm {

inline constexpr size_t kCacheLine = 64;

inline constexpr uint32_t kShutFin = 1;  // RingIndexes::shut: end of stream
inline constexpr uint32_t kShutRst = 2;  // aborted (reset)

// RingIndexes::reader_closed values.
inline constexpr uint32_t kReaderOpen = 0;
inline constexpr uint32_t kReaderClosed = 1;        // the producer's sends fail with EPIPE
inline constexpr uint32_t kReaderClosedUnread = 2;  // with unread data: ECONNRESET first

struct RingIndexes {
  // Producer line: written only by the producer (and by the daemon when the
  // producer's socket is gone).
  alignas(kCacheLine) std::atomic<uint64_t> tail;
  // Store-release by the producer after copying data; pairs with the
  // consumer's load-acquire before it reads data.
  std::atomic<uint32_t> shut;
  // kShutFin / kShutRst. Store-release after the last tail update; pairs
  // with the consumer's load-acquire once it has found the ring empty.
  std::atomic<uint32_t> writer_lazy;
  // 1 while the producer skips its fast-side fence (a stream: fence.h,
  // ByteRingProducer::SetLazy). Stored with a full fence after it (on) or
  // release after the last lazy commit (off); a consumer loads it after its
  // sleep fence and, if set, issues shm::PeerBarrier() before re-checking.

  // Serialises the producers (the senders of the socket that writes here).
  alignas(kCacheLine) EndLock producer_lock;

  // Consumer line: written only by the consumer.
  alignas(kCacheLine) std::atomic<uint64_t> head;
  // Store-release by the consumer after copying data out; pairs with the
  // producer's load-acquire before it reuses the space.

  // Serialises the consumers (the receivers of the socket that reads here).
  alignas(kCacheLine) EndLock consumer_lock;

  // Readers waiting for data (armed by the consumer side, woken by the
  // producer side). The producer reads this line after every commit, so
  // what it must check before every send lives here too.
  alignas(kCacheLine) RingWaitLine reader_wait;
  std::atomic<uint32_t> reader_closed;
  // kReaderClosed* once the consumer's socket is gone (store-release; the
  // producer's load-acquire before each send). Written once.

  // Writers waiting for room (armed by the producer side, woken by the
  // consumer side).
  alignas(kCacheLine) RingWaitLine writer_wait;
};
static_assert(offsetof(RingIndexes, reader_closed) / kCacheLine ==
                  offsetof(RingIndexes, reader_wait) / kCacheLine,
              "reader_closed shares the reader wait line");
static_assert(sizeof(RingIndexes) == 6 * kCacheLine, "one line per writer and purpose");

// ------------------------------------------------------------ helpers

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


// ------------------------------------------------------------ producer

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
    lazy_ = false;
    Resync();
  }
  bool valid() const { return idx_ != nullptr; }
  uint32_t capacity() const { return capacity_; }
  RingIndexes* indexes() const { return idx_; }
  // The tail as this producer will publish it at its next Commit(0)
  // (under the producer lock).
  uint64_t pending_tail() const { return tail_; }

  // Reloads the cached indices from shared memory: after taking the
  // producer lock in shared mode (another thread or process may have
  // produced since this object last did).
  void Resync() {
    tail_ = idx_->tail.load(std::memory_order_relaxed);
    cached_head_ = idx_->head.load(std::memory_order_acquire);
  }

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

  // Free bytes from the shared indices only (any thread, no lock, no cache
  // update): readiness checks by threads that do not hold the producer
  // lock.
  size_t WritableShared() const {
    // Tail first: bytes produced are then never over-counted (the consumer
    // may have read past this tail meanwhile: a "negative" use is empty).
    const uint64_t tail = idx_->tail.load(std::memory_order_acquire);
    const int64_t used =
        static_cast<int64_t>(tail - idx_->head.load(std::memory_order_acquire));
    return used <= 0 ? capacity_ : used >= static_cast<int64_t>(capacity_) ? 0 : capacity_ - used;
  }

  // Copies `n` bytes to offset `off` past the uncommitted tail.
  // REQUIRES: off + n <= Writable().
  void CopyIn(size_t off, const void* src, size_t n) {
    const size_t pos = (tail_ + off) & mask_;
    const size_t first = n < capacity_ - pos ? n : capacity_ - pos;
    std::memcpy(data_ + pos, src, first);
    if (n > first) std::memcpy(data_, static_cast<const uint8_t*>(src) + first, n - first);
  }

  // Publishes `n` copied bytes. Returns the reader's arm bits (non-zero:
  // wake them, see TakeArmed()).
  uint32_t Commit(size_t n) {
    tail_ += n;
    // Pairs with the consumer's load-acquire of tail in Readable().
    idx_->tail.store(tail_, std::memory_order_release);
    // StoreLoad (fence.h, fast side): the tail store before the arm load;
    // pairs with the consumer's arm RMW + HeavyFence + tail re-check. A
    // lazy producer leaves it to the consumer's PeerBarrier() (registration
    // is lost in a forked child: fence again).
    if (lazy_ && g_peer_barriers.load(std::memory_order_relaxed) == 1) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
      PrefetchAhead();
    } else {
      LightFence();
    }
    return TakeArmed(&idx_->reader_wait);
  }

  // Lazy mode for a stream of sends (fence.h): on, the fast-side fence is
  // skipped and sleeping consumers issue a membarrier instead; off, every
  // commit fences again. No-op unless this process is registered.
  void SetLazy(bool on) {
    if (on == lazy_) return;
    if (on) {
      if (g_peer_barriers.load(std::memory_order_relaxed) != 1) return;
      // Before any fence-less commit: a consumer that does not see the
      // flag after its own fence is seen by our next arm load (Dekker).
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

  // The writer's half of the handshake before sleeping on a full ring:
  // arm (kArmFutex / kArmDoorbell), then one HeavyFence() for all rings
  // armed, then RecheckAfterFence(). Returns the eventcount for FutexWait.
  uint32_t ArmWriter(uint32_t bits) { return ArmWait(&idx_->writer_wait, bits); }
  void DisarmWriter(uint32_t bits) { DisarmWait(&idx_->writer_wait, bits); }
  size_t RecheckAfterFence() {
    cached_head_ = idx_->head.load(std::memory_order_seq_cst);
    return capacity_ - (tail_ - cached_head_);
  }
  RingWaitLine* writer_wait() const { return &idx_->writer_wait; }

  // Marks the end of the stream (kShutFin) or an abort (kShutRst).
  // Returns the reader's arm bits.
  uint32_t Shut(uint32_t how) {
    // Pairs with the consumer's load-acquire of shut after an empty ring.
    idx_->shut.store(how, std::memory_order_release);
    LightFence();
    return TakeArmed(&idx_->reader_wait);
  }
  uint32_t ShutState() const { return idx_->shut.load(std::memory_order_acquire); }
  // The consumer's head (epoll EPOLLET: space was freed since last time).
  uint64_t ConsumerHead() const { return idx_->head.load(std::memory_order_acquire); }
  // The consumer closed: kReaderOpen / kReaderClosed / kReaderClosedUnread.
  uint32_t ReaderClosed() const {
    // Pairs with the consumer's store-release in ByteRingConsumer::Close().
    return idx_->reader_closed.load(std::memory_order_acquire);
  }

 private:
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

// ------------------------------------------------------------ consumer

class ByteRingConsumer {
 public:
  ByteRingConsumer() = default;
  // REQUIRES: as ByteRingProducer::Init.
  void Init(RingIndexes* idx, uint8_t* data, uint32_t capacity) {
    idx_ = idx;
    data_ = data;
    mask_ = capacity - 1;
    capacity_ = capacity;
    Resync();
  }
  bool valid() const { return idx_ != nullptr; }
  RingIndexes* indexes() const { return idx_; }

  // Reloads the cached indices (after taking the consumer lock in shared
  // mode).
  void Resync() {
    head_ = idx_->head.load(std::memory_order_relaxed);
    cached_tail_ = idx_->tail.load(std::memory_order_acquire);
  }

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
  // Readable bytes from the shared indices only (any thread, no lock, no
  // cache update): readiness checks by threads that do not hold the
  // consumer lock.
  size_t ReadableShared() const {
    // Head first: it never passes the tail, so the difference cannot wrap.
    const uint64_t head = idx_->head.load(std::memory_order_acquire);
    return idx_->tail.load(std::memory_order_acquire) - head;
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

  // Releases `n` bytes. Returns the writer's arm bits (non-zero: wake them).
  uint32_t Consume(size_t n) {
    head_ += n;
    // Pairs with the producer's load-acquire of head in Writable().
    idx_->head.store(head_, std::memory_order_release);
    // StoreLoad (fence.h, fast side) against the producer's arm + recheck.
    LightFence();
    return TakeArmed(&idx_->writer_wait);
  }

  // The reader's half of the handshake before sleeping: arm, one
  // HeavyFence() for all rings armed, PeerBarrier() once if any ring's
  // WriterLazy(), then RecheckAfterFence() (and Shut()). Returns the
  // eventcount for FutexWait.
  uint32_t ArmReader(uint32_t bits) { return ArmWait(&idx_->reader_wait, bits); }
  void DisarmReader(uint32_t bits) { DisarmWait(&idx_->reader_wait, bits); }
  bool WriterLazy() const { return idx_->writer_lazy.load(std::memory_order_seq_cst) != 0; }
  size_t RecheckAfterFence() {
    cached_tail_ = idx_->tail.load(std::memory_order_seq_cst);
    return cached_tail_ - head_;
  }
  RingWaitLine* reader_wait() const { return &idx_->reader_wait; }

  // kShutFin / kShutRst once the producer is done; meaningful only after
  // Readable() returned 0 (the shut store follows the last tail store).
  uint32_t Shut() const {
    // Pairs with the producer's store-release in ByteRingProducer::Shut().
    return idx_->shut.load(std::memory_order_acquire);
  }
  // Tells the producer we are gone (kReaderClosed / kReaderClosedUnread).
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

#endif  // OFFLOAD_SHM_RING_H_
