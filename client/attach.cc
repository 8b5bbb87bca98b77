#include "client/attach.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <algorithm>
#include <new>
#include <unordered_map>
#include <vector>

#include "client/channels.h"
#include "client/config.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/log.h"
#include "shm/fence.h"
#include "shm/futex.h"
#include "shm/unique_fd.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

std::atomic<uint64_t> g_events_seen{0};
uint64_t g_fork_serial = 0;

namespace {

pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;  // guards everything below
int g_fd = -1;
std::atomic<shm::ArenaHeader*> g_arena{nullptr};
uint64_t g_arena_bytes = 0;
std::atomic<uint32_t> g_gen{0};
uint32_t g_seq = 0;
int64_t g_absent_until_ms = 0;
bool g_logged_absent = false;
std::atomic<uint32_t> g_next_reg{1};
std::unordered_map<uint32_t, Socket*>* g_regs = nullptr;
// Arena slots: indexes freed for reuse, and the first never used (g_mu).
std::vector<uint32_t>* g_free_slots = nullptr;
uint32_t g_next_slot = 0;
uint32_t g_max_slots = 0;
shm::SocketSlot g_dummy_slot;
// Doorbell ids of this process's threads (RemoveOwnWaiters), guarded by
// g_peer_mu.
std::vector<uint64_t>* g_own_doorbells = nullptr;
struct Bell;
std::vector<Bell*>* g_free_bells = nullptr;  // threads' doorbells to reuse (g_peer_mu)
std::atomic<int> g_attach_fd{-1};
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

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool SendRaw(const shm::Msg& m, const int* fds, int nfds) {
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * shm::kMaxMsgFds)] = {};
  struct iovec iov = {const_cast<shm::Msg*>(&m), sizeof(m)};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds > 0) {
    mh.msg_control = cbuf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do {
    n = Real().sendmsg(g_fd, &mh, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof(m));
}

}  // namespace

int HideFd(int fd) {
  static const int base = [] {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 512;
    // The upper half of the soft limit (at least 64 numbers stay below).
    return static_cast<int>(rl.rlim_cur > 128 ? rl.rlim_cur / 2 : 64);
  }();
  if (fd < 0 || fd >= base) return fd;
  const int nfd = Real().fcntl(fd, F_DUPFD_CLOEXEC, base);
  if (nfd < 0) return fd;  // EMFILE/EINVAL up there: keep the low number
  shm::UniqueFd old(fd);   // closes it
  return nfd;
}

namespace {

// Receives one message. Returns 1 ok, 0 nothing (dontwait), -1 gone.
int RecvRaw(shm::Msg* m, int* fds, int* nfds, bool dontwait) {
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * (shm::kMaxMsgFds + 1))];
  struct iovec iov = {m, sizeof(*m)};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof(cbuf);
  ssize_t n;
  do {
    n = Real().recvmsg(g_fd, &mh, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  *nfds = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const int count = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; ++i) {
      int f;
      memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (*nfds < shm::kMaxMsgFds) {
        fds[(*nfds)++] = HideFd(f);
      } else {
        shm::UniqueFd drop(f);
      }
    }
  }
  if (n != static_cast<ssize_t>(sizeof(*m))) {
    for (int i = 0; i < *nfds; ++i) shm::UniqueFd drop(fds[i]);
    return -1;
  }
  return 1;
}

void CloseFds(const int* fds, int n) {
  for (int i = 0; i < n; ++i) shm::UniqueFd drop(fds[i]);
}

// The daemon went away: keep working on the kernel.
void LostDaemonLocked() {
  if (g_fd >= 0) {
    shm::UniqueFd drop(g_fd);
    g_fd = -1;
  }
  g_attach_fd.store(-1, std::memory_order_release);
  g_arena.store(nullptr, std::memory_order_release);  // the mapping stays: slots point into it
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
  // The next use tries to attach again at once (offloadd may be back, a
  // restart); a failed attempt backs off a second (EnsureAttached).
  g_absent_until_ms = 0;
  Log(2, "lost the connection to offloadd; new sockets use the kernel until it is back");
}

