// Pipe records: reset at allocation and the close of one end (pipe.h).

#include "shm/pipe.h"

#include <cstring>

namespace offload {
namespace shm {

namespace {

void ResetWaitLine(RingWaitLine* w) {
  w->armed.store(0, std::memory_order_relaxed);
  w->sleepers.store(0, std::memory_order_relaxed);
  // wake_seq keeps counting: a sleeper of the slot's previous life (there
  // is none once both ends closed) could never mistake a new value.
  for (auto& e : w->waiters) e.store(0, std::memory_order_relaxed);
  w->waiter_overflow.store(0, std::memory_order_relaxed);
}

void ResetIndexes(RingIndexes* d) {
  d->tail.store(0, std::memory_order_relaxed);
  d->shut.store(0, std::memory_order_relaxed);
  d->writer_lazy.store(0, std::memory_order_relaxed);
  d->head.store(0, std::memory_order_relaxed);
  d->reader_closed.store(kReaderOpen, std::memory_order_relaxed);
  InitEndLock(&d->producer_lock);
  InitEndLock(&d->consumer_lock);
  ResetWaitLine(&d->reader_wait);
  ResetWaitLine(&d->writer_wait);
}

}  // namespace

void ResetRecord(PipeRecord* r, uint32_t listener_id, uint32_t engine_end) {
  r->ctl.closed.store(0, std::memory_order_relaxed);
  r->ctl.connect_status.store(0, std::memory_order_relaxed);
  r->ctl.listener_id = listener_id;
  r->ctl.engine_end = engine_end;
  for (EndState& e : r->end) {
    std::memset(&e.local, 0, sizeof(e.local));
    e.flags.store(0, std::memory_order_relaxed);
    e.so_error.store(0, std::memory_order_relaxed);
    e.rcvtimeo_ms.store(-1, std::memory_order_relaxed);
    e.sndtimeo_ms.store(-1, std::memory_order_relaxed);
    e.inode = 0;
  }
  ResetIndexes(&r->dir[0]);
  ResetIndexes(&r->dir[1]);
  r->req.more_tail.store(0, std::memory_order_relaxed);
  r->req.opts_tail.store(0, std::memory_order_relaxed);
  r->req.opts_seq.store(0, std::memory_order_relaxed);
  for (auto& w : r->req.opts) w.store(0, std::memory_order_relaxed);
  r->req.query.store(0, std::memory_order_relaxed);
  r->req.nodelay_pushes.store(0, std::memory_order_relaxed);
  r->req.eor_count.store(0, std::memory_order_relaxed);
  for (auto& w : r->eor_ends) w.store(0, std::memory_order_relaxed);
  r->ans.answered.store(0, std::memory_order_relaxed);
  r->ans.seq.store(0, std::memory_order_relaxed);
  r->ans.close_error.store(0, std::memory_order_relaxed);
  r->ans.final_answer.store(0, std::memory_order_relaxed);
  for (auto& w : r->ans.values) w.store(0, std::memory_order_relaxed);
  for (auto& w : r->ans.info) w.store(0, std::memory_order_relaxed);
}

CloseWakeups CloseEnd(PipeRecord* r, int e) {
  CloseWakeups w;
  const uint32_t bit = 1u << e;
  // Acquire: a repeat (the daemon after a process died right after its own
  // close) sees the first closer's stores and does nothing.
  if (r->ctl.closed.load(std::memory_order_acquire) & bit) return w;
  RingIndexes& out = r->dir[e];
  RingIndexes& in = r->dir[1 - e];
  // Unread data in what this end receives, or SO_LINGER {1, 0}, makes the
  // close an abort (RFC 2525 2.17, as Linux: RST); else FIN after the
  // queued data. Acquire: pairs with the producer's tail store-release.
  const bool unread =
      in.tail.load(std::memory_order_acquire) != in.head.load(std::memory_order_acquire);
  const bool abort = unread || (r->end[e].flags.load(std::memory_order_acquire) & kEndLingerAbort);
  // Pairs with the peer's load-acquire of shut once its ring is empty.
  if (abort) {
    out.shut.store(kShutRst, std::memory_order_release);
  } else if (out.shut.load(std::memory_order_relaxed) == 0) {
    out.shut.store(kShutFin, std::memory_order_release);
  }
  // Pairs with the peer producer's load-acquire before each send.
  in.reader_closed.store(unread ? kReaderClosedUnread : kReaderClosed, std::memory_order_release);
  // StoreLoad: both stores before the arm loads (the peer arms, fences and
  // re-checks shut / reader_closed before sleeping).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  w.peer_readers = TakeArmed(&out.reader_wait);
  w.peer_writers = TakeArmed(&in.writer_wait);
  // Last: the slot may be freed (and reused) once both bits are set.
  const uint32_t prev = r->ctl.closed.fetch_or(bit, std::memory_order_acq_rel);
  w.free_slot = (prev & bit) == 0 && (prev | bit) == 3u;
  return w;
}

}  // namespace shm
}  // namespace offload
