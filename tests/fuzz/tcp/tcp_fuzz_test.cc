// Replays seeds and deterministic random inputs through the TCP fuzz entry
// points (linked into two separate test binaries).
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/net/corpus_replay.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(TcpFuzzReplayTest, RandomInputs) {
  std::mt19937 rng(7);
  int runs = 0;
  for (int i = 0; i < 300; ++i) {
    std::vector<uint8_t> in(rng() % 600);
    for (auto& b : in) b = static_cast<uint8_t>(rng());
    LLVMFuzzerTestOneInput(in.data(), in.size());
    ++runs;
  }
  LLVMFuzzerTestOneInput(nullptr, 0);
  EXPECT_EQ(runs, 300);
}

TEST(TcpFuzzReplayTest, CheckedInCorpus) {
  // CORPUS_DIR is set per target in BUILD.
  EXPECT_GT(offload::fuzz::ReplayCorpus(CORPUS_DIR), 10);
}

}  // namespace
