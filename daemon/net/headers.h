// Wire formats of Ethernet II, ARP (RFC 826), IPv4 (RFC 791), IPv6 (RFC 8200),
// UDP (RFC 768) and TCP (RFC 9293 3.1) headers, and small address types.
//
// Header structs are packed overlays of network-order bytes; read them only
// through the accessors (which byte-swap) so that unaligned frames are fine.
#ifndef OFFLOAD_DAEMON_NET_HEADERS_H_
#define OFFLOAD_DAEMON_NET_HEADERS_H_

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>

namespace offload::net {

inline constexpr size_t kEthHeaderLen = 14;
inline constexpr size_t kIpv4HeaderLen = 20;  // without options
inline constexpr size_t kIpv6HeaderLen = 40;  // fixed header (RFC 8200 3)
inline constexpr size_t kTcpHeaderLen = 20;   // without options
inline constexpr size_t kUdpHeaderLen = 8;
inline constexpr size_t kArpPacketLen = 28;   // Ethernet/IPv4 ARP
inline constexpr size_t kMinEthFrameLen = 60; // without FCS

inline constexpr uint16_t kEthTypeIpv4 = 0x0800;
inline constexpr uint16_t kEthTypeArp = 0x0806;
inline constexpr uint16_t kEthTypeIpv6 = 0x86dd;
inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpProtoIcmpv6 = 58;

// IPv6 Next Header values that are extension headers (RFC 8200 4, and the
// IANA "IPv6 Extension Header Types" registry): a packet carrying one is not
// parsed by the engine (the XDP program leaves it to the kernel).
inline constexpr uint8_t kIpv6ExtHopByHop = 0;
inline constexpr uint8_t kIpv6ExtRouting = 43;
inline constexpr uint8_t kIpv6ExtFragment = 44;
inline constexpr uint8_t kIpv6ExtEsp = 50;
inline constexpr uint8_t kIpv6ExtAh = 51;
inline constexpr uint8_t kIpv6ExtNoNext = 59;
inline constexpr uint8_t kIpv6ExtDestOpts = 60;
inline constexpr uint8_t kIpv6ExtMobility = 135;
inline constexpr uint8_t kIpv6ExtHip = 139;
inline constexpr uint8_t kIpv6ExtShim6 = 140;
inline constexpr bool IsIpv6ExtensionHeader(uint8_t next) {
  return next == kIpv6ExtHopByHop || next == kIpv6ExtRouting || next == kIpv6ExtFragment ||
         next == kIpv6ExtEsp || next == kIpv6ExtAh || next == kIpv6ExtNoNext ||
         next == kIpv6ExtDestOpts || next == kIpv6ExtMobility || next == kIpv6ExtHip ||
         next == kIpv6ExtShim6 || next == 253 || next == 254;  // RFC 3692 experiments
}

// TCP header flag bits (RFC 9293 3.1).
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;
inline constexpr uint8_t kTcpEce = 0x40;
inline constexpr uint8_t kTcpCwr = 0x80;

struct MacAddr {
  uint8_t b[6] = {0, 0, 0, 0, 0, 0};

  bool IsBroadcast() const {
    return (b[0] & b[1] & b[2] & b[3] & b[4] & b[5]) == 0xff;
  }
  bool IsMulticast() const { return (b[0] & 1) != 0; }
  bool IsZero() const { return (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]) == 0; }
  static MacAddr Broadcast() { return MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
  // RFC 1112 6.4: 01:00:5e plus the low 23 bits of the group address.
  static MacAddr ForIpv4Multicast(uint32_t group) {
    return MacAddr{{0x01, 0x00, 0x5e, static_cast<uint8_t>((group >> 16) & 0x7f),
                    static_cast<uint8_t>(group >> 8), static_cast<uint8_t>(group)}};
  }
  friend bool operator==(const MacAddr& a, const MacAddr& c) {
    return std::memcmp(a.b, c.b, 6) == 0;
  }
  friend bool operator!=(const MacAddr& a, const MacAddr& c) { return !(a == c); }
};

// An IPv6 address, in network byte order (as on the wire and in in6_addr).
struct Ip6Addr {
  uint8_t b[16] = {};

