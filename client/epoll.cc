// epoll over mixed kernel and offloaded fds, at a cost that follows
// activity, not the number of registered sockets.
//
// Kernel fds stay in the application's kernel epoll instance. Offloaded
// fds are user-space entries of the set (EpollSet, socket.h), each with a
// token. Between calls their wait lines stay armed (shm/ring.h), listed
// under the set's own doorbell id plus the token; a waker that takes the
// line's owed wake-up posts the token to the doorbell's hint ring
// (shm/hint_ring.h) and kicks its eventfd, which sits in the kernel set
// (kTagDoorbell, edge-triggered). So a call looks only at
//   * the "watch" list: entries named by a hint, added or modified, or
//     reported last time (level-triggered entries are looked at again, as
//     the kernel's ready list does); their arms may have been taken, so
//     they are looked at directly, spinning included;
//   * the kernel events (application fds, the shadows of listeners and UDP
//     sockets, UDP eventfds, the doorbell, the attach socket).
// Before it sleeps a call arms the watched entries again (list, raise the
// owed bit), fences once, re-checks them, and takes off the watch list
// those that are not ready: from then on a waker names them. A full hint
// ring, a dead offloadd or a set without a doorbell fall back to looking
// at everything (never a lost wake-up, only a slower call).
//
// Level-triggered, EPOLLET (report when new data arrived / space was freed
// since the last report), EPOLLONESHOT and EPOLLEXCLUSIVE keep their
// meaning; closing an fd's last descriptor drops it from every set.
//
// Thread safety: a set's state is under its mutex; lock order set->mu,
// then a socket's mu, udp->rx_mu or line arms.
//
// One file (~830 lines): the arms, the entry table, EPOLL_CTL and the wait
// loop share the set's invariants (watched == possibly unarmed); the arms
// part is the natural first cut when it grows.

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>

#include <algorithm>
#include <vector>

#include "client/attach.h"
#include "client/config.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/ops.h"
#include "shm/fence.h"
#include "shm/hint_ring.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

