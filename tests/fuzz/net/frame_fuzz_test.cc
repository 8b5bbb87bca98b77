// Replays seed frames (every header type, plus deterministic mutations)
// through the frame fuzzer's entry point, so `bazel test` exercises it.
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/net/corpus_replay.h"
#include "tests/testing/packet_builder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace offload::testing {
namespace {

// The IPv4 TCP/UDP frame `v4` re-framed as IPv6 (2001:db8::1 -> ::2), with
// a correct checksum over the IPv6 pseudo-header.
Frame ToIpv6(const Frame& v4) {
  const size_t ihl = (v4[net::kEthHeaderLen] & 0xf) * 4;
  const uint8_t proto = v4[net::kEthHeaderLen + 9];
  Frame f(v4.begin(), v4.begin() + net::kEthHeaderLen);
  net::Store16(f.data() + 12, net::kEthTypeIpv6);
  const size_t l4_len = net::Load16(v4.data() + net::kEthHeaderLen + 2) - ihl;  // no padding
  f.resize(net::kEthHeaderLen + net::kIpv6HeaderLen);
  net::Ipv6Fields ip;
  ip.src.b[0] = ip.dst.b[0] = 0x20;
  ip.src.b[1] = ip.dst.b[1] = 0x01;
  ip.src.b[2] = ip.dst.b[2] = 0x0d;
  ip.src.b[3] = ip.dst.b[3] = 0xb8;
  ip.src.b[15] = 1;
  ip.dst.b[15] = 2;
  ip.next_header = proto;
  net::WriteIpv6Header(f.data() + net::kEthHeaderLen, ip, static_cast<uint16_t>(l4_len));
  f.insert(f.end(), v4.begin() + net::kEthHeaderLen + ihl,
           v4.begin() + net::kEthHeaderLen + ihl + l4_len);
  net::FinishL4Checksum6(f.data() + net::kEthHeaderLen + net::kIpv6HeaderLen,
                         static_cast<uint16_t>(l4_len), proto, ip.src, ip.dst);
  return f;
}

std::vector<Frame> Seeds() {
  std::vector<Frame> seeds;
  TcpSpec s;
  s.src = {Mac(1), Ip("198.18.0.1"), 1000};
  s.dst = {Mac(2), Ip("198.18.0.2"), 80};
  s.flags = net::kTcpSyn;
  s.options.mss = true;
  s.options.mss_value = 1460;
  s.options.sack_permitted = true;
  s.options.timestamp = true;
  s.options.wscale = true;
  s.options.wscale_value = 7;
  seeds.push_back(BuildTcp(s));
  s.flags = net::kTcpAck;
  s.options = {};
  s.options.num_sack = 3;
  s.options.timestamp = true;
  s.payload = {1, 2, 3};
  seeds.push_back(BuildTcp(s));
  seeds.push_back(BuildUdp(s.src, s.dst, {9, 9, 9}));
  seeds.push_back(ToIpv6(seeds[0]));
  seeds.push_back(ToIpv6(seeds[1]));
  seeds.push_back(ToIpv6(seeds[2]));
  seeds.push_back(BuildArp(net::kArpRequest, net::MacAddr::Broadcast(), Mac(1), 1, {}, 2));
  seeds.push_back(Frame{2, 4, 5, 0xb4, 1, 3, 3, 14, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2});
  return seeds;
}

TEST(FrameFuzzTest, Ipv6SeedsParse) {
  std::vector<Frame> seeds = Seeds();
  for (size_t i = 3; i < 6; ++i) {
    net::ParsedFrame p;
    ASSERT_EQ(net::ParseFrame(seeds[i].data(), seeds[i].size(), net::L4Checksum::kVerify, &p),
              net::ParseStatus::kOk) << i;
    EXPECT_TRUE(p.ipv6);
  }
}

TEST(FrameFuzzTest, ReplaysSeedsAndMutations) {
  std::mt19937 rng(1);
  size_t runs = 0;
  for (const Frame& seed : Seeds()) {
    LLVMFuzzerTestOneInput(seed.data(), seed.size());
    for (int i = 0; i < 2000; ++i) {
      Frame m = seed;
      int flips = 1 + rng() % 4;
      for (int k = 0; k < flips; ++k) m[rng() % m.size()] ^= static_cast<uint8_t>(1 << (rng() % 8));
      if (rng() % 4 == 0) m.resize(rng() % (m.size() + 1));
      LLVMFuzzerTestOneInput(m.data(), m.size());
      ++runs;
    }
  }
  EXPECT_EQ(runs, 16000u);
}

TEST(FrameFuzzTest, ReplaysCheckedInCorpus) {
  // Inputs libFuzzer found interesting (60 s runs), kept as regression seeds.
  EXPECT_GT(fuzz::ReplayCorpus("tests/fuzz/net/corpus"), 10);
}

}  // namespace
}  // namespace offload::testing