void DispatchLocked(const shm::Msg& m, int* fds, int nfds) {
  Socket* s = nullptr;
  if (g_regs != nullptr) {
    auto it = g_regs->find(m.id);
    if (it != g_regs->end()) s = it->second;
  }
  switch (m.type) {
    case shm::MsgType::kDgramOffer: {
      InRing* r = nullptr;
      if (s != nullptr && s->path.load() == Path::kUdp && !s->udp_shared.load() && nfds == 1) {
        r = new InRing();
        r->map = shm::Mapping::MapShared(fds[0], shm::DgramSegmentBytes(m.value));
        r->id = m.id2;
        r->src = shm::FromV4(m.remote.addr, m.remote.port);
        if (m.remote6.family == AF_INET6) {  // an IPv6 sender (abi.h Dst6)
          r->src.family = AF_INET6;
          std::memcpy(r->src.addr, m.remote6.addr, 16);
        }
        if (!r->map.valid()) {
          delete r;
          r = nullptr;
        } else {
          r->c.Init(r->map.as<shm::DgramHeader>());
        }
      }
      CloseFds(fds, nfds);
      if (r == nullptr) {
        shm::Msg c = {};
        c.type = shm::MsgType::kDgramClose;
        c.id = m.id2;
        c.value = 0;
        SendRaw(c, nullptr, 0);
        return;
      }
      pthread_mutex_lock(&s->mu);
      s->new_rings.push_back(r);
      pthread_mutex_unlock(&s->mu);
      s->has_new_rings.store(true, std::memory_order_release);
      if (s->efd.valid()) shm::Kick(s->efd.get());
      return;
    }
    case shm::MsgType::kChannelGone:
      CloseFds(fds, nfds);
      RetireChannel(m.id);
      return;
    case shm::MsgType::kDoorbellGone: {
      // A peer's doorbell we hold a copy of is gone: close it (a process
      // serving many short-lived peers would otherwise keep one fd each).
      CloseFds(fds, nfds);
      pthread_mutex_lock(&g_peer_mu);
      if (g_peer_doorbells != nullptr && !(m.value64 & shm::kEngineDoorbellBit)) {
        auto it = g_peer_doorbells->find(shm::DoorbellOf(m.value64));
        if (it != g_peer_doorbells->end() && it->second.copy) RetireLocked(it);
      }
      pthread_mutex_unlock(&g_peer_mu);
      return;
    }
    default:
      CloseFds(fds, nfds);
      return;
  }
}

bool AttachLocked() {
  const ClientConfig& cfg = Config();
  struct sockaddr_un sun = {};
  sun.sun_family = AF_UNIX;
  char path[256];
  const int plen = snprintf(path, sizeof(path), "%s/engine.sock", cfg.run_dir);
  if (plen < 0 || static_cast<size_t>(plen) >= sizeof(sun.sun_path)) {
    Log(2, "OFFLOAD_RUN_DIR %s is too long for a unix socket; all sockets use the kernel",
        cfg.run_dir);
    return false;
  }
  memcpy(sun.sun_path, path, plen + 1);
  shm::UniqueFd fd(Real().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  if (Real().connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    if (!g_logged_absent) {
      Log(3, "offloadd is not running (%s: %s); all sockets use the kernel", sun.sun_path,
          strerror(errno));
      g_logged_absent = true;
    }
    return false;
  }
  g_fd = HideFd(fd.release());
  shm::Msg m = {};
  m.type = shm::MsgType::kHello;
  m.seq = ++g_seq;
  m.value = shm::kAbiVersion;
  snprintf(m.program, sizeof(m.program), "%s", cfg.program);
  snprintf(m.app_id, sizeof(m.app_id), "%s", cfg.application_id);
  shm::Msg r;
  int fds[shm::kMaxMsgFds];
  int nfds = 0;
  struct pollfd pfd = {g_fd, POLLIN, 0};
  if (!SendRaw(m, nullptr, 0) || Real().poll(&pfd, 1, 5000) != 1 ||
      RecvRaw(&r, fds, &nfds, false) != 1) {
    Log(2, "offloadd did not answer the attach request; all sockets use the kernel");
    LostDaemonLocked();
    return false;
  }
  if (r.type != shm::MsgType::kHelloOk || nfds != 1) {
    CloseFds(fds, nfds);
    Log(2, "offloadd refused to attach (ABI %u, status %d); all sockets use the kernel",
        shm::kAbiVersion, r.status);
    LostDaemonLocked();
    g_absent_until_ms = INT64_MAX;  // ABI mismatch: do not retry
    return false;
  }
  shm::Mapping arena = shm::Mapping::MapShared(fds[0], r.value64);
  CloseFds(fds, 1);
  auto* h = arena.as<shm::ArenaHeader>();
  if (!arena.valid() || r.value64 < sizeof(shm::ArenaHeader) || h->magic != shm::kArenaMagic ||
      h->abi_version != shm::kAbiVersion ||
      h->slots_offset + uint64_t{h->max_sockets} * sizeof(shm::SocketSlot) > r.value64) {
    Log(2, "offloadd arena does not match ABI %u; all sockets use the kernel", shm::kAbiVersion);
    LostDaemonLocked();
    g_absent_until_ms = INT64_MAX;
    return false;
  }
  g_arena_bytes = arena.size();
  arena.release();  // slots of live sockets point into it for the process lifetime
  if (g_free_slots == nullptr) g_free_slots = new std::vector<uint32_t>();
  g_free_slots->clear();
  g_next_slot = 0;
  g_max_slots = h->max_sockets;
  if (g_regs == nullptr) g_regs = new std::unordered_map<uint32_t, Socket*>();
  g_events_seen.store(h->events_posted.load(std::memory_order_acquire));
  g_gen.fetch_add(1, std::memory_order_relaxed);
  g_attach_fd.store(g_fd, std::memory_order_release);
  // Before any pipe. Registration also lets streaming producers go lazy.
  if (h->fence_mode == shm::kFenceAsymmetric) {
    shm::EnableAsymmetricFences();
  } else {
    shm::RegisterForPeerBarriers();
  }
  g_arena.store(h, std::memory_order_release);
  Log(3, "attached to offloadd (%s/engine.sock)", cfg.run_dir);
  return true;
}

}  // namespace

