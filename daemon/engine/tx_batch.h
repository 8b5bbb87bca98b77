// Batches the frames an engine thread transmits on one queue between two
// flushes, so the driver sees one SubmitTx (one ring update, at most one
// kick) per loop iteration instead of one per frame.
//
// Thread safety: owned by one engine thread.

#ifndef OFFLOAD_DAEMON_ENGINE_TX_BATCH_H_
#define OFFLOAD_DAEMON_ENGINE_TX_BATCH_H_

#include <cstddef>

#include "daemon/nic/nic.h"

namespace offload::engine {

class TxBatch {
 public:
  static constexpr size_t kMaxBatch = 64;

  explicit TxBatch(nic::NicQueue* queue) : queue_(queue) {}
  TxBatch(const TxBatch&) = delete;
  TxBatch& operator=(const TxBatch&) = delete;
  ~TxBatch() { Discard(); }

  // Returns a buffer to fill, or nullptr if the driver has none free or the
  // batch is full and the TX ring refuses it (the caller retries later). The
  // buffer is sent only if Commit() follows; otherwise the next Alloc() reuses
  // it.
  nic::TxFrame* Alloc() {
    if (count_ == kMaxBatch) {
      Flush();
      if (count_ == kMaxBatch) return nullptr;  // TX ring still full
    }
    if (!spare_) {
      if (queue_->AllocTx(&frames_[count_], 1) != 1) return nullptr;
      spare_ = true;
    }
    frames_[count_].len = 0;
    return &frames_[count_];
  }

  // Queues the buffer returned by the last Alloc() (its len set).
  void Commit() {
    spare_ = false;
    ++count_;
  }

  // Submits the queued frames; returns how many the driver accepted. Frames
  // it refused (ring full) stay queued for the next flush.
  size_t Flush() {
    if (count_ == 0) return 0;
    size_t sent = queue_->SubmitTx(frames_, count_);
    size_t left = count_ - sent;
    for (size_t i = 0; i < left; ++i) frames_[i] = frames_[sent + i];
    if (spare_) frames_[left] = frames_[count_];
    count_ = left;
    return sent;
  }

  // Gives every unsent buffer back to the driver.
  void Discard() {
    queue_->FreeTx(frames_, count_ + (spare_ ? 1 : 0));
    count_ = 0;
    spare_ = false;
  }

  size_t pending() const { return count_; }
  nic::NicQueue* queue() const { return queue_; }

 private:
  nic::NicQueue* queue_;
  nic::TxFrame frames_[kMaxBatch + 1];  // +1: the uncommitted spare
  size_t count_ = 0;
  bool spare_ = false;  // frames_[count_] holds an allocated, unsent buffer
};

}  // namespace offload::engine

#endif  // OFFLOAD_DAEMON_ENGINE_TX_BATCH_H_
