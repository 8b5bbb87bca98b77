// Offloaded TCP listeners (tcp.cc has connects and pipe ends): listen()
// (an accept queue in shared memory from offloadd, the shadow still
// listening for kernel clients), accept() (a connection posted to the
// queue, or a kernel client through the shadow), and the close of this
// process's handle on a listener.

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>

#include <new>
#include <utility>
#include <vector>

#include "client/attach.h"
#include "client/channels.h"
#include "client/decision.h"
#include "client/fd_table.h"
#include "client/inet_name.h"
#include "client/libc.h"
#include "client/ops.h"

namespace offload {
namespace client {

bool AttachListener(Socket* s, uint32_t id, shm::ListenerHeader* hdr) {
  auto* l = new (std::nothrow) ListenerRef();
  if (l == nullptr) return false;
  l->id = id;
  l->hdr = hdr;
  s->listener.reset(l);
  return true;
}

void TcpAfterListen(Socket* s, int backlog) {
  s->tcp->backlog = backlog;
  const Path path = s->path.load();
  if (path == Path::kKernel) return;
  if (path == Path::kListener) {
    // listen() again (a new backlog): offloadd keeps the same listener.
    return;
  }
  socklen_t len = sizeof(s->local);
  if (Real().getsockname(s->fd, &s->local.sa, &len) != 0 ||
      s->local.sa.sa_family != s->family) {
    OnKernel(s, shm::Fallback::kUnsupportedFamily, nullptr);
    return;
  }
  UpdateSlotAddrs(s);
  if (!Decide(s, rules::Role::kTcpServer, &s->local, nullptr)) {
    OnKernel(s, s->fallback, nullptr);
    return;
  }
  if (!EnsureAttached()) {
    OnKernel(s, shm::Fallback::kDaemonAbsent, nullptr);
    return;
  }
  shm::Msg m = {};
  m.type = shm::MsgType::kTcpListen;
  m.value = static_cast<uint32_t>(backlog < 0 ? 0 : backlog);
  m.opts = s->tcp->opts;  // the engine listener's (and its children's) options
  ToMsg(Canonical(s->local), &m.local, nullptr);  // offloadd reads the socket's own
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, &s->fd, 1, &r, rfds, &nr)) {
    OnKernel(s, shm::Fallback::kDaemonAbsent, nullptr);
    return;
  }
  shm::UniqueFd memfd(nr > 0 ? rfds[0] : -1);
  for (int i = 1; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
  shm::ListenerHeader* hdr =
      r.type == shm::MsgType::kListener ? AcquireListener(r.id, std::move(memfd)) : nullptr;
  if (hdr == nullptr || !AttachListener(s, r.id, hdr)) {
    if (hdr != nullptr) ReleaseListener(r.id);
    OnKernel(s, shm::Fallback::kLimit, "listener segment");
    return;
  }
  // The shadow keeps listening for kernel clients; accept() polls it
  // without blocking, so it is non-blocking underneath whatever the
  // application asked (fcntl(F_GETFL) reports the application's view).
  const int fl = Real().fcntl(s->fd, F_GETFL);
  Real().fcntl(s->fd, F_SETFL, fl | O_NONBLOCK);
  s->slot->listener_id = r.id;
  OnOffloaded(s, Path::kListener);
}

void TcpListenerOptionsChanged(Socket* s) {
  if (s->listener == nullptr || !EnsureAttached()) return;
  // listen() again, as far as offloadd is concerned: the same listener,
  // with the socket's options now (its engine listener's SYN,ACKs and
  // children use them).
  shm::Msg m = {};
  m.type = shm::MsgType::kTcpListen;
  m.value = static_cast<uint32_t>(s->tcp->backlog < 0 ? 0 : s->tcp->backlog);
  m.opts = s->tcp->opts;
  ToMsg(Canonical(s->local), &m.local, nullptr);  // offloadd reads the socket's own
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, &s->fd, 1, &r, rfds, &nr)) return;
  for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
}

namespace {

// Makes a socket for an accepted connection; null (errno) on failure.
Socket* AcceptedSocket(Socket* ls, const shm::AcceptEntry& e, int engine_ring, int flags,
                       int* nfd_out) {
  shm::ChannelMap* chan = MapChannelVia(e.channel_id, ls->fd);
  if (chan == nullptr) {
    // offloadd cannot give us the channel now: the connection goes back
    // to the queue (another holder may take it) and this accept fails as
    // for a connection aborted before accept.
    shm::PostConnection(ls->listener->hdr, e);
    errno = ECONNABORTED;
    return nullptr;
  }
  shm::PipeRecord* r = chan->Record(e.slot);
  if (r == nullptr || r->ctl.gen.load(std::memory_order_acquire) != e.gen) {
    errno = EAGAIN;  // stale entry: skip it
    return nullptr;
  }
  const int nfd =
      Real().socket(ls->family, SOCK_STREAM | (flags & (SOCK_NONBLOCK | SOCK_CLOEXEC)), 0);
  if (nfd < 0) return nullptr;
  Socket* c = NewSocket(nfd, SOCK_STREAM, (flags & SOCK_NONBLOCK) != 0, ls->family);
  c->thread_offload = ls->thread_offload;
  c->rule_id = ls->rule_id;
  if (!AttachPipeEnd(c, chan, e.slot, e.gen, 1, engine_ring >= 0)) {
    Teardown(c);
    Unref(c);
    Real().close(nfd);
    errno = EAGAIN;
    return nullptr;
  }
  PipeEnd* p = c->pipe.get();
  p->me().inode = c->inode;
  uint32_t set = shm::kEndAccepted;
  if (flags & SOCK_NONBLOCK) set |= shm::kEndNonblock;
  p->me().flags.fetch_or(set, std::memory_order_acq_rel);
  // As Linux shows them to a socket of the listener's family: a dual-stack
  // listener's IPv4 connections as ::ffff:a.b.c.d.
  c->local = NameIn(p->me().local, ls->family);
  c->remote = NameIn(p->peer().local, ls->family);
  c->bound = true;
  *nfd_out = nfd;
  return c;
}

}  // namespace