namespace {

// offloadd's socket as the last failed attach found it: a restarted
// offloadd makes a new one (another inode), and the next call attaches at
// once instead of waiting out the back-off.
struct SocketFileId {
  dev_t dev = 0;
  ino_t ino = 0;  // 0: no socket there
  struct timespec ctime = {};  // an inode number is soon reused, its change time not
  bool operator==(const SocketFileId& o) const {
    return dev == o.dev && ino == o.ino && ctime.tv_sec == o.ctime.tv_sec &&
           ctime.tv_nsec == o.ctime.tv_nsec;
  }
};
SocketFileId g_absent_socket;

SocketFileId DaemonSocketId() {
  char path[256];
  SocketFileId id;
  struct stat st;
  const int saved = errno;
  if (snprintf(path, sizeof(path), "%s/engine.sock", Config().run_dir) < int{sizeof(path)} &&
      stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.ctime = st.st_ctim;
  }
  errno = saved;
  return id;
}

}  // namespace

bool EnsureAttached() {
  if (g_arena.load(std::memory_order_acquire) != nullptr) return true;
  pthread_mutex_lock(&g_mu);
  bool ok = g_arena.load(std::memory_order_relaxed) != nullptr;
  bool attached_now = false;
  if (!ok && g_absent_until_ms != INT64_MAX) {
    // Absent: try again a second after the last attempt, or as soon as
    // offloadd's socket is a new one.
    bool retry = NowMs() >= g_absent_until_ms;
    if (!retry) {
      const SocketFileId now = DaemonSocketId();
      retry = now.ino != 0 && !(now == g_absent_socket);
    }
    if (retry) {
      ok = attached_now = AttachLocked();
      if (!ok && g_absent_until_ms != INT64_MAX) {
        g_absent_until_ms = NowMs() + 1000;
        g_absent_socket = DaemonSocketId();
      }
    }
  }
  pthread_mutex_unlock(&g_mu);
  if (attached_now && g_on_attached != nullptr) g_on_attached();
  return ok;
}

shm::ArenaHeader* Arena() { return g_arena.load(std::memory_order_acquire); }
uint32_t AttachGeneration() { return g_gen.load(std::memory_order_relaxed); }

int DaemonLogLevel() {
  shm::ArenaHeader* a = Arena();
  if (a == nullptr) return -1;
  const uint32_t v = a->log_level.load(std::memory_order_relaxed);
  return v == static_cast<uint32_t>(shm::LogLevel::kInfo) ? -1 : static_cast<int>(v);
}

namespace {
bool CallOnce(shm::Msg* msg, const int* fds, int nfds, shm::Msg* reply, int* rfds, int* nrfds,
              bool* lost);
}  // namespace

bool Call(shm::Msg* msg, const int* fds, int nfds, shm::Msg* reply, int* rfds, int* nrfds) {
  // A forked child attaches on its first request; a request that finds
  // offloadd gone (restarted meanwhile) is sent once more to the new one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!EnsureAttached()) return false;
    bool lost = false;
    if (CallOnce(msg, fds, nfds, reply, rfds, nrfds, &lost)) return true;
    if (!lost) return false;
  }
  return false;
}

