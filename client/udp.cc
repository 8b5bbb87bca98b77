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
#include "shm/wakeup.h"

namespace offload {
namespace client {

namespace {

constexpr size_t kMaxNoRing = 64;
constexpr uint64_t kFullRingSpins = 4096;
constexpr size_t kWireRoutes = 256;  // direct-mapped destination cache entries

void ReportJoins(Socket* s);  // multicast, below

// Tells offloadd this process is done with its side of datagram ring
// `ring_id` (`sender`: the producing side, else the consuming one).
void SendDgramClose(uint32_t ring_id, bool sender) {
  shm::Msg m = {};
  m.type = shm::MsgType::kDgramClose;
  m.id = ring_id;
  m.value = sender ? 1 : 0;
  SendAsync(m);
}

bool RegisterUdp(Socket* s) { return RegisterEndpoint(s, shm::MsgType::kUdpBind, 0); }

// --- the wire: destination cache ---------------------------------------
// Entry: key (addr<<16|port, 48 bits) << 2 | 2 (valid) | 1 (wire).
enum class Route { kUnknown, kWire, kKernel };

// A destination as a 64-bit key (no_ring, the wire cache): IPv4 exactly
// (addr<<16|port); IPv6 hashed, so two may collide, which only sends a
// datagram through the kernel, never to the wrong receiver (rings are
// looked up by their full destination).
uint64_t NoRingKey(const shm::SockAddr& d) {
  if (d.family == AF_INET) return (uint64_t{shm::V4Of(d)} << 16) | d.port;
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : d.addr) h = (h ^ b) * 0x100000001b3ull;
  return ((h ^ d.port) & ((uint64_t{1} << 61) - 1)) | (uint64_t{1} << 61);  // 62 bits, as IPv4's
}

bool SameEndpoint(const shm::SockAddr& a, const shm::SockAddr& b) {
  return a.family == b.family && a.port == b.port &&
         memcmp(a.addr, b.addr, a.family == AF_INET6 ? 16 : 4) == 0;
}
size_t RouteSlot(uint64_t key) { return ((key * 0x9e3779b97f4a7c15ull) >> 56) % kWireRoutes; }

Route CachedRoute(const Socket* s, uint64_t key) {
  if (s->wire_routes == nullptr) return Route::kUnknown;
  const uint64_t e = s->wire_routes[RouteSlot(key)];
  if ((e & 2) == 0 || (e >> 2) != key) return Route::kUnknown;
  return (e & 1) ? Route::kWire : Route::kKernel;
}

void CacheRoute(Socket* s, uint64_t key, bool wire) {
  if (s->wire_routes == nullptr) {
    s->wire_routes.reset(new (std::nothrow) uint64_t[kWireRoutes]());
    if (s->wire_routes == nullptr) return;
  }
  s->wire_routes[RouteSlot(key)] = (key << 2) | 2 | (wire ? 1 : 0);
}

// Forgets the engine endpoint (the daemon that served it is gone): sends go
// through the kernel until a new one is set up. The old RX ring stays in
// in_rings, empty, until the socket closes.
void DropWire(Socket* s) {
  for (uint32_t i = 0; i < s->num_mc_groups; ++i) s->mc_groups[i].engine = false;
  s->wire_tx = shm::DgramProducer();
  s->wire_doorbell.reset();
  s->wire_max_payload = 0;
  s->wire_routes.reset();
}

// Asks the daemon for an engine endpoint on the socket's port. True if the
// socket now has one (statistics then say path engine).
bool RequestWire(Socket* s) {
  shm::ArenaHeader* a = Arena();
  if (a == nullptr || a->wire_addr == 0) return false;
  if (s->family != AF_INET) return false;  // the engine's wire is IPv4 only
  const uint32_t bound = s->local.v4.sin_addr.s_addr;
  if (bound != 0 && bound != a->wire_addr) return false;  // loopback etc.: not on the wire
  shm::Msg m = {};
  m.type = shm::MsgType::kUdpWire;
  m.id = s->reg_id;
  m.local.addr = bound;
  m.local.port = s->local.v4.sin_port;
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, nullptr, 0, &r, rfds, &nr)) return false;
  if (r.type != shm::MsgType::kDgram || nr != 2) {
    for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
    return false;
  }
  shm::UniqueFd memfd(rfds[0]);
  shm::UniqueFd doorbell(rfds[1]);
  shm::Mapping map = shm::Mapping::MapShared(memfd.get(), shm::WireUdpSegmentBytes(r.value));
  if (!map.valid()) return false;  // the daemon ends the endpoint with the registration
  auto* tx = map.as<shm::DgramHeader>();
  auto* rx = reinterpret_cast<shm::DgramHeader*>(map.as<uint8_t>() +
                                                 shm::DgramSegmentBytes(r.value));
  if (tx->magic != shm::kDgramMagic || rx->magic != shm::kDgramMagic ||
      tx->capacity != r.value || rx->capacity != r.value) {
    return false;
  }
  auto* in = new (std::nothrow) InRing();
  if (in == nullptr) return false;
  in->c.Init(rx);
  in->id = 0;
  s->wire_tx.Init(tx);
  s->wire_max_payload = tx->max_payload;
  s->wire_doorbell = std::move(doorbell);
  s->wire_seg = std::move(map);
  s->wire_drops_seen = 0;
  s->wire_routes.reset();
  // Receivers pick it up like a ring offered by the daemon.
  pthread_mutex_lock(&s->mu);
  s->new_rings.push_back(in);
  s->has_new_rings.store(true, std::memory_order_release);
  pthread_mutex_unlock(&s->mu);
  // An epoll set that watches the socket arms the new ring too.
  if (s->efd.valid()) shm::Kick(s->efd.get());
  s->slot->path = static_cast<uint8_t>(shm::SocketPath::kEngine);
  ReportJoins(s);
  return true;
}

