// The kernel's routes, neighbours and TCP sysctls fed to the engines'
// stacks, and the routing queries (see kernel_feed.h).

#include "daemon/wire/kernel_feed.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "daemon/engine/packet_processor.h"
#include "daemon/stack/stack.h"
#include "spdlog/spdlog.h"

namespace offload::wire {
namespace {

// The default gateway when the kernel's default route leaves through
// `ifindex`, else 0.
uint32_t DefaultGateway(const RouteSource& view, int ifindex) {
  std::optional<netlink::Route> def = view.LookupRoute(0);
  return def.has_value() && def->prefix_len == 0 && def->oif == ifindex ? def->gateway : 0;
}

}  // namespace

// The stacks' neighbour resolution: the kernel's ARP, asked through
// netlink (RTM_NEWNEIGH with NTF_USE) from the engine threads without
// blocking; answers come back through the neighbour feed (Sync), which
// the view also runs after handing the requests over (an entry the kernel
// already had produces no notification).
class KernelFeed::Requester : public stack::NeighborRequester {
 public:
  explicit Requester(KernelFeed* feed) : feed_(feed) {}
  void RequestResolution(uint32_t ip) override {
    {
      std::lock_guard<std::mutex> lock(feed_->asked_mu_);
      if (feed_->asked_.size() < kMaxAsked) feed_->asked_.push_back(ip);  // reserved
    }
    feed_->view_->ResolveNeighbourAsync(feed_->itf_->ifindex, ip);
  }
  void RequestResolution6(const net::Ip6Addr& ip) override {
    netlink::Ip6 a;
    std::memcpy(a.data(), ip.b, 16);
    feed_->view_->ResolveNeighbourAsync6(feed_->itf_->ifindex, a);
  }

