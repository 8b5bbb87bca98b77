// Offloaded TCP connection setup and teardown: connects (a slot of the
// channel to the listener, posted to its accept queue: offloadd only for
// the first connect to that listener, or for a connection on the wire),
// this process's handle on a pipe end, and its close. Listeners and
// accept are in tcp_listener.cc.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>

#include <algorithm>
#include <vector>
#include <new>

#include "client/attach.h"
#include "client/channels.h"
#include "client/config.h"
#include "client/decision.h"
#include "client/fd_table.h"
#include "client/inet_name.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"
#include "client/shadow_ports.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

void SetSlotPipe(Socket* s) {
  PipeEnd* p = s->pipe.get();
  shm::SocketSlot* slot = s->slot;
  slot->channel_id = p->channel_id;
  slot->pipe_slot = p->slot;
  slot->pipe_gen = p->gen;
  slot->pipe_end = static_cast<uint8_t>(p->end);
  // Release: the daemon reads the fields above after an acquire of share
  // (a dead process's exclusive ends are closed from them).
  slot->share.store(s->shared.load(std::memory_order_relaxed) ? shm::kSlotShared
                                                              : shm::kSlotExclusive,
                    std::memory_order_release);
}

namespace {

// Wakes the acceptors of `hdr` after a post (shm/listener.h).
void WakeAcceptors(shm::ListenerHeader* hdr) {
  // Every non-exclusive acceptor and one exclusive one (a blocked accept(),
  // an EPOLLEXCLUSIVE epoll waiter), as Linux does; the wake-up stays owed
  // while acceptors sleep. The post count spreads the exclusive wake-ups.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const shm::WaiterSet set = shm::AcceptWaiters(hdr);
  WakeLine(&hdr->accept_wait, shm::TakeArmedKeepDoorbell(&hdr->accept_wait), set,
           static_cast<uint32_t>(hdr->posted.load(std::memory_order_relaxed) % set.n));
}

}  // namespace

PipeEnd::~PipeEnd() {
  if (chan != nullptr) ReleaseChannel(chan);
}

bool AttachPipeEnd(Socket* s, shm::ChannelMap* chan, uint32_t slot, uint32_t gen, int end,
                   bool engine) {
  shm::PipeRecord* r = chan->Record(slot);
  if (r == nullptr || r->ctl.gen.load(std::memory_order_acquire) != gen || (end != 0 && end != 1)) {
    return false;
  }
  auto* p = new (std::nothrow) PipeEnd();
  if (p == nullptr) return false;
  AcquireChannel(chan);  // released by ~PipeEnd
  p->chan = chan;
  p->rec = r;
  p->channel_id = chan->id();
  p->slot = slot;
  p->gen = gen;
  p->end = end;
  p->engine = engine;
  p->tx.Init(&r->dir[end], chan->RingData(slot, end), chan->capacity());
  p->rx.Init(&r->dir[1 - end], chan->RingData(slot, 1 - end), chan->capacity());
  s->pipe.reset(p);
  return true;
}


namespace {

// The engine answered for the wire: the daemon allocated end 0 of a slot.
int EngineConnect(Socket* s, const shm::Msg& r, shm::UniqueFd memfd, const InetName& dst,
                  const InetName& local) {
  shm::ChannelMap* chan = memfd.valid() ? AddChannel(std::move(memfd)) : FindChannel(r.id);
  if (chan == nullptr || chan->id() != r.id ||
      !AttachPipeEnd(s, chan, r.slot, r.gen, 0, /*engine=*/true)) {
    OnKernel(s, shm::Fallback::kLimit, "pipe mapping");
    return kUseKernel;
  }
  PipeEnd* p = s->pipe.get();
  p->me().inode = s->inode;
  if (s->nonblock) p->me().flags.fetch_or(shm::kEndNonblock, std::memory_order_acq_rel);
  // The source the engine uses (offloadd wrote it: the route's address and
  // the shadow's port), not the unbound shadow's wildcard.
  s->local = p->me().local.family != 0 ? NameIn(p->me().local, s->family) : local;
  s->remote = dst;
  p->connecting.store(true, std::memory_order_release);
  OnOffloaded(s, Path::kPipe);
  PublishInitialOptions(s);
  SetSlotPipe(s);
  s->slot->path = static_cast<uint8_t>(shm::SocketPath::kEngine);
  s->slot->state = static_cast<uint8_t>(shm::SocketState::kConnecting);
  if (s->nonblock) {
    // Linux's non-blocking connect: EINPROGRESS now, EPOLLOUT (or EPOLLERR
    // and SO_ERROR) when the handshake ends; the engine wakes our waiters.
    p->async_connect = true;
    errno = EINPROGRESS;
    return -1;
  }
  const int err = WaitConnected(s);
  if (err != 0) {
    p->me().so_error.store(0, std::memory_order_relaxed);
    errno = err;
    return -1;
  }
  return 0;
}

}  // namespace

