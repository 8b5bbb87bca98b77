// TcpBroker: TCP on the wire. A connect routed through the offloaded
// interface gets a pipe slot in the process's engine channel, served by an
// engine; an offloaded listener also listens on the wire, and the engine
// queues what it accepts in the listener's accept queue itself.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "daemon/session/tcp_broker.h"
#include "daemon/wire/family.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

using shm::Msg;

void TcpBroker::SetWirePlane(wire::WirePlane* wire, uint32_t wire_addr_net, uint64_t netns) {
  wire_ = wire;
  wire_addr_ = wire_addr_net;
  wire_netns_ = netns;
}

bool TcpBroker::WireConnect(Session* s, const Msg& m, const shm::SockAddr& shadow,
                            uint64_t inode, int fd) {
  if (wire_ == nullptr || s->netns != wire_netns_) return false;
  const bool v6 = shadow.family == AF_INET6;
  const uint16_t shadow_port = shadow.port;
  net::Ip6Addr dst6;
  if (v6) std::memcpy(dst6.b, m.remote6.addr, 16);
  absl::StatusOr<wire::WireRoute> route = v6 ? wire_->RouteTo6(dst6, ntohs(m.remote.port))
                                             : wire_->RouteTo(ntohl(m.remote.addr),
                                                              ntohs(m.remote.port));
  if (!route.ok()) {
    spdlog::debug("pid {}: connect to port {} stays with the kernel: {}", s->pid,
                  ntohs(m.remote.port), std::string(route.status().message()));
    return false;
  }
  // A socket bound to a specific address other than the interface's would
  // put another source address on the wire than the application chose.
  if (v6 ? !shm::IsV6Any(shadow.addr) && std::memcmp(shadow.addr, route->local_ip6.data(), 16) != 0
         : shm::V4Of(shadow) != 0 && shm::V4Of(shadow) != wire_addr_) {
    return false;
  }
  if (s->engine_channel == nullptr) {
    absl::StatusOr<std::shared_ptr<wire::EngineChannel>> ec =
        wire::EngineChannel::Create(env_.next_id(), env_.pipe_capacity);
    if (!ec.ok()) {
      spdlog::warn("pid {}: {}", s->pid, std::string(ec.status().message()));
      return false;
    }
    auto c = std::make_unique<Channel>();
    c->id = (*ec)->id();
    c->engine = *ec;
    channels_[c->id] = std::move(c);
    s->engine_channel = *ec;
  }
  absl::StatusOr<std::shared_ptr<wire::AppPipe>> pipe =
      wire::AppPipe::Create(s->engine_channel, 0, shm::kConnectPending);
  if (!pipe.ok()) {
    spdlog::warn("pid {}: {}", s->pid, std::string(pipe.status().message()));
    return false;
  }
  shm::PipeRecord* r = (*pipe)->record();
  if (v6) {
    net::Ip6Addr local6;
    std::memcpy(local6.b, route->local_ip6.data(), 16);
    r->end[0].local = wire::FromV6(local6, ntohs(shadow_port));
    r->end[1].local = wire::FromV6(dst6, ntohs(m.remote.port));
  } else {
    r->end[0].local = shm::FromV4(htonl(route->local_ip), shadow_port);
    r->end[1].local = shm::FromV4(m.remote.addr, m.remote.port);
  }
  r->end[0].inode = inode;
  // While one process holds the socket alone, our copy keeps its port
  // reserved until the connection is really gone (TIME-WAIT included).
  (*pipe)->HoldPort(shm::UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0)));
  wire::TcpConnectParams params;
  params.remote_ip = ntohl(m.remote.addr);
  params.ipv6 = v6;
  params.remote_ip6 = dst6;
  params.remote_port = ntohs(m.remote.port);
  params.local_port = ntohs(shadow_port);
  params.pipe = *pipe;
  params.options = wire::ToSocketOptions(m.opts);
  absl::StatusOr<wire::WireFlow> flow = wire_->ConnectTcp(params);
  if (!flow.ok()) {
    spdlog::warn("pid {}: connect to port {} through the engine failed, using the kernel: {}",
                 s->pid, ntohs(m.remote.port), std::string(flow.status().message()));
    (*pipe)->Abandon();
    return false;
  }
  if (engine_pipes_.size() > 1024 && engine_pipes_.size() % 1024 == 0) {
    for (auto it = engine_pipes_.begin(); it != engine_pipes_.end();) {
      it = it->second.expired() ? engine_pipes_.erase(it) : std::next(it);
    }
  }
  engine_pipes_[uint64_t{s->engine_channel->id()} << 32 | (*pipe)->slot()] = *pipe;
  Channel* c = FindChannel(s->engine_channel->id());
  SendChannel(s, m, c, nullptr, (*pipe)->slot(), (*pipe)->gen());
  return true;
}

