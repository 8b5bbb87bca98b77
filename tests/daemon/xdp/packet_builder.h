// Builds and parses Ethernet/IPv4/TCP/UDP frames for the NIC tests (the
// katran-style "packet builder + expected-packet tester").

#ifndef OFFLOAD_TESTS_DAEMON_XDP_PACKET_BUILDER_H_
#define OFFLOAD_TESTS_DAEMON_XDP_PACKET_BUILDER_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace offload::testing {

using Mac = std::array<uint8_t, 6>;

struct FrameSpec {
  Mac src_mac = {2, 0, 0, 0, 0, 1};
  Mac dst_mac = {2, 0, 0, 0, 0, 2};
  uint16_t ether_type = 0x0800;
  uint8_t proto = 17;   // IPPROTO_UDP / IPPROTO_TCP / other
  uint32_t src_ip = 0;  // host order
  uint32_t dst_ip = 0;  // host order
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint8_t tcp_flags = 0x02;      // SYN
  uint16_t frag_off = 0;         // host order, flags|offset
  uint8_t ip_options_words = 0;  // extra 32-bit words of IP options (NOPs)
  std::string payload;
};

// A complete frame with valid IPv4, UDP and TCP checksums.
std::vector<uint8_t> BuildFrame(const FrameSpec& spec);

struct ParsedFrame {
  uint16_t ether_type = 0;
  uint8_t proto = 0;
  uint32_t src_ip = 0, dst_ip = 0;  // host order
  uint16_t src_port = 0, dst_port = 0;
  uint8_t tcp_flags = 0;
  std::string payload;
};

// Parses an Ethernet/IPv4/{TCP,UDP} frame; nullopt if truncated/malformed.
std::optional<ParsedFrame> ParseFrame(const uint8_t* data, size_t len);

// True if the IPv4 header checksum and the TCP/UDP checksum (RFC 768: a
// zero UDP checksum means "none") of an Ethernet/IPv4 frame are valid.
bool ChecksumsValid(const uint8_t* data, size_t len);

// Host-order IPv4 from dotted quad; 0 on error.
uint32_t Ip(const char* dotted);

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_DAEMON_XDP_PACKET_BUILDER_H_