int TcpConnect(Socket* s, const sockaddr* dst_addr, socklen_t dst_len) {
  InetName dst = {};
  memcpy(&dst, dst_addr, std::min<size_t>(dst_len, sizeof(dst)));
  const shm::SockAddr d = Canonical(dst);
  if (!Decide(s, rules::Role::kTcpClient, s->bound ? &s->local : nullptr, &dst)) {
    OnKernel(s, s->fallback, nullptr);
    return kUseKernel;
  }
  if (s->family == AF_INET6 && d.family == AF_INET && V6Only(s)) {
    // Linux refuses it (ENETUNREACH); so does the kernel socket.
    OnKernel(s, shm::Fallback::kUnsupportedFamily, "v4-mapped, IPV6_V6ONLY");
    return kUseKernel;
  }
  shm::ArenaHeader* a = EnsureAttached() ? Arena() : nullptr;
  if (a == nullptr) {
    OnKernel(s, shm::Fallback::kDaemonAbsent, nullptr);
    return kUseKernel;
  }
  // Loopback, or the daemon has no wire path: only an offloaded listener
  // on this host can take the connection, and the port bitmap says whether
  // there is one, without a daemon round trip.
  const bool same_host_only = a->wire_addr == 0 || IsLoopback(d);
  if (!shm::PortBit(a->tcp_ports, ntohs(d.port)) && same_host_only) {
    OnKernel(s, shm::Fallback::kPeerNotOffloaded, nullptr);
    return kUseKernel;
  }
  // Reserve a local port in the kernel so local ports never collide.
  InetName local = {};
  socklen_t len = sizeof(local);
  bool pooled = false;
  if (!s->bound) {
    if (!BindShadowPort(s, d, same_host_only)) {
      OnKernel(s, shm::Fallback::kLimit, "ephemeral port");
      return kUseKernel;
    }
    s->bound = true;
    pooled = s->tcp->shadow_port != 0;
  }
  if (pooled) {
    // We bound it to the wildcard address and a port we chose: no need to
    // ask the kernel.
    if (s->family == AF_INET6) {
      local.v6.sin6_family = AF_INET6;
      local.v6.sin6_port = s->tcp->shadow_port;
    } else {
      local.v4.sin_family = AF_INET;
      local.v4.sin_port = s->tcp->shadow_port;
    }
  } else {
    Real().getsockname(s->fd, &local.sa, &len);
  }
  shm::SockAddr l = Canonical(local);
  const bool unbound_addr = shm::IsV6Any(l.addr) || (l.family == AF_INET && shm::V4Of(l) == 0);
  if (!unbound_addr && l.family != d.family) {
    // Bound to an IPv6 address, connecting to a v4-mapped one, or the
    // reverse: Linux refuses it (ENETUNREACH / EAFNOSUPPORT), the kernel
    // socket answers.
    OnKernel(s, shm::Fallback::kUnsupportedFamily, "mixed IPv4/IPv6 ends");
    return kUseKernel;
  }
  if (unbound_addr) {
    // Unbound address: the same-host source is the destination's.
    const uint16_t port = l.port;
    l = d;
    l.port = port;
    local = NameIn(l, s->family);
  }
  Route route;
  bool have_route = LookupRoute(d, &route);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!have_route) {
      shm::Msg m = {};
      m.type = shm::MsgType::kTcpConnect;
      ToMsg(l, &m.local, nullptr);
      ToMsg(d, &m.remote, &m.remote6);
      m.opts = s->tcp->opts;  // an engine's SYN carries TCP_MAXSEG, SO_RCVBUF's window scale
      shm::Msg r;
      int rfds[shm::kMaxMsgFds];
      int nr = 0;
      if (!Call(&m, &s->fd, 1, &r, rfds, &nr)) {
        OnKernel(s, shm::Fallback::kDaemonAbsent, nullptr);
        return kUseKernel;
      }
      shm::UniqueFd fd0(nr > 0 ? rfds[0] : -1), fd1(nr > 1 ? rfds[1] : -1);
      for (int i = 2; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
      if (r.type != shm::MsgType::kChannel) {
        OnKernel(s, a->wire_addr != 0 ? shm::Fallback::kNotRouted
                                      : shm::Fallback::kPeerNotOffloaded,
                 nullptr);
        return kUseKernel;
      }
      if (r.kind == shm::kChannelEngine) return EngineConnect(s, r, std::move(fd0), dst, local);
      route.chan = fd0.valid() ? AddChannel(std::move(fd0)) : FindChannel(r.id);
      route.hdr = AcquireListener(r.id2, std::move(fd1));
      route.channel_id = r.id;
      route.listener_id = r.id2;
      if (route.chan == nullptr || route.hdr == nullptr) {
        if (route.hdr != nullptr) ReleaseListener(r.id2);
        OnKernel(s, shm::Fallback::kLimit, "channel mapping");
        return kUseKernel;
      }
      InsertRoute(d, route);
      have_route = true;
    }
    uint32_t slot = 0, gen = 0;
    if (!route.chan->Allocate(route.listener_id, 2, /*try_only=*/false, &slot, &gen)) {
      OnKernel(s, shm::Fallback::kLimit, "connections per channel");
      return kUseKernel;
    }
    shm::PipeRecord* rec = route.chan->Record(slot);
    rec->end[0].local = l;
    rec->end[0].inode = s->inode;
    rec->end[1].local = d;
    if (s->nonblock) rec->end[0].flags.fetch_or(shm::kEndNonblock, std::memory_order_relaxed);
    const shm::PostResult posted =
        shm::PostConnection(route.hdr, shm::AcceptEntry{route.channel_id, slot, gen, 0});
    if (posted != shm::PostResult::kPosted) {
      // Nobody will ever take it: both ends closed, slot back.
      rec->ctl.closed.store(3, std::memory_order_release);
      route.chan->Free(slot, false);
      if (posted == shm::PostResult::kFull) {
        errno = ECONNREFUSED;  // the listener's accept queue is full
        return -1;
      }
      // The listener was closed meanwhile: ask offloadd again (maybe a new
      // one listens there now).
      EvictRoute(d);
      have_route = false;
      continue;
    }
    WakeAcceptors(route.hdr);
    if (!AttachPipeEnd(s, route.chan, slot, gen, 0, /*engine=*/false)) {
      errno = ENOBUFS;
      return -1;
    }
    s->local = local;
    s->remote = dst;
    OnOffloaded(s, Path::kPipe);
    SetSlotPipe(s);
    return 0;
  }
  OnKernel(s, shm::Fallback::kPeerNotOffloaded, nullptr);
  return kUseKernel;
}