  bool IsUnspecified() const {
    for (uint8_t x : b) {
      if (x != 0) return false;
    }
    return true;
  }
  // ff00::/8 (RFC 4291 2.7).
  bool IsMulticast() const { return b[0] == 0xff; }
  // fe80::/10 (RFC 4291 2.5.6).
  bool IsLinkLocal() const { return b[0] == 0xfe && (b[1] & 0xc0) == 0x80; }
  // ::ffff:a.b.c.d (RFC 4291 2.5.5.2).
  bool IsV4Mapped() const {
    for (int i = 0; i < 10; ++i) {
      if (b[i] != 0) return false;
    }
    return b[10] == 0xff && b[11] == 0xff;
  }
  // The IPv4 address of a v4-mapped address, host order.
  uint32_t V4() const {
    return (uint32_t{b[12]} << 24) | (uint32_t{b[13]} << 16) | (uint32_t{b[14]} << 8) | b[15];
  }
  static Ip6Addr V4Mapped(uint32_t ip) {
    Ip6Addr a;
    a.b[10] = a.b[11] = 0xff;
    a.b[12] = static_cast<uint8_t>(ip >> 24);
    a.b[13] = static_cast<uint8_t>(ip >> 16);
    a.b[14] = static_cast<uint8_t>(ip >> 8);
    a.b[15] = static_cast<uint8_t>(ip);
    return a;
  }
  friend bool operator==(const Ip6Addr& x, const Ip6Addr& y) {
    return std::memcmp(x.b, y.b, 16) == 0;
  }
  friend bool operator!=(const Ip6Addr& x, const Ip6Addr& y) { return !(x == y); }
};

// IPv4 addresses are passed around in host byte order.
inline bool IsIpv4Multicast(uint32_t ip) { return (ip >> 28) == 0xe; }
inline constexpr uint32_t kIpv4Broadcast = 0xffffffffu;

inline uint16_t Load16(const void* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return ntohs(v);
}
inline uint32_t Load32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return ntohl(v);
}
inline void Store16(void* p, uint16_t v) {
  v = htons(v);
  std::memcpy(p, &v, 2);
}
inline void Store32(void* p, uint32_t v) {
  v = htonl(v);
  std::memcpy(p, &v, 4);
}

struct __attribute__((packed)) EthHeader {
  uint8_t dst[6];
  uint8_t src[6];
  uint8_t ethertype[2];
};
static_assert(sizeof(EthHeader) == kEthHeaderLen);

struct __attribute__((packed)) ArpPacket {
  uint8_t htype[2];  // 1 = Ethernet
  uint8_t ptype[2];  // 0x0800
  uint8_t hlen;      // 6
  uint8_t plen;      // 4
  uint8_t oper[2];   // 1 request, 2 reply
  uint8_t sha[6];
  uint8_t spa[4];
  uint8_t tha[6];
  uint8_t tpa[4];
};
static_assert(sizeof(ArpPacket) == kArpPacketLen);
inline constexpr uint16_t kArpRequest = 1;
inline constexpr uint16_t kArpReply = 2;

struct __attribute__((packed)) Ipv4Header {
  uint8_t version_ihl;
  uint8_t tos;
  uint8_t total_length[2];
  uint8_t id[2];
  uint8_t frag[2];  // flags (3 bits) + fragment offset (13 bits)
  uint8_t ttl;
  uint8_t protocol;
  uint8_t checksum[2];
  uint8_t src[4];
  uint8_t dst[4];
};
static_assert(sizeof(Ipv4Header) == kIpv4HeaderLen);
inline constexpr uint16_t kIpFlagDf = 0x4000;
inline constexpr uint16_t kIpFlagMf = 0x2000;
inline constexpr uint16_t kIpFragOffsetMask = 0x1fff;

// RFC 8200 3: the fixed IPv6 header. No header checksum.
struct __attribute__((packed)) Ipv6Header {
  uint8_t ver_tc_flow[4];  // version (4 bits), traffic class (8), flow label (20)
  uint8_t payload_length[2];  // bytes after this header (extensions + L4)
  uint8_t next_header;
  uint8_t hop_limit;
  uint8_t src[16];
  uint8_t dst[16];
};
static_assert(sizeof(Ipv6Header) == kIpv6HeaderLen);

struct __attribute__((packed)) UdpHeader {
  uint8_t src_port[2];
  uint8_t dst_port[2];
  uint8_t length[2];
  uint8_t checksum[2];
};
static_assert(sizeof(UdpHeader) == kUdpHeaderLen);

struct __attribute__((packed)) TcpHeader {
  uint8_t src_port[2];
  uint8_t dst_port[2];
  uint8_t seq[4];
  uint8_t ack[4];
  uint8_t data_offset;  // high 4 bits, in 32-bit words
  uint8_t flags;
  uint8_t window[2];
  uint8_t checksum[2];
  uint8_t urgent[2];
};
static_assert(sizeof(TcpHeader) == kTcpHeaderLen);

}  // namespace offload::net

#endif  // OFFLOAD_DAEMON_NET_HEADERS_H_
