// IPv6 UDP frames for the daemon's tests (the stack's udp6_test, the
// engine's engine_udp6_test), with the checksum computed independently of
// daemon/net/checksum (RFC 1071 over the RFC 8200 8.1 pseudo-header).
#ifndef OFFLOAD_TESTS_DAEMON_UDP_UDP6_FRAMES_H_
#define OFFLOAD_TESTS_DAEMON_UDP_UDP6_FRAMES_H_

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "daemon/net/frame.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"

namespace offload::testing {

inline net::Ip6Addr A6(const char* text) {
  net::Ip6Addr a;
  EXPECT_EQ(inet_pton(AF_INET6, text, a.b), 1) << text;
  return a;
}

inline uint32_t Sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  return sum;
}
inline uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}
// The RFC 8200 8.1 pseudo-header plus the UDP header and payload at `l4`.
inline uint32_t PseudoSum6(const net::Ip6Addr& src, const net::Ip6Addr& dst, const uint8_t* l4,
                           size_t l4_len) {
  uint32_t sum = Sum16(src.b, 16) + Sum16(dst.b, 16);
  sum += static_cast<uint32_t>(l4_len >> 16) + static_cast<uint32_t>(l4_len & 0xffff);
  sum += net::kIpProtoUdp;
  return Sum16(l4, l4_len, sum);
}

// An Ethernet/IPv6/UDP frame from kPeerMac to kUsMac with a correct
// checksum (or `checksum` as given when `force` is set).
inline Frame Udp6Frame(const net::Ip6Addr& src, const net::Ip6Addr& dst, uint16_t sport,
                       uint16_t dport, const std::string& payload, bool force = false,
                       uint16_t checksum = 0) {
  const size_t l4_len = 8 + payload.size();
  Frame f(net::kEthHeaderLen + net::kIpv6HeaderLen + l4_len);
  net::WriteEthHeader(f.data(), kUsMac, kPeerMac, net::kEthTypeIpv6);
  net::Ipv6Fields ip;
  ip.src = src;
  ip.dst = dst;
  ip.next_header = net::kIpProtoUdp;
  net::WriteIpv6Header(f.data() + net::kEthHeaderLen, ip, static_cast<uint16_t>(l4_len));
  uint8_t* l4 = f.data() + net::kEthHeaderLen + net::kIpv6HeaderLen;
  const uint16_t fields[3] = {sport, dport, static_cast<uint16_t>(l4_len)};
  for (int i = 0; i < 3; ++i) {
    l4[2 * i] = static_cast<uint8_t>(fields[i] >> 8);
    l4[2 * i + 1] = static_cast<uint8_t>(fields[i]);
  }
  std::memcpy(l4 + 8, payload.data(), payload.size());
  uint16_t c = checksum;
  if (!force) {
    c = static_cast<uint16_t>(~Fold(PseudoSum6(src, dst, l4, l4_len)));
    if (c == 0) c = 0xffff;
  }
  l4[6] = static_cast<uint8_t>(c >> 8);
  l4[7] = static_cast<uint8_t>(c);
  return f;
}

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_DAEMON_UDP_UDP6_FRAMES_H_
