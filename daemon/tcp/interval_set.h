// SeqIntervalSet: a bounded, sorted set of disjoint half-open TCP sequence
// ranges [start, end). Used for out-of-order data held by the receiver
// (reassembly, RFC 9293 3.10.7.4 "segment text") and for SACKed ranges held by
// the sender (RFC 2018, RFC 6675 scoreboard).
//
// All ranges must lie within 2^31 of each other so that wrap-safe comparison
// orders them. Capacity is fixed; Add() refuses a range that would need a new
// slot when full, so memory is bounded.
#ifndef OFFLOAD_DAEMON_TCP_INTERVAL_SET_H_
#define OFFLOAD_DAEMON_TCP_INTERVAL_SET_H_

#include <cstddef>
#include <cstdint>

#include "daemon/tcp/seq.h"

namespace offload::tcp {

template <size_t N>
class SeqIntervalSet {
 public:
  struct Range {
    uint32_t start;
    uint32_t end;
  };

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  const Range& operator[](size_t i) const { return r_[i]; }
  void Clear() { n_ = 0; }

  // Adds [start, end), merging with overlapping or adjacent ranges. Returns
  // false (set unchanged) if the range is empty/inverted or the set is full
  // and the range would need a new slot.
  bool Add(uint32_t start, uint32_t end) {
    if (!SeqLt(start, end)) return false;
    size_t i = 0;
    while (i < n_ && SeqLt(r_[i].end, start)) ++i;  // ranges entirely before
    size_t j = i;
    while (j < n_ && SeqLeq(r_[j].start, end)) ++j;  // ranges touching
    if (i == j) {
      if (n_ == N) return false;
      for (size_t k = n_; k > i; --k) r_[k] = r_[k - 1];
      r_[i] = Range{start, end};
      ++n_;
      return true;
    }
    uint32_t s = SeqMin(start, r_[i].start);
    uint32_t e = SeqMax(end, r_[j - 1].end);
    r_[i] = Range{s, e};
    size_t removed = j - i - 1;
    for (size_t k = i + 1; k + removed < n_; ++k) r_[k] = r_[k + removed];
    n_ -= removed;
    return true;
  }

  // Removes everything below `seq` (trimming a range that straddles it).
  void RemoveBelow(uint32_t seq) {
    size_t k = 0;
    while (k < n_ && SeqLeq(r_[k].end, seq)) ++k;
    if (k > 0) {
      for (size_t i = k; i < n_; ++i) r_[i - k] = r_[i];
      n_ -= k;
    }
    if (n_ > 0 && SeqLt(r_[0].start, seq)) r_[0].start = seq;
  }

  // If the first range starts at or before `*end`, removes it, extends
  // `*end` to its end (if larger) and returns true. Call until false to
  // advance RCV.NXT over every range the in-order data reached (reassembly).
  bool PopContiguous(uint32_t* end) {
    if (n_ == 0 || SeqGt(r_[0].start, *end)) return false;
    *end = SeqMax(r_[0].end, *end);
    for (size_t i = 1; i < n_; ++i) r_[i - 1] = r_[i];
    --n_;
    return true;
  }

  // Returns whether `seq` is inside a range.
  bool Contains(uint32_t seq) const {
    for (size_t i = 0; i < n_; ++i) {
      if (SeqInRange(seq, r_[i].start, r_[i].end)) return true;
    }
    return false;
  }

  // Returns the index of the range containing `seq`, or -1.
  int Find(uint32_t seq) const {
    for (size_t i = 0; i < n_; ++i) {
      if (SeqInRange(seq, r_[i].start, r_[i].end)) return static_cast<int>(i);
    }
    return -1;
  }

  // Returns the number of bytes of [a, b) covered by ranges.
  uint32_t CoveredIn(uint32_t a, uint32_t b) const {
    uint32_t total = 0;
    for (size_t i = 0; i < n_; ++i) {
      uint32_t s = SeqMax(a, r_[i].start);
      uint32_t e = SeqMin(b, r_[i].end);
      if (SeqLt(s, e)) total += e - s;
    }
    return total;
  }

  uint32_t TotalBytes() const {
    uint32_t total = 0;
    for (size_t i = 0; i < n_; ++i) total += r_[i].end - r_[i].start;
    return total;
  }

 private:
  Range r_[N] = {};
  size_t n_ = 0;
};

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_INTERVAL_SET_H_