int TcpAccept(Socket* s, sockaddr* addr, socklen_t* addrlen, int flags) {
  ListenerRef* l = s->listener.get();
  for (;;) {
    shm::AcceptEntry e;
    int engine_ring = -1;
    if (shm::TakeConnection(l->hdr, &e, &engine_ring)) {
      int nfd = -1;
      Socket* c = AcceptedSocket(s, e, engine_ring, flags, &nfd);
      if (c == nullptr) {
        if (errno == EAGAIN) continue;  // a stale entry
        if (errno == ECONNABORTED) return -1;
        // Linux keeps the connection queued when accept() cannot make an
        // fd (EMFILE): we cannot put it back, so it is reset instead.
        const int err = errno;
        if (shm::ChannelMap* chan = FindChannel(e.channel_id)) {
          if (shm::PipeRecord* r = chan->Record(e.slot)) {
            if (r->ctl.gen.load(std::memory_order_acquire) == e.gen) {
              r->end[1].flags.fetch_or(shm::kEndLingerAbort, std::memory_order_acq_rel);
              const shm::CloseWakeups w = shm::CloseEnd(r, 1);
              WakeLine(&r->dir[1].reader_wait, w.peer_readers);
              WakeLine(&r->dir[0].writer_wait, w.peer_writers);
              if (w.free_slot && engine_ring < 0) chan->Free(e.slot, false);
            }
          }
        }
        errno = err;
        return -1;
      }
      FdObject* old = ExchangeObject(nfd, c);
      if (old != nullptr) Unref(old);
      OnOffloaded(c, Path::kPipe);
      SetSlotPipe(c);
      if (c->pipe->engine) {
        c->slot->path = static_cast<uint8_t>(shm::SocketPath::kEngine);
        InheritListenerOptions(s, c);
      }
      Add(s->slot->rx_msgs, 1);
      if (addr != nullptr && addrlen != nullptr) CopyName(c->remote, addr, addrlen);
      return nfd;
    }
    const int kfd = Real().accept4(s->fd, addr, addrlen, flags);
    if (kfd >= 0) return kfd;  // a kernel client: a plain kernel socket
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (s->nonblock) {
      Add(s->slot->rx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    // Exclusive, as Linux's accept(): one sleeping acceptor per connection.
    const int rc = WaitSocket(s, EPOLLIN | EPOLLEXCLUSIVE, s->rcvtimeo_ms);
    if (rc != 0) {
      errno = rc;
      return -1;
    }
  }
}

void CloseListenerRef(Socket* s) {
  ListenerRef* l = s->listener.get();
  if (l == nullptr) return;
  RetireLine(&l->accept_arms, &l->hdr->accept_wait);
  if (l->doorbell_listed.load(std::memory_order_relaxed)) {
    RemoveOwnWaiters(shm::AcceptWaiters(l->hdr));
  }
  if (!s->shared.load(std::memory_order_acquire)) {
    // This close is the socket's last: from now on connects are refused
    // (ECONNREFUSED, as right after a kernel listener's close) and the
    // queued connections are reset. offloadd, which watches the socket,
    // tidies up the rest (port, wire listener) when it sees it released.
    shm::ListenerHeader* h = l->hdr;
    std::vector<shm::AcceptEntry> pending;
    if (pthread_mutex_lock(&h->q_mu) == EOWNERDEAD) pthread_mutex_consistent(&h->q_mu);
    h->state.store(shm::kListenerClosed, std::memory_order_release);
    shm::AcceptEntry e;
    int engine = 0;
    pthread_mutex_unlock(&h->q_mu);
    while (shm::TakeConnection(h, &e, &engine)) pending.push_back(e);
    for (const shm::AcceptEntry& p : pending) {
      shm::ChannelMap* chan = FindChannel(p.channel_id);
      if (chan == nullptr) chan = MapChannelVia(p.channel_id, s->fd);
      shm::PipeRecord* r = chan != nullptr ? chan->Record(p.slot) : nullptr;
      if (r == nullptr || r->ctl.gen.load(std::memory_order_acquire) != p.gen) continue;
      r->end[1].flags.fetch_or(shm::kEndLingerAbort, std::memory_order_acq_rel);
      const shm::CloseWakeups w = shm::CloseEnd(r, 1);
      WakeLine(&r->dir[1].reader_wait, w.peer_readers);
      WakeLine(&r->dir[0].writer_wait, w.peer_writers);
      if (w.free_slot) chan->Free(p.slot, false);
    }
  }
  ReleaseListener(l->id);
}

}  // namespace client
}  // namespace offload