// Datagrams the engine dropped for this socket (RX ring full, invalid TX
// records) into the slot's `drops`.
void SyncWireDrops(Socket* s) {
  if (!s->wire_seg.valid()) return;
  const uint32_t cap = s->wire_seg.as<shm::DgramHeader>()->capacity;
  const auto* rx = reinterpret_cast<const shm::DgramHeader*>(s->wire_seg.as<uint8_t>() +
                                                             shm::DgramSegmentBytes(cap));
  const uint64_t d = s->wire_seg.as<shm::DgramHeader>()->drops.load(std::memory_order_relaxed) +
                     rx->drops.load(std::memory_order_relaxed);
  if (d != s->wire_drops_seen) {
    Add(s->slot->drops, d - s->wire_drops_seen);
    s->wire_drops_seen = d;
  }
}

// Sends one datagram through the engine. kUseKernel if it is too large for
// the engine (the kernel fragments it).
ssize_t WireSend(Socket* s, const iovec* iov, int iovcnt, size_t len, int flags,
                 const sockaddr_in* dst, uint16_t ttl = 0) {
  if (len > s->wire_max_payload) return kUseKernel;
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  const int64_t deadline = s->sndtimeo_ms < 0 ? INT64_MAX : NowNs() + s->sndtimeo_ms * 1000000;
  for (uint64_t i = 0;; ++i) {
    bool kick = false;
    if (s->wire_tx.Push(iov, static_cast<size_t>(iovcnt), len, &kick, dst->sin_addr.s_addr,
                        dst->sin_port, ttl)) {
      if (kick) shm::Kick(s->wire_doorbell.get());
      Add(s->slot->tx_bytes, len);
      Add(s->slot->tx_msgs, 1);
      return static_cast<ssize_t>(len);
    }
    // The TX ring is the socket's send buffer: full means the engine is
    // behind. Linux: EAGAIN without blocking, else wait for room.
    if (nonblock) {
      Add(s->slot->tx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    if (i < kFullRingSpins && SpinStep(i)) continue;
    if (s->wire_tx.PrepareWriterSleep(len)) {
      s->wire_tx.CancelWriterSleep();
      continue;
    }
    const int64_t now = NowNs();
    if (now >= deadline) {
      s->wire_tx.CancelWriterSleep();
      Add(s->slot->tx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    pollfd p = {s->efd.get(), POLLIN, 0};
    const int ms =
        deadline == INT64_MAX ? -1 : static_cast<int>((deadline - now + 999999) / 1000000);
    const int rc = Real().poll(&p, 1, ms);
    s->wire_tx.CancelWriterSleep();
    if (rc < 0 && errno == EINTR) return -1;
    if (p.revents & POLLIN) shm::Drain(s->efd.get());
    i = 0;
  }
}

// --- multicast -------------------------------------------------------------

bool IsGroup(uint32_t addr_net) { return (ntohl(addr_net) >> 28) == 0xe; }

void SyncGroupCounts(Socket* s) {
  uint32_t engine = 0;
  for (uint32_t i = 0; i < s->num_mc_groups; ++i) engine += s->mc_groups[i].engine ? 1 : 0;
  s->slot->mc_groups_engine.store(engine, std::memory_order_relaxed);
  s->slot->mc_groups_kernel.store(s->num_mc_groups - engine, std::memory_order_relaxed);
}

// The kUdpJoin / kUdpLeave message for membership `g` of socket `s`.
shm::Msg MembershipMsg(shm::MsgType type, const Socket* s, const Socket::McMembership& g) {
  shm::Msg m = {};
  m.type = type;
  m.id = s->reg_id;
  m.remote.addr = g.group;
  m.remote.port = s->local.v4.sin_port;
  m.local.addr = g.if_addr;
  m.value = static_cast<uint32_t>(g.ifindex);
  return m;
}

// Reports one membership to the daemon; true if the engine now receives
// the group for this socket.
bool ReportJoin(Socket* s, const Socket::McMembership& g) {
  if (s->path.load() != Path::kUdp || !s->wire_tx.valid()) return false;
  shm::Msg m = MembershipMsg(shm::MsgType::kUdpJoin, s, g);
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, nullptr, 0, &r, rfds, &nr)) return false;
  for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
  return r.type == shm::MsgType::kStatus && r.status == 0;
}

// Offers every membership the engine does not serve yet (a new engine
// endpoint).
void ReportJoins(Socket* s) {
  for (uint32_t i = 0; i < s->num_mc_groups; ++i) {
    if (!s->mc_groups[i].engine) s->mc_groups[i].engine = ReportJoin(s, s->mc_groups[i]);
  }
  SyncGroupCounts(s);
}

// The host-local copy of a datagram the engine sent to a group
// (IP_MULTICAST_LOOP): through the shadow with TTL 0, then the
// application's TTL again.
void LoopCopy(Socket* s, const iovec* iov, int iovcnt, const sockaddr_in* dst) {
  const int zero = 0;
  if (Real().setsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_TTL, &zero, sizeof(zero)) != 0) return;
  msghdr mh = {};
  mh.msg_iov = const_cast<iovec*>(iov);
  mh.msg_iovlen = static_cast<size_t>(iovcnt);
  mh.msg_name = const_cast<sockaddr_in*>(dst);
  mh.msg_namelen = sizeof(*dst);
  const int saved = errno;
  if (Real().sendmsg(s->fd, &mh, MSG_DONTWAIT) >= 0) Add(s->slot->mc_loop_copies, 1);
  Real().setsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_TTL, &s->mc_ttl, sizeof(s->mc_ttl));
  errno = saved;
}

