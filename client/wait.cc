// Readiness of offloaded sockets and the ways to sleep on them: spin for a
// bounded budget, then the wake-up handshake of shm/ring.h (arm, fence,
// re-check) and sleep. A blocking call on a same-host pipe sleeps in
// futex_wait on the ring's eventcount; everything else (listeners, UDP,
// connections an engine serves, and poll/select/epoll in mux.cc) sleeps in
// poll() on this process's doorbell, with the shadow for kernel clients
// and the attach socket for offloadd's death. A wake-up cannot be lost and
// kernel fds in mixed sets just work. The spinning itself (SpinStep) is in
// spin.cc.

#include <errno.h>
#include <signal.h>

#include <algorithm>
#include <poll.h>

#include "client/attach.h"
#include "client/config.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/ops.h"
#include "shm/fence.h"
#include "shm/futex.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

namespace {

// The wait line(s) a sleeper waiting for `events` of a pipe arms.
bool WantsIn(uint32_t events) { return events & (EPOLLIN | EPOLLRDNORM | EPOLLRDHUP); }
bool WantsOut(uint32_t events) { return events & (EPOLLOUT | EPOLLWRNORM); }

bool ListenerPending(Socket* s) { return shm::PendingAccepts(s->listener->hdr) != 0; }

// Lists the calling thread's doorbell in `set` for the time it sleeps
// (Unlist() when it stops). False when it cannot (not attached, or the set
// is full).
bool ListOn(shm::WaiterSet set, std::atomic<bool>* listed, bool exclusive = false) {
  uint64_t id = DoorbellId();
  if (id == 0 && EnsureAttached()) id = DoorbellId();  // a forked child's first sleep
  if (id == 0) return false;
  if (!shm::AddWaiter(set, exclusive ? id | shm::kExclusiveWaiterBit : id)) return false;
  listed->store(true, std::memory_order_relaxed);
  return true;
}
void Unlist(shm::WaiterSet set) {
  if (const uint64_t id = DoorbellId()) {
    shm::RemoveWaiter(set, id);
    shm::RemoveWaiter(set, id | shm::kExclusiveWaiterBit);
  }
}

}  // namespace

uint32_t Events(Socket* s, bool kernel_ready, uint32_t want) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe:
      return PipeEvents(s, want);
    case Path::kListener:
      return (kernel_ready || ListenerPending(s)) ? (EPOLLIN | EPOLLRDNORM) : 0;
    case Path::kUdp: {
      // Linux's datagram_poll: a read shutdown is readable and RDHUP, both
      // directions HUP.
      const uint8_t shut = s->udp->shut.load(std::memory_order_acquire);
      uint32_t ev = EPOLLOUT | EPOLLWRNORM;
      if (kernel_ready || UdpHasData(s) || (shut & kUdpShutRd)) ev |= EPOLLIN | EPOLLRDNORM;
      if (shut & kUdpShutRd) ev |= EPOLLRDHUP;
      if (shut == (kUdpShutRd | kUdpShutWr)) ev |= EPOLLHUP;
      return ev;
    }
    default:
      return 0;
  }
}

bool ArmLine(LineArms* a, shm::RingWaitLine* w, uint32_t bits, uint32_t* seq) {
  MutexGuard g(&a->mu);
  if (a->retired) return false;
  const uint32_t v = shm::ArmWait(w, bits);
  if (seq != nullptr) *seq = v;
  a->futex += (bits & shm::kArmFutex) != 0;
  a->doorbell += (bits & shm::kArmDoorbell) != 0;
  return true;
}

void DisarmLine(LineArms* a, shm::RingWaitLine* w, uint32_t bits) {
  DisarmLine(a, w, bits, shm::Waiters(w));
}

void DisarmLine(LineArms* a, shm::RingWaitLine* w, uint32_t bits, shm::WaiterSet set) {
  MutexGuard g(&a->mu);
  if (a->retired) return;
  if (bits & shm::kArmDoorbell) Unlist(set);
  shm::DisarmWait(w, bits);
  a->futex -= (bits & shm::kArmFutex) != 0;
  a->doorbell -= (bits & shm::kArmDoorbell) != 0;
}

