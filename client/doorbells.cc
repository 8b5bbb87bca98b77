// Wake-ups across threads and processes (shm/ring.h): each thread's
// doorbell (an eventfd registered with offloadd), epoll sets' doorbells,
// this process's copies of other processes' doorbells, and WakeLine, which
// wakes the sleepers a wait line names. The caller token of shm::EndLock
// lives here too. The attach session (attach.cc) carries the requests.
//
// Thread safety: the doorbell tables are guarded by g_peer_mu; a thread's
// own doorbell is thread-local. Every function is thread-safe.

#include <errno.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <new>
#include <unordered_map>
#include <vector>

#include "client/attach.h"
#include "client/attach_internal.h"
#include "shm/unique_fd.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

namespace {

// Doorbell ids of this process's threads (RemoveOwnWaiters), guarded by
// g_peer_mu.
std::vector<uint64_t>* g_own_doorbells = nullptr;
struct Bell;
std::vector<Bell*>* g_free_bells = nullptr;  // threads' doorbells to reuse (g_peer_mu)
// Peers' doorbells by id (our copies), guarded by g_peer_mu.
pthread_mutex_t g_peer_mu = PTHREAD_MUTEX_INITIALIZER;
// A doorbell as a waker of this process sees it: our copy of its eventfd
// (-1: its process is gone) and its hint ring (null if none).
struct PeerBell {
  int fd = -1;
  shm::HintRing* ring = nullptr;
  bool copy = false;  // fd and ring are ours to close (from offloadd), not a bell of ours
};
std::unordered_map<uint64_t, PeerBell>* g_peer_doorbells = nullptr;
size_t g_gone_bells = 0;  // entries with fd -1 (forgotten in bulk past a bound)
// Copies retired (the owner went, kDoorbellGone; or offloadd did, engine
// bells) while a kicker may still hold their numbers: closed once no kick
// is in flight. Both under g_peer_mu.
std::vector<PeerBell>* g_retired_bells = nullptr;
uint32_t g_kicks_in_flight = 0;

// REQUIRES: g_peer_mu. Closes the retired copies if no kick holds one.
void CloseRetiredLocked() {
  if (g_kicks_in_flight != 0 || g_retired_bells == nullptr) return;
  for (const PeerBell& b : *g_retired_bells) {
    if (b.fd >= 0) shm::UniqueFd drop(b.fd);
    if (b.ring != nullptr) munmap(b.ring, shm::HintRingBytes());
  }
  g_retired_bells->clear();
}

// REQUIRES: g_peer_mu. Takes `it` out of the table; a copy is closed once
// no kick holds it.
void RetireLocked(std::unordered_map<uint64_t, PeerBell>::iterator it) {
  if (it->second.fd < 0) --g_gone_bells;
  if (it->second.copy) {
    if (g_retired_bells == nullptr) g_retired_bells = new std::vector<PeerBell>();
    g_retired_bells->push_back(it->second);
  }
  g_peer_doorbells->erase(it);
  CloseRetiredLocked();
}
std::vector<SetBell*>* g_free_set_bells = nullptr;  // epoll sets' doorbells to reuse
std::atomic<uint32_t> g_fork_gen{1};

}  // namespace

void ForgetEngineDoorbells() {
  // Engines' doorbells were that daemon's: the next one has its own.
  pthread_mutex_lock(&g_peer_mu);
  if (g_peer_doorbells != nullptr) {
    for (auto it = g_peer_doorbells->begin(); it != g_peer_doorbells->end();) {
      auto next = std::next(it);
      if (it->first & shm::kEngineDoorbellBit) RetireLocked(it);
      it = next;
    }
  }
  pthread_mutex_unlock(&g_peer_mu);
}

void ForgetPeerDoorbell(uint64_t listed) {
  pthread_mutex_lock(&g_peer_mu);
  if (g_peer_doorbells != nullptr && !(listed & shm::kEngineDoorbellBit)) {
    auto it = g_peer_doorbells->find(shm::DoorbellOf(listed));
    if (it != g_peer_doorbells->end() && it->second.copy) RetireLocked(it);
  }
  pthread_mutex_unlock(&g_peer_mu);
}

void DoorbellsAtForkChild() {
  pthread_mutex_init(&g_peer_mu, nullptr);
  g_kicks_in_flight = 0;  // only this thread is left, and it is not kicking
  g_fork_gen.fetch_add(1, std::memory_order_relaxed);  // new thread identities
  // The parent's threads' doorbells wake the parent; ours come with our
  // threads (DoorbellFd(), renewed by the fork generation). The pool's
  // eventfds are the parent's: forget them (their numbers stay taken).
  if (g_own_doorbells != nullptr) g_own_doorbells->clear();
  if (g_free_bells != nullptr) g_free_bells->clear();
  if (g_free_set_bells != nullptr) g_free_set_bells->clear();
}

