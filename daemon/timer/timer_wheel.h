// TimerWheel: a hashed timing wheel (Varghese & Lauck, "scheme 6") driven by
// an injected clock. Timers are intrusive TimerNode members of their owners,
// so scheduling never allocates.
//
// Time is whatever uint64_t nanosecond clock the caller passes to Advance();
// the wheel never reads a clock itself. A timer fires in the first Advance()
// whose `now_ns` is >= its expiry (never early). Expiries more than one
// revolution ahead stay in their slot and are skipped until due.
//
// Thread safety: none; owned by one engine thread.
#ifndef OFFLOAD_DAEMON_TIMER_TIMER_WHEEL_H_
#define OFFLOAD_DAEMON_TIMER_TIMER_WHEEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace offload::timer {

// Embed in the object that owns the timer. Must not be destroyed or moved
// while scheduled.
struct TimerNode {
  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  uint64_t expiry_ns = 0;
  void* owner = nullptr;  // for the owner's use (e.g. back-pointer)

  bool scheduled() const { return next != nullptr; }
};

class TimerWheel {
 public:
  static constexpr uint64_t kNever = ~0ull;

  // `tick_ns` is the resolution; `num_slots` is rounded up to a power of two.
  TimerWheel(uint64_t tick_ns, size_t num_slots, uint64_t start_ns);
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Schedules (or reschedules) `node` to fire at `expiry_ns`. An expiry in
  // the past fires at the next Advance().
  void Schedule(TimerNode* node, uint64_t expiry_ns);

  // Unschedules `node`; no-op if it is not scheduled.
  void Cancel(TimerNode* node);

  // Fires every timer with expiry <= now_ns, calling fn(TimerNode*) after the
  // node is unscheduled. fn may Schedule/Cancel any timer; timers it schedules
  // at or before now_ns fire on the next Advance(). Returns the number fired.
  template <typename Fn>
  size_t Advance(uint64_t now_ns, Fn fn);

  // Returns the earliest expiry among scheduled timers, or kNever. The value
  // is cached: an engine asks on every loop iteration, and the walk (O(slots)
  // in the worst case) runs only after the earliest timer was cancelled,
  // rescheduled or fired.
  uint64_t NextExpiry() const;

  size_t size() const { return count_; }

 private:
  static void LinkTail(TimerNode* head, TimerNode* node);
  static void Unlink(TimerNode* node);
  // Moves due nodes of slot `s` to `expired_`.
  void CollectDue(size_t s, uint64_t now_ns);

  // Walks the wheel for NextExpiry().
  uint64_t ComputeNextExpiry() const;
  // A removed node may have been the earliest.
  void Removed(const TimerNode* node) {
    if (node->expiry_ns == next_expiry_) next_valid_ = false;
  }

  uint64_t tick_ns_;
  size_t mask_;
  uint64_t cur_tick_;  // every slot for ticks < cur_tick_ has been collected
  size_t count_ = 0;
  std::vector<TimerNode> slots_;  // circular list sentinels
  TimerNode expired_;             // sentinel of the list being fired
  // Cache of NextExpiry(): exact while next_valid_.
  mutable uint64_t next_expiry_ = kNever;
  mutable bool next_valid_ = true;
};

template <typename Fn>
size_t TimerWheel::Advance(uint64_t now_ns, Fn fn) {
  uint64_t now_tick = now_ns / tick_ns_;
  if (now_tick + 1 < cur_tick_) return 0;  // clock went backwards: nothing due
  if (now_tick - cur_tick_ + 1 >= slots_.size()) {
    for (size_t s = 0; s < slots_.size(); ++s) CollectDue(s, now_ns);
  } else {
    for (uint64_t t = cur_tick_; t <= now_tick; ++t) CollectDue(t & mask_, now_ns);
  }
  // The current tick's slot may still hold later timers of this tick, so it
  // is revisited next time: cur_tick_ = now_tick, not now_tick + 1.
  cur_tick_ = now_tick;
  size_t fired = 0;
  while (expired_.next != &expired_) {
    TimerNode* n = expired_.next;
    Removed(n);
    Unlink(n);
    --count_;
    ++fired;
    fn(n);
  }
  return fired;
}

}  // namespace offload::timer

#endif  // OFFLOAD_DAEMON_TIMER_TIMER_WHEEL_H_
