// Shared-memory byte rings; see byte_ring.h for the barrier pairing.
#include "daemon/tcp/byte_ring.h"

#include <algorithm>
#include <cstring>

namespace offload::tcp {
namespace {

void CopyFromRing(const RingMemory& m, uint64_t pos, uint8_t* dst, uint32_t len) {
  const uint32_t off = static_cast<uint32_t>(pos & (m.capacity - 1));
  uint32_t first = std::min(len, m.capacity - off);
  std::memcpy(dst, m.base + off, first);
  if (first < len) std::memcpy(dst + first, m.base, len - first);
}

void CopyToRing(const RingMemory& m, uint64_t pos, const uint8_t* src, uint32_t len) {
  const uint32_t off = static_cast<uint32_t>(pos & (m.capacity - 1));
  uint32_t first = std::min(len, m.capacity - off);
  std::memcpy(m.base + off, src, first);
  if (first < len) std::memcpy(m.base, src + first, len - first);
}

}  // namespace

void TxRing::Attach(const RingMemory& mem) {
  mem_ = mem;
  // The engine owns head; take the application's tail as the start of the
  // stream only if it is sane, otherwise start empty at head.
  head_ = mem.head->load(std::memory_order_relaxed);
  tail_ = head_;
  frozen_ = false;
  RefreshTail();
}

bool TxRing::RefreshTail() {
  if (frozen_ || mem_.base == nullptr) return true;
  // Pairs with the application's store-release of tail.
  const uint64_t t = mem_.tail->load(std::memory_order_acquire);
  // Valid: tail moved forward by at most the free space.
  if (t - tail_ > mem_.capacity - (tail_ - head_)) return false;
  tail_ = t;
  return true;
}

void TxRing::CopyOut(uint32_t offset, uint8_t* dst, uint32_t len) const {
  CopyFromRing(mem_, head_ + offset, dst, len);
}

void TxRing::Consume(uint32_t n) {
  head_ += n;
  // Pairs with the application's load-acquire of head before it reuses space.
  mem_.head->store(head_, std::memory_order_release);
}

void RxRing::Attach(const RingMemory& mem) {
  mem_ = mem;
  tail_ = mem.tail->load(std::memory_order_relaxed);
  head_ = tail_;
  RefreshHead();
}

bool RxRing::RefreshHead() {
  if (mem_.base == nullptr) return true;
  // Pairs with the application's store-release of head after reading.
  const uint64_t h = mem_.head->load(std::memory_order_acquire);
  if (h - head_ > tail_ - head_) return false;
  head_ = h;
  return true;
}

void RxRing::WriteAt(uint32_t offset, const uint8_t* src, uint32_t len) {
  CopyToRing(mem_, tail_ + offset, src, len);
}

void RxRing::Commit(uint32_t n) {
  tail_ += n;
  // Pairs with the application's load-acquire of tail.
  mem_.tail->store(tail_, std::memory_order_release);
}

}  // namespace offload::tcp
