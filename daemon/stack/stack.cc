// Stack core: construction, receive dispatch, transmit scheduling,
// neighbours (resolved by the kernel, see StackConfig::neighbours),
// timers and events. The TCP/UDP application API is in stack_api.cc.
#include "daemon/stack/stack.h"

#include <errno.h>
#include <sys/random.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace offload::stack {

using tcp::Tcb;
using tcp::TcpState;

namespace {
constexpr uint64_t kArpTickNs = 100'000'000;  // 100 ms
constexpr uint32_t kOutputBurst = 64;         // segments per flow per turn
constexpr uint32_t kNoIndex = 0xffffffffu;
}  // namespace

absl::StatusOr<std::unique_ptr<Stack>> Stack::Create(const StackConfig& config,
                                                     BufferProvider* provider,
                                                     uint64_t now_ns) {
  if (config.local_ip == 0) {
    return absl::InvalidArgumentError("StackConfig.local_ip must be set");
  }
  if (config.mtu < 576 || config.mtu > 9000) {
    return absl::InvalidArgumentError(
        absl::StrCat("StackConfig.mtu ", config.mtu, " is outside [576, 9000]"));
  }
  if (config.prefix_len > 32) {
    return absl::InvalidArgumentError("StackConfig.prefix_len must be <= 32");
  }
  if (config.max_concurrency == 0 || config.max_num_buffers < 16 ||
      config.max_udp_endpoints == 0) {
    return absl::InvalidArgumentError(
        "max_concurrency and max_udp_endpoints must be > 0, max_num_buffers >= 16");
  }
  if (config.ephemeral_port_lo == 0 || config.ephemeral_port_lo > config.ephemeral_port_hi) {
    return absl::InvalidArgumentError("bad ephemeral port range");
  }
  StackConfig cfg = config;
  if (cfg.isn_key.k0 == 0 && cfg.isn_key.k1 == 0) {
    uint64_t key[2];
    if (getrandom(key, sizeof(key), 0) != sizeof(key)) {
      return absl::InternalError(
          absl::StrCat("getrandom() for the ISN key failed: ", strerror(errno)));
    }
    cfg.isn_key = tcp::SecretKey{key[0], key[1]};
  }
  return std::unique_ptr<Stack>(new Stack(cfg, provider, now_ns));
}

Stack::Stack(const StackConfig& config, BufferProvider* provider, uint64_t now_ns)
    : config_(config),
      provider_(provider),
      now_ns_(now_ns),
      netmask_(config.prefix_len == 0 ? 0 : ~0u << (32 - config.prefix_len)),
      wheel_(config.timer_tick_ns, config.timer_slots, now_ns),
      arp_(config.arp),
      nd_(config.arp),
      pool_(config.max_num_buffers,
            (static_cast<uint32_t>(net::kEthHeaderLen + config.mtu) + 63) & ~63u),
      ctrl_q_(config.max_num_buffers),
      output_q_(config.max_concurrency),
      event_q_(config.max_concurrency),
      udp_event_q_(config.max_udp_endpoints),
      tcbs_(config.max_concurrency),
      conns_(config.max_concurrency),
      listeners_(config.max_concurrency),
      udp_(config.max_udp_endpoints, config.udp_rcvbuf_bytes) {
  config_.tcp.mtu = config_.mtu;
  ctx_.cfg = &config_.tcp;
  ctx_.wheel = &wheel_;
  ctx_.ctr = &tcp_ctr_;
  ctx_.host = this;
  ctx_.now_ns = now_ns;
  tcb_free_.reserve(config.max_concurrency);
  for (uint32_t i = config.max_concurrency; i > 0; --i) {
    tcbs_[i - 1].index = i - 1;
    tcb_free_.push_back(i - 1);
  }
  last_arp_tick_ns_ = now_ns;
  next_ephemeral_ = static_cast<uint32_t>(config_.isn_key.k0);
}

Stack::~Stack() {
  for (Tcb& t : tcbs_) wheel_.Cancel(&t.timer);
}

// ---------------------------------------------------------------------------
// Connection pool

Tcb* Stack::AllocTcb() {
  if (tcb_free_.empty()) return nullptr;
  uint32_t idx = tcb_free_.back();
  tcb_free_.pop_back();
  Tcb& t = tcbs_[idx];
  uint32_t gen = t.generation + 1;
  t = Tcb{};
  t.index = idx;
  t.generation = gen;
  t.in_use = true;
  t.local_mac = config_.local_mac;
  t.timer.owner = &t;
  ++tcb_used_;
  return &t;
}

