// NetlinkView: IPv4 lookups in the kernel view (links, addresses, routes,
// neighbours) and neighbour state names. Keeping the caches in sync and
// neighbour resolution requests are netlink_view.cc; IPv6 netlink_view6.cc.

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <net/if.h>

#include <cstring>

#include "daemon/netlink/netlink_view.h"

namespace offload::netlink {
namespace {

// Host-order IPv4 of a libnl address, false if not IPv4.
bool ToIpv4(nl_addr* a, uint32_t* out) {
  if (a == nullptr || nl_addr_get_family(a) != AF_INET ||
      nl_addr_get_len(a) != 4) {
    return false;
  }
  uint32_t be;
  memcpy(&be, nl_addr_get_binary_addr(a), 4);
  *out = ntohl(be);
  return true;
}

uint32_t PrefixMask(int len) {
  return len <= 0 ? 0 : len >= 32 ? 0xffffffffu : ~0u << (32 - len);
}

NeighbourState ToState(int nud) {
  if (nud & NUD_PERMANENT) return NeighbourState::kPermanent;
  if (nud & NUD_NOARP) return NeighbourState::kNoArp;
  if (nud & NUD_REACHABLE) return NeighbourState::kReachable;
  if (nud & NUD_STALE) return NeighbourState::kStale;
  if (nud & NUD_DELAY) return NeighbourState::kDelay;
  if (nud & NUD_PROBE) return NeighbourState::kProbe;
  if (nud & NUD_INCOMPLETE) return NeighbourState::kIncomplete;
  if (nud & NUD_FAILED) return NeighbourState::kFailed;
  return NeighbourState::kNone;
}

}  // namespace

const char* NeighbourStateName(NeighbourState s) {
  switch (s) {
    case NeighbourState::kIncomplete:
      return "incomplete";
    case NeighbourState::kReachable:
      return "reachable";
    case NeighbourState::kStale:
      return "stale";
    case NeighbourState::kDelay:
      return "delay";
    case NeighbourState::kProbe:
      return "probe";
    case NeighbourState::kFailed:
      return "failed";
    case NeighbourState::kPermanent:
      return "permanent";
    case NeighbourState::kNoArp:
      return "noarp";
    case NeighbourState::kNone:
      return "none";
  }
  return "?";
}

std::optional<Link> NetlinkView::GetLink(int ifindex) const {
  std::lock_guard<std::mutex> lock(mu_);
  rtnl_link* l = rtnl_link_get(links_, ifindex);
  if (l == nullptr) return std::nullopt;
  Link out;
  out.ifindex = ifindex;
  const char* name = rtnl_link_get_name(l);
  out.name = name != nullptr ? name : "";
  const unsigned flags = rtnl_link_get_flags(l);
  out.up = (flags & IFF_UP) != 0;
  out.running = (flags & IFF_RUNNING) != 0;
  out.mtu = rtnl_link_get_mtu(l);
  nl_addr* ll = rtnl_link_get_addr(l);
  if (ll != nullptr && nl_addr_get_len(ll) == 6) {
    std::array<uint8_t, 6> mac;
    memcpy(mac.data(), nl_addr_get_binary_addr(ll), 6);
    out.mac = mac;
  }
  rtnl_link_put(l);
  return out;
}

std::vector<Neighbour> NetlinkView::Neighbours(int ifindex) const {
  return ListNeighbours(ifindex, AF_INET);
}

std::vector<Neighbour> NetlinkView::ListNeighbours(int ifindex, int family) const {
  std::vector<Neighbour> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (nl_object* o = nl_cache_get_first(neighs_); o != nullptr;
       o = nl_cache_get_next(o)) {
    auto* n = reinterpret_cast<rtnl_neigh*>(o);
    if (rtnl_neigh_get_family(n) != family) continue;
    if (ifindex != 0 && rtnl_neigh_get_ifindex(n) != ifindex) continue;
    Neighbour nb;
    nl_addr* dst = rtnl_neigh_get_dst(n);
    if (family == AF_INET ? !ToIpv4(dst, &nb.ip)
                          : (dst == nullptr || nl_addr_get_len(dst) != 16)) {
      continue;
    }
    if (family == AF_INET6) memcpy(nb.ip6.data(), nl_addr_get_binary_addr(dst), 16);
    nb.ifindex = rtnl_neigh_get_ifindex(n);
    nb.state = ToState(rtnl_neigh_get_state(n));
    nl_addr* ll = rtnl_neigh_get_lladdr(n);
    if (ll != nullptr && nl_addr_get_len(ll) == 6) {
      std::array<uint8_t, 6> mac;
      memcpy(mac.data(), nl_addr_get_binary_addr(ll), 6);
      nb.mac = mac;
    }
    out.push_back(nb);
  }
  return out;
}

int NetlinkView::IfIndex(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return rtnl_link_name2i(links_, name.c_str());
}

std::vector<InterfaceAddress> NetlinkView::Addresses(int ifindex) const {
  std::vector<InterfaceAddress> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (nl_object* o = nl_cache_get_first(addrs_); o != nullptr;
       o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_family(a) != AF_INET) continue;
    if (ifindex != 0 && rtnl_addr_get_ifindex(a) != ifindex) continue;
    InterfaceAddress ia;
    if (!ToIpv4(rtnl_addr_get_local(a), &ia.address)) continue;
    ia.ifindex = rtnl_addr_get_ifindex(a);
    ia.prefix_len = static_cast<uint8_t>(rtnl_addr_get_prefixlen(a));
    out.push_back(ia);
  }
  return out;
}