namespace {

constexpr uint32_t kAlways = EPOLLERR | EPOLLHUP;

bool WantsIn(uint32_t events) { return events & (EPOLLIN | EPOLLRDNORM | EPOLLRDHUP); }
bool WantsOut(uint32_t events) { return events & (EPOLLOUT | EPOLLWRNORM); }

// ------------------------------------------------------------ arms

// The lines an entry waiting for `events` of `s` keeps armed (kArmed*).
uint32_t WantedArms(Socket* s, uint32_t events) {
  switch (s->path.load(std::memory_order_acquire)) {
    case Path::kPipe: {
      // A connect in flight: the engine wakes the reader and writer lines.
      const bool connecting = s->pipe->connecting.load(std::memory_order_relaxed);
      return ((WantsIn(events) || connecting) ? kArmedRx : 0) |
             ((WantsOut(events) || connecting) ? kArmedTx : 0);
    }
    case Path::kListener:
      return kArmedAccept;
    case Path::kUdp:
      return kArmedUdp;
    default:
      return 0;
  }
}

// Keeps `id` listed in `ws` and a doorbell wake-up owed on `w`: counts the
// set as a sleeper the first time (`held` false), afterwards only raises
// the owed bit a waker took. Clears *listed when the waiter set is full.
// False when the line is retired (the socket is being closed).
bool HoldLine(LineArms* a, shm::RingWaitLine* w, shm::WaiterSet ws, uint64_t id, bool held,
              bool* listed) {
  // Listed before the owed bit is raised: a waker reads the ids after it
  // took the bit (WakeWaiters).
  if (!shm::AddWaiter(ws, id)) *listed = false;
  MutexGuard g(&a->mu);
  if (a->retired) {
    shm::RemoveWaiter(ws, id);
    return false;
  }
  if (held) {
    // Seq_cst RMW, as ArmWait(): ordered before the caller's HeavyFence
    // and re-check.
    w->sleepers.fetch_or(shm::kArmDoorbell, std::memory_order_seq_cst);
  } else {
    shm::ArmWait(w, shm::kArmDoorbell);
    ++a->doorbell;
  }
  return true;
}

void ReleaseLine(LineArms* a, shm::RingWaitLine* w, shm::WaiterSet ws, uint64_t id) {
  MutexGuard g(&a->mu);
  if (a->retired) return;  // the close took our counts back
  shm::RemoveWaiter(ws, id);
  shm::DisarmWait(w, shm::kArmDoorbell);
  --a->doorbell;
}

void ReleaseArms(Socket* s, uint32_t bits, uint64_t id) {
  if (bits & kArmedRx) {
    ReleaseLine(&s->pipe->rx_arms, s->pipe->rx.reader_wait(),
                shm::Waiters(s->pipe->rx.reader_wait()), id);
  }
  if (bits & kArmedTx) {
    ReleaseLine(&s->pipe->tx_arms, s->pipe->tx.writer_wait(),
                shm::Waiters(s->pipe->tx.writer_wait()), id);
  }
  if (bits & kArmedAccept) {
    ListenerRef* l = s->listener.get();
    ReleaseLine(&l->accept_arms, &l->hdr->accept_wait, shm::AcceptWaiters(l->hdr), id);
  }
  if (bits & kArmedUdp) {
    MutexGuard rx(&s->udp->rx_mu);
    // A shared socket's flags are every holder's: only producers clear them.
    if (!s->udp_shared.load(std::memory_order_acquire)) {
      for (const std::unique_ptr<InRing>& r : s->udp->in_rings) r->c.CancelSleep();
    }
  }
}

// Arms what `e` waits for (and releases what it no longer does). Clears
// *listed when a waiter set was full.
void HoldArms(EpollEntry* e, uint64_t id, bool* listed) {
  Socket* s = e->s;
  const uint32_t want = WantedArms(s, e->events);
  if (e->armed & ~want) ReleaseArms(s, e->armed & ~want, id);
  e->armed &= want;
  uint32_t held = 0;
  if (want & kArmedRx) {
    PipeEnd* p = s->pipe.get();
    if (HoldLine(&p->rx_arms, p->rx.reader_wait(), shm::Waiters(p->rx.reader_wait()), id,
                 e->armed & kArmedRx, listed)) {
      held |= kArmedRx;
    }
  }
  if (want & kArmedTx) {
    PipeEnd* p = s->pipe.get();
    if (HoldLine(&p->tx_arms, p->tx.writer_wait(), shm::Waiters(p->tx.writer_wait()), id,
                 e->armed & kArmedTx, listed)) {
      held |= kArmedTx;
    }
  }
  if (want & kArmedAccept) {
    ListenerRef* l = s->listener.get();
    if (HoldLine(&l->accept_arms, &l->hdr->accept_wait, shm::AcceptWaiters(l->hdr), id,
                 e->armed & kArmedAccept, listed)) {
      held |= kArmedAccept;
    }
  }
  if (want & kArmedUdp) {
    MutexGuard rx(&s->udp->rx_mu);
    for (const std::unique_ptr<InRing>& r : s->udp->in_rings) r->c.SetSleepFlag();
    held |= kArmedUdp;
  }
  e->armed = held;
}

// The id `e` is listed under: the set's doorbell, its token, and the
// exclusive bit of an EPOLLEXCLUSIVE listener (one such waiter is woken
// per connection, as on Linux).
uint64_t ListedIdUnder(uint64_t bell_id, const EpollEntry& e, uint32_t token) {
  uint64_t id = bell_id | token;
  if ((e.events & EPOLLEXCLUSIVE) && e.s->path.load(std::memory_order_acquire) == Path::kListener) {
    id |= shm::kExclusiveWaiterBit;
  }
  return id;
}
uint64_t ListedId(const EpollSet* set, const EpollEntry& e, uint32_t token) {
  return ListedIdUnder(set->bell->id, e, token);
}

// ------------------------------------------------------------ entries

// REQUIRES: set->mu held (for all below).
void Watch(EpollSet* set, uint32_t token) {
  EpollEntry& e = set->entries[token - 1];
  if (e.fd < 0 || e.in_watch) return;
  e.in_watch = true;
  set->watch.push_back(token);
}

void WatchAll(EpollSet* set) {
  for (uint32_t t = 1; t <= set->entries.size(); ++t) Watch(set, t);
}

// Registers what the set's kernel sleep needs for `s`: the UDP eventfd and
// the shadow of a listener / UDP socket (their kernel-side readiness).
void KernelRegister(EpollSet* set, Socket* s, int fd) {
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagEfd | static_cast<uint32_t>(fd);
  const Path p = s->path.load();
  if (p == Path::kUdp && s->efd.valid()) Real().epoll_ctl(set->epfd, EPOLL_CTL_ADD, s->efd.get(), &ev);
  if (p == Path::kListener || p == Path::kUdp) {
    ev.data.u64 = kTagShadow | static_cast<uint32_t>(fd);
    Real().epoll_ctl(set->epfd, EPOLL_CTL_ADD, fd, &ev);
  }
}

void KernelUnregister(EpollSet* set, Socket* s, int fd) {
  const Path p = s->path.load();
  if (p == Path::kUdp && s->efd.valid()) {
    Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, s->efd.get(), nullptr);
  }
  if (p == Path::kListener || p == Path::kUdp) Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, fd, nullptr);
}

