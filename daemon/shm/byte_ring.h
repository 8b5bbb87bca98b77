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

#ifndef OFFLOAD_DAEMON_SHM_BYTE_RING_H_
#define OFFLOAD_DAEMON_SHM_BYTE_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "daemon/shm/abi.h"
#include "daemon/shm/fence.h"

namespace offload {
namespace shm {

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
    // PrepareSleep().
    LightFence();
    return TakeReaderWakeup();
  }

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

  RingIndexes* idx_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t mask_ = 0;
  size_t capacity_ = 0;
  uint64_t tail_ = 0;         // our own index, mirrored to idx_->tail
  uint64_t cached_head_ = 0;  // last head seen
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
  // Peek at the producer's tail without touching the cache (epoll ET).
  uint64_t ProducerTail() const { return idx_->tail.load(std::memory_order_acquire); }

  // REQUIRES: off + n <= Readable().
  void CopyOut(size_t off, void* dst, size_t n) const {
    const size_t pos = (head_ + off) & mask_;
    const size_t first = n < capacity_ - pos ? n : capacity_ - pos;
    std::memcpy(dst, data_ + pos, first);
    if (n > first) std::memcpy(static_cast<uint8_t*>(dst) + first, data_, n - first);
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
    return RecheckAfterFence();
  }
  // PrepareSleep() in two halves (one HeavyFence() for many rings).
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

#endif  // OFFLOAD_DAEMON_SHM_BYTE_RING_H_