void Stack::FreeTcb(Tcb* t) {
  if (!t->in_use) return;
  wheel_.Cancel(&t->timer);
  if (t->state != TcpState::kListen) {
    TupleKey k = KeyOf(*t);
    if (conns_.Find(k) == t->index) conns_.Erase(k);
  }
  if (t->provider_buffers && provider_ != nullptr) {
    // The rings are owned by the provider; hand them back.
    provider_->ReleaseRings(t->tx.memory(), t->rx.memory());
  }
  t->in_use = false;
  --tcb_used_;
  // The slot is reused only once no queue refers to it.
  if (!t->in_output_list && !t->in_event_list) tcb_free_.push_back(t->index);
}

void Stack::MaybeFree(Tcb* t) {
  if (!t->in_use || t->state != TcpState::kClosed) return;
  if (t->user_released || (t->passive && !t->accepted && !t->in_accept_queue)) FreeTcb(t);
}

Tcb* Stack::GetTcb(FlowId id) {
  uint32_t idx = static_cast<uint32_t>(id);
  uint32_t gen = static_cast<uint32_t>(id >> 32);
  if (idx >= tcbs_.size()) return nullptr;
  Tcb& t = tcbs_[idx];
  if (!t.in_use || t.generation != gen) return nullptr;
  return &t;
}

const Tcb* Stack::TcbForTest(FlowId id) const {
  return const_cast<Stack*>(this)->GetTcb(id);
}
Tcb* Stack::MutableTcbForTest(FlowId id) { return GetTcb(id); }

// ---------------------------------------------------------------------------
// TcpHost

void Stack::ScheduleOutput(Tcb* t) {
  if (t->in_output_list) return;
  t->in_output_list = true;
  output_q_.Push(t->index);  // cannot fail: one entry per TCB at most
}

void Stack::Notify(Tcb* t, uint32_t events) {
  // Released handles and not-yet-accepted children have no reader.
  if (t->user_released || (t->passive && !t->accepted)) return;
  t->pending_events |= events;
  if (!t->in_event_list) {
    t->in_event_list = true;
    event_q_.Push(t->index);
  }
}

void Stack::ChildEstablished(Tcb* t) {
  if (t->listener >= tcbs_.size()) return;
  Tcb& l = tcbs_[t->listener];
  if (l.syn_count > 0) l.syn_count--;
  t->next_in_queue = kNoIndex;
  if (l.accept_tail == kNoIndex) {
    l.accept_head = l.accept_tail = t->index;
  } else {
    tcbs_[l.accept_tail].next_in_queue = t->index;
    l.accept_tail = t->index;
  }
  l.accept_count++;
  t->in_accept_queue = true;
  Notify(&l, tcp::kEventAcceptable);
}

void Stack::ConnectionClosed(Tcb* t) {
  TupleKey k = KeyOf(*t);
  if (conns_.Find(k) == t->index) conns_.Erase(k);
  if (t->passive && !t->accepted && !t->in_accept_queue && t->listener < tcbs_.size()) {
    // A half-open child died (RFC 9293 3.10.7.4: RST in SYN-RECEIVED, or
    // its SYN,ACKs timed out): the listener forgets it. An established
    // child stays on the accept queue (Linux): accept() returns it and the
    // application sees the reset on its first read.
    Tcb& l = tcbs_[t->listener];
    if (l.syn_count > 0) l.syn_count--;
  }
  MaybeFree(t);
}

void Stack::SendReset(Tcb* t, uint32_t seq, uint32_t ack, bool with_ack) {
  if (!ResolveFlow(t)) return;
  uint32_t f = pool_.Alloc();
  if (f == FramePool::kNone) {
    counters_.tx_no_buffer++;
    return;
  }
  size_t len = tcp::BuildResetForTcb(&ctx_, t, pool_.data(f), pool_.frame_size(), seq, ack, with_ack);
  if (len == 0) {
    pool_.Free(f);
    return;
  }
  pool_.len(f) = static_cast<uint32_t>(len);
  QueueControl(f);
}

// ---------------------------------------------------------------------------
// Neighbours and transmission

uint32_t Stack::NextHop(uint32_t dst) const {
  // The kernel's routes (SetRoutes), longest prefix first; then the
  // interface's subnet (on-link) and the configured default gateway.
  for (const StackRoute& r : routes_) {
    const uint32_t mask = r.prefix_len == 0 ? 0 : ~0u << (32 - r.prefix_len);
    if (((dst ^ r.dst) & mask) == 0) return r.gateway != 0 ? r.gateway : dst;
  }
  if (config_.gateway == 0 || ((dst ^ config_.local_ip) & netmask_) == 0) return dst;
  return config_.gateway;
}

