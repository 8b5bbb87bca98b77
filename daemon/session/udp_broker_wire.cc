// UdpBroker: UDP sockets served by an engine on the wire.
//
// A registered UDP endpoint (kUdpBind) in offloadd's network namespace,
// bound to INADDR_ANY or the offloaded interface's address, asks for an
// engine endpoint with kUdpWire: the engine binds the same port (the
// kernel keeps it reserved for the shadow), the interface's unicast for the
// port is steered to the engine, and the process gets the two rings
// (wire::AppDgram) plus the engine's doorbell. Afterwards a kUdpOpen for a
// destination without an offloaded receiver on this host is answered "use
// the wire ring" when the kernel routes it through the offloaded interface.
// The endpoint is released with the UDP registration (kUdpUnbind, the
// process's end).
//
// Multicast: a socket with an engine endpoint that joins a group (its
// kernel socket has joined already: the kernel sends IGMP and serves the
// group while it is not steered) reports it with kUdpJoin; when the
// membership names the offloaded interface (or the kernel routes the group
// through it) the engine endpoint joins and the group's datagrams to the
// port are steered to the engine (WirePlane::JoinUdpGroup). kUdpLeave and
// the endpoint's release undo it. A send to a group goes through the
// engine when IP_MULTICAST_IF (carried in the kUdpOpen) or the group's
// route is the offloaded interface. A socket bound to a group address gets
// an engine endpoint without unicast steering.

#include <arpa/inet.h>
#include <errno.h>

#include <cstring>
#include <string>

#include "daemon/session/session_internal.h"
#include "daemon/session/udp_broker.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

using shm::Msg;
using shm::MsgType;