namespace {

// This thread's doorbell: an eventfd registered with offloadd under a
// random id (kRegisterDoorbell), so that peers and engines can wake this
// thread and only it. Registered again with a restarted offloadd (same
// eventfd, same id: peers that knew it still reach it). A thread that exits
// gives its doorbell back to a pool for the next thread: its fd is never
// closed, so its number can never come to mean an application's file (epoll
// sets and peers refer to it); a stale waiter entry only wakes the next
// owner spuriously.
struct Bell {
  int fd = -1;
  uint64_t id = 0;
  uint32_t attach_gen = 0;  // the session it is registered with (0: none)
};
struct ThreadBell {
  Bell* bell = nullptr;
  uint32_t fork_gen = 0;
};
thread_local ThreadBell t_bell;
pthread_key_t g_bell_key;
pthread_once_t g_bell_once = PTHREAD_ONCE_INIT;

void ReturnBell(void* arg) {
  pthread_mutex_lock(&g_peer_mu);
  if (g_free_bells == nullptr) g_free_bells = new std::vector<Bell*>();
  g_free_bells->push_back(static_cast<Bell*>(arg));
  pthread_mutex_unlock(&g_peer_mu);
}

Bell* MyBell() {
  const uint32_t fork_gen = g_fork_gen.load(std::memory_order_relaxed);
  if (t_bell.fork_gen != fork_gen) {
    t_bell.bell = nullptr;  // a forked child: that one is the parent thread's
    t_bell.fork_gen = fork_gen;
  }
  if (t_bell.bell != nullptr) return t_bell.bell;
  pthread_once(&g_bell_once, [] { pthread_key_create(&g_bell_key, ReturnBell); });
  Bell* b = nullptr;
  pthread_mutex_lock(&g_peer_mu);
  if (g_free_bells != nullptr && !g_free_bells->empty()) {
    b = g_free_bells->back();
    g_free_bells->pop_back();
  }
  pthread_mutex_unlock(&g_peer_mu);
  if (b == nullptr) {
    const int fd = HideFd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (fd < 0) return nullptr;
    b = new (std::nothrow) Bell();
    if (b == nullptr) {
      shm::UniqueFd drop(fd);
      return nullptr;
    }
    b->fd = fd;
  }
  t_bell.bell = b;
  pthread_setspecific(g_bell_key, b);
  return b;
}

// This thread's bell, registered with the current offloadd; null if that
// cannot be done now.
// Registers doorbell `fd` (with hint ring `hints_fd`, or -1) with the
// current offloadd under *id, choosing a new random id while offloadd says
// it is taken (kept across restarts otherwise). True once registered; the
// id is then in the own and peer tables, so this process wakes it without
// asking offloadd.
bool RegisterDoorbell(uint64_t* id, int fd, int hints_fd, shm::HintRing* ring) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    while (*id == 0) {
      if (getrandom(id, sizeof(*id), 0) != static_cast<ssize_t>(sizeof(*id))) {
        *id = (uint64_t(getpid()) << 32) ^ static_cast<uint64_t>(NowMs()) ^
              reinterpret_cast<uintptr_t>(id);
      }
      *id &= ~(shm::kEngineDoorbellBit | shm::kExclusiveWaiterBit | shm::kHintTokenMask);
    }
    shm::Msg m = {};
    m.type = hints_fd >= 0 ? shm::MsgType::kRegisterHintedDoorbell
                           : shm::MsgType::kRegisterDoorbell;
    m.value64 = *id;
    const int fds[2] = {fd, hints_fd};
    shm::Msg r;
    int rfds[shm::kMaxMsgFds];
    int nr = 0;
    if (!Call(&m, fds, hints_fd >= 0 ? 2 : 1, &r, rfds, &nr)) return false;
    CloseFds(rfds, nr);
    if (r.type == shm::MsgType::kStatus && r.status == 0) {
      pthread_mutex_lock(&g_peer_mu);
      if (g_own_doorbells == nullptr) g_own_doorbells = new std::vector<uint64_t>();
      if (std::find(g_own_doorbells->begin(), g_own_doorbells->end(), *id) ==
          g_own_doorbells->end()) {
        g_own_doorbells->push_back(*id);
      }
      // Waking another thread of this process (or, in a forked child, of
      // its parent: the eventfd is the same file) needs no daemon.
      if (g_peer_doorbells == nullptr) {
        g_peer_doorbells = new std::unordered_map<uint64_t, PeerBell>();
      }
      (*g_peer_doorbells)[*id] = PeerBell{fd, ring};
      pthread_mutex_unlock(&g_peer_mu);
      return true;
    }
    if (r.type == shm::MsgType::kStatus && r.status != EEXIST) return false;
    *id = 0;  // EEXIST: another thread somewhere has that id
  }
  return false;
}

