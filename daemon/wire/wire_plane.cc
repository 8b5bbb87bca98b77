// The wire path: NIC + engines + stacks + netlink (see header).

#include "daemon/wire/wire_plane.h"

#include <arpa/inet.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/common/errors.h"
#include "daemon/engine/stack_processor.h"
#include "daemon/nic/driver_factory.h"
#include "daemon/tcp/cc/cc.h"
#include "daemon/wire/config_mapping.h"
#include "daemon/wire/engine_flows.h"
#include "spdlog/spdlog.h"

namespace offload::wire {
namespace {

std::string Ip(uint32_t host_order) {
  in_addr a;
  a.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

uint32_t PrefixMask(uint8_t len) {
  return len == 0 ? 0 : len >= 32 ? 0xffffffffu : ~0u << (32 - len);
}

// True if the calling thread has `cap` in its effective set.
bool HasCapability(int cap) {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

constexpr char kPrivilegeHint[] =
    "offloadd needs root, or CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and "
    "CAP_IPC_LOCK, to own NIC queues (run it as root or through "
    "offloadd.service; without `interfaces` in the config it serves "
    "same-host offload unprivileged)";

}  // namespace

// The offloaded interface.
struct WirePlane::Interface {
  nic::InterfaceConfig config;
  std::unique_ptr<nic::NicDriver> driver;
  int ifindex = 0;
  uint32_t local_ip = 0;
  uint8_t prefix_len = 0;
  // Default route via this interface, 0 if none; followed live (netlink).
  std::atomic<uint32_t> gateway{0};
  // Routes pushed to the stacks (neigh_mu_).
  std::vector<stack::StackRoute> routes;
  // Steered flows per queue (control plane writes, statistics read).
  std::unique_ptr<std::atomic<uint64_t>[]> steered;
  // Neighbours pushed to the stacks: ip -> (mac, state). neigh_mu_.
  std::map<uint32_t, std::pair<std::array<uint8_t, 6>, netlink::NeighbourState>>
      seeded;
};

// The stacks' neighbour resolution: the kernel's ARP, asked through
// netlink (RTM_NEWNEIGH with NTF_USE) from the engine threads without
// blocking; answers come back through the neighbour feed (SyncNeighbours).
class WirePlane::KernelNeighbours : public stack::NeighborRequester {
 public:
  KernelNeighbours(netlink::NetlinkView* view, int ifindex) : view_(view), ifindex_(ifindex) {}
  void RequestResolution(uint32_t ip) override { view_->ResolveNeighbourAsync(ifindex_, ip); }

 private:
  netlink::NetlinkView* const view_;
  const int ifindex_;
};

WirePlane::WirePlane() = default;

WirePlane::~WirePlane() { Stop(); }

absl::StatusOr<std::unique_ptr<WirePlane>> WirePlane::Create(
    const v1::DaemonConfig& config) {
  std::unique_ptr<WirePlane> plane(new WirePlane());
  if (absl::Status s = plane->Open(config); !s.ok()) {
    plane->Stop();
    return s;
  }
  return plane;
}

absl::Status WirePlane::Open(const v1::DaemonConfig& config) {
  if (config.interfaces_size() == 0) {
    return absl::InvalidArgumentError("no interfaces to offload in the config");
  }
  if (config.interfaces_size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interfaces: ", config.interfaces_size(),
        " interfaces listed, but this offloadd serves one offloaded interface "
        "(one address per engine stack); keep one entry"));
  }
  absl::StatusOr<nic::InterfaceConfig> nic_config = ToNicConfig(config, 0);
  if (!nic_config.ok()) return nic_config.status();
  absl::StatusOr<engine::EngineSetConfig> engine_config = ToEngineSetConfig(config);
  if (!engine_config.ok()) return engine_config.status();
  const std::string& name = nic_config->name;

  if (!HasCapability(CAP_NET_ADMIN)) {
    return absl::PermissionDeniedError(
        absl::StrCat("interface ", name, ": ", kPrivilegeHint));
  }
  absl::StatusOr<std::unique_ptr<netlink::NetlinkView>> view = netlink::NetlinkView::Create();
  if (!view.ok()) return Annotate(view.status(), "cannot read the kernel's routing tables");
  netlink_ = std::move(*view);

