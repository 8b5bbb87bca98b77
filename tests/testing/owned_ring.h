// A TCP payload ring that owns its memory, with the application's side of
// the ring (write, read, used), for the tests, benchmarks and the loopback
// driver that play the application against an engine stack. Production
// applications use shm::ByteRingProducer/Consumer (shm/ring.h); the engine
// side is tcp::TxRing/RxRing (daemon/tcp/byte_ring.h) over the same two
// indices.
#ifndef OFFLOAD_TESTS_TESTING_OWNED_RING_H_
#define OFFLOAD_TESTS_TESTING_OWNED_RING_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "daemon/tcp/byte_ring.h"

namespace offload::testing {

class OwnedRing {
 public:
  explicit OwnedRing(uint32_t capacity) : capacity_(capacity), data_(new uint8_t[capacity]) {}
  // The two shared indices, each on its own cache line (as in a pipe);
  // tests write them directly to play a misbehaving application.
  struct Indices {
    alignas(64) std::atomic<uint64_t> head{0};
    alignas(64) std::atomic<uint64_t> tail{0};
  };
  tcp::RingMemory memory() {
    return tcp::RingMemory{data_.get(), capacity_, &indices_.head, &indices_.tail};
  }
  Indices& indices() { return indices_; }

  // Application producer: appends up to `len` bytes; returns bytes written.
  uint32_t AppWrite(const void* src, uint32_t len);
  // Application consumer: removes up to `len` bytes; returns bytes read.
  uint32_t AppRead(void* dst, uint32_t len);
  // Bytes readable (RX) or queued (TX) from the application's point of view.
  uint32_t AppUsed() const;
  uint32_t AppFree() const { return capacity_ - AppUsed(); }

 private:
  uint32_t capacity_;
  std::unique_ptr<uint8_t[]> data_;
  Indices indices_;
};

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_TESTING_OWNED_RING_H_
