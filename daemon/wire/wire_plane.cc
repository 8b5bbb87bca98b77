// The wire path: NIC + engines + stacks + netlink (see header).

#include "daemon/wire/wire_plane.h"

#include <arpa/inet.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/common/errors.h"
#include "daemon/engine/stack_processor.h"
#include "daemon/nic/driver_factory.h"
#include "daemon/shm/fence.h"
#include "daemon/wire/config_mapping.h"
#include "daemon/wire/engine_udp.h"
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
  uint32_t gateway = 0;  // default route via this interface, 0 if none
  // Steered flows per queue (control plane writes, statistics read).
  std::unique_ptr<std::atomic<uint64_t>[]> steered;
  // Neighbours pushed to the stacks: ip -> (mac, state). neigh_mu_.
  std::map<uint32_t, std::pair<std::array<uint8_t, 6>, netlink::NeighbourState>>
      seeded;
};

// One engine's flows: the engine thread's table from cookie to stack flow,
// the stack's event sink, the listeners' BufferProvider, and the servant of
// the application pipes (see the header). Everything except
// active_connections() runs on the engine thread (commands posted by
// WirePlane, or the engine loop), or on the controlling thread after the
// engine stopped.
class EngineFlows : public engine::FlowEventSink, public stack::BufferProvider {
 public:
  EngineFlows(WirePlane* plane, uint32_t engine, uint32_t queue)
      : plane_(plane), engine_(engine), queue_(queue) {}

  void set_stack(stack::Stack* stack) {
    stack_ = stack;
    udp_.set_stack(stack);
  }
  stack::Stack* stack() { return stack_; }
  uint32_t queue() const { return queue_; }
  uint64_t active_connections() const {
    return active_.load(std::memory_order_relaxed);
  }

  // Engine thread (command). On failure the owner hears about it (listener
  // or the pipe's connect_status) and the flow is unsteered.
  void Connect(uint64_t cookie, const TcpConnectParams& p, const nic::FlowKey& key) {
    stack::FlowId id = stack::kInvalidFlow;
    const tcp::RingMemory tx = p.pipe != nullptr ? p.pipe->TxMemory() : p.tx;
    const tcp::RingMemory rx = p.pipe != nullptr ? p.pipe->RxMemory() : p.rx;
    int err = stack_->TcpConnect(p.remote_ip, p.remote_port, p.local_port, tx, rx, cookie, &id);
    if (err != 0) {
      if (p.pipe != nullptr) {
        // Pairs with the connector's load-acquire in its connect().
        p.pipe->header()->connect_status.store(err, std::memory_order_release);
        p.pipe->KickApp();
      }
      if (p.listener != nullptr) p.listener->OnTcpEvents(tcp::kEventError | tcp::kEventClosed, err);
      plane_->FlowGone(queue_, key);
      return;
    }
    Entry e;
    e.id = id;
    e.listener = p.listener;
    e.key = key;
    e.pipe = p.pipe;
    e.connect_pending = p.pipe != nullptr;
    Insert(cookie, std::move(e));
  }

  void Listen(uint64_t cookie, const TcpListenParams& p, const nic::FlowKey& key, int* result) {
    stack::FlowId id = stack::kInvalidFlow;
    *result = stack_->TcpListen(p.local_ip, p.port, p.backlog, cookie, &id);
    if (*result == 0) listeners_[cookie] = ListenEntry{id, p, key};
  }
  void CloseListener(uint64_t cookie) {
    auto it = listeners_.find(cookie);
    if (it == listeners_.end()) return;
    stack_->TcpClose(it->second.id);  // resets the children not accepted
    plane_->FlowGone(queue_, it->second.key);
    listeners_.erase(it);
  }

