// Hashed timing wheel; see timer_wheel.h.
#include "daemon/timer/timer_wheel.h"

#include <algorithm>

namespace offload::timer {

TimerWheel::TimerWheel(uint64_t tick_ns, size_t num_slots, uint64_t start_ns)
    : tick_ns_(tick_ns == 0 ? 1 : tick_ns) {
  size_t n = 1;
  while (n < num_slots) n <<= 1;
  slots_.resize(n);
  mask_ = n - 1;
  for (TimerNode& s : slots_) s.prev = s.next = &s;
  expired_.prev = expired_.next = &expired_;
  cur_tick_ = start_ns / tick_ns_;
}

TimerWheel::~TimerWheel() {
  // Leave owners' nodes in a consistent "unscheduled" state.
  for (TimerNode& s : slots_) {
    while (s.next != &s) Unlink(s.next);
  }
  while (expired_.next != &expired_) Unlink(expired_.next);
}

void TimerWheel::LinkTail(TimerNode* head, TimerNode* node) {
  node->prev = head->prev;
  node->next = head;
  head->prev->next = node;
  head->prev = node;
}

void TimerWheel::Unlink(TimerNode* node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = nullptr;
}

void TimerWheel::Schedule(TimerNode* node, uint64_t expiry_ns) {
  if (node->scheduled()) {
    Removed(node);
    Unlink(node);
    --count_;
  }
  node->expiry_ns = expiry_ns;
  if (next_valid_ && expiry_ns < next_expiry_) next_expiry_ = expiry_ns;
  uint64_t tick = std::max<uint64_t>(expiry_ns / tick_ns_, cur_tick_);
  LinkTail(&slots_[tick & mask_], node);
  ++count_;
}

void TimerWheel::Cancel(TimerNode* node) {
  if (!node->scheduled()) return;
  Removed(node);
  Unlink(node);
  --count_;
}

void TimerWheel::CollectDue(size_t s, uint64_t now_ns) {
  TimerNode* head = &slots_[s];
  TimerNode* n = head->next;
  while (n != head) {
    TimerNode* next = n->next;
    if (n->expiry_ns <= now_ns) {
      Unlink(n);
      LinkTail(&expired_, n);
    }
    n = next;
  }
}

uint64_t TimerWheel::NextExpiry() const {
  if (!next_valid_) {
    next_expiry_ = ComputeNextExpiry();
    next_valid_ = true;
  }
  return next_expiry_;
}

uint64_t TimerWheel::ComputeNextExpiry() const {
  if (count_ == 0) return kNever;
  uint64_t best = kNever;
  if (expired_.next != &expired_) {
    for (const TimerNode* n = expired_.next; n != &expired_; n = n->next) {
      best = std::min(best, n->expiry_ns);
    }
  }
  // Walk one revolution from the current tick; the first slot holding a timer
  // of its own round has the earliest such timer.
  for (uint64_t d = 0; d < slots_.size(); ++d) {
    uint64_t tick = cur_tick_ + d;
    const TimerNode* head = &slots_[tick & mask_];
    bool found = false;
    for (const TimerNode* n = head->next; n != head; n = n->next) {
      uint64_t t = std::max<uint64_t>(n->expiry_ns / tick_ns_, cur_tick_);
      if (t == tick) {
        best = std::min(best, n->expiry_ns);
        found = true;
      }
    }
    if (found) return best;
  }
  // Only timers beyond one revolution (or overdue): take the minimum.
  for (const TimerNode& s : slots_) {
    for (const TimerNode* n = s.next; n != &s; n = n->next) {
      best = std::min(best, n->expiry_ns);
    }
  }
  return best;
}

}  // namespace offload::timer
