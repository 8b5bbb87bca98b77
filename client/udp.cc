// Offloaded UDP: every offloaded UDP socket is registered with the daemon
// as a receiver; a send to another offloaded socket on the host goes into a
// datagram ring brokered for that (sender, receiver) pair, anything else to
// the kernel through the shadow socket. A receiver polls its rings and,
// every OFFLOAD_RX_UDP_POLL_OS_RATIO polls, its shadow (kernel senders).
//
// On the wire: when offloadd serves an interface (the arena's wire_addr)
// and the socket is bound to INADDR_ANY or that address, the socket also
// gets an engine endpoint on its port (kUdpWire): a TX ring whose records
// carry their destination and an RX ring whose records carry their source
// (abi.h WireUdpSegmentBytes). A send to a destination the daemon says
// leaves through the offloaded interface (asked once per destination,
// remembered in a small cache) goes into the TX ring; everything else, and
// datagrams larger than the engine's MTU, still through the shadow: the
// kernel and the engine share the port.
//
// Multicast. IP_ADD_MEMBERSHIP / MCAST_JOIN_GROUP go to the shadow first:
// the kernel joins (IGMP reports, and it serves the group whenever the
// engine does not). A socket with an engine endpoint then reports the
// membership (kUdpJoin); if it names the offloaded interface the daemon
// steers the group's datagrams to the port to the engine, which delivers
// them into the wire RX ring (every offloaded member on the port gets a
// copy). Memberships made before the engine endpoint exists are reported
// when it appears. Drops (and close) undo it.
//
// A send to a group goes through the engine when the daemon says the
// socket's IP_MULTICAST_IF (or the group's route) is the offloaded
// interface; the record carries IP_MULTICAST_TTL. IP_MULTICAST_LOOP (on by
// default) asks for a copy to every member on this host: the engine cannot
// loop a frame back into the kernel, so with loop on the client also sends
// the datagram through the shadow with TTL 0, which the kernel delivers to
// local members and never transmits (RFC 1112 6.1; Linux ip_mc_output).
// That costs a kernel send per datagram; IP_MULTICAST_LOOP 0 leaves only
// the engine send. TTL 0 (host only) goes through the kernel alone.
//
// The same-host rings are in udp_rings.cc, the engine endpoint in
// udp_wire.cc, multicast in udp_multicast.cc, the extra API's receive paths
// in udp_extra.cc; this file has the socket's entry points: bind, send,
// receive, release and the demotion of a shared socket.

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>

#include <poll.h>

#include <algorithm>
#include <new>

#include "client/attach.h"
#include "client/config.h"
#include "client/decision.h"
#include "client/fd_table.h"
#include "client/inet_name.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"
#include "client/udp_internal.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

namespace {
bool RegisterUdp(Socket* s) { return RegisterEndpoint(s, shm::MsgType::kUdpBind, 0); }
}  // namespace

void ReleaseUdpEndpoint(Socket* s) {
  UnregisterSocket(s->reg_id);  // offers still in flight are refused from now on
  if (s->reg_gen == AttachGeneration()) {
    shm::Msg m = {};
    m.type = shm::MsgType::kUdpUnbind;
    m.id = s->reg_id;
    SendAsync(m);
  }
  for (const std::unique_ptr<OutRing>& r : s->udp->out_rings) {
    if (r->p.Shut()) shm::Kick(r->efd.get());
    SendDgramClose(r->id, /*sender=*/true);
  }
  pthread_mutex_lock(&s->mu);
  for (std::unique_ptr<InRing>& r : s->udp->new_rings) s->udp->in_rings.push_back(std::move(r));
  s->udp->new_rings.clear();
  pthread_mutex_unlock(&s->mu);
  for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
    InRing* r = ring.get();
    // The wire RX ring (id 0) ends with the endpoint (kUdpUnbind).
    if (r->id != 0) SendDgramClose(r->id, /*sender=*/false);
  }
}