void AdoptNewRings(Socket* s) {
  if (!s->has_new_rings.load(std::memory_order_acquire)) return;
  pthread_mutex_lock(&s->mu);
  for (InRing* r : s->new_rings) s->in_rings.push_back(r);
  s->new_rings.clear();
  s->has_new_rings.store(false, std::memory_order_relaxed);
  pthread_mutex_unlock(&s->mu);
}

// Drops incoming rings whose sender is gone and that are empty. A shared
// socket's rings (DemoteSharedUdp) are read from their shared heads and
// told nothing (the holder that demoted it closed its side already); their
// wire RX ring goes too, once the engine has closed its endpoint.
void ReapRings(Socket* s) {
  const bool shared = s->udp_shared.load(std::memory_order_acquire);
  for (size_t i = 0; i < s->in_rings.size();) {
    InRing* r = s->in_rings[i];
    if (shared) r->c.Resync();
    // A ring with packets lent to the application (udp_extra.cc) stays
    // mapped until they are freed.
    if ((r->id != 0 || shared) && r->c.SenderGone() && r->c.Empty() && r->lent_count == 0) {
      if (!shared) SendDgramClose(r->id, /*sender=*/false);
      delete r;
      s->in_rings.erase(s->in_rings.begin() + i);
    } else {
      ++i;
    }
  }
}

