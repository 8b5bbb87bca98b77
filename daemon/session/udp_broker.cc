// UdpBroker: registered UDP receivers and same-host datagram rings (see
// udp_broker.h).

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/session/session_internal.h"
#include "daemon/session/udp_broker.h"
#include "shm/sockaddr.h"
#include "shm/wakeup.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

using shm::Msg;
using shm::MsgType;

UdpBroker::~UdpBroker() = default;

void UdpBroker::SetWirePlane(wire::WirePlane* wire, uint32_t wire_addr_net, uint64_t netns) {
  wire_ = wire;
  wire_addr_ = wire_addr_net;
  wire_netns_ = netns;
}

absl::Status UdpBroker::Bind(Session* s, Request& req) {
  const Msg& m = req.msg;
  if (s->udp.count(m.id)) {
    return absl::InvalidArgumentError(absl::StrCat("udp endpoint ", m.id, " registered twice"));
  }
  if (s->udp.size() >= env_.max_sockets) {
    ReplyStatus(s, m, ENOBUFS);
    return absl::OkStatus();
  }
  // The socket is the proof of where it is bound (either family).
  ListenAddr where;
  uint16_t port = 0;
  int type = 0;
  socklen_t tlen = sizeof(type);
  if (!ListenAddrOf(req.fds[0].get(), &where, &port) || port != m.local.port ||
      getsockopt(req.fds[0].get(), SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
      type != SOCK_DGRAM) {
    ReplyStatus(s, m, EINVAL);
    return absl::OkStatus();
  }
  auto u = std::make_unique<UdpEndpoint>();
  u->id = env_.next_id();
  u->session = s;
  u->client_id = m.id;
  if (where.family == AF_INET) std::memcpy(&u->addr, where.addr + 12, 4);
  u->port = port;
  u->where = where;
  u->netns = s->netns;
  u->efd = std::move(req.fds[1]);
  int on = 0;
  socklen_t olen = sizeof(on);
  u->reuse = getsockopt(req.fds[0].get(), SOL_SOCKET, SO_REUSEADDR, &on, &olen) == 0 && on;
  on = 0;
  olen = sizeof(on);
  u->reuseport = getsockopt(req.fds[0].get(), SOL_SOCKET, SO_REUSEPORT, &on, &olen) == 0 && on;
  u->reuse = u->reuse || u->reuseport;
  s->udp[m.id] = u->id;
  env_.publish_port(u->port, true);
  udp_[u->id] = std::move(u);
  ReplyStatus(s, m, 0);
  return absl::OkStatus();
}

void UdpBroker::Unbind(Session* s, uint32_t client_id) {
  auto it = s->udp.find(client_id);
  if (it == s->udp.end()) return;
  const uint32_t uid = it->second;
  s->udp.erase(it);
  auto u = udp_.find(uid);
  if (u == udp_.end()) return;
  // Rings into this endpoint: senders see reader_closed and go back to the
  // kernel for that destination.
  for (auto& [id, r] : dgrams_) {
    if (r->receiver_endpoint == uid) {
      r->header()->idx.reader_closed.store(1, std::memory_order_release);
      r->receiver_endpoint = 0;
    }
  }
  CloseWire(u->second.get());
  const uint16_t port = u->second->port;
  udp_.erase(u);
  for (const auto& [id, other] : udp_) {
    if (other->port == port) return;
  }
  env_.publish_port(port, false);
}

void UdpBroker::UnbindAll(Session* s) {
  while (!s->udp.empty()) Unbind(s, s->udp.begin()->first);
}

void UdpBroker::Open(Session* s, const Msg& m) {
  auto self = s->udp.find(m.id);
  if (self == s->udp.end()) {
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  UdpEndpoint* dst = nullptr;
  bool dst_local = false, dst_local_known = false;
  // The destination, 16-byte form (abi.h Dst6: IPv6 in remote6, IPv4 and
  // v4-mapped in remote).
  const bool dst_v6 = m.remote6.family == AF_INET6;
  uint8_t dst16[16];
  shm::Addr16Of(shm::FromV4(m.remote.addr, m.remote.port), dst16);
  if (dst_v6) std::memcpy(dst16, m.remote6.addr, 16);
  // A group has no single receiver: no same-host ring (local members get
  // the datagram through the kernel, IP_MULTICAST_LOOP). IPv6 multicast
  // stays on the kernel.
  const bool group = dst_v6 ? m.remote6.addr[0] == 0xff : (ntohl(m.remote.addr) >> 28) == 0xe;
  // Several sockets may take it (SO_REUSEADDR / SO_REUSEPORT on one port):
  // as Linux's lookup, one bound to the address itself beats a wildcard;
  // among equals a SO_REUSEPORT group spreads its senders by a hash of
  // theirs, otherwise the socket bound last gets the datagrams.
  std::vector<UdpEndpoint*> best;
  int best_score = 0;
  for (auto& [id, u] : udp_) {
    if (group) break;
    if (u->port != m.remote.port || u->netns != s->netns) continue;
    const bool takes = ListenerTakes(u->where, dst16, [&] {
      if (!dst_local_known) {
        dst_local = dst_v6 ? IsLocalAddress6(dst16) : IsLocalAddress(m.remote.addr);
        dst_local_known = true;
      }
      return dst_local;
    });
    if (!takes) continue;
    const int score = IsWildcard(u->where) ? 1 : 2;
    if (score > best_score) best.clear();
    if (score >= best_score) {
      best_score = score;
      best.push_back(u.get());  // ascending ids: the newest last
    }
  }
  if (!best.empty()) {
    const bool group_of_reuseport =
        std::all_of(best.begin(), best.end(), [](const UdpEndpoint* u) { return u->reuseport; });
    dst = best.back();
    if (group_of_reuseport && best.size() > 1) {
      auto own = udp_.find(self->second);
      uint64_t h = own == udp_.end() ? 0 : (uint64_t{own->second->port} << 32) | own->second->id;
      h *= 0x9e3779b97f4a7c15ull;
      dst = best[(h >> 32) % best.size()];
    }
  }
  if (dst == nullptr) {
    // No offloaded receiver on this host: the socket's engine endpoint, if
    // it has one and the destination leaves through the offloaded
    // interface; otherwise the kernel.
    auto own = udp_.find(self->second);
    ReplyStatus(s, m, own != udp_.end() && WireRoutes(own->second.get(), m)
                          ? 0
                          : kStatusUseKernel);
    return;
  }
  if (s->dgrams.size() >= 4 * size_t{env_.max_sockets}) {
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  auto r = std::make_unique<DgramRing>();
  r->id = env_.next_id();
  shm::UniqueFd memfd = MakeSealedMemfd(
      "offload-dgram", shm::DgramSegmentBytes(env_.dgram_capacity), &r->segment);
  if (!memfd.valid()) {
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  auto* h = new (r->segment.get()) shm::DgramHeader();
  h->magic = shm::kDgramMagic;
  h->capacity = env_.dgram_capacity;
  // The source is the sender's registered (kernel-bound) endpoint, never
  // what the request claims.
  // A sender bound to a wildcard (0.0.0.0, ::) sends from the destination's
  // address on this host.
  const UdpEndpoint* src = udp_.at(self->second).get();
  uint8_t src16[16];
  std::memcpy(src16, src->where.addr, 16);
  static constexpr uint8_t kV4Any[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  if (shm::IsV6Any(src16) || std::memcmp(src16, kV4Any, 16) == 0) std::memcpy(src16, dst16, 16);
  const bool src_v4 = shm::IsV4Mapped(src16);
  if (src_v4) std::memcpy(&h->src_addr, src16 + 12, 4);
  h->src_port = src->port;
  Msg offer = {};
  offer.type = MsgType::kDgramOffer;
  offer.id = dst->client_id;
  offer.id2 = r->id;
  offer.value = env_.dgram_capacity;
  offer.remote.addr = h->src_addr;  // 0 for an IPv6 source, which is in remote6
  offer.remote.port = h->src_port;
  if (!src_v4) {
    std::memcpy(offer.remote6.addr, src16, 16);
    offer.remote6.family = AF_INET6;
  }
  const int offer_fds[1] = {memfd.get()};
  if (!SendMsg(dst->session->fd.get(), offer, offer_fds, 1)) {
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  env_.post_event(dst->session);
  shm::Kick(dst->efd.get());
  r->sender = s;
  r->receiver = dst->session;
  r->receiver_endpoint = dst->id;
  r->sender_open = r->receiver_open = true;
  s->dgrams.insert(r->id);
  dst->session->dgrams.insert(r->id);
  Msg rep = {};
  rep.type = MsgType::kDgram;
  rep.seq = m.seq;
  rep.id = r->id;
  rep.value = env_.dgram_capacity;
  rep.remote = m.remote;
  const int fds[2] = {memfd.get(), dst->efd.get()};
  const uint32_t rid = r->id;
  dgrams_[rid] = std::move(r);
  if (!SendMsg(s->fd.get(), rep, fds, 2)) CloseSide(rid, /*sender=*/true);
}

absl::Status UdpBroker::CloseRing(Session* s, const Msg& m) {
  auto it = dgrams_.find(m.id);
  const bool sender = m.value == 1;
  if (it == dgrams_.end() || (sender ? it->second->sender : it->second->receiver) != s) {
    return absl::InvalidArgumentError(
        absl::StrCat("datagram ring ", m.id, " does not belong to this process"));
  }
  CloseSide(m.id, sender);
  return absl::OkStatus();
}

void UdpBroker::CloseRingsOf(Session* s) {
  const std::set<uint32_t> dgrams = s->dgrams;
  for (uint32_t id : dgrams) {
    auto r = dgrams_.find(id);
    if (r != dgrams_.end() && r->second->sender == s) CloseSide(id, true);
    r = dgrams_.find(id);
    if (r != dgrams_.end() && r->second->receiver == s) CloseSide(id, false);
  }
}

void UdpBroker::CloseSide(uint32_t ring_id, bool sender) {
  auto it = dgrams_.find(ring_id);
  if (it == dgrams_.end()) return;
  DgramRing* r = it->second.get();
  if (sender) {
    if (!r->sender_open) return;
    r->sender_open = false;
    if (r->sender != r->receiver) {
      r->sender->dgrams.erase(ring_id);
      r->sender = nullptr;
    }
    // Pairs with the receiver's load-acquire in DgramConsumer::SenderGone().
    r->header()->idx.shut.store(shm::kShutFin, std::memory_order_release);
    auto u = udp_.find(r->receiver_endpoint);
    if (u != udp_.end()) shm::Kick(u->second->efd.get());
  } else {
    if (!r->receiver_open) return;
    r->receiver_open = false;
    if (r->sender != r->receiver) {
      r->receiver->dgrams.erase(ring_id);
      r->receiver = nullptr;
    }
    r->header()->idx.reader_closed.store(1, std::memory_order_release);
  }
  if (!r->sender_open && !r->receiver_open) {
    if (r->sender != nullptr) r->sender->dgrams.erase(ring_id);
    if (r->receiver != nullptr) r->receiver->dgrams.erase(ring_id);
    dgrams_.erase(it);
  }
}

}  // namespace session
}  // namespace offload