// The attach socket (offloadd's death resets the connections an engine
// serves) once the set holds one.
void RegisterAttach(EpollSet* set, Socket* s) {
  const int attach = AttachFd();
  if (s->path.load() != Path::kPipe || !s->pipe->engine || attach < 0 || set->attach_fd == attach) {
    return;
  }
  if (set->attach_fd >= 0) Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, set->attach_fd, nullptr);
  epoll_event ev = {};
  ev.events = 0;  // EPOLLHUP / EPOLLERR are always reported
  ev.data.u64 = kTagAttach;
  if (Real().epoll_ctl(set->epfd, EPOLL_CTL_ADD, attach, &ev) == 0) set->attach_fd = attach;
}

// Takes entry `token` out of the set: its arms, kernel registrations and
// references. The token is reused once it is off the watch list.
// REQUIRES: the caller holds a reference on the set besides the entry's.
void DropEntry(EpollSet* set, uint32_t token) {
  EpollEntry& e = set->entries[token - 1];
  Socket* s = e.s;
  if (e.armed != 0) ReleaseArms(s, e.armed, ListedId(set, e, token));
  KernelUnregister(set, s, e.fd);
  auto it = set->by_fd.find(e.fd);
  if (it != set->by_fd.end() && it->second == token) set->by_fd.erase(it);
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->uepolls.size(); ++i) {
    if (s->uepolls[i].set == set && s->uepolls[i].token == token) {
      s->uepolls[i] = s->uepolls.back();
      s->uepolls.pop_back();
      set->mem_refs.fetch_sub(1, std::memory_order_acq_rel);  // never the last (REQUIRES)
      break;
    }
  }
  pthread_mutex_unlock(&s->mu);
  Unref(s);
  const bool watched = e.in_watch;
  e = EpollEntry();
  e.in_watch = watched;
  if (!watched) set->free_tokens.push_back(token);
  --set->live;
}

// A forked child's first use of an inherited set: the arms and the
// doorbell are the parent's (which keeps them); this process arms the
// entries again under a doorbell of its own. (A kernel epoll instance
// shared by both processes also still holds the parent's doorbell, edge-
// triggered: its events are ignored here.)
void AdoptAfterFork(EpollSet* set) {
  const uint32_t gen = ForkGeneration();
  if (set->fork_gen == gen) return;
  set->fork_gen = gen;
  set->bell = nullptr;
  set->bell_in_kernel = false;
  for (EpollEntry& e : set->entries) {
    e.armed = 0;
    e.unlisted = false;
  }
  WatchAll(set);
}