Bell* EnsureBell() {
  if (!EnsureAttached()) return nullptr;
  Bell* b = MyBell();
  if (b == nullptr) return nullptr;
  const uint32_t gen = AttachGeneration();
  if (b->attach_gen == gen) return b;
  if (!RegisterDoorbell(&b->id, b->fd, -1, nullptr)) return nullptr;
  b->attach_gen = gen;
  return b;
}

}  // namespace

int DoorbellFd() {
  Bell* b = EnsureBell();
  return b != nullptr ? b->fd : -1;
}

uint64_t DoorbellId() {
  Bell* b = EnsureBell();
  return b != nullptr ? b->id : 0;
}

uint32_t ForkGeneration() { return g_fork_gen.load(std::memory_order_relaxed); }

SetBell* AcquireSetBell() {
  SetBell* b = nullptr;
  pthread_mutex_lock(&g_peer_mu);
  if (g_free_set_bells != nullptr && !g_free_set_bells->empty()) {
    b = g_free_set_bells->back();
    g_free_set_bells->pop_back();
  }
  pthread_mutex_unlock(&g_peer_mu);
  if (b != nullptr) {
    shm::Drain(b->fd);
    // Tokens a previous set left: harmless (a token names an entry that is
    // then looked at once), but start clean.
    shm::DrainHints(b->ring, [](uint32_t) {});
    return b;
  }
  const int fd = HideFd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (fd < 0) return nullptr;
  shm::Mapping map;
  shm::UniqueFd hints = shm::CreateHintRing(&map);
  const int hints_fd = hints.valid() ? HideFd(hints.release()) : -1;
  b = hints_fd >= 0 ? new (std::nothrow) SetBell() : nullptr;
  if (b == nullptr) {
    shm::UniqueFd drop(fd);
    if (hints_fd >= 0) shm::UniqueFd drop_hints(hints_fd);
    return nullptr;
  }
  b->fd = fd;
  b->hints_fd = hints_fd;
  b->ring = static_cast<shm::HintRing*>(map.release());
  return b;
}

void ReleaseSetBell(SetBell* b) {
  if (b == nullptr) return;
  pthread_mutex_lock(&g_peer_mu);
  if (g_free_set_bells == nullptr) g_free_set_bells = new std::vector<SetBell*>();
  g_free_set_bells->push_back(b);
  pthread_mutex_unlock(&g_peer_mu);
}

bool EnsureSetBell(SetBell* b) {
  if (!EnsureAttached()) return false;
  const uint32_t gen = AttachGeneration();
  if (b->attach_gen == gen) return true;
  if (!RegisterDoorbell(&b->id, b->fd, b->hints_fd, b->ring)) return false;
  b->attach_gen = gen;
  return true;
}