std::optional<Route> NetlinkView::LookupRoute(uint32_t dst) const {
  std::optional<Route> best;
  std::lock_guard<std::mutex> lock(mu_);
  for (nl_object* o = nl_cache_get_first(routes_); o != nullptr;
       o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_family(r) != AF_INET ||
        rtnl_route_get_table(r) != RT_TABLE_MAIN ||
        rtnl_route_get_type(r) != RTN_UNICAST) {
      continue;
    }
    Route route;
    nl_addr* d = rtnl_route_get_dst(r);
    if (d != nullptr && nl_addr_get_len(d) == 4) {
      ToIpv4(d, &route.dst);
      route.prefix_len = static_cast<uint8_t>(nl_addr_get_prefixlen(d));
    }
    const uint32_t mask = PrefixMask(route.prefix_len);
    if ((dst & mask) != (route.dst & mask)) continue;
    route.priority = rtnl_route_get_priority(r);
    if (best.has_value() && (route.prefix_len < best->prefix_len ||
                             (route.prefix_len == best->prefix_len &&
                              route.priority >= best->priority))) {
      continue;
    }
    // Multipath routes: the first next hop (the kernel hashes flows across
    // them; offload keeps a flow on one path, which is what matters).
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
    if (nh == nullptr) continue;
    ToIpv4(rtnl_route_nh_get_gateway(nh), &route.gateway);
    route.oif = rtnl_route_nh_get_ifindex(nh);
    ToIpv4(rtnl_route_get_pref_src(r), &route.pref_src);
    best = route;
  }
  return best;
}

std::vector<Route> NetlinkView::Routes(int ifindex) const {
  std::vector<Route> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (nl_object* o = nl_cache_get_first(routes_); o != nullptr; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_family(r) != AF_INET || rtnl_route_get_table(r) != RT_TABLE_MAIN ||
        rtnl_route_get_type(r) != RTN_UNICAST) {
      continue;
    }
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
    if (nh == nullptr || rtnl_route_nh_get_ifindex(nh) != ifindex) continue;
    Route route;
    nl_addr* d = rtnl_route_get_dst(r);
    if (d != nullptr && nl_addr_get_len(d) == 4) {
      ToIpv4(d, &route.dst);
      route.prefix_len = static_cast<uint8_t>(nl_addr_get_prefixlen(d));
    }
    route.dst &= PrefixMask(route.prefix_len);
    ToIpv4(rtnl_route_nh_get_gateway(nh), &route.gateway);
    route.oif = ifindex;
    ToIpv4(rtnl_route_get_pref_src(r), &route.pref_src);
    route.priority = rtnl_route_get_priority(r);
    out.push_back(route);
  }
  return out;
}

std::optional<Neighbour> NetlinkView::LookupNeighbour(int ifindex,
                                                      uint32_t ip) const {
  uint32_t be = htonl(ip);
  nl_addr* addr = nl_addr_build(AF_INET, &be, 4);
  if (addr == nullptr) return std::nullopt;
  std::optional<Neighbour> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rtnl_neigh* n = rtnl_neigh_get(neighs_, ifindex, addr);
    if (n != nullptr) {
      Neighbour nb;
      nb.ifindex = ifindex;
      nb.ip = ip;
      nb.state = ToState(rtnl_neigh_get_state(n));
      nl_addr* ll = rtnl_neigh_get_lladdr(n);
      if (ll != nullptr && nl_addr_get_len(ll) == 6) {
        std::array<uint8_t, 6> mac;
        memcpy(mac.data(), nl_addr_get_binary_addr(ll), 6);
        nb.mac = mac;
      }
      out = nb;
      rtnl_neigh_put(n);
    }
  }
  nl_addr_put(addr);
  return out;
}

}  // namespace offload::netlink