// A UDP socket held by several processes. Its rings have one producer and
// one consumer each, and the daemon offers a new sender's ring to one
// process, so two holders cannot both read them the kernel's way (any
// holder may read any datagram). Instead, before the second holder exists
// (the fork, the SCM_RIGHTS message, the exec), the socket goes back to the
// kernel for good, in every holder: its endpoint is unregistered (new
// same-host senders use the kernel; its senders see reader_closed and
// follow on their next send), the engine endpoint closes, and sends go
// through the shadow. Nothing already in its rings is lost: every holder
// reads what is left first, taking each datagram by moving the ring's
// shared head (DgramConsumer::PopShared), until each producer is gone and
// its ring empty; then recv is the kernel's own. Statistics show the socket
// on the kernel, reason "shared".
void DemoteSharedUdp(Socket* s) { DemoteUdp(s, shm::Fallback::kSharedDgram, nullptr); }

void DemoteUdp(Socket* s, shm::Fallback why, const char* detail) {
  if (s->path.load(std::memory_order_acquire) != Path::kUdp ||
      s->udp_shared.load(std::memory_order_acquire)) {
    return;
  }
  MutexGuard tx(&s->udp->tx_mu);
  MutexGuard rx(&s->udp->rx_mu);
  if (s->udp_shared.load(std::memory_order_relaxed)) return;
  AdoptNewRings(s);
  // Packets lent to the application (zero-copy receive): their space goes
  // back now, so that the other holders, reading from the shared heads,
  // neither lose nor see again anything this process took. They stay
  // mapped (the rings are kept until freed); offload_extra.h says what a
  // racing sender can do to their bytes.
  for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
    InRing* r = ring.get();
    if (r->lent_count != 0) r->c.PublishHead(r->c.ReadPos());
  }
  s->udp_shared.store(true, std::memory_order_release);
  // Same-host senders go to the kernel from their next send on.
  for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
    if (ring->id != 0) ring->c.CloseForSender();
  }
  ReleaseUdpEndpoint(s);
  s->udp->out_rings.clear();
  s->udp->no_ring.clear();
  DropWire(s);  // the RX ring stays mapped (wire_seg) and in in_rings
  s->fallback = why;
  s->slot->fallback = static_cast<uint8_t>(why);
  if (detail != nullptr) {
    snprintf(s->slot->fallback_detail, sizeof(s->slot->fallback_detail), "%s", detail);
  }
  s->slot->path = static_cast<uint8_t>(shm::SocketPath::kKernel);
  if (why == shm::Fallback::kSharedDgram) {
    Log(3, "fd %d: UDP socket now held by several processes: served by the kernel from now on",
        s->fd);
  } else {
    Log(3, "fd %d: %s cannot be honoured by the offload path: the UDP socket is served by the "
           "kernel from now on", s->fd, detail != nullptr ? detail : "an option");
  }
}

void ResetUdpLocksAfterFork() {
  for (int fd = 0; fd < g_fd_table_size; ++fd) {
    Socket* s = GetSocket(fd);
    if (s == nullptr || s->type != SOCK_DGRAM || s->fd != fd) continue;
    s->udp->tx_mu.Reset();
    s->udp->rx_mu.Reset();
    // Only the forking thread runs here, neither receiving nor deciding.
    s->udp->kernel_receivers.store(0, std::memory_order_relaxed);
    s->udp->deciding.store(false, std::memory_order_relaxed);
  }
}

namespace {
// Lowers UdpState::deciding when a decision ends, whichever way.
class DecidingScope {
 public:
  explicit DecidingScope(UdpState* u) : u_(u) {}
  ~DecidingScope() { u_->deciding.store(false, std::memory_order_release); }
  DecidingScope(const DecidingScope&) = delete;
  DecidingScope& operator=(const DecidingScope&) = delete;

 private:
  UdpState* const u_;
};
}  // namespace

