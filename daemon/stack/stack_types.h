// The vocabulary of the Stack API (stack.h): its configuration and routes,
// flow handles and events, the frames it receives and transmits, the two
// interfaces its host implements (NeighborRequester, BufferProvider) and
// its counters.
#ifndef OFFLOAD_DAEMON_STACK_STACK_TYPES_H_
#define OFFLOAD_DAEMON_STACK_STACK_TYPES_H_

#include <cstddef>
#include <cstdint>

#include "daemon/common/counter.h"
#include "daemon/net/arp.h"
#include "daemon/net/frame.h"
#include "daemon/net/headers.h"
#include "daemon/tcp/byte_ring.h"
#include "daemon/tcp/isn.h"
#include "daemon/tcp/tcp_config.h"

namespace offload::stack {

// Receives the stack's requests to resolve a next hop: the host's kernel
// owns the neighbour table and is the only ARP resolver
// (StackConfig::neighbours; daemon/wire/kernel_feed.h asks it through
// netlink). Called on the engine thread; must not block. The answer arrives
// as SeedNeighbor().
class NeighborRequester {
 public:
  virtual ~NeighborRequester() = default;
  virtual void RequestResolution(uint32_t ip) = 0;
  // The same for an IPv6 next hop (RFC 4861 neighbour discovery, done by
  // the kernel); the answer arrives as SeedNeighbor6(). Default: no IPv6
  // resolver (only seeded neighbours).
  virtual void RequestResolution6(const net::Ip6Addr& ip) { (void)ip; }
};

// A route the stack follows (from the kernel's table), host byte order.
struct StackRoute {
  uint32_t dst = 0;
  uint8_t prefix_len = 0;
  uint32_t gateway = 0;  // 0: on-link
};

// An IPv6 route (from the kernel's table).
struct StackRoute6 {
  net::Ip6Addr dst;
  uint8_t prefix_len = 0;
  net::Ip6Addr gateway;  // all zero: on-link
};

struct StackConfig {
  net::MacAddr local_mac;
  uint32_t local_ip = 0;           // host order
  uint8_t prefix_len = 24;
  uint32_t gateway = 0;            // 0: no default route (on-link only)
  uint16_t mtu = 1500;
  // IPv6: the interface's address the engine serves (all zero: no IPv6),
  // its on-link prefix, and the default router (all zero: on-link only).
  net::Ip6Addr local_ip6;
  uint8_t prefix_len6 = 64;
  net::Ip6Addr gateway6;
  uint32_t max_concurrency = 1024; // TCP control blocks (incl. listeners)
  uint32_t max_udp_endpoints = 256;
  uint32_t max_num_buffers = 4096; // frame buffers for control/UDP/ARP frames
  uint32_t max_syn_backlog = 256;  // per listener (Linux tcp_max_syn_backlog)
  uint32_t udp_rcvbuf_bytes = 212992;  // Linux default rmem
  // kSkip when the NIC verified L4 checksums; kVerifyOrPartial on a veth.
  net::L4Checksum rx_l4_checksum = net::L4Checksum::kVerify;
  uint16_t ephemeral_port_lo = 32768;  // Linux ip_local_port_range
  uint16_t ephemeral_port_hi = 60999;
  uint64_t timer_tick_ns = 1'000'000;  // 1 ms wheel resolution
  uint32_t timer_slots = 4096;
  tcp::SecretKey isn_key;          // all zero: random key from getrandom()
  tcp::TcpConfig tcp;
  net::ArpConfig arp;
  // Who resolves next hops (the kernel). The stack sends no ARP request and
  // learns no neighbour from ARP frames: it asks here and waits for
  // SeedNeighbor. Null: neighbours are only those seeded (tests, links
  // without a kernel). Must outlive the stack.
  NeighborRequester* neighbours = nullptr;
};

// Flow handles: (generation << 32) | index; 0 is never a valid handle.
using FlowId = uint64_t;
inline constexpr FlowId kInvalidFlow = 0;

enum class FlowKind : uint8_t { kTcp, kUdp };

// Event bits for UDP endpoints (TCP uses tcp::TcpEvent).
enum UdpEventBits : uint32_t { kUdpReadable = 1u << 0 };

struct FlowEvent {
  FlowKind kind = FlowKind::kTcp;
  FlowId flow = kInvalidFlow;
  uint64_t cookie = 0;
  uint32_t events = 0;  // tcp::TcpEvent or UdpEventBits
  int error = 0;        // errno for kEventError / kEventClosed
};

struct RxFrame {
  const uint8_t* data = nullptr;
  uint32_t len = 0;
};

struct TxFrame {
  uint8_t* data = nullptr;  // caller's buffer (e.g. a UMEM frame)
  uint32_t capacity = 0;    // >= 14 + mtu
  uint32_t len = 0;         // filled by PollTx
};

// Supplies TX/RX rings for passively opened connections (the listener's
// process arena). Called on the engine thread.
class BufferProvider {
 public:
  virtual ~BufferProvider() = default;
  // Provides rings for a new child of the listener with `listener_cookie`.
  // Returns false to refuse (the SYN is dropped and counted).
  virtual bool AllocateRings(uint64_t listener_cookie, tcp::RingMemory* tx,
                             tcp::RingMemory* rx) = 0;
  // The connection that used these rings was freed.
  virtual void ReleaseRings(const tcp::RingMemory& tx, const tcp::RingMemory& rx) = 0;
};

struct StackCounters {
  common::SingleWriterCounter rx_frames;
  common::SingleWriterCounter tx_frames;
  common::SingleWriterCounter rx_parse_drops[static_cast<size_t>(net::ParseStatus::kCount)];
  common::SingleWriterCounter rx_not_for_us;        // wrong MAC / IP
  common::SingleWriterCounter rx_ip_fragments;      // (also in rx_parse_drops)
  common::SingleWriterCounter rx_checksum_errors;   // IP + L4
  common::SingleWriterCounter rx_checksum_partial;  // veth: pseudo-header-only L4 sums accepted
  common::SingleWriterCounter rx_ipv6_not_offloaded;  // valid IPv6 TCP/UDP: no engine flow yet
  common::SingleWriterCounter arp_in;
  common::SingleWriterCounter tcp_no_socket;        // answered with RST
  common::SingleWriterCounter tcp_syn_backlog_drops;
  common::SingleWriterCounter tcp_syn_no_memory;
  common::SingleWriterCounter udp_in;
  common::SingleWriterCounter udp_out;
  common::SingleWriterCounter udp_no_port;
  common::SingleWriterCounter udp_queue_full;
  common::SingleWriterCounter udp6_in;              // IPv6 datagrams (also in udp_in)
  common::SingleWriterCounter udp6_out;             // (also in udp_out)
  common::SingleWriterCounter udp6_zero_checksum;   // dropped: RFC 8200 8.1
  common::SingleWriterCounter udp6_multicast;       // dropped: IPv6 groups are the kernel's
  common::SingleWriterCounter tx_no_buffer;         // frame pool exhausted
  common::SingleWriterCounter tx_queue_full;
  common::SingleWriterCounter neighbor_unresolved;  // output deferred for ARP
  common::SingleWriterCounter neighbor_requests;    // resolutions asked of the kernel
  common::SingleWriterCounter listen_overflows;     // SYN/ACK dropped: accept queue full
  common::SingleWriterCounter listen_drops;         // SYN dropped: SYN queue full, no cookies
};

}  // namespace offload::stack

#endif  // OFFLOAD_DAEMON_STACK_STACK_TYPES_H_