  void Send(uint64_t cookie, bool more) {
    if (Entry* e = Find(cookie)) stack_->TcpSend(e->id, more);
  }
  void ReceiveCredit(uint64_t cookie) {
    if (Entry* e = Find(cookie)) stack_->TcpReceiveCredit(e->id);
  }
  void Close(uint64_t cookie, bool abort) {
    auto it = flows_.find(cookie);
    if (it == flows_.end()) return;
    Entry& e = it->second;
    if (e.pipe != nullptr && !abort) PollPipe(e);  // the application's last bytes and shutdown
    if (abort) {
      stack_->TcpAbort(e.id);
    } else {
      stack_->TcpClose(e.id);
    }
    Entry closing = e;
    if (closing.pipe != nullptr) closing.pipe->CloseAppEfd();  // nobody to wake any more
    Erase(it);
    closing_.push_back(std::move(closing));  // keeps the pipe mapped while the stack uses it
    OnPoll();  // an already closed connection is gone right away
  }

  // UDP endpoints (engine thread, commands).
  void BindUdp(uint64_t cookie, const UdpBindParams& p, int* result) {
    *result = udp_.Bind(cookie, p.local_ip, p.port, p.reuse, p.rings);
  }
  void CloseUdp(uint64_t cookie) { udp_.Close(cookie); }

  // BufferProvider (engine thread): every SYN that creates a child of one
  // of our listeners gets a fresh application pipe.
  bool AllocateRings(uint64_t listener_cookie, tcp::RingMemory* tx,
                     tcp::RingMemory* rx) override {
    auto l = listeners_.find(listener_cookie);
    if (l == listeners_.end()) return false;
    absl::StatusOr<std::shared_ptr<AppPipe>> pipe =
        AppPipe::Create(l->second.params.pipe_capacity, 1, 0);
    if (!pipe.ok()) {
      if (alloc_failures_++ % 1024 == 0) {
        spdlog::warn("wire: refusing a connection on port {}: {}", l->second.params.port,
                     std::string(pipe.status().message()));
      }
      return false;
    }
    *tx = (*pipe)->TxMemory();
    *rx = (*pipe)->RxMemory();
    unaccepted_[tx->base] = std::move(*pipe);
    return true;
  }
  void ReleaseRings(const tcp::RingMemory& tx, const tcp::RingMemory&) override {
    unaccepted_.erase(tx.base);  // accepted children hold their own reference
  }

  // FlowEventSink (engine thread).
  void OnFlowEvents(const stack::FlowEvent* events, size_t n) override {
    for (size_t i = 0; i < n; ++i) {
      const stack::FlowEvent& ev = events[i];
      if (ev.kind == stack::FlowKind::kUdp) {
        udp_.OnEvent(ev);
        continue;
      }
      auto it = flows_.find(ev.cookie);
      if (it == flows_.end() || it->second.id != ev.flow) {
        auto l = listeners_.find(ev.cookie);
        if (l != listeners_.end() && l->second.id == ev.flow &&
            (ev.events & tcp::kEventAcceptable)) {
          AcceptChildren(l->second);
        }
        continue;
      }
      Entry& entry = it->second;
      if (entry.pipe != nullptr) PublishToPipe(entry, ev.events, ev.error);
      FlowListener* listener = entry.listener;
      if (ev.events & tcp::kEventClosed) {
        // The connection is gone: release the handle, give the flow back to
        // the kernel, then tell the owner (last event it receives).
        const stack::FlowId id = entry.id;
        const nic::FlowKey key = entry.key;
        Erase(it);
        stack_->TcpClose(id);
        plane_->FlowGone(queue_, key);
      }
      if (listener != nullptr) listener->OnTcpEvents(ev.events, ev.error);
    }
  }

  void OnPoll() override {
    active_.store(stack_->ActiveConnections(), std::memory_order_relaxed);
    for (size_t i = 0; i < closing_.size();) {
      uint32_t lip, rip;
      uint16_t lport, rport;
      if (stack_->TcpGetAddresses(closing_[i].id, &lip, &lport, &rip, &rport) == 0) {
        ++i;  // still finishing (FIN exchange, TIME-WAIT)
        continue;
      }
      plane_->FlowGone(queue_, closing_[i].key);
      closing_[i] = std::move(closing_.back());
      closing_.pop_back();
    }
  }

