// The engine endpoint of an offloaded UDP socket (udp.cc "On the wire"):
// when offloadd serves an interface (the arena's wire_addr) and the socket
// is bound to INADDR_ANY or that address, it gets an endpoint on its port
// (kUdpWire): a TX ring whose records carry their destination and an RX
// ring whose records carry their source (abi.h WireUdpSegmentBytes). An
// AF_INET6 socket bound to ::, a v4-mapped wire_addr or a global IPv6
// address asks too (offloadd checks the address is the interface's); its
// IPv6 peers travel in kDgramAddr6 records (WireSend6, WireFront), its
// IPv4 ones in IPv4 records, shown v4-mapped. Which destinations the
// engine serves is asked once per destination and kept in a small
// per-socket cache.
//
// Thread safety: sends hold udp->tx_mu (the TX ring, the route cache);
// SyncWireDrops holds udp->rx_mu.

#include <errno.h>
#include <poll.h>

#include <cstring>
#include <new>
#include <utility>

#include "client/attach.h"
#include "client/fd_table.h"
#include "client/inet_name.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"
#include "client/udp_internal.h"
#include "shm/unique_fd.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

namespace {
constexpr size_t kWireRoutes = 256;  // direct-mapped destination cache entries
size_t RouteSlot(uint64_t key) { return ((key * 0x9e3779b97f4a7c15ull) >> 56) % kWireRoutes; }
}  // namespace

WireRoute CachedRoute(const Socket* s, uint64_t key) {
  if (s->udp->wire_routes == nullptr) return WireRoute::kUnknown;
  const uint64_t e = s->udp->wire_routes[RouteSlot(key)];
  if ((e & 2) == 0 || (e >> 2) != key) return WireRoute::kUnknown;
  return (e & 1) ? WireRoute::kWire : WireRoute::kKernel;
}

void CacheRoute(Socket* s, uint64_t key, bool wire) {
  if (s->udp->wire_routes == nullptr) {
    s->udp->wire_routes.reset(new (std::nothrow) uint64_t[kWireRoutes]());
    if (s->udp->wire_routes == nullptr) return;
  }
  s->udp->wire_routes[RouteSlot(key)] = (key << 2) | 2 | (wire ? 1 : 0);
}

// Forgets the engine endpoint (the daemon that served it is gone): sends go
// through the kernel until a new one is set up. The old RX ring stays in
// in_rings, empty, until the socket closes.
void DropWire(Socket* s) {
  for (uint32_t i = 0; i < s->udp->num_mc_groups; ++i) s->udp->mc_groups[i].engine = false;
  s->udp->wire_tx = shm::DgramProducer();
  s->udp->wire_doorbell.reset();
  s->udp->wire_max_payload = 0;
  s->udp->wire_routes.reset();
}

// Asks the daemon for an engine endpoint on the socket's port. True if the
// socket now has one (statistics then say path engine).
bool RequestWire(Socket* s) {
  shm::ArenaHeader* a = Arena();
  if (a == nullptr || a->wire_addr == 0) return false;
  const shm::SockAddr local = Canonical(s->local);
  if (local.family == AF_INET) {
    const uint32_t bound = shm::V4Of(local);
    if (bound != 0 && bound != a->wire_addr) return false;  // loopback etc.: not on the wire
  } else if (!shm::IsV6Any(local.addr) &&
             (IsLoopback(local) || local.addr[0] == 0xff ||
              (local.addr[0] == 0xfe && (local.addr[1] & 0xc0) == 0x80))) {
    return false;  // ::1, a group, link-local: the kernel's
  }
  shm::Msg m = {};
  m.type = shm::MsgType::kUdpWire;
  m.id = s->reg_id;
  ToMsg(local, &m.local, nullptr);  // offloadd reads the bound address from the socket
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
  std::unique_ptr<InRing> in(new (std::nothrow) InRing());
  if (in == nullptr) return false;
  in->c.Init(rx);
  in->id = 0;
  s->udp->wire_tx.Init(tx);
  s->udp->wire_max_payload = tx->max_payload;
  s->udp->wire_doorbell = std::move(doorbell);
  s->udp->wire_seg = std::move(map);
  s->udp->wire_drops_seen = 0;
  s->udp->wire_routes.reset();
  // Receivers pick it up like a ring offered by the daemon.
  pthread_mutex_lock(&s->mu);
  s->udp->new_rings.push_back(std::move(in));
  s->udp->has_new_rings.store(true, std::memory_order_release);
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
  if (!s->udp->wire_seg.valid()) return;
  const uint32_t cap = s->udp->wire_seg.as<shm::DgramHeader>()->capacity;
  const auto* rx = reinterpret_cast<const shm::DgramHeader*>(s->udp->wire_seg.as<uint8_t>() +
                                                             shm::DgramSegmentBytes(cap));
  const uint64_t d = s->udp->wire_seg.as<shm::DgramHeader>()->drops.load(std::memory_order_relaxed) +
                     rx->drops.load(std::memory_order_relaxed);
  if (d != s->udp->wire_drops_seen) {
    Add(s->slot->drops, d - s->udp->wire_drops_seen);
    s->udp->wire_drops_seen = d;
  }
}