namespace {
bool CallOnce(shm::Msg* msg, const int* fds, int nfds, shm::Msg* reply, int* rfds, int* nrfds,
              bool* lost) {
  pthread_mutex_lock(&g_mu);
  *nrfds = 0;
  if (g_fd < 0 || g_arena.load() == nullptr) {
    pthread_mutex_unlock(&g_mu);
    return false;
  }
  msg->seq = ++g_seq;
  if (!SendRaw(*msg, fds, nfds)) {
    LostDaemonLocked();
    *lost = true;
    pthread_mutex_unlock(&g_mu);
    return false;
  }
  for (;;) {
    int got[shm::kMaxMsgFds];
    int ngot = 0;
    const int rc = RecvRaw(reply, got, &ngot, false);
    if (rc != 1) {
      LostDaemonLocked();
      *lost = true;
      pthread_mutex_unlock(&g_mu);
      return false;
    }
    if (reply->type == shm::MsgType::kDgramOffer ||
        reply->type == shm::MsgType::kDoorbellGone ||
        reply->type == shm::MsgType::kChannelGone) {
      DispatchLocked(*reply, got, ngot);  // not a reply: posted by offloadd
      continue;
    }
    if (reply->seq != msg->seq) {
      CloseFds(got, ngot);
      continue;
    }
    memcpy(rfds, got, sizeof(int) * ngot);
    *nrfds = ngot;
    pthread_mutex_unlock(&g_mu);
    return true;
  }
}
}  // namespace

void SendAsync(const shm::Msg& msg, const int* fds, int nfds) {
  pthread_mutex_lock(&g_mu);
  if (g_fd >= 0 && g_arena.load() != nullptr && !SendRaw(msg, fds, nfds)) LostDaemonLocked();
  pthread_mutex_unlock(&g_mu);
}

void (*g_on_attached)() = nullptr;

void DrainEvents() {
  if (pthread_mutex_trylock(&g_mu) != 0) return;  // the holder dispatches
  shm::ArenaHeader* a = g_arena.load();
  if (a != nullptr && g_fd >= 0) {
    const uint64_t posted = a->events_posted.load(std::memory_order_acquire);
    for (;;) {
      shm::Msg m;
      int fds[shm::kMaxMsgFds];
      int nfds = 0;
      const int rc = RecvRaw(&m, fds, &nfds, true);
      if (rc == 0) break;
      if (rc < 0) {
        LostDaemonLocked();
        break;
      }
      DispatchLocked(m, fds, nfds);
    }
    g_events_seen.store(posted, std::memory_order_relaxed);
  }
  pthread_mutex_unlock(&g_mu);
}

uint32_t NewRegId() { return g_next_reg.fetch_add(1, std::memory_order_relaxed); }

void RegisterSocket(uint32_t id, Socket* s) {
  pthread_mutex_lock(&g_mu);
  if (g_regs == nullptr) g_regs = new std::unordered_map<uint32_t, Socket*>();
  (*g_regs)[id] = s;
  pthread_mutex_unlock(&g_mu);
}

void UnregisterSocket(uint32_t id) {
  pthread_mutex_lock(&g_mu);
  if (g_regs != nullptr) g_regs->erase(id);
  pthread_mutex_unlock(&g_mu);
}

shm::SocketSlot* AllocSlot(Socket* s) {
  shm::ArenaHeader* a = Arena();
  pthread_mutex_lock(&g_mu);
  if (a != nullptr && g_free_slots != nullptr &&
      (!g_free_slots->empty() || g_next_slot < g_max_slots)) {
    auto* slots = reinterpret_cast<shm::SocketSlot*>(reinterpret_cast<uint8_t*>(a) +
                                                     a->slots_offset);
    {
      uint32_t i;
      if (!g_free_slots->empty()) {
        i = g_free_slots->back();
        g_free_slots->pop_back();
      } else {
        i = g_next_slot++;
        // Pairs with the daemon's load-acquire (ForEachValidSlot).
        a->slots_hwm.store(g_next_slot, std::memory_order_release);
      }
      pthread_mutex_unlock(&g_mu);
      shm::SocketSlot* slot = &slots[i];
      slot->in_use.store(0, std::memory_order_relaxed);
      slot->fd = s->fd;
      slot->inode = 0;
      slot->protocol = s->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
      slot->state = static_cast<uint8_t>(shm::SocketState::kCreated);
      slot->path = static_cast<uint8_t>(shm::SocketPath::kKernel);
      slot->fallback = 0;
      slot->rule_id = 0;
      slot->local_addr = slot->remote_addr = 0;
      slot->local_port = slot->remote_port = 0;
      memset(slot->fallback_detail, 0, sizeof(slot->fallback_detail));
      for (auto* c : {&slot->rx_bytes, &slot->rx_msgs, &slot->tx_bytes, &slot->tx_msgs,
                      &slot->rx_eagain, &slot->tx_eagain, &slot->errors, &slot->poll_hits,
                      &slot->poll_misses, &slot->rx_queue_bytes, &slot->rx_queue_max,
                      &slot->drops}) {
        c->store(0, std::memory_order_relaxed);
      }
      s->slot_index = static_cast<int>(i);
      s->slot_gen = AttachGeneration();
      s->slot = slot;
      // Pairs with the daemon's acquire load in CopySlot().
      slot->in_use.store(1, std::memory_order_release);
      return slot;
    }
  }
  pthread_mutex_unlock(&g_mu);
  s->slot_index = -1;
  s->slot = &g_dummy_slot;
  return s->slot;
}

