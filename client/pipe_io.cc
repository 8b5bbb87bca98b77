// The stream semantics of a pipe end (RFC 9293 as seen through the socket
// API: FIN = end of stream, RST = ECONNRESET): send, receive, shutdown,
// readiness.
//
// Every sender of the socket (threads, processes) takes the producer lock
// of its TX ring, every receiver the consumer lock of its RX ring
// (shm/end_lock.h): a send is not interleaved with another unless it has
// to wait for room, as on Linux, and a receive returns bytes in order. The
// lock is released while waiting.
//
// The connect an engine completes and the loss of an engine are in
// pipe_connect.cc.

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>

#include <algorithm>

#include "client/attach.h"
#include "client/config.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"

namespace offload {
namespace client {

namespace {

// Sends in a row (no receive between) after which a producer goes lazy
// (ByteRingProducer::SetLazy).
constexpr uint32_t kLazyAfterSends = 16;
// Reads at least this large evict the lines they used up
// (ByteRingConsumer::EvictConsumed); small ones (request/response) do not.
constexpr size_t kEvictBytes = 1024;

size_t IovLen(const iovec* iov, int n) {
  size_t t = 0;
  for (int i = 0; i < n; ++i) t += iov[i].iov_len;
  return t;
}

// Copies `n` bytes of `iov` starting at byte `off` into the ring at
// uncommitted offset 0.
void GatherIn(shm::ByteRingProducer* p, const iovec* iov, int iovcnt, size_t off, size_t n) {
  size_t ring_off = 0;
  for (int i = 0; i < iovcnt && n > 0; ++i) {
    if (off >= iov[i].iov_len) {
      off -= iov[i].iov_len;
      continue;
    }
    const size_t k = std::min(iov[i].iov_len - off, n);
    p->CopyIn(ring_off, static_cast<const uint8_t*>(iov[i].iov_base) + off, k);
    ring_off += k;
    n -= k;
    off = 0;
  }
}

void ScatterOut(shm::ByteRingConsumer* c, const iovec* iov, int iovcnt, size_t off, size_t n) {
  size_t ring_off = 0;
  for (int i = 0; i < iovcnt && n > 0; ++i) {
    if (off >= iov[i].iov_len) {
      off -= iov[i].iov_len;
      continue;
    }
    const size_t k = std::min(iov[i].iov_len - off, n);
    c->CopyOut(ring_off, static_cast<uint8_t*>(iov[i].iov_base) + off, k);
    ring_off += k;
    n -= k;
    off = 0;
  }
}

int Timeout(const PipeEnd* p, bool rx) {
  return (rx ? p->me().rcvtimeo_ms : p->me().sndtimeo_ms).load(std::memory_order_relaxed);
}

bool Nonblock(const PipeEnd* p, int flags) {
  return (p->flags() & shm::kEndNonblock) || (flags & MSG_DONTWAIT);
}

// After a send: a run of kLazyAfterSends sends with no receive between
// makes the producer lazy; the first send after a receive ends it, so
// request/response keeps its fences and the peer's sleeps stay free of
// membarrier IPIs (fence.h). Only the biased sending thread goes lazy.
void NoteSend(PipeEnd* p) {
  const uint32_t epoch = p->rx_epoch.load(std::memory_order_relaxed);
  if (epoch != p->tx_seen_rx_epoch) {
    p->tx_seen_rx_epoch = epoch;
    p->tx_streak = 0;
    p->tx.SetLazy(false);
  }
  if (p->tx_streak < kLazyAfterSends && ++p->tx_streak == kLazyAfterSends) p->tx.SetLazy(true);
}

}  // namespace

size_t PipeReadable(Socket* s) { return s->pipe->rx.ReadableShared(); }


namespace {
// Everything PipeSend's fast path leaves: several buffers, a connect in
// flight, shared senders, no room, errors, waits.
__attribute__((noinline)) ssize_t PipeSendSlow(Socket* s, const iovec* iov, int iovcnt,
                                               int flags) {
  PipeEnd* p = s->pipe.get();
  const size_t total = IovLen(iov, iovcnt);
  if (p->connecting.load(std::memory_order_relaxed) && SettleConnect(s, Nonblock(p, flags)) != 0) {
    return -1;
  }
  // A send that fits the ring is atomic: other senders wait for it even
  // while it waits for room. A larger one lets others in between its
  // chunks, as Linux does whenever a sender waits for buffer space.
  const bool atomic = total <= p->tx.capacity();
  size_t sent = 0;
  const uint64_t token = CallerToken();
  shm::EndLockGuard lock(&p->tx.indexes()->producer_lock, token);
  bool biased = lock.mode() == shm::EndLockMode::kBiased;
  auto relock = [&] {
    lock.Relock(token);
    biased = lock.mode() == shm::EndLockMode::kBiased;
  };
  for (;;) {
    if (!lock.held()) relock();
    if (!biased) {
      p->tx.Resync();
      p->tx.SetLazy(false);  // only a lone sender may skip its fences
    }
    const uint32_t fl = p->flags();
    if (fl & shm::kEndShutWr) {
      errno = EPIPE;
      goto pipe_error;
    }
    if (const uint32_t rc = p->tx.ReaderClosed()) {
      // The peer closed its socket: Linux answers our data with RST, the
      // first send after it fails with ECONNRESET, later ones with EPIPE.
      if ((rc == shm::kReaderClosedUnread || p->rx.Shut() == shm::kShutRst) &&
          !(p->me().flags.fetch_or(shm::kEndRstReported, std::memory_order_acq_rel) &
            shm::kEndRstReported)) {
        errno = ResetErrno(p);
      } else {
        errno = EPIPE;
      }
      goto pipe_error;
    }
    if (total == 0) return 0;
    {
      const size_t room = p->tx.Writable(total - sent);
      if (room > 0) {
        const size_t n = std::min(room, total - sent);
        GatherIn(&p->tx, iov, iovcnt, sent, n);
        if (__builtin_expect((flags & (MSG_MORE | MSG_EOR)) != 0, 0)) {
          EngineSendMarks(p, n, sent + n == total, flags);  // engine pipes only
        }
        const uint32_t wake = p->tx.Commit(n);
        if (p->rx_streaming.load(std::memory_order_relaxed)) {
          p->rx_streaming.store(false, std::memory_order_relaxed);
        }
        if (biased) NoteSend(p);
        sent += n;
        Add(s->slot->tx_bytes, n);
        if (sent == total) {
          Add(s->slot->tx_msgs, 1);
          lock.Unlock();
        }
        if (wake != 0) WakeLine(&p->tx.indexes()->reader_wait, wake);
        if (sent == total) return static_cast<ssize_t>(sent);
        continue;
      }
    }
    // O_NONBLOCK from the flags read under the lock (one load a send).
    if ((fl & shm::kEndNonblock) || (flags & MSG_DONTWAIT)) {
      if (sent > 0) return static_cast<ssize_t>(sent);
      Add(s->slot->tx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    if (!atomic) lock.Unlock();
    {
      const int rc = WaitSocket(s, EPOLLOUT, Timeout(p, false));
      if (rc != 0) {
        if (sent > 0) return static_cast<ssize_t>(sent);
        errno = rc;
        return -1;
      }
    }
  }
pipe_error:
  lock.Unlock();
  if (sent > 0) return static_cast<ssize_t>(sent);
  Add(s->slot->errors, 1);
  if (errno == EPIPE && !(flags & MSG_NOSIGNAL)) raise(SIGPIPE);
  return -1;
}
}  // namespace

// The common send: one buffer, from the thread the producer lock is biased
// to, that fits the ring now. Same steps as PipeSendSlow's, without its
// loop, so that the whole of it stays in registers.
ssize_t PipeSend(Socket* s, const iovec* iov, int iovcnt, int flags) {
  PipeEnd* p = s->pipe.get();
  // MSG_MORE / MSG_EOR (marks for an engine) take the slow path.
  if (__builtin_expect(iovcnt == 1 && (flags & (MSG_MORE | MSG_EOR)) == 0, 1) &&
      !p->connecting.load(std::memory_order_relaxed)) {
    const size_t n = iov[0].iov_len;
    shm::EndLock* l = &p->tx.indexes()->producer_lock;
    if (n != 0 && shm::TryBiasedEndLock(l, CallerToken())) {
      if (!(p->flags() & shm::kEndShutWr) && p->tx.ReaderClosed() == 0 &&
          p->tx.Writable(n) >= n) {
        p->tx.CopyIn(0, iov[0].iov_base, n);
        const uint32_t wake = p->tx.Commit(n);
        if (p->rx_streaming.load(std::memory_order_relaxed)) {
          p->rx_streaming.store(false, std::memory_order_relaxed);
        }
        NoteSend(p);
        Add(s->slot->tx_bytes, n);
        Add(s->slot->tx_msgs, 1);
        shm::ReleaseEndLock(l, shm::EndLockMode::kBiased);
        if (wake != 0) WakeLine(&p->tx.indexes()->reader_wait, wake);
        return static_cast<ssize_t>(n);
      }
      shm::ReleaseEndLock(l, shm::EndLockMode::kBiased);
    }
  }
  return PipeSendSlow(s, iov, iovcnt, flags);
}

namespace {
// Temporal slip (FastForward, Giacomoni et al., PPoPP 2008). A reader that
// drains a stream as fast as it is written reads the lines the writer is
// filling, and every look at the tail takes a line away from the writer:
// its next store waits for the line, and every store behind it waits too
// (x86 commits stores in order). Across CPU complexes a transfer costs a
// quarter of a microsecond and the stream collapses to a few million
// messages a second. So a reader that finds only a little data, in a
// stream (PipeRecv decides), first lets the writer get OFFLOAD_RX_SLIP
// bytes ahead, looking at the tail as rarely as it can: after kSlipPollNs
// to measure the writer's rate, then when that rate says the bytes will be
// there. It takes only the bytes before the page the writer is filling
// (its hardware prefetcher would take the writer's next lines), and all of
// them if the tail did not move between two looks (the writer paused) or
// after kSlipMaxNs.
constexpr int64_t kSlipPollNs = 1000;
constexpr int64_t kSlipMinPollNs = 250;
constexpr int64_t kSlipMaxNs = 8000;
constexpr int64_t kSlipDenseNs = 1000;

size_t Slip(PipeEnd* p, size_t avail) {
  const size_t want = std::min<size_t>(static_cast<size_t>(Config().rx_slip), p->rx.capacity() / 4);
  if (want == 0) return avail;
  if (avail >= want) return p->rx.BelowProducerPage(avail);
  const int64_t start = NowNs();
  const size_t first = avail;
  int64_t next = start + kSlipPollNs;
  for (;;) {
    while (NowNs() < next) CpuRelax();  // no shared line touched here
    const size_t now_avail = p->rx.ReadableFresh();
    const int64_t now = NowNs();
    if (now_avail == avail) return now_avail;  // the writer paused: all of it
    if (now_avail >= want || now - start >= kSlipMaxNs) return p->rx.BelowProducerPage(now_avail);
    avail = now_avail;
    // Bytes per ns so far; the rest should take (want - avail) / rate.
    const double rate = static_cast<double>(avail - first) / static_cast<double>(now - start);
    const int64_t rest = static_cast<int64_t>(static_cast<double>(want - avail) / rate);
    next = now + std::clamp<int64_t>(rest, kSlipMinPollNs, kSlipMaxNs - (now - start));
  }
}
}  // namespace

namespace {
// Set while PipeRecv waits: readiness is one byte then, whatever
// SO_RCVLOWAT says (PipeEvents), since the receive loop itself collects
// its target.
thread_local bool t_recv_waiting = false;
}  // namespace

ssize_t PipeRecv(Socket* s, const iovec* iov, int iovcnt, int flags) {
  PipeEnd* p = s->pipe.get();
  const size_t total = IovLen(iov, iovcnt);
  const bool nonblock = Nonblock(p, flags);
  if (p->connecting.load(std::memory_order_relaxed) && SettleConnect(s, nonblock) != 0) {
    return -1;
  }
  const bool peek = flags & MSG_PEEK;
  const bool waitall = (flags & MSG_WAITALL) && !peek && !nonblock;
  size_t got = 0;
  if (total == 0) return 0;
  // What a blocking receive waits for (Linux's sock_rcvlowat): everything
  // with MSG_WAITALL, else SO_RCVLOWAT bytes (at most the buffer).
  const size_t target =
      waitall ? total
      : peek || nonblock
          ? 1
          : std::min(total, static_cast<size_t>(s->tcp->rcvlowat.load(std::memory_order_relaxed)));
  // Slip only a stream: data there on entry, or after a wait too short to
  // be a gap between messages (kSlipDenseNs); never a sparse feed.
  const bool stream = p->rx_streaming.load(std::memory_order_relaxed) && !peek && !waitall;
  bool may_slip = stream;
  // A receive ends a stream of sends (NoteSend).
  p->rx_epoch.store(p->rx_epoch.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  const uint64_t token = CallerToken();
  for (;;) {
    shm::EndLockGuard lock(&p->rx.indexes()->consumer_lock, token);
    if (lock.mode() != shm::EndLockMode::kBiased) p->rx.Resync();
    size_t avail = p->rx.Readable();
    // Never when the caller's buffer can be filled now (a length-prefixed
    // protocol reading its body), and never while other receivers share it.
    if (avail > 0 && may_slip && avail < total - got &&
        lock.mode() == shm::EndLockMode::kBiased) {
      avail = Slip(p, avail);
    }
    may_slip = false;
    if (avail > 0) {
      const size_t n = std::min(avail, total - got);
      // Receive-queue gauges (relaxed: statistics).
      s->slot->rx_queue_bytes.store(avail - (peek ? 0 : n), std::memory_order_relaxed);
      if (avail > s->slot->rx_queue_max.load(std::memory_order_relaxed)) {
        s->slot->rx_queue_max.store(avail, std::memory_order_relaxed);
      }
      ScatterOut(&p->rx, iov, iovcnt, got, n);
      uint32_t wake = 0;
      if (!peek) {
        if (n >= kEvictBytes) p->rx.EvictConsumed(n);
        wake = p->rx.Consume(n);
        Add(s->slot->rx_bytes, n);
        Add(s->slot->rx_msgs, 1);
      }
      got += n;
      lock.Unlock();
      if (wake != 0) WakeLine(&p->rx.indexes()->writer_wait, wake);
      if (!peek) p->rx_streaming.store(true, std::memory_order_relaxed);
      if (got >= target) return static_cast<ssize_t>(got);
      continue;
    }
    if (const uint32_t shut = p->rx.Shut()) {
      // shut is stored after the last tail update: re-check for data.
      if (p->rx.ReadableFresh() > 0) continue;
      if (shut == shm::kShutRst && got == 0 &&
          !(p->me().flags.fetch_or(shm::kEndRstReported, std::memory_order_acq_rel) &
            shm::kEndRstReported)) {
        // RFC 9293 3.10.7.4: reset -> ECONNRESET (or the engine's errno), once.
        Add(s->slot->errors, 1);
        errno = ResetErrno(p);
        return -1;
      }
      return static_cast<ssize_t>(got);  // end of stream
    }
    // After shutdown(SHUT_RD) Linux still returns what is queued (data that
    // arrives later is acknowledged and queued too: tcp_recvmsg checks
    // RCV_SHUTDOWN only with the queue empty), then 0 instead of waiting.
    if (p->flags() & shm::kEndShutRd) return static_cast<ssize_t>(got);
    lock.Unlock();
    if (nonblock) {
      if (got > 0) return static_cast<ssize_t>(got);
      Add(s->slot->rx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    const bool timed = stream && got == 0;
    const int64_t wait_start = timed ? NowNs() : 0;
    // Any byte ends this wait: the loop above counts toward the target.
    t_recv_waiting = true;
    const int rc = WaitSocket(s, EPOLLIN, Timeout(p, true));
    t_recv_waiting = false;
    if (rc != 0) {
      if (got > 0) return static_cast<ssize_t>(got);
      errno = rc;
      return -1;
    }
    may_slip = timed && NowNs() - wait_start < kSlipDenseNs;
  }
}

int PipeShutdown(Socket* s, int how) {
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
    errno = EINVAL;
    return -1;
  }
  PipeEnd* p = s->pipe.get();
  if (how != SHUT_WR) p->me().flags.fetch_or(shm::kEndShutRd, std::memory_order_acq_rel);
  if (how != SHUT_RD) {
    shm::EndLockGuard lock(&p->tx.indexes()->producer_lock, CallerToken());
    if (!(p->me().flags.fetch_or(shm::kEndShutWr, std::memory_order_acq_rel) & shm::kEndShutWr)) {
      const uint32_t wake = p->tx.Shut(shm::kShutFin);  // FIN after the queued data
      lock.Unlock();
      if (wake != 0) WakeLine(&p->tx.indexes()->reader_wait, wake);
    }
  }
  // Our own sleepers re-evaluate (a receiver of a SHUT_RD socket returns 0).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (const uint32_t wake = shm::TakeArmed(&p->rx.indexes()->reader_wait)) {
    WakeLine(&p->rx.indexes()->reader_wait, wake);
  }
  if (const uint32_t wake = shm::TakeArmed(&p->tx.indexes()->writer_wait)) {
    WakeLine(&p->tx.indexes()->writer_wait, wake);
  }
  return 0;
}

uint32_t PipeEvents(Socket* s, uint32_t want) {
  PipeEnd* p = s->pipe.get();
  if (p->connecting.load(std::memory_order_relaxed)) {
    const int r = ConnectProgress(s);
    if (r == EINPROGRESS) return 0;
    if (r != 0) return EPOLLOUT | EPOLLWRNORM | EPOLLERR | EPOLLHUP;
  }
  // Only the lines the caller asks about are read: an EPOLLIN-only watcher
  // touches the producer line of its rx ring and nothing else.
  const uint32_t fl = p->flags();
  const bool reported = fl & shm::kEndRstReported;
  uint32_t ev = p->me().so_error.load(std::memory_order_relaxed) != 0 ? uint32_t{EPOLLERR} : 0u;
  const uint32_t shut = p->rx.Shut();
  const bool rst = shut == shm::kShutRst;
  const bool rcv_shut = shut != 0 || (fl & shm::kEndShutRd);
  // SO_RCVLOWAT: readable from that many bytes on (poll, select, epoll).
  const size_t lowat =
      t_recv_waiting ? 1 : static_cast<size_t>(s->tcp->rcvlowat.load(std::memory_order_relaxed));
  if (rcv_shut || ((want & (EPOLLIN | EPOLLRDNORM)) && p->rx.ReadableShared() >= lowat)) {
    ev |= EPOLLIN | EPOLLRDNORM;
  }
  if (rcv_shut) ev |= EPOLLRDHUP;
  if ((want & (EPOLLOUT | EPOLLWRNORM)) && !(fl & shm::kEndShutWr)) {
    const uint32_t closed = p->tx.ReaderClosed();
    if (p->tx.WritableShared() > 0 || closed != 0) ev |= EPOLLOUT | EPOLLWRNORM;
    if (closed == shm::kReaderClosedUnread && !reported) ev |= EPOLLERR;
  }
  if (rst && !reported) ev |= EPOLLERR;
  if (rcv_shut && ((fl & shm::kEndShutWr) || rst)) ev |= EPOLLHUP;  // Linux: both directions shut
  return ev;
}

}  // namespace client
}  // namespace offload