  auto itf = std::make_unique<Interface>();
  itf->config = *nic_config;
  itf->ifindex = netlink_->IfIndex(name);
  if (itf->ifindex <= 0) {
    return absl::NotFoundError(absl::StrCat(
        "interface ", name, " does not exist in offloadd's network namespace "
        "(`ip link` lists the interfaces); fix interfaces[0].name"));
  }
  std::vector<netlink::InterfaceAddress> addrs = netlink_->Addresses(itf->ifindex);
  if (addrs.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "interface ", name, " has no IPv4 address; assign one (e.g. `ip addr add "
        "ADDR/PREFIX dev ", name, "`) before starting offloadd"));
  }
  itf->local_ip = addrs[0].address;
  itf->prefix_len = addrs[0].prefix_len;
  if (addrs.size() > 1) {
    spdlog::warn("interface {} has {} IPv4 addresses; offloading {} only", name, addrs.size(),
                 Ip(itf->local_ip));
  }
  if (std::optional<netlink::Route> def = netlink_->LookupRoute(0);
      def.has_value() && def->prefix_len == 0 && def->oif == itf->ifindex) {
    itf->gateway = def->gateway;
  }

  absl::StatusOr<std::unique_ptr<nic::NicDriver>> driver = nic::OpenDriver(itf->config);
  if (!driver.ok()) {
    absl::Status s = driver.status();
    if (s.code() == absl::StatusCode::kPermissionDenied) {
      return absl::PermissionDeniedError(
          absl::StrCat("interface ", name, ": ", s.message(), "; ", kPrivilegeHint));
    }
    return Annotate(s, absl::StrCat("interface ", name));
  }
  itf->driver = std::move(*driver);
  const nic::InterfaceInfo& info = itf->driver->info();
  itf->steered.reset(new std::atomic<uint64_t>[itf->driver->num_queues()]);
  for (size_t q = 0; q < itf->driver->num_queues(); ++q) itf->steered[q].store(0);
  interface_ = std::move(itf);

  if (engine_config->num_cores > 1 && info.driver == nic::DriverKind::kAfXdp &&
      info.num_queues > 1) {
    spdlog::warn(
        "interface {}: {} engines share {} queues; a flow must arrive on its engine's "
        "queue, which needs n-tuple steering on the NIC (RSS alone may deliver it to "
        "another engine)",
        name, engine_config->num_cores, info.num_queues);
  }

  stack::StackConfig stack_config = ToStackConfig(config);
  // The namespace's TCP sysctls, as Linux applies them (stack/sysctl.h).
  std::vector<std::string> bad_sysctls;
  sysctl_last_ = stack::ReadTcpSysctls("/proc/sys", &bad_sysctls);
  for (const std::string& f : bad_sysctls) spdlog::warn("wire: cannot parse {}; using its default", f);
  stack::ApplyTcpSysctls(sysctl_last_, &stack_config.tcp);
  stack_config.max_syn_backlog = std::max<uint32_t>(sysctl_last_.max_syn_backlog, 1);
  tcp_config_ = stack_config.tcp;
  sysctl_read_ns_ = static_cast<uint64_t>(engine::MonotonicNowNs());
  kernel_neighbours_ = std::make_unique<KernelNeighbours>(netlink_.get(), interface_->ifindex);
  stack_config.neighbours = kernel_neighbours_.get();
  std::memcpy(stack_config.local_mac.b, info.mac.data(), 6);
  stack_config.local_ip = interface_->local_ip;
  stack_config.prefix_len = interface_->prefix_len;
  stack_config.gateway = interface_->gateway;
  stack_config.mtu = static_cast<uint16_t>(std::min<uint32_t>(info.mtu, 9000));
  if (info.checksum_offload == nic::ChecksumOffload::kRxPartial) {
    stack_config.rx_l4_checksum = net::L4Checksum::kVerifyOrPartial;
  }

  const uint32_t num_engines = engine_config->num_cores;
  for (uint32_t e = 0; e < num_engines; ++e) {
    flows_.push_back(std::make_unique<EngineFlows>(this, e, e));
  }
  absl::Status factory_status;
  auto factory = [&](size_t e) -> std::unique_ptr<engine::PacketProcessor> {
    absl::StatusOr<std::unique_ptr<stack::Stack>> st =
        stack::Stack::Create(stack_config, flows_[e].get(),
                             static_cast<uint64_t>(engine::MonotonicNowNs()));
    if (!st.ok()) {
      if (factory_status.ok()) factory_status = st.status();
      return nullptr;
    }
    flows_[e]->set_stack(st->get());
    return std::make_unique<engine::StackProcessor>(std::move(*st), 0, flows_[e].get());
  };
  std::vector<nic::NicDriver*> drivers = {interface_->driver.get()};
  absl::StatusOr<std::unique_ptr<engine::EngineSet>> engines =
      engine::EngineSet::Create(*engine_config, drivers, factory);
  if (!factory_status.ok()) return Annotate(factory_status, "cannot create the engine stacks");
  if (!engines.ok()) return engines.status();
  engines_ = std::move(*engines);

  // Seed before the engines run (direct calls are safe), then follow changes.
  SyncNeighbours();
  if (absl::Status s = engines_->Start(); !s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(neigh_mu_);
    engines_started_ = true;
  }
  netlink_->SetChangeCallback([this](uint64_t) { SyncNeighbours(); });
  SyncNeighbours();  // changes between the first sync and the callback

  spdlog::info("wire: {} ({}, {} queue{}, {}{}) offloaded as {}/{} gw {} mtu {}, {} engine{}",
               name, nic::DriverKindName(info.driver), info.num_queues,
               info.num_queues == 1 ? "" : "s", info.zero_copy ? "zero-copy" : "copy mode",
               info.checksum_offload == nic::ChecksumOffload::kRxPartial
                   ? ", veth: partial checksums accepted"
                   : "", Ip(interface_->local_ip),
               interface_->prefix_len, interface_->gateway ? Ip(interface_->gateway.load()) : "none",
               info.mtu, num_engines, num_engines == 1 ? "" : "s");
  // Users compare against kernel sockets: say when those would run another
  // congestion control (BBR by default on many hosts, which reacts very
  // differently to loss).
  std::string kernel_cc;
  std::ifstream("/proc/sys/net/ipv4/tcp_congestion_control") >> kernel_cc;
  if (!kernel_cc.empty() && kernel_cc != tcp::kCubicOps.name) {
    spdlog::info("wire: offloaded TCP uses {}; kernel sockets here default to {} (a socket "
                 "that sets TCP_CONGESTION {} before connect stays on the kernel)",
                 tcp::kCubicOps.name, kernel_cc, kernel_cc);
  }
  return absl::OkStatus();
}

