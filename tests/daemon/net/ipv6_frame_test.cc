// IPv6 (RFC 8200) frame parsing and building: the fixed header, the TCP/UDP
// checksum over the IPv6 pseudo-header (RFC 8200 8.1), the zero UDP checksum
// rule, and extension headers (rejected, never walked).
#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "daemon/net/checksum.h"
#include "daemon/net/frame.h"
#include "daemon/net/headers.h"
#include "gtest/gtest.h"

namespace offload::net {
namespace {

using Frame = std::vector<uint8_t>;

Ip6Addr Addr(const char* text) {
  Ip6Addr a;
  EXPECT_EQ(inet_pton(AF_INET6, text, a.b), 1) << text;
  return a;
}

struct Spec6 {
  Ip6Addr src = Addr("2001:db8::1");
  Ip6Addr dst = Addr("2001:db8::2");
  uint8_t protocol = kIpProtoTcp;
  std::vector<uint8_t> payload;
  size_t padding = 0;  // link padding after the IPv6 payload
};

// An Ethernet/IPv6/TCP-or-UDP frame with a correct checksum.
Frame Build6(const Spec6& s) {
  const size_t l4_hdr = s.protocol == kIpProtoTcp ? kTcpHeaderLen : kUdpHeaderLen;
  const size_t l4_len = l4_hdr + s.payload.size();
  Frame f(kEthHeaderLen + kIpv6HeaderLen + l4_len + s.padding, 0);
  MacAddr a{{2, 0, 0, 0, 0, 1}}, b{{2, 0, 0, 0, 0, 2}};
  WriteEthHeader(f.data(), b, a, kEthTypeIpv6);
  Ipv6Fields ip;
  ip.src = s.src;
  ip.dst = s.dst;
  ip.next_header = s.protocol;
  ip.hop_limit = 63;
  ip.traffic_class = 0xb8;
  ip.flow_label = 0xabcde;
  WriteIpv6Header(f.data() + kEthHeaderLen, ip, static_cast<uint16_t>(l4_len));
  uint8_t* l4 = f.data() + kEthHeaderLen + kIpv6HeaderLen;
  Store16(l4, 40000);
  Store16(l4 + 2, 80);
  if (s.protocol == kIpProtoTcp) {
    Store32(l4 + 4, 0x01020304);
    Store32(l4 + 8, 0x0a0b0c0d);
    l4[12] = 5 << 4;
    l4[13] = kTcpAck | kTcpPsh;
    Store16(l4 + 14, 65535);
  } else {
    Store16(l4 + 4, static_cast<uint16_t>(l4_len));
  }
  if (!s.payload.empty()) std::memcpy(l4 + l4_hdr, s.payload.data(), s.payload.size());
  FinishL4Checksum6(l4, static_cast<uint16_t>(l4_len), s.protocol, s.src, s.dst);
  return f;
}

// Reference checksum written independently of checksum.cc: 16-bit
// big-endian words of the RFC 8200 8.1 pseudo-header, then the segment.
uint16_t ReferenceChecksum6(const Frame& f) {
  const uint8_t* ip = f.data() + kEthHeaderLen;
  const uint32_t len = (ip[4] << 8) | ip[5];
  std::vector<uint8_t> bytes(ip + 8, ip + 40);  // src, dst
  bytes.insert(bytes.end(), {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
                             static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len), 0, 0, 0,
                             ip[6]});
  bytes.insert(bytes.end(), ip + 40, ip + 40 + len);
  const size_t field = ip[6] == kIpProtoTcp ? 40 + 16 : 40 + 6;
  bytes[field] = bytes[field + 1] = 0;
  if (bytes.size() & 1) bytes.push_back(0);
  uint32_t sum = 0;
  for (size_t i = 0; i < bytes.size(); i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

TEST(Ipv6FrameTest, Rfc8200_TcpRoundTripsWithAllHeaderFields) {
  Spec6 s;
  s.payload = {1, 2, 3, 4, 5};
  s.padding = 7;  // Ethernet padding is not payload
  Frame f = Build6(s);
  EXPECT_EQ(Load16(f.data() + kEthHeaderLen + kIpv6HeaderLen + 16), ReferenceChecksum6(f));
  ParsedFrame p;
  ASSERT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kVerify, &p), ParseStatus::kOk);
  EXPECT_TRUE(p.ipv6);
  EXPECT_EQ(p.src_ip6, s.src);
  EXPECT_EQ(p.dst_ip6, s.dst);
  EXPECT_EQ(p.src_ip, 0u);  // IPv4 fields stay empty
  EXPECT_EQ(p.protocol, kIpProtoTcp);
  EXPECT_EQ(p.ttl, 63);
  EXPECT_EQ(p.tos, 0xb8);
  EXPECT_EQ(p.flow_label, 0xabcdeu);
  EXPECT_EQ(p.src_port, 40000);
  EXPECT_EQ(p.dst_port, 80);
  EXPECT_EQ(p.seq, 0x01020304u);
  EXPECT_EQ(p.ack, 0x0a0b0c0du);
  EXPECT_EQ(p.l4_len, kTcpHeaderLen + 5);
  ASSERT_EQ(p.payload_len, 5u);
  EXPECT_EQ(p.payload[4], 5);
}

TEST(Ipv6FrameTest, Rfc8200_UdpChecksumMatchesReferenceForOddLengths) {
  for (size_t n = 0; n < 40; n += 3) {
    Spec6 s;
    s.protocol = kIpProtoUdp;
    for (size_t i = 0; i < n; ++i) s.payload.push_back(static_cast<uint8_t>(i * 17 + n));
    Frame f = Build6(s);
    EXPECT_EQ(Load16(f.data() + kEthHeaderLen + kIpv6HeaderLen + 6), ReferenceChecksum6(f)) << n;
    ParsedFrame p;
    ASSERT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kVerify, &p), ParseStatus::kOk) << n;
    EXPECT_EQ(p.payload_len, n);
  }
}

