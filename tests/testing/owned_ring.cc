#include "tests/testing/owned_ring.h"

#include <algorithm>
#include <cstring>

namespace offload::testing {

uint32_t OwnedRing::AppUsed() const {
  return static_cast<uint32_t>(indices_.tail.load(std::memory_order_acquire) -
                               indices_.head.load(std::memory_order_acquire));
}

uint32_t OwnedRing::AppWrite(const void* src, uint32_t len) {
  const uint64_t head = indices_.head.load(std::memory_order_acquire);
  const uint64_t tail = indices_.tail.load(std::memory_order_relaxed);
  const uint32_t n = std::min(len, capacity_ - static_cast<uint32_t>(tail - head));
  const uint32_t at = static_cast<uint32_t>(tail & (capacity_ - 1));
  const uint32_t first = std::min(n, capacity_ - at);
  std::memcpy(data_.get() + at, src, first);
  std::memcpy(data_.get(), static_cast<const uint8_t*>(src) + first, n - first);
  indices_.tail.store(tail + n, std::memory_order_release);
  return n;
}

uint32_t OwnedRing::AppRead(void* dst, uint32_t len) {
  const uint64_t tail = indices_.tail.load(std::memory_order_acquire);
  const uint64_t head = indices_.head.load(std::memory_order_relaxed);
  const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(len, tail - head));
  const uint32_t at = static_cast<uint32_t>(head & (capacity_ - 1));
  const uint32_t first = std::min(n, capacity_ - at);
  std::memcpy(dst, data_.get() + at, first);
  std::memcpy(static_cast<uint8_t*>(dst) + first, data_.get(), n - first);
  indices_.head.store(head + n, std::memory_order_release);
  return n;
}

}  // namespace offload::testing