// The set's doorbell, registered with offloadd and in the kernel set.
// False when it cannot be had now (then every entry is looked at on each
// wake-up and sleeps are short).
bool EnsureBell(EpollSet* set) {
  if (set->bell == nullptr) set->bell = AcquireSetBell();
  if (set->bell == nullptr) return false;
  const uint64_t old_id = set->bell->id;
  if (!EnsureSetBell(set->bell)) return false;
  if (old_id != 0 && set->bell->id != old_id) {
    // Registered again under another id (a restarted offloadd had ours
    // taken): what is listed under the old one no longer reaches us.
    for (uint32_t t = 1; t <= set->entries.size(); ++t) {
      EpollEntry& e = set->entries[t - 1];
      if (e.fd >= 0 && e.armed != 0) {
        ReleaseArms(e.s, e.armed, ListedIdUnder(old_id, e, t));
      }
      e.armed = 0;
    }
    WatchAll(set);
  }
  if (!set->bell_in_kernel) {
    epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = kTagDoorbell | static_cast<uint32_t>(set->bell->fd);
    if (Real().epoll_ctl(set->epfd, EPOLL_CTL_ADD, set->bell->fd, &ev) == 0 || errno == EEXIST) {
      set->bell_in_kernel = true;
    }
  }
  return set->bell_in_kernel;
}

// The tokens wakers posted go on the watch list.
void TakeHints(EpollSet* set) {
  if (set->bell == nullptr || !shm::HintsPending(set->bell->ring)) return;
  const bool overflow = shm::DrainHints(set->bell->ring, [set](uint32_t token) {
    if (token <= set->entries.size()) Watch(set, token);
  });
  if (overflow) WatchAll(set);
}

// Processes kernel events: ours update entries, the application's go to
// `out`. Returns the number written to `out`.
int TakeKernelEvents(EpollSet* set, const epoll_event* kev, int k, epoll_event* out, int room) {
  int n = 0;
  for (int i = 0; i < k; ++i) {
    const uint64_t tag = kev[i].data.u64 & kTagMask;
    const int fd = static_cast<int>(kev[i].data.u64 & 0xffffffffu);
    if (tag == kTagEfd || tag == kTagShadow) {
      auto it = set->by_fd.find(fd);
      if (it == set->by_fd.end()) continue;
      EpollEntry& e = set->entries[it->second - 1];
      if (tag == kTagEfd) {
        if (e.s->efd.valid()) shm::Drain(e.s->efd.get());
      } else {
        e.kernel_ready = true;
      }
      Watch(set, it->second);
    } else if (tag == kTagDoorbell) {
      // Edge-triggered: only our own is drained (a parent's, in a kernel
      // set shared across fork, is not ours to touch).
      if (set->bell != nullptr && fd == set->bell->fd) shm::Drain(fd);
    } else if (tag == kTagAttach) {
      if (kev[i].events & (EPOLLHUP | EPOLLERR)) {
        Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, set->attach_fd, nullptr);
        set->attach_fd = -1;
        AfterDoorbellSleep(false, true);
        WatchAll(set);  // every engine connection was reset
      }
    } else if (n < room) {
      out[n++] = kev[i];
    }
  }
  return n;
}

// EPOLLET: whether `e` changed since its last report (data arrived, space
// was freed, the shadow fired).
bool Edge(const EpollEntry& e, uint32_t ev, uint64_t rx, uint64_t tx) {
  return ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) &&
          (rx != e.rx_mark || e.kernel_ready)) ||
         ((ev & EPOLLOUT) && tx != e.tx_mark);
}

