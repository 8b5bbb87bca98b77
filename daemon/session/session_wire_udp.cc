// SessionManager: UDP sockets served by an engine on the wire.
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

#include <arpa/inet.h>
#include <errno.h>

#include <cstring>
#include <string>

#include "daemon/session/session_internal.h"
#include "daemon/session/session_manager.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

using shm::Msg;
using shm::MsgType;

namespace {

std::string Ip(uint32_t net_order) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a;
  a.s_addr = net_order;
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

}  // namespace

void SessionManager::HandleUdpWire(Session* s, const Msg& m) {
  auto self = s->udp.find(m.id);
  auto it = self == s->udp.end() ? udp_.end() : udp_.find(self->second);
  if (it == udp_.end() || wire_ == nullptr || s->netns != wire_netns_) {
    Reply(s, m, kStatusUseKernel);
    return;
  }
  UdpEndpoint* u = it->second.get();
  if (u->rings != nullptr || (u->addr != 0 && u->addr != wire_addr_)) {
    Reply(s, m, kStatusUseKernel);
    return;
  }
  absl::StatusOr<std::shared_ptr<wire::AppDgram>> rings = wire::AppDgram::Create(
      dgram_capacity_, u->efd.get(), u->addr, u->port, wire_->max_udp_payload());
  if (!rings.ok()) {
    spdlog::warn("pid {}: UDP port {} stays with the kernel: {}", s->pid, ntohs(u->port),
                 std::string(rings.status().message()));
    Reply(s, m, kStatusUseKernel);
    return;
  }
  wire::UdpBindParams params;
  params.local_ip = ntohl(u->addr);
  params.port = ntohs(u->port);
  params.reuse = u->reuse;
  params.rings = *rings;
  absl::StatusOr<wire::WireUdp> bound = wire_->BindUdp(params);
  if (!bound.ok()) {
    spdlog::info("pid {}: UDP {}:{} is served by the kernel on the wire: {}", s->pid,
                 Ip(u->addr), ntohs(u->port), std::string(bound.status().message()));
    Reply(s, m, kStatusUseKernel);
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
  if (!SendMsg(s->fd.get(), r, fds, 2)) CloseWireUdp(u);  // the process goes away
}

bool SessionManager::WireUdpRoutes(const UdpEndpoint* u, const Msg& m) {
  if (u->rings == nullptr || wire_ == nullptr) return false;
  // Broadcast and multicast leave through the kernel (SO_BROADCAST,
  // IP_MULTICAST_IF/TTL/LOOP are the kernel socket's options).
  const uint32_t dst = ntohl(m.remote.addr);
  if (dst == 0xffffffffu || (dst >> 28) == 0xe) return false;
  absl::StatusOr<wire::WireRoute> route = wire_->RouteUdpTo(dst, ntohs(m.remote.port));
  if (!route.ok()) {
    spdlog::debug("pid {}: UDP to {}:{} stays with the kernel: {}", u->session->pid,
                  Ip(m.remote.addr), ntohs(m.remote.port), std::string(route.status().message()));
    return false;
  }
  return true;
}

void SessionManager::CloseWireUdp(UdpEndpoint* u) {
  if (u->rings == nullptr) return;
  if (wire_ != nullptr) wire_->CloseUdp(u->wire);
  u->rings.reset();  // the engine keeps its own reference until its endpoint is closed
}

}  // namespace session
}  // namespace offload