void WirePlane::SyncNeighbours() {
  std::lock_guard<std::mutex> lock(neigh_mu_);
  if (interface_ == nullptr || engines_ == nullptr) return;
  SyncRoutes();
  struct Update {
    uint32_t ip;
    net::MacAddr mac;
    bool permanent;
    bool forget;  // the kernel deleted the entry or it became unusable
  };
  std::vector<Update> updates;
  std::map<uint32_t, bool> present;
  for (const netlink::Neighbour& n : netlink_->Neighbours(interface_->ifindex)) {
    if (!n.usable()) continue;
    present[n.ip] = true;
    auto value = std::make_pair(*n.mac, n.state);
    auto it = interface_->seeded.find(n.ip);
    if (it != interface_->seeded.end() && it->second == value) continue;
    interface_->seeded[n.ip] = value;
    net::MacAddr mac;
    std::memcpy(mac.b, n.mac->data(), 6);
    // Permanent entries never age in the stack either: the kernel's table
    // is the truth.
    updates.push_back({n.ip, mac, n.state == netlink::NeighbourState::kPermanent, false});
  }
  for (auto it = interface_->seeded.begin(); it != interface_->seeded.end();) {
    if (present.count(it->first) != 0) {
      ++it;
      continue;
    }
    updates.push_back({it->first, net::MacAddr{}, false, true});
    it = interface_->seeded.erase(it);
  }
  if (updates.empty()) return;
  for (size_t e = 0; e < flows_.size(); ++e) {
    stack::Stack* st = flows_[e]->stack();
    auto seed = [st, updates] {
      for (const Update& u : updates) {
        if (u.forget) {
          st->ForgetNeighbor(u.ip);
        } else {
          st->SeedNeighbor(u.ip, u.mac, u.permanent);
        }
      }
    };
    if (engines_started_) {
      engines_->engine(e).Post(seed);
    } else {
      seed();
    }
  }
}

void WirePlane::SyncRoutes() {
  // The kernel's main-table routes out of the offloaded interface, and its
  // default gateway, followed live (a route added with `ip route` applies
  // to the next connection).
  std::vector<stack::StackRoute> routes;
  for (const netlink::Route& r : netlink_->Routes(interface_->ifindex)) {
    routes.push_back(stack::StackRoute{r.dst, r.prefix_len, r.gateway});
  }
  std::optional<netlink::Route> def = netlink_->LookupRoute(0);
  const uint32_t gw = def.has_value() && def->prefix_len == 0 && def->oif == interface_->ifindex
                          ? def->gateway
                          : 0;
  if (gw != interface_->gateway.load()) {
    spdlog::info("wire: default gateway of {} is now {}", interface_->config.name,
                 gw != 0 ? Ip(gw) : "none");
    interface_->gateway.store(gw);
  }
  auto same = [](const stack::StackRoute& a, const stack::StackRoute& b) {
    return a.dst == b.dst && a.prefix_len == b.prefix_len && a.gateway == b.gateway;
  };
  if (routes.size() == interface_->routes.size() &&
      std::equal(routes.begin(), routes.end(), interface_->routes.begin(), same)) {
    return;
  }
  interface_->routes = routes;
  for (size_t e = 0; e < flows_.size(); ++e) {
    stack::Stack* st = flows_[e]->stack();
    auto set = [st, routes] { st->SetRoutes(routes); };
    if (engines_started_) {
      engines_->engine(e).Post(set);
    } else {
      set();
    }
  }
}