// Looks at the watched entries; writes what is ready to `out`. Reported
// entries move to the end of the list (round robin when `room` is short).
int ScanWatch(EpollSet* set, epoll_event* out, int room) {
  std::vector<uint32_t>& w = set->watch;
  int n = 0;
  size_t keep = 0;
  const size_t count = w.size();
  uint32_t reported_stack[64];
  std::vector<uint32_t> reported_heap;
  size_t nreported = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint32_t t = w[i];
    EpollEntry& e = set->entries[t - 1];
    if (e.fd < 0) {  // dropped while watched: the token is free now
      e.in_watch = false;
      set->free_tokens.push_back(t);
      continue;
    }
    if (n >= room) {
      w[keep++] = t;
      continue;
    }
    if (e.s->closed || GetObject(e.fd) != e.s) {
      // Closed (or the fd now names something else): Linux drops it.
      DropEntry(set, t);
      set->entries[t - 1].in_watch = false;
      set->free_tokens.push_back(t);
      continue;
    }
    if (e.disabled) {
      e.in_watch = false;
      continue;
    }
    const uint32_t ev = Events(e.s, e.kernel_ready, e.events) & (e.events | kAlways);
    bool report = ev != 0;
    if (report && (e.events & EPOLLET)) {
      const uint64_t rx = RxMark(e.s), tx = TxMark(e.s);
      report = Edge(e, ev, rx, tx);
      e.rx_mark = rx;
      e.tx_mark = tx;
    }
    if (!report) {
      w[keep++] = t;
      continue;
    }
    e.kernel_ready = false;
    out[n].events = ev;
    out[n].data = e.data;
    ++n;
    Add(e.s->slot->poll_hits, 1);
    if (e.events & EPOLLONESHOT) {
      // Disabled until EPOLL_CTL_MOD: nothing to wake it for.
      e.disabled = true;
      if (e.armed != 0) ReleaseArms(e.s, e.armed, ListedId(set, e, t));
      e.armed = 0;
      e.in_watch = false;
      continue;
    }
    if (nreported < 64) {
      reported_stack[nreported] = t;
    } else {
      reported_heap.push_back(t);
    }
    ++nreported;
  }
  w.resize(keep);
  for (size_t i = 0; i < nreported && i < 64; ++i) w.push_back(reported_stack[i]);
  for (uint32_t t : reported_heap) w.push_back(t);
  return n;
}

// Before a sleep: arms the watched entries again, fences once, re-checks
// them; those not ready leave the watch list (a waker names them from now
// on). Returns true if one is ready (do not sleep). *short_sleep: some
// entry cannot be woken (a full waiter set, no doorbell): sleep briefly.
bool PrepareSleep(EpollSet* set, bool bell_ok, bool* short_sleep) {
  *short_sleep = !bell_ok;
  if (!bell_ok) {
    WatchAll(set);
    return false;
  }
  for (uint32_t t : set->watch) {
    EpollEntry& e = set->entries[t - 1];
    if (e.fd < 0 || e.disabled || e.s->closed) continue;
    RegisterAttach(set, e.s);
    bool listed = true;
    HoldArms(&e, ListedId(set, e, t), &listed);
    e.unlisted = !listed;
  }
  shm::HeavyFence();  // one for the whole set; pairs with the wakers' commit fences
  bool barrier_done = false;
  bool ready = false;
  size_t keep = 0;
  std::vector<uint32_t>& w = set->watch;
  for (size_t i = 0; i < w.size(); ++i) {
    const uint32_t t = w[i];
    EpollEntry& e = set->entries[t - 1];
    if (e.fd < 0) {
      e.in_watch = false;
      set->free_tokens.push_back(t);
      continue;
    }
    if (e.disabled) {
      e.in_watch = false;
      continue;
    }
    if (e.s->closed) {  // dropped by the next scan
      w[keep++] = t;
      ready = true;
      continue;
    }
    bool r = ArmRecheck(e.s, e.events, &barrier_done) || e.kernel_ready;
    if (r && (e.events & EPOLLET)) {
      const uint32_t ev = Events(e.s, e.kernel_ready, e.events) & (e.events | kAlways);
      r = ev != 0 && Edge(e, ev, RxMark(e.s), TxMark(e.s));
    }
    ready |= r;
    *short_sleep |= e.unlisted;
    if (r || e.unlisted) {
      w[keep++] = t;
    } else {
      e.in_watch = false;
    }
  }
  w.resize(keep);
  return ready;
}

EpollSet* GetOrCreateSet(int epfd) {
  EpollSet* set = GetEpoll(epfd);
  if (set != nullptr) return set;
  auto* created = new EpollSet();
  created->epfd = epfd;
  created->fork_gen = ForkGeneration();
  FdObject* old = ExchangeObject(epfd, created);
  if (old != nullptr) {
    // Lost a race with another thread (or a stale object): keep theirs.
    if (old->kind == ObjKind::kEpoll) {
      ExchangeObject(epfd, old);
      Unref(created);
      return static_cast<EpollSet*>(old);
    }
    Unref(old);
  }
  return created;
}

}  // namespace