uint32_t RetireLine(LineArms* a, shm::RingWaitLine* w) {
  MutexGuard g(&a->mu);
  if (a->retired) return 0;
  a->retired = true;
  const uint32_t sleeping =
      (a->futex != 0 ? shm::kArmFutex : 0u) | (a->doorbell != 0 ? shm::kArmDoorbell : 0u);
  shm::DisarmWait(w, shm::kArmFutex, a->futex);
  shm::DisarmWait(w, shm::kArmDoorbell, a->doorbell);
  a->futex = a->doorbell = 0;
  return sleeping;
}

namespace {
void ResetArms(LineArms* a) {
  pthread_mutex_init(&a->mu, nullptr);
  a->futex = a->doorbell = 0;
}
}  // namespace

void ResetArmsAfterFork() {
  for (int fd = 0; fd < g_fd_table_size; ++fd) {
    Socket* s = GetSocket(fd);
    if (s == nullptr) continue;
    if (s->pipe != nullptr) {
      ResetArms(&s->pipe->rx_arms);
      ResetArms(&s->pipe->tx_arms);
    }
    if (s->listener != nullptr) ResetArms(&s->listener->accept_arms);
  }
}

uint32_t ArmFlags(Socket* s, uint32_t events, bool* listed) {
  uint32_t armed = 0;
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe: {
      PipeEnd* p = s->pipe.get();
      // A connect in flight: the engine wakes the reader and writer lines.
      if (WantsIn(events) || p->connecting.load(std::memory_order_relaxed)) {
        if (!ListOn(shm::Waiters(p->rx.reader_wait()), &p->doorbell_listed)) *listed = false;
        if (ArmLine(&p->rx_arms, p->rx.reader_wait(), shm::kArmDoorbell, nullptr)) {
          armed |= kArmedRx;
        }
      }
      if (WantsOut(events) || p->connecting.load(std::memory_order_relaxed)) {
        if (!ListOn(shm::Waiters(p->tx.writer_wait()), &p->doorbell_listed)) *listed = false;
        if (ArmLine(&p->tx_arms, p->tx.writer_wait(), shm::kArmDoorbell, nullptr)) {
          armed |= kArmedTx;
        }
      }
      return armed;
    }
    case Path::kListener: {
      ListenerRef* l = s->listener.get();
      // A blocked accept() and an EPOLLEXCLUSIVE waiter wait exclusively:
      // one of them is woken per connection (WakeAcceptLine).
      if (!ListOn(shm::AcceptWaiters(l->hdr), &l->doorbell_listed, (events & EPOLLEXCLUSIVE) != 0)) {
        *listed = false;
      }
      return ArmLine(&l->accept_arms, &l->hdr->accept_wait, shm::kArmDoorbell, nullptr)
                 ? kArmedAccept
                 : 0;
    }
    case Path::kUdp: {
      MutexGuard rx(&s->udp->rx_mu);
      for (const std::unique_ptr<InRing>& r : s->udp->in_rings) r->c.SetSleepFlag();
      return kArmedUdp;
    }
    default:
      return 0;
  }
}

bool ArmRecheck(Socket* s, uint32_t events, bool* barrier_done) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe: {
      PipeEnd* p = s->pipe.get();
      if (p->connecting.load(std::memory_order_relaxed)) return ConnectProgress(s) != EINPROGRESS;
      if (WantsIn(events) && !*barrier_done && p->rx.WriterLazy()) {
        shm::PeerBarrier();
        *barrier_done = true;
      }
      return (PipeEvents(s, events) & (events | EPOLLERR | EPOLLHUP)) != 0;
    }
    case Path::kListener:
      return ListenerPending(s);
    case Path::kUdp: {
      MutexGuard rx(&s->udp->rx_mu);
      bool ready = false;
      const bool shared = s->udp_shared.load(std::memory_order_acquire);
      for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
        InRing* r = ring.get();
        if (shared) r->c.Resync();
        ready |= r->c.RecheckAfterFence();
      }
      return ready || s->udp->has_new_rings.load(std::memory_order_acquire);
    }
    default:
      return false;
  }
}