void WirePlane::RefreshSysctls() {
  std::lock_guard<std::mutex> lock(sysctl_mu_);
  const uint64_t now = static_cast<uint64_t>(engine::MonotonicNowNs());
  if (engines_ == nullptr || now - sysctl_read_ns_ < 100'000'000) return;
  sysctl_read_ns_ = now;
  const stack::TcpSysctls s = stack::ReadTcpSysctls("/proc/sys");
  if (s == sysctl_last_) return;
  sysctl_last_ = s;
  stack::ApplyTcpSysctls(s, &tcp_config_);
  spdlog::info("wire: the namespace's TCP sysctls changed; new connections follow them");
  for (size_t e = 0; e < flows_.size(); ++e) {
    stack::Stack* st = flows_[e]->stack();
    engines_->engine(e).Post([st, cfg = tcp_config_] { st->SetTcpConfig(cfg); });
  }
}

void WirePlane::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (netlink_ != nullptr) netlink_->SetChangeCallback(nullptr);
  if (engines_ != nullptr) engines_->Stop();
  for (auto& f : flows_) f->UnsteerAll();
  engines_.reset();  // destroys the stacks
  flows_.clear();
  if (interface_ != nullptr && interface_->driver != nullptr) {
    spdlog::info("wire: detaching {}", interface_->config.name);
  }
  interface_.reset();  // closes the queues, detaches the XDP program
  netlink_.reset();
}

void WirePlane::FlowGone(uint32_t queue, const nic::FlowKey& key) {
  absl::Status s = interface_->driver->Unsteer(key);
  if (s.ok()) {
    interface_->steered[queue].fetch_sub(1, std::memory_order_relaxed);
  } else if (!absl::IsNotFound(s)) {
    spdlog::warn("wire: cannot unsteer {}: {}", key.ToString(), std::string(s.message()));
  }
  released_flows_.fetch_add(1, std::memory_order_relaxed);
}

size_t WirePlane::num_engines() const { return flows_.size(); }

uint64_t WirePlane::ReleasedFlowsForTest() const {
  return released_flows_.load(std::memory_order_relaxed);
}

std::vector<v1::InterfaceStatus> WirePlane::Interfaces() const {
  std::vector<v1::InterfaceStatus> out;
  if (interface_ == nullptr) return out;
  const nic::InterfaceInfo& info = interface_->driver->info();
  v1::InterfaceStatus s;
  s.set_name(info.name);
  s.set_driver(ToProtoDriver(info.driver));
  s.set_queues(info.num_queues);
  s.set_zero_copy(info.zero_copy);
  std::optional<netlink::Link> link = netlink_->GetLink(interface_->ifindex);
  if (!link.has_value()) {
    s.set_state("error: the interface disappeared");
  } else if (!link->up) {
    s.set_state("down");
  } else if (!link->running) {
    s.set_state("up, no carrier");
  } else {
    s.set_state("up");
  }
  out.push_back(std::move(s));
  return out;
}

