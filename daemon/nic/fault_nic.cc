// Fault-injecting NIC decorator (see header).

#include "daemon/nic/fault_nic.h"

#include <time.h>

#include <algorithm>
#include <climits>

namespace offload::nic {
namespace {

constexpr int64_t kUnread = INT64_MIN;  // `now` not read from the clock yet

// Probability -> threshold for Rng::Chance (p * 2^64, saturated).
uint64_t Threshold(double p) {
  if (!(p > 0)) return 0;
  double t = p * 18446744073709551616.0;
  if (t >= 18446744073709551615.0) return UINT64_MAX;
  return static_cast<uint64_t>(t);
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

int64_t FaultMonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

FaultNicQueue::Rng::Rng(uint64_t seed) : state_(SplitMix64(seed)) {
  if (state_ == 0) state_ = 0x2545f4914f6cdd1dULL;
}

uint64_t FaultNicQueue::Rng::Next() {
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return state_ * 0x2545f4914f6cdd1dULL;
}

FaultNicQueue::FaultNicQueue(NicQueue* inner, const FaultSpec& spec, FaultClock clock)
    : inner_(inner),
      clock_(std::move(clock)),
      rx_loss_(Threshold(spec.rx.loss)),
      rx_reorder_(Threshold(spec.rx.reorder)),
      tx_loss_(Threshold(spec.tx.loss)),
      tx_reorder_(Threshold(spec.tx.reorder)),
      depth_(std::max<uint32_t>(spec.reorder_depth, 1)),
      hold_ns_(static_cast<int64_t>(spec.reorder_us) * 1000),
      rx_rng_(spec.seed ^ (uint64_t{inner->id()} << 32) ^ 0x7278),  // "rx"
      tx_rng_(spec.seed ^ (uint64_t{inner->id()} << 32) ^ 0x7478) {}  // "tx"

FaultNicQueue::~FaultNicQueue() {
  while (!rx_held_.empty()) {
    RxFrame f = rx_held_.pop_front().frame;
    inner_->ReleaseRx(&f, 1);
  }
  while (!tx_held_.empty()) {
    TxFrame f = tx_held_.pop_front().frame;
    inner_->FreeTx(&f, 1);
  }
}

size_t FaultNicQueue::RxBurst(RxFrame* frames, size_t max) {
  max = std::min(max, kMaxBurst);
  size_t n = 0;
  int64_t now = kUnread;
  // Held frames whose time is up (or all, after ArmWakeup) go first.
  if (!rx_held_.empty()) {
    now = clock_();
    while (n < max && !rx_held_.empty() &&
           (rx_flush_ || Due(rx_held_.front(), rx_passed_, now))) {
      frames[n++] = rx_held_.pop_front().frame;
    }
    if (rx_held_.empty()) rx_flush_ = false;
  }
  if (n < max) {
    RxFrame in[kMaxBurst];
    RxFrame dropped[kMaxBurst];
    size_t num_dropped = 0;
    size_t got = inner_->RxBurst(in, max - n);
    for (size_t i = 0; i < got; ++i) {
      if (rx_rng_.Chance(rx_loss_)) {
        dropped[num_dropped++] = in[i];
        continue;
      }
      if (!rx_held_.full() && rx_rng_.Chance(rx_reorder_)) {
        if (now == kUnread) now = clock_();
        rx_held_.push_back({in[i], rx_passed_ + depth_, now + hold_ns_, -1});
        counters_.fault_rx_reorders.Increment();
        continue;
      }
      frames[n++] = in[i];
      ++rx_passed_;
    }
    if (num_dropped > 0) {
      inner_->ReleaseRx(dropped, num_dropped);
      counters_.fault_rx_drops.Add(num_dropped);
    }
    // Held frames overtaken by `depth_` frames go behind this burst. (Each
    // frame of `in` gave at most one output, so only these can overflow
    // `max`; the rest stay due and lead the next burst.)
    while (n < max && !rx_held_.empty() && rx_passed_ >= rx_held_.front().due_seq) {
      frames[n++] = rx_held_.pop_front().frame;
    }
  }
  if (n > 0) {
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; ++i) bytes += frames[i].len;
    counters_.rx_packets.Add(n);
    counters_.rx_bytes.Add(bytes);
  }
  return n;
}

size_t FaultNicQueue::SubmitTx(const TxFrame* frames, size_t n) {
  n = std::min(n, kMaxBurst);
  TxFrame out[kMaxBurst + kMaxHeld];
  int32_t src[kMaxBurst + kMaxHeld];  // caller index, or -1: held earlier
  size_t m = 0;
  int64_t now = kUnread;

  // 1. Frames held by earlier calls whose turn has come.
  size_t popped = 0;
  if (!tx_held_.empty()) {
    now = clock_();
    while (!tx_held_.empty() && Due(tx_held_.front(), tx_passed_, now)) {
      out[m] = tx_held_.pop_front().frame;
      src[m++] = -1;
      ++popped;
    }
  }
  // 2. This call's frames: drop, hold, or pass in order. The room `popped`
  // frees is kept for putting them back should the wrapped queue refuse.
  uint16_t drop_idx[kMaxBurst];
  size_t num_dropped = 0;
  for (size_t i = 0; i < n; ++i) {
    if (tx_rng_.Chance(tx_loss_)) {
      drop_idx[num_dropped++] = static_cast<uint16_t>(i);
      continue;
    }
    if (tx_held_.size() + popped < kMaxHeld && tx_rng_.Chance(tx_reorder_)) {
      if (now == kUnread) now = clock_();
      tx_held_.push_back({frames[i], tx_passed_ + depth_, now + hold_ns_, static_cast<int32_t>(i)});
      continue;
    }
    out[m] = frames[i];
    src[m++] = static_cast<int32_t>(i);
    ++tx_passed_;
  }
  // 3. Earlier held frames these overtook. This call's own held frames wait
  // for a later call, so that what the wrapped queue accepts is always the
  // caller's prefix plus held frames.
  while (!tx_held_.empty() && tx_held_.front().tag < 0 &&
         tx_passed_ >= tx_held_.front().due_seq) {
    out[m] = tx_held_.pop_front().frame;
    src[m++] = -1;
  }

  size_t k = m > 0 ? inner_->SubmitTx(out, m) : 0;
  size_t accepted = n;
  if (k < m) {
    // The wrapped ring is full: the first refused caller frame and all after
    // it go back to the caller (held or dropped ones among them included);
    // refused earlier-held frames are held again, due at once, in order.
    for (size_t x = k; x < m; ++x) {
      if (src[x] >= 0) {
        accepted = static_cast<size_t>(src[x]);
        break;
      }
    }
    while (!tx_held_.empty() && tx_held_.back().tag >= static_cast<int32_t>(accepted)) {
      tx_held_.pop_back();
    }
    for (size_t x = m; x-- > k;) {
      if (src[x] < 0) {
        tx_held_.push_front({out[x], 0, kUnread, -1});
      } else {
        --tx_passed_;
      }
    }
  }
  // This call's frames still held now belong to the queue (tag cleared).
  size_t held_now = 0;
  for (size_t i = tx_held_.size(); i-- > 0 && tx_held_.at(i).tag >= 0;) {
    tx_held_.at(i).tag = -1;
    ++held_now;
  }
  counters_.fault_tx_reorders.Add(held_now);

  TxFrame drop_frames[kMaxBurst];
  size_t freed = 0;
  for (size_t d = 0; d < num_dropped && drop_idx[d] < accepted; ++d) {
    drop_frames[freed++] = frames[drop_idx[d]];
  }
  if (freed > 0) {
    inner_->FreeTx(drop_frames, freed);
    counters_.fault_tx_drops.Add(freed);
  }
  if (accepted > freed) {
    uint64_t bytes = 0;
    for (size_t i = 0; i < accepted; ++i) bytes += frames[i].len;
    for (size_t d = 0; d < freed; ++d) bytes -= drop_frames[d].len;
    counters_.tx_packets.Add(accepted - freed);
    counters_.tx_bytes.Add(bytes);
  }
  return accepted;
}

void FaultNicQueue::ReleaseTxHeld(bool all) {
  if (tx_held_.empty()) return;
  const int64_t now = all ? kUnread : clock_();
  TxFrame out[kMaxHeld];
  size_t m = 0;
  while (!tx_held_.empty() && (all || Due(tx_held_.front(), tx_passed_, now))) {
    out[m++] = tx_held_.pop_front().frame;
  }
  if (m == 0) return;
  size_t k = inner_->SubmitTx(out, m);
  for (size_t x = m; x-- > k;) tx_held_.push_front({out[x], 0, kUnread, -1});
}

size_t FaultNicQueue::ReclaimTx() {
  ReleaseTxHeld(/*all=*/false);
  return inner_->ReclaimTx();
}

bool FaultNicQueue::RxPending() const {
  if (inner_->RxPending()) return true;
  if (rx_held_.empty()) return false;
  return rx_flush_ || Due(rx_held_.front(), rx_passed_, clock_());
}

bool FaultNicQueue::ArmWakeup() {
  bool busy = false;
  if (!rx_held_.empty()) {
    // The owner is about to sleep: nothing may stay held across the sleep.
    rx_flush_ = true;
    busy = true;
  }
  ReleaseTxHeld(/*all=*/true);
  if (!tx_held_.empty()) busy = true;  // the wrapped TX ring is full
  if (busy) return false;
  return inner_->ArmWakeup();
}

QueueStats FaultNicQueue::Stats() const {
  QueueStats stats = inner_->Stats();
  stats.rx_packets = counters_.rx_packets.Get();
  stats.rx_bytes = counters_.rx_bytes.Get();
  stats.tx_packets = counters_.tx_packets.Get();
  stats.tx_bytes = counters_.tx_bytes.Get();
  stats.fault_rx_drops = counters_.fault_rx_drops.Get();
  stats.fault_tx_drops = counters_.fault_tx_drops.Get();
  stats.fault_rx_reorders = counters_.fault_rx_reorders.Get();
  stats.fault_tx_reorders = counters_.fault_tx_reorders.Get();
  return stats;
}

FaultNicDriver::FaultNicDriver(std::unique_ptr<NicDriver> inner, const FaultSpec& spec,
                               FaultClock clock)
    : inner_(std::move(inner)) {
  for (size_t i = 0; i < inner_->num_queues(); ++i) {
    queues_.push_back(std::make_unique<FaultNicQueue>(inner_->queue(i), spec, clock));
  }
}

}  // namespace offload::nic
