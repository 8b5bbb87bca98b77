// One engine's application-served UDP endpoints (see header).
#include "daemon/wire/engine_udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "shm/fence.h"
#include "spdlog/spdlog.h"

namespace offload::wire {
namespace {

// Destinations an engine never sends to on an application's behalf: "this
// network" (RFC 1122 3.2.1.3), loopback, class E and limited broadcast (the
// client sends broadcast through the kernel), and port 0. Multicast groups
// (224.0.0.0/4) are sendable.
bool SendableDestination(uint32_t addr_host, uint16_t port_host) {
  const uint32_t first = addr_host >> 24;
  return port_host != 0 && first != 0 && first != 127 && first < 240;
}

// A TX record's multicast TTL (abi.h DgramRecord::ttl): -1 for the default.
int RecordTtl(uint16_t ttl) {
  return (ttl & shm::kDgramTtlSet) != 0 ? (ttl & 0xff) : -1;
}

}  // namespace

int EngineUdp::Bind(uint64_t cookie, uint32_t local_ip, uint16_t port, bool reuse,
                    std::shared_ptr<AppDgram> rings) {
  if (port == 0 || rings == nullptr || endpoints_.count(cookie) != 0) return EINVAL;
  stack::FlowId id = stack::kInvalidFlow;
  const int err = stack_->UdpBind(local_ip, port, reuse, cookie, &id);
  if (err != 0) return err;
  Attach(cookie, id, false, std::move(rings));
  return 0;
}

int EngineUdp::Bind6(uint64_t cookie, const net::Ip6Addr& local_ip, bool v6only, uint16_t port,
                     bool reuse, std::shared_ptr<AppDgram> rings) {
  if (port == 0 || rings == nullptr || endpoints_.count(cookie) != 0) return EINVAL;
  stack::FlowId id = stack::kInvalidFlow;
  const int err = stack_->UdpBind6(local_ip, port, v6only, reuse, cookie, &id);
  if (err != 0) return err;
  Attach(cookie, id, true, std::move(rings));
  return 0;
}

void EngineUdp::Attach(uint64_t cookie, stack::FlowId id, bool ipv6,
                       std::shared_ptr<AppDgram> rings) {
  if (scratch_ == nullptr) scratch_.reset(new uint8_t[shm::kMaxDatagram]);
  Endpoint& e = endpoints_[cookie];
  e.id = id;
  e.ipv6 = ipv6;
  e.tx.Init(rings->tx_header(), rings->capacity());
  e.rx.InitOwned(rings->rx_header(), rings->capacity());
  e.rings = std::move(rings);
  list_.push_back(&e);
}

void EngineUdp::Close(uint64_t cookie) {
  auto it = endpoints_.find(cookie);
  if (it == endpoints_.end()) return;
  // Datagrams the socket sent before it closed (or went back to the
  // kernel) still leave, as the kernel sends what a closed socket queued;
  // bounded by what the ring holds (DrainTx stops when it is empty or the
  // frame pool is).
  while (!it->second.broken && DrainTx(it->second) != 0) {
  }
  stack_->UdpClose(it->second.id);
  // Nothing more is written into the RX ring: a socket that went back to
  // the kernel (client/udp.cc DemoteSharedUdp) unmaps it once it is empty.
  it->second.rings->rx_header()->idx.shut.store(shm::kShutFin, std::memory_order_release);
  list_.erase(std::find(list_.begin(), list_.end(), &it->second));
  endpoints_.erase(it);
}

int EngineUdp::JoinGroup(uint64_t cookie, uint32_t group) {
  auto it = endpoints_.find(cookie);
  if (it == endpoints_.end()) return EBADF;
  return stack_->UdpJoinGroup(it->second.id, group);
}

int EngineUdp::LeaveGroup(uint64_t cookie, uint32_t group) {
  auto it = endpoints_.find(cookie);
  if (it == endpoints_.end()) return EBADF;
  return stack_->UdpLeaveGroup(it->second.id, group);
}

void EngineUdp::Clear() {
  list_.clear();
  endpoints_.clear();
}

size_t EngineUdp::PollApplications() {
  size_t work = 0;
  for (Endpoint* e : list_) {
    if (!e->broken) work += DrainTx(*e);
  }
  return work;
}

size_t EngineUdp::DrainTx(Endpoint& e) {
  size_t n = 0;
  shm::CheckedDgramConsumer::Record r;
  while (n < kTxBurst) {
    const shm::CheckedDgramConsumer::Next next = e.tx.Front(&r);
    if (next == shm::CheckedDgramConsumer::Next::kEmpty) break;
    if (next == shm::CheckedDgramConsumer::Next::kCorrupt) {
      e.broken = true;
      if (counters_.corrupt_rings++ % 1024 == 0) {
        spdlog::warn("wire: a UDP socket's TX ring is corrupt; its datagrams are no longer sent");
      }
      break;
    }
    const int err =
        (r.ttl & shm::kDgramAddr6) != 0 ? SendRecord6(e, r) : SendRecord4(e, r);
    if (err == ENOBUFS) break;  // frame pool empty: retry after this iteration's TX
    if (err != 0) {
      e.rings->tx_header()->drops.fetch_add(1, std::memory_order_relaxed);
      ++counters_.tx_drops;
    } else {
      ++counters_.tx_datagrams;
    }
    e.tx.Pop();
    ++n;
  }
  // One head store per batch; kicks a sender that sleeps on a full ring.
  if (e.tx.Publish()) e.rings->KickApp();
  return n;
}

int EngineUdp::SendRecord4(Endpoint& e, const shm::CheckedDgramConsumer::Record& r) {
  const uint32_t dst = ntohl(r.addr);
  const uint16_t dport = ntohs(r.port);
  const int ttl = RecordTtl(r.ttl);
  // TTL 0 multicast stays on the host (RFC 1112 6.1): the client sends it
  // through the kernel; a record asking the engine for it is dropped.
  if (!SendableDestination(dst, dport) || (ttl == 0 && (dst >> 28) == 0xe)) return EINVAL;
  // The payload is read once, by the copy into the frame.
  return stack_->UdpSendTo(e.id, dst, dport, r.payload, r.len, ttl);
}

int EngineUdp::SendRecord6(Endpoint& e, const shm::CheckedDgramConsumer::Record& r) {
  if (!e.ipv6 || r.len < shm::kDgramAddr6Bytes) return EINVAL;
  net::Ip6Addr dst;
  std::memcpy(dst.b, r.payload, shm::kDgramAddr6Bytes);  // read once
  static const net::Ip6Addr kLoopback = [] {
    net::Ip6Addr a;
    a.b[15] = 1;
    return a;
  }();
  // IPv4 destinations travel as IPv4 records; groups, link-local and the
  // host's own loopback are the kernel's.
  if (dst.IsUnspecified() || dst == kLoopback || dst.IsV4Mapped() || dst.IsMulticast() ||
      dst.IsLinkLocal() || r.port == 0) {
    return EINVAL;
  }
  return stack_->UdpSendTo6(e.id, dst, ntohs(r.port), r.payload + shm::kDgramAddr6Bytes,
                            r.len - shm::kDgramAddr6Bytes);
}

size_t EngineUdp::OnEvent(const stack::FlowEvent& ev) {
  if (ev.kind != stack::FlowKind::kUdp || !(ev.events & stack::kUdpReadable)) return 0;
  auto it = endpoints_.find(ev.cookie);
  if (it == endpoints_.end() || it->second.id != ev.flow) return 0;
  return DeliverRx(it->second);
}

size_t EngineUdp::DeliverRx(Endpoint& e) {
  const uint32_t max = e.rings->max_payload();
  size_t delivered = 0;
  for (;;) {
    if (e.ipv6 && stack_->UdpNextFromIpv6(e.id)) {
      if (!DeliverOne6(e, max, &delivered)) break;
      continue;
    }
    uint32_t sip = 0;
    uint16_t sport = 0;
    // Room for the largest datagram: the stack copies straight into the
    // ring. Otherwise through the scratch buffer, so that a small datagram
    // still fits a nearly full ring.
    if (uint8_t* slot = e.rx.Reserve(max)) {
      const int64_t n = stack_->UdpRecvFrom(e.id, slot, max, &sip, &sport);
      if (n < 0) break;
      e.rx.Commit(std::min<uint64_t>(static_cast<uint64_t>(n), max), htonl(sip), htons(sport));
      ++delivered;
      continue;
    }
    const int64_t n = stack_->UdpRecvFrom(e.id, scratch_.get(), shm::kMaxDatagram, &sip, &sport);
    if (n < 0) break;
    const struct iovec iov = {scratch_.get(),
                              std::min<size_t>(static_cast<size_t>(n), shm::kMaxDatagram)};
    if (e.rx.Append(&iov, 1, iov.iov_len, htonl(sip), htons(sport))) {
      ++delivered;
    } else {
      // Linux: a full receive buffer drops (UDP_MIB_RCVBUFERRORS).
      e.rings->rx_header()->drops.fetch_add(1, std::memory_order_relaxed);
      ++counters_.rx_drops;
    }
  }
  counters_.rx_datagrams += delivered;
  if (delivered != 0 && e.rx.NeedsKick()) e.rings->KickApp();
  return delivered;
}

bool EngineUdp::DeliverOne6(Endpoint& e, uint32_t max, size_t* delivered) {
  net::Ip6Addr src;
  uint16_t sport = 0;
  // As DeliverRx: straight into the ring, behind the source's address.
  if (uint8_t* slot = e.rx.Reserve(size_t{max} + shm::kDgramAddr6Bytes)) {
    const int64_t n =
        stack_->UdpRecvFrom6(e.id, slot + shm::kDgramAddr6Bytes, max, &src, &sport);
    if (n < 0) return false;
    std::memcpy(slot, src.b, shm::kDgramAddr6Bytes);
    e.rx.Commit(std::min<uint64_t>(static_cast<uint64_t>(n), max) + shm::kDgramAddr6Bytes, 0,
                htons(sport), shm::kDgramAddr6);
    ++*delivered;
    return true;
  }
  const int64_t n = stack_->UdpRecvFrom6(e.id, scratch_.get(), shm::kMaxDatagram, &src, &sport);
  if (n < 0) return false;
  const size_t len = std::min<size_t>(static_cast<size_t>(n), shm::kMaxDatagram);
  const struct iovec iov[2] = {{src.b, shm::kDgramAddr6Bytes}, {scratch_.get(), len}};
  if (e.rx.Append(iov, 2, shm::kDgramAddr6Bytes + len, 0, htons(sport), shm::kDgramAddr6)) {
    ++*delivered;
  } else {
    e.rings->rx_header()->drops.fetch_add(1, std::memory_order_relaxed);
    ++counters_.rx_drops;
  }
  return true;
}

void EngineUdp::SetSleepFlags() {
  for (Endpoint* e : list_) {
    if (!e->broken) e->tx.SetSleepFlag();
  }
}

bool EngineUdp::RecheckAfterFence() const {
  for (const Endpoint* e : list_) {
    if (!e->broken && e->tx.RecheckAfterFence()) return true;
  }
  return false;
}

void EngineUdp::CancelSleep() {
  for (Endpoint* e : list_) e->tx.CancelSleep();
}

}  // namespace offload::wire