std::vector<v1::EngineStats> WirePlane::EngineStats() const {
  std::vector<v1::EngineStats> out;
  if (engines_ == nullptr) return out;
  const size_t n = engines_->size();
  for (size_t e = 0; e < n; ++e) {
    engine::Engine& eng = engines_->engine(e);
    const engine::EngineCounters& c = eng.counters();
    v1::EngineStats s;
    s.set_id(static_cast<uint32_t>(e));
    s.set_cpu(eng.config().core >= 0 ? static_cast<uint32_t>(eng.config().core) : 0);
    s.set_loops(c.loops.Get());
    s.set_busy_polls(c.busy_polls.Get());
    s.set_sleeps(c.sleeps.Get());
    s.set_wakeups(c.wakeups.Get());
    uint64_t rx = 0, tx = 0;
    nic::NicDriver* d = interface_->driver.get();
    for (size_t q = 0; q < d->num_queues(); ++q) {
      if (engines_->EngineForQueue(d->queue(q)->id()) != e) continue;
      rx += d->queue(q)->counters().rx_packets.Get();
      tx += d->queue(q)->counters().tx_packets.Get();
    }
    s.set_rx_packets(rx);
    s.set_tx_packets(tx);
    s.set_flows(flows_[e]->active_connections());
    if (const stack::Stack* st = flows_[e]->stack(); st != nullptr) {
      auto* m = s.mutable_counters();
      st->ForEachCounter([m](const char* name, uint64_t v) { (*m)[name] = v; });
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<v1::NicStats> WirePlane::NicStats() const {
  std::vector<v1::NicStats> out;
  if (interface_ == nullptr) return out;
  nic::NicDriver* d = interface_->driver.get();
  for (size_t q = 0; q < d->num_queues(); ++q) {
    const nic::QueueStats st = d->queue(q)->Stats();
    auto drop = [&st](nic::DropReason r) { return st.drops[static_cast<int>(r)]; };
    v1::NicStats s;
    s.set_interface(d->info().name);
    s.set_queue(d->queue(q)->id());
    s.set_rx_packets(st.rx_packets);
    s.set_rx_bytes(st.rx_bytes);
    s.set_tx_packets(st.tx_packets);
    s.set_tx_bytes(st.tx_bytes);
    s.set_rx_drops(drop(nic::DropReason::kRxInvalidDescriptor) +
                   drop(nic::DropReason::kRxTruncated) + st.kernel_rx_dropped +
                   st.kernel_rx_invalid_descs);
    s.set_tx_drops(drop(nic::DropReason::kTxNoBuffer) + drop(nic::DropReason::kTxRingFull) +
                   drop(nic::DropReason::kTxError) + st.kernel_tx_invalid_descs);
    s.set_steered_flows(interface_->steered[q].load(std::memory_order_relaxed));
    s.set_fault_rx_drops(st.fault_rx_drops);
    s.set_fault_tx_drops(st.fault_tx_drops);
    s.set_fault_rx_reorders(st.fault_rx_reorders);
    s.set_fault_tx_reorders(st.fault_tx_reorders);
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<WireRoute> WirePlane::RouteTo(uint32_t remote_ip, uint16_t remote_port) const {
  if (interface_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  const Interface& itf = *interface_;
  const std::string dst = Ip(remote_ip);
  for (const netlink::InterfaceAddress& a : netlink_->Addresses(0)) {
    if (a.address == remote_ip) {
      return absl::NotFoundError(dst + " is a local address (served by the kernel)");
    }
  }
  std::optional<netlink::Route> route = netlink_->LookupRoute(remote_ip);
  if (!route.has_value()) return absl::NotFoundError("no route to " + dst);
  if (route->oif != itf.ifindex) {
    std::optional<netlink::Link> link = netlink_->GetLink(route->oif);
    return absl::NotFoundError(absl::StrCat(dst, " routes through ",
                                            link.has_value() ? link->name : "another interface",
                                            ", which is not offloaded"));
  }
  if (route->pref_src != 0 && route->pref_src != itf.local_ip) {
    return absl::NotFoundError(absl::StrCat("the route to ", dst, " prefers source ",
                                            Ip(route->pref_src), ", not the offloaded address ",
                                            Ip(itf.local_ip)));
  }
  const bool on_subnet = ((remote_ip ^ itf.local_ip) & PrefixMask(itf.prefix_len)) == 0;
  // The subnet's directed broadcast address is the kernel's (SO_BROADCAST,
  // RFC 919/922); so are limited broadcast and multicast.
  if ((on_subnet && itf.prefix_len < 31 && (remote_ip | PrefixMask(itf.prefix_len)) == ~0u) ||
      remote_ip == ~0u || (remote_ip >> 28) == 0xe) {
    return absl::NotFoundError(dst + " is a broadcast or multicast address (served by the kernel)");
  }
  // The stacks follow the kernel's routes through the interface (SyncRoutes),
  // so any next hop on it serves: the gateway, or the destination on-link.
  WireRoute out;
  out.interface = itf.config.name;
  out.ifindex = itf.ifindex;
  out.local_ip = itf.local_ip;
  out.next_hop = route->gateway != 0 ? route->gateway : remote_ip;
  // Flows spread over the engines by peer; one engine serves a flow for life.
  const uint64_t h = (uint64_t{remote_ip} << 16 | remote_port) * 0x9e3779b97f4a7c15ull;
  out.engine = static_cast<uint32_t>((h >> 32) % flows_.size());
  out.queue = flows_[out.engine]->queue();
  return out;
}

absl::StatusOr<WireFlow> WirePlane::ConnectTcp(const TcpConnectParams& p) {
  const bool raw_ok = p.listener != nullptr && p.tx.valid() && p.rx.valid();
  const bool pipe_ok = p.pipe != nullptr && p.pipe->app_end() == 0;
  if (p.local_port == 0 || p.remote_port == 0 || !(raw_ok || pipe_ok)) {
    return absl::InvalidArgumentError(
        "ConnectTcp needs a kernel-reserved local port, a remote port, and an application "
        "pipe or both rings and a listener");
  }
  if (engines_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  RefreshSysctls();
  absl::StatusOr<WireRoute> route = RouteTo(p.remote_ip, p.remote_port);
  if (!route.ok()) return route.status();
  const nic::FlowKey key = nic::FlowKey::Connection(nic::IpProto::kTcp, route->local_ip,
                                                    p.local_port, p.remote_ip, p.remote_port);
  // Steer first: the SYN-ACK must come to the engine, not to the kernel
  // (which would answer it with a RST).
  if (absl::Status s = interface_->driver->Steer(key, route->queue); !s.ok()) {
    return Annotate(s, "cannot steer " + key.ToString());
  }
  interface_->steered[route->queue].fetch_add(1, std::memory_order_relaxed);
  EnsureNeighbour(*route);
  WireFlow flow;
  flow.engine = route->engine;
  flow.cookie = next_cookie_.fetch_add(1, std::memory_order_relaxed);
  EngineFlows* f = flows_[flow.engine].get();
  engines_->engine(flow.engine).Post([f, cookie = flow.cookie, p, key] {
    f->Connect(cookie, p, key);
  });
  return flow;
}

void WirePlane::Send(const WireFlow& flow, bool more) {
  if (flow.engine >= flows_.size()) return;
  EngineFlows* f = flows_[flow.engine].get();
  engines_->engine(flow.engine).Post([f, cookie = flow.cookie, more] { f->Send(cookie, more); });
}

void WirePlane::ReceiveCredit(const WireFlow& flow) {
  if (flow.engine >= flows_.size()) return;
  EngineFlows* f = flows_[flow.engine].get();
  engines_->engine(flow.engine).Post([f, cookie = flow.cookie] { f->ReceiveCredit(cookie); });
}

void WirePlane::Close(const WireFlow& flow, bool abort) {
  if (flow.engine >= flows_.size() || engines_ == nullptr) return;
  EngineFlows* f = flows_[flow.engine].get();
  engines_->engine(flow.engine).Post(
      [f, cookie = flow.cookie, abort] { f->Close(cookie, abort); });
}

absl::StatusOr<WireListener> WirePlane::ListenTcp(const TcpListenParams& p) {
  if (p.port == 0 || p.target == nullptr || p.target->channel == nullptr ||
      (p.target->listener == nullptr && p.sink == nullptr)) {
    return absl::InvalidArgumentError(
        "ListenTcp needs a port, an engine channel, and an accept target or sink");
  }
  if (engines_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  RefreshSysctls();
  // One engine serves a port's listener and its children: a NIC delivers a
  // connection's packets to one queue only when it can steer by 5-tuple,
  // and the listener key steers the whole port.
  const uint32_t engine = 0;
  EngineFlows* f = flows_[engine].get();
  const nic::FlowKey key = nic::FlowKey::Listener(nic::IpProto::kTcp, p.local_ip, p.port);
  WireListener l{engine, next_cookie_.fetch_add(1, std::memory_order_relaxed)};
  auto result = std::make_shared<int>(EINVAL);
  // Steered on the engine thread, after the commands queued before this one:
  // a listener of the same port closed just before (iperf3 re-creates its
  // listener after every test) unsteers the key first, not after.
  absl::Status s = engines_->engine(engine).RunSync(
      [this, f, cookie = l.cookie, p, key, result] {
        if (!SteerFlow(f->queue(), key)) {
          *result = EIO;
          return;
        }
        f->Listen(cookie, p, key, result.get());
        if (*result != 0) FlowGone(f->queue(), key);
      },
      absl::Seconds(5));
  if (!s.ok() || *result != 0) {
    if (*result == EIO) {
      return absl::InternalError("cannot steer " + key.ToString() + " to the engine");
    }
    if (!s.ok()) return s;
    if (*result == EADDRINUSE) {
      return absl::AlreadyExistsError(absl::StrCat("port ", p.port, " already listens"));
    }
    return absl::InternalError(absl::StrCat("listen on port ", p.port, ": ", strerror(*result)));
  }
  return l;
}

void WirePlane::SetAcceptTarget(const WireListener& l, std::shared_ptr<AcceptTarget> target) {
  if (l.engine >= flows_.size() || engines_ == nullptr) return;
  EngineFlows* f = flows_[l.engine].get();
  engines_->engine(l.engine).Post(
      [f, cookie = l.cookie, target] { f->SetAcceptTarget(cookie, target); });
}

void WirePlane::SetListenerOptions(const WireListener& l, const tcp::SocketOptions& options) {
  if (l.engine >= flows_.size() || engines_ == nullptr) return;
  EngineFlows* f = flows_[l.engine].get();
  engines_->engine(l.engine).Post(
      [f, cookie = l.cookie, options] { f->SetListenerOptions(cookie, options); });
}

void WirePlane::CloseListener(const WireListener& l) {
  if (l.engine >= flows_.size() || engines_ == nullptr) return;
  EngineFlows* f = flows_[l.engine].get();
  engines_->engine(l.engine).Post([f, cookie = l.cookie] { f->CloseListener(cookie); });
}

absl::StatusOr<WireUdp> WirePlane::BindUdp(const UdpBindParams& p) {
  if (p.port == 0 || p.rings == nullptr) {
    return absl::InvalidArgumentError("BindUdp needs a kernel-reserved port and rings");
  }
  if (engines_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  const bool group_bound = nic::IsMulticast(p.local_ip);
  if (p.local_ip != 0 && p.local_ip != interface_->local_ip && !group_bound) {
    return absl::InvalidArgumentError(absl::StrCat(Ip(p.local_ip), " is not the offloaded address ",
                                                   Ip(interface_->local_ip)));
  }
  // One engine serves a port: the receive key steers the whole port.
  const uint32_t engine = 0;
  EngineFlows* f = flows_[engine].get();
  WireUdp u;
  u.engine = engine;
  u.cookie = next_cookie_.fetch_add(1, std::memory_order_relaxed);
  u.steer_ip = group_bound ? 0 : interface_->local_ip;
  u.port = p.port;
  auto result = std::make_shared<int>(EINVAL);
  absl::Status s = engines_->engine(engine).RunSync(
      [f, cookie = u.cookie, p, result] { f->BindUdp(cookie, p, result.get()); },
      absl::Seconds(5));
  if (!s.ok()) return s;
  if (*result == EADDRINUSE) {
    return absl::AlreadyExistsError(
        absl::StrCat("UDP port ", p.port, " is already served by the engine without reuse"));
  }
  if (*result != 0) {
    return absl::InternalError(absl::StrCat("UDP bind on port ", p.port, ": ", strerror(*result)));
  }
  // Only unicast to the interface's address: broadcast to the port keeps
  // reaching the shadow through the kernel; groups are steered when joined.
  if (group_bound) return u;
  const nic::FlowKey key = nic::FlowKey::Listener(nic::IpProto::kUdp, u.steer_ip, u.port);
  std::lock_guard<std::mutex> lock(udp_mu_);
  int& refs = udp_steer_refs_[{u.steer_ip, u.port}];
  if (refs == 0 && !SteerFlow(f->queue(), key)) {
    udp_steer_refs_.erase({u.steer_ip, u.port});
    engines_->engine(engine).Post([f, cookie = u.cookie] { f->CloseUdp(cookie); });
    return absl::InternalError("cannot steer " + key.ToString() + " to the engine");
  }
  ++refs;
  return u;
}

void WirePlane::CloseUdp(const WireUdp& u) {
  if (u.engine >= flows_.size() || engines_ == nullptr) return;
  EngineFlows* f = flows_[u.engine].get();
  engines_->engine(u.engine).Post([f, cookie = u.cookie] { f->CloseUdp(cookie); });
  std::lock_guard<std::mutex> lock(udp_mu_);
  if (auto g = udp_groups_.find(u.cookie); g != udp_groups_.end()) {
    for (uint32_t group : g->second) ReleaseGroupSteer(f->queue(), group, u.port);
    udp_groups_.erase(g);
  }
  if (u.steer_ip == 0) return;
  auto it = udp_steer_refs_.find({u.steer_ip, u.port});
  if (it == udp_steer_refs_.end() || --it->second > 0) return;
  udp_steer_refs_.erase(it);
  FlowGone(f->queue(), nic::FlowKey::Listener(nic::IpProto::kUdp, u.steer_ip, u.port));
}

absl::Status WirePlane::JoinUdpGroup(const WireUdp& u, uint32_t group) {
  if (!nic::IsMulticast(group)) {
    return absl::InvalidArgumentError(Ip(group) + " is not a multicast group");
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
    case EADDRINUSE: return absl::AlreadyExistsError("already a member of " + Ip(group));
    case ENOBUFS:
      return absl::ResourceExhaustedError(
          absl::StrCat("a socket joins at most ", udp::kMaxGroups, " groups on the engine"));
    case EBADF: return absl::FailedPreconditionError("the engine endpoint is gone");
    default:
      return absl::InternalError(absl::StrCat("join ", Ip(group), ": ", strerror(*result)));
  }
  std::lock_guard<std::mutex> lock(udp_mu_);
  int& refs = group_steer_refs_[{group, u.port}];
  const nic::FlowKey key = nic::FlowKey::MulticastGroup(group, u.port);
  if (refs == 0 && !SteerFlow(f->queue(), key)) {
    group_steer_refs_.erase({group, u.port});
    engines_->engine(u.engine).Post(
        [f, cookie = u.cookie, group] { f->LeaveUdpGroup(cookie, group); });
    return absl::InternalError("cannot steer " + key.ToString() + " to the engine");
  }
  ++refs;
  udp_groups_[u.cookie].push_back(group);
  return absl::OkStatus();
}

absl::Status WirePlane::LeaveUdpGroup(const WireUdp& u, uint32_t group) {
  if (u.engine >= flows_.size() || engines_ == nullptr) {
    return absl::FailedPreconditionError("the wire path is stopped");
  }
  EngineFlows* f = flows_[u.engine].get();
  {
    std::lock_guard<std::mutex> lock(udp_mu_);
    auto g = udp_groups_.find(u.cookie);
    auto it = g == udp_groups_.end() ? std::vector<uint32_t>::iterator()
                                     : std::find(g->second.begin(), g->second.end(), group);
    if (g == udp_groups_.end() || it == g->second.end()) {
      return absl::NotFoundError("not a member of " + Ip(group) + " on the engine");
    }
    g->second.erase(it);
    if (g->second.empty()) udp_groups_.erase(g);
    // Unsteer first: the group's datagrams go back to the kernel sockets.
    ReleaseGroupSteer(f->queue(), group, u.port);
  }
  engines_->engine(u.engine).Post(
      [f, cookie = u.cookie, group] { f->LeaveUdpGroup(cookie, group); });
  return absl::OkStatus();
}

void WirePlane::ReleaseGroupSteer(uint32_t queue, uint32_t group, uint16_t port) {
  auto it = group_steer_refs_.find({group, port});
  if (it == group_steer_refs_.end() || --it->second > 0) return;
  group_steer_refs_.erase(it);
  FlowGone(queue, nic::FlowKey::MulticastGroup(group, port));
}

absl::Status WirePlane::RouteMulticast(uint32_t group, uint32_t if_addr, int ifindex) const {
  if (interface_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  const Interface& itf = *interface_;
  if (!nic::IsMulticast(group)) return absl::NotFoundError(Ip(group) + " is not a group");
  if (ifindex != 0 && ifindex != itf.ifindex) {
    return absl::NotFoundError(absl::StrCat("interface index ", ifindex, " is not ",
                                            itf.config.name, " (offloaded)"));
  }
  if (if_addr != 0 && if_addr != itf.local_ip) {
    return absl::NotFoundError(absl::StrCat("interface address ", Ip(if_addr), " is not ",
                                            Ip(itf.local_ip), " (offloaded)"));
  }
  if (ifindex != 0 || if_addr != 0) return absl::OkStatus();
  // No interface named: the kernel picks it by routing the group.
  std::optional<netlink::Route> route = netlink_->LookupRoute(group);
  if (!route.has_value()) return absl::NotFoundError("no route to " + Ip(group));
  if (route->oif != itf.ifindex) {
    return absl::NotFoundError(absl::StrCat("the kernel routes ", Ip(group), " through another "
                                            "interface than ", itf.config.name));
  }
  return absl::OkStatus();
}

absl::StatusOr<WireRoute> WirePlane::RouteUdpTo(uint32_t remote_ip, uint16_t remote_port) {
  absl::StatusOr<WireRoute> route = RouteTo(remote_ip, remote_port);
  if (route.ok()) EnsureNeighbour(*route);
  return route;
}

void WirePlane::EnsureNeighbour(const WireRoute& route) {
  // The kernel does ARP (replies to the engine's own requests go to the
  // kernel): ask it to resolve the next hop; the answer reaches the stack
  // through the neighbour feed.
  std::optional<netlink::Neighbour> nb = netlink_->LookupNeighbour(route.ifindex, route.next_hop);
  if (!nb.has_value() || !nb->usable()) {
    if (absl::Status s = netlink_->ResolveNeighbour(route.ifindex, route.next_hop); !s.ok()) {
      spdlog::warn("wire: cannot ask the kernel to resolve {}: {}", Ip(route.next_hop),
                   std::string(s.message()));
    }
  }
}

uint16_t WirePlane::max_udp_payload() const {
  if (interface_ == nullptr) return 0;
  const uint32_t mtu = std::min<uint32_t>(interface_->driver->info().mtu, 9000);
  return static_cast<uint16_t>(mtu > 28 ? mtu - 28 : 0);
}

int WirePlane::DoorbellFd(uint32_t engine) const {
  if (engines_ == nullptr || engine >= engines_->size()) return -1;
  return engines_->engine(engine).doorbell().fd();
}

uint32_t WirePlane::local_ip() const {
  return interface_ != nullptr ? interface_->local_ip : 0;
}

bool WirePlane::SteerFlow(uint32_t queue, const nic::FlowKey& key) {
  absl::Status s = interface_->driver->Steer(key, queue);
  if (!s.ok()) {
    spdlog::warn("wire: cannot steer {}: {}", key.ToString(), std::string(s.message()));
    return false;
  }
  interface_->steered[queue].fetch_add(1, std::memory_order_relaxed);
  return true;
}
}  // namespace offload::wire
