// poll/select/epoll over mixed kernel and offloaded fds.
//
// Offloaded fds have user-space readiness (ring state); kernel fds are asked
// with a zero-timeout kernel call every OFFLOAD_SELECT_POLL_OS_RATIO spins.
// A call spins for up to OFFLOAD_SELECT_POLL µs, but only while the set saw
// activity in the last second (fast when busy, silent when idle), then arms
// every offloaded fd (shm/ring.h: this process's doorbell listed on the
// lines it waits on) and sleeps in the kernel on the kernel fds + the
// doorbell (+ the shadows of offloaded listeners/UDP sockets, the eventfds
// of UDP sockets, and the attach socket when an engine serves a
// connection: offloadd's death resets those).
//
// epoll: offloaded fds live in a user-space list attached to the epoll fd
// (EpollSet); the doorbell, the UDP eventfds and the shadows are registered
// in the kernel epoll set with tagged data (socket.h kTag*).
// Level-triggered, EPOLLET (report when new data arrived / space was freed
// since the last report) and EPOLLONESHOT keep their meaning; closing an fd
// drops it from every set.

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

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

constexpr int64_t kActiveWindowNs = 1000000000;  // spin only if active in the last 1 s
thread_local int64_t t_poll_active_ns = 0;

constexpr uint32_t kAlways = EPOLLERR | EPOLLHUP;

int64_t SpinBudgetNs(int64_t last_active_ns, int64_t now, int64_t timeout_ns) {
  if (now - last_active_ns > kActiveWindowNs) return 0;
  const ClientConfig& cfg = Config();
  const int64_t b = cfg.select_poll_us < 0 ? INT64_MAX / 4 : cfg.select_poll_us * 1000;
  return timeout_ns < 0 ? b : std::min(b, timeout_ns);
}

int ToMs(int64_t ns) {
  if (ns < 0) return -1;
  const int64_t ms = (ns + 999999) / 1000000;
  return ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms);
}

}  // namespace

// ------------------------------------------------------------------ poll

// poll() over a set with at least one offloaded fd, `socks` held.
static int PollOffloaded(pollfd* fds, nfds_t n, Socket** socks, size_t offloaded,
                         int64_t timeout_ns, const sigset_t* sigmask);

int PollImpl(pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* sigmask) {
  // Fast exit: nothing offloaded in the set.
  Socket* stack_socks[64];
  std::vector<Socket*> heap_socks;
  Socket** socks = stack_socks;
  if (n > 64) {
    heap_socks.resize(n);
    socks = heap_socks.data();
  }
  size_t offloaded = 0;
  for (nfds_t i = 0; i < n; ++i) {
    socks[i] = GetOffloaded(fds[i].fd);
    offloaded += socks[i] != nullptr;
  }
  if (offloaded == 0) {
    if (sigmask == nullptr && timeout_ns >= -1) return Real().poll(fds, n, ToMs(timeout_ns));
    struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
    return Real().ppoll(fds, n, timeout_ns < 0 ? nullptr : &ts, sigmask);
  }
  // Hold the sockets while we may sleep on them (another thread may close).
  for (nfds_t i = 0; i < n; ++i) {
    if (socks[i] != nullptr) socks[i]->mem_refs.fetch_add(1, std::memory_order_relaxed);
  }
  const int rc = PollOffloaded(fds, n, socks, offloaded, timeout_ns, sigmask);
  const int err = errno;
  for (nfds_t i = 0; i < n; ++i) {
    if (socks[i] != nullptr) Unref(socks[i]);
  }
  errno = err;
  return rc;
}

