// FramePool: a fixed set of equally sized frame buffers, allocated once
// (config max_num_buffers), handed out by index. FrameQueue: a bounded FIFO
// of frame indices. Neither allocates after construction.
//
// Thread safety: none; owned by one engine thread.
#ifndef OFFLOAD_DAEMON_STACK_FRAME_POOL_H_
#define OFFLOAD_DAEMON_STACK_FRAME_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace offload::stack {

class FramePool {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;

  FramePool(uint32_t count, uint32_t frame_size)
      : frame_size_(frame_size),
        data_(new uint8_t[size_t{count} * frame_size]),
        len_(count, 0) {
    free_.reserve(count);
    for (uint32_t i = count; i > 0; --i) free_.push_back(i - 1);
  }

  // Returns a free frame index, or kNone when exhausted.
  uint32_t Alloc() {
    if (free_.empty()) return kNone;
    uint32_t i = free_.back();
    free_.pop_back();
    return i;
  }
  void Free(uint32_t i) { free_.push_back(i); }

  uint8_t* data(uint32_t i) { return data_.get() + size_t{i} * frame_size_; }
  uint32_t& len(uint32_t i) { return len_[i]; }
  uint32_t frame_size() const { return frame_size_; }
  size_t available() const { return free_.size(); }

 private:
  uint32_t frame_size_;
  std::unique_ptr<uint8_t[]> data_;
  std::vector<uint32_t> len_;
  std::vector<uint32_t> free_;
};

// Bounded FIFO of uint32_t (frame or flow indices).
class IndexQueue {
 public:
  explicit IndexQueue(uint32_t capacity) : q_(capacity + 1) {}
  bool Push(uint32_t v) {
    size_t next = (tail_ + 1) % q_.size();
    if (next == head_) return false;
    q_[tail_] = v;
    tail_ = next;
    return true;
  }
  bool empty() const { return head_ == tail_; }
  uint32_t front() const { return q_[head_]; }
  void Pop() { head_ = (head_ + 1) % q_.size(); }
  size_t size() const { return (tail_ + q_.size() - head_) % q_.size(); }

 private:
  std::vector<uint32_t> q_;
  size_t head_ = 0;
  size_t tail_ = 0;
};

}  // namespace offload::stack

#endif  // OFFLOAD_DAEMON_STACK_FRAME_POOL_H_