void Disarm(Socket* s, uint32_t armed) {
  // Off the waiter sets first, then uncounted; both only while the line is
  // not retired (a close may have unmapped it).
  if (armed & kArmedRx) {
    DisarmLine(&s->pipe->rx_arms, s->pipe->rx.reader_wait(), shm::kArmDoorbell);
  }
  if (armed & kArmedTx) {
    DisarmLine(&s->pipe->tx_arms, s->pipe->tx.writer_wait(), shm::kArmDoorbell);
  }
  if (armed & kArmedAccept) {
    DisarmLine(&s->listener->accept_arms, &s->listener->hdr->accept_wait, shm::kArmDoorbell,
               shm::AcceptWaiters(s->listener->hdr));
  }
  if (armed & kArmedUdp) {
    MutexGuard rx(&s->udp->rx_mu);
    // A shared socket's flags are every holder's: only producers clear them
    // (a holder's cancel could hide another's sleep).
    if (!s->udp_shared.load(std::memory_order_acquire)) {
      for (const std::unique_ptr<InRing>& r : s->udp->in_rings) r->c.CancelSleep();
    }
  }
}

uint64_t RxMark(Socket* s) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe:
      return s->pipe->rx.ProducerTail() + (uint64_t{s->pipe->rx.Shut()} << 60);
    case Path::kListener:
      return s->listener->hdr->posted.load(std::memory_order_acquire);
    case Path::kUdp: {
      MutexGuard rx(&s->udp->rx_mu);
      const bool shared = s->udp_shared.load(std::memory_order_acquire);
      uint64_t m = s->udp->in_rings.size();
      for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
        InRing* r = ring.get();
        if (shared) r->c.Resync();
        m += r->c.QueuedBytes() + (uint64_t{r->id} << 32);
      }
      return m;
    }
    default:
      return 0;
  }
}

uint64_t TxMark(Socket* s) {
  if (s->path.load(std::memory_order_acquire) != Path::kPipe) return 0;
  PipeEnd* p = s->pipe.get();
  // The end of a connect in flight is an edge too (EPOLLET writers).
  return p->tx.ConsumerHead() + (p->connecting.load(std::memory_order_relaxed) ? 0 : 1ull << 62);
}

void AfterDoorbellSleep(bool doorbell_ready, bool attach_hup) {
  if (doorbell_ready) shm::Drain(DoorbellFd());
  if (!attach_hup) return;
  // offloadd is gone: every connection an engine served is reset. The
  // attach code notices too (the next call drops the session).
  for (int fd = 0; fd < g_fd_table_size; ++fd) {
    Socket* s = GetSocket(fd);
    if (s != nullptr && s->path.load(std::memory_order_acquire) == Path::kPipe &&
        s->pipe->engine) {
      EngineLost(s);
    }
  }
  DropSession();
}

namespace {
int WaitSocketLocked(Socket* s, uint32_t events, int64_t timeout_ms);
}  // namespace

bool SignalsRestart() {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction sa;
    if (sigaction(sig, nullptr, &sa) != 0) continue;  // glibc's own (32, 33)
    if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) continue;
    if ((sa.sa_flags & SA_RESTART) == 0) return false;
  }
  return true;
}

int WaitSocket(Socket* s, uint32_t events, int64_t timeout_ms) {
  // Hold a reference while waiting: another thread may close the fd (Linux
  // lets a blocked call finish; here the waiter wakes up with EBADF).
  s->mem_refs.fetch_add(1, std::memory_order_relaxed);
  int rc;
  do {
    rc = WaitSocketLocked(s, events, timeout_ms);
    // Linux restarts a socket call without a timeout that a SA_RESTART
    // handler interrupted (signal(7)).
  } while (rc == EINTR && timeout_ms < 0 && !s->closed && SignalsRestart());
  if (s->closed) rc = EBADF;
  Unref(s);
  return rc;
}

