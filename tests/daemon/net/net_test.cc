// Checksums (RFC 1071), frame parsing and building (Ethernet, ARP, IPv4,
// UDP, TCP), and the ARP neighbour cache.
#include <arpa/inet.h>

#include <cstring>

#include "daemon/net/arp.h"
#include "daemon/net/checksum.h"
#include "daemon/net/frame.h"
#include "daemon/net/index_map.h"
#include "gtest/gtest.h"
#include "tests/testing/packet_builder.h"

namespace offload::testing {
namespace {

using net::ParseStatus;

TEST(ChecksumTest, Rfc1071_ExampleSum) {
  // RFC 1071 1.1 example bytes: 00 01 f2 03 f4 f5 f6 f7 -> sum ddf2.
  const uint8_t b[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  uint16_t c = net::Checksum(b, sizeof(b));
  uint16_t host = ntohs(c);
  EXPECT_EQ(host, static_cast<uint16_t>(~0xddf2));
}

TEST(ChecksumTest, OddLengthAndChainingMatchOneShot) {
  uint8_t buf[1001];
  for (size_t i = 0; i < sizeof(buf); ++i) buf[i] = static_cast<uint8_t>(i * 31 + 7);
  for (size_t len = 0; len <= sizeof(buf); len += 37) {
    // Reference: straightforward 16-bit big-endian sum.
    uint32_t ref = 0;
    for (size_t i = 0; i + 1 < len; i += 2) ref += (buf[i] << 8) | buf[i + 1];
    if (len & 1) ref += buf[len - 1] << 8;
    while (ref >> 16) ref = (ref & 0xffff) + (ref >> 16);
    uint16_t want = static_cast<uint16_t>(~ref);
    EXPECT_EQ(ntohs(net::Checksum(buf, len)), want) << len;
    size_t half = (len / 2) & ~size_t{1};
    uint32_t p = net::ChecksumPartial(buf, half, 0);
    EXPECT_EQ(ntohs(net::ChecksumFold(net::ChecksumPartial(buf + half, len - half, p))), want);
  }
}

TEST(FrameTest, ParsesTcpSegmentWithOptionsAndPayload) {
  TcpSpec s;
  s.src = {Mac(1), Ip("198.18.0.1"), 1234};
  s.dst = {Mac(2), Ip("198.18.0.2"), 80};
  s.seq = 0xfffffff0;
  s.ack = 7;
  s.flags = net::kTcpAck | net::kTcpPsh;
  s.options.timestamp = true;
  s.options.tsval = 11;
  s.options.tsecr = 22;
  s.payload = {1, 2, 3, 4, 5};
  Frame f = BuildTcp(s);
  net::ParsedFrame p;
  ASSERT_EQ(net::ParseFrame(f.data(), f.size(), net::L4Checksum::kVerify, &p), ParseStatus::kOk);
  EXPECT_EQ(p.src_ip, Ip("198.18.0.1"));
  EXPECT_EQ(p.dst_port, 80);
  EXPECT_EQ(p.seq, 0xfffffff0u);
  EXPECT_EQ(p.payload_len, 5u);
  EXPECT_EQ(p.tcp_options_len, 12);
  tcp::TcpOptions o;
  tcp::ParseTcpOptions(p.tcp_options, p.tcp_options_len, false, &o);
  EXPECT_TRUE(o.has_timestamp);
  EXPECT_EQ(o.tsval, 11u);
  EXPECT_EQ(o.tsecr, 22u);
}

TEST(FrameTest, Rfc1122_BadIpChecksumDropped) {
  Frame f = BuildUdp({Mac(1), Ip("198.18.0.1"), 1}, {Mac(2), Ip("198.18.0.2"), 2}, {9});
  f[net::kEthHeaderLen + 10] ^= 1;
  net::ParsedFrame p;
  EXPECT_EQ(net::ParseFrame(f.data(), f.size(), net::L4Checksum::kVerify, &p),
            ParseStatus::kBadIpChecksum);
}

TEST(FrameTest, BadTcpChecksumDroppedOnlyWhenVerifying) {
  TcpSpec s;
  s.src = {Mac(1), Ip("198.18.0.1"), 1};
  s.dst = {Mac(2), Ip("198.18.0.2"), 2};
  s.corrupt_checksum = true;
  Frame f = BuildTcp(s);
  net::ParsedFrame p;
  EXPECT_EQ(net::ParseFrame(f.data(), f.size(), net::L4Checksum::kVerify, &p),
            ParseStatus::kBadL4Checksum);
  EXPECT_EQ(net::ParseFrame(f.data(), f.size(), net::L4Checksum::kSkip, &p), ParseStatus::kOk);
}

// A local sender with checksum offload (CHECKSUM_PARTIAL on a veth) leaves
// only the folded pseudo-header sum in the field; accepted only in
// kVerifyOrPartial mode, and a wrong value is still dropped there.
void SetPartialChecksum(Frame* f, size_t field_offset) {
  net::ParsedFrame p;
  ASSERT_EQ(net::ParseFrame(f->data(), f->size(), net::L4Checksum::kSkip, &p), ParseStatus::kOk);
  uint32_t sum = net::PseudoHeaderSum(htonl(p.src_ip), htonl(p.dst_ip), p.protocol,
                                      static_cast<uint16_t>(p.l4_len));
  uint16_t partial = static_cast<uint16_t>(~net::ChecksumFold(sum));
  std::memcpy(const_cast<uint8_t*>(p.l4) + field_offset, &partial, 2);
}

TEST(FrameTest, PartialChecksumAcceptedOnlyWhenAllowed) {
  TcpSpec s;
  s.src = {Mac(1), Ip("198.18.0.1"), 40000};
  s.dst = {Mac(2), Ip("198.18.0.2"), 80};
  s.payload = {1, 2, 3, 4, 5, 6, 7};
  Frame tcp = BuildTcp(s);
  SetPartialChecksum(&tcp, 16);
  Frame udp = BuildUdp({Mac(1), Ip("198.18.0.1"), 5}, {Mac(2), Ip("198.18.0.2"), 6}, {9, 8, 7});
  SetPartialChecksum(&udp, 6);
  for (Frame* f : {&tcp, &udp}) {
    net::ParsedFrame p;
    EXPECT_EQ(net::ParseFrame(f->data(), f->size(), net::L4Checksum::kVerify, &p),
              ParseStatus::kBadL4Checksum);
    EXPECT_EQ(net::ParseFrame(f->data(), f->size(), net::L4Checksum::kVerifyOrPartial, &p),
              ParseStatus::kOk);
    // Any other wrong value is still a bad checksum.
    uint8_t* field = const_cast<uint8_t*>(p.l4) + (f == &tcp ? 16 : 6);
    field[1] ^= 0x40;
    EXPECT_EQ(net::ParseFrame(f->data(), f->size(), net::L4Checksum::kVerifyOrPartial, &p),
              ParseStatus::kBadL4Checksum);
  }
  // A correct full checksum passes in every mode.
  Frame good = BuildTcp(s);
  net::ParsedFrame p;
  EXPECT_EQ(net::ParseFrame(good.data(), good.size(), net::L4Checksum::kVerifyOrPartial, &p),
            ParseStatus::kOk);
}

TEST(FrameTest, Rfc768_ZeroUdpChecksumMeansNone) {
  Frame f = BuildUdp({Mac(1), Ip("198.18.0.1"), 1}, {Mac(2), Ip("198.18.0.2"), 2}, {9, 8}, true);
  net::ParsedFrame p;
  ASSERT_EQ(net::ParseFrame(f.data(), f.size(), net::L4Checksum::kVerify, &p), ParseStatus::kOk);
  EXPECT_EQ(p.payload_len, 2u);
}

TEST(FrameTest, Rfc791_FragmentsAreDropped) {
  Frame f = BuildUdp({Mac(1), Ip("198.18.0.1"), 1}, {Mac(2), Ip("198.18.0.2"), 2}, {9});
  uint8_t* ip = f.data() + net::kEthHeaderLen;
  net::Store16(ip + 6, net::kIpFlagMf);
  ip[10] = ip[11] = 0;
  uint16_t c = net::Checksum(ip, 20);
  std::memcpy(ip + 10, &c, 2);
  net::ParsedFrame p;
  EXPECT_EQ(net::ParseFrame(f.data(), f.size(), net::L4Checksum::kVerify, &p),
            ParseStatus::kIpFragment);
}

TEST(FrameTest, TruncatedAndMalformedHeaders) {
  Frame f = BuildUdp({Mac(1), Ip("198.18.0.1"), 1}, {Mac(2), Ip("198.18.0.2"), 2}, {9});
  net::ParsedFrame p;
  EXPECT_EQ(net::ParseFrame(f.data(), 10, net::L4Checksum::kVerify, &p), ParseStatus::kTruncated);
  EXPECT_EQ(net::ParseFrame(f.data(), 20, net::L4Checksum::kVerify, &p), ParseStatus::kTruncated);
  Frame v6 = f;
  v6[net::kEthHeaderLen] = 0x65;
  EXPECT_EQ(net::ParseFrame(v6.data(), v6.size(), net::L4Checksum::kVerify, &p),
            ParseStatus::kBadIpVersion);
  Frame ihl = f;
  ihl[net::kEthHeaderLen] = 0x44;
  EXPECT_EQ(net::ParseFrame(ihl.data(), ihl.size(), net::L4Checksum::kVerify, &p),
            ParseStatus::kBadIpHeaderLength);
  Frame ulen = f;
  net::Store16(ulen.data() + 34 + 4, 200);
  EXPECT_EQ(net::ParseFrame(ulen.data(), ulen.size(), net::L4Checksum::kSkip, &p),
            ParseStatus::kBadUdpLength);
  Frame vlan = f;
  net::Store16(vlan.data() + 12, 0x8100);
  EXPECT_EQ(net::ParseFrame(vlan.data(), vlan.size(), net::L4Checksum::kVerify, &p),
            ParseStatus::kUnsupportedEthertype);
}

TEST(FrameTest, TcpDataOffsetBeyondSegmentRejected) {
  TcpSpec s;
  s.src = {Mac(1), Ip("198.18.0.1"), 1};
  s.dst = {Mac(2), Ip("198.18.0.2"), 2};
  Frame f = BuildTcp(s);
  f[34 + 12] = 0xf0;  // 60-byte header in a 20-byte segment
  net::ParsedFrame p;
  EXPECT_EQ(net::ParseFrame(f.data(), f.size(), net::L4Checksum::kSkip, &p),
            ParseStatus::kBadTcpHeaderLength);
}

TEST(FrameTest, ArpRoundTrip) {
  Frame f = BuildArp(net::kArpRequest, net::MacAddr::Broadcast(), Mac(1), Ip("198.18.0.1"),
                     net::MacAddr{}, Ip("198.18.0.2"));
  net::ParsedFrame p;
  ASSERT_EQ(net::ParseFrame(f.data(), f.size(), net::L4Checksum::kVerify, &p), ParseStatus::kOk);
  ASSERT_NE(p.arp, nullptr);
  EXPECT_EQ(net::Load32(p.arp->tpa), Ip("198.18.0.2"));
  f[14 + 7] = 9;  // bad opcode
  EXPECT_EQ(net::ParseFrame(f.data(), f.size(), net::L4Checksum::kVerify, &p),
            ParseStatus::kBadArp);
}

TEST(OptionsTest, MalformedLengthStopsParsingLikeLinux) {
  const uint8_t opts[] = {2, 4, 5, 0xb4, 8, 1, 0, 0, 0, 0, 0, 0};
  tcp::TcpOptions o;
  tcp::ParseTcpOptions(opts, sizeof(opts), true, &o);
  EXPECT_TRUE(o.has_mss);
  EXPECT_EQ(o.mss, 1460);
  EXPECT_FALSE(o.has_timestamp);
}

TEST(OptionsTest, SynOnlyOptionsIgnoredOnNonSyn) {
  const uint8_t opts[] = {2, 4, 5, 0xb4, 1, 3, 3, 7};
  tcp::TcpOptions o;
  tcp::ParseTcpOptions(opts, sizeof(opts), false, &o);
  EXPECT_FALSE(o.has_mss);
  EXPECT_FALSE(o.has_wscale);
}

TEST(IndexMapTest, InsertFindEraseWithCollisions) {
  net::IndexMap<net::Ipv4Key> m(100);
  for (uint32_t i = 0; i < 100; ++i) ASSERT_TRUE(m.Insert({i * 4096}, i));
  EXPECT_FALSE(m.Insert({999999}, 1));  // full
  for (uint32_t i = 0; i < 100; i += 2) ASSERT_TRUE(m.Erase({i * 4096}));
  for (uint32_t i = 0; i < 100; ++i) {
    EXPECT_EQ(m.Find({i * 4096}), i % 2 ? i : net::IndexMap<net::Ipv4Key>::kNone);
  }
}

class ArpCacheTest : public ::testing::Test {
 protected:
  net::ArpConfig cfg_;
  uint64_t now_ = 1000;
};

TEST_F(ArpCacheTest, Rfc826_UnknownNeighbor_RequestThenQueueThenResolve) {
  net::ArpCache c(cfg_);
  net::MacAddr mac;
  bool req = false;
  EXPECT_EQ(c.Lookup(Ip("198.18.0.9"), now_, &mac, &req), net::ArpCache::Result::kIncomplete);
  EXPECT_TRUE(req);
  EXPECT_EQ(c.Lookup(Ip("198.18.0.9"), now_, &mac, &req), net::ArpCache::Result::kIncomplete);
  EXPECT_FALSE(req);  // one request per interval
  EXPECT_TRUE(c.EnqueuePending(Ip("198.18.0.9"), 1));
  EXPECT_TRUE(c.EnqueuePending(Ip("198.18.0.9"), 2));
  EXPECT_TRUE(c.EnqueuePending(Ip("198.18.0.9"), 3));
  EXPECT_FALSE(c.EnqueuePending(Ip("198.18.0.9"), 4));  // bounded queue
  EXPECT_TRUE(c.Update(Ip("198.18.0.9"), Mac(9), now_, false));
  uint32_t out[8];
  EXPECT_EQ(c.TakePending(Ip("198.18.0.9"), out, 8), 3u);
  EXPECT_EQ(c.Lookup(Ip("198.18.0.9"), now_, &mac, &req), net::ArpCache::Result::kResolved);
  EXPECT_EQ(mac, Mac(9));
}

TEST_F(ArpCacheTest, Rfc1122_RequestRetransmittedThenFailsAndDropsQueue) {
  net::ArpCache c(cfg_);
  net::MacAddr mac;
  bool req;
  c.Lookup(Ip("198.18.0.9"), now_, &mac, &req);
  c.EnqueuePending(Ip("198.18.0.9"), 5);
  int requests = 0, drops = 0;
  for (int i = 1; i <= 3; ++i) {
    c.Tick(now_ + i * cfg_.retrans_ns, [&](uint32_t) { ++requests; }, [&](uint32_t) { ++drops; });
  }
  EXPECT_EQ(requests, 2);  // 3 requests in total
  EXPECT_EQ(drops, 1);
  EXPECT_EQ(c.Lookup(Ip("198.18.0.9"), now_ + 3 * cfg_.retrans_ns + 1, &mac, &req),
            net::ArpCache::Result::kFailed);
  // After the hold time a new resolution may start.
  c.Tick(now_ + 5 * cfg_.retrans_ns, [](uint32_t) {}, [](uint32_t) {});
  EXPECT_EQ(c.Lookup(Ip("198.18.0.9"), now_ + 5 * cfg_.retrans_ns, &mac, &req),
            net::ArpCache::Result::kIncomplete);
  EXPECT_TRUE(req);
}

TEST_F(ArpCacheTest, SeededEntry_AgesAndIsRefreshedWhileUsable) {
  net::ArpCache c(cfg_);
  c.SeedNeighbor(Ip("198.18.0.7"), Mac(7), now_);
  net::MacAddr mac;
  bool req;
  EXPECT_EQ(c.Lookup(Ip("198.18.0.7"), now_ + cfg_.reachable_ns + 1, &mac, &req),
            net::ArpCache::Result::kResolved);
  EXPECT_TRUE(req);
  c.SeedNeighbor(Ip("198.18.0.8"), Mac(8), now_, /*permanent=*/true);
  EXPECT_EQ(c.Lookup(Ip("198.18.0.8"), now_ + 100 * cfg_.reachable_ns, &mac, &req),
            net::ArpCache::Result::kResolved);
  EXPECT_FALSE(req);
}

TEST_F(ArpCacheTest, Rfc826_MergeOnlyUpdatesKnownEntriesUnlessTargeted) {
  net::ArpCache c(cfg_);
  EXPECT_FALSE(c.Update(Ip("198.18.0.5"), Mac(5), now_, /*create=*/false));
  EXPECT_EQ(c.size(), 0u);
  c.Update(Ip("198.18.0.5"), Mac(5), now_, /*create=*/true);
  EXPECT_EQ(c.size(), 1u);
}

}  // namespace
}  // namespace offload::testing
