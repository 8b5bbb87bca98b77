// poll/select over mixed kernel and offloaded fds.
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
// epoll is in epoll.cc.

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
}  // namespace

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
  // A call that will sleep at once if nothing offloaded is ready leaves the
  // kernel fds to the sleep's ppoll (one system call fewer per sleep); if
  // something is ready after all, the kernel is asked before returning, so
  // the answer is as complete as ever.
  bool kernel_in_sleep = timeout_ns != 0 && (stop_spinning || spin_until <= start);
  for (;;) {
    PollEvents();
    if (!kernel_fresh && nkernel > 0 && iter % cfg.select_os_ratio == 0 && !kernel_in_sleep) {
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
    if (ready > 0 && kernel_in_sleep && nkernel > 0) {
      kernel_in_sleep = false;  // look at the kernel fds too, then answer
      continue;
    }
    if (ready > 0) {
      t_poll_active_ns = NowNs();
      if (iter > 0 && !slept) SpinSucceeded();
      return ready;
    }
    kernel_in_sleep = false;
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

}  // namespace client
}  // namespace offload