void Stack::SeedNeighbor(uint32_t ip, const net::MacAddr& mac, bool permanent) {
  arp_.SeedNeighbor(ip, mac, now_ns_, permanent);
  OnNeighborResolved(ip);
}

void Stack::ForgetNeighbor(uint32_t ip) {
  uint32_t pending[net::ArpCache::kMaxPendingLimit];
  size_t n = arp_.TakePending(ip, pending, net::ArpCache::kMaxPendingLimit);
  for (size_t i = 0; i < n; ++i) pool_.Free(pending[i]);
  arp_.Remove(ip);
}

void Stack::SetRoutes(const std::vector<StackRoute>& routes) {
  routes_ = routes;
  std::stable_sort(routes_.begin(), routes_.end(), [](const StackRoute& a, const StackRoute& b) {
    return a.prefix_len > b.prefix_len;
  });
  if (++route_gen_ == 0) route_gen_ = 1;
}

void Stack::SetTcpConfig(const tcp::TcpConfig& tcp) {
  config_.tcp = tcp;
  config_.tcp.mtu = config_.mtu;
}

void Stack::QueueControl(uint32_t f) {
  if (!ctrl_q_.Push(f)) {
    pool_.Free(f);
    counters_.tx_queue_full++;
  }
}

void Stack::RequestNeighbor(uint32_t ip) {
  // The kernel owns ARP: ask it (netlink NTF_USE) rather than broadcast;
  // the answer comes back as SeedNeighbor.
  counters_.neighbor_requests++;
  if (config_.neighbours != nullptr) config_.neighbours->RequestResolution(ip);
}

bool Stack::ResolveFlow(Tcb* t) {
  if (t->ipv6) return ResolveFlow6(t);
  if (t->route_gen != route_gen_) {
    t->next_hop = NextHop(t->remote_ip);
    t->route_gen = route_gen_;
  }
  const uint32_t nh = t->next_hop;
  bool send_request = false;
  net::MacAddr mac;
  net::ArpCache::Result r = arp_.Lookup(nh, now_ns_, &mac, &send_request);
  if (send_request) RequestNeighbor(nh);
  if (r == net::ArpCache::Result::kResolved) {
    t->remote_mac = mac;
    t->waiting_neighbor = false;
    return true;
  }
  t->waiting_neighbor = true;
  counters_.neighbor_unresolved++;
  return false;
}

void Stack::TransmitIp(uint32_t f, uint32_t dst_ip) {
  uint8_t* eth = pool_.data(f);
  if (net::IsIpv4Multicast(dst_ip)) {
    std::memcpy(eth, net::MacAddr::ForIpv4Multicast(dst_ip).b, 6);
    QueueControl(f);
    return;
  }
  if (dst_ip == net::kIpv4Broadcast || dst_ip == (config_.local_ip | ~netmask_)) {
    std::memcpy(eth, net::MacAddr::Broadcast().b, 6);
    QueueControl(f);
    return;
  }
  uint32_t nh = NextHop(dst_ip);
  bool send_request = false;
  net::MacAddr mac;
  net::ArpCache::Result r = arp_.Lookup(nh, now_ns_, &mac, &send_request);
  if (send_request) RequestNeighbor(nh);
  switch (r) {
    case net::ArpCache::Result::kResolved:
      std::memcpy(eth, mac.b, 6);
      QueueControl(f);
      return;
    case net::ArpCache::Result::kIncomplete:
      if (!arp_.EnqueuePending(nh, f)) pool_.Free(f);
      return;
    case net::ArpCache::Result::kFailed:
      counters_.neighbor_unresolved++;
      pool_.Free(f);
      return;
  }
}

void Stack::OnNeighborResolved(uint32_t ip) {
  net::MacAddr mac;
  bool unused;
  if (arp_.Lookup(ip, now_ns_, &mac, &unused) != net::ArpCache::Result::kResolved) return;
  uint32_t pending[net::ArpCache::kMaxPendingLimit];
  size_t n = arp_.TakePending(ip, pending, net::ArpCache::kMaxPendingLimit);
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(pool_.data(pending[i]), mac.b, 6);
    QueueControl(pending[i]);
  }
  for (Tcb& t : tcbs_) {
    if (t.in_use && t.waiting_neighbor && (t.route_gen != route_gen_ || (!t.ipv6 && t.next_hop == ip))) {
      t.waiting_neighbor = false;
      ScheduleOutput(&t);
    }
  }
}