static int PollOffloaded(pollfd* fds, nfds_t n, Socket** socks, size_t offloaded,
                         int64_t timeout_ns, const sigset_t* sigmask) {
  // Kernel part: the kernel fds as given, plus shadows of listeners/UDP;
  // then (sleep only) the eventfds of offloaded fds.
  std::vector<pollfd> kfds;
  std::vector<int> kmap;  // kfds index -> fds index
  kfds.reserve(n + 2 * offloaded);
  for (nfds_t i = 0; i < n; ++i) {
    if (socks[i] == nullptr) {
      kfds.push_back({fds[i].fd, fds[i].events, 0});
      kmap.push_back(static_cast<int>(i));
    } else if (socks[i]->path.load() != Path::kPipe) {
      kfds.push_back({socks[i]->fd, POLLIN, 0});
      kmap.push_back(static_cast<int>(i));
    }
  }
  const size_t nkernel = kfds.size();
  bool need_doorbell = false, need_attach = false;
  for (nfds_t i = 0; i < n; ++i) {
    if (socks[i] == nullptr) continue;
    if (socks[i]->path.load() == Path::kUdp) {
      kfds.push_back({socks[i]->efd.get(), POLLIN, 0});
      kmap.push_back(static_cast<int>(i));
    } else {
      need_doorbell = true;
      need_attach |= socks[i]->path.load() == Path::kPipe && socks[i]->pipe->engine;
    }
  }
  const int doorbell_at = need_doorbell && DoorbellFd() >= 0 ? static_cast<int>(kfds.size()) : -1;
  if (doorbell_at >= 0) {
    kfds.push_back({DoorbellFd(), POLLIN, 0});
    kmap.push_back(-1);
  }
  const int attach_at = need_attach && AttachFd() >= 0 ? static_cast<int>(kfds.size()) : -1;
  if (attach_at >= 0) {
    kfds.push_back({AttachFd(), 0, 0});
    kmap.push_back(-1);
  }
  const ClientConfig& cfg = Config();
  const int64_t start = NowNs();
  const int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
  const int64_t spin_until = start + SpinBudgetNs(t_poll_active_ns, start, timeout_ns);
  uint64_t iter = 0;
  bool stop_spinning = !SpinAllowed();
  bool slept = false;
  bool kernel_fresh = false;  // kfds revents are from a call made this round
  // What ArmFlags() armed per fd.
  uint32_t stack_armed[64];
  std::vector<uint32_t> heap_armed(n > 64 ? n : 0);
  uint32_t* armed = n > 64 ? heap_armed.data() : stack_armed;
  for (;;) {
    PollEvents();
    if (!kernel_fresh && nkernel > 0 && iter % cfg.select_os_ratio == 0) {
      for (size_t k = 0; k < nkernel; ++k) kfds[k].revents = 0;
      if (Real().poll(kfds.data(), nkernel, 0) < 0) return -1;
      kernel_fresh = true;
    }
    int ready = 0;
    for (nfds_t i = 0; i < n; ++i) fds[i].revents = 0;
    if (kernel_fresh) {
      for (size_t k = 0; k < nkernel; ++k) {
        if (kfds[k].revents == 0) continue;
        const int i = kmap[k];
        if (socks[i] == nullptr) {
          fds[i].revents = kfds[k].revents;
        } else if (kfds[k].revents & POLLIN) {
          fds[i].revents |= static_cast<short>(POLLIN & fds[i].events);
        }
      }
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (socks[i] != nullptr) {
        const uint32_t ev = Events(socks[i], false, fds[i].events) & (fds[i].events | kAlways);
        fds[i].revents |= static_cast<short>(ev);
        Add(socks[i]->slot->poll_hits, ev != 0);
      }
      ready += fds[i].revents != 0;
    }
    if (ready > 0) {
      t_poll_active_ns = NowNs();
      if (iter > 0 && !slept) SpinSucceeded();
      return ready;
    }
    kernel_fresh = false;
    ++iter;
    const int64_t now = NowNs();
    if (timeout_ns == 0 || now >= deadline) return 0;
    if (now < spin_until && !stop_spinning) {
      if (!SpinStep(iter)) stop_spinning = true;
      continue;
    }
    // Sleep: arm every offloaded fd, re-check, then the kernel.
    bool armed_ready = false;
    bool listed = true;
    for (nfds_t i = 0; i < n; ++i) {
      if (socks[i] != nullptr) armed[i] = ArmFlags(socks[i], fds[i].events, &listed);
    }
    shm::HeavyFence();  // one for the whole set
    bool barrier_done = false;
    for (nfds_t i = 0; i < n; ++i) {
      if (socks[i] != nullptr) armed_ready |= ArmRecheck(socks[i], fds[i].events, &barrier_done);
    }
    if (armed_ready) {
      for (nfds_t i = 0; i < n; ++i) {
        if (socks[i] != nullptr) Disarm(socks[i], armed[i]);
      }
      continue;
    }
    for (auto& k : kfds) k.revents = 0;
    int64_t left = deadline == INT64_MAX ? -1 : std::max<int64_t>(0, deadline - NowNs());
    // A socket that could not list our doorbell: a short sleep, never an
    // unwoken one.
    if ((!listed || (need_doorbell && doorbell_at < 0)) && (left < 0 || left > 1000000)) {
      left = 1000000;
    }
    struct timespec ts = {left / 1000000000, left % 1000000000};
    const int rc = Real().ppoll(kfds.data(), kfds.size(), left < 0 ? nullptr : &ts, sigmask);
    slept = true;
    for (nfds_t i = 0; i < n; ++i) {
      if (socks[i] != nullptr) {
        Disarm(socks[i], armed[i]);
        Add(socks[i]->slot->poll_misses, 1);
      }
    }
    if (rc < 0) return -1;  // EINTR etc.
    for (size_t k = nkernel; k < kfds.size(); ++k) {
      if (static_cast<int>(k) == doorbell_at || static_cast<int>(k) == attach_at) continue;
      if (kfds[k].revents & POLLIN) shm::Drain(kfds[k].fd);
    }
    AfterDoorbellSleep(doorbell_at >= 0 && (kfds[doorbell_at].revents & POLLIN),
                       attach_at >= 0 && (kfds[attach_at].revents & (POLLHUP | POLLERR)));
    // The kernel results of this sleep are used as they are; a timeout
    // still gets one last look at the offloaded fds before returning 0.
    kernel_fresh = nkernel > 0;
  }
}