void UdpAfterBind(Socket* s) {
  socklen_t len = sizeof(s->local);
  Real().getsockname(s->fd, &s->local.sa, &len);
  s->bound = true;
  if (s->path.load() != Path::kUndecided) return;
  // Threads already receiving (a receiver thread started before the first
  // send, as sockperf's) wait where the decision wakes them
  // (OnOffloaded/OnKernel -> WakeUndecidedReceivers), unless one could not
  // and sleeps in the kernel's recvmsg: it would never see the datagrams
  // that come through rings, so that socket stays on the kernel. Seq_cst
  // pair with KernelRecvmsg: either we see its count, or it sees
  // `deciding` and waits for our decision.
  s->udp->deciding.store(true, std::memory_order_seq_cst);
  DecidingScope scope(s->udp.get());
  if (s->udp->kernel_receivers.load(std::memory_order_seq_cst) != 0) {
    OnKernel(s, shm::Fallback::kBlockedReceiver, nullptr);
    return;
  }
  if (!Decide(s, rules::Role::kUdpReceiver, &s->local, nullptr)) {
    OnKernel(s, s->fallback, nullptr);
    return;
  }
  s->path.store(Path::kUdp, std::memory_order_release);  // ring offers may arrive now
  if (!RegisterUdp(s)) {
    OnKernel(s, Arena() == nullptr ? shm::Fallback::kDaemonAbsent : shm::Fallback::kLimit,
             nullptr);
    return;
  }
  OnOffloaded(s, Path::kUdp);
  RequestWire(s);
}

ssize_t UdpSend(Socket* s, const iovec* iov, int iovcnt, int flags, const shm::SockAddr* to) {
  MutexGuard tx(&s->udp->tx_mu);
  if (s->udp_shared.load(std::memory_order_relaxed)) return kUseKernel;
  // Shut for writing: the kernel answers EPIPE.
  if (s->udp->shut.load(std::memory_order_relaxed) & kUdpShutWr) return kUseKernel;
  if (s->path.load(std::memory_order_relaxed) == Path::kUndecided) {
    if (!EnsureBound(s)) return kUseKernel;
    UdpAfterBind(s);
    if (s->path.load() != Path::kUdp) return kUseKernel;
  }
  shm::SockAddr d;
  if (to != nullptr) {
    d = *to;
  } else {
    if (!s->connected) return kUseKernel;  // ENOTCONN / EDESTADDRREQ from the kernel
    d = Canonical(s->remote);
  }
  // IPv4 destinations (v4-mapped ones of an AF_INET6 socket included) as
  // sockaddr_in (the engine, multicast); IPv6 ones go to the engine in
  // kDgramAddr6 records (WireSend6).
  const sockaddr_in d4 = shm::ToSockaddrIn(d);
  const sockaddr_in* dst = &d4;
  if (s->reg_gen != AttachGeneration() && EnsureAttached()) {
    // A new session (offloadd restarted): the old engine endpoint is gone.
    const bool had_wire = s->udp->wire_tx.valid();
    DropWire(s);
    if (RegisterUdp(s) && had_wire) RequestWire(s);
  }
  OutRing* ring = nullptr;
  for (size_t i = 0; i < s->udp->out_rings.size(); ++i) {
    OutRing* r = s->udp->out_rings[i].get();
    if (SameEndpoint(r->dst, d)) {
      if (r->p.ReaderClosedForSender()) {
        // The receiver went away: back to the kernel for this destination.
        SendDgramClose(r->id, /*sender=*/true);
        s->udp->out_rings.erase(s->udp->out_rings.begin() + i);  // frees r
        return kUseKernel;
      }
      ring = r;
      break;
    }
  }
  size_t len = 0;
  for (int i = 0; i < iovcnt; ++i) len += iov[i].iov_len;
  if (ring == nullptr) {
    // The engine's destinations are remembered per socket; the others are
    // same-host rings or the kernel.
    const uint64_t key = NoRingKey(d);
    const WireRoute route = s->udp->wire_tx.valid() ? CachedRoute(s, key) : WireRoute::kUnknown;
    if (route == WireRoute::kKernel) return kUseKernel;
    bool wire = route == WireRoute::kWire;
    if (!wire) {
      ring = OpenRing(s, d, &wire);
      if (ring == nullptr && s->udp->wire_tx.valid()) CacheRoute(s, key, wire);
    }
    if (wire) {
      if (len > shm::kMaxDatagram) {
        errno = EMSGSIZE;
        return -1;
      }
      SyncWireDrops(s);
      if (d.family == AF_INET6) return WireSend6(s, iov, iovcnt, len, flags, d);
      if (!IsGroup(dst->sin_addr.s_addr)) return WireSend(s, iov, iovcnt, len, flags, dst);
      // TTL 0 stays on this host: the kernel's loopback serves it.
      if (s->udp->mc_ttl == 0) return kUseKernel;
      const ssize_t n = WireSend(s, iov, iovcnt, len, flags, dst,
                                 static_cast<uint16_t>(shm::kDgramTtlSet | (s->udp->mc_ttl & 0xff)));
      if (n >= 0) {
        Add(s->slot->mc_tx_engine, 1);
        if (s->udp->mc_loop) LoopCopy(s, iov, iovcnt, dst);
      }
      return n;
    }
  }
  if (ring == nullptr) return kUseKernel;
  if (len > shm::kMaxDatagram) {
    errno = EMSGSIZE;
    return -1;
  }
  bool kick = false;
  // A full ring: give the receiver a moment (it may share our CPU), then
  // drop as a full socket receive buffer does.
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  for (uint64_t i = 0;; ++i) {
    if (ring->p.Push(iov, iovcnt, len, &kick)) {
      if (kick) shm::Kick(ring->efd.get());
      Add(s->slot->tx_bytes, len);
      Add(s->slot->tx_msgs, 1);
      break;
    }
    if (nonblock || i >= kFullRingSpins) {
      Add(s->slot->drops, 1);
      break;
    }
    SpinStep(i);
  }
  return static_cast<ssize_t>(len);
}