// Makes sure the shadow has a local port (Linux autobinds on first send).
bool EnsureBound(Socket* s) {
  if (s->bound) return true;
  InetName any = {};  // the wildcard of the socket's family, port 0
  any.sa.sa_family = static_cast<sa_family_t>(s->family);
  if (Real().bind(s->fd, &any.sa, NameLen(any)) != 0 && errno != EINVAL) return false;
  socklen_t len = sizeof(s->local);
  Real().getsockname(s->fd, &s->local.sa, &len);
  s->bound = true;
  return true;
}

// A same-host ring to `dst`, or nullptr: then *wire says whether the
// socket's engine endpoint serves `dst` (else the kernel does).
OutRing* OpenRing(Socket* s, const shm::SockAddr& d, bool* wire) {
  *wire = false;
  const sockaddr_in d4 = shm::ToSockaddrIn(d);  // IPv4 destinations (multicast, the wire)
  const sockaddr_in* dst = &d4;
  const uint64_t key = NoRingKey(d);
  if (std::find(s->no_ring.begin(), s->no_ring.end(), key) != s->no_ring.end()) return nullptr;
  shm::ArenaHeader* a = Arena();
  if (a == nullptr) return nullptr;
  // Without an engine endpoint only an offloaded receiver on this host
  // could take it, and the port bitmap says whether there is one.
  if (!s->wire_tx.valid() && !shm::PortBit(a->udp_ports, ntohs(d.port))) return nullptr;
  // Bound to an address of the other family (::1 sending to a v4-mapped
  // address, or the reverse): the kernel refuses it, as Linux does.
  const shm::SockAddr l = Canonical(s->local);
  const bool unbound_addr = shm::IsV6Any(l.addr) || (l.family == AF_INET && shm::V4Of(l) == 0);
  if (!unbound_addr && l.family != d.family) return nullptr;
  const InetName dst_name = NameIn(d, s->family);
  if (!Decide(s, rules::Role::kUdpSender, &s->local, &dst_name)) {
    if (s->no_ring.size() < kMaxNoRing) s->no_ring.push_back(key);
    return nullptr;
  }
  shm::Msg m = {};
  m.type = shm::MsgType::kUdpOpen;
  m.id = s->reg_id;
  ToMsg(Canonical(s->local), &m.local, nullptr);
  ToMsg(d, &m.remote, &m.remote6);
  if (d.family == AF_INET && IsGroup(dst->sin_addr.s_addr)) {
    m.value = static_cast<uint32_t>(s->mc_ifindex);
    m.value64 = s->mc_if_addr;
  }
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, nullptr, 0, &r, rfds, &nr)) return nullptr;
  if (r.type != shm::MsgType::kDgram || nr != 2) {
    for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
    *wire = r.type == shm::MsgType::kStatus && r.status == 0 && s->wire_tx.valid();
    if (!*wire && !s->wire_tx.valid() && s->no_ring.size() < kMaxNoRing) s->no_ring.push_back(key);
    return nullptr;
  }
  shm::UniqueFd memfd(rfds[0]);
  auto* o = new OutRing();
  o->efd.reset(rfds[1]);
  o->map = shm::Mapping::MapShared(memfd.get(), shm::DgramSegmentBytes(r.value));
  auto* h = o->map.as<shm::DgramHeader>();
  if (!o->map.valid() || h->magic != shm::kDgramMagic || h->capacity != r.value) {
    delete o;
    SendDgramClose(r.id, /*sender=*/true);
    return nullptr;
  }
  o->p.Init(h);
  o->id = r.id;
  o->dst = d;
  s->out_rings.push_back(o);
  return o;
}

}  // namespace

