// Same-host datagram rings of an offloaded UDP socket (udp.cc): the rings
// this socket sends into (one per offloaded receiver it sends to, opened
// through offloadd: kUdpOpen) and those it receives from (offered by
// offloadd: kDgramOffer, dispatched by the attach session), their close
// (kDgramClose, built here only), and reaping rings whose other side is
// gone.
//
// Thread safety: REQUIRES of each function below; sending-side state is
// guarded by udp->tx_mu, receiving-side state by udp->rx_mu, and the offered
// rings (new_rings) by the socket's mu.

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <algorithm>
#include <new>

#include "client/attach.h"
#include "client/decision.h"
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
constexpr size_t kMaxNoRing = 64;
}  // namespace

shm::Msg DgramCloseMsg(uint32_t ring_id, bool sender) {
  shm::Msg m = {};
  m.type = shm::MsgType::kDgramClose;
  m.id = ring_id;
  m.value = sender ? 1 : 0;
  return m;
}

void SendDgramClose(uint32_t ring_id, bool sender) { SendAsync(DgramCloseMsg(ring_id, sender)); }

std::unique_ptr<InRing> MapOfferedRing(const shm::Msg& m, int fd) {
  std::unique_ptr<InRing> r(new InRing());
  r->map = shm::Mapping::MapShared(fd, shm::DgramSegmentBytes(m.value));
  r->id = m.id2;
  r->src = shm::FromV4(m.remote.addr, m.remote.port);
  if (m.remote6.family == AF_INET6) {  // an IPv6 sender (abi.h Dst6)
    r->src.family = AF_INET6;
    std::memcpy(r->src.addr, m.remote6.addr, 16);
  }
  if (!r->map.valid()) return nullptr;
  r->c.Init(r->map.as<shm::DgramHeader>());
  return r;
}

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

void AdoptNewRings(Socket* s) {
  if (!s->udp->has_new_rings.load(std::memory_order_acquire)) return;
  pthread_mutex_lock(&s->mu);
  for (std::unique_ptr<InRing>& r : s->udp->new_rings) s->udp->in_rings.push_back(std::move(r));
  s->udp->new_rings.clear();
  s->udp->has_new_rings.store(false, std::memory_order_relaxed);
  pthread_mutex_unlock(&s->mu);
}

// Drops incoming rings whose sender is gone and that are empty. A shared
// socket's rings (DemoteSharedUdp) are read from their shared heads and
// told nothing (the holder that demoted it closed its side already); their
// wire RX ring goes too, once the engine has closed its endpoint.
void ReapRings(Socket* s) {
  const bool shared = s->udp_shared.load(std::memory_order_acquire);
  for (size_t i = 0; i < s->udp->in_rings.size();) {
    InRing* r = s->udp->in_rings[i].get();
    if (shared) r->c.Resync();
    // A ring with packets lent to the application (udp_extra.cc) stays
    // mapped until they are freed.
    if ((r->id != 0 || shared) && r->c.SenderGone() && r->c.Empty() && r->lent_count == 0) {
      if (!shared) SendDgramClose(r->id, /*sender=*/false);
      s->udp->in_rings.erase(s->udp->in_rings.begin() + i);  // frees r
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
  if (std::find(s->udp->no_ring.begin(), s->udp->no_ring.end(), key) != s->udp->no_ring.end()) return nullptr;
  shm::ArenaHeader* a = Arena();
  if (a == nullptr) return nullptr;
  // Without an engine endpoint only an offloaded receiver on this host
  // could take it, and the port bitmap says whether there is one.
  if (!s->udp->wire_tx.valid() && !shm::PortBit(a->udp_ports, ntohs(d.port))) return nullptr;
  // Bound to an address of the other family (::1 sending to a v4-mapped
  // address, or the reverse): the kernel refuses it, as Linux does.
  const shm::SockAddr l = Canonical(s->local);
  const bool unbound_addr = shm::IsV6Any(l.addr) || (l.family == AF_INET && shm::V4Of(l) == 0);
  if (!unbound_addr && l.family != d.family) return nullptr;
  const InetName dst_name = NameIn(d, s->family);
  if (!Decide(s, rules::Role::kUdpSender, &s->local, &dst_name)) {
    if (s->udp->no_ring.size() < kMaxNoRing) s->udp->no_ring.push_back(key);
    return nullptr;
  }
  shm::Msg m = {};
  m.type = shm::MsgType::kUdpOpen;
  m.id = s->reg_id;
  ToMsg(Canonical(s->local), &m.local, nullptr);
  ToMsg(d, &m.remote, &m.remote6);
  if (d.family == AF_INET && IsGroup(dst->sin_addr.s_addr)) {
    m.value = static_cast<uint32_t>(s->udp->mc_ifindex);
    m.value64 = s->udp->mc_if_addr;
  }
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, nullptr, 0, &r, rfds, &nr)) return nullptr;
  if (r.type != shm::MsgType::kDgram || nr != 2) {
    for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
    *wire = r.type == shm::MsgType::kStatus && r.status == 0 && s->udp->wire_tx.valid();
    if (!*wire && !s->udp->wire_tx.valid() && s->udp->no_ring.size() < kMaxNoRing) s->udp->no_ring.push_back(key);
    return nullptr;
  }
  shm::UniqueFd memfd(rfds[0]);
  std::unique_ptr<OutRing> o(new OutRing());
  o->efd.reset(rfds[1]);
  o->map = shm::Mapping::MapShared(memfd.get(), shm::DgramSegmentBytes(r.value));
  auto* h = o->map.as<shm::DgramHeader>();
  if (!o->map.valid() || h->magic != shm::kDgramMagic || h->capacity != r.value) {
    o.reset();
    SendDgramClose(r.id, /*sender=*/true);
    return nullptr;
  }
  o->p.Init(h);
  o->id = r.id;
  o->dst = d;
  OutRing* ring = o.get();  // owned by out_rings from here
  s->udp->out_rings.push_back(std::move(o));
  return ring;
}

void UdpAdoptNewRings(Socket* s) { AdoptNewRings(s); }

const uint8_t* PeerFront(Socket* s, InRing* r, bool shared, size_t* len, size_t* rec_len,
                         shm::SockAddr* from, void (*drop)(Socket*, InRing*, size_t)) {
  for (;;) {
    const uint8_t* p = r->id == 0 ? WireFront(r, len, rec_len, from) : r->c.Front(len);
    if (p == nullptr) return nullptr;
    if (r->id != 0) {
      *rec_len = *len;
      *from = r->src;
    }
    if (!s->connected || r->c.ReadPos() < r->connect_from ||
        SameEndpoint(*from, Canonical(s->remote))) {
      return p;
    }
    if (drop != nullptr) {
      drop(s, r, *rec_len);
    } else if (!shared) {
      r->c.Pop(*rec_len);
    } else if (!r->c.PopShared(*rec_len)) {
      r->c.Resync();  // another holder took it
    }
  }
}

void UdpConnected(Socket* s) {
  if (s->udp == nullptr) return;
  MutexGuard rx(&s->udp->rx_mu);
  AdoptNewRings(s);
  for (const std::unique_ptr<InRing>& r : s->udp->in_rings) {
    r->connect_from = r->c.header()->idx.tail.load(std::memory_order_acquire);
  }
}
void UdpReapRings(Socket* s) { ReapRings(s); }

}  // namespace client
}  // namespace offload
