// Readiness of offloaded sockets and the one way to sleep on them: spin for
// a bounded budget, then the need-wake-up handshake (set the flag, fence,
// re-check) and poll() on the socket's eventfd plus its shadow. Blocking
// recv/send/accept and poll/select/epoll all sleep this way, so a wake-up
// cannot be lost and kernel fds in mixed sets just work.

#include <errno.h>

#include <algorithm>
#include <poll.h>
#include <sched.h>

#include "client/attach.h"
#include "client/config.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/ops.h"
#include "shm/fence.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

namespace {
// Set when a yield handed our CPU to a busy task: this thread then sleeps
// right away for a while instead of spinning (see SpinStep).
thread_local int64_t t_no_spin_until_ns = 0;
constexpr int64_t kStolenNs = 50000;
constexpr int64_t kNoSpinNs = 1000000;         // first back-off: 1 ms
constexpr int64_t kMaxNoSpinNs = 1000000000;   // doubling up to 1 s
// Current back-off; doubles while spinning keeps losing the CPU, back to
// kNoSpinNs as soon as a spin pays off (SpinSucceeded).
thread_local int64_t t_backoff_ns = kNoSpinNs;
}  // namespace

void SpinSucceeded() { t_backoff_ns = kNoSpinNs; }

bool SpinAllowed() { return t_no_spin_until_ns == 0 || NowNs() >= t_no_spin_until_ns; }

namespace {
int64_t ThreadCpuNs() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

bool SpinStep(uint64_t i) {
  // Spinning pays only while this thread owns its CPU. Every
  // OFFLOAD_SPIN_YIELD_NS we yield (a peer pinned to our CPU gets to run)
  // and compare the CPU time we got with the wall time: well below it, a
  // runnable task shares our CPU and spinning would starve it (or wait for
  // it a whole time slice), so this thread sleeps right away for a while.
  static thread_local int64_t t_wall0 = 0, t_cpu0 = 0, t_last_yield_ns = 0;
  const int64_t every_ns = Config().spin_yield_ns;
  if (every_ns <= 0) {
    CpuRelax();
    return true;
  }
  if (i == 0) {
    t_wall0 = t_last_yield_ns = NowNs();
    t_cpu0 = ThreadCpuNs();
  }
  if ((i & 15) != 15) {
    CpuRelax();
    return true;
  }
  const int64_t t0 = NowNs();
  if (t0 - t_last_yield_ns < every_ns) {
    CpuRelax();
    return true;
  }
  sched_yield();
  const int64_t t1 = NowNs();
  t_last_yield_ns = t1;
  const int64_t wall = t1 - t_wall0;
  const int64_t cpu = ThreadCpuNs() - t_cpu0;
  if (t1 - t0 >= kStolenNs || (wall >= kStolenNs && cpu * 4 < wall * 3)) {
    t_no_spin_until_ns = t1 + t_backoff_ns;
    t_backoff_ns = std::min(t_backoff_ns * 2, kMaxNoSpinNs);
    return false;
  }
  return true;
}

uint32_t Events(Socket* s, bool kernel_ready, uint32_t want) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe: {
      if (s->connecting.load(std::memory_order_relaxed)) {
        const int r = ConnectProgress(s);
        if (r == EINPROGRESS) return 0;
        if (r != 0) return EPOLLOUT | EPOLLWRNORM | EPOLLERR | EPOLLHUP;
      }
      // Only the lines the caller asks about are read: an EPOLLIN-only
      // watcher touches the producer line of its rx ring and nothing else.
      uint32_t ev = s->so_error != 0 ? uint32_t{EPOLLERR} : 0u;
      const uint32_t shut = s->rx.Shut();
      const bool rst = shut == shm::kShutRst;
      const bool rcv_shut = shut != 0 || s->shut_rd;
      if (rcv_shut || ((want & (EPOLLIN | EPOLLRDNORM)) && s->rx.Readable() > 0)) {
        ev |= EPOLLIN | EPOLLRDNORM;
      }
      if (rcv_shut) ev |= EPOLLRDHUP;
      if ((want & (EPOLLOUT | EPOLLWRNORM)) && !s->shut_wr) {
        const uint32_t closed = s->tx.ReaderClosed();
        if (s->tx.Writable() > 0 || closed != 0) ev |= EPOLLOUT | EPOLLWRNORM;
        if (closed == 2 && !s->rst_reported) ev |= EPOLLERR;
      }
      if (rst && !s->rst_reported) ev |= EPOLLERR;
      if (rcv_shut && (s->shut_wr || rst)) ev |= EPOLLHUP;  // Linux: both directions shut
      return ev;
    }
    case Path::kListener: {
      bool pending = kernel_ready;
      if (!pending) {
        pthread_mutex_lock(&s->mu);
        pending = !s->offers.empty();
        pthread_mutex_unlock(&s->mu);
      }
      return pending ? (EPOLLIN | EPOLLRDNORM) : 0;
    }
    case Path::kUdp:
      return ((kernel_ready || UdpHasData(s)) ? (EPOLLIN | EPOLLRDNORM) : 0) | EPOLLOUT |
             EPOLLWRNORM;
    default:
      return 0;
  }
}