void RemoveOwnWaiters(shm::WaiterSet set) {
  pthread_mutex_lock(&g_peer_mu);
  if (g_own_doorbells != nullptr) {
    // Listed ids may carry an epoll set's token (hint_ring.h).
    for (uint32_t i = 0; i < set.n; ++i) {
      const uint64_t listed = set.ids[i].load(std::memory_order_relaxed);
      if (listed == 0) continue;
      if (std::find(g_own_doorbells->begin(), g_own_doorbells->end(), shm::DoorbellOf(listed)) ==
          g_own_doorbells->end()) {
        continue;
      }
      uint64_t expected = listed;
      set.ids[i].compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
    }
  }
  pthread_mutex_unlock(&g_peer_mu);
}
namespace {
// Ends a kick PeerDoorbell() returned an fd for.
void UnpinPeerBell() {
  pthread_mutex_lock(&g_peer_mu);
  --g_kicks_in_flight;
  CloseRetiredLocked();
  pthread_mutex_unlock(&g_peer_mu);
}

// Our copy of the eventfd behind doorbell `id` (asked once), or -1
// (*gone: offloadd says that process is gone; else it cannot be asked now).
// `*ring`: its hint ring (null if none). REQUIRES: `id` is a doorbell id
// (shm::DoorbellOf), not a listed one. A returned fd (>= 0) stays open
// until the caller's UnpinPeerBell().
int PeerDoorbell(uint64_t id, bool* gone, shm::HintRing** ring) {
  *gone = false;
  *ring = nullptr;
  pthread_mutex_lock(&g_peer_mu);
  if (g_peer_doorbells == nullptr) g_peer_doorbells = new std::unordered_map<uint64_t, PeerBell>();
  auto it = g_peer_doorbells->find(id);
  const bool cached = it != g_peer_doorbells->end();
  const PeerBell known = cached ? it->second : PeerBell{};
  if (cached && known.fd >= 0) ++g_kicks_in_flight;
  pthread_mutex_unlock(&g_peer_mu);
  if (cached) {
    *gone = known.fd < 0;
    *ring = known.ring;
    return known.fd;
  }
  shm::Msg m = {};
  m.type = shm::MsgType::kDoorbell;
  m.value64 = id;
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  PeerBell got;
  if (Call(&m, nullptr, 0, &r, rfds, &nr)) {
    if (r.type == shm::MsgType::kDoorbellFd && (nr == 1 || nr == 2)) {
      got.fd = rfds[0];
      got.copy = true;
      if (nr == 2) {
        // The hint ring stays mapped for the process lifetime, like the
        // eventfd stays open (a racing kicker may hold either).
        shm::Mapping map = shm::MapHintRing(rfds[1]);
        got.ring = map.valid() ? static_cast<shm::HintRing*>(map.release()) : nullptr;
        shm::UniqueFd drop(rfds[1]);
      }
    } else {
      for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
    }
  } else {
    return -1;  // no daemon now: ask again next time
  }
  pthread_mutex_lock(&g_peer_mu);
  auto [slot, inserted] = g_peer_doorbells->emplace(id, got);
  if (!inserted) {
    // Another thread got it meanwhile.
    if (got.fd >= 0) shm::UniqueFd drop(got.fd);
    if (got.ring != nullptr) munmap(got.ring, shm::HintRingBytes());
    got = slot->second;
  } else if (got.fd < 0 && ++g_gone_bells > 4096) {
    // Ids of gone processes are never reused, so forgetting them only
    // costs a question to offloadd if one is kicked again.
    for (auto e = g_peer_doorbells->begin(); e != g_peer_doorbells->end();) {
      e = e->second.fd < 0 ? g_peer_doorbells->erase(e) : std::next(e);
    }
    g_gone_bells = 0;
  }
  if (got.fd >= 0) ++g_kicks_in_flight;
  pthread_mutex_unlock(&g_peer_mu);
  *gone = got.fd < 0;
  *ring = got.ring;
  return got.fd;  // -1: that process is gone (remembered: its id is never reused)
}

// Kicks the doorbell `id`: the calling thread's own, or another thread's
// or process's (shm::WakeWaiters).
shm::KickResult KickDoorbell(uint64_t listed) {
  const uint64_t id = shm::DoorbellOf(listed);
  Bell* mine = t_bell.fork_gen == g_fork_gen.load(std::memory_order_relaxed) ? t_bell.bell
                                                                             : nullptr;
  bool gone = false;
  shm::HintRing* ring = nullptr;
  const bool own = mine != nullptr && id == mine->id;
  const int fd = own ? mine->fd : PeerDoorbell(id, &gone, &ring);
  if (fd < 0) return gone ? shm::KickResult::kGone : shm::KickResult::kUnknown;
  // The token first: the owner drains hints once the eventfd wakes it.
  if (const uint32_t token = shm::TokenOf(listed); token != 0 && ring != nullptr) {
    shm::PostHint(ring, token);
  }
  shm::Kick(fd);
  if (!own) UnpinPeerBell();
  return shm::KickResult::kKicked;
}
}  // namespace

void WakeLine(shm::RingWaitLine* w, uint32_t bits) { WakeLine(w, bits, shm::Waiters(w)); }

void WakeLine(shm::RingWaitLine* w, uint32_t bits, shm::WaiterSet set, uint32_t start) {
  if (bits & shm::kArmFutex) shm::WakeFutexWaiters(w);
  if (bits & shm::kArmDoorbell) shm::WakeWaiters(set, start, KickDoorbell);
}

thread_local uint64_t t_caller_token = 0;

uint64_t NewCallerToken() {
  t_caller_token = uint64_t(static_cast<uint32_t>(getpid())) << 32 |
                   static_cast<uint32_t>(syscall(SYS_gettid));
  return t_caller_token;
}

}  // namespace client
}  // namespace offload