TEST(Ipv6FrameTest, Rfc8200_PseudoHeaderCoversBothAddresses) {
  Spec6 s;
  s.payload = {9, 9, 9};
  for (size_t offset : {8u, 23u, 24u, 39u}) {  // first/last byte of src and dst
    Frame f = Build6(s);
    f[kEthHeaderLen + offset] ^= 0x10;
    ParsedFrame p;
    EXPECT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kVerify, &p),
              ParseStatus::kBadL4Checksum) << offset;
    EXPECT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kSkip, &p), ParseStatus::kOk);
  }
}

TEST(Ipv6FrameTest, Rfc8200_ZeroUdpChecksumIsInvalid) {
  Spec6 s;
  s.protocol = kIpProtoUdp;
  s.payload = {1, 2};
  Frame f = Build6(s);
  f[kEthHeaderLen + kIpv6HeaderLen + 6] = f[kEthHeaderLen + kIpv6HeaderLen + 7] = 0;
  ParsedFrame p;
  EXPECT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kVerify, &p), ParseStatus::kBadL4Checksum);
  EXPECT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kVerifyOrPartial, &p),
            ParseStatus::kBadL4Checksum);
  EXPECT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kSkip, &p), ParseStatus::kOk);
}

TEST(Ipv6FrameTest, Rfc8200_ComputedZeroUdpChecksumIsSentAsAllOnes) {
  // Search a 2-byte payload whose checksum computes to 0.
  for (uint32_t v = 0; v < 0x10000; ++v) {
    Spec6 s;
    s.protocol = kIpProtoUdp;
    s.payload = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    Frame f = Build6(s);
    if (ReferenceChecksum6(f) != 0 && ReferenceChecksum6(f) != 0xffff) continue;
    EXPECT_EQ(Load16(f.data() + kEthHeaderLen + kIpv6HeaderLen + 6), 0xffff);
    ParsedFrame p;
    EXPECT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kVerify, &p), ParseStatus::kOk);
    return;
  }
  FAIL() << "no payload with a zero checksum";
}

TEST(Ipv6FrameTest, PartialChecksumAcceptedOnlyWhenAllowed) {
  Spec6 s;
  s.payload = {1, 2, 3, 4, 5, 6, 7};
  Frame f = Build6(s);
  const uint32_t sum = PseudoHeaderSum6(s.src, s.dst, kIpProtoTcp, kTcpHeaderLen + 7);
  const uint16_t partial = static_cast<uint16_t>(~ChecksumFold(sum));
  std::memcpy(f.data() + kEthHeaderLen + kIpv6HeaderLen + 16, &partial, 2);
  ParsedFrame p;
  EXPECT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kVerify, &p), ParseStatus::kBadL4Checksum);
  ASSERT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kVerifyOrPartial, &p), ParseStatus::kOk);
  EXPECT_TRUE(p.l4_checksum_partial);
}

