// Flow identities used for steering: a TCP/UDP 5-tuple, a listener (local
// address/port, any peer), or a UDP multicast group, of IPv4 or IPv6. IPv4
// addresses and all ports are in host byte order (drivers convert); IPv6
// addresses are bytes in network order. A key is of one family: a
// dual-stack listener is steered as two keys.

#ifndef OFFLOAD_DAEMON_NIC_FLOW_H_
#define OFFLOAD_DAEMON_NIC_FLOW_H_

#include <array>
#include <cstdint>
#include <string>

namespace offload::nic {

enum class IpProto : uint8_t { kTcp = 6, kUdp = 17 };

using Ip6Bytes = std::array<uint8_t, 16>;  // network order; all zero: any

struct FlowKey {
  IpProto proto = IpProto::kTcp;
  uint32_t local_ip = 0;  // 0: any local address (listener/receiver only).
  uint16_t local_port = 0;
  uint32_t remote_ip = 0;  // 0 together with remote_port 0: any peer.
  uint16_t remote_port = 0;
  // IPv6: set, and the addresses are local_ip6/remote_ip6 (local_ip and
  // remote_ip stay 0).
  bool ipv6 = false;
  Ip6Bytes local_ip6{};
  Ip6Bytes remote_ip6{};

  // An established connection / connected UDP socket.
  static FlowKey Connection(IpProto proto, uint32_t local_ip,
                            uint16_t local_port, uint32_t remote_ip,
                            uint16_t remote_port) {
    return FlowKey{proto, local_ip, local_port, remote_ip, remote_port};
  }
  // A TCP listener or UDP receiver; local_ip 0 is INADDR_ANY.
  static FlowKey Listener(IpProto proto, uint32_t local_ip,
                          uint16_t local_port) {
    return FlowKey{proto, local_ip, local_port, 0, 0};
  }
  // A UDP receiver of multicast group `group` (224.0.0.0/4) on `port`.
  static FlowKey MulticastGroup(uint32_t group, uint16_t port) {
    return FlowKey{IpProto::kUdp, group, port, 0, 0};
  }

  // The IPv6 counterparts.
  static FlowKey Connection6(IpProto proto, const Ip6Bytes& local_ip, uint16_t local_port,
                             const Ip6Bytes& remote_ip, uint16_t remote_port) {
    FlowKey k{proto, 0, local_port, 0, remote_port};
    k.ipv6 = true;
    k.local_ip6 = local_ip;
    k.remote_ip6 = remote_ip;
    return k;
  }
  // local_ip all zero: any local IPv6 address (in6addr_any).
  static FlowKey Listener6(IpProto proto, const Ip6Bytes& local_ip, uint16_t local_port) {
    return Connection6(proto, local_ip, local_port, Ip6Bytes{}, 0);
  }

  bool is_listener() const {
    return remote_ip == 0 && remote_port == 0 && remote_ip6 == Ip6Bytes{};
  }

  // "tcp 198.18.0.1:80 <- 198.18.0.2:4000" / "udp *:53 <- *" /
  // "tcp [2001:db8::1]:80 <- [2001:db8::2]:4000" / "tcp [*]:80 <- *".
  std::string ToString() const;

  friend bool operator==(const FlowKey& a, const FlowKey& b) {
    return a.proto == b.proto && a.local_ip == b.local_ip &&
           a.local_port == b.local_port && a.remote_ip == b.remote_ip &&
           a.remote_port == b.remote_port && a.ipv6 == b.ipv6 &&
           a.local_ip6 == b.local_ip6 && a.remote_ip6 == b.remote_ip6;
  }
};

// Checks that a key can be steered: a port is set; a peer is either fully
// given or absent; a wildcard local address only for listeners; an IPv6 key
// carries no IPv4 address; IPv6 multicast is not steered (it stays with the
// kernel this round).
// Returns an empty string if valid, else what is wrong.
std::string ValidateFlowKey(const FlowKey& key);

inline bool IsMulticast(uint32_t ip) { return (ip >> 28) == 0xe; }

}  // namespace offload::nic

#endif  // OFFLOAD_DAEMON_NIC_FLOW_H_
