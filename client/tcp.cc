// Offloaded TCP: listeners that take daemon-brokered pipes (and keep their
// shadow listening for kernel clients), connectors that get a pipe to an
// offloaded listener, and the stream semantics of a pipe (RFC 9293 as seen
// through the socket API: FIN = end of stream, RST = ECONNRESET).

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>

#include <algorithm>

#include "client/attach.h"
#include "client/config.h"
#include "client/decision.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"
#include "shm/wakeup.h"

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
// uncommitted offset `ring_off`.
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

bool SetupPipe(Socket* s, uint32_t pipe_id, uint32_t capacity, int side, int* fds) {
  shm::UniqueFd memfd(fds[0]);
  shm::UniqueFd own(fds[1]);
  shm::UniqueFd peer(fds[2]);
  shm::UniqueFd alive(fds[3]);
  if (capacity == 0 || (capacity & (capacity - 1)) != 0) return false;
  shm::Mapping seg = shm::Mapping::MapShared(memfd.get(), shm::PipeSegmentBytes(capacity));
  if (!seg.valid()) return false;
  auto* h = seg.as<shm::PipeHeader>();
  if (h->magic != shm::kPipeMagic || h->capacity != capacity) return false;
  auto* base = seg.as<uint8_t>();
  s->tx.Init(&h->dir[side], base + shm::PipeDataOffset(side, capacity), capacity);
  s->rx.Init(&h->dir[1 - side], base + shm::PipeDataOffset(1 - side, capacity), capacity);
  s->seg = std::move(seg);
  s->efd = std::move(own);
  s->peer_efd = std::move(peer);
  s->alive = std::move(alive);
  s->pipe_id = pipe_id;
  s->side = side;
  s->connected = true;
  return true;
}

// Sleeps until our eventfd is kicked (an engine kicks it on every connect
// outcome); a signal counts as a wake-up. Returns 0 or the poll error.
int AwaitKick(Socket* s) {
  pollfd p = {s->efd.get(), POLLIN, 0};
  if (Real().poll(&p, 1, -1) < 0 && errno != EINTR) return errno;
  shm::Drain(s->efd.get());
  return 0;
}

// Publishes what an engine publishes after a RST, for when the engine no
// longer can (it gave the flow up, or offloadd died): the connection reads
// as reset from now on. We own the mapping; nobody else writes these fields
// any more.
void MarkReset(Socket* s) {
  auto* h = s->seg.as<shm::PipeHeader>();
  h->dir[1 - s->side].shut.store(shm::kShutRst, std::memory_order_release);
  h->dir[s->side].reader_closed.store(2, std::memory_order_release);
}

// A blocking connect through an engine: waits for the TCP handshake's
// outcome, published in connect_status (bounded by the engine's SYN
// retries, as Linux's by tcp_syn_retries). Returns 0 or the errno of the
// failure.
int WaitConnected(Socket* s) {
  auto* h = s->seg.as<shm::PipeHeader>();
  for (;;) {
    // Pairs with the engine's store-release of the outcome.
    const int32_t st = h->connect_status.load(std::memory_order_acquire);
    if (st != shm::kConnectPending) return st > 0 ? st : 0;
    if (const int err = AwaitKick(s)) return err;
  }
}

// Gives back a pipe that never carried data (a failed connect): the
// liveness pipe closes, so the daemon forgets it; the socket can connect
// again.
void DropPipe(Socket* s) {
  s->alive.reset();
  s->peer_efd.reset();
  s->efd.reset();
  s->seg = shm::Mapping();
  s->pipe_id = 0;
  s->connected = false;
}

int Timeout(Socket* s, bool rx) { return static_cast<int>(rx ? s->rcvtimeo_ms : s->sndtimeo_ms); }

// (Re-)registers an offloaded listener with the current session: after a
// fork (the child's own session) or a daemon restart.
bool RegisterListener(Socket* s) {
  return RegisterEndpoint(s, shm::MsgType::kTcpListen,
                          static_cast<uint32_t>(s->backlog < 0 ? 0 : s->backlog));
}

}  // namespace

void ReRegisterAfterFork(Socket* s) {
  if (s->path.load() == Path::kListener) RegisterListener(s);
}