void FreeSlot(Socket* s) {
  if (s->slot_index < 0) return;
  if (s->slot_index >= 0 && s->slot_gen != AttachGeneration()) {
    // A slot of an arena we no longer have (the parent's, before a fork,
    // or a previous offloadd's): not ours to free.
    s->slot_index = -1;
    return;
  }
  s->slot->in_use.store(0, std::memory_order_release);
  pthread_mutex_lock(&g_mu);
  if (g_free_slots != nullptr && static_cast<uint32_t>(s->slot_index) < g_max_slots &&
      Arena() != nullptr) {
    g_free_slots->push_back(static_cast<uint32_t>(s->slot_index));
  }
  pthread_mutex_unlock(&g_mu);
  s->slot_index = -1;
}

void AttachAtForkChild() {
  shm::ForgetFastSide();  // membarrier registrations are not inherited
  pthread_mutex_init(&g_mu, nullptr);
  pthread_mutex_init(&g_peer_mu, nullptr);
  g_kicks_in_flight = 0;  // only this thread is left, and it is not kicking
  g_fork_gen.fetch_add(1, std::memory_order_relaxed);  // new thread identities
  t_caller_token = 0;  // this thread's pid and tid changed
  g_gen.fetch_add(1, std::memory_order_relaxed);  // the parent's arena slots are not ours
  if (g_fd >= 0) {
    shm::UniqueFd drop(g_fd);  // the parent keeps its own session
    g_fd = -1;
  }
  g_attach_fd.store(-1, std::memory_order_release);
  // The parent's threads' doorbells wake the parent; ours come with our
  // threads (DoorbellFd(), renewed by the fork generation). The pool's
  // eventfds are the parent's: forget them (their numbers stay taken).
  if (g_own_doorbells != nullptr) g_own_doorbells->clear();
  if (g_free_bells != nullptr) g_free_bells->clear();
  if (g_free_set_bells != nullptr) g_free_set_bells->clear();
  g_arena.store(nullptr, std::memory_order_release);
  g_absent_until_ms = 0;
  if (g_regs != nullptr) g_regs->clear();
  g_fork_serial = NextSerial();
}

void DropSession() {
  pthread_mutex_lock(&g_mu);
  if (g_fd >= 0) LostDaemonLocked();
  pthread_mutex_unlock(&g_mu);
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
int AttachFd() { return g_attach_fd.load(std::memory_order_acquire); }

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

bool RegisterEndpoint(Socket* s, shm::MsgType type, uint32_t value) {
  if (!EnsureAttached()) return false;
  if (!s->efd.valid()) s->efd.reset(HideFd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)));
  if (!s->efd.valid()) return false;
  const uint32_t old = s->reg_id;
  s->reg_id = NewRegId();
  if (old != 0) UnregisterSocket(old);
  RegisterSocket(s->reg_id, s);
  shm::SockAddr local_tmp;
  shm::Msg m = {};
  m.type = type;
  m.id = s->reg_id;
  m.value = value;
  // offloadd reads the address from the socket; the port is checked.
  const shm::SockAddr local = shm::FromSockaddr(&s->local.sa, sizeof(s->local), &local_tmp)
                                  ? local_tmp
                                  : shm::SockAddr{};
  m.local.addr = local.family == AF_INET ? shm::V4Of(local) : 0;
  m.local.port = local.port;
  const int fds[2] = {s->fd, s->efd.get()};
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  const uint32_t gen = AttachGeneration();
  if (!Call(&m, fds, 2, &r, rfds, &nr) || r.type != shm::MsgType::kStatus || r.status != 0) {
    for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
    UnregisterSocket(s->reg_id);
    return false;
  }
  s->reg_gen = gen;
  return true;
}

}  // namespace client
}  // namespace offload