namespace {

// Appends one record (`len` bytes from `iov`, the record's address fields
// as given) to the TX ring, waiting for room as a blocking send does.
ssize_t WirePush(Socket* s, const iovec* iov, int iovcnt, size_t len, int flags, uint32_t addr,
                 uint16_t port, uint16_t ttl, size_t app_len) {
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  const int64_t deadline = s->sndtimeo_ms < 0 ? INT64_MAX : NowNs() + s->sndtimeo_ms * 1000000;
  for (uint64_t i = 0;; ++i) {
    bool kick = false;
    if (s->udp->wire_tx.Push(iov, static_cast<size_t>(iovcnt), len, &kick, addr, port, ttl)) {
      if (kick) shm::Kick(s->udp->wire_doorbell.get());
      Add(s->slot->tx_bytes, app_len);
      Add(s->slot->tx_msgs, 1);
      return static_cast<ssize_t>(app_len);
    }
    // The TX ring is the socket's send buffer: full means the engine is
    // behind. Linux: EAGAIN without blocking, else wait for room.
    if (nonblock) {
      Add(s->slot->tx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    if (i < kFullRingSpins && SpinStep(i)) continue;
    if (s->udp->wire_tx.PrepareWriterSleep(len)) {
      s->udp->wire_tx.CancelWriterSleep();
      continue;
    }
    const int64_t now = NowNs();
    if (now >= deadline) {
      s->udp->wire_tx.CancelWriterSleep();
      Add(s->slot->tx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    pollfd p = {s->efd.get(), POLLIN, 0};
    const int ms =
        deadline == INT64_MAX ? -1 : static_cast<int>((deadline - now + 999999) / 1000000);
    const int rc = Real().poll(&p, 1, ms);
    s->udp->wire_tx.CancelWriterSleep();
    if (rc < 0 && errno == EINTR) return -1;
    if (p.revents & POLLIN) shm::Drain(s->efd.get());
    i = 0;
  }
}

}  // namespace

// Sends one datagram through the engine. kUseKernel if it is too large for
// the engine (the kernel fragments it).
ssize_t WireSend(Socket* s, const iovec* iov, int iovcnt, size_t len, int flags,
                 const sockaddr_in* dst, uint16_t ttl) {
  if (len > s->udp->wire_max_payload) return kUseKernel;
  return WirePush(s, iov, iovcnt, len, flags, dst->sin_addr.s_addr, dst->sin_port, ttl, len);
}

ssize_t WireSend6(Socket* s, const iovec* iov, int iovcnt, size_t len, int flags,
                  const shm::SockAddr& dst) {
  // The IPv6 header is 20 bytes longer than IPv4's (wire_max_payload is
  // MTU - 28).
  constexpr int kMaxIov = 64;
  if (len + 20 > s->udp->wire_max_payload || iovcnt >= kMaxIov) return kUseKernel;
  iovec v[kMaxIov];
  v[0].iov_base = const_cast<uint8_t*>(dst.addr);
  v[0].iov_len = shm::kDgramAddr6Bytes;
  for (int i = 0; i < iovcnt; ++i) v[i + 1] = iov[i];
  return WirePush(s, v, iovcnt + 1, len + shm::kDgramAddr6Bytes, flags, 0, dst.port,
                  shm::kDgramAddr6, len);
}

const uint8_t* WireFront(InRing* r, size_t* len, size_t* rec_len, shm::SockAddr* from) {
  uint32_t addr = 0;
  uint16_t port = 0;
  const uint8_t* p = r->c.Front(rec_len, &addr, &port);
  if (p == nullptr) return nullptr;
  *len = *rec_len;
  uint8_t a6[shm::kDgramAddr6Bytes];
  if (shm::DgramAddr6Payload(&p, len, a6)) {
    *from = shm::SockAddr{};
    from->family = AF_INET6;  // flowinfo and scope 0: a global peer
    from->port = port;
    std::memcpy(from->addr, a6, sizeof(a6));
  } else {
    *from = shm::FromV4(addr, port);
  }
  return p;
}

void UdpSyncWireDrops(Socket* s) { SyncWireDrops(s); }

}  // namespace client
}  // namespace offload