  size_t PollApplications() override {
    if (armed_) Disarm();
    size_t work = 0;
    for (Entry* e : pipes_) work += PollPipe(*e);
    work += udp_.PollApplications();
    return work;
  }

  // The sleep side of the need-wake-up handshake for every pipe: flags,
  // one heavy fence, re-check (abi.h RingIndexes).
  bool ArmApplicationWakeups() override {
    if (pipes_.empty() && udp_.size() == 0) return false;
    udp_.SetSleepFlags();
    for (Entry* e : pipes_) {
      if (e->connect_pending) continue;
      e->pipe->to_wire().reader_needs_wakeup.store(1, std::memory_order_seq_cst);
      // Consumed RX space matters only when the window has closed enough
      // for an update to be due (receiver-side SWS avoidance, RFC 9293
      // 3.8.6.2.2); otherwise an application's receive need not wake us.
      shm::RingIndexes& fw = e->pipe->from_wire();
      if (fw.tail.load(std::memory_order_relaxed) - fw.head.load(std::memory_order_relaxed) >
          e->pipe->capacity() / 2) {
        fw.writer_needs_wakeup.store(1, std::memory_order_seq_cst);
      }
    }
    armed_ = true;
    shm::HeavyFence();
    if (udp_.RecheckAfterFence()) return true;
    for (Entry* e : pipes_) {
      if (e->connect_pending) continue;
      shm::RingIndexes& tw = e->pipe->to_wire();
      if (tw.tail.load(std::memory_order_seq_cst) != e->tx_tail_seen ||
          (!e->tx_shut_done && tw.shut.load(std::memory_order_seq_cst) != 0) ||
          e->pipe->from_wire().head.load(std::memory_order_seq_cst) != e->rx_head_seen) {
        return true;
      }
    }
    return false;
  }

  // Controlling thread, engine stopped: unsteers every flow still known.
  void UnsteerAll() {
    for (auto& [cookie, e] : flows_) plane_->FlowGone(queue_, e.key);
    for (Entry& e : closing_) plane_->FlowGone(queue_, e.key);
    for (auto& [cookie, l] : listeners_) plane_->FlowGone(queue_, l.key);
    pipes_.clear();
    udp_.Clear();
    flows_.clear();
    closing_.clear();
    listeners_.clear();
    unaccepted_.clear();
  }

 private:
  struct Entry {
    stack::FlowId id = stack::kInvalidFlow;
    FlowListener* listener = nullptr;
    nic::FlowKey key;
    std::shared_ptr<AppPipe> pipe;  // null: a raw-ring flow
    uint64_t tx_tail_seen = 0;      // application TX tail last handed to the stack
    uint64_t rx_head_seen = 0;      // application RX head last credited
    bool tx_shut_done = false;
    bool connect_pending = false;   // active open not yet published
  };
  struct ListenEntry {
    stack::FlowId id = stack::kInvalidFlow;
    TcpListenParams params;
    nic::FlowKey key;
  };

  Entry* Find(uint64_t cookie) {
    auto it = flows_.find(cookie);
    return it == flows_.end() ? nullptr : &it->second;
  }
  void Insert(uint64_t cookie, Entry e) {
    const bool pipe = e.pipe != nullptr;
    Entry& stored = flows_[cookie] = std::move(e);
    if (pipe) {
      stored.tx_tail_seen = stored.pipe->to_wire().tail.load(std::memory_order_acquire);
      stored.rx_head_seen = stored.pipe->from_wire().head.load(std::memory_order_acquire);
      pipes_.push_back(&stored);  // unordered_map nodes do not move
    }
  }
  void Erase(std::unordered_map<uint64_t, Entry>::iterator it) {
    if (it->second.pipe != nullptr) {
      for (size_t i = 0; i < pipes_.size(); ++i) {
        if (pipes_[i] == &it->second) {
          pipes_[i] = pipes_.back();
          pipes_.pop_back();
          break;
        }
      }
    }
    flows_.erase(it);
  }