// ----------------------------------------------------------------- epoll

namespace {

EpollSet* GetOrCreateSet(int epfd) {
  EpollSet* set = GetEpoll(epfd);
  if (set != nullptr) return set;
  auto* created = new EpollSet();
  created->epfd = epfd;
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

// The process-wide fds a set's sleep needs: the doorbell (once per set),
// and the attach socket when an engine serves one of its connections.
// REQUIRES: set->mu held.
void RegisterProcessFds(EpollSet* set, Socket* s) {
  const Path p = s->path.load();
  if (p == Path::kUdp) return;
  // The calling thread's doorbell (each thread that waits on the set adds
  // its own).
  const int doorbell = DoorbellFd();
  if (doorbell >= 0 && std::find(set->doorbell_fds.begin(), set->doorbell_fds.end(), doorbell) ==
                           set->doorbell_fds.end()) {
    epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagDoorbell | static_cast<uint32_t>(doorbell);
    if (Real().epoll_ctl(set->epfd, EPOLL_CTL_ADD, doorbell, &ev) == 0 || errno == EEXIST) {
      set->doorbell_fds.push_back(doorbell);
    }
  }
  const int attach = AttachFd();
  if (p == Path::kPipe && s->pipe->engine && attach >= 0 && set->attach_fd != attach) {
    if (set->attach_fd >= 0) Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, set->attach_fd, nullptr);
    epoll_event ev = {};
    ev.events = 0;  // EPOLLHUP / EPOLLERR are always reported
    ev.data.u64 = kTagAttach;
    if (Real().epoll_ctl(set->epfd, EPOLL_CTL_ADD, attach, &ev) == 0) set->attach_fd = attach;
  }
}

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
  RegisterProcessFds(set, s);
}

void KernelUnregister(EpollSet* set, Socket* s, int fd) {
  const Path p = s->path.load();
  if (p == Path::kUdp && s->efd.valid()) {
    Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, s->efd.get(), nullptr);
  }
  if (p == Path::kListener || p == Path::kUdp) Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, fd, nullptr);
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
  auto it = std::find_if(set->entries.begin(), set->entries.end(),
                         [&](const EpollEntry& e) { return e.fd == fd && e.s == s; });
  int rc = 0;
  switch (op) {
    case EPOLL_CTL_ADD:
      if (it != set->entries.end()) {
        errno = EEXIST;
        rc = -1;
        break;
      }
      {
        EpollEntry e;
        e.fd = fd;
        e.s = s;
        e.events = ev->events;
        e.data = ev->data;
        e.rx_mark = ~uint64_t{0};
        e.tx_mark = ~uint64_t{0};
        s->mem_refs.fetch_add(1, std::memory_order_relaxed);
        set->entries.push_back(e);
        KernelRegister(set, s, fd);
      }
      break;
    case EPOLL_CTL_MOD:
      if (it == set->entries.end()) {
        errno = ENOENT;
        rc = -1;
        break;
      }
      it->events = ev->events;
      it->data = ev->data;
      it->disabled = false;
      it->rx_mark = ~uint64_t{0};
      it->tx_mark = ~uint64_t{0};
      break;
    case EPOLL_CTL_DEL:
      if (it == set->entries.end()) {
        errno = ENOENT;
        rc = -1;
        break;
      }
      KernelUnregister(set, s, fd);
      Unref(it->s);
      set->entries.erase(it);
      break;
    default:
      errno = EINVAL;
      rc = -1;
  }
  pthread_mutex_unlock(&set->mu);
  // Wake a thread sleeping in epoll_wait on this set so it sees the change.
  if (rc == 0 && op != EPOLL_CTL_DEL) {
    if (s->path.load() == Path::kUdp) {
      if (s->efd.valid()) shm::Kick(s->efd.get());
    } else {
      pthread_mutex_lock(&set->mu);
      for (int fd : set->doorbell_fds) shm::Kick(fd);
      pthread_mutex_unlock(&set->mu);
    }
  }
  return rc;
}

