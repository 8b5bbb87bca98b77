// EngineFlows' half of the application-pipe protocol (app_pipe.h,
// shm/pipe.h, shm/ring.h): what the application did on its rings goes to
// the stack (PollPipe: data, credit, shutdown, close, options, queries,
// record ends), and stack events become ring state and wake-ups
// (PublishToPipe, Wake). Engine thread only.

#include <errno.h>

#include <cstring>

#include "daemon/wire/engine_flows.h"
#include "shm/fence.h"
#include "shm/futex.h"
#include "spdlog/spdlog.h"

namespace offload::wire {

bool EngineFlows::AppCloseCommitted(const AppPipe& p) {
  // Acquire: pairs with CloseEnd's store-release of reader_closed (after
  // its shut, so the abort decision it made is visible with it).
  return p.from_wire().reader_closed.load(std::memory_order_acquire) != shm::kReaderOpen ||
         p.to_wire().shut.load(std::memory_order_acquire) == shm::kShutRst || p.AppClosed();
}

size_t EngineFlows::PollPipe(Entry& e, bool check_closed) {
  if (check_closed && AppCloseCommitted(*e.pipe)) {
    // Closed by the caller after the scan (Close() erases entries). Before
    // the TX shut is read: a close's shut is not a shutdown().
    app_closed_.push_back(&e);
    return 1;
  }
  size_t work = 0;
  PublishedOptions opts;
  const bool opts_new = ReadOptions(e, &opts);
  bool opts_after_data = false;
  if (!e.connect_pending) {
    shm::RingIndexes& tw = e.pipe->to_wire();
    // Acquire: pairs with the application's store-release of shut (after
    // its last tail) and of tail (after its data); shut first, so a seen
    // shutdown comes with every byte before it.
    const uint32_t shut = e.tx_shut_done ? 0 : tw.shut.load(std::memory_order_acquire);
    const uint64_t tail = tw.tail.load(std::memory_order_acquire);
    // Options published after every byte we are about to hand over apply
    // after them; otherwise (bytes written after the change) first.
    opts_after_data = opts_new && tail != e.tx_tail_seen && opts.at_tail >= tail;
    if (opts_new && !opts_after_data) {
      ApplyOptions(e, opts);
      ++work;
    }
    if (tail != e.tx_tail_seen) {
      e.tx_tail_seen = tail;
      // Stored before the tail we loaded (acquire): record ends and MSG_MORE
      // of the sends it covers.
      shm::EngineRequests& rq = e.pipe->record()->req;
      const uint32_t eor = rq.eor_count.load(std::memory_order_acquire);
      if (eor != e.eor_seen) MarkRecordEnds(e, eor);
      const bool more = rq.more_tail.load(std::memory_order_relaxed) == tail;
      stack_->TcpSend(e.id, more);  // validates the tail itself (tcp::TxRing)
      ++work;
    }
    if (shut != 0) {
      e.tx_shut_done = true;
      stack_->TcpShutdown(e.id, false, true);
      ++work;
    }
    // Pairs with the application's store-release of head after reading.
    const uint64_t head = e.pipe->from_wire().head.load(std::memory_order_acquire);
    if (head != e.rx_head_seen) {
      e.rx_head_seen = head;
      stack_->TcpReceiveCredit(e.id);
      ++work;
    }
  } else if (opts_new) {
    ApplyOptions(e, opts);  // on the SYN-SENT connection
    ++work;
  }
  if (opts_after_data) {
    ApplyOptions(e, opts);
    ++work;
  }
  // A query last: its answer covers what the application did before it.
  const uint32_t q = e.pipe->record()->req.query.load(std::memory_order_acquire);
  if (q != e.query_seen) {
    e.query_seen = q;
    Answer(e, q, false);
    ++work;
  }
  return work;
}

bool EngineFlows::RequestsPending(const Entry& e) {
  const shm::EngineRequests& rq = e.pipe->record()->req;
  // An odd sequence is a holder halfway through its write: it rings us
  // when it is done.
  const uint32_t os = rq.opts_seq.load(std::memory_order_seq_cst);
  return ((os & 1) == 0 && os != e.opts_seq_seen) ||
         rq.query.load(std::memory_order_seq_cst) != e.query_seen;
}

bool EngineFlows::ReadOptions(Entry& e, PublishedOptions* o) {
  shm::EngineRequests& rq = e.pipe->record()->req;
  // Seqlock read (shm/pipe.h EngineRequests): the words between two equal
  // even loads of the sequence; pairs with the holder's store-release.
  const uint32_t os = rq.opts_seq.load(std::memory_order_acquire);
  if (os == e.opts_seq_seen || (os & 1) != 0) return false;
  uint32_t w[shm::kSockOptWords];
  for (uint32_t i = 0; i < shm::kSockOptWords; ++i) w[i] = rq.opts[i].load(std::memory_order_relaxed);
  o->at_tail = rq.opts_tail.load(std::memory_order_relaxed);
  o->nodelay_pushes = rq.nodelay_pushes.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (rq.opts_seq.load(std::memory_order_relaxed) != os) return false;  // next poll
  e.opts_seq_seen = os;
  std::memcpy(&o->opts, w, sizeof(o->opts));
  return true;
}

void EngineFlows::ApplyOptions(Entry& e, const PublishedOptions& o) {
  // A NODELAY turned on or a CORK turned off pushes pending data now.
  if (const int err = stack_->TcpSetOptions(e.id, ToSocketOptions(o.opts)); err != 0) {
    spdlog::debug("wire: an application's socket options were refused: {}", strerror(err));
  }
  // TCP_NODELAY set again (already on, or under TCP_CORK): one push.
  if (o.nodelay_pushes != e.nodelay_pushes_seen) {
    e.nodelay_pushes_seen = o.nodelay_pushes;
    if (o.opts.flags & shm::kOptNodelay) stack_->TcpSetOption(e.id, tcp::TcpOpt::kNoDelay, 1);
  }
}

void EngineFlows::Answer(Entry& e, uint32_t q, bool final) {
  shm::EngineAnswers& a = e.pipe->record()->ans;
  tcp::SocketValues v;
  tcp::TcpInfo info;
  std::memset(&info, 0, sizeof(info));
  if (stack_->TcpGetSocketValues(e.id, &v) != 0 || stack_->TcpGetInfo(e.id, &info) != 0) return;
  static_assert(sizeof(info) <= shm::kTcpInfoBytes, "struct tcp_info fits the answer");
  uint64_t words[shm::kTcpInfoBytes / 8] = {};
  std::memcpy(words, &info, sizeof(info));
  // Seqlock write: odd, the values, even (readers retry across it).
  const uint32_t s = a.seq.load(std::memory_order_relaxed);
  a.seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  const uint32_t vals[shm::kNumValues] = {v.maxseg, v.sndbuf, v.rcvbuf, v.inq, v.outq, v.notsent};
  for (uint32_t i = 0; i < shm::kNumValues; ++i) a.values[i].store(vals[i], std::memory_order_relaxed);
  for (uint32_t i = 0; i < shm::kTcpInfoBytes / 8; ++i) {
    a.info[i].store(words[i], std::memory_order_relaxed);
  }
  a.seq.store(s + 2, std::memory_order_release);
  if (final) a.final_answer.store(1, std::memory_order_release);
  // Pairs with the querying thread's load-acquire (then its futex wait).
  const uint32_t prev = a.answered.exchange(q, std::memory_order_acq_rel);
  // Only a connection that was ever queried can have a thread waiting (a
  // close of one that never was costs no system call).
  if (prev != q || (final && q != 0)) shm::FutexWakeAll(&a.answered);
}

void EngineFlows::MarkRecordEnds(Entry& e, uint32_t count) {
  shm::PipeRecord* r = e.pipe->record();
  uint32_t from = e.eor_seen;
  if (count - from > shm::kMaxEorEnds) from = count - shm::kMaxEorEnds;  // the oldest are lost
  for (uint32_t i = from; i != count; ++i) {
    // Validated by the stack (an index outside the queued data is refused).
    stack_->TcpMarkRecordEnd(e.id, r->eor_ends[i % shm::kMaxEorEnds].load(std::memory_order_relaxed));
  }
  e.eor_seen = count;
}

void EngineFlows::Disarm() {
  for (Entry* e : pipes_) {
    if (!e->armed) continue;
    e->armed = false;
    shm::DisarmWait(&e->pipe->to_wire().reader_wait, shm::kArmDoorbell);
    if (e->armed_rx_credit) shm::DisarmWait(&e->pipe->from_wire().writer_wait, shm::kArmDoorbell);
  }
  udp_.CancelSleep();
  armed_ = false;
}

void EngineFlows::Wake(shm::RingWaitLine* w) {
  // StoreLoad: what the sleeper waits for (an index, shut, connect_status)
  // was stored before; pairs with its arm RMW + fence + re-check.
  shm::LightFence();
  const uint32_t bits = shm::TakeArmed(w);
  if (bits != 0) WakeWaitLine(w, bits, plane_->app_waker());
}

void EngineFlows::PublishToPipe(Entry& e, uint32_t events, int error) {
  AppPipe& p = *e.pipe;
  shm::RingIndexes& tw = p.to_wire();
  shm::RingIndexes& fw = p.from_wire();
  if (e.connect_pending) {
    if (events & tcp::kEventConnected) {
      e.connect_pending = false;
      e.tx_tail_seen = tw.tail.load(std::memory_order_acquire);
      e.rx_head_seen = fw.head.load(std::memory_order_acquire);
      // Pairs with the connector's load-acquire in its connect().
      p.record()->ctl.connect_status.store(0, std::memory_order_release);
      Wake(&fw.reader_wait);
      Wake(&tw.writer_wait);  // EPOLLOUT of a non-blocking connect
    } else if (events & (tcp::kEventError | tcp::kEventClosed)) {
      p.record()->ctl.connect_status.store(error != 0 ? error : ECONNREFUSED,
                                           std::memory_order_release);
      Wake(&fw.reader_wait);
      Wake(&tw.writer_wait);
      return;
    }
  }
  // Pairs with the application's load-acquire of shut once its ring is
  // empty (ByteRingConsumer), and of reader_closed before a send.
  bool readers = false, writers = false;
  if ((events & (tcp::kEventError | tcp::kEventClosed)) && error != 0) {
    // The errno the application's calls report (ETIMEDOUT after a user
    // timeout or keep-alive, ECONNRESET...); before the release stores.
    p.record()->ans.close_error.store(error, std::memory_order_relaxed);
    fw.shut.store(shm::kShutRst, std::memory_order_release);
    tw.reader_closed.store(shm::kReaderClosedUnread, std::memory_order_release);
    readers = writers = true;
  } else {
    if (events & tcp::kEventPeerFin) {
      fw.shut.store(shm::kShutFin, std::memory_order_release);
      readers = true;
    }
    if (events & tcp::kEventClosed) {
      tw.reader_closed.store(shm::kReaderClosed, std::memory_order_release);
      readers = writers = true;
    }
  }
  if (events & tcp::kEventReadable) readers = true;  // RX tail stored by the stack
  if (events & tcp::kEventWritable) writers = true;  // TX head stored by the stack
  if (readers) Wake(&fw.reader_wait);
  if (writers) Wake(&tw.writer_wait);
}

}  // namespace offload::wire
