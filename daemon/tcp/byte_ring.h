// Circular byte buffers for TCP payload, as views over memory the engine does
// not own (in production: the application's shared-memory arena).
//
// A ring is `capacity` bytes (a power of two) plus two free-running uint64_t
// byte counts, `head` (consumer) and `tail` (producer); the bytes in use are
// [head, tail) modulo capacity. The indices are the ones of the shared-memory
// pipe an application maps (shm::RingIndexes), so the engine reads and writes
// an application's ring in place. For the TX ring the application produces and
// the engine consumes; for the RX ring the engine produces and the
// application consumes.
//
// The indices written by the application are untrusted: the engine reads each
// one once per refresh, validates it against the capacity and its own previous
// snapshot, and never uses it for memory bounds without that check. The engine
// keeps private copies of both indices and only publishes its own.
//
// Thread safety / barriers:
//   - the app stores TX `tail` with release after writing data; the engine
//     loads it with acquire (TxRing::RefreshTail).
//   - the engine stores TX `head` with release after it no longer needs the
//     bytes (TxRing::Consume); the app loads it with acquire before reuse.
//   - the engine stores RX `tail` with release after writing data
//     (RxRing::Commit); the app loads it with acquire.
//   - the app stores RX `head` with release after copying data out; the
//     engine loads it with acquire (RxRing::RefreshHead).
#ifndef OFFLOAD_DAEMON_TCP_BYTE_RING_H_
#define OFFLOAD_DAEMON_TCP_BYTE_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace offload::tcp {

// Where a ring lives. `base` has `capacity` bytes; `head` and `tail` are the
// shared indices (the two index lines of a pipe direction; in tests, an
// OwnedRing's, tests/testing/owned_ring.h). Not owned.
struct RingMemory {
  uint8_t* base = nullptr;
  uint32_t capacity = 0;  // power of two, or 0 for "no ring"
  std::atomic<uint64_t>* head = nullptr;
  std::atomic<uint64_t>* tail = nullptr;

  bool valid() const {
    return base != nullptr && head != nullptr && tail != nullptr && capacity != 0 &&
           (capacity & (capacity - 1)) == 0 && capacity <= (1u << 30);
  }
};

// Engine side of the TX ring (engine consumes).
class TxRing {
 public:
  TxRing() = default;
  // Adopts the ring; the engine's snapshot starts at the current head, and the
  // tail is validated on the first RefreshTail().
  void Attach(const RingMemory& mem);
  bool attached() const { return mem_.base != nullptr; }

  // Reads the application's tail once. Accepts it only if it lies in
  // [old tail, head + capacity]; otherwise keeps the old snapshot and returns
  // false (the application corrupted its ring). Returns true if accepted.
  bool RefreshTail();

  // Bytes in the ring (unacknowledged plus unsent), per the last snapshot.
  uint32_t size() const { return static_cast<uint32_t>(tail_ - head_); }
  uint32_t capacity() const { return mem_.capacity; }

  // Copies `len` bytes starting `offset` bytes after head into `dst`.
  // REQUIRES: offset + len <= size().
  void CopyOut(uint32_t offset, uint8_t* dst, uint32_t len) const;

  // Releases `n` bytes at head to the application. REQUIRES: n <= size().
  void Consume(uint32_t n);

  const RingMemory& memory() const { return mem_; }
  // Application index of the byte at head / just past the snapshot's tail.
  uint64_t head_index() const { return head_; }
  uint64_t tail_index() const { return tail_; }

  // Stops accepting tail updates (after shutdown(SHUT_WR)).
  void Freeze() { frozen_ = true; }

 private:
  RingMemory mem_;
  uint64_t head_ = 0;
  uint64_t tail_ = 0;
  bool frozen_ = false;
};

// Engine side of the RX ring (engine produces).
class RxRing {
 public:
  RxRing() = default;
  void Attach(const RingMemory& mem);
  bool attached() const { return mem_.base != nullptr; }

  // Reads the application's head once. Accepts it only if it lies in
  // [old head, tail]. Returns true if accepted.
  bool RefreshHead();

  // Free bytes after tail, per the last head snapshot.
  uint32_t free() const { return mem_.capacity - used(); }
  // Bytes committed but not yet consumed by the application.
  uint32_t used() const { return static_cast<uint32_t>(tail_ - head_); }
  uint32_t capacity() const { return mem_.capacity; }

  // Writes `len` bytes at `offset` bytes after tail without publishing them.
  // REQUIRES: offset + len <= free().
  void WriteAt(uint32_t offset, const uint8_t* src, uint32_t len);

  const RingMemory& memory() const { return mem_; }

  // Publishes `n` bytes after tail to the application. REQUIRES: n <= free().
  void Commit(uint32_t n);

 private:
  RingMemory mem_;
  uint64_t head_ = 0;
  uint64_t tail_ = 0;
};

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_BYTE_RING_H_