namespace {

// Processes kernel events: tagged ones update entries / drain eventfds,
// the application's go to `out`. Returns the number written to `out`.
int TakeKernelEvents(EpollSet* set, const epoll_event* kev, int k, epoll_event* out, int room) {
  int n = 0;
  for (int i = 0; i < k; ++i) {
    const uint64_t tag = kev[i].data.u64 & kTagMask;
    const int fd = static_cast<int>(kev[i].data.u64 & 0xffffffffu);
    if (tag == kTagEfd) {
      Socket* s = GetSocket(fd);
      if (s != nullptr && s->efd.valid()) shm::Drain(s->efd.get());
    } else if (tag == kTagDoorbell) {
      shm::Drain(fd);
    } else if (tag == kTagAttach) {
      if (kev[i].events & (EPOLLHUP | EPOLLERR)) {
        Real().epoll_ctl(set->epfd, EPOLL_CTL_DEL, set->attach_fd, nullptr);
        set->attach_fd = -1;
        AfterDoorbellSleep(false, true);
      }
    } else if (tag == kTagShadow) {
      for (auto& e : set->entries) {
        if (e.fd == fd) e.kernel_ready = true;
      }
    } else if (n < room) {
      out[n++] = kev[i];
    }
  }
  return n;
}

int ScanEntries(EpollSet* set, epoll_event* out, int room) {
  int n = 0;
  for (size_t i = 0; i < set->entries.size() && n < room;) {
    EpollEntry& e = set->entries[i];
    if (e.s->closed || GetObject(e.fd) != e.s) {
      // Closed (or the fd now names something else): Linux drops it.
      KernelUnregister(set, e.s, e.fd);
      Unref(e.s);
      set->entries.erase(set->entries.begin() + i);
      continue;
    }
    ++i;
    if (e.disabled) continue;
    uint32_t ev = Events(e.s, e.kernel_ready, e.events) & (e.events | kAlways);
    if (ev == 0) continue;
    if (e.events & EPOLLET) {
      // Edge: report (the whole ready mask, as Linux does) only when new
      // data arrived or space was freed since the last look.
      const uint64_t rx = RxMark(e.s), tx = TxMark(e.s);
      const bool edge = ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) &&
                         (rx != e.rx_mark || e.kernel_ready)) ||
                        ((ev & EPOLLOUT) && tx != e.tx_mark);
      e.rx_mark = rx;
      e.tx_mark = tx;
      if (!edge) continue;
    }
    e.kernel_ready = false;
    out[n].events = ev;
    out[n].data = e.data;
    ++n;
    Add(e.s->slot->poll_hits, 1);
    if (e.events & EPOLLONESHOT) e.disabled = true;
  }
  return n;
}

}  // namespace

