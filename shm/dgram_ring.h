// Single-producer/single-consumer datagram ring over shared memory
// (abi.h DgramHeader): the same-host UDP path from one sender socket to one
// receiver socket, and the two rings between a wire UDP socket and its
// engine. Records are DgramRecord + payload padded to 8 bytes and never
// wrap; a kDgramSkip record pads to the end of the ring.
//
// A full ring drops the datagram (as a full socket receive buffer does);
// the sender counts the drop. Wake-ups: one eventfd per receiving socket,
// and the need-wake-up flag RingWaitLine::armed (set by the sleeper, fence,
// re-check; the producer exchanges it to 0 and kicks).
//
// Trust: DgramProducer and DgramConsumer are used by processes, which trust
// the daemon. The daemon's engines read an application-written ring with
// CheckedDgramConsumer, which validates every index and record before use,
// and write one with DgramProducer::InitOwned (private tail, capacity from
// the engine, an application-written head that cannot make it overrun).

#ifndef OFFLOAD_SHM_DGRAM_RING_H_
#define OFFLOAD_SHM_DGRAM_RING_H_

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "shm/abi.h"
#include "shm/fence.h"

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
  // The daemon's side of a ring it created (tail 0) and an application
  // consumes: `capacity` is the daemon's own copy, never re-read from
  // shared memory.
  void InitOwned(DgramHeader* hdr, uint32_t capacity) {
    hdr_ = hdr;
    data_ = reinterpret_cast<uint8_t*>(hdr) + sizeof(DgramHeader);
    capacity_ = capacity;
    tail_ = 0;
    cached_head_ = 0;
  }
  bool valid() const { return hdr_ != nullptr; }

  // Appends one datagram gathered from `iov` (`addr`/`port`: the record's
  // address, network order, for kDgramAddrPerRecord rings; `ttl`: the
  // record's DgramRecord::ttl). Returns false (nothing written) if the ring
  // has no room. Sets *kick when the consumer must be woken.
  bool Push(const struct iovec* iov, size_t iovcnt, size_t len, bool* kick, uint32_t addr = 0,
            uint16_t port = 0, uint16_t ttl = 0) {
    if (!Append(iov, iovcnt, len, addr, port, ttl)) return false;
    *kick = NeedsKick();
    return true;
  }

  // Push() without the wake-up check: a batch of Append()s ends with one
  // NeedsKick().
  bool Append(const struct iovec* iov, size_t iovcnt, size_t len, uint32_t addr, uint16_t port,
              uint16_t ttl = 0) {
    uint8_t* p = Reserve(len);
    if (p == nullptr) return false;
    for (size_t i = 0; i < iovcnt; ++i) {
      std::memcpy(p, iov[i].iov_base, iov[i].iov_len);
      p += iov[i].iov_len;
    }
    Commit(len, addr, port, ttl);
    return true;
  }

  // Room for a record of up to `max_len` payload bytes, contiguous: returns
  // where its payload goes (write it, then Commit() with the real length),
  // or nullptr if the ring is full. Pads to the end of the ring if needed.
  uint8_t* Reserve(size_t max_len) {
    size_t pos = tail_ & (capacity_ - 1);
    const size_t skip = BytesNeeded(max_len) - DgramRecordBytes(max_len);
    if (!Fits(skip + DgramRecordBytes(max_len))) return nullptr;
    if (skip != 0) {
      // Published with the record's tail (Commit), never alone.
      std::memcpy(data_ + pos, &kDgramSkip, sizeof(kDgramSkip));
      tail_ += skip;
      pos = 0;
    }
    reserved_pos_ = pos;
    return data_ + pos + sizeof(DgramRecord);
  }
  // Publishes the record Reserve()d. REQUIRES: len <= its max_len.
  void Commit(size_t len, uint32_t addr, uint16_t port, uint16_t ttl = 0) {
    auto* r = reinterpret_cast<DgramRecord*>(data_ + reserved_pos_);
    r->len = static_cast<uint32_t>(len);
    r->addr = addr;
    r->port = port;
    r->ttl = ttl;
    r->reserved32 = 0;
    tail_ += DgramRecordBytes(len);
    // Pairs with the consumer's load-acquire of tail in Front().
    hdr_->idx.tail.store(tail_, std::memory_order_release);
  }
  // After the last Commit() of a batch: whether the consumer sleeps and
  // must be kicked (then the flag is cleared).
  bool NeedsKick() {
    // StoreLoad (fence.h, fast side) against the consumer's PrepareSleep.
    LightFence();
    return hdr_->idx.reader_wait.armed.load(std::memory_order_relaxed) != 0 &&
           hdr_->idx.reader_wait.armed.exchange(0, std::memory_order_acq_rel) != 0;
  }

  // A producer that found the ring full and wants to sleep until the
  // consumer frees space: flag, heavy fence, re-check. Returns true if space
  // for `len` appeared meanwhile (do not sleep); CancelWriterSleep() after.
  bool PrepareWriterSleep(size_t len) {
    hdr_->idx.writer_wait.armed.store(1, std::memory_order_seq_cst);
    HeavyFence();  // slow side; pairs with the consumer's LightFence after its head store
    cached_head_ = hdr_->idx.head.load(std::memory_order_seq_cst);
    return Fits(BytesNeeded(len));
  }
  void CancelWriterSleep() { hdr_->idx.writer_wait.armed.store(0, std::memory_order_relaxed); }

  // The sender socket closed: the receiver may unmap the ring once empty.
  bool Shut() {
    hdr_->idx.shut.store(kShutFin, std::memory_order_release);
    LightFence();
    return hdr_->idx.reader_wait.armed.exchange(0, std::memory_order_acq_rel) != 0;
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
  // Ring bytes a record of `len` takes at the current tail, with the
  // padding to the end of the ring if it does not fit before.
  size_t BytesNeeded(size_t len) const {
    const size_t rec = DgramRecordBytes(len);
    const size_t pos = tail_ & (capacity_ - 1);
    return pos + rec > capacity_ ? capacity_ - pos + rec : rec;
  }
  bool Fits(size_t n) {
    if (tail_ - cached_head_ <= capacity_ && capacity_ - (tail_ - cached_head_) >= n) return true;
    // Pairs with the consumer's store-release of head in Pop(). A head
    // ahead of the tail or more than a ring behind (a corrupt consumer) is
    // "full": nothing is overwritten that the consumer has not released.
    cached_head_ = hdr_->idx.head.load(std::memory_order_acquire);
    const uint64_t used = tail_ - cached_head_;
    return used <= capacity_ && capacity_ - used >= n;
  }

  DgramHeader* hdr_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
  uint64_t tail_ = 0;
  uint64_t cached_head_ = 0;
  size_t reserved_pos_ = 0;
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
  // The receiver stops taking datagrams through this ring (its socket went
  // back to the kernel): the sender's next send sees it at once, before
  // the daemon's own close (DgramProducer::ReaderClosedForSender).
  void CloseForSender() { hdr_->idx.reader_closed.store(1, std::memory_order_release); }

  // Returns the next datagram's payload and length, or nullptr if empty.
  // The pointer stays valid until Pop(). `addr`/`port` (optional): the
  // record's address (kDgramAddrPerRecord rings).
  const uint8_t* Front(size_t* len, uint32_t* addr = nullptr, uint16_t* port = nullptr) {
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
      if (addr != nullptr) *addr = r->addr;
      if (port != nullptr) *port = r->port;
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
  void SetSleepFlag() { hdr_->idx.reader_wait.armed.store(1, std::memory_order_seq_cst); }
  bool RecheckAfterFence() {
    cached_tail_ = hdr_->idx.tail.load(std::memory_order_seq_cst);
    return cached_tail_ != head_;
  }
  void CancelSleep() { hdr_->idx.reader_wait.armed.store(0, std::memory_order_relaxed); }
  bool SenderGone() const {
    // Pairs with the producer's store-release in Shut().
    return hdr_->idx.shut.load(std::memory_order_acquire) != 0;
  }

  // Zero-copy receive (client/udp_extra.cc): records lent to the
  // application stay in the ring. The read position (head_, what Front()
  // reads next) then moves on privately with Skip(); the shared head, which
  // gives space back to the producer, moves only with PublishHead(), to
  // the oldest record still lent. Front(), Empty(), QueuedBytes() and the
  // sleep handshake all work on the read position.
  uint64_t ReadPos() const { return head_; }
  uint64_t SharedHead() const { return hdr_->idx.head.load(std::memory_order_acquire); }
  // Moves the read position past the datagram Front() returned, without
  // releasing its space.
  void Skip(size_t len) { head_ += DgramRecordBytes(len); }
  // Releases everything before `head` (<= ReadPos()) to the producer.
  void PublishHead(uint64_t head) {
    // Pairs with the producer's load-acquire of head in Fits().
    hdr_->idx.head.store(head, std::memory_order_release);
  }
  const uint8_t* data() const { return data_; }
  size_t capacity() const { return capacity_; }

  // Several consumers of one ring (the processes holding a UDP socket that
  // went back to the kernel when it was shared; client/udp.cc). Each read
  // starts from the shared head (Resync(), then Front()); the datagram
  // belongs to whoever moves the shared head past it (PopShared()). Until
  // then the producer cannot reuse its bytes (it writes only past the
  // head), so a copy made between Front() and a successful PopShared() is
  // intact; after a failed one, discard the copy and Resync(). The head
  // only grows (64 bits), so a compare-exchange cannot be fooled by reuse.
  void Resync() {
    head_ = hdr_->idx.head.load(std::memory_order_acquire);
    synced_head_ = head_;
    cached_tail_ = head_;
  }
  // Consumes the datagram Front() returned after the last Resync(). False:
  // another consumer took it first.
  bool PopShared(size_t len) {
    const uint64_t next = head_ + DgramRecordBytes(len);
    uint64_t expected = synced_head_;
    if (!hdr_->idx.head.compare_exchange_strong(expected, next, std::memory_order_acq_rel)) {
      return false;
    }
    head_ = synced_head_ = next;
    return true;
  }

 private:
  DgramHeader* hdr_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
  uint64_t head_ = 0;
  uint64_t cached_tail_ = 0;
  uint64_t synced_head_ = 0;  // the shared head at the last Resync()
};

// The daemon's reader of a ring an application writes (a wire UDP socket's
// TX ring). Nothing in shared memory is trusted: the tail may be anything,
// records may claim any length, and all of it may change while being read.
// Each record's header is copied once and checked against the ring's
// bounds before its payload is handed out; a ring that breaks the format
// is reported as corrupt (the caller stops serving it).
//
// Thread safety: one consumer thread (an engine).
class CheckedDgramConsumer {
 public:
  enum class Next { kEmpty, kRecord, kCorrupt };
  struct Record {
    const uint8_t* payload;  // in shared memory: read it once (copy), trust no byte
    uint32_t len;            // <= kMaxDatagram, fits the ring
    uint32_t addr;           // as written by the producer (network order)
    uint16_t port;
    uint16_t ttl;            // as written (DgramRecord::ttl): any value
  };

  // `capacity`: the daemon's own copy (power of two, >= 2 * the largest
  // record), never read back from the segment. Starts at head 0.
  void Init(DgramHeader* hdr, uint32_t capacity) {
    hdr_ = hdr;
    data_ = reinterpret_cast<const uint8_t*>(hdr) + sizeof(DgramHeader);
    capacity_ = capacity;
    head_ = 0;
    published_head_ = 0;
  }
  bool valid() const { return hdr_ != nullptr; }

  // The next record, without consuming it.
  Next Front(Record* out) {
    // Pairs with the producer's store-release of tail after its record.
    const uint64_t tail = hdr_->idx.tail.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t avail = tail - head_;
      if (avail == 0) return Next::kEmpty;
      if (avail > capacity_) return Next::kCorrupt;
      // head_ only ever advances by whole records (multiples of 8) or to
      // the end of the ring, so at least 8 bytes remain at pos.
      const size_t pos = head_ & (capacity_ - 1);
      uint32_t len;
      std::memcpy(&len, data_ + pos, sizeof(len));
      if (len == kDgramSkip) {
        const size_t skip = capacity_ - pos;
        if (skip > avail) return Next::kCorrupt;
        head_ += skip;
        continue;  // at most once more: pos is now 0
      }
      if (len > kMaxDatagram) return Next::kCorrupt;
      const size_t rec = DgramRecordBytes(len);
      if (pos + rec > capacity_ || rec > avail) return Next::kCorrupt;
      DgramRecord r;
      std::memcpy(&r, data_ + pos, sizeof(r));
      out->payload = data_ + pos + sizeof(DgramRecord);
      out->len = len;  // the checked copy, not r.len (which may have changed)
      out->addr = r.addr;
      out->port = r.port;
      out->ttl = r.ttl;
      front_bytes_ = rec;
      return Next::kRecord;
    }
  }
  // Consumes the record Front() returned (privately; Publish() makes the
  // space visible to the producer).
  void Pop() { head_ += front_bytes_; }
  // Hands the consumed space back. Returns true if the producer sleeps
  // waiting for space and must be kicked (its flag is then cleared).
  bool Publish() {
    if (head_ == published_head_) return false;
    published_head_ = head_;
    // Pairs with the producer's load-acquire of head in Fits().
    hdr_->idx.head.store(head_, std::memory_order_release);
    LightFence();  // fast side, against the producer's PrepareWriterSleep
    return hdr_->idx.writer_wait.armed.load(std::memory_order_relaxed) != 0 &&
           hdr_->idx.writer_wait.armed.exchange(0, std::memory_order_acq_rel) != 0;
  }
  bool HasUnpublished() const { return head_ != published_head_; }

  // Need-wake-up handshake (abi.h RingIndexes), in two halves around the
  // caller's HeavyFence(): set the flag, fence, then RecheckAfterFence().
  void SetSleepFlag() { hdr_->idx.reader_wait.armed.store(1, std::memory_order_seq_cst); }
  // True if records arrived (do not sleep).
  bool RecheckAfterFence() const {
    return hdr_->idx.tail.load(std::memory_order_seq_cst) != head_;
  }
  void CancelSleep() { hdr_->idx.reader_wait.armed.store(0, std::memory_order_relaxed); }

 private:
  DgramHeader* hdr_ = nullptr;
  const uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
  uint64_t head_ = 0;
  uint64_t published_head_ = 0;
  size_t front_bytes_ = 0;
};

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_DGRAM_RING_H_
