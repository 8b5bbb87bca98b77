// Stack <-> engine adapter (see header).

#include "daemon/engine/stack_processor.h"

#include <algorithm>

namespace offload::engine {

void StackProcessor::OnFrames(size_t, const nic::RxFrame* frames, size_t n,
                              TimeNs now, TxBatch&) {
  constexpr size_t kChunk = 64;
  stack::RxFrame in[kChunk];
  for (size_t done = 0; done < n;) {
    size_t m = std::min(kChunk, n - done);
    for (size_t i = 0; i < m; ++i) {
      in[i].data = frames[done + i].data;
      in[i].len = frames[done + i].len;
    }
    stack_->ProcessRx(in, m, static_cast<uint64_t>(now));
    done += m;
  }
}

size_t StackProcessor::DeliverEvents() {
  if (sink_ == nullptr) return 0;
  constexpr size_t kBatch = 64;
  stack::FlowEvent events[kBatch];
  size_t total = 0;
  // Bounded: a sink that keeps raising events cannot starve the loop.
  for (int round = 0; round < 16; ++round) {
    size_t n = stack_->PollEvents(events, kBatch);
    if (n == 0) break;
    sink_->OnFlowEvents(events, n);
    total += n;
  }
  sink_->OnPoll();
  return total;
}

size_t StackProcessor::PollTx(TxBatch* const* tx, size_t num_queues,
                              TimeNs now) {
  // Application ring activity first, so data written since the last
  // iteration leaves in this one; then the events raised by this
  // iteration's frames, timers, commands and application calls.
  size_t events = sink_ != nullptr ? sink_->PollApplications() : 0;
  events += DeliverEvents();
  if (tx_queue_ >= num_queues) return events;
  TxBatch& batch = *tx[tx_queue_];
  size_t sent = events;
  while (stack_->HasPendingTx()) {
    nic::TxFrame* f = batch.Alloc();
    if (f == nullptr) break;  // driver out of buffers: retry next loop
    stack::TxFrame out;
    out.data = f->data;
    out.capacity = f->capacity;
    if (stack_->PollTx(&out, 1, static_cast<uint64_t>(now)) == 0) break;
    f->len = out.len;
    batch.Commit();
    ++sent;
  }
  return sent;
}

void StackProcessor::OnTimers(TimeNs now) {
  stack_->OnTimer(static_cast<uint64_t>(now));
}

TimeNs StackProcessor::NextTimerDeadline() const {
  uint64_t d = stack_->NextTimerDeadline();
  if (d >= static_cast<uint64_t>(kNoDeadline)) return kNoDeadline;
  return static_cast<TimeNs>(d);
}

}  // namespace offload::engine