  // Hands what the application did on its rings to the stack.
  size_t PollPipe(Entry& e) {
    if (e.connect_pending) return 0;
    shm::RingIndexes& tw = e.pipe->to_wire();
    // Acquire: pairs with the application's store-release of shut (after
    // its last tail) and of tail (after its data); shut first, so a seen
    // shutdown comes with every byte before it.
    const uint32_t shut = e.tx_shut_done ? 0 : tw.shut.load(std::memory_order_acquire);
    const uint64_t tail = tw.tail.load(std::memory_order_acquire);
    size_t work = 0;
    if (tail != e.tx_tail_seen) {
      e.tx_tail_seen = tail;
      stack_->TcpSend(e.id);  // validates the tail itself (tcp::TxRing)
      ++work;
    }
    if (shut != 0) {
      e.tx_shut_done = true;
      stack_->TcpShutdown(e.id, false, true);
      ++work;
    }
    // Pairs with the application's store-release of head after reading.
    const uint64_t head = e.pipe->from_wire().head.load(std::memory_order_acquire);
    if (head != e.rx_head_seen) {
      e.rx_head_seen = head;
      stack_->TcpReceiveCredit(e.id);
      ++work;
    }
    return work;
  }

  void Disarm() {
    for (Entry* e : pipes_) {
      e->pipe->to_wire().reader_needs_wakeup.store(0, std::memory_order_relaxed);
      e->pipe->from_wire().writer_needs_wakeup.store(0, std::memory_order_relaxed);
    }
    udp_.CancelSleep();
    armed_ = false;
  }

  // Turns stack events into the pipe's state and wakes the application if
  // it sleeps (or waits for its connect).
  void PublishToPipe(Entry& e, uint32_t events, int error) {
    AppPipe& p = *e.pipe;
    shm::RingIndexes& tw = p.to_wire();
    shm::RingIndexes& fw = p.from_wire();
    bool kick = false;
    if (e.connect_pending) {
      if (events & tcp::kEventConnected) {
        e.connect_pending = false;
        e.tx_tail_seen = tw.tail.load(std::memory_order_acquire);
        e.rx_head_seen = fw.head.load(std::memory_order_acquire);
        // Pairs with the connector's load-acquire in its connect().
        p.header()->connect_status.store(0, std::memory_order_release);
        kick = true;
      } else if (events & (tcp::kEventError | tcp::kEventClosed)) {
        p.header()->connect_status.store(error != 0 ? error : ECONNREFUSED,
                                         std::memory_order_release);
        p.KickApp();
        return;
      }
    }
    // Pairs with the application's load-acquire of shut once its ring is
    // empty (ByteRingConsumer), and of reader_closed before a send.
    if ((events & (tcp::kEventError | tcp::kEventClosed)) && error != 0) {
      fw.shut.store(shm::kShutRst, std::memory_order_release);
      tw.reader_closed.store(2, std::memory_order_release);
      kick = true;
    } else {
      if (events & tcp::kEventPeerFin) fw.shut.store(shm::kShutFin, std::memory_order_release);
      if (events & tcp::kEventClosed) {
        tw.reader_closed.store(1, std::memory_order_release);
        kick = true;
      }
    }
    if (!kick && (events & (tcp::kEventReadable | tcp::kEventPeerFin))) {
      // Fast side of the handshake: RX tail (stored by the stack) before
      // the flag load.
      shm::LightFence();
      kick = fw.reader_needs_wakeup.load(std::memory_order_relaxed) != 0 &&
             fw.reader_needs_wakeup.exchange(0, std::memory_order_acq_rel) != 0;
    }
    if (!kick && (events & tcp::kEventWritable)) {
      // TX head (stored by the stack's Consume) before the flag load.
      shm::LightFence();
      kick = tw.writer_needs_wakeup.load(std::memory_order_relaxed) != 0 &&
             tw.writer_needs_wakeup.exchange(0, std::memory_order_acq_rel) != 0;
    }
    if (kick) p.KickApp();
  }