void EpollForgetKernelReg(Socket* s, int epfd) {
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->epolls.size(); ++i) {
    if (s->epolls[i].epfd == epfd) {
      s->epolls.erase(s->epolls.begin() + i);
      break;
    }
  }
  pthread_mutex_unlock(&s->mu);
}

void EpollForgetSocket(Socket* s) {
  pthread_mutex_lock(&s->mu);
  std::vector<Socket::UserEpollReg> regs = s->uepolls;
  for (const auto& r : regs) r.set->mem_refs.fetch_add(1, std::memory_order_relaxed);
  pthread_mutex_unlock(&s->mu);
  for (const auto& r : regs) {
    EpollSet* set = r.set;
    pthread_mutex_lock(&set->mu);
    AdoptAfterFork(set);
    if (r.token <= set->entries.size()) {
      const EpollEntry& e = set->entries[r.token - 1];
      if (e.fd >= 0 && e.s == s) DropEntry(set, r.token);
    }
    pthread_mutex_unlock(&set->mu);
    Unref(set);
  }
}

void EpollSetClosed(EpollSet* set) {
  pthread_mutex_lock(&set->mu);
  AdoptAfterFork(set);
  for (uint32_t t = 1; t <= set->entries.size(); ++t) {
    if (set->entries[t - 1].fd >= 0) DropEntry(set, t);
  }
  set->watch.clear();
  set->entries.clear();
  set->free_tokens.clear();
  set->by_fd.clear();
  if (set->bell != nullptr && set->bell_in_kernel) {
    Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, set->bell->fd, nullptr);
  }
  set->bell_in_kernel = false;
  ReleaseSetBell(set->bell);
  set->bell = nullptr;
  pthread_mutex_unlock(&set->mu);
}