void UdpAdoptNewRings(Socket* s) { AdoptNewRings(s); }
void UdpReapRings(Socket* s) { ReapRings(s); }
void UdpSyncWireDrops(Socket* s) { SyncWireDrops(s); }

void ReleaseUdpEndpoint(Socket* s) {
  UnregisterSocket(s->reg_id);  // offers still in flight are refused from now on
  if (s->reg_gen == AttachGeneration()) {
    shm::Msg m = {};
    m.type = shm::MsgType::kUdpUnbind;
    m.id = s->reg_id;
    SendAsync(m);
  }
  for (OutRing* r : s->out_rings) {
    if (r->p.Shut()) shm::Kick(r->efd.get());
    SendDgramClose(r->id, /*sender=*/true);
  }
  pthread_mutex_lock(&s->mu);
  for (InRing* r : s->new_rings) s->in_rings.push_back(r);
  s->new_rings.clear();
  pthread_mutex_unlock(&s->mu);
  for (InRing* r : s->in_rings) {
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
void DemoteSharedUdp(Socket* s) {
  if (s->path.load(std::memory_order_acquire) != Path::kUdp ||
      s->udp_shared.load(std::memory_order_acquire)) {
    return;
  }
  MutexGuard tx(&s->udp_tx_mu);
  MutexGuard rx(&s->udp_rx_mu);
  if (s->udp_shared.load(std::memory_order_relaxed)) return;
  AdoptNewRings(s);
  // Packets lent to the application (zero-copy receive): their space goes
  // back now, so that the other holders, reading from the shared heads,
  // neither lose nor see again anything this process took. They stay
  // mapped (the rings are kept until freed); offload_extra.h says what a
  // racing sender can do to their bytes.
  for (InRing* r : s->in_rings) {
    if (r->lent_count != 0) r->c.PublishHead(r->c.ReadPos());
  }
  s->udp_shared.store(true, std::memory_order_release);
  ReleaseUdpEndpoint(s);
  for (OutRing* r : s->out_rings) delete r;
  s->out_rings.clear();
  s->no_ring.clear();
  DropWire(s);  // the RX ring stays mapped (wire_seg) and in in_rings
  s->fallback = shm::Fallback::kSharedDgram;
  s->slot->fallback = static_cast<uint8_t>(shm::Fallback::kSharedDgram);
  s->slot->path = static_cast<uint8_t>(shm::SocketPath::kKernel);
  Log(3, "fd %d: UDP socket now held by several processes: served by the kernel from now on",
      s->fd);
}

void ResetUdpLocksAfterFork() {
  for (int fd = 0; fd < g_fd_table_size; ++fd) {
    Socket* s = GetSocket(fd);
    if (s == nullptr || s->type != SOCK_DGRAM || s->fd != fd) continue;
    s->udp_tx_mu.Reset();
    s->udp_rx_mu.Reset();
  }
}

void UdpAfterBind(Socket* s) {
  socklen_t len = sizeof(s->local);
  Real().getsockname(s->fd, &s->local.sa, &len);
  s->bound = true;
  if (s->path.load() != Path::kUndecided) return;
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
  MutexGuard tx(&s->udp_tx_mu);
  if (s->udp_shared.load(std::memory_order_relaxed)) return kUseKernel;
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
  // IPv4 destinations as sockaddr_in (the engine, multicast); an AF_INET6
  // socket never has an engine endpoint (RequestWire).
  const sockaddr_in d4 = shm::ToSockaddrIn(d);
  const sockaddr_in* dst = &d4;
  if (s->reg_gen != AttachGeneration() && EnsureAttached()) {
    // A new session (offloadd restarted): the old engine endpoint is gone.
    const bool had_wire = s->wire_tx.valid();
    DropWire(s);
    if (RegisterUdp(s) && had_wire) RequestWire(s);
  }
  OutRing* ring = nullptr;
  for (size_t i = 0; i < s->out_rings.size(); ++i) {
    OutRing* r = s->out_rings[i];
    if (SameEndpoint(r->dst, d)) {
      if (r->p.ReaderClosedForSender()) {
        // The receiver went away: back to the kernel for this destination.
        SendDgramClose(r->id, /*sender=*/true);
        delete r;
        s->out_rings.erase(s->out_rings.begin() + i);
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
    const Route route = s->wire_tx.valid() ? CachedRoute(s, key) : Route::kUnknown;
    if (route == Route::kKernel) return kUseKernel;
    bool wire = route == Route::kWire;
    if (!wire) {
      ring = OpenRing(s, d, &wire);
      if (ring == nullptr && s->wire_tx.valid()) CacheRoute(s, key, wire);
    }
    if (wire) {
      if (len > shm::kMaxDatagram) {
        errno = EMSGSIZE;
        return -1;
      }
      SyncWireDrops(s);
      if (!IsGroup(dst->sin_addr.s_addr)) return WireSend(s, iov, iovcnt, len, flags, dst);
      // TTL 0 stays on this host: the kernel's loopback serves it.
      if (s->mc_ttl == 0) return kUseKernel;
      const ssize_t n = WireSend(s, iov, iovcnt, len, flags, dst,
                                 static_cast<uint16_t>(shm::kDgramTtlSet | (s->mc_ttl & 0xff)));
      if (n >= 0) {
        Add(s->slot->mc_tx_engine, 1);
        if (s->mc_loop) LoopCopy(s, iov, iovcnt, dst);
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

void UdpMulticastOption(Socket* s, int name, const void* val, socklen_t len) {
  if (s->type != SOCK_DGRAM || val == nullptr) return;
  // int or unsigned char, as Linux accepts for both.
  auto small_int = [&](int* out) {
    if (len >= sizeof(int)) {
      memcpy(out, val, sizeof(int));
    } else if (len >= 1) {
      *out = *static_cast<const unsigned char*>(val);
    }
  };
  switch (name) {
    case IP_MULTICAST_TTL: {
      int ttl = s->mc_ttl;
      small_int(&ttl);
      s->mc_ttl = ttl == -1 ? 1 : ttl;  // -1: the default
      return;
    }
    case IP_MULTICAST_LOOP: {
      int loop = s->mc_loop ? 1 : 0;
      small_int(&loop);
      s->mc_loop = loop != 0;
      return;
    }
    case IP_MULTICAST_IF: {
      // in_addr, ip_mreq (its interface) or ip_mreqn (Linux ip_mreq_source
      // is not accepted here).
      uint32_t addr = 0;
      int ifindex = 0;
      if (len >= sizeof(ip_mreqn)) {
        const auto* r = static_cast<const ip_mreqn*>(val);
        addr = r->imr_address.s_addr;
        ifindex = r->imr_ifindex;
      } else if (len >= sizeof(ip_mreq)) {
        addr = static_cast<const ip_mreq*>(val)->imr_interface.s_addr;
      } else if (len >= sizeof(in_addr)) {
        addr = static_cast<const in_addr*>(val)->s_addr;
      }
      s->mc_if_addr = addr;
      s->mc_ifindex = ifindex;
      s->wire_routes.reset();  // groups may route differently now
      return;
    }
    default:
      break;
  }
  Socket::McMembership g;
  bool join;
  if (name == IP_ADD_MEMBERSHIP || name == IP_DROP_MEMBERSHIP) {
    join = name == IP_ADD_MEMBERSHIP;
    if (len >= sizeof(ip_mreqn)) {
      const auto* r = static_cast<const ip_mreqn*>(val);
      g.group = r->imr_multiaddr.s_addr;
      g.if_addr = r->imr_address.s_addr;
      g.ifindex = r->imr_ifindex;
    } else if (len >= sizeof(ip_mreq)) {
      const auto* r = static_cast<const ip_mreq*>(val);
      g.group = r->imr_multiaddr.s_addr;
      g.if_addr = r->imr_interface.s_addr;
    } else {
      return;
    }
  } else if (name == MCAST_JOIN_GROUP || name == MCAST_LEAVE_GROUP) {
    join = name == MCAST_JOIN_GROUP;
    if (len < sizeof(group_req)) return;
    const auto* r = static_cast<const group_req*>(val);
    if (r->gr_group.ss_family != AF_INET) return;
    g.group = reinterpret_cast<const sockaddr_in*>(&r->gr_group)->sin_addr.s_addr;
    g.ifindex = static_cast<int>(r->gr_interface);
  } else {
    return;
  }
  if (join) {
    if (s->num_mc_groups >= Socket::kMaxMcGroups) return;
    g.engine = ReportJoin(s, g);
    s->mc_groups[s->num_mc_groups++] = g;
  } else {
    // Linux matches a drop by group and interface (0 matches any).
    for (uint32_t i = 0; i < s->num_mc_groups; ++i) {
      const Socket::McMembership& m = s->mc_groups[i];
      if (m.group != g.group || (g.ifindex != 0 && m.ifindex != 0 && g.ifindex != m.ifindex) ||
          (g.if_addr != 0 && m.if_addr != 0 && g.if_addr != m.if_addr)) {
        continue;
      }
      if (m.engine && s->wire_tx.valid()) SendAsync(MembershipMsg(shm::MsgType::kUdpLeave, s, m));
      s->mc_groups[i] = s->mc_groups[--s->num_mc_groups];
      break;
    }
  }
  SyncGroupCounts(s);
}

bool UdpHasData(Socket* s) {
  if (__builtin_expect(s->udp_extra.load(std::memory_order_acquire) != nullptr, 0)) {
    return UdpHasDataExtra(s);
  }
  MutexGuard rx(&s->udp_rx_mu);
  AdoptNewRings(s);
  if (s->udp_shared.load(std::memory_order_acquire)) ReapRings(s);
  for (InRing* r : s->in_rings) {
    if (!r->c.Empty()) return true;
  }
  return false;
}

size_t UdpNextSize(Socket* s) {
  if (__builtin_expect(s->udp_extra.load(std::memory_order_acquire) != nullptr, 0)) {
    return UdpNextSizeExtra(s);
  }
  MutexGuard rx(&s->udp_rx_mu);
  AdoptNewRings(s);
  if (s->udp_shared.load(std::memory_order_acquire)) ReapRings(s);
  for (InRing* r : s->in_rings) {
    size_t len;
    if (r->c.Front(&len) != nullptr) return len;
  }
  return 0;
}

// After every ring was found empty (the receive lock released): EAGAIN for
// a non-blocking receive, else a wait for data. 0: look again; -1 with
// errno set.
int UdpAwaitData(Socket* s, bool nonblock) {
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

ssize_t UdpRecv(Socket* s, msghdr* msg, int flags) {
  // Zero-copy receive or a receive callback in use (udp_extra.cc).
  if (__builtin_expect(s->udp_extra.load(std::memory_order_acquire) != nullptr, 0)) {
    return UdpRecvExtra(s, msg, flags, nullptr);
  }
  return UdpRecvPlain(s, msg, flags);
}

ssize_t UdpRecvPlain(Socket* s, msghdr* msg, int flags) {
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  const int ratio = Config().udp_os_ratio;
  bool waited = false;
  for (;;) {
    MutexGuard rx(&s->udp_rx_mu);
    AdoptNewRings(s);
    const bool shared = s->udp_shared.load(std::memory_order_acquire);
    if (shared) {
      ReapRings(s);  // and reads every ring's shared head
      if (s->in_rings.empty()) {
        // Nothing left from the offloaded days: the kernel's recv, with
        // the socket's own blocking, timeout and flags.
        rx.Unlock();
        return Real().recvmsg(s->fd, msg, flags);
      }
    }
    const size_t n = s->in_rings.size();
    for (size_t k = 0; k < n; ++k) {
      InRing* r = s->in_rings[(s->rr + k) % n];
      size_t len;
      uint32_t src_addr = 0;
      uint16_t src_port = 0;
      const uint8_t* p = r->id == 0 ? r->c.Front(&len, &src_addr, &src_port) : r->c.Front(&len);
      if (p == nullptr) continue;
      if (r->id == 0 && s->connected &&
          (src_addr != s->remote.v4.sin_addr.s_addr || src_port != s->remote.v4.sin_port)) {
        // A connected UDP socket receives from its peer only (the kernel
        // filters the same way).
        if (!shared) {
          r->c.Pop(len);
        } else if (!r->c.PopShared(len)) {
          r->c.Resync();  // another holder took it
        }
        --k;
        continue;
      }
      s->rr = static_cast<uint32_t>((s->rr + k + 1) % n);
      size_t copied = 0;
      for (size_t i = 0; i < msg->msg_iovlen && copied < len; ++i) {
        const size_t c = std::min(msg->msg_iov[i].iov_len, len - copied);
        memcpy(msg->msg_iov[i].iov_base, p + copied, c);
        copied += c;
      }
      msg->msg_flags = copied < len ? MSG_TRUNC : 0;
      if (msg->msg_name != nullptr) {
        const shm::SockAddr src = r->id == 0 ? shm::FromV4(src_addr, src_port) : r->src;
        CopyName(NameIn(src, s->family), static_cast<sockaddr*>(msg->msg_name),
                 &msg->msg_namelen);
      }
      msg->msg_controllen = 0;
      if (!(flags & MSG_PEEK)) {
        if (shared && !r->c.PopShared(len)) {
          // Another holder took this one while we copied it: the next.
          r->c.Resync();
          --k;
          continue;
        }
        if (!shared) r->c.Pop(len);
        Add(s->slot->rx_bytes, len);
        Add(s->slot->rx_msgs, 1);
      }
      return static_cast<ssize_t>((flags & MSG_TRUNC) ? len : copied);
    }
    // Every `ratio` empty polls look at the kernel side, and right after a
    // wait that found the rings empty (the kernel side may be what ended
    // it). Not on entry after a wait that ended in ring data: a ping-pong
    // would pay a system call on every receive.
    if (++s->os_poll_count >= static_cast<uint32_t>(ratio) || nonblock || shared || waited) {
      s->os_poll_count = 0;
      const ssize_t k = Real().recvmsg(s->fd, msg, flags | MSG_DONTWAIT);
      if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return k;
    }
    ReapRings(s);
    SyncWireDrops(s);
    rx.Unlock();
    if (UdpAwaitData(s, nonblock) != 0) return -1;
    waited = true;
  }
}

}  // namespace client
}  // namespace offload
