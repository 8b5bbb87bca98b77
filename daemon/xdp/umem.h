// An AF_XDP UMEM: the packet-buffer area one queue shares with the kernel,
// its fill and completion rings, and the pool of frames user space holds.
//
// Layout: `num_frames` frames of kFrameSize bytes (aligned chunk mode), the
// area mmap'd anonymous and populated up front so the data path never
// faults. Frame "addresses" are byte offsets into the area.
//
// Thread safety: none; owned by the one thread that owns the queue.
// Invariants: every frame is in exactly one place -- the free pool, the
// fill ring, the RX ring, the engine (between RxBurst and ReleaseRx, or
// AllocTx and SubmitTx/FreeTx), the TX ring, or the completion ring.

#ifndef OFFLOAD_DAEMON_XDP_UMEM_H_
#define OFFLOAD_DAEMON_XDP_UMEM_H_

#include <xdp/xsk.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace offload::xdp {

class Umem {
 public:
  static constexpr uint32_t kFrameSize = XSK_UMEM__DEFAULT_FRAME_SIZE;

  // Maps `num_frames` frames and registers them with the kernel, with a fill
  // ring of `fill_size` and a completion ring of `comp_size` entries (powers
  // of two). All frames start in the free pool.
  static absl::StatusOr<std::unique_ptr<Umem>> Create(uint32_t num_frames,
                                                      uint32_t fill_size,
                                                      uint32_t comp_size);
  Umem(const Umem&) = delete;
  Umem& operator=(const Umem&) = delete;
  // REQUIRES: every socket using this UMEM was deleted first.
  ~Umem();

  xsk_umem* umem() { return umem_; }
  xsk_ring_prod* fill() { return &fill_; }
  xsk_ring_cons* comp() { return &comp_; }

  uint8_t* area() const { return area_; }
  uint64_t size() const { return size_; }
  uint32_t num_frames() const { return num_frames_; }

  // Start of the frame containing `addr` (aligned chunk mode).
  static uint64_t FrameBase(uint64_t addr) {
    return addr & ~uint64_t{kFrameSize - 1};
  }
  // True if [addr, addr+len) lies inside the area.
  bool Contains(uint64_t addr, uint32_t len) const {
    return addr < size_ && len <= size_ - addr;
  }

  // Free pool (LIFO: the most recently used frame is the warmest in cache).
  size_t free_frames() const { return free_.size(); }
  bool PopFree(uint64_t* addr) {
    if (free_.empty()) return false;
    *addr = free_.back();
    free_.pop_back();
    return true;
  }
  // REQUIRES: fewer than num_frames() frames in the pool (capacity reserved).
  void PushFree(uint64_t addr) { free_.push_back(FrameBase(addr)); }

 private:
  Umem() = default;

  uint8_t* area_ = nullptr;
  uint64_t size_ = 0;
  uint32_t num_frames_ = 0;
  xsk_umem* umem_ = nullptr;
  xsk_ring_prod fill_ = {};
  xsk_ring_cons comp_ = {};
  std::vector<uint64_t> free_;  // capacity num_frames_: never reallocates.
};

}  // namespace offload::xdp

#endif  // OFFLOAD_DAEMON_XDP_UMEM_H_