void UdpBroker::Wire(Session* s, const Msg& m) {
  auto self = s->udp.find(m.id);
  auto it = self == s->udp.end() ? udp_.end() : udp_.find(self->second);
  if (it == udp_.end() || wire_ == nullptr || s->netns != wire_netns_) {
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  UdpEndpoint* u = it->second.get();
  // An AF_INET6 socket: bound to ::, the interface's IPv6 address (checked
  // by the wire plane) or a v4-mapped address (then as IPv4 below).
  const bool mapped = u->where.family == AF_INET6 && shm::IsV4Mapped(u->where.addr);
  const bool v6 = u->where.family == AF_INET6 && !mapped;
  uint32_t addr = u->addr;
  if (mapped) std::memcpy(&addr, u->where.addr + 12, 4);
  const bool group_bound = !v6 && (ntohl(addr) >> 28) == 0xe;
  const bool link_scope = v6 && u->where.addr[0] == 0xfe && (u->where.addr[1] & 0xc0) == 0x80;
  if (v6 && (u->where.addr[0] == 0xff || link_scope)) {
    spdlog::info("pid {}: UDP port {} bound to an IPv6 {} address stays with the kernel", s->pid,
                 ntohs(u->port), link_scope ? "link-local" : "multicast");
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  if (u->rings != nullptr || (mapped && (group_bound || u->where.v6only)) ||
      (!v6 && addr != 0 && addr != wire_addr_ && !group_bound)) {
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  absl::StatusOr<std::shared_ptr<wire::AppDgram>> rings = wire::AppDgram::Create(
      env_.dgram_capacity, u->efd.get(), u->addr, u->port, wire_->max_udp_payload());
  if (!rings.ok()) {
    spdlog::warn("pid {}: UDP port {} stays with the kernel: {}", s->pid, ntohs(u->port),
                 std::string(rings.status().message()));
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  wire::UdpBindParams params;
  params.local_ip = ntohl(addr);
  params.port = ntohs(u->port);
  params.reuse = u->reuse;
  params.rings = *rings;
  params.ipv6 = v6;
  params.v6only = u->where.v6only;
  if (v6) std::memcpy(params.local_ip6.b, u->where.addr, 16);
  absl::StatusOr<wire::WireUdp> bound = wire_->BindUdp(params);
  if (!bound.ok()) {
    spdlog::info("pid {}: UDP{} port {} ({}) is served by the kernel on the wire: {}", s->pid,
                 v6 ? "v6" : "", ntohs(u->port), v6 ? "inet6" : IpText(addr),
                 std::string(bound.status().message()));
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  u->rings = *rings;
  u->wire = *bound;
  Msg r = {};
  r.type = MsgType::kDgram;
  r.seq = m.seq;
  r.id = m.id;
  r.value = u->rings->capacity();
  r.local.addr = wire_addr_;
  r.local.port = u->port;
  const int fds[2] = {u->rings->memfd(), wire_->DoorbellFd(u->wire.engine)};
  if (!SendMsg(s->fd.get(), r, fds, 2)) CloseWire(u);  // the process goes away
}

bool UdpBroker::WireRoutes(const UdpEndpoint* u, const Msg& m) {
  if (u->rings == nullptr || wire_ == nullptr) return false;
  if (m.remote6.family == AF_INET6) return WireRoutes6(u, m);
  // An IPv4 peer (v4-mapped for an AF_INET6 socket): not from a v6-only
  // socket (the kernel answers ENETUNREACH) nor one the engine serves on
  // its IPv6 address only.
  if (u->wire.ipv6 && (u->wire.v6only || u->wire.steer_ip == 0)) return false;
  // Broadcast leaves through the kernel (SO_BROADCAST is the kernel
  // socket's option); a group through the engine if the socket's
  // IP_MULTICAST_IF (or, without one, the kernel's route) is the offloaded
  // interface. The client carries TTL and loop (abi.h DgramRecord::ttl).
  const uint32_t dst = ntohl(m.remote.addr);
  if (dst == 0xffffffffu) return false;
  if ((dst >> 28) == 0xe) {
    absl::Status route = wire_->RouteMulticast(dst, ntohl(static_cast<uint32_t>(m.value64)),
                                               static_cast<int>(m.value));
    if (!route.ok()) {
      spdlog::debug("pid {}: UDP to group {} stays with the kernel: {}", u->session->pid,
                    IpText(m.remote.addr), std::string(route.message()));
      return false;
    }
    return true;
  }
  absl::StatusOr<wire::WireRoute> route = wire_->RouteUdpTo(dst, ntohs(m.remote.port));
  if (!route.ok()) {
    spdlog::debug("pid {}: UDP to {}:{} stays with the kernel: {}", u->session->pid,
                  IpText(m.remote.addr), ntohs(m.remote.port), std::string(route.status().message()));
    return false;
  }
  return true;
}

bool UdpBroker::WireRoutes6(const UdpEndpoint* u, const Msg& m) {
  // An IPv6 peer: only for an engine endpoint of an AF_INET6 socket that
  // is not v4-mapped. IPv6 groups and link-local peers are the kernel's.
  if (!u->wire.ipv6) return false;
  net::Ip6Addr dst;
  std::memcpy(dst.b, m.remote6.addr, 16);
  if (dst.IsMulticast() || dst.IsLinkLocal() || m.remote6.scope_id != 0) {
    spdlog::debug("pid {}: UDP to a multicast or link-local IPv6 peer stays with the kernel",
                  u->session->pid);
    return false;
  }
  absl::StatusOr<wire::WireRoute> route = wire_->RouteUdpTo6(dst, ntohs(m.remote.port));
  if (!route.ok()) {
    spdlog::debug("pid {}: UDP to an IPv6 peer, port {}, stays with the kernel: {}",
                  u->session->pid, ntohs(m.remote.port), std::string(route.status().message()));
    return false;
  }
  return true;
}

void UdpBroker::Group(Session* s, const Msg& m) {
  const bool join = m.type == MsgType::kUdpJoin;
  auto self = s->udp.find(m.id);
  auto it = self == s->udp.end() ? udp_.end() : udp_.find(self->second);
  UdpEndpoint* u = it == udp_.end() ? nullptr : it->second.get();
  const uint32_t group = ntohl(m.remote.addr);
  if (u == nullptr || u->rings == nullptr || wire_ == nullptr) {
    if (join) ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  if (!join) {
    absl::Status left = wire_->LeaveUdpGroup(u->wire, group);
    if (!left.ok() && !absl::IsNotFound(left)) {
      spdlog::warn("pid {}: leaving group {} on the engine: {}", s->pid, IpText(m.remote.addr),
                   std::string(left.message()));
    }
    return;
  }
  absl::Status route = wire_->RouteMulticast(group, ntohl(m.local.addr), static_cast<int>(m.value));
  if (!route.ok()) {
    spdlog::info("pid {}: group {} on port {} stays with the kernel: {}", s->pid,
                 IpText(m.remote.addr), ntohs(u->port), std::string(route.message()));
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  absl::Status joined = wire_->JoinUdpGroup(u->wire, group);
  if (joined.ok() || absl::IsAlreadyExists(joined)) {
    ReplyStatus(s, m, 0);
    return;
  }
  spdlog::info("pid {}: group {} on port {} stays with the kernel: {}", s->pid, IpText(m.remote.addr),
               ntohs(u->port), std::string(joined.message()));
  ReplyStatus(s, m, kStatusUseKernel);
}

void UdpBroker::CloseWire(UdpEndpoint* u) {
  if (u->rings == nullptr) return;
  if (wire_ != nullptr) wire_->CloseUdp(u->wire);
  u->rings.reset();  // the engine keeps its own reference until its endpoint is closed
}

}  // namespace session
}  // namespace offload
