// Per-segment transmit records of the data in flight, for RFC 8985 (RACK)
// time-based loss detection: which segment was sent (or last retransmitted)
// when, whether the peer SACKed it, and whether it is believed lost.
//
// Records cover [SND.UNA, SND.MAX) in sequence order, one per transmitted
// segment. A retransmission re-stamps the records it covers (splitting at
// its edges if it does not line up with them). The log is bounded: past
// kMaxRecords, new data is merged into the last record, which keeps the
// newest send time (a merged record is detected lost no earlier than its
// newest byte would be: later, never spuriously).
//
// Not thread-safe: owned by the engine thread of its TCB.
#ifndef OFFLOAD_DAEMON_TCP_SENT_LOG_H_
#define OFFLOAD_DAEMON_TCP_SENT_LOG_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "daemon/tcp/seq.h"

namespace offload::tcp {

struct SentSeg {
  uint32_t start = 0;
  uint32_t end = 0;
  uint64_t xmit_ns = 0;   // last (re)transmission
  bool retrans = false;   // retransmitted since it was last marked lost
  bool lost = false;      // marked lost and not retransmitted since
  bool sacked = false;    // wholly covered by a SACK block
  bool ever_retrans = false;  // retransmitted at least once (not an original)
};

class SentLog {
 public:
  static constexpr size_t kMaxRecords = 1024;

  size_t size() const { return recs_.size() - head_; }
  bool empty() const { return size() == 0; }
  SentSeg& operator[](size_t i) { return recs_[head_ + i]; }
  const SentSeg& operator[](size_t i) const { return recs_[head_ + i]; }

  void Clear() {
    recs_.clear();
    head_ = 0;
  }

  // A transmission of [start, end) at `now`. `start` is at most the end of
  // the last record; bytes past it are new data.
  void OnSend(uint32_t start, uint32_t end, uint64_t now) {
    if (!SeqLt(start, end)) return;
    const uint32_t tail = empty() ? start : recs_.back().end;
    if (SeqLt(start, tail)) {
      const uint32_t rend = SeqMin(end, tail);
      Restamp(start, rend, now);
      start = rend;
      if (!SeqLt(start, end)) return;
    }
    if (!empty() && SeqGt(start, tail)) Clear();  // a gap: cannot happen; restart
    if (size() >= kMaxRecords) {
      SentSeg& last = recs_.back();
      last.end = end;
      last.xmit_ns = now;
      return;
    }
    SentSeg s;
    s.start = start;
    s.end = end;
    s.xmit_ns = now;
    recs_.push_back(s);
  }

  // Cumulative ACK up to `una`: calls fn(const SentSeg&) for each record it
  // completes that was not already SACKed, then drops them.
  template <typename Fn>
  void AckTo(uint32_t una, Fn fn) {
    while (!empty() && SeqLeq(recs_[head_].end, una)) {
      if (!recs_[head_].sacked) fn(recs_[head_]);
      ++head_;
    }
    if (!empty() && SeqLt(recs_[head_].start, una)) recs_[head_].start = una;
    if (head_ > 64 && head_ * 2 > recs_.size()) {
      recs_.erase(recs_.begin(), recs_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    if (empty()) Clear();
  }

  // A SACK block [start, end): marks the records wholly inside it SACKed and
  // calls fn(const SentSeg&) for each newly SACKed one.
  template <typename Fn>
  void Sack(uint32_t start, uint32_t end, Fn fn) {
    for (size_t i = LowerBound(start); i < size(); ++i) {
      SentSeg& r = (*this)[i];
      if (SeqGt(r.end, end)) break;
      if (SeqLt(r.start, start) || r.sacked) continue;
      r.sacked = true;
      r.lost = false;
      fn(r);
    }
  }

  // Index of the first record whose end is above `seq` (size() if none).
  size_t LowerBound(uint32_t seq) const {
    size_t lo = 0, hi = size();
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (SeqLeq((*this)[mid].end, seq)) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

 private:
  // Ensures a record boundary at `seq` (inside the log).
  void SplitAt(uint32_t seq) {
    size_t i = LowerBound(seq);
    if (i >= size()) return;
    SentSeg& r = (*this)[i];
    if (!SeqGt(seq, r.start)) return;
    SentSeg right = r;
    right.start = seq;
    r.end = seq;
    recs_.insert(recs_.begin() + static_cast<std::ptrdiff_t>(head_ + i + 1), right);
  }

  void Restamp(uint32_t start, uint32_t end, uint64_t now) {
    if (!empty() && SeqLt(start, recs_[head_].start)) start = recs_[head_].start;
    if (!SeqLt(start, end)) return;
    SplitAt(start);
    SplitAt(end);
    for (size_t i = LowerBound(start); i < size(); ++i) {
      SentSeg& r = (*this)[i];
      if (!SeqLt(r.start, end)) break;
      r.xmit_ns = now;
      r.retrans = true;
      r.ever_retrans = true;
      r.lost = false;
    }
  }

  std::vector<SentSeg> recs_;
  size_t head_ = 0;  // records before head_ are acknowledged
};

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_SENT_LOG_H_
