// The wire plane's UDP sockets: engine endpoints, their unicast and
// multicast steering, and the multicast routing query (see wire_plane.h).

#include <string.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/wire/engine_flows.h"
#include "daemon/wire/family.h"
#include "daemon/wire/interface.h"
#include "daemon/wire/steering.h"
#include "daemon/wire/wire_plane.h"

namespace offload::wire {

absl::StatusOr<WireUdp> WirePlane::BindUdp(const UdpBindParams& params) {
  if (params.port == 0 || params.rings == nullptr) {
    return absl::InvalidArgumentError("BindUdp needs a kernel-reserved port and rings");
  }
  if (engines_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  UdpBindParams p = params;
  if (p.ipv6 && p.local_ip6.IsV4Mapped()) {
    // RFC 4291 2.5.5.2: the IPv4 address (the client shows its peers v4-mapped).
    if (p.v6only) return absl::InvalidArgumentError("a v6-only socket on a v4-mapped address");
    p.ipv6 = false;
    p.local_ip = p.local_ip6.V4();
  }
  if (p.ipv6) return BindUdp6(p);
  const bool group_bound = nic::IsMulticast(p.local_ip);
  if (p.local_ip != 0 && p.local_ip != interface_->local_ip && !group_bound) {
    return absl::InvalidArgumentError(absl::StrCat(IpText(p.local_ip), " is not the offloaded address ",
                                                   IpText(interface_->local_ip)));
  }
  // One engine serves a port: the receive key steers the whole port.
  const uint32_t engine = 0;
  EngineFlows* f = flows_[engine].get();
  WireUdp u;
  u.engine = engine;
  u.cookie = next_cookie_.fetch_add(1, std::memory_order_relaxed);
  u.steer_ip = group_bound ? 0 : interface_->local_ip;
  u.port = p.port;
  if (absl::Status s = BindUdpOnEngine(engine, u.cookie, p); !s.ok()) return s;
  // Only unicast to the interface's address: broadcast to the port keeps
  // reaching the shadow through the kernel; groups are steered when joined.
  if (group_bound) return u;
  if (!steering_->AcquireUdpPort(f->queue(), u.steer_ip, u.port)) {
    engines_->engine(engine).Post([f, cookie = u.cookie] { f->CloseUdp(cookie); });
    return absl::InternalError(
        "cannot steer " +
        nic::FlowKey::Listener(nic::IpProto::kUdp, u.steer_ip, u.port).ToString() +
        " to the engine");
  }
  return u;
}

absl::Status WirePlane::BindUdpOnEngine(uint32_t engine, uint64_t cookie,
                                        const UdpBindParams& p) {
  EngineFlows* f = flows_[engine].get();
  auto result = std::make_shared<int>(EINVAL);
  absl::Status s = engines_->engine(engine).RunSync(
      [f, cookie, p, result] { f->BindUdp(cookie, p, result.get()); }, absl::Seconds(5));
  if (!s.ok()) return s;
  if (*result == EADDRINUSE) {
    return absl::AlreadyExistsError(
        absl::StrCat("UDP port ", p.port, " is already served by the engine without reuse"));
  }
  if (*result != 0) {
    return absl::InternalError(absl::StrCat("UDP bind on port ", p.port, ": ", strerror(*result)));
  }
  return absl::OkStatus();
}

absl::StatusOr<WireUdp> WirePlane::BindUdp6(const UdpBindParams& p) {
  net::Ip6Addr if6;
  const netlink::Ip6 served = kernel_->local_ip6();
  std::memcpy(if6.b, served.data(), 16);
  const bool dual = p.local_ip6.IsUnspecified() && !p.v6only;
  // Without a global IPv6 address a dual-stack socket is served for its
  // IPv4 peers only (its IPv6 ones have no route through the interface).
  if (if6.IsUnspecified() && !dual) {
    return absl::FailedPreconditionError("the offloaded interface has no global IPv6 address");
  }
  if (!p.local_ip6.IsUnspecified() && p.local_ip6 != if6) {
    return absl::InvalidArgumentError("an IPv6 address that is not the offloaded interface's");
  }
  if (dual && interface_->local_ip == 0) {
    return absl::FailedPreconditionError("a dual-stack socket needs the interface's IPv4 address");
  }
  const uint32_t engine = 0;  // one engine serves a port (BindUdp)
  EngineFlows* f = flows_[engine].get();
  WireUdp u;
  u.engine = engine;
  u.cookie = next_cookie_.fetch_add(1, std::memory_order_relaxed);
  u.steer_ip = dual ? interface_->local_ip : 0;
  u.port = p.port;
  u.ipv6 = true;
  u.v6only = p.v6only;
  u.steer_ip6 = if6;
  if (absl::Status s = BindUdpOnEngine(engine, u.cookie, p); !s.ok()) return s;
  // Unicast to the interface's addresses only: IPv6 groups on the port
  // (and IPv4 broadcast) keep reaching the shadow through the kernel.
  const bool v6 =
      if6.IsUnspecified() || steering_->AcquireUdpPort6(f->queue(), Bytes6(if6), u.port);
  const bool v4 = v6 && (!dual || steering_->AcquireUdpPort(f->queue(), u.steer_ip, u.port));
  if (!v4) {
    if (v6 && !if6.IsUnspecified()) steering_->ReleaseUdpPort6(f->queue(), Bytes6(if6), u.port);
    engines_->engine(engine).Post([f, cookie = u.cookie] { f->CloseUdp(cookie); });
    return absl::InternalError(absl::StrCat("cannot steer UDP port ", u.port, " to the engine"));
  }
  return u;
}

void WirePlane::CloseUdp(const WireUdp& u) {
  if (u.engine >= flows_.size() || engines_ == nullptr) return;
  EngineFlows* f = flows_[u.engine].get();
  engines_->engine(u.engine).Post([f, cookie = u.cookie] { f->CloseUdp(cookie); });
  steering_->ReleaseAllGroups(f->queue(), u.cookie, u.port);
  if (u.steer_ip != 0) steering_->ReleaseUdpPort(f->queue(), u.steer_ip, u.port);
  if (u.ipv6 && !u.steer_ip6.IsUnspecified()) {
    steering_->ReleaseUdpPort6(f->queue(), Bytes6(u.steer_ip6), u.port);
  }
}

absl::Status WirePlane::JoinUdpGroup(const WireUdp& u, uint32_t group) {
  if (!nic::IsMulticast(group)) {
    return absl::InvalidArgumentError(IpText(group) + " is not a multicast group");
  }
  if (u.engine >= flows_.size() || engines_ == nullptr) {
    return absl::FailedPreconditionError("the wire path is stopped");
  }
  EngineFlows* f = flows_[u.engine].get();
  auto result = std::make_shared<int>(EBADF);
  absl::Status s = engines_->engine(u.engine).RunSync(
      [f, cookie = u.cookie, group, result] { *result = f->JoinUdpGroup(cookie, group); },
      absl::Seconds(5));
  if (!s.ok()) return s;
  switch (*result) {
    case 0: break;
    case EADDRINUSE: return absl::AlreadyExistsError("already a member of " + IpText(group));
    case ENOBUFS:
      return absl::ResourceExhaustedError(
          absl::StrCat("a socket joins at most ", udp::kMaxGroups, " groups on the engine"));
    case EBADF: return absl::FailedPreconditionError("the engine endpoint is gone");
    default:
      return absl::InternalError(absl::StrCat("join ", IpText(group), ": ", strerror(*result)));
  }
  if (!steering_->AcquireGroup(f->queue(), u.cookie, group, u.port)) {
    engines_->engine(u.engine).Post(
        [f, cookie = u.cookie, group] { f->LeaveUdpGroup(cookie, group); });
    return absl::InternalError("cannot steer " +
                               nic::FlowKey::MulticastGroup(group, u.port).ToString() +
                               " to the engine");
  }
  return absl::OkStatus();
}

absl::Status WirePlane::LeaveUdpGroup(const WireUdp& u, uint32_t group) {
  if (u.engine >= flows_.size() || engines_ == nullptr) {
    return absl::FailedPreconditionError("the wire path is stopped");
  }
  EngineFlows* f = flows_[u.engine].get();
  // Unsteer first: the group's datagrams go back to the kernel sockets.
  if (!steering_->ReleaseGroup(f->queue(), u.cookie, group, u.port)) {
    return absl::NotFoundError("not a member of " + IpText(group) + " on the engine");
  }
  engines_->engine(u.engine).Post(
      [f, cookie = u.cookie, group] { f->LeaveUdpGroup(cookie, group); });
  return absl::OkStatus();
}

absl::Status WirePlane::RouteMulticast(uint32_t group, uint32_t if_addr, int ifindex) const {
  if (interface_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  return kernel_->RouteMulticast(group, if_addr, ifindex);
}

absl::StatusOr<WireRoute> WirePlane::RouteUdpTo(uint32_t remote_ip, uint16_t remote_port) {
  absl::StatusOr<WireRoute> route = RouteTo(remote_ip, remote_port);
  if (route.ok()) kernel_->EnsureNeighbour(*route);
  return route;
}

absl::StatusOr<WireRoute> WirePlane::RouteUdpTo6(const net::Ip6Addr& remote_ip,
                                                 uint16_t remote_port) {
  absl::StatusOr<WireRoute> route = RouteTo6(remote_ip, remote_port);
  if (route.ok()) kernel_->EnsureNeighbour(*route);  // route.ipv6: neighbour discovery
  return route;
}

uint16_t WirePlane::max_udp_payload() const {
  if (interface_ == nullptr) return 0;
  const uint32_t mtu = std::min<uint32_t>(interface_->driver->info().mtu, 9000);
  return static_cast<uint16_t>(mtu > 28 ? mtu - 28 : 0);
}

}  // namespace offload::wire
