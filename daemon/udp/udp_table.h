// UdpTable: UDP endpoints and datagram demultiplexing (RFC 768, RFC 1122
// 4.1.3.4 / Linux semantics):
//   - unicast: a connected endpoint matching the full 4-tuple is preferred,
//     then one bound to the exact local address, then one bound to
//     INADDR_ANY on the port;
//   - multicast/broadcast: every endpoint bound to the port (and, for
//     multicast, a member of the group; RFC 1112 7.2) receives a copy;
//   - IPv6 (Bind6, LookupUnicast6): an endpoint bound to :: or an IPv6
//     address; one on :: without IPV6_V6ONLY is dual-stack and also takes
//     IPv4 datagrams to its port, as an INADDR_ANY endpoint does (Linux);
//     one bound to a v4-mapped address is an IPv4 endpoint of an AF_INET6
//     socket. Port conflicts count each family's addresses separately
//     (0.0.0.0 and a dual-stack :: overlap; 0.0.0.0 and a v6-only :: do
//     not). IPv6 endpoints are never connected in the table (the engine's
//     sockets filter their peer in the client) and join no IPv6 group.
//
// Endpoints and their queues are created at bind time (control path) and
// pooled; demultiplexing never allocates.
//
// Thread safety: none; owned by one engine thread.
#ifndef OFFLOAD_DAEMON_UDP_UDP_TABLE_H_
#define OFFLOAD_DAEMON_UDP_UDP_TABLE_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "daemon/net/headers.h"
#include "daemon/net/index_map.h"
#include "daemon/udp/datagram_queue.h"

namespace offload::udp {

inline constexpr uint32_t kMaxGroups = 20;  // Linux IP_MAX_MEMBERSHIPS

struct UdpEndpoint {
  bool in_use = false;
  bool connected = false;
  bool reuse = false;      // SO_REUSEADDR (shared port, e.g. multicast)
  uint32_t generation = 0;
  bool ipv6 = false;       // an AF_INET6 socket's endpoint (Bind6)
  bool takes_v4 = true;    // receives IPv4 datagrams (to local_ip)
  bool takes_v6 = false;   // receives IPv6 datagrams (to local_ip6)
  net::Ip6Addr local_ip6;  // takes_v6: all zero = any
  uint32_t local_ip = 0;   // 0 = INADDR_ANY
  uint16_t local_port = 0;
  uint32_t remote_ip = 0;
  uint16_t remote_port = 0;
  uint64_t cookie = 0;
  uint32_t num_groups = 0;
  uint32_t groups[kMaxGroups] = {};
  uint32_t next_same_port = 0xffffffffu;
  uint64_t rx_datagrams = 0;
  uint64_t rx_dropped = 0;  // queue full
  uint64_t tx_datagrams = 0;
  std::unique_ptr<DatagramQueue> queue;
  bool in_event_list = false;
  uint32_t pending_events = 0;
};

class UdpTable {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;

  UdpTable(uint32_t max_endpoints, uint32_t rcvbuf_bytes);

  // Binds a new endpoint. Returns 0 and its index, or EADDRINUSE / ENOBUFS.
  // REQUIRES: port != 0 (the caller picks ephemeral ports).
  int Bind(uint32_t local_ip, uint16_t port, bool reuse, uint64_t cookie, uint32_t* index);
  // The same for an AF_INET6 socket (see the file comment): `local_ip` ::,
  // an IPv6 address or a v4-mapped one. The caller validates the address.
  int Bind6(const net::Ip6Addr& local_ip, uint16_t port, bool v6only, bool reuse,
            uint64_t cookie, uint32_t* index);
  // Sets (or, with remote_ip == 0, clears) the default destination.
  int Connect(uint32_t index, uint32_t remote_ip, uint16_t remote_port);
  int JoinGroup(uint32_t index, uint32_t group);   // EINVAL, ENOBUFS, EADDRINUSE
  int LeaveGroup(uint32_t index, uint32_t group);  // EADDRNOTAVAIL
  void Close(uint32_t index);