bool UdpHasData(Socket* s) {
  if (__builtin_expect(s->udp->extra.load(std::memory_order_acquire) != nullptr, 0)) {
    return UdpHasDataExtra(s);
  }
  MutexGuard rx(&s->udp->rx_mu);
  AdoptNewRings(s);
  if (s->udp_shared.load(std::memory_order_acquire)) ReapRings(s);
  const bool shared = s->udp_shared.load(std::memory_order_relaxed);
  for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
    size_t len, rec_len;
    shm::SockAddr from;
    if (PeerFront(s, ring.get(), shared, &len, &rec_len, &from) != nullptr) return true;
  }
  return false;
}

size_t UdpNextSize(Socket* s) {
  if (__builtin_expect(s->udp->extra.load(std::memory_order_acquire) != nullptr, 0)) {
    return UdpNextSizeExtra(s);
  }
  MutexGuard rx(&s->udp->rx_mu);
  AdoptNewRings(s);
  if (s->udp_shared.load(std::memory_order_acquire)) ReapRings(s);
  const bool shared = s->udp_shared.load(std::memory_order_relaxed);
  for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
    size_t len, rec_len;
    shm::SockAddr from;
    if (PeerFront(s, ring.get(), shared, &len, &rec_len, &from) != nullptr) return len;
  }
  return 0;
}

// After every ring was found empty (the receive lock released): EAGAIN for
// a non-blocking receive, else a wait for data. 0: look again; -1 with
// errno set; 1: the socket was shut down for reading, the receive returns 0.
int UdpAwaitData(Socket* s, bool nonblock) {
  if (!nonblock && (s->udp->shut.load(std::memory_order_acquire) & kUdpShutRd)) return 1;
  if (nonblock) {
    // Offers of new rings reach us through the attach socket, which only
    // waits dispatch: a receiver that never blocks dispatches them here.
    PollEvents();
    Add(s->slot->rx_eagain, 1);
    errno = EAGAIN;
    return -1;
  }
  const int rc = WaitSocket(s, EPOLLIN, s->rcvtimeo_ms);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return 0;
}

int UdpShutdown(Socket* s, int how) {
  if (how == SHUT_RD || how == SHUT_WR || how == SHUT_RDWR) {
    // Before the kernel's shutdown, which wakes the receivers polling the
    // shadow: they find the flag (UdpAwaitData).
    s->udp->shut.fetch_or(how == SHUT_RD   ? kUdpShutRd
                          : how == SHUT_WR ? kUdpShutWr
                                           : kUdpShutRd | kUdpShutWr,
                          std::memory_order_acq_rel);
  }
  const int rc = Real().shutdown(s->fd, how);
  const int err = errno;
  if (s->efd.valid()) shm::Kick(s->efd.get());  // receivers asleep on rings
  errno = err;
  return rc;
}