void ArmFlags(Socket* s, uint32_t events) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe:
      // A connect in flight: the engine kicks our eventfd unconditionally.
      if (s->connecting.load(std::memory_order_relaxed)) break;
      if (events & (EPOLLIN | EPOLLRDNORM | EPOLLRDHUP)) s->rx.SetSleepFlag();
      if ((events & (EPOLLOUT | EPOLLWRNORM)) && s->tx.Writable() == 0) s->tx.SetSleepFlag();
      break;
    case Path::kUdp:
      for (InRing* r : s->in_rings) r->c.SetSleepFlag();
      break;
    default:
      break;  // listeners: the daemon always kicks after an offer
  }
}

bool ArmRecheck(Socket* s, uint32_t events, bool* barrier_done) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe: {
      if (s->connecting.load(std::memory_order_relaxed)) return ConnectProgress(s) != EINPROGRESS;
      bool ready = false;
      if (events & (EPOLLIN | EPOLLRDNORM | EPOLLRDHUP)) {
        if (!*barrier_done && s->rx.WriterLazy()) {
          shm::PeerBarrier();
          *barrier_done = true;
        }
        if (s->rx.RecheckAfterFence() != 0 || s->rx.Shut() != 0) ready = true;
      }
      if ((events & (EPOLLOUT | EPOLLWRNORM)) &&
          (s->tx.RecheckAfterFence() != 0 || s->tx.ReaderClosed() != 0)) {
        ready = true;
      }
      return ready;
    }
    case Path::kUdp: {
      bool ready = false;
      for (InRing* r : s->in_rings) ready |= r->c.RecheckAfterFence();
      return ready || s->has_new_rings.load(std::memory_order_acquire);
    }
    default:
      return false;
  }
}

bool Arm(Socket* s, uint32_t events) {
  ArmFlags(s, events);
  shm::HeavyFence();
  bool barrier_done = false;
  return ArmRecheck(s, events, &barrier_done);
}

void Disarm(Socket* s) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe:
      s->rx.CancelSleep();
      s->tx.CancelSleep();
      break;
    case Path::kUdp:
      for (InRing* r : s->in_rings) r->c.CancelSleep();
      break;
    default:
      break;
  }
}

uint64_t RxMark(Socket* s) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe:
      return s->rx.ProducerTail() + (uint64_t{s->rx.Shut()} << 60);
    case Path::kListener:
      return s->offers_total.load(std::memory_order_acquire);
    case Path::kUdp: {
      uint64_t m = s->in_rings.size();
      for (InRing* r : s->in_rings) m += r->c.QueuedBytes() + (uint64_t{r->id} << 32);
      return m;
    }
    default:
      return 0;
  }
}