  // The slot itself, in use or not (event bookkeeping).
  UdpEndpoint* Slot(uint32_t index) { return &eps_[index]; }
  UdpEndpoint* Get(uint32_t index) { return index < eps_.size() && eps_[index].in_use ? &eps_[index] : nullptr; }
  bool PortInUse(uint16_t port) const;

  // Unicast lookup; returns an index or kNone.
  uint32_t LookupUnicast(uint32_t dst_ip, uint16_t dst_port, uint32_t src_ip, uint16_t src_port) const;
  // IPv6 unicast lookup: the endpoint bound to `dst_ip`, else to ::.
  uint32_t LookupUnicast6(const net::Ip6Addr& dst_ip, uint16_t dst_port) const;

  // Calls fn(index) for each endpoint that receives a datagram to the
  // multicast or broadcast address `dst_ip`, port `dst_port`.
  template <typename Fn>
  void ForEachGroupReceiver(uint32_t dst_ip, uint16_t dst_port, bool multicast, Fn fn) {
    uint32_t i = port_heads_.Find(PortKey{dst_port});
    for (; i != kNone; i = eps_[i].next_same_port) {
      const UdpEndpoint& e = eps_[i];
      if (!e.takes_v4 || (e.local_ip != 0 && e.local_ip != dst_ip)) continue;
      if (e.connected) continue;
      if (multicast) {
        bool member = false;
        for (uint32_t g = 0; g < e.num_groups; ++g) member |= e.groups[g] == dst_ip;
        if (!member) continue;
      }
      fn(i);
    }
  }

  // Returns whether any endpoint is a member of `group`.
  bool IsMember(uint32_t group) const;

 private:
  struct AddrKey {
    uint32_t ip;
    uint16_t port;
    uint64_t Hash() const { return net::Mix64((uint64_t{ip} << 16) | port); }
    friend bool operator==(const AddrKey& a, const AddrKey& b) { return a.ip == b.ip && a.port == b.port; }
  };
  struct AddrKey6 {
    net::Ip6Addr ip;
    uint16_t port;
    uint64_t Hash() const {
      uint64_t w[2];
      std::memcpy(w, ip.b, 16);
      return net::Mix64(w[0] ^ net::Mix64(w[1] ^ port));
    }
    friend bool operator==(const AddrKey6& a, const AddrKey6& b) {
      return a.ip == b.ip && a.port == b.port;
    }
  };
  // What an endpoint receives: the families and addresses it is bound to.
  struct Scope {
    bool v4;
    uint32_t ip;
    bool v6;
    net::Ip6Addr ip6;
  };
  struct TupleKey {
    uint32_t lip, rip;
    uint16_t lport, rport;
    uint64_t Hash() const {
      return net::Mix64((uint64_t{lip} << 32 | rip) ^ net::Mix64(uint64_t{lport} << 16 | rport));
    }
    friend bool operator==(const TupleKey& a, const TupleKey& b) {
      return a.lip == b.lip && a.rip == b.rip && a.lport == b.lport && a.rport == b.rport;
    }
  };
  struct PortKey {
    uint16_t port;
    uint64_t Hash() const { return net::Mix64(port); }
    friend bool operator==(const PortKey& a, const PortKey& b) { return a.port == b.port; }
  };

  int Add(const Scope& scope, bool ipv6, uint16_t port, bool reuse, uint64_t cookie,
          uint32_t* index);
  void UnlinkPort(uint32_t index);

  uint32_t rcvbuf_bytes_;
  std::vector<UdpEndpoint> eps_;
  std::vector<uint32_t> free_;
  net::IndexMap<AddrKey> bound_;
  net::IndexMap<AddrKey6> bound6_;
  net::IndexMap<TupleKey> connected_;
  net::IndexMap<PortKey> port_heads_;
};

}  // namespace offload::udp

#endif  // OFFLOAD_DAEMON_UDP_UDP_TABLE_H_