void TcpAfterListen(Socket* s, int backlog) {
  s->backlog = backlog;
  const Path path = s->path.load();
  if (path == Path::kListener || path == Path::kKernel) return;
  socklen_t len = sizeof(s->local);
  if (Real().getsockname(s->fd, reinterpret_cast<sockaddr*>(&s->local), &len) != 0 ||
      s->local.sin_family != AF_INET) {
    OnKernel(s, shm::Fallback::kUnsupportedFamily, nullptr);
    return;
  }
  if (!Decide(s, rules::Role::kTcpServer, &s->local, nullptr)) {
    OnKernel(s, s->fallback, nullptr);
    return;
  }
  // The shadow keeps listening for kernel clients; accept() polls it
  // without blocking, so it is non-blocking underneath whatever the
  // application asked (fcntl(F_GETFL) reports the application's view).
  const int fl = Real().fcntl(s->fd, F_GETFL);
  Real().fcntl(s->fd, F_SETFL, fl | O_NONBLOCK);
  s->path.store(Path::kListener, std::memory_order_release);  // offers may arrive now
  if (!RegisterListener(s)) {
    Real().fcntl(s->fd, F_SETFL, fl);
    OnKernel(s, Arena() == nullptr ? shm::Fallback::kDaemonAbsent : shm::Fallback::kLimit,
             nullptr);
    return;
  }
  OnOffloaded(s, Path::kListener);
}

int TcpConnect(Socket* s, const sockaddr_in* dst) {
  if (!Decide(s, rules::Role::kTcpClient, s->bound ? &s->local : nullptr, dst)) {
    OnKernel(s, s->fallback, nullptr);
    return kUseKernel;
  }
  shm::ArenaHeader* a = Arena();
  if (a == nullptr) {
    OnKernel(s, shm::Fallback::kDaemonAbsent, nullptr);
    return kUseKernel;
  }
  // Loopback, or the daemon has no wire path: only an offloaded listener on
  // this host can take the connection, and the port bitmap says whether
  // there is one, without a daemon round trip.
  const bool loopback = (ntohl(dst->sin_addr.s_addr) >> 24) == 127;
  if (!shm::PortBit(a->tcp_ports, ntohs(dst->sin_port)) && (a->wire_addr == 0 || loopback)) {
    OnKernel(s, shm::Fallback::kPeerNotOffloaded, nullptr);
    return kUseKernel;
  }
  // Reserve a local port in the kernel so local ports never collide.
  sockaddr_in local = {};
  socklen_t len = sizeof(local);
  if (!s->bound) {
    local.sin_family = AF_INET;
    if (Real().bind(s->fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      OnKernel(s, shm::Fallback::kLimit, "ephemeral port");
      return kUseKernel;
    }
    s->bound = true;
  }
  Real().getsockname(s->fd, reinterpret_cast<sockaddr*>(&local), &len);
  shm::Msg m = {};
  m.type = shm::MsgType::kTcpConnect;
  m.local.addr = local.sin_addr.s_addr != 0 ? local.sin_addr.s_addr : dst->sin_addr.s_addr;
  m.local.port = local.sin_port;
  m.remote.addr = dst->sin_addr.s_addr;
  m.remote.port = dst->sin_port;
  const int fds[1] = {s->fd};
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, fds, 1, &r, rfds, &nr)) {
    OnKernel(s, shm::Fallback::kDaemonAbsent, nullptr);
    return kUseKernel;
  }
  if (r.type != shm::MsgType::kPipe || nr != 4) {
    for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
    OnKernel(s, a->wire_addr != 0 ? shm::Fallback::kNotRouted : shm::Fallback::kPeerNotOffloaded,
             nullptr);
    return kUseKernel;
  }
  if (!SetupPipe(s, r.id, r.value, 0, rfds)) {  // closes the fds: the side ends
    OnKernel(s, shm::Fallback::kLimit, "pipe mapping");
    return kUseKernel;
  }
  // status 1: an engine is the other side (a connection on the wire).
  const bool engine = r.status == 1;
  if (engine && s->nonblock) {
    // Linux's non-blocking connect: EINPROGRESS now, EPOLLOUT (or EPOLLERR
    // and SO_ERROR) when the handshake ends; the engine kicks our eventfd.
    s->local.sin_family = AF_INET;
    s->local.sin_addr.s_addr = r.local.addr != 0 ? r.local.addr : m.local.addr;
    s->local.sin_port = m.local.port;
    s->remote = *dst;
    s->async_connect = true;
    s->connecting.store(true, std::memory_order_release);
    OnOffloaded(s, Path::kPipe);
    s->slot->path = static_cast<uint8_t>(shm::SocketPath::kEngine);
    s->slot->state = static_cast<uint8_t>(shm::SocketState::kConnecting);
    errno = EINPROGRESS;
    return -1;
  }
  if (engine) {
    s->slot->state = static_cast<uint8_t>(shm::SocketState::kConnecting);
    const int err = WaitConnected(s);
    if (err != 0) {
      DropPipe(s);
      s->slot->state = static_cast<uint8_t>(shm::SocketState::kClosed);
      Add(s->slot->errors, 1);
      errno = err;
      return -1;
    }
  }
  s->local.sin_family = AF_INET;
  s->local.sin_addr.s_addr = r.local.addr != 0 ? r.local.addr : m.local.addr;
  s->local.sin_port = m.local.port;
  s->remote = *dst;
  OnOffloaded(s, Path::kPipe);
  if (engine) s->slot->path = static_cast<uint8_t>(shm::SocketPath::kEngine);
  return 0;
}

