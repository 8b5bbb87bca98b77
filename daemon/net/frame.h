// Parsing of received Ethernet frames into a flat view (ParsedFrame), and
// builders for the headers the engine transmits.
//
// Parsing never reads outside [data, data + len) and never writes; the frame
// memory must outlive the ParsedFrame. Every rejection has a distinct
// ParseStatus so the stack can count drops by reason.
#ifndef OFFLOAD_DAEMON_NET_FRAME_H_
#define OFFLOAD_DAEMON_NET_FRAME_H_

#include <cstddef>
#include <cstdint>

#include "daemon/net/headers.h"

namespace offload::net {

enum class ParseStatus : uint8_t {
  kOk = 0,
  kTruncated,           // shorter than the headers it claims
  kUnsupportedEthertype,
  kBadArp,
  kBadIpVersion,
  kBadIpHeaderLength,
  kBadIpTotalLength,
  kBadIpChecksum,
  kIpFragment,          // RFC 791 fragments are not reassembled: dropped
  kUnsupportedProtocol,
  kBadUdpLength,
  kBadTcpHeaderLength,
  kBadL4Checksum,
  // RFC 8200 4: an IPv6 extension header follows the fixed header. The
  // engine does not walk them; such packets belong to the kernel (the XDP
  // program passes them), one reaching the engine is dropped and counted.
  kIpv6ExtensionHeader,
  kCount,
};

const char* ParseStatusName(ParseStatus s);

struct ParsedFrame {
  const uint8_t* frame = nullptr;
  uint32_t frame_len = 0;
  MacAddr dst_mac;
  MacAddr src_mac;
  uint16_t ethertype = 0;

  // ARP (ethertype 0x0806).
  const ArpPacket* arp = nullptr;

  // IPv4 (ethertype 0x0800); addresses in host byte order. Zero for IPv6.
  uint32_t src_ip = 0;
  uint32_t dst_ip = 0;
  // IPv6 (ethertype 0x86dd): `ipv6` set, addresses in src_ip6/dst_ip6;
  // `ttl` holds the hop limit and `tos` the traffic class (RFC 8200 3).
  bool ipv6 = false;
  Ip6Addr src_ip6;
  Ip6Addr dst_ip6;
  uint32_t flow_label = 0;
  uint8_t protocol = 0;  // IPv4 protocol / IPv6 upper-layer next header
  uint8_t ttl = 0;
  uint8_t tos = 0;
  uint16_t ip_id = 0;
  bool df = false;  // IPv6: always true (routers never fragment, RFC 8200 5)
  const uint8_t* l4 = nullptr;
  uint32_t l4_len = 0;
  // The TCP/UDP checksum held only the pseudo-header sum and was accepted
  // (L4Checksum::kVerifyOrPartial).
  bool l4_checksum_partial = false;

  // TCP or UDP.
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  const uint8_t* payload = nullptr;
  uint32_t payload_len = 0;

  // TCP only.
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 0;
  uint16_t urgent = 0;
  uint8_t tcp_flags = 0;
  const uint8_t* tcp_options = nullptr;
  uint8_t tcp_options_len = 0;
};

// How ParseFrame treats the TCP/UDP checksum.
enum class L4Checksum : uint8_t {
  // Verify it; a mismatch drops the frame.
  kVerify,
  // Verify it, but also accept a field that holds only the folded
  // pseudo-header sum: what a local sender leaves for checksum offload
  // (Linux CHECKSUM_PARTIAL, __tcp_v4_send_check / udp4_hwcsum). A veth hands
  // such frames to XDP unchanged; the bytes never left host memory, and the
  // kernel receiving them trusts the same metadata. Only for links that cannot
  // corrupt data (set from nic::ChecksumOffload::kRxPartial).
  kVerifyOrPartial,
  // Do not look at it (the NIC already verified it).
  kSkip,
};

// Parses an Ethernet II frame (no FCS): ARP, IPv4 or IPv6 carrying TCP or
// UDP. Validates the IPv4 header checksum always and the TCP/UDP checksum
// (IPv4 or IPv6 pseudo-header) as `l4_checksum` says; an IPv6 UDP checksum
// of zero is invalid (RFC 8200 8.1) unless `l4_checksum` is kSkip. Ethernet
// padding beyond the IP total / payload length is ignored. An IPv6 packet
// with an extension header is rejected (kIpv6ExtensionHeader), never walked.
// Returns kOk and fills `*out`, or the reason the frame must be dropped.
ParseStatus ParseFrame(const uint8_t* data, size_t len, L4Checksum l4_checksum,
                       ParsedFrame* out);

// Fields of the IPv4 header the builder fills; addresses in host order.
struct Ipv4Fields {
  uint32_t src_ip = 0;
  uint32_t dst_ip = 0;
  uint8_t protocol = 0;
  uint8_t ttl = 64;
  uint8_t tos = 0;
  uint16_t id = 0;
  bool df = true;
};

// Fields of the IPv6 header the builder fills.
struct Ipv6Fields {
  Ip6Addr src;
  Ip6Addr dst;
  uint8_t next_header = 0;
  uint8_t hop_limit = 64;
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;  // low 20 bits
};

// Writes an Ethernet header at `buf`. Returns kEthHeaderLen.
size_t WriteEthHeader(uint8_t* buf, const MacAddr& dst, const MacAddr& src,
                      uint16_t ethertype);

// Writes a 20-byte IPv4 header with a valid header checksum for an L4 payload
// of `l4_len` bytes. Returns kIpv4HeaderLen.
size_t WriteIpv4Header(uint8_t* buf, const Ipv4Fields& f, uint16_t l4_len);

// Writes a 40-byte IPv6 header (no extension headers) for an upper-layer
// payload of `l4_len` bytes. Returns kIpv6HeaderLen.
size_t WriteIpv6Header(uint8_t* buf, const Ipv6Fields& f, uint16_t l4_len);

// Builds a complete Ethernet/ARP frame into `buf` (at least 60 bytes; padded
// to the Ethernet minimum). Returns the frame length (60).
size_t BuildArpFrame(uint8_t* buf, uint16_t oper, const MacAddr& eth_dst,
                     const MacAddr& sha, uint32_t spa, const MacAddr& tha,
                     uint32_t tpa);

// Computes and stores the TCP or UDP checksum of the L4 segment at `l4`
// (header + payload, `l4_len` bytes) for the given host-order addresses.
// For UDP a computed 0 is sent as 0xffff (RFC 768).
void FinishL4Checksum(uint8_t* l4, uint16_t l4_len, uint8_t protocol,
                      uint32_t src_ip, uint32_t dst_ip);
// The same over the IPv6 pseudo-header (RFC 8200 8.1); a computed UDP 0 is
// sent as 0xffff (zero is not allowed for UDP over IPv6).
void FinishL4Checksum6(uint8_t* l4, uint16_t l4_len, uint8_t protocol, const Ip6Addr& src,
                       const Ip6Addr& dst);

}  // namespace offload::net

#endif  // OFFLOAD_DAEMON_NET_FRAME_H_
