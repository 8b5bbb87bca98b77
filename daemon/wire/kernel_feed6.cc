// KernelFeed: the kernel's IPv6 routes and neighbours fed to the stacks, and
// IPv6 routing queries (see kernel_feed.h). As for IPv4 the kernel is the
// only neighbour resolver: neighbour discovery (ICMPv6, passed by the XDP
// program) is its, the stacks ask it through netlink and get the answers
// through this feed.

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "daemon/stack/stack.h"
#include "daemon/wire/kernel_feed.h"
#include "spdlog/spdlog.h"

namespace offload::wire {
namespace {

net::Ip6Addr ToAddr(const netlink::Ip6& a) {
  net::Ip6Addr out;
  std::memcpy(out.b, a.data(), 16);
  return out;
}

std::string Text6(const netlink::Ip6& a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, a.data(), buf, sizeof(buf));
  return buf;
}

}  // namespace

absl::StatusOr<WireRoute> KernelFeed::RouteTo6(const netlink::Ip6& remote_ip) const {
  const std::string dst = Text6(remote_ip);
  const netlink::Ip6 local = local_ip6();
  if (local == netlink::Ip6{}) {
    return absl::NotFoundError(absl::StrCat(itf_->config.name,
                                            " has no usable global IPv6 address (IPv6 stays "
                                            "with the kernel until it has one)"));
  }
  const net::Ip6Addr d = ToAddr(remote_ip);
  if (d.IsMulticast() || d.IsLinkLocal() || d.IsUnspecified() || d.IsV4Mapped()) {
    return absl::NotFoundError(dst + " is multicast, link-local or not IPv6 (served by the kernel)");
  }
  for (const netlink::InterfaceAddress6& a : view_->Addresses6(0)) {
    if (a.address == remote_ip) {
      return absl::NotFoundError(dst + " is a local address (served by the kernel)");
    }
  }
  std::optional<netlink::Route6> route = view_->LookupRoute6(remote_ip);
  if (!route.has_value()) return absl::NotFoundError("no IPv6 route to " + dst);
  if (route->oif != itf_->ifindex) {
    return absl::NotFoundError(dst + " routes through another interface, which is not offloaded");
  }
  WireRoute out;
  out.interface = itf_->config.name;
  out.ifindex = itf_->ifindex;
  out.ipv6 = true;
  out.local_ip6 = local;
  out.next_hop6 = route->gateway != netlink::Ip6{} ? route->gateway : remote_ip;
  return out;
}

void KernelFeed::EnsureNeighbour6(const WireRoute& route) {
  for (const netlink::Neighbour& n : view_->Neighbours6(route.ifindex)) {
    if (n.ip6 == route.next_hop6 && n.usable()) return;
  }
  if (absl::Status s = view_->ResolveNeighbour6(route.ifindex, route.next_hop6); !s.ok()) {
    spdlog::warn("wire: cannot ask the kernel to resolve {}: {}", Text6(route.next_hop6),
                 std::string(s.message()));
  }
}

void KernelFeed::SyncIpv6() {
  // The interface's address: kept while the kernel still has it, else the
  // first usable one (or none).
  {
    const std::vector<netlink::InterfaceAddress6> v6 = view_->Addresses6(itf_->ifindex);
    std::unique_lock<std::mutex> lock6(ip6_mu_);
    netlink::Ip6 ip{};
    uint8_t len = 64;
    for (const netlink::InterfaceAddress6& a : v6) {
      if (a.address == local_ip6_) {
        ip = a.address;
        len = a.prefix_len;
        break;
      }
    }
    if (ip == netlink::Ip6{} && !v6.empty()) {
      ip = v6[0].address;
      len = v6[0].prefix_len;
    }
    if (ip != local_ip6_ || len != prefix_len6_) {
      const std::string was = local_ip6_ == netlink::Ip6{} ? "none" : Text6(local_ip6_);
      local_ip6_ = ip;
      prefix_len6_ = len;
      lock6.unlock();
      spdlog::info("wire: {}'s IPv6 address is now {} (was {})", itf_->config.name,
                   ip == netlink::Ip6{} ? "none" : absl::StrCat(Text6(ip), "/", len), was);
      const net::Ip6Addr addr = ToAddr(ip);
      ForEachStack([addr, len](stack::Stack* st) { st->SetLocalIp6(addr, len); });
    }
  }
  std::vector<netlink::Route6> routes = view_->Routes6(itf_->ifindex);
  const auto same = [](const netlink::Route6& a, const netlink::Route6& b) {
    return a.dst == b.dst && a.prefix_len == b.prefix_len && a.gateway == b.gateway;
  };
  if (routes.size() != routes6_.size() ||
      !std::equal(routes.begin(), routes.end(), routes6_.begin(), same)) {
    routes6_ = routes;
    std::vector<stack::StackRoute6> sr;
    for (const netlink::Route6& r : routes) {
      sr.push_back(stack::StackRoute6{ToAddr(r.dst), r.prefix_len, ToAddr(r.gateway)});
    }
    ForEachStack([sr](stack::Stack* st) { st->SetRoutes6(sr); });
  }
  struct Update {
    net::Ip6Addr ip;
    net::MacAddr mac;
    bool permanent;
    bool forget;
  };
  std::vector<Update> updates;
  std::map<netlink::Ip6, bool> present;
  for (const netlink::Neighbour& n : view_->Neighbours6(itf_->ifindex)) {
    if (!n.usable()) continue;
    present[n.ip6] = true;
    auto value = std::make_pair(*n.mac, n.state);
    auto it = seeded6_.find(n.ip6);
    if (it != seeded6_.end() && it->second == value) continue;
    seeded6_[n.ip6] = value;
    net::MacAddr mac;
    std::memcpy(mac.b, n.mac->data(), 6);
    updates.push_back({ToAddr(n.ip6), mac, n.state == netlink::NeighbourState::kPermanent, false});
  }
  for (auto it = seeded6_.begin(); it != seeded6_.end();) {
    if (present.count(it->first) != 0) {
      ++it;
      continue;
    }
    updates.push_back({ToAddr(it->first), net::MacAddr{}, false, true});
    it = seeded6_.erase(it);
  }
  if (updates.empty()) return;
  ForEachStack([updates](stack::Stack* st) {
    for (const Update& u : updates) {
      if (u.forget) {
        st->ForgetNeighbor6(u.ip);
      } else {
        st->SeedNeighbor6(u.ip, u.mac, u.permanent);
      }
    }
  });
}

}  // namespace offload::wire