TEST(Ipv6FrameTest, Rfc8200_ExtensionHeadersAreNeverWalked) {
  // Whatever follows an extension header (here bytes that would parse as a
  // valid TCP header) is not read as the upper layer.
  for (uint8_t next : {kIpv6ExtHopByHop, kIpv6ExtRouting, kIpv6ExtDestOpts, kIpv6ExtAh,
                       kIpv6ExtEsp, kIpv6ExtNoNext, kIpv6ExtMobility, kIpv6ExtHip,
                       kIpv6ExtShim6}) {
    Frame f = Build6(Spec6{});
    f[kEthHeaderLen + 6] = next;
    ParsedFrame p;
    EXPECT_EQ(ParseFrame(f.data(), f.size(), L4Checksum::kSkip, &p),
              ParseStatus::kIpv6ExtensionHeader) << int{next};
  }
  Frame frag = Build6(Spec6{});
  frag[kEthHeaderLen + 6] = kIpv6ExtFragment;
  ParsedFrame p;
  EXPECT_EQ(ParseFrame(frag.data(), frag.size(), L4Checksum::kSkip, &p),
            ParseStatus::kIpFragment);
  Frame icmp = Build6(Spec6{});
  icmp[kEthHeaderLen + 6] = kIpProtoIcmpv6;  // ND and echo: the kernel's
  EXPECT_EQ(ParseFrame(icmp.data(), icmp.size(), L4Checksum::kSkip, &p),
            ParseStatus::kUnsupportedProtocol);
}

TEST(Ipv6FrameTest, TruncatedAndMalformedHeaders) {
  Spec6 s;
  s.payload = {1, 2, 3};
  Frame f = Build6(s);
  ParsedFrame p;
  EXPECT_EQ(ParseFrame(f.data(), kEthHeaderLen + 39, L4Checksum::kSkip, &p),
            ParseStatus::kTruncated);
  // Payload length beyond the frame.
  EXPECT_EQ(ParseFrame(f.data(), f.size() - 1, L4Checksum::kSkip, &p),
            ParseStatus::kBadIpTotalLength);
  Frame v4 = f;
  v4[kEthHeaderLen] = 0x45;  // version 4 under the IPv6 ethertype
  EXPECT_EQ(ParseFrame(v4.data(), v4.size(), L4Checksum::kSkip, &p), ParseStatus::kBadIpVersion);
  Frame shortl4 = f;
  Store16(shortl4.data() + kEthHeaderLen + 4, kTcpHeaderLen - 1);
  EXPECT_EQ(ParseFrame(shortl4.data(), shortl4.size(), L4Checksum::kSkip, &p),
            ParseStatus::kTruncated);
  Frame jumbo = f;  // RFC 2675 jumbogram without its hop-by-hop option
  Store16(jumbo.data() + kEthHeaderLen + 4, 0);
  EXPECT_EQ(ParseFrame(jumbo.data(), jumbo.size(), L4Checksum::kSkip, &p),
            ParseStatus::kTruncated);
}

TEST(Ip6AddrTest, Rfc4291_AddressClasses) {
  EXPECT_TRUE(Addr("::").IsUnspecified());
  EXPECT_FALSE(Addr("::1").IsUnspecified());
  EXPECT_TRUE(Addr("ff02::1").IsMulticast());
  EXPECT_TRUE(Addr("fe80::1").IsLinkLocal());
  EXPECT_TRUE(Addr("febf::1").IsLinkLocal());
  EXPECT_FALSE(Addr("fec0::1").IsLinkLocal());
  const Ip6Addr m = Addr("::ffff:198.18.0.1");
  ASSERT_TRUE(m.IsV4Mapped());
  EXPECT_EQ(m.V4(), 0xc6120001u);
  EXPECT_EQ(Ip6Addr::V4Mapped(0xc6120001u), m);
  EXPECT_FALSE(Addr("::198.18.0.1").IsV4Mapped());
  EXPECT_FALSE(Addr("2001:db8::ffff:c612:1").IsV4Mapped());
}

}  // namespace
}  // namespace offload::net