int EpollCtlImpl(int epfd, int op, int fd, epoll_event* ev) {
  Socket* s = GetSocket(fd);
  const Path path = s == nullptr ? Path::kKernel : s->path.load();
  if (s == nullptr || path == Path::kKernel || path == Path::kUndecided) {
    const int rc = Real().epoll_ctl(epfd, op, fd, ev);
    if (rc == 0 && s != nullptr && path == Path::kUndecided) {
      // Remember it: if the socket is offloaded later, OnOffloaded() moves
      // the registration to user-space readiness.
      pthread_mutex_lock(&s->mu);
      if (op == EPOLL_CTL_ADD) {
        s->epolls.push_back({epfd, ev->events, ev->data});
      } else {
        for (auto& r : s->epolls) {
          if (r.epfd == epfd && op == EPOLL_CTL_MOD) {
            r.events = ev->events;
            r.data = ev->data;
          }
        }
      }
      pthread_mutex_unlock(&s->mu);
      if (op == EPOLL_CTL_DEL) EpollForgetKernelReg(s, epfd);
    }
    if (rc == 0 && (op == EPOLL_CTL_ADD || op == EPOLL_CTL_DEL)) {
      if (EpollSet* set = GetEpoll(epfd)) {
        pthread_mutex_lock(&set->mu);
        set->kernel_fds += op == EPOLL_CTL_ADD ? 1 : -1;
        pthread_mutex_unlock(&set->mu);
      }
    }
    return rc;
  }
  // An offloaded socket: user-space entry. Check the epoll fd is real.
  if (op != EPOLL_CTL_DEL && ev == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (epfd == fd) {
    errno = EINVAL;
    return -1;
  }
  if (Real().fcntl(epfd, F_GETFD) < 0) return -1;  // EBADF (regression: redis failed here)
  EpollSet* set = GetOrCreateSet(epfd);
  pthread_mutex_lock(&set->mu);
  AdoptAfterFork(set);
  uint32_t token = 0;
  if (auto it = set->by_fd.find(fd); it != set->by_fd.end()) {
    token = it->second;
    if (set->entries[token - 1].s != s) {
      // A stale entry: the fd was closed and now names another socket.
      DropEntry(set, token);
      token = 0;
    }
  }
  int rc = 0;
  switch (op) {
    case EPOLL_CTL_ADD: {
      if (token != 0) {
        errno = EEXIST;
        rc = -1;
        break;
      }
      if (!set->free_tokens.empty()) {
        token = set->free_tokens.back();
        set->free_tokens.pop_back();
      } else if (set->entries.size() < shm::kMaxHintTokens) {
        set->entries.emplace_back();
        token = static_cast<uint32_t>(set->entries.size());
      } else {
        errno = ENOSPC;  // as the kernel past max_user_watches
        rc = -1;
        break;
      }
      EpollEntry& e = set->entries[token - 1];
      e.fd = fd;
      e.s = s;
      e.events = ev->events;
      e.data = ev->data;
      e.rx_mark = ~uint64_t{0};
      e.tx_mark = ~uint64_t{0};
      s->mem_refs.fetch_add(1, std::memory_order_relaxed);
      set->mem_refs.fetch_add(1, std::memory_order_relaxed);  // the socket's uepolls entry
      pthread_mutex_lock(&s->mu);
      s->uepolls.push_back({set, token});
      pthread_mutex_unlock(&s->mu);
      set->by_fd[fd] = token;
      ++set->live;
      KernelRegister(set, s, fd);
      RegisterAttach(set, s);
      Watch(set, token);
      break;
    }
    case EPOLL_CTL_MOD: {
      if (token == 0) {
        errno = ENOENT;
        rc = -1;
        break;
      }
      EpollEntry& e = set->entries[token - 1];
      e.events = ev->events;
      e.data = ev->data;
      e.disabled = false;
      e.rx_mark = ~uint64_t{0};
      e.tx_mark = ~uint64_t{0};
      Watch(set, token);
      break;
    }
    case EPOLL_CTL_DEL:
      if (token == 0) {
        errno = ENOENT;
        rc = -1;
        break;
      }
      DropEntry(set, token);
      break;
    default:
      errno = EINVAL;
      rc = -1;
  }
  // Wake a thread sleeping in epoll_wait on this set so it sees the change
  // (the entry is on the watch list).
  if (rc == 0 && op != EPOLL_CTL_DEL && set->bell != nullptr && set->bell_in_kernel) {
    shm::Kick(set->bell->fd);
  }
  pthread_mutex_unlock(&set->mu);
  return rc;
}

namespace {

// Every offloaded entry left the set: a plain kernel wait (our own fds
// leave the kernel set too, so a kicked doorbell neither wakes nor reaches
// the application).
int WaitKernelOnly(EpollSet* set, epoll_event* events, int maxevents, int64_t deadline,
                   const sigset_t* sigmask) {
  pthread_mutex_lock(&set->mu);
  if (set->live == 0) {
    if (set->bell != nullptr && set->bell_in_kernel) {
      Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, set->bell->fd, nullptr);
      set->bell_in_kernel = false;
    }
    if (set->attach_fd >= 0) Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, set->attach_fd, nullptr);
    set->attach_fd = -1;
  }
  pthread_mutex_unlock(&set->mu);
  const int64_t left = deadline == INT64_MAX ? -1 : std::max<int64_t>(0, deadline - NowNs());
  int result = sigmask ? Real().epoll_pwait(set->epfd, events, maxevents, ToMs(left), sigmask)
                       : Real().epoll_wait(set->epfd, events, maxevents, ToMs(left));
  if (result > 0) {
    // A tagged event of ours registered before the set emptied.
    int kept = 0;
    for (int i = 0; i < result; ++i) {
      const uint64_t tag = events[i].data.u64 & kTagMask;
      if (tag == kTagEfd || tag == kTagShadow || tag == kTagDoorbell || tag == kTagAttach) {
        continue;
      }
      events[kept++] = events[i];
    }
    result = kept;
  }
  return result;
}

}  // namespace

