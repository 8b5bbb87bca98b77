// Flow identities used for steering: a TCP/UDP 5-tuple, a listener (local
// address/port, any peer), or a UDP multicast group. All fields are in host
// byte order; drivers convert.

#ifndef OFFLOAD_DAEMON_NIC_FLOW_H_
#define OFFLOAD_DAEMON_NIC_FLOW_H_

#include <cstdint>
#include <string>

namespace offload::nic {

enum class IpProto : uint8_t { kTcp = 6, kUdp = 17 };

struct FlowKey {
  IpProto proto = IpProto::kTcp;
  uint32_t local_ip = 0;  // 0: any local address (listener/receiver only).
  uint16_t local_port = 0;
  uint32_t remote_ip = 0;  // 0 together with remote_port 0: any peer.
  uint16_t remote_port = 0;

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

  bool is_listener() const { return remote_ip == 0 && remote_port == 0; }

  // "tcp 198.18.0.1:80 <- 198.18.0.2:4000" / "udp *:53 <- *".
  std::string ToString() const;

  friend bool operator==(const FlowKey& a, const FlowKey& b) {
    return a.proto == b.proto && a.local_ip == b.local_ip &&
           a.local_port == b.local_port && a.remote_ip == b.remote_ip &&
           a.remote_port == b.remote_port;
  }
};

// Checks that a key can be steered: a port is set; a peer is either fully
// given or absent; a wildcard local address only for listeners.
// Returns an empty string if valid, else what is wrong.
std::string ValidateFlowKey(const FlowKey& key);

inline bool IsMulticast(uint32_t ip) { return (ip >> 28) == 0xe; }

}  // namespace offload::nic

#endif  // OFFLOAD_DAEMON_NIC_FLOW_H_