uint64_t TxMark(Socket* s) {
  if (s->path.load(std::memory_order_acquire) != Path::kPipe) return 0;
  // The end of a connect in flight is an edge too (EPOLLET writers).
  return s->tx.ConsumerHead() + (s->connecting.load(std::memory_order_relaxed) ? 0 : 1ull << 62);
}

namespace {
int WaitSocketLocked(Socket* s, uint32_t events, int64_t timeout_ms);
}  // namespace

int WaitSocket(Socket* s, uint32_t events, int64_t timeout_ms) {
  // Hold a reference while waiting: another thread may close the fd (Linux
  // lets a blocked call finish; here the waiter wakes up with EBADF).
  s->mem_refs.fetch_add(1, std::memory_order_relaxed);
  int rc = WaitSocketLocked(s, events, timeout_ms);
  if (s->closed) rc = EBADF;
  Unref(s);
  return rc;
}

namespace {
int WaitSocketLocked(Socket* s, uint32_t events, int64_t timeout_ms) {
  const ClientConfig& cfg = Config();
  const int64_t start = NowNs();
  const int64_t deadline = timeout_ms < 0 ? INT64_MAX : start + timeout_ms * 1000000;
  const Path path = s->path.load(std::memory_order_acquire);
  const bool with_shadow = path == Path::kListener || path == Path::kUdp;
  // Spin: bounded by OFFLOAD_RX_POLL iterations (and the timeout).
  const int64_t budget = !SpinAllowed() ? 0 : cfg.rx_poll < 0 ? INT64_MAX : cfg.rx_poll;
  for (int64_t i = 0; i < budget; ++i) {
    if (s->closed || (Events(s, false, events) & events)) {
      if (i > 0) SpinSucceeded();
      return 0;
    }
    if ((i & 63) == 63) {
      PollEvents();
      if (with_shadow && (i & 1023) == 1023) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (Real().poll(&p, 1, 0) > 0) return 0;
      }
      if (NowNs() >= deadline) return EAGAIN;
    }
    if (!SpinStep(i)) break;
  }
  for (;;) {
    PollEvents();
    if (Arm(s, events) || (Events(s, false, events) & events)) {
      Disarm(s);
      return 0;
    }
    // A pipe to an engine dies with offloadd: the liveness pipe's read end
    // is the daemon's, so POLLERR on our write end says the connection is
    // gone (same-host pipes need no daemon and keep working).
    const bool engine = path == Path::kPipe && s->alive.valid() &&
                        s->slot->path == static_cast<uint8_t>(shm::SocketPath::kEngine);
    struct pollfd p[2] = {{s->efd.get(), POLLIN, 0},
                          {engine ? s->alive.get() : s->fd, static_cast<short>(engine ? 0 : POLLIN), 0}};
    const int64_t now = NowNs();
    if (now >= deadline) {
      Disarm(s);
      return EAGAIN;
    }
    const int ms = deadline == INT64_MAX ? -1
                                         : static_cast<int>((deadline - now + 999999) / 1000000);
    const int rc = Real().poll(p, with_shadow || engine ? 2 : 1, ms);
    Disarm(s);
    if (rc < 0) {
      if (errno == EINTR) return EINTR;
      return EAGAIN;
    }
    // Our eventfd closed behind our back (closefrom/close_range): fail
    // instead of spinning on POLLNVAL.
    if (p[0].revents & POLLNVAL) return EBADF;
    if (p[0].revents & POLLIN) shm::Drain(s->efd.get());
    if (with_shadow && (p[1].revents & POLLIN)) return 0;
    if (engine && (p[1].revents & (POLLERR | POLLHUP))) {
      EngineLost(s);
      return 0;
    }
    if (s->closed || (Events(s, false, events) & events)) return 0;
  }
}
}  // namespace

}  // namespace client
}  // namespace offload
