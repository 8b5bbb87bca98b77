// The connect an engine completes, and the loss of an engine, for a pipe
// end whose other end is an engine (a TCP connection on the wire): the
// outcome of a non-blocking connect (EINPROGRESS, then 0 or the errno the
// engine reports), and the reset a connection reads as once its engine is
// gone. The stream I/O itself is in pipe_io.cc.

#include <errno.h>
#include <sys/epoll.h>

#include "client/attach.h"
#include "client/fd_table.h"
#include "client/log.h"
#include "client/ops.h"

namespace offload {
namespace client {

namespace {

// Publishes what an engine publishes after a RST, for when the engine no
// longer can (it gave the flow up, or offloadd died): the connection reads
// as reset from now on.
void MarkReset(PipeEnd* p) {
  p->rx.indexes()->shut.store(shm::kShutRst, std::memory_order_release);
  p->tx.indexes()->reader_closed.store(shm::kReaderClosedUnread, std::memory_order_release);
}

}  // namespace

int ConnectProgress(Socket* s) {
  PipeEnd* p = s->pipe.get();
  if (!p->connecting.load(std::memory_order_acquire)) return 0;
  // Pairs with the engine's store-release of the outcome.
  const int32_t st = p->rec->ctl.connect_status.load(std::memory_order_acquire);
  if (st == shm::kConnectPending) return EINPROGRESS;
  if (!p->connecting.exchange(false, std::memory_order_acq_rel)) {
    return p->me().so_error.load(std::memory_order_relaxed);
  }
  if (st == 0) {
    s->slot->state = static_cast<uint8_t>(shm::SocketState::kEstablished);
    return 0;
  }
  // The engine gave the flow up: the socket now reads as a reset
  // connection whose reset was already reported through SO_ERROR.
  MarkReset(p);
  p->me().flags.fetch_or(shm::kEndRstReported, std::memory_order_acq_rel);
  p->connect_failed = true;
  p->connect_errno = st;
  p->me().so_error.store(st, std::memory_order_relaxed);
  s->slot->state = static_cast<uint8_t>(shm::SocketState::kClosed);
  Add(s->slot->errors, 1);
  return st;
}

int WaitConnected(Socket* s) {
  for (;;) {
    const int r = ConnectProgress(s);
    // The outcome may have been taken by a readiness check meanwhile.
    if (r == 0 && s->pipe->connect_failed) return s->pipe->connect_errno;
    if (r != EINPROGRESS) return r;
    const int rc = WaitSocket(s, EPOLLOUT, -1);
    if (rc != 0 && rc != EAGAIN) return rc;
  }
}

int SettleConnect(Socket* s, bool nonblock) {
  for (;;) {
    const int r = ConnectProgress(s);
    if (r == 0) return 0;
    if (r != EINPROGRESS) {
      s->pipe->me().so_error.store(0, std::memory_order_relaxed);  // reported here instead
      errno = r;
      return -1;
    }
    if (nonblock) {
      errno = EAGAIN;
      return -1;
    }
    const int rc = WaitSocket(s, EPOLLOUT, -1);
    if (rc != 0 && rc != EAGAIN) {
      errno = rc;
      return -1;
    }
  }
}

void EngineLost(Socket* s) {
  PipeEnd* p = s->pipe.get();
  if (p == nullptr || !p->engine) return;
  MarkReset(p);
  p->connecting.store(false, std::memory_order_release);
  // Every thread of this process sleeping on it (a blocking call, poll,
  // epoll) finds the reset: no daemon is left to tell them, and the first
  // thread to see the attach socket hang up closes it, which takes it out
  // of every epoll set.
  constexpr uint32_t kAll = shm::kArmFutex | shm::kArmDoorbell;
  WakeLine(p->rx.reader_wait(), kAll);
  WakeLine(p->tx.writer_wait(), kAll);
  Log(2, "fd %d: offloadd is gone; its TCP connection is reset", s->fd);
}

}  // namespace client
}  // namespace offload