void ClosePipeEnd(Socket* s) {
  PipeEnd* p = s->pipe.get();
  if (p == nullptr) return;
  const uint32_t rx_sleeping = RetireLine(&p->rx_arms, p->rx.reader_wait());
  const uint32_t tx_sleeping = RetireLine(&p->tx_arms, p->tx.writer_wait());
  if (p->doorbell_listed.load(std::memory_order_relaxed)) {
    RemoveOwnWaiters(shm::Waiters(p->rx.reader_wait()));
    RemoveOwnWaiters(shm::Waiters(p->tx.writer_wait()));
  }
  if (s->shared.load(std::memory_order_acquire)) {
    Log(5, "fd %d: pipe %u/%u end %d: shared, offloadd ends it with its last holder", s->fd,
        p->channel_id, p->slot, p->end);
    return;
  }
  Log(5, "fd %d: pipe %u/%u end %d: closed by its only holder", s->fd, p->channel_id, p->slot,
      p->end);
  // Held by this process alone: this close is the socket's last. Our own
  // threads blocked in it (a send waiting for room holds its lock) wake up
  // and fail with EBADF (`closed` is set); then both sides' locks, so no
  // send or receive of another thread is halfway. Only the kinds they
  // sleep as (RetireLine): a close nobody waits on makes no system call.
  if (tx_sleeping != 0) WakeLine(p->tx.writer_wait(), tx_sleeping);
  if (rx_sleeping != 0) WakeLine(p->rx.reader_wait(), rx_sleeping);
  shm::CloseWakeups w;
  {
    const uint64_t token = CallerToken();
    shm::EndLockGuard tx(&p->tx.indexes()->producer_lock, token);
    shm::EndLockGuard rx(&p->rx.indexes()->consumer_lock, token);
    w = shm::CloseEnd(p->rec, p->end);
  }
  WakeLine(&p->rec->dir[p->end].reader_wait, w.peer_readers);
  WakeLine(&p->rec->dir[1 - p->end].writer_wait, w.peer_writers);
  if (!w.free_slot) return;
  if (p->engine) {
    // The engine finished first: offloadd owns engine channels' slots.
    shm::Msg m = {};
    m.type = shm::MsgType::kFreeSlot;
    m.id = p->channel_id;
    m.slot = p->slot;
    m.gen = p->gen;
    SendAsync(m);
  } else {
    p->chan->Free(p->slot, false);
  }
}

}  // namespace client
}  // namespace offload
