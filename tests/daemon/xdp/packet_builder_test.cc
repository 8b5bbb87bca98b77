// The test packet builder must produce what the kernel accepts: checksums
// are checked against known-good values and the parser round-trips.

#include "tests/daemon/xdp/packet_builder.h"

#include "gtest/gtest.h"

namespace offload::testing {
namespace {

uint16_t Fold(const uint8_t* p, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len & 1) sum += p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

TEST(PacketBuilderTest, UdpRoundTripsWithValidChecksums) {
  FrameSpec s;
  s.src_ip = Ip("198.18.0.2");
  s.dst_ip = Ip("198.18.0.1");
  s.src_port = 4000;
  s.dst_port = 7000;
  s.payload = "abc";
  std::vector<uint8_t> f = BuildFrame(s);
  ASSERT_EQ(f.size(), 14u + 20 + 8 + 3);
  EXPECT_EQ(Fold(&f[14], 20, 0), 0xffff);  // IPv4 header sums to all ones
  // UDP: pseudo-header + segment sums to all ones.
  uint32_t pseudo = Fold(&f[26], 8, 0) + 17 + 11;
  EXPECT_EQ(Fold(&f[34], 11, pseudo), 0xffff);
  auto p = ParseFrame(f.data(), f.size());
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->proto, 17);
  EXPECT_EQ(p->src_port, 4000);
  EXPECT_EQ(p->dst_port, 7000);
  EXPECT_EQ(p->src_ip, Ip("198.18.0.2"));
  EXPECT_EQ(p->payload, "abc");
}

TEST(PacketBuilderTest, TcpCarriesFlagsAndChecksum) {
  FrameSpec s;
  s.proto = 6;
  s.src_ip = Ip("198.18.0.2");
  s.dst_ip = Ip("198.18.0.1");
  s.src_port = 1;
  s.dst_port = 2;
  s.tcp_flags = 0x12;
  std::vector<uint8_t> f = BuildFrame(s);
  uint32_t pseudo = Fold(&f[26], 8, 0) + 6 + 20;
  EXPECT_EQ(Fold(&f[34], 20, pseudo), 0xffff);
  auto p = ParseFrame(f.data(), f.size());
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->tcp_flags, 0x12);
}

TEST(PacketBuilderTest, ChecksumsValidDetectsCorruption) {
  FrameSpec s;
  s.src_ip = Ip("198.18.0.2");
  s.dst_ip = Ip("198.18.0.1");
  s.src_port = 1;
  s.dst_port = 2;
  s.payload = "payload";
  std::vector<uint8_t> f = BuildFrame(s);
  EXPECT_TRUE(ChecksumsValid(f.data(), f.size()));
  f.back() ^= 1;
  EXPECT_FALSE(ChecksumsValid(f.data(), f.size()));
  s.proto = 6;
  f = BuildFrame(s);
  EXPECT_TRUE(ChecksumsValid(f.data(), f.size()));
  f[14 + 8] ^= 1;  // TTL: IPv4 header checksum
  EXPECT_FALSE(ChecksumsValid(f.data(), f.size()));
}

TEST(PacketBuilderTest, TruncatedFrameDoesNotParse) {
  FrameSpec s;
  s.src_ip = 1;
  s.dst_ip = 2;
  std::vector<uint8_t> f = BuildFrame(s);
  EXPECT_FALSE(ParseFrame(f.data(), f.size() - 1).has_value());
  EXPECT_FALSE(ParseFrame(f.data(), 10).has_value());
}

}  // namespace
}  // namespace offload::testing
