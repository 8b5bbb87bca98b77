// Out-of-line helpers of the NIC interface types.

#include "daemon/nic/nic.h"

#include <arpa/inet.h>

#include "absl/strings/str_format.h"

namespace offload::nic {
namespace {

std::string IpString(uint32_t host_order_ip) {
  if (host_order_ip == 0) return "*";
  return absl::StrFormat("%u.%u.%u.%u", host_order_ip >> 24,
                         (host_order_ip >> 16) & 0xff,
                         (host_order_ip >> 8) & 0xff, host_order_ip & 0xff);
}

std::string Ip6String(const Ip6Bytes& a) {
  if (a == Ip6Bytes{}) return "[*]";
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, a.data(), buf, sizeof(buf));
  return absl::StrFormat("[%s]", buf);
}

}  // namespace

const char* DriverKindName(DriverKind kind) {
  switch (kind) {
    case DriverKind::kAuto:
      return "auto";
    case DriverKind::kAfXdp:
      return "af_xdp";
    case DriverKind::kVerbs:
      return "verbs";
  }
  return "?";
}

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kRxInvalidDescriptor:
      return "rx_invalid_descriptor";
    case DropReason::kRxTruncated:
      return "rx_truncated";
    case DropReason::kTxNoBuffer:
      return "tx_no_buffer";
    case DropReason::kTxRingFull:
      return "tx_ring_full";
    case DropReason::kTxError:
      return "tx_error";
    case DropReason::kCount:
      break;
  }
  return "?";
}

std::string FlowKey::ToString() const {
  const char* p = proto == IpProto::kTcp ? "tcp" : "udp";
  if (ipv6) {
    if (is_listener()) return absl::StrFormat("%s %s:%u <- *", p, Ip6String(local_ip6), local_port);
    return absl::StrFormat("%s %s:%u <- %s:%u", p, Ip6String(local_ip6), local_port,
                           Ip6String(remote_ip6), remote_port);
  }
  if (is_listener()) {
    return absl::StrFormat("%s %s:%u <- *", p, IpString(local_ip), local_port);
  }
  return absl::StrFormat("%s %s:%u <- %s:%u", p, IpString(local_ip), local_port,
                         IpString(remote_ip), remote_port);
}

std::string ValidateFlowKey(const FlowKey& key) {
  if (key.proto != IpProto::kTcp && key.proto != IpProto::kUdp) {
    return "protocol must be tcp or udp";
  }
  if (key.local_port == 0) return "local port must be set";
  if (key.ipv6) {
    if (key.local_ip != 0 || key.remote_ip != 0) return "an IPv6 key has no IPv4 address";
    if ((key.remote_ip6 == Ip6Bytes{}) != (key.remote_port == 0)) {
      return "remote address and port must both be set or both be 0";
    }
    if (!key.is_listener() && key.local_ip6 == Ip6Bytes{}) {
      return "a connection needs its local address";
    }
    if (key.local_ip6[0] == 0xff) return "IPv6 multicast is not steered";
    return "";
  }
  if (key.local_ip6 != Ip6Bytes{} || key.remote_ip6 != Ip6Bytes{}) {
    return "an IPv4 key has no IPv6 address";
  }
  if ((key.remote_ip == 0) != (key.remote_port == 0)) {
    return "remote address and port must both be set or both be 0";
  }
  if (!key.is_listener() && key.local_ip == 0) {
    return "a connection needs its local address";
  }
  if (IsMulticast(key.local_ip) &&
      (key.proto != IpProto::kUdp || !key.is_listener())) {
    return "a multicast group can only be steered as a UDP receiver";
  }
  return "";
}

void SnapshotCounters(const QueueCounters& c, QueueStats* s) {
  s->rx_packets = c.rx_packets.Get();
  s->rx_bytes = c.rx_bytes.Get();
  s->tx_packets = c.tx_packets.Get();
  s->tx_bytes = c.tx_bytes.Get();
  s->polls = c.polls.Get();
  s->empty_polls = c.empty_polls.Get();
  s->wakeups = c.wakeups.Get();
  s->ring_full = c.ring_full.Get();
  for (int i = 0; i < static_cast<int>(DropReason::kCount); ++i) {
    s->drops[i] = c.drops[i].Get();
  }
  s->fault_rx_drops = c.fault_rx_drops.Get();
  s->fault_tx_drops = c.fault_tx_drops.Get();
  s->fault_rx_reorders = c.fault_rx_reorders.Get();
  s->fault_tx_reorders = c.fault_tx_reorders.Get();
}

QueueStats NicQueue::Stats() const {
  QueueStats stats;
  SnapshotCounters(counters_, &stats);
  return stats;
}

}  // namespace offload::nic