int TcpAccept(Socket* s, sockaddr* addr, socklen_t* addrlen, int flags) {
  for (;;) {
    PollEvents();
    if (s->reg_gen != AttachGeneration() || Arena() == nullptr) {
      // Inherited across fork, or the daemon restarted: register again so
      // offloaded connections reach this process too.
      if (Arena() != nullptr || EnsureAttached()) RegisterListener(s);
    }
    pthread_mutex_lock(&s->mu);
    if (!s->offers.empty()) {
      PendingOffer o = s->offers.front();
      s->offers.pop_front();
      pthread_mutex_unlock(&s->mu);
      const int nfd = Real().socket(AF_INET, SOCK_STREAM | (flags & (SOCK_NONBLOCK | SOCK_CLOEXEC)), 0);
      if (nfd < 0) {
        const int err = errno;
        pthread_mutex_lock(&s->mu);
        s->offers.push_front(o);
        pthread_mutex_unlock(&s->mu);
        errno = err;
        return -1;
      }
      Socket* c = NewSocket(nfd, SOCK_STREAM, (flags & SOCK_NONBLOCK) != 0);
      c->thread_offload = s->thread_offload;
      c->rule_id = s->rule_id;
      if (!SetupPipe(c, o.msg.id2, o.msg.value, 1, o.fds)) {  // the side ends (fds closed)
        Teardown(c);
        Unref(c);
        Real().close(nfd);
        continue;
      }
      c->local.sin_family = AF_INET;
      c->local.sin_addr.s_addr = o.msg.local.addr;
      c->local.sin_port = o.msg.local.port;
      c->remote.sin_family = AF_INET;
      c->remote.sin_addr.s_addr = o.msg.remote.addr;
      c->remote.sin_port = o.msg.remote.port;
      c->bound = true;
      shm::Msg ack = {};
      ack.type = shm::MsgType::kPipeAccepted;
      ack.id = o.msg.id2;
      ack.value = 1;
      SendAsync(ack);
      FdObject* old = ExchangeObject(nfd, c);
      if (old != nullptr) Unref(old);
      OnOffloaded(c, Path::kPipe);
      if (o.msg.status == 1) c->slot->path = static_cast<uint8_t>(shm::SocketPath::kEngine);
      Add(s->slot->rx_msgs, 1);
      if (addr != nullptr && addrlen != nullptr) {
        const socklen_t n = std::min<socklen_t>(*addrlen, sizeof(c->remote));
        memcpy(addr, &c->remote, n);
        *addrlen = sizeof(c->remote);
      }
      return nfd;
    }
    pthread_mutex_unlock(&s->mu);
    const int kfd = Real().accept4(s->fd, addr, addrlen, flags);
    if (kfd >= 0) return kfd;  // a kernel client: a plain kernel socket
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (s->nonblock) {
      Add(s->slot->rx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    const int rc = WaitSocket(s, EPOLLIN, Timeout(s, true));
    if (rc != 0) {
      errno = rc;
      return -1;
    }
  }
}

size_t PipeReadable(Socket* s) { return s->rx.ReadableFresh(); }

int ConnectProgress(Socket* s) {
  if (!s->connecting.load(std::memory_order_acquire)) return 0;
  auto* h = s->seg.as<shm::PipeHeader>();
  // Pairs with the engine's store-release of the outcome.
  const int32_t st = h->connect_status.load(std::memory_order_acquire);
  if (st == shm::kConnectPending) return EINPROGRESS;
  if (!s->connecting.exchange(false, std::memory_order_acq_rel)) return s->so_error;
  if (st == 0) {
    s->slot->state = static_cast<uint8_t>(shm::SocketState::kEstablished);
    return 0;
  }
  // The engine gave the flow up: the socket now reads as a reset
  // connection whose reset was already reported through SO_ERROR.
  MarkReset(s);
  s->rst_reported = true;
  s->connect_failed = true;
  s->so_error = st;
  s->slot->state = static_cast<uint8_t>(shm::SocketState::kClosed);
  Add(s->slot->errors, 1);
  return st;
}

// Send/receive on a socket whose connect may still be in flight: 0 to go
// on, or -1 with errno (EAGAIN while connecting without blocking, the
// connect's error once).
int SettleConnect(Socket* s, bool nonblock) {
  for (;;) {
    const int r = ConnectProgress(s);
    if (r == 0) return 0;
    if (r != EINPROGRESS) {
      s->so_error = 0;  // reported here instead
      errno = r;
      return -1;
    }
    if (nonblock) {
      errno = EAGAIN;
      return -1;
    }
    if (const int err = AwaitKick(s)) {
      errno = err;
      return -1;
    }
  }
}

void EngineLost(Socket* s) {
  if (!s->seg.valid()) return;
  MarkReset(s);
  Log(2, "fd %d: offloadd is gone; its TCP connection is reset", s->fd);
}

namespace {
// After a send: a run of kLazyAfterSends sends with no receive between
// makes the producer lazy; the first send after a receive ends it, so
// request/response keeps its fences and the peer's sleeps stay free of
// membarrier IPIs (fence.h). Only the sending thread touches this state.
void NoteSend(Socket* s) {
  const uint32_t epoch = s->rx_epoch.load(std::memory_order_relaxed);
  if (epoch != s->tx_seen_rx_epoch) {
    s->tx_seen_rx_epoch = epoch;
    s->tx_streak = 0;
    s->tx.SetLazy(false);
  }
  if (s->tx_streak < kLazyAfterSends && ++s->tx_streak == kLazyAfterSends) s->tx.SetLazy(true);
}
}  // namespace

ssize_t PipeSend(Socket* s, const iovec* iov, int iovcnt, int flags) {
  const size_t total = IovLen(iov, iovcnt);
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  if (s->connecting.load(std::memory_order_relaxed) && SettleConnect(s, nonblock) != 0) {
    return -1;
  }
  size_t sent = 0;
  for (;;) {
    if (s->shut_wr) {
      errno = EPIPE;
      goto pipe_error;
    }
    if (const uint32_t rc = s->tx.ReaderClosed()) {
      // The peer closed its socket: Linux answers our data with RST, the
      // first send after it fails with ECONNRESET, later ones with EPIPE.
      if ((rc == 2 || s->rx.Shut() == shm::kShutRst) && !s->rst_reported) {
        s->rst_reported = true;
        errno = ECONNRESET;
      } else {
        errno = EPIPE;
      }
      goto pipe_error;
    }
    if (total == 0) return 0;
    const size_t room = s->tx.Writable(total - sent);
    if (room > 0) {
      const size_t n = std::min(room, total - sent);
      GatherIn(&s->tx, iov, iovcnt, sent, n);
      if (s->tx.Commit(n)) shm::Kick(s->peer_efd.get());
      if (s->rx_streaming.load(std::memory_order_relaxed)) {
        s->rx_streaming.store(false, std::memory_order_relaxed);
      }
      NoteSend(s);
      sent += n;
      Add(s->slot->tx_bytes, n);
      if (sent == total) {
        Add(s->slot->tx_msgs, 1);
        return static_cast<ssize_t>(sent);
      }
      continue;
    }
    if (nonblock) {
      if (sent > 0) return static_cast<ssize_t>(sent);
      Add(s->slot->tx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    const int rc = WaitSocket(s, EPOLLOUT, Timeout(s, false));
    if (rc != 0) {
      if (sent > 0) return static_cast<ssize_t>(sent);
      errno = rc;
      return -1;
    }
  }
pipe_error:
  if (sent > 0) return static_cast<ssize_t>(sent);
  Add(s->slot->errors, 1);
  if (errno == EPIPE && !(flags & MSG_NOSIGNAL)) raise(SIGPIPE);
  return -1;
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

size_t Slip(Socket* s, size_t avail) {
  const size_t want = std::min<size_t>(static_cast<size_t>(Config().rx_slip), s->rx.capacity() / 4);
  if (want == 0) return avail;
  if (avail >= want) return s->rx.BelowProducerPage(avail);
  const int64_t start = NowNs();
  const size_t first = avail;
  int64_t next = start + kSlipPollNs;
  for (;;) {
    while (NowNs() < next) CpuRelax();  // no shared line touched here
    const size_t now_avail = s->rx.ReadableFresh();
    const int64_t now = NowNs();
    if (now_avail == avail) return now_avail;  // the writer paused: all of it
    if (now_avail >= want || now - start >= kSlipMaxNs) return s->rx.BelowProducerPage(now_avail);
    avail = now_avail;
    // Bytes per ns so far; the rest should take (want - avail) / rate.
    const double rate = static_cast<double>(avail - first) / static_cast<double>(now - start);
    const int64_t rest = static_cast<int64_t>(static_cast<double>(want - avail) / rate);
    next = now + std::clamp<int64_t>(rest, kSlipMinPollNs, kSlipMaxNs - (now - start));
  }
}
}  // namespace

ssize_t PipeRecv(Socket* s, const iovec* iov, int iovcnt, int flags) {
  const size_t total = IovLen(iov, iovcnt);
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  if (s->connecting.load(std::memory_order_relaxed) && SettleConnect(s, nonblock) != 0) {
    return -1;
  }
  const bool peek = flags & MSG_PEEK;
  const bool waitall = (flags & MSG_WAITALL) && !peek && !nonblock;
  size_t got = 0;
  if (total == 0) return 0;
  // Slip only a stream: data there on entry, or after a wait too short to
  // be a gap between messages (kSlipDenseNs); never a sparse feed.
  const bool stream = s->rx_streaming.load(std::memory_order_relaxed) && !peek && !waitall;
  bool may_slip = stream;
  // A receive ends a stream of sends (NoteSend).
  s->rx_epoch.store(s->rx_epoch.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  for (;;) {
    if (s->shut_rd) return static_cast<ssize_t>(got);
    size_t avail = s->rx.Readable();
    // Never when the caller's buffer can be filled now (a length-prefixed
    // protocol reading its body).
    if (avail > 0 && may_slip && avail < total - got) avail = Slip(s, avail);
    may_slip = false;
    if (avail > 0) {
      const size_t n = std::min(avail, total - got);
      // Receive-queue gauges (single writer: relaxed stores).
      s->slot->rx_queue_bytes.store(avail - (peek ? 0 : n), std::memory_order_relaxed);
      if (avail > s->slot->rx_queue_max.load(std::memory_order_relaxed)) {
        s->slot->rx_queue_max.store(avail, std::memory_order_relaxed);
      }
      ScatterOut(&s->rx, iov, iovcnt, got, n);
      if (!peek) {
        if (n >= kEvictBytes) s->rx.EvictConsumed(n);
        if (s->rx.Consume(n)) shm::Kick(s->peer_efd.get());
        Add(s->slot->rx_bytes, n);
        Add(s->slot->rx_msgs, 1);
      }
      got += n;
      if (!peek) s->rx_streaming.store(true, std::memory_order_relaxed);
      if (!waitall || got == total) return static_cast<ssize_t>(got);
      continue;
    }
    if (const uint32_t shut = s->rx.Shut()) {
      // shut is stored after the last tail update: re-check for data.
      if (s->rx.ReadableFresh() > 0) continue;
      if (shut == shm::kShutRst && !s->rst_reported && got == 0) {
        s->rst_reported = true;  // RFC 9293 3.10.7.4: reset -> ECONNRESET, once
        Add(s->slot->errors, 1);
        errno = ECONNRESET;
        return -1;
      }
      return static_cast<ssize_t>(got);  // end of stream
    }
    if (nonblock) {
      if (got > 0) return static_cast<ssize_t>(got);
      Add(s->slot->rx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    const bool timed = stream && got == 0;
    const int64_t wait_start = timed ? NowNs() : 0;
    const int rc = WaitSocket(s, EPOLLIN, Timeout(s, true));
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
  if (how != SHUT_WR) s->shut_rd = true;
  if (how != SHUT_RD && !s->shut_wr) {
    s->shut_wr = true;
    s->tx.Shut(shm::kShutFin);  // FIN after the queued data
    shm::Kick(s->peer_efd.get());
  }
  shm::Kick(s->efd.get());  // our own waiters re-evaluate
  return 0;
}

}  // namespace client
}  // namespace offload
