// Single-producer/single-consumer datagram ring over shared memory: the
// same-host UDP path from one sender socket to one receiver socket
// (abi.h DgramHeader). Records are DgramRecord + payload padded to 8 bytes
// and never wrap; a kDgramSkip record pads to the end of the ring.
//
// A full ring drops the datagram (as a full socket receive buffer does);
// the sender counts the drop. Thread safety and wake-ups: as byte_ring.h.

#ifndef OFFLOAD_DAEMON_SHM_DGRAM_RING_H_
#define OFFLOAD_DAEMON_SHM_DGRAM_RING_H_

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "daemon/shm/abi.h"
#include "daemon/shm/fence.h"

namespace offload {
namespace shm {

inline constexpr size_t DgramRecordBytes(size_t len) {
  return sizeof(DgramRecord) + ((len + 7) & ~size_t{7});
}

class DgramProducer {
 public:
  // REQUIRES: `hdr` heads a segment of DgramSegmentBytes(hdr->capacity)
  // bytes that stays mapped; capacity is a power of two >= 2 * kMaxDatagram.
  void Init(DgramHeader* hdr) {
    hdr_ = hdr;
    data_ = reinterpret_cast<uint8_t*>(hdr) + sizeof(DgramHeader);
    capacity_ = hdr->capacity;
    tail_ = hdr->idx.tail.load(std::memory_order_relaxed);
    cached_head_ = hdr->idx.head.load(std::memory_order_acquire);
  }
  bool valid() const { return hdr_ != nullptr; }

  // Appends one datagram gathered from `iov`. Returns false (nothing
  // written) if the ring has no room. Sets *kick when the consumer must be
  // woken.
  bool Push(const struct iovec* iov, size_t iovcnt, size_t len, bool* kick) {
    const size_t rec = DgramRecordBytes(len);
    size_t pos = tail_ & (capacity_ - 1);
    size_t skip = 0;
    if (pos + rec > capacity_) skip = capacity_ - pos;  // pad to the end
    if (!Fits(skip + rec)) return false;
    if (skip != 0) {
      reinterpret_cast<DgramRecord*>(data_ + pos)->len = kDgramSkip;
      tail_ += skip;
      pos = 0;
    }
    auto* r = reinterpret_cast<DgramRecord*>(data_ + pos);
    r->len = static_cast<uint32_t>(len);
    uint8_t* p = data_ + pos + sizeof(DgramRecord);
    for (size_t i = 0; i < iovcnt; ++i) {
      std::memcpy(p, iov[i].iov_base, iov[i].iov_len);
      p += iov[i].iov_len;
    }
    tail_ += rec;
    // Pairs with the consumer's load-acquire of tail in Front().
    hdr_->idx.tail.store(tail_, std::memory_order_release);
    // StoreLoad (fence.h, fast side) against the consumer's PrepareSleep.
    LightFence();
    *kick = hdr_->idx.reader_needs_wakeup.load(std::memory_order_relaxed) != 0 &&
            hdr_->idx.reader_needs_wakeup.exchange(0, std::memory_order_acq_rel) != 0;
    return true;
  }

  // The sender socket closed: the receiver may unmap the ring once empty.
  bool Shut() {
    hdr_->idx.shut.store(kShutFin, std::memory_order_release);
    LightFence();
    return hdr_->idx.reader_needs_wakeup.exchange(0, std::memory_order_acq_rel) != 0;
  }
  // The receiver's socket is gone (set by the daemon): stop sending here.
  bool ReaderClosedForSender() const {
    // Pairs with the daemon's store-release when the receiver unbinds.
    return hdr_->idx.reader_closed.load(std::memory_order_acquire) != 0;
  }
  // Bytes the receiver has not consumed yet.
  size_t Queued() const {
    return tail_ - hdr_->idx.head.load(std::memory_order_acquire);
  }

 private:
  bool Fits(size_t n) {
    if (capacity_ - (tail_ - cached_head_) >= n) return true;
    // Pairs with the consumer's store-release of head in Pop().
    cached_head_ = hdr_->idx.head.load(std::memory_order_acquire);
    return capacity_ - (tail_ - cached_head_) >= n;
  }

  DgramHeader* hdr_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
  uint64_t tail_ = 0;
  uint64_t cached_head_ = 0;
};

class DgramConsumer {
 public:
  void Init(DgramHeader* hdr) {
    hdr_ = hdr;
    data_ = reinterpret_cast<uint8_t*>(hdr) + sizeof(DgramHeader);
    capacity_ = hdr->capacity;
    head_ = hdr->idx.head.load(std::memory_order_relaxed);
    cached_tail_ = hdr->idx.tail.load(std::memory_order_acquire);
  }
  bool valid() const { return hdr_ != nullptr; }
  const DgramHeader* header() const { return hdr_; }

  // Returns the next datagram's payload and length, or nullptr if empty.
  // The pointer stays valid until Pop().
  const uint8_t* Front(size_t* len) {
    for (;;) {
      if (cached_tail_ == head_) {
        // Pairs with the producer's store-release of tail in Push().
        cached_tail_ = hdr_->idx.tail.load(std::memory_order_acquire);
        if (cached_tail_ == head_) return nullptr;
      }
      const size_t pos = head_ & (capacity_ - 1);
      const auto* r = reinterpret_cast<const DgramRecord*>(data_ + pos);
      if (r->len == kDgramSkip) {
        head_ += capacity_ - pos;
        continue;
      }
      *len = r->len;
      return data_ + pos + sizeof(DgramRecord);
    }
  }
  // Releases the datagram returned by Front().
  void Pop(size_t len) {
    head_ += DgramRecordBytes(len);
    // Pairs with the producer's load-acquire of head in Fits().
    hdr_->idx.head.store(head_, std::memory_order_release);
  }
  bool Empty() {
    size_t len;
    return Front(&len) == nullptr;
  }
  size_t QueuedBytes() const {
    return hdr_->idx.tail.load(std::memory_order_acquire) - head_;
  }
  // Need-wake-up handshake (abi.h RingIndexes). Returns true if data
  // arrived meanwhile (do not sleep).
  bool PrepareSleep() {
    SetSleepFlag();
    HeavyFence();  // slow side; pairs with Push()'s LightFence
    return RecheckAfterFence();
  }
  // PrepareSleep() in two halves (one HeavyFence() for many rings).
  void SetSleepFlag() { hdr_->idx.reader_needs_wakeup.store(1, std::memory_order_seq_cst); }
  bool RecheckAfterFence() {
    cached_tail_ = hdr_->idx.tail.load(std::memory_order_seq_cst);
    return cached_tail_ != head_;
  }
  void CancelSleep() { hdr_->idx.reader_needs_wakeup.store(0, std::memory_order_relaxed); }
  bool SenderGone() const {
    // Pairs with the producer's store-release in Shut().
    return hdr_->idx.shut.load(std::memory_order_acquire) != 0;
  }

 private:
  DgramHeader* hdr_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
  uint64_t head_ = 0;
  uint64_t cached_tail_ = 0;
};

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SHM_DGRAM_RING_H_
