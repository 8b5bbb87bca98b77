// NetlinkView: the kernel's IPv6 addresses, routes and neighbours, and
// neighbour discovery requests (see netlink_view.h). The caches are the
// same as for IPv4 (libnl's route/addr, route/route and route/neigh caches
// hold every family); only the entries' family differs.

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/netlink/netlink_view.h"

namespace offload::netlink {
namespace {

// The bytes of a libnl IPv6 address, false if not IPv6.
bool ToIpv6(nl_addr* a, Ip6* out) {
  if (a == nullptr || nl_addr_get_family(a) != AF_INET6 || nl_addr_get_len(a) != 16) {
    return false;
  }
  memcpy(out->data(), nl_addr_get_binary_addr(a), 16);
  return true;
}

bool PrefixMatch(const Ip6& a, const Ip6& b, int len) {
  for (int i = 0; i < 16 && len > 0; ++i, len -= 8) {
    const uint8_t mask = len >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - len));
    if ((a[i] ^ b[i]) & mask) return false;
  }
  return true;
}

bool IsLinkLocal(const Ip6& a) { return a[0] == 0xfe && (a[1] & 0xc0) == 0x80; }

// Fills `route` from a main-table IPv6 unicast route; false otherwise.
bool ToRoute6(rtnl_route* r, Route6* route) {
  if (rtnl_route_get_family(r) != AF_INET6 || rtnl_route_get_table(r) != RT_TABLE_MAIN ||
      rtnl_route_get_type(r) != RTN_UNICAST) {
    return false;
  }
  rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
  if (nh == nullptr) return false;
  nl_addr* d = rtnl_route_get_dst(r);
  if (d != nullptr && nl_addr_get_len(d) == 16) {
    ToIpv6(d, &route->dst);
    route->prefix_len = static_cast<uint8_t>(nl_addr_get_prefixlen(d));
  }
  ToIpv6(rtnl_route_nh_get_gateway(nh), &route->gateway);
  route->oif = rtnl_route_nh_get_ifindex(nh);
  route->priority = rtnl_route_get_priority(r);
  return true;
}

}  // namespace

std::vector<InterfaceAddress6> NetlinkView::Addresses6(int ifindex) const {
  std::vector<InterfaceAddress6> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (nl_object* o = nl_cache_get_first(addrs_); o != nullptr; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_family(a) != AF_INET6) continue;
    if (ifindex != 0 && rtnl_addr_get_ifindex(a) != ifindex) continue;
    // RFC 4862 5.4: a tentative address is not usable until DAD passed.
    const unsigned flags = rtnl_addr_get_flags(a);
    if (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED)) continue;
    if (rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE) continue;
    InterfaceAddress6 ia;
    if (!ToIpv6(rtnl_addr_get_local(a), &ia.address)) continue;
    ia.ifindex = rtnl_addr_get_ifindex(a);
    ia.prefix_len = static_cast<uint8_t>(rtnl_addr_get_prefixlen(a));
    out.push_back(ia);
  }
  return out;
}

std::vector<Route6> NetlinkView::Routes6(int ifindex) const {
  std::vector<Route6> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (nl_object* o = nl_cache_get_first(routes_); o != nullptr; o = nl_cache_get_next(o)) {
    Route6 route;
    if (!ToRoute6(reinterpret_cast<rtnl_route*>(o), &route)) continue;
    if (route.oif != ifindex || (route.prefix_len > 0 && IsLinkLocal(route.dst))) continue;
    out.push_back(route);
  }
  return out;
}

std::optional<Route6> NetlinkView::LookupRoute6(const Ip6& dst) const {
  std::optional<Route6> best;
  std::lock_guard<std::mutex> lock(mu_);
  for (nl_object* o = nl_cache_get_first(routes_); o != nullptr; o = nl_cache_get_next(o)) {
    Route6 route;
    if (!ToRoute6(reinterpret_cast<rtnl_route*>(o), &route)) continue;
    if (!PrefixMatch(dst, route.dst, route.prefix_len)) continue;
    if (best.has_value() && (route.prefix_len < best->prefix_len ||
                             (route.prefix_len == best->prefix_len &&
                              route.priority >= best->priority))) {
      continue;
    }
    best = route;
  }
  return best;
}

std::vector<Neighbour> NetlinkView::Neighbours6(int ifindex) const {
  return ListNeighbours(ifindex, AF_INET6);
}

bool NetlinkView::ResolveNeighbourAsync6(int ifindex, const Ip6& ip) {
  AsyncRequest r;
  r.ifindex = ifindex;
  r.v6 = true;
  r.ip6 = ip;
  return QueueAsync(r);
}

absl::Status NetlinkView::ResolveNeighbour6(int ifindex, const Ip6& ip) {
  return RequestNeighbour(ifindex, AF_INET6, ip.data(), 16);
}

}  // namespace offload::netlink