  void AcceptChildren(ListenEntry& l) {
    for (int i = 0; i < 256; ++i) {
      const uint64_t cookie = plane_->next_cookie_.fetch_add(1, std::memory_order_relaxed);
      stack::FlowId child = stack::kInvalidFlow;
      if (stack_->TcpAccept(l.id, cookie, &child) != 0) return;
      tcp::RingMemory tx, rx;
      AcceptedConnection c;
      if (stack_->TcpGetRings(child, &tx, &rx) != 0 ||
          stack_->TcpGetAddresses(child, &c.local_ip, &c.local_port, &c.remote_ip,
                                  &c.remote_port) != 0) {
        stack_->TcpAbort(child);
        continue;
      }
      auto u = unaccepted_.find(tx.base);
      if (u == unaccepted_.end()) {
        stack_->TcpAbort(child);
        continue;
      }
      c.pipe = std::move(u->second);
      unaccepted_.erase(u);
      // Its own steering entry, so the connection outlives its listener.
      const nic::FlowKey key = nic::FlowKey::Connection(nic::IpProto::kTcp, c.local_ip,
                                                        c.local_port, c.remote_ip, c.remote_port);
      plane_->SteerFlow(queue_, key);
      c.flow = WireFlow{engine_, cookie};
      Entry e;
      e.id = child;
      e.key = key;
      e.pipe = c.pipe;
      Insert(cookie, std::move(e));
      l.params.sink->OnAccepted(l.params.token, c);
    }
  }

  WirePlane* const plane_;
  const uint32_t engine_;
  const uint32_t queue_;  // the engine's first queue: flows are steered here
  stack::Stack* stack_ = nullptr;
  std::unordered_map<uint64_t, Entry> flows_;
  std::vector<Entry*> pipes_;   // the flows of flows_ with an application pipe
  std::vector<Entry> closing_;  // released, protocol still finishing
  std::unordered_map<uint64_t, ListenEntry> listeners_;
  // Children's pipes until accept, by TX ring base.
  std::unordered_map<uint8_t*, std::shared_ptr<AppPipe>> unaccepted_;
  EngineUdp udp_;        // applications' UDP sockets served here
  bool armed_ = false;  // need-wake-up flags set on the pipes and UDP TX rings
  uint64_t alloc_failures_ = 0;
  std::atomic<uint64_t> active_{0};
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
  std::memcpy(stack_config.local_mac.b, info.mac.data(), 6);
  stack_config.local_ip = interface_->local_ip;
  stack_config.prefix_len = interface_->prefix_len;
  stack_config.gateway = interface_->gateway;
  stack_config.mtu = static_cast<uint16_t>(std::min<uint32_t>(info.mtu, 9000));

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

  spdlog::info("wire: {} ({}, {} queue{}, {}) offloaded as {}/{} gw {} mtu {}, {} engine{}", name,
               nic::DriverKindName(info.driver), info.num_queues, info.num_queues == 1 ? "" : "s",
               info.zero_copy ? "zero-copy" : "copy mode", Ip(interface_->local_ip),
               interface_->prefix_len, interface_->gateway ? Ip(interface_->gateway) : "none",
               info.mtu, num_engines, num_engines == 1 ? "" : "s");
  return absl::OkStatus();
}