std::shared_ptr<wire::AcceptTarget> TcpBroker::TargetOf(Listener* l) const {
  auto t = std::make_shared<wire::AcceptTarget>();
  t->listener = l->header();
  t->keep = l->seg;
  t->channel = l->engine_channel;
  return t;
}

uint32_t TcpBroker::WirePortKey(const Listener* l) {
  const bool v6 = l->where.family == AF_INET6 && !shm::IsV4Mapped(l->where.addr);
  return uint32_t{l->port} | (v6 ? 1u << 16 : 0u);
}

void TcpBroker::WireListen(Listener* l) {
  // AF_INET6 listeners: on :: (dual-stack unless IPV6_V6ONLY) or on an
  // address the engine's stack checks (TcpListen6: EADDRNOTAVAIL, logged);
  // one bound to a v4-mapped address is an IPv4 listener of that address.
  const bool v6 = l->where.family == AF_INET6 && !shm::IsV4Mapped(l->where.addr);
  uint32_t v4_addr = l->addr;
  if (l->where.family == AF_INET6 && !v6) std::memcpy(&v4_addr, l->where.addr + 12, 4);
  if (wire_ == nullptr || l->netns != wire_netns_ ||
      (!v6 && v4_addr != 0 && v4_addr != wire_addr_)) {
    return;
  }
  absl::StatusOr<std::shared_ptr<wire::EngineChannel>> ec =
      wire::EngineChannel::Create(env_.next_id(), env_.pipe_capacity);
  if (!ec.ok()) {
    spdlog::warn("pid {}: port {} is not offloaded on the wire: {}", l->pid, ntohs(l->port),
                 std::string(ec.status().message()));
    return;
  }
  auto c = std::make_unique<Channel>();
  c->id = (*ec)->id();
  c->listener_id = l->id;
  c->engine = *ec;
  channels_[c->id] = std::move(c);
  l->engine_channel = *ec;
  WirePort& port = wire_ports_[WirePortKey(l)];
  if (port.listeners.empty()) {
    wire::TcpListenParams params;
    params.local_ip = ntohl(v4_addr);
    params.ipv6 = v6;
    params.v6only = l->where.v6only;
    if (v6) std::memcpy(params.local_ip6.b, l->where.addr, 16);
    params.port = ntohs(l->port);
    params.backlog = static_cast<int>(std::max<uint32_t>(l->backlog, 128));
    params.target = TargetOf(l);
    params.options = wire::ToSocketOptions(l->opts);
    absl::StatusOr<wire::WireListener> h = wire_->ListenTcp(params);
    if (!h.ok()) {
      wire_ports_.erase(WirePortKey(l));
      spdlog::warn("pid {}: port {} is not offloaded on the wire (kernel clients are served by "
                   "the kernel): {}",
                   l->pid, ntohs(l->port), std::string(h.status().message()));
      return;
    }
    port.handle = *h;
  } else {
    // A newer listener on the port (the old one may be about to close, as
    // iperf3 does between tests): it gets the connections from now on,
    // with its options.
    wire_->SetAcceptTarget(port.handle, TargetOf(l));
    wire_->SetListenerOptions(port.handle, wire::ToSocketOptions(l->opts));
  }
  port.listeners.push_back(l->id);
  l->on_wire = true;
}

void TcpBroker::WireListenerOptions(Listener* l) {
  if (!l->on_wire || wire_ == nullptr) return;
  auto it = wire_ports_.find(WirePortKey(l));
  // Only the port's current target's options are the engine listener's.
  if (it == wire_ports_.end() || it->second.listeners.empty() ||
      it->second.listeners.back() != l->id) {
    return;
  }
  wire_->SetListenerOptions(it->second.handle, wire::ToSocketOptions(l->opts));
}

void TcpBroker::WireUnlisten(Listener* l) {
  if (!l->on_wire || wire_ == nullptr) return;
  l->on_wire = false;
  auto it = wire_ports_.find(WirePortKey(l));
  if (it == wire_ports_.end()) return;
  std::vector<uint32_t>& ids = it->second.listeners;
  const bool was_target = !ids.empty() && ids.back() == l->id;
  ids.erase(std::remove(ids.begin(), ids.end(), l->id), ids.end());
  if (ids.empty()) {
    wire_->CloseListener(it->second.handle);
    wire_ports_.erase(it);
    return;
  }
  if (was_target) {
    if (Listener* next = FindListener(ids.back())) {
      wire_->SetAcceptTarget(it->second.handle, TargetOf(next));
      wire_->SetListenerOptions(it->second.handle, wire::ToSocketOptions(next->opts));
    }
  }
}

}  // namespace session
}  // namespace offload