namespace {
struct ArmedSocket {
  Socket* s;
  uint32_t bits;
};
void DisarmAll(std::vector<ArmedSocket>* armed) {
  for (const ArmedSocket& a : *armed) {
    Disarm(a.s, a.bits);
    Unref(a.s);
  }
  armed->clear();
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
  std::vector<ArmedSocket> armed;
  const bool first_call_kernel =
      set->calls.fetch_add(1, std::memory_order_relaxed) % cfg.select_os_ratio == 0;
  uint64_t iter = 0;
  bool stop_spinning = !SpinAllowed();
  int result = 0;
  for (;;) {
    PollEvents();
    int n = 0;
    pthread_mutex_lock(&set->mu);
    // The kernel side (application kernel fds, shadows) is asked every
    // OFFLOAD_SELECT_POLL_OS_RATIO spins, and on entry only every that many
    // calls: a busy offloaded set then costs no syscall per call.
    const bool poll_kernel =
        iter % cfg.select_os_ratio == 0 && (iter != 0 || first_call_kernel);
    if (poll_kernel) {
      for (auto& e : set->entries) e.kernel_ready = false;
      const int k = Real().epoll_wait(epfd, kev, 64, 0);
      if (k < 0) {
        pthread_mutex_unlock(&set->mu);
        result = -1;
        break;
      }
      n = TakeKernelEvents(set, kev, k, events, maxevents);
    }
    n += ScanEntries(set, events + n, maxevents - n);
    const bool empty = set->entries.empty();
    pthread_mutex_unlock(&set->mu);
    if (n > 0) {
      set->last_active_ns.store(NowNs(), std::memory_order_relaxed);
      if (iter > 0) SpinSucceeded();
      result = n;
      break;
    }
    if (empty) {  // every offloaded fd left the set: plain kernel wait
      pthread_mutex_lock(&set->mu);
      // Our own fds leave the kernel set too (a kicked doorbell must not
      // wake, let alone be reported to, the application).
      if (set->entries.empty()) {
        for (int fd : set->doorbell_fds) Real().epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
        set->doorbell_fds.clear();
        if (set->attach_fd >= 0) Real().epoll_ctl(epfd, EPOLL_CTL_DEL, set->attach_fd, nullptr);
        set->attach_fd = -1;
      }
      pthread_mutex_unlock(&set->mu);
      const int64_t left = deadline == INT64_MAX ? -1 : std::max<int64_t>(0, deadline - NowNs());
      result = sigmask ? Real().epoll_pwait(epfd, events, maxevents, ToMs(left), sigmask)
                       : Real().epoll_wait(epfd, events, maxevents, ToMs(left));
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
    // Sleep: arm, re-check, then wait in the kernel (eventfds + shadows +
    // the application's kernel fds are all in this epoll set).
    bool ready = false;
    pthread_mutex_lock(&set->mu);
    const int my_doorbell = DoorbellFd();
    bool listed = my_doorbell >= 0;
    // What this thread armed, held until it disarms (entries may leave the
    // set while it sleeps).
    armed.clear();
    for (auto& e : set->entries) {
      if (e.disabled || e.s->closed) continue;
      RegisterProcessFds(set, e.s);
      const uint32_t bits = ArmFlags(e.s, e.events, &listed);
      if (bits != 0) {
        e.s->mem_refs.fetch_add(1, std::memory_order_relaxed);
        armed.push_back({e.s, bits});
      }
    }
    listed &= std::find(set->doorbell_fds.begin(), set->doorbell_fds.end(), my_doorbell) !=
              set->doorbell_fds.end();
    shm::HeavyFence();  // one for the whole set
    bool barrier_done = false;
    for (auto& e : set->entries) {
      if (!e.disabled && !e.s->closed) ready |= ArmRecheck(e.s, e.events, &barrier_done);
    }
    pthread_mutex_unlock(&set->mu);
    if (!ready) {
      int64_t left = deadline == INT64_MAX ? -1 : std::max<int64_t>(0, deadline - NowNs());
      // A socket that could not list our doorbell: a short sleep, never an
      // unwoken one.
      if (!listed && (left < 0 || left > 1000000)) left = 1000000;
      const int k = sigmask ? Real().epoll_pwait(epfd, kev, 64, ToMs(left), sigmask)
                            : Real().epoll_wait(epfd, kev, 64, ToMs(left));
      const int wait_errno = errno;
      DisarmAll(&armed);
      errno = wait_errno;
      pthread_mutex_lock(&set->mu);
      if (k < 0) {
        pthread_mutex_unlock(&set->mu);
        result = -1;
        break;
      }
      for (auto& e : set->entries) e.kernel_ready = false;
      n = TakeKernelEvents(set, kev, k, events, maxevents);
      n += ScanEntries(set, events + n, maxevents - n);
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
    } else {
      DisarmAll(&armed);
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