void WirePlane::SyncNeighbours() {
  std::lock_guard<std::mutex> lock(neigh_mu_);
  if (interface_ == nullptr || engines_ == nullptr) return;
  std::vector<std::pair<uint32_t, net::MacAddr>> updates;
  for (const netlink::Neighbour& n : netlink_->Neighbours(interface_->ifindex)) {
    if (!n.usable()) continue;
    auto value = std::make_pair(*n.mac, n.state);
    auto it = interface_->seeded.find(n.ip);
    if (it != interface_->seeded.end() && it->second == value) continue;
    interface_->seeded[n.ip] = value;
    net::MacAddr mac;
    std::memcpy(mac.b, n.mac->data(), 6);
    updates.emplace_back(n.ip, mac);
  }
  if (updates.empty()) return;
  for (size_t e = 0; e < flows_.size(); ++e) {
    stack::Stack* st = flows_[e]->stack();
    auto seed = [st, updates] {
      for (const auto& [ip, mac] : updates) st->SeedNeighbor(ip, mac);
    };
    if (engines_started_) {
      engines_->engine(e).Post(seed);
    } else {
      seed();
    }
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
  // The stack routes on-subnet destinations directly and everything else
  // through its default gateway; offload only what the kernel routes alike.
  if (route->gateway == 0 && !on_subnet) {
    return absl::NotFoundError(absl::StrCat("the kernel routes ", dst, " on-link outside ",
                                            Ip(itf.local_ip), "/", itf.prefix_len,
                                            "; the engine cannot follow that route"));
  }
  if (route->gateway != 0 && (on_subnet || route->gateway != itf.gateway)) {
    return absl::NotFoundError(absl::StrCat("the kernel routes ", dst, " via ",
                                            Ip(route->gateway),
                                            ", not the offloaded interface's default gateway"));
  }
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
  const bool pipe_ok = p.pipe != nullptr && p.pipe->app_side() == 0;
  if (p.local_port == 0 || p.remote_port == 0 || !(raw_ok || pipe_ok)) {
    return absl::InvalidArgumentError(
        "ConnectTcp needs a kernel-reserved local port, a remote port, and an application "
        "pipe or both rings and a listener");
  }
  if (engines_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
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
  if (p.port == 0 || p.sink == nullptr) {
    return absl::InvalidArgumentError("ListenTcp needs a port and an accept sink");
  }
  if (engines_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  // One engine serves a port's listener and its children: a NIC delivers a
  // connection's packets to one queue only when it can steer by 5-tuple,
  // and the listener key steers the whole port.
  const uint32_t engine = 0;
  EngineFlows* f = flows_[engine].get();
  const nic::FlowKey key = nic::FlowKey::Listener(nic::IpProto::kTcp, p.local_ip, p.port);
  if (!SteerFlow(f->queue(), key)) {
    return absl::InternalError("cannot steer " + key.ToString() + " to the engine");
  }
  WireListener l{engine, next_cookie_.fetch_add(1, std::memory_order_relaxed)};
  auto result = std::make_shared<int>(EINVAL);
  absl::Status s = engines_->engine(engine).RunSync(
      [f, cookie = l.cookie, p, key, result] { f->Listen(cookie, p, key, result.get()); },
      absl::Seconds(5));
  if (!s.ok() || *result != 0) {
    FlowGone(f->queue(), key);
    if (!s.ok()) return s;
    if (*result == EADDRINUSE) {
      return absl::AlreadyExistsError(absl::StrCat("port ", p.port, " already listens"));
    }
    return absl::InternalError(absl::StrCat("listen on port ", p.port, ": ", strerror(*result)));
  }
  return l;
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
  if (p.local_ip != 0 && p.local_ip != interface_->local_ip) {
    return absl::InvalidArgumentError(absl::StrCat(Ip(p.local_ip), " is not the offloaded address ",
                                                   Ip(interface_->local_ip)));
  }
  // One engine serves a port: the receive key steers the whole port.
  const uint32_t engine = 0;
  EngineFlows* f = flows_[engine].get();
  WireUdp u;
  u.engine = engine;
  u.cookie = next_cookie_.fetch_add(1, std::memory_order_relaxed);
  u.steer_ip = interface_->local_ip;
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
  // Only unicast to the interface's address: broadcast and multicast to the
  // port keep reaching the shadow through the kernel.
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
  auto it = udp_steer_refs_.find({u.steer_ip, u.port});
  if (it == udp_steer_refs_.end() || --it->second > 0) return;
  udp_steer_refs_.erase(it);
  FlowGone(f->queue(), nic::FlowKey::Listener(nic::IpProto::kUdp, u.steer_ip, u.port));
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