namespace {

// A pipe to another process on this host, waited for by one thread in a
// blocking call: futex on the ring's eventcount (no fd, no daemon).
int FutexSleep(Socket* s, uint32_t events, int64_t deadline) {
  PipeEnd* p = s->pipe.get();
  const bool in = WantsIn(events) || p->connecting.load(std::memory_order_relaxed);
  shm::RingWaitLine* w = in ? p->rx.reader_wait() : p->tx.writer_wait();
  LineArms* a = in ? &p->rx_arms : &p->tx_arms;
  uint32_t seq = 0;
  if (!ArmLine(a, w, shm::kArmFutex, &seq)) return EBADF;  // being closed
  shm::HeavyFence();
  bool barrier_done = false;
  int rc = 0;
  if (!ArmRecheck(s, events, &barrier_done)) {
    int64_t left = -1;
    if (deadline != INT64_MAX) left = deadline - NowNs();
    if (left == -1 || left > 0) {
      rc = shm::FutexWait(&w->wake_seq, seq, left) == EINTR ? EINTR : 0;
    } else {
      rc = EAGAIN;
    }
  }
  DisarmLine(a, w, shm::kArmFutex);
  return rc;
}

// Everything else: this process's doorbell (+ the shadow of a listener or
// UDP socket, + the attach socket for an engine's connection). Returns 0,
// EAGAIN, EINTR, EBADF, or kShadowReady.
constexpr int kShadowReady = -1;
int DoorbellSleep(Socket* s, uint32_t events, int64_t deadline) {
  const Path path = s->path.load(std::memory_order_acquire);
  const bool with_shadow = path == Path::kListener || path == Path::kUdp;
  const bool engine = path == Path::kPipe && s->pipe->engine;
  bool listed = true;
  const uint32_t armed = ArmFlags(s, events, &listed);
  shm::HeavyFence();
  bool barrier_done = false;
  if (ArmRecheck(s, events, &barrier_done) || (Events(s, false, events) & events)) {
    Disarm(s, armed);
    return 0;
  }
  struct pollfd p[3];
  int n = 0;
  const int doorbell_at = path == Path::kUdp ? -1 : n;
  if (path == Path::kUdp) {
    p[n++] = {s->efd.get(), POLLIN, 0};
  } else if (DoorbellFd() >= 0) {
    p[n++] = {DoorbellFd(), POLLIN, 0};
  }
  const int shadow_at = with_shadow ? n : -1;
  if (with_shadow) p[n++] = {s->fd, POLLIN, 0};
  const int attach_at = engine && AttachFd() >= 0 ? n : -1;
  if (attach_at >= 0) p[n++] = {AttachFd(), 0, 0};
  const int64_t now = NowNs();
  if (now >= deadline) {
    Disarm(s, armed);
    return EAGAIN;
  }
  int ms = deadline == INT64_MAX ? -1 : static_cast<int>((deadline - now + 999999) / 1000000);
  // Not listed (no doorbell, or too many processes wait here): a short
  // sleep, never an unwoken one.
  if (!listed && (ms < 0 || ms > 1)) ms = 1;
  const int rc = Real().poll(p, n, ms);
  Disarm(s, armed);
  if (rc < 0) return errno == EINTR ? EINTR : EAGAIN;
  if (path == Path::kUdp) {
    if (p[0].revents & POLLNVAL) return EBADF;
    if (p[0].revents & POLLIN) shm::Drain(s->efd.get());
  }
  const bool attach_hup = attach_at >= 0 && (p[attach_at].revents & (POLLHUP | POLLERR));
  AfterDoorbellSleep(doorbell_at >= 0 && n > doorbell_at && (p[doorbell_at].revents & POLLIN),
                     attach_hup);
  // The kernel side (a kernel client, a kernel datagram) is ready: the
  // caller looks at it.
  if (shadow_at >= 0 && (p[shadow_at].revents & POLLIN)) return kShadowReady;
  return 0;
}

}  // namespace

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
    if (s->closed || (Events(s, false, events) & events)) return 0;
    if (NowNs() >= deadline) return EAGAIN;
    const bool futex = path == Path::kPipe && !s->pipe->engine;
    const int rc = futex ? FutexSleep(s, events, deadline) : DoorbellSleep(s, events, deadline);
    if (rc == EINTR || rc == EBADF) return rc;
    if (rc == kShadowReady || s->closed || (Events(s, false, events) & events)) return 0;
    if (rc == EAGAIN && NowNs() >= deadline) return EAGAIN;
  }
}
}  // namespace

}  // namespace client
}  // namespace offload