int EpollWaitImpl(int epfd, epoll_event* events, int maxevents, int timeout_ms,
                  const sigset_t* sigmask) {
  EpollSet* set = GetEpoll(epfd);
  if (set == nullptr || maxevents <= 0) {
    return sigmask ? Real().epoll_pwait(epfd, events, maxevents, timeout_ms, sigmask)
                   : Real().epoll_wait(epfd, events, maxevents, timeout_ms);
  }
  set->mem_refs.fetch_add(1, std::memory_order_relaxed);
  const ClientConfig& cfg = Config();
  const int64_t start = NowNs();
  const int64_t timeout_ns = timeout_ms < 0 ? -1 : int64_t{timeout_ms} * 1000000;
  const int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
  const int64_t spin_until =
      start + SpinBudgetNs(set->last_active_ns.load(std::memory_order_relaxed), start, timeout_ns);
  epoll_event kev[64];
  const bool first_call_kernel =
      set->calls.fetch_add(1, std::memory_order_relaxed) % cfg.select_os_ratio == 0;
  uint64_t iter = 0;
  bool stop_spinning = !SpinAllowed();
  int result = 0;
  for (;;) {
    PollEvents();
    int n = 0;
    pthread_mutex_lock(&set->mu);
    AdoptAfterFork(set);
    // The kernel side (application kernel fds, shadows, eventfds) is asked
    // every OFFLOAD_SELECT_POLL_OS_RATIO spins, and on entry only every
    // that many calls: a busy offloaded set then costs no syscall per call.
    const bool poll_kernel =
        iter % cfg.select_os_ratio == 0 && (iter != 0 || first_call_kernel);
    if (poll_kernel) {
      for (uint32_t t : set->watch) set->entries[t - 1].kernel_ready = false;
      const int k = Real().epoll_wait(epfd, kev, 64, 0);
      if (k < 0) {
        pthread_mutex_unlock(&set->mu);
        result = -1;
        break;
      }
      n = TakeKernelEvents(set, kev, k, events, maxevents);
    }
    TakeHints(set);
    n += ScanWatch(set, events + n, maxevents - n);
    const bool empty = set->live == 0;
    pthread_mutex_unlock(&set->mu);
    if (n > 0) {
      set->last_active_ns.store(NowNs(), std::memory_order_relaxed);
      if (iter > 0) SpinSucceeded();
      result = n;
      break;
    }
    if (empty) {
      result = WaitKernelOnly(set, events, maxevents, deadline, sigmask);
      break;
    }
    ++iter;
    const int64_t now = NowNs();
    if (timeout_ns == 0 || now >= deadline) {
      result = 0;
      break;
    }
    if (now < spin_until && !stop_spinning) {
      if (!SpinStep(iter)) stop_spinning = true;
      continue;
    }
    // Sleep: arm what is watched, re-check, then wait in the kernel (the
    // doorbell, eventfds, shadows and the application's kernel fds are all
    // in this epoll set).
    pthread_mutex_lock(&set->mu);
    const bool bell_ok = EnsureBell(set);
    bool short_sleep = false;
    const bool ready = PrepareSleep(set, bell_ok, &short_sleep);
    pthread_mutex_unlock(&set->mu);
    if (!ready) {
      int64_t left = deadline == INT64_MAX ? -1 : std::max<int64_t>(0, deadline - NowNs());
      // Something that cannot wake us: a short sleep, never an unwoken one.
      if (short_sleep && (left < 0 || left > 1000000)) left = 1000000;
      const int k = sigmask ? Real().epoll_pwait(epfd, kev, 64, ToMs(left), sigmask)
                            : Real().epoll_wait(epfd, kev, 64, ToMs(left));
      pthread_mutex_lock(&set->mu);
      if (k < 0) {
        pthread_mutex_unlock(&set->mu);
        result = -1;
        break;
      }
      for (uint32_t t : set->watch) set->entries[t - 1].kernel_ready = false;
      n = TakeKernelEvents(set, kev, k, events, maxevents);
      TakeHints(set);
      n += ScanWatch(set, events + n, maxevents - n);
      pthread_mutex_unlock(&set->mu);
      if (n > 0) {
        set->last_active_ns.store(NowNs(), std::memory_order_relaxed);
        result = n;
        break;
      }
      if (deadline != INT64_MAX && NowNs() >= deadline) {
        result = 0;
        break;
      }
    }
    iter = 0;  // look at the kernel again first thing
  }
  const int err = errno;
  Unref(set);
  errno = err;
  return result;
}

}  // namespace client
}  // namespace offload