// ---------------------------------------------------------------------------
// Transmit, timers, events

size_t Stack::DrainControl(TxFrame* out, size_t n, size_t max) {
  while (n < max && !ctrl_q_.empty()) {
    uint32_t f = ctrl_q_.front();
    ctrl_q_.Pop();
    uint32_t len = pool_.len(f);
    if (len <= out[n].capacity) {
      std::memcpy(out[n].data, pool_.data(f), len);
      out[n].len = len;
      ++n;
    } else {
      counters_.tx_no_buffer++;
    }
    pool_.Free(f);
  }
  return n;
}

size_t Stack::PollTx(TxFrame* out, size_t max, uint64_t now_ns) {
  SetNow(now_ns);
  size_t n = DrainControl(out, 0, max);
  size_t visits = output_q_.size();
  while (n < max && visits-- > 0 && !output_q_.empty()) {
    uint32_t idx = output_q_.front();
    output_q_.Pop();
    Tcb* t = &tcbs_[idx];
    t->in_output_list = false;
    if (!t->in_use) {
      if (!t->in_event_list) tcb_free_.push_back(idx);
      continue;
    }
    if (!ResolveFlow(t)) continue;
    uint32_t k = 0;
    while (n < max && k < kOutputBurst) {
      size_t len = tcp::TcpOutput(&ctx_, t, out[n].data, out[n].capacity);
      if (len == 0) break;
      out[n].len = static_cast<uint32_t>(len);
      ++n;
      ++k;
    }
    if (n == max || k == kOutputBurst) ScheduleOutput(t);  // more may be pending
  }
  // Frames generated while producing output (resets).
  n = DrainControl(out, n, max);
  counters_.tx_frames += n;
  return n;
}

void Stack::OnTimer(uint64_t now_ns) {
  SetNow(now_ns);
  wheel_.Advance(now_ns, [this](timer::TimerNode* node) {
    Tcb* t = static_cast<Tcb*>(node->owner);
    if (t->in_use) tcp::TcpOnTimer(&ctx_, t);
  });
  if (now_ns - last_arp_tick_ns_ >= kArpTickNs) {
    last_arp_tick_ns_ = now_ns;
    arp_.Tick(
        now_ns, [this](uint32_t ip) { RequestNeighbor(ip); },
        [this](uint32_t frame) { pool_.Free(frame); });
    nd_.Tick(
        now_ns, [this](const net::Ip6Addr& ip) { RequestNeighbor6(ip); },
        [this](uint32_t frame) { pool_.Free(frame); });
  }
}

uint64_t Stack::NextTimerDeadline() const {
  uint64_t t = wheel_.NextExpiry();
  if (arp_.size() > 0 || nd_.size() > 0) t = std::min(t, last_arp_tick_ns_ + kArpTickNs);
  return t;
}

void Stack::NotifyUdp(uint32_t index, uint32_t events) {
  udp::UdpEndpoint* ep = udp_.Get(index);
  ep->pending_events |= events;
  if (!ep->in_event_list) {
    ep->in_event_list = true;
    udp_event_q_.Push(index);
  }
}

size_t Stack::PollEvents(FlowEvent* out, size_t max) {
  size_t n = 0;
  while (n < max && !event_q_.empty()) {
    uint32_t idx = event_q_.front();
    event_q_.Pop();
    Tcb* t = &tcbs_[idx];
    t->in_event_list = false;
    if (!t->in_use) {
      if (!t->in_output_list) tcb_free_.push_back(idx);
      continue;
    }
    if (t->pending_events == 0) continue;
    out[n++] = FlowEvent{FlowKind::kTcp, IdOf(t), t->cookie, t->pending_events, t->error};
    t->pending_events = 0;
  }
  while (n < max && !udp_event_q_.empty()) {
    uint32_t idx = udp_event_q_.front();
    udp_event_q_.Pop();
    udp::UdpEndpoint* ep = udp_.Slot(idx);
    ep->in_event_list = false;
    if (!ep->in_use || ep->pending_events == 0) continue;
    out[n++] = FlowEvent{FlowKind::kUdp, (uint64_t{ep->generation} << 32) | idx, ep->cookie,
                         ep->pending_events, 0};
    ep->pending_events = 0;
  }
  return n;
}

}  // namespace offload::stack
