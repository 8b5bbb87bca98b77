// The client's attach session with offloadd (attach.h): the engine.sock
// connection and its messages, the hello and the arena, synchronous
// requests (Call), fire-and-forget ones (SendAsync), the asynchronous
// messages the daemon posts (DrainEvents), the loss of offloadd and the
// session after fork. The sockets' registrations and arena slots are in
// registry.cc, the doorbells and wake-ups in doorbells.cc.
//
// Thread safety: g_session_mu serialises every request and guards the
// session's state below; Arena() and AttachFd() are lock-free loads.
//
// Why one file of ~460 lines: everything left here reads or writes the
// session's state (g_fd, g_arena, g_gen, the back-off), which is private
// to this file; registry.cc and doorbells.cc were split off where no such
// access was needed. Splitting further would export that state to more files.

#include "client/attach.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <cstring>

#include "client/attach_internal.h"
#include "client/channels.h"
#include "client/config.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/udp_internal.h"
#include "shm/fence.h"
#include "shm/futex.h"
#include "shm/unique_fd.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

std::atomic<uint64_t> g_events_seen{0};
uint64_t g_fork_serial = 0;

pthread_mutex_t g_session_mu = PTHREAD_MUTEX_INITIALIZER;

namespace {

// Guarded by g_session_mu (the atomics are also read without it).
int g_fd = -1;
std::atomic<shm::ArenaHeader*> g_arena{nullptr};
uint64_t g_arena_bytes = 0;
std::atomic<uint32_t> g_gen{0};
uint32_t g_seq = 0;
int64_t g_absent_until_ms = 0;
bool g_logged_absent = false;
std::atomic<int> g_attach_fd{-1};

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

// The daemon went away: keep working on the kernel.
void LostDaemonLocked() {
  if (g_fd >= 0) {
    shm::UniqueFd drop(g_fd);
    g_fd = -1;
  }
  g_attach_fd.store(-1, std::memory_order_release);
  g_arena.store(nullptr, std::memory_order_release);  // the mapping stays: slots point into it
  ForgetEngineDoorbells();
  // The next use tries to attach again at once (offloadd may be back, a
  // restart); a failed attempt backs off a second (EnsureAttached).
  g_absent_until_ms = 0;
  Log(2, "lost the connection to offloadd; new sockets use the kernel until it is back");
}

void DispatchLocked(const shm::Msg& m, int* fds, int nfds) {
  Socket* s = RegisteredSocketLocked(m.id);
  switch (m.type) {
    case shm::MsgType::kDgramOffer: {
      std::unique_ptr<InRing> r;
      if (s != nullptr && s->path.load() == Path::kUdp && !s->udp_shared.load() && nfds == 1) {
        r = MapOfferedRing(m, fds[0]);  // udp_rings.cc
      }
      CloseFds(fds, nfds);
      if (r == nullptr) {
        SendRaw(DgramCloseMsg(m.id2, /*sender=*/false), nullptr, 0);
        return;
      }
      pthread_mutex_lock(&s->mu);
      s->udp->new_rings.push_back(std::move(r));
      pthread_mutex_unlock(&s->mu);
      s->udp->has_new_rings.store(true, std::memory_order_release);
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
      ForgetPeerDoorbell(m.value64);  // doorbells.cc
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
  ResetSlotsLocked(h->max_sockets);
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
  pthread_mutex_lock(&g_session_mu);
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
  pthread_mutex_unlock(&g_session_mu);
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
  pthread_mutex_lock(&g_session_mu);
  *nrfds = 0;
  if (g_fd < 0 || g_arena.load() == nullptr) {
    pthread_mutex_unlock(&g_session_mu);
    return false;
  }
  msg->seq = ++g_seq;
  if (!SendRaw(*msg, fds, nfds)) {
    LostDaemonLocked();
    *lost = true;
    pthread_mutex_unlock(&g_session_mu);
    return false;
  }
  for (;;) {
    int got[shm::kMaxMsgFds];
    int ngot = 0;
    const int rc = RecvRaw(reply, got, &ngot, false);
    if (rc != 1) {
      LostDaemonLocked();
      *lost = true;
      pthread_mutex_unlock(&g_session_mu);
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
    pthread_mutex_unlock(&g_session_mu);
    return true;
  }
}
}  // namespace

void SendAsync(const shm::Msg& msg, const int* fds, int nfds) {
  pthread_mutex_lock(&g_session_mu);
  if (g_fd >= 0 && g_arena.load() != nullptr && !SendRaw(msg, fds, nfds)) LostDaemonLocked();
  pthread_mutex_unlock(&g_session_mu);
}

void (*g_on_attached)() = nullptr;

void DrainEvents() {
  if (pthread_mutex_trylock(&g_session_mu) != 0) return;  // the holder dispatches
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
  pthread_mutex_unlock(&g_session_mu);
}

void AttachAtForkChild() {
  shm::ForgetFastSide();  // membarrier registrations are not inherited
  pthread_mutex_init(&g_session_mu, nullptr);
  DoorbellsAtForkChild();  // new thread identities, the parent's doorbells forgotten
  t_caller_token = 0;  // this thread's pid and tid changed
  g_gen.fetch_add(1, std::memory_order_relaxed);  // the parent's arena slots are not ours
  if (g_fd >= 0) {
    shm::UniqueFd drop(g_fd);  // the parent keeps its own session
    g_fd = -1;
  }
  g_attach_fd.store(-1, std::memory_order_release);
  g_arena.store(nullptr, std::memory_order_release);
  g_absent_until_ms = 0;
  ForgetRegistrationsLocked();
  g_fork_serial = NextSerial();
}

void DropSession() {
  pthread_mutex_lock(&g_session_mu);
  if (g_fd >= 0) LostDaemonLocked();
  pthread_mutex_unlock(&g_session_mu);
}

int AttachFd() { return g_attach_fd.load(std::memory_order_acquire); }

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void CloseFds(const int* fds, int n) {
  for (int i = 0; i < n; ++i) shm::UniqueFd drop(fds[i]);
}

}  // namespace client
}  // namespace offload