ssize_t UdpShutdownEnd(msghdr* msg) {
  msg->msg_namelen = 0;
  msg->msg_controllen = 0;
  msg->msg_flags = 0;
  return 0;
}

ssize_t UdpRecv(Socket* s, msghdr* msg, int flags) {
  // Zero-copy receive or a receive callback in use (udp_extra.cc).
  if (__builtin_expect(s->udp->extra.load(std::memory_order_acquire) != nullptr, 0)) {
    return UdpRecvExtra(s, msg, flags, nullptr);
  }
  return UdpRecvPlain(s, msg, flags);
}

ssize_t UdpRecvPlain(Socket* s, msghdr* msg, int flags) {
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  const int ratio = Config().udp_os_ratio;
  bool waited = false;
  for (;;) {
    MutexGuard rx(&s->udp->rx_mu);
    AdoptNewRings(s);
    const bool shared = s->udp_shared.load(std::memory_order_acquire);
    if (shared) {
      ReapRings(s);  // and reads every ring's shared head
      if (s->udp->in_rings.empty()) {
        // Nothing left from the offloaded days: the kernel's recv, with
        // the socket's own blocking, timeout and flags.
        rx.Unlock();
        return Real().recvmsg(s->fd, msg, flags);
      }
    }
    const size_t n = s->udp->in_rings.size();
    for (size_t k = 0; k < n; ++k) {
      InRing* r = s->udp->in_rings[(s->udp->rr + k) % n].get();
      size_t len, rec_len;
      shm::SockAddr from;  // the wire ring's records carry their source
      // A connected UDP socket receives from its peer only (the kernel
      // filters the same way).
      const uint8_t* p = PeerFront(s, r, shared, &len, &rec_len, &from);
      if (p == nullptr) continue;
      s->udp->rr = static_cast<uint32_t>((s->udp->rr + k + 1) % n);
      size_t copied = 0;
      for (size_t i = 0; i < msg->msg_iovlen && copied < len; ++i) {
        const size_t c = std::min(msg->msg_iov[i].iov_len, len - copied);
        memcpy(msg->msg_iov[i].iov_base, p + copied, c);
        copied += c;
      }
      msg->msg_flags = copied < len ? MSG_TRUNC : 0;
      if (msg->msg_name != nullptr) {
        CopyName(NameIn(from, s->family), static_cast<sockaddr*>(msg->msg_name),
                 &msg->msg_namelen);
      }
      msg->msg_controllen = 0;
      if (!(flags & MSG_PEEK)) {
        if (shared && !r->c.PopShared(rec_len)) {
          // Another holder took this one while we copied it: the next.
          r->c.Resync();
          --k;
          continue;
        }
        if (!shared) r->c.Pop(rec_len);
        Add(s->slot->rx_bytes, len);
        Add(s->slot->rx_msgs, 1);
      }
      return static_cast<ssize_t>((flags & MSG_TRUNC) ? len : copied);
    }
    // Every `ratio` empty polls look at the kernel side, and right after a
    // wait that found the rings empty (the kernel side may be what ended
    // it). Not on entry after a wait that ended in ring data: a ping-pong
    // would pay a system call on every receive.
    if (++s->udp->os_poll_count >= static_cast<uint32_t>(ratio) || nonblock || shared || waited) {
      s->udp->os_poll_count = 0;
      const ssize_t k = Real().recvmsg(s->fd, msg, flags | MSG_DONTWAIT);
      if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return k;
    }
    ReapRings(s);
    SyncWireDrops(s);
    rx.Unlock();
    const int w = UdpAwaitData(s, nonblock);
    if (w < 0) return -1;
    if (w > 0) return UdpShutdownEnd(msg);
    waited = true;
  }
}

}  // namespace client
}  // namespace offload