 private:
  KernelFeed* const feed_;
};

KernelFeed::KernelFeed(RouteSource* view, const OffloadedInterface* itf)
    : view_(view),
      itf_(itf),
      requester_(std::make_unique<Requester>(this)),
      gateway_(DefaultGateway(*view, itf->ifindex)) {
  asked_.reserve(kMaxAsked);
  const std::vector<netlink::InterfaceAddress6> v6 = view->Addresses6(itf->ifindex);
  if (!v6.empty()) {
    local_ip6_ = v6[0].address;
    prefix_len6_ = v6[0].prefix_len;
  }
}

KernelFeed::~KernelFeed() = default;

void KernelFeed::ConfigureStacks(stack::StackConfig* config) {
  std::lock_guard<std::mutex> lock(sysctl_mu_);
  // The namespace's TCP sysctls, as Linux applies them (stack/sysctl.h).
  std::vector<std::string> bad_sysctls;
  sysctl_last_ = stack::ReadTcpSysctls("/proc/sys", &bad_sysctls);
  for (const std::string& f : bad_sysctls) spdlog::warn("wire: cannot parse {}; using its default", f);
  stack::ApplyTcpSysctls(sysctl_last_, &config->tcp);
  config->max_syn_backlog = std::max<uint32_t>(sysctl_last_.max_syn_backlog, 1);
  tcp_config_ = config->tcp;
  sysctl_read_ns_ = static_cast<uint64_t>(engine::MonotonicNowNs());
  config->neighbours = requester_.get();
  config->gateway = gateway();
  std::lock_guard<std::mutex> lock6(ip6_mu_);
  std::memcpy(config->local_ip6.b, local_ip6_.data(), 16);
  config->prefix_len6 = prefix_len6_;
}

void KernelFeed::Attach(engine::EngineSet* engines, std::vector<stack::Stack*> stacks) {
  std::lock_guard<std::mutex> lock(mu_);
  engines_ = engines;
  stacks_ = std::move(stacks);
}

void KernelFeed::MarkStarted() {
  std::lock_guard<std::mutex> lock(mu_);
  started_ = true;
}

void KernelFeed::Sync() {
  std::lock_guard<std::mutex> lock(mu_);
  if (engines_ == nullptr) return;
  SyncRoutes();
  SyncIpv6();
  {
    // Asked for by a stack: seeded again if the kernel has it (see asked_).
    std::lock_guard<std::mutex> lock(asked_mu_);
    for (uint32_t ip : asked_) seeded_.erase(ip);
    asked_.clear();
  }
  struct Update {
    uint32_t ip;
    net::MacAddr mac;
    bool permanent;
    bool forget;  // the kernel deleted the entry or it became unusable
  };
  std::vector<Update> updates;
  std::map<uint32_t, bool> present;
  for (const netlink::Neighbour& n : view_->Neighbours(itf_->ifindex)) {
    if (!n.usable()) continue;
    present[n.ip] = true;
    auto value = std::make_pair(*n.mac, n.state);
    auto it = seeded_.find(n.ip);
    if (it != seeded_.end() && it->second == value) continue;
    seeded_[n.ip] = value;
    net::MacAddr mac;
    std::memcpy(mac.b, n.mac->data(), 6);
    // Permanent entries never age in the stack either: the kernel's table
    // is the truth.
    updates.push_back({n.ip, mac, n.state == netlink::NeighbourState::kPermanent, false});
  }
  for (auto it = seeded_.begin(); it != seeded_.end();) {
    if (present.count(it->first) != 0) {
      ++it;
      continue;
    }
    updates.push_back({it->first, net::MacAddr{}, false, true});
    it = seeded_.erase(it);
  }
  if (updates.empty()) return;
  ForEachStack([updates](stack::Stack* st) {
    for (const Update& u : updates) {
      if (u.forget) {
        st->ForgetNeighbor(u.ip);
      } else {
        st->SeedNeighbor(u.ip, u.mac, u.permanent);
      }
    }
  });
}

void KernelFeed::SyncRoutes() {
  std::vector<stack::StackRoute> routes;
  for (const netlink::Route& r : view_->Routes(itf_->ifindex)) {
    routes.push_back(stack::StackRoute{r.dst, r.prefix_len, r.gateway});
  }
  const uint32_t gw = DefaultGateway(*view_, itf_->ifindex);
  if (gw != gateway_.load()) {
    spdlog::info("wire: default gateway of {} is now {}", itf_->config.name,
                 gw != 0 ? IpText(gw) : "none");
    gateway_.store(gw);
  }
  auto same = [](const stack::StackRoute& a, const stack::StackRoute& b) {
    return a.dst == b.dst && a.prefix_len == b.prefix_len && a.gateway == b.gateway;
  };
  if (routes.size() == routes_.size() &&
      std::equal(routes.begin(), routes.end(), routes_.begin(), same)) {
    return;
  }
  routes_ = routes;
  ForEachStack([routes](stack::Stack* st) { st->SetRoutes(routes); });
}

void KernelFeed::RefreshSysctls() {
  std::lock_guard<std::mutex> lock(sysctl_mu_);
  const uint64_t now = static_cast<uint64_t>(engine::MonotonicNowNs());
  if (engines_ == nullptr || now - sysctl_read_ns_ < 100'000'000) return;
  sysctl_read_ns_ = now;
  const stack::TcpSysctls s = stack::ReadTcpSysctls("/proc/sys");
  if (s == sysctl_last_) return;
  sysctl_last_ = s;
  stack::ApplyTcpSysctls(s, &tcp_config_);
  spdlog::info("wire: the namespace's TCP sysctls changed; new connections follow them");
  for (size_t e = 0; e < stacks_.size(); ++e) {
    stack::Stack* st = stacks_[e];
    engines_->engine(e).Post([st, cfg = tcp_config_] { st->SetTcpConfig(cfg); });
  }
}

absl::StatusOr<WireRoute> KernelFeed::RouteTo(uint32_t remote_ip) const {
  const OffloadedInterface& itf = *itf_;
  const std::string dst = IpText(remote_ip);
  for (const netlink::InterfaceAddress& a : view_->Addresses(0)) {
    if (a.address == remote_ip) {
      return absl::NotFoundError(dst + " is a local address (served by the kernel)");
    }
  }
  std::optional<netlink::Route> route = view_->LookupRoute(remote_ip);
  if (!route.has_value()) return absl::NotFoundError("no route to " + dst);
  if (route->oif != itf.ifindex) {
    std::optional<netlink::Link> link = view_->GetLink(route->oif);
    return absl::NotFoundError(absl::StrCat(dst, " routes through ",
                                            link.has_value() ? link->name : "another interface",
                                            ", which is not offloaded"));
  }
  if (route->pref_src != 0 && route->pref_src != itf.local_ip) {
    return absl::NotFoundError(absl::StrCat("the route to ", dst, " prefers source ",
                                            IpText(route->pref_src), ", not the offloaded address ",
                                            IpText(itf.local_ip)));
  }
  const bool on_subnet = ((remote_ip ^ itf.local_ip) & PrefixMask(itf.prefix_len)) == 0;
  // The subnet's directed broadcast address is the kernel's (SO_BROADCAST,
  // RFC 919/922); so are limited broadcast and multicast.
  if ((on_subnet && itf.prefix_len < 31 && (remote_ip | PrefixMask(itf.prefix_len)) == ~0u) ||
      remote_ip == ~0u || (remote_ip >> 28) == 0xe) {
    return absl::NotFoundError(dst + " is a broadcast or multicast address (served by the kernel)");
  }
  // The stacks follow the kernel's routes through the interface (Sync),
  // so any next hop on it serves: the gateway, or the destination on-link.
  WireRoute out;
  out.interface = itf.config.name;
  out.ifindex = itf.ifindex;
  out.local_ip = itf.local_ip;
  out.next_hop = route->gateway != 0 ? route->gateway : remote_ip;
  return out;
}

absl::Status KernelFeed::RouteMulticast(uint32_t group, uint32_t if_addr, int ifindex) const {
  const OffloadedInterface& itf = *itf_;
  if (!nic::IsMulticast(group)) return absl::NotFoundError(IpText(group) + " is not a group");
  if (ifindex != 0 && ifindex != itf.ifindex) {
    return absl::NotFoundError(absl::StrCat("interface index ", ifindex, " is not ",
                                            itf.config.name, " (offloaded)"));
  }
  if (if_addr != 0 && if_addr != itf.local_ip) {
    return absl::NotFoundError(absl::StrCat("interface address ", IpText(if_addr), " is not ",
                                            IpText(itf.local_ip), " (offloaded)"));
  }
  if (ifindex != 0 || if_addr != 0) return absl::OkStatus();
  // No interface named: the kernel picks it by routing the group.
  std::optional<netlink::Route> route = view_->LookupRoute(group);
  if (!route.has_value()) return absl::NotFoundError("no route to " + IpText(group));
  if (route->oif != itf.ifindex) {
    return absl::NotFoundError(absl::StrCat("the kernel routes ", IpText(group),
                                            " through another interface than ", itf.config.name));
  }
  return absl::OkStatus();
}

void KernelFeed::EnsureNeighbour(const WireRoute& route) {
  if (route.ipv6) return EnsureNeighbour6(route);
  // The kernel does ARP (replies to the engine's own requests would go to
  // the kernel): ask it to resolve the next hop; the answer reaches the
  // stacks through the neighbour feed.
  std::optional<netlink::Neighbour> nb = view_->LookupNeighbour(route.ifindex, route.next_hop);
  if (!nb.has_value() || !nb->usable()) {
    if (absl::Status s = view_->ResolveNeighbour(route.ifindex, route.next_hop); !s.ok()) {
      spdlog::warn("wire: cannot ask the kernel to resolve {}: {}", IpText(route.next_hop),
                   std::string(s.message()));
    }
  }
}

}  // namespace offload::wire
