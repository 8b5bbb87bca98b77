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
  seeds.push_back(BuildArp(net::kArpRequest, net::MacAddr::Broadcast(), Mac(1), 1, {}, 2));
  seeds.push_back(Frame{2, 4, 5, 0xb4, 1, 3, 3, 14, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2});
  return seeds;
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
  EXPECT_EQ(runs, 10000u);
}

TEST(FrameFuzzTest, ReplaysCheckedInCorpus) {
  // Inputs libFuzzer found interesting (60 s runs), kept as regression seeds.
  EXPECT_GT(fuzz::ReplayCorpus("tests/fuzz/net/corpus"), 10);
}

}  // namespace
}  // namespace offload::testing
