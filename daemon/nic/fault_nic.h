// A NicDriver/NicQueue decorator that injects faults for tests of the
// protocol engine under loss and reordering (OFFLOADD_FAULT, fault_spec.h).
//
// Per direction, each frame is dropped with probability `loss`; otherwise it
// is held back with probability `reorder` and released after `reorder_depth`
// later frames of that direction have gone through, or after `reorder_us`,
// whichever comes first. Reordering never loses a frame and never holds one
// forever:
//   RX  held frames whose time is up are returned by the next RxBurst();
//       ArmWakeup() (the owner is about to sleep) returns false while any is
//       held and makes them all due, so the next RxBurst() returns them.
//   TX  held frames are submitted to the wrapped queue from SubmitTx() (after
//       `reorder_depth` later frames) and from ReclaimTx() (time up), and all
//       of them from ArmWakeup(); ArmWakeup() returns false while the wrapped
//       TX ring still refuses one.
// Decisions come from a seeded xorshift PRNG per queue and direction, so a
// run with the same seed and the same traffic makes the same decisions.
//
// Counters: counters() counts what the owner sees (frames delivered by
// RxBurst, frames accepted by SubmitTx and not dropped) and the injected
// faults (fault_* fields); Stats() is the wrapped queue's with those fields
// replaced.
//
// Thread safety: as NicQueue (one owning thread; counters()/Stats() from any
// thread). Lifetime: a FaultNicQueue must be destroyed before the queue it
// wraps; on destruction it gives held frames back to it.

#ifndef OFFLOAD_DAEMON_NIC_FAULT_NIC_H_
#define OFFLOAD_DAEMON_NIC_FAULT_NIC_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "daemon/nic/fault_spec.h"
#include "daemon/nic/nic.h"

namespace offload::nic {

// CLOCK_MONOTONIC in nanoseconds; tests pass a fake.
using FaultClock = std::function<int64_t()>;
int64_t FaultMonotonicNowNs();

class FaultNicQueue : public NicQueue {
 public:
  // Frames one RxBurst()/SubmitTx() call handles; larger requests are
  // clipped (SubmitTx then accepts a prefix, as the interface allows).
  static constexpr size_t kMaxBurst = 256;
  // Frames held at once per direction; a frame chosen for holding while
  // this many are held goes through in order.
  static constexpr size_t kMaxHeld = 128;

  // `inner` must outlive this queue. `seed` is mixed with the queue id.
  FaultNicQueue(NicQueue* inner, const FaultSpec& spec, FaultClock clock = FaultMonotonicNowNs);
  ~FaultNicQueue() override;
  FaultNicQueue(const FaultNicQueue&) = delete;
  FaultNicQueue& operator=(const FaultNicQueue&) = delete;

  uint32_t id() const override { return inner_->id(); }
  size_t RxBurst(RxFrame* frames, size_t max) override;
  void ReleaseRx(const RxFrame* frames, size_t n) override { inner_->ReleaseRx(frames, n); }
  size_t AllocTx(TxFrame* frames, size_t n) override { return inner_->AllocTx(frames, n); }
  void FreeTx(const TxFrame* frames, size_t n) override { inner_->FreeTx(frames, n); }
  size_t SubmitTx(const TxFrame* frames, size_t n) override;
  size_t ReclaimTx() override;
  size_t TxInFlight() const override { return inner_->TxInFlight() + tx_held_.size(); }
  bool RxPending() const override;
  bool ArmWakeup() override;
  void AckWakeup() override { inner_->AckWakeup(); }
  int WaitFd() const override { return inner_->WaitFd(); }
  QueueStats Stats() const override;

  size_t rx_held() const { return rx_held_.size(); }
  size_t tx_held() const { return tx_held_.size(); }

 private:
  // xorshift64*: fast, good enough for coin flips.
  class Rng {
   public:
    explicit Rng(uint64_t seed);
    uint64_t Next();
    // True with probability threshold / 2^64 (threshold 0: never, no draw).
    bool Chance(uint64_t threshold) { return threshold != 0 && Next() < threshold; }

   private:
    uint64_t state_;
  };

  // A fixed-capacity FIFO of held frames (no allocation after construction).
  template <typename Frame>
  class HeldRing {
   public:
    struct Entry {
      Frame frame;
      uint64_t due_seq;     // due once this many frames have passed
      int64_t deadline_ns;  // due at this time
      int32_t tag;          // TX: caller index in the current SubmitTx, else -1
    };
    bool empty() const { return size_ == 0; }
    bool full() const { return size_ == kMaxHeld; }
    size_t size() const { return size_; }
    Entry& front() { return e_[head_]; }
    const Entry& front() const { return e_[head_]; }
    Entry& back() { return e_[(head_ + size_ - 1) % kMaxHeld]; }
    Entry& at(size_t i) { return e_[(head_ + i) % kMaxHeld]; }
    void push_back(const Entry& e) { e_[(head_ + size_++) % kMaxHeld] = e; }
    void push_front(const Entry& e) {
      head_ = (head_ + kMaxHeld - 1) % kMaxHeld;
      e_[head_] = e;
      ++size_;
    }
    Entry pop_front() {
      Entry e = e_[head_];
      head_ = (head_ + 1) % kMaxHeld;
      --size_;
      return e;
    }
    void pop_back() { --size_; }

   private:
    Entry e_[kMaxHeld];
    size_t head_ = 0;
    size_t size_ = 0;
  };

  // Held entry `e` may go now: enough frames passed, its time is up, or a
  // flush was asked for. `now` is read only by the caller when needed.
  template <typename Entry>
  bool Due(const Entry& e, uint64_t passed, int64_t now) const {
    return passed >= e.due_seq || now >= e.deadline_ns;
  }
  // Submits due (all if `all`) TX frames held from earlier calls to the
  // wrapped queue; those it refuses stay held, due at once.
  void ReleaseTxHeld(bool all);

  NicQueue* const inner_;
  const FaultClock clock_;
  const uint64_t rx_loss_, rx_reorder_, tx_loss_, tx_reorder_;  // thresholds
  const uint32_t depth_;
  const int64_t hold_ns_;
  Rng rx_rng_;
  Rng tx_rng_;
  uint64_t rx_passed_ = 0;  // frames delivered in order (overtake held ones)
  uint64_t tx_passed_ = 0;
  bool rx_flush_ = false;   // ArmWakeup asked for every held RX frame
  HeldRing<RxFrame> rx_held_;
  HeldRing<TxFrame> tx_held_;
};

class FaultNicDriver : public NicDriver {
 public:
  // Wraps every queue of `inner` in a FaultNicQueue. REQUIRES: inner != null.
  FaultNicDriver(std::unique_ptr<NicDriver> inner, const FaultSpec& spec,
                 FaultClock clock = FaultMonotonicNowNs);

  const InterfaceInfo& info() const override { return inner_->info(); }
  size_t num_queues() const override { return queues_.size(); }
  NicQueue* queue(size_t i) override { return queues_[i].get(); }
  absl::Status Steer(const FlowKey& flow, uint32_t queue) override {
    return inner_->Steer(flow, queue);
  }
  absl::Status Unsteer(const FlowKey& flow) override { return inner_->Unsteer(flow); }

  NicDriver* inner() { return inner_.get(); }

 private:
  // Declared first: destroyed after the queues that wrap its queues.
  std::unique_ptr<NicDriver> inner_;
  std::vector<std::unique_ptr<FaultNicQueue>> queues_;
};

}  // namespace offload::nic

#endif  // OFFLOAD_DAEMON_NIC_FAULT_NIC_H_
