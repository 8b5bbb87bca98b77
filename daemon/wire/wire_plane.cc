// The wire plane's start-up, statistics, routing query and TCP flows (see
// wire_plane.h); its UDP sockets are in wire_plane_udp.cc.

#include "daemon/wire/wire_plane.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/common/errors.h"
#include "daemon/engine/stack_processor.h"
#include "daemon/tcp/cc/cc.h"
#include "daemon/wire/config_mapping.h"
#include "daemon/wire/engine_flows.h"
#include "daemon/wire/family.h"
#include "daemon/wire/interface.h"
#include "daemon/wire/steering.h"
#include "spdlog/spdlog.h"

namespace offload::wire {

WirePlane::WirePlane() = default;

WirePlane::~WirePlane() { Stop(); }

absl::StatusOr<std::unique_ptr<WirePlane>> WirePlane::Create(
    const v1::DaemonConfig& config) {
  return Create(config, WireSeams{});
}

absl::StatusOr<std::unique_ptr<WirePlane>> WirePlane::Create(
    const v1::DaemonConfig& config, WireSeams seams) {
  std::unique_ptr<WirePlane> plane(new WirePlane());
  if (absl::Status s = plane->Open(config, std::move(seams)); !s.ok()) {
    plane->Stop();
    return s;
  }
  return plane;
}

absl::Status WirePlane::Open(const v1::DaemonConfig& config, WireSeams seams) {
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

  if (seams.routes != nullptr) {
    netlink_ = std::move(seams.routes);
  } else {
    absl::StatusOr<std::unique_ptr<NetlinkRouteSource>> view = NetlinkRouteSource::Create();
    if (!view.ok()) return Annotate(view.status(), "cannot read the kernel's routing tables");
    netlink_ = std::move(*view);
  }
  absl::StatusOr<std::unique_ptr<OffloadedInterface>> itf =
      BringUpInterface(*nic_config, *netlink_, std::move(seams.driver));
  if (!itf.ok()) return itf.status();
  interface_ = std::move(*itf);
  kernel_ = std::make_unique<KernelFeed>(netlink_.get(), interface_.get());
  steering_ = std::make_unique<Steering>(interface_->driver.get());
  const nic::InterfaceInfo& info = interface_->driver->info();

  if (engine_config->num_cores > 1 && info.driver == nic::DriverKind::kAfXdp &&
      info.num_queues > 1) {
    spdlog::warn(
        "interface {}: {} engines share {} queues; a flow must arrive on its engine's "
        "queue, which needs n-tuple steering on the NIC (RSS alone may deliver it to "
        "another engine)",
        name, engine_config->num_cores, info.num_queues);
  }

  stack::StackConfig stack_config = ToStackConfig(config);
  kernel_->ConfigureStacks(&stack_config);  // sysctls, gateway, the kernel's ARP
  std::memcpy(stack_config.local_mac.b, info.mac.data(), 6);
  stack_config.local_ip = interface_->local_ip;
  stack_config.prefix_len = interface_->prefix_len;
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
  std::vector<stack::Stack*> stacks;
  for (auto& f : flows_) stacks.push_back(f->stack());
  kernel_->Attach(engines_.get(), std::move(stacks));
  kernel_->Sync();
  if (absl::Status s = engines_->Start(); !s.ok()) return s;
  kernel_->MarkStarted();
  netlink_->SetChangeCallback([this](uint64_t) { kernel_->Sync(); });
  kernel_->Sync();  // changes between the first sync and the callback

  const uint32_t gw = kernel_->gateway();
  spdlog::info("wire: {} ({}, {} queue{}, {}{}) offloaded as {}/{} gw {} mtu {}, {} engine{}",
               name, nic::DriverKindName(info.driver), info.num_queues,
               info.num_queues == 1 ? "" : "s", info.zero_copy ? "zero-copy" : "copy mode",
               info.checksum_offload == nic::ChecksumOffload::kRxPartial
                   ? ", veth: partial checksums accepted"
                   : "", IpText(interface_->local_ip),
               interface_->prefix_len, gw != 0 ? IpText(gw) : "none",
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
  steering_.reset();
  kernel_.reset();
  interface_.reset();  // closes the queues, detaches the XDP program
  netlink_.reset();
}

size_t WirePlane::num_engines() const { return flows_.size(); }

stack::Stack* WirePlane::StackForTest(uint32_t engine) {
  return engine < flows_.size() ? flows_[engine]->stack() : nullptr;
}

EngineFlows* WirePlane::FlowsForTest(uint32_t engine) {
  return engine < flows_.size() ? flows_[engine].get() : nullptr;
}

uint64_t WirePlane::ReleasedFlowsForTest() const {
  return steering_ != nullptr ? steering_->released() : 0;
}

std::vector<InterfaceReport> WirePlane::Interfaces() const {
  std::vector<InterfaceReport> out;
  if (interface_ == nullptr) return out;
  const nic::InterfaceInfo& info = interface_->driver->info();
  InterfaceReport r;
  r.name = info.name;
  r.driver = info.driver;
  r.queues = info.num_queues;
  r.zero_copy = info.zero_copy;
  std::optional<netlink::Link> link = netlink_->GetLink(interface_->ifindex);
  r.link = !link.has_value() ? LinkState::kGone
           : !link->up       ? LinkState::kDown
           : !link->running  ? LinkState::kNoCarrier
                             : LinkState::kUp;
  out.push_back(std::move(r));
  return out;
}

std::vector<EngineReport> WirePlane::EngineStats() const {
  std::vector<EngineReport> out;
  if (engines_ == nullptr) return out;
  const size_t n = engines_->size();
  for (size_t e = 0; e < n; ++e) {
    engine::Engine& eng = engines_->engine(e);
    const engine::EngineCounters& c = eng.counters();
    EngineReport r;
    r.id = static_cast<uint32_t>(e);
    r.core = eng.config().core;
    r.loops = c.loops.Get();
    r.busy_polls = c.busy_polls.Get();
    r.sleeps = c.sleeps.Get();
    r.wakeups = c.wakeups.Get();
    nic::NicDriver* d = interface_->driver.get();
    for (size_t q = 0; q < d->num_queues(); ++q) {
      if (engines_->EngineForQueue(d->queue(q)->id()) != e) continue;
      r.rx_packets += d->queue(q)->counters().rx_packets.Get();
      r.tx_packets += d->queue(q)->counters().tx_packets.Get();
    }
    r.flows = flows_[e]->active_connections();
    if (const stack::Stack* st = flows_[e]->stack(); st != nullptr) {
      st->ForEachCounter([&r](const char* name, uint64_t v) { r.counters.emplace_back(name, v); });
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<QueueReport> WirePlane::NicStats() const {
  std::vector<QueueReport> out;
  if (interface_ == nullptr) return out;
  nic::NicDriver* d = interface_->driver.get();
  for (size_t q = 0; q < d->num_queues(); ++q) {
    QueueReport r;
    r.interface = d->info().name;
    r.queue = d->queue(q)->id();
    r.stats = d->queue(q)->Stats();
    r.steered_flows = steering_->steered(static_cast<uint32_t>(q));
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<WireRoute> WirePlane::RouteTo(uint32_t remote_ip, uint16_t remote_port) const {
  if (interface_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  absl::StatusOr<WireRoute> out = kernel_->RouteTo(remote_ip);
  if (!out.ok()) return out;
  // Flows spread over the engines by peer; one engine serves a flow for life.
  const uint64_t h = (uint64_t{remote_ip} << 16 | remote_port) * 0x9e3779b97f4a7c15ull;
  out->engine = static_cast<uint32_t>((h >> 32) % flows_.size());
  out->queue = flows_[out->engine]->queue();
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
  kernel_->RefreshSysctls();
  absl::StatusOr<WireRoute> route =
      p.ipv6 ? RouteTo6(p.remote_ip6, p.remote_port) : RouteTo(p.remote_ip, p.remote_port);
  if (!route.ok()) return route.status();
  const nic::FlowKey key =
      p.ipv6 ? nic::FlowKey::Connection6(nic::IpProto::kTcp, route->local_ip6, p.local_port,
                                         Bytes6(p.remote_ip6), p.remote_port)
             : nic::FlowKey::Connection(nic::IpProto::kTcp, route->local_ip, p.local_port,
                                        p.remote_ip, p.remote_port);
  // Steer first: the SYN-ACK must come to the engine, not to the kernel
  // (which would answer it with a RST).
  if (absl::Status s = steering_->Steer(route->queue, key); !s.ok()) {
    return Annotate(s, "cannot steer " + key.ToString());
  }
  kernel_->EnsureNeighbour(*route);
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
  kernel_->RefreshSysctls();
  // One engine serves a port's listener and its children: a NIC delivers a
  // connection's packets to one queue only when it can steer by 5-tuple,
  // and the listener key steers the whole port.
  const uint32_t engine = 0;
  EngineFlows* f = flows_[engine].get();
  const nic::FlowKey key = ListenKeyOf(p);
  const nic::FlowKey key4 = DualStackKey(p);  // port 0: none
  WireListener l{engine, next_cookie_.fetch_add(1, std::memory_order_relaxed)};
  auto result = std::make_shared<int>(EINVAL);
  // Steered on the engine thread, after the commands queued before this one:
  // a listener of the same port closed just before (iperf3 re-creates its
  // listener after every test) unsteers the key first, not after.
  absl::Status s = engines_->engine(engine).RunSync(
      [this, f, cookie = l.cookie, p, key, key4, result] {
        if (!steering_->TrySteer(f->queue(), key)) {
          *result = EIO;
          return;
        }
        if (key4.local_port != 0 && !steering_->TrySteer(f->queue(), key4)) {
          steering_->Release(f->queue(), key);
          *result = EIO;
          return;
        }
        f->Listen(cookie, p, key, result.get());
        if (*result != 0) {
          steering_->Release(f->queue(), key);
          if (key4.local_port != 0) steering_->Release(f->queue(), key4);
        }
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

int WirePlane::DoorbellFd(uint32_t engine) const {
  if (engines_ == nullptr || engine >= engines_->size()) return -1;
  return engines_->engine(engine).doorbell().fd();
}

uint32_t WirePlane::local_ip() const {
  return interface_ != nullptr ? interface_->local_ip : 0;
}

}  // namespace offload::wire
