// FaultNicQueue over an in-memory queue: loss rates, reordering without loss
// or duplication, release of held frames by time with no further traffic,
// a full TX ring, and the OFFLOADD_FAULT parser.

#include "daemon/nic/fault_nic.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "daemon/nic/fault_spec.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_nic.h"

namespace offload::nic {
namespace {

// The tests' one in-memory queue (tests/testing/fake_nic.h), its frames
// carrying a 32-bit sequence number as their whole payload.
class MemQueue : public offload::testing::FakeQueue {
 public:
  void Inject(uint32_t seq) {
    FakeQueue::Inject(std::string(reinterpret_cast<const char*>(&seq), sizeof(seq)));
  }
  std::vector<uint32_t> sent() {
    std::vector<uint32_t> out;
    for (const std::string& f : Sent()) {
      uint32_t seq = 0;
      std::memcpy(&seq, f.data(), std::min(f.size(), sizeof(seq)));
      out.push_back(seq);
    }
    return out;
  }
  size_t tx_free() const { return free_tx_buffers(); }
};

struct Rig {
  explicit Rig(const FaultSpec& spec)
      : fault(&mem, spec, [this] { return now_ns; }) {}
  int64_t now_ns = 1000000000;
  MemQueue mem;
  FaultNicQueue fault;
};

FaultSpec Spec(const char* text) {
  absl::StatusOr<FaultSpec> s = ParseFaultSpec(text);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : FaultSpec();
}

// Receives everything the rig's memory queue holds, as the engine does
// (bursts of 32, ArmWakeup when a burst comes back empty).
std::vector<uint32_t> DrainRx(Rig& rig, size_t burst = 32) {
  std::vector<uint32_t> got;
  RxFrame frames[64];
  for (int idle = 0; idle < 3;) {
    size_t n = rig.fault.RxBurst(frames, burst);
    for (size_t i = 0; i < n; ++i) {
      uint32_t seq;
      std::memcpy(&seq, frames[i].data, 4);
      got.push_back(seq);
    }
    rig.fault.ReleaseRx(frames, n);
    rig.now_ns += 1000;
    if (n == 0 && rig.fault.ArmWakeup()) ++idle;
  }
  return got;
}

// Sends seq 0..count-1 like engine::TxBatch: a batch of up to 64 is
// submitted, a refused suffix is retried on the next round; a round ends
// with ReclaimTx. Returns when everything was accepted and ArmWakeup agrees.
void SendAll(Rig& rig, uint32_t count, size_t batch, size_t room_per_round) {
  std::vector<TxFrame> pending;
  uint32_t next = 0;
  for (int rounds = 0; rounds < 1000000; ++rounds) {
    while (pending.size() < batch && next < count) {
      TxFrame f;
      ASSERT_EQ(rig.mem.AllocTx(&f, 1), 1u);
      std::memcpy(f.data, &next, 4);
      f.len = 4;
      ++next;
      pending.push_back(f);
    }
    rig.mem.set_tx_room(room_per_round);
    size_t k = pending.empty() ? 0 : rig.fault.SubmitTx(pending.data(), pending.size());
    pending.erase(pending.begin(), pending.begin() + k);
    rig.fault.ReclaimTx();
    rig.now_ns += 1000;
    if (next == count && pending.empty()) {
      rig.mem.set_tx_room(SIZE_MAX);
      if (rig.fault.ArmWakeup()) return;
    }
  }
  FAIL() << "SendAll did not finish";
}

size_t Inversions(const std::vector<uint32_t>& v) {
  size_t n = 0;
  for (size_t i = 1; i < v.size(); ++i) n += v[i] < v[i - 1];
  return n;
}

TEST(FaultNicTest, RxLossRateIsApproximatelyRight) {
  Rig rig(Spec("rx_loss=0.05,seed=7"));
  constexpr uint32_t kFrames = 100000;
  for (uint32_t i = 0; i < kFrames; ++i) rig.mem.Inject(i);
  std::vector<uint32_t> got = DrainRx(rig);
  double rate = 1.0 - static_cast<double>(got.size()) / kFrames;
  EXPECT_NEAR(rate, 0.05, 0.005);
  EXPECT_EQ(rig.fault.counters().fault_rx_drops.Get(), kFrames - got.size());
  EXPECT_EQ(rig.fault.counters().rx_packets.Get(), got.size());
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));  // loss only: order kept
  EXPECT_EQ(rig.mem.rx_outstanding(), 0u);               // dropped buffers returned
  EXPECT_FALSE(rig.mem.double_release());
}

TEST(FaultNicTest, TxLossRateIsApproximatelyRightAndBuffersReturn) {
  Rig rig(Spec("tx_loss=0.01,seed=3"));
  constexpr uint32_t kFrames = 200000;
  SendAll(rig, kFrames, 64, SIZE_MAX);
  double rate = 1.0 - static_cast<double>(rig.mem.sent().size()) / kFrames;
  EXPECT_NEAR(rate, 0.01, 0.002);
  EXPECT_EQ(rig.fault.counters().fault_tx_drops.Get(), kFrames - rig.mem.sent().size());
  EXPECT_EQ(rig.mem.tx_free(), MemQueue::kBuffers);
  EXPECT_FALSE(rig.mem.double_release());
}

// Every frame not dropped comes out exactly once; returns the output.
void ExpectEachOnce(const std::vector<uint32_t>& out, uint32_t count, uint64_t drops) {
  std::vector<uint32_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_TRUE(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end())
      << "a frame came out twice";
  EXPECT_EQ(out.size() + drops, count);
  for (uint32_t s : sorted) ASSERT_LT(s, count);
}

TEST(FaultNicTest, RxReorderingChangesOrderAndLosesNothing) {
  Rig rig(Spec("rx_reorder=0.05,reorder_depth=3,reorder_us=200,seed=11"));
  constexpr uint32_t kFrames = 20000;
  for (uint32_t i = 0; i < kFrames; ++i) rig.mem.Inject(i);
  std::vector<uint32_t> got = DrainRx(rig);
  ExpectEachOnce(got, kFrames, 0);
  // Frames held together come out together (in order among themselves), so
  // there are fewer descents than held frames.
  EXPECT_NEAR(rig.fault.counters().fault_rx_reorders.Get() / double{kFrames}, 0.05, 0.01);
  EXPECT_GT(Inversions(got), kFrames * 0.05 * 0.25);
  EXPECT_EQ(rig.fault.rx_held(), 0u);
  EXPECT_EQ(rig.mem.rx_outstanding(), 0u);
  // A held frame is overtaken by depth frames (plus at most the rest of the
  // burst it came in), never more.
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LE(i, got[i] + 3 + 32) << "frame " << got[i] << " out at " << i;
  }
}

TEST(FaultNicTest, TxReorderAndLossWithFullRingLoseAndDuplicateNothing) {
  Rig rig(Spec("tx_loss=0.02,tx_reorder=0.1,reorder_depth=4,reorder_us=50,seed=5"));
  constexpr uint32_t kFrames = 50000;
  // The wrapped ring takes only 7 frames per round: SubmitTx keeps being
  // refused part-way, with held frames on both sides of the refusal.
  SendAll(rig, kFrames, 64, 7);
  ExpectEachOnce(rig.mem.sent(), kFrames, rig.fault.counters().fault_tx_drops.Get());
  EXPECT_GT(Inversions(rig.mem.sent()), 1000u);
  EXPECT_GT(rig.fault.counters().fault_tx_reorders.Get(), 0u);
  EXPECT_GT(rig.fault.counters().fault_tx_drops.Get(), 0u);
  EXPECT_EQ(rig.fault.tx_held(), 0u);
  EXPECT_EQ(rig.mem.tx_free(), MemQueue::kBuffers);
  EXPECT_FALSE(rig.mem.double_release());
}

TEST(FaultNicTest, SameSeedSameDecisions) {
  std::vector<uint32_t> runs[2];
  for (auto& out : runs) {
    Rig rig(Spec("rx_loss=0.03,rx_reorder=0.05,seed=99"));
    for (uint32_t i = 0; i < 5000; ++i) rig.mem.Inject(i);
    out = DrainRx(rig);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

TEST(FaultNicTest, HeldRxFrameReleasedByTimeWithNoFurtherTraffic) {
  Rig rig(Spec("rx_reorder=1,reorder_depth=3,reorder_us=200"));
  rig.mem.Inject(42);
  RxFrame f[4];
  EXPECT_EQ(rig.fault.RxBurst(f, 4), 0u);  // held
  EXPECT_EQ(rig.fault.rx_held(), 1u);
  EXPECT_FALSE(rig.fault.RxPending());
  rig.now_ns += 199000;
  EXPECT_FALSE(rig.fault.RxPending());
  EXPECT_EQ(rig.fault.RxBurst(f, 4), 0u);
  rig.now_ns += 1000;
  EXPECT_TRUE(rig.fault.RxPending());
  ASSERT_EQ(rig.fault.RxBurst(f, 4), 1u);
  EXPECT_EQ(*reinterpret_cast<const uint32_t*>(f[0].data), 42u);
  rig.fault.ReleaseRx(f, 1);
  EXPECT_EQ(rig.mem.rx_outstanding(), 0u);
}

TEST(FaultNicTest, ArmWakeupRefusesToSleepOnHeldRxAndReleasesThem) {
  Rig rig(Spec("rx_reorder=1,reorder_us=1000000"));
  rig.mem.Inject(1);
  RxFrame f[4];
  EXPECT_EQ(rig.fault.RxBurst(f, 4), 0u);
  EXPECT_FALSE(rig.fault.ArmWakeup());  // would strand the frame
  EXPECT_TRUE(rig.fault.RxPending());
  ASSERT_EQ(rig.fault.RxBurst(f, 4), 1u);  // no time passed
  rig.fault.ReleaseRx(f, 1);
  EXPECT_TRUE(rig.fault.ArmWakeup());
  EXPECT_TRUE(rig.mem.armed());
}

TEST(FaultNicTest, HeldTxFrameSentByTimeOnReclaimOrAtOnceBeforeSleep) {
  Rig rig(Spec("tx_reorder=1,reorder_us=200"));
  TxFrame f;
  ASSERT_EQ(rig.mem.AllocTx(&f, 1), 1u);
  uint32_t seq = 9;
  std::memcpy(f.data, &seq, 4);
  f.len = 4;
  EXPECT_EQ(rig.fault.SubmitTx(&f, 1), 1u);  // accepted, held
  EXPECT_EQ(rig.fault.TxInFlight(), 1u);
  rig.fault.ReclaimTx();
  EXPECT_TRUE(rig.mem.sent().empty());
  rig.now_ns += 200000;
  rig.fault.ReclaimTx();
  EXPECT_EQ(rig.mem.sent(), std::vector<uint32_t>{9});

  // Held again; this time the owner goes to sleep before the time is up.
  ASSERT_EQ(rig.mem.AllocTx(&f, 1), 1u);
  seq = 10;
  std::memcpy(f.data, &seq, 4);
  f.len = 4;  // AllocTx hands out empty frames
  EXPECT_EQ(rig.fault.SubmitTx(&f, 1), 1u);
  EXPECT_TRUE(rig.fault.ArmWakeup());  // flushed, then armed the wrapped queue
  EXPECT_EQ(rig.mem.sent(), (std::vector<uint32_t>{9, 10}));
  EXPECT_EQ(rig.fault.tx_held(), 0u);
}

TEST(FaultNicTest, ArmWakeupStaysAwakeWhileTheRingRefusesAHeldFrame) {
  Rig rig(Spec("tx_reorder=1"));
  TxFrame f;
  ASSERT_EQ(rig.mem.AllocTx(&f, 1), 1u);
  f.len = 4;
  EXPECT_EQ(rig.fault.SubmitTx(&f, 1), 1u);
  rig.mem.set_tx_room(0);
  EXPECT_FALSE(rig.fault.ArmWakeup());
  EXPECT_EQ(rig.fault.tx_held(), 1u);
  rig.mem.set_tx_room(1);
  EXPECT_TRUE(rig.fault.ArmWakeup());
  EXPECT_EQ(rig.mem.sent().size(), 1u);
}

TEST(FaultNicTest, DestructionGivesHeldFramesBack) {
  MemQueue mem;
  {
    FaultNicQueue q(&mem, Spec("rx_reorder=1,tx_reorder=1"));
    mem.Inject(1);
    RxFrame r[2];
    EXPECT_EQ(q.RxBurst(r, 2), 0u);
    TxFrame t;
    ASSERT_EQ(mem.AllocTx(&t, 1), 1u);
    EXPECT_EQ(q.SubmitTx(&t, 1), 1u);
    EXPECT_EQ(mem.rx_outstanding(), 1u);
  }
  EXPECT_EQ(mem.rx_outstanding(), 0u);
  EXPECT_EQ(mem.tx_free(), MemQueue::kBuffers);
}

TEST(FaultSpecTest, ParsesEveryKey) {
  absl::StatusOr<FaultSpec> s = ParseFaultSpec(
      "rx_loss=0.01,tx_loss=0.05,rx_reorder=0.02,tx_reorder=1,reorder_depth=5,"
      "reorder_us=300,seed=18446744073709551615");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->rx.loss, 0.01);
  EXPECT_DOUBLE_EQ(s->tx.loss, 0.05);
  EXPECT_DOUBLE_EQ(s->rx.reorder, 0.02);
  EXPECT_DOUBLE_EQ(s->tx.reorder, 1.0);
  EXPECT_EQ(s->reorder_depth, 5u);
  EXPECT_EQ(s->reorder_us, 300u);
  EXPECT_EQ(s->seed, UINT64_MAX);
  EXPECT_TRUE(s->active());
  absl::StatusOr<FaultSpec> again = ParseFaultSpec(s->ToString());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToString(), s->ToString());
}

TEST(FaultSpecTest, BothDirectionKeysAndEmpty) {
  FaultSpec s = Spec("loss=0.1,reorder=0.2");
  EXPECT_DOUBLE_EQ(s.rx.loss, 0.1);
  EXPECT_DOUBLE_EQ(s.tx.loss, 0.1);
  EXPECT_DOUBLE_EQ(s.rx.reorder, 0.2);
  EXPECT_DOUBLE_EQ(s.tx.reorder, 0.2);
  EXPECT_FALSE(Spec("").active());
  EXPECT_FALSE(Spec("reorder_depth=2").active());
}

TEST(FaultSpecTest, MalformedTokensAreNamed) {
  const char* bad[][2] = {
      {"rx_loss=abc", "'rx_loss=abc'"},
      {"rx_loss=0.01,tx_loss=1.5", "'tx_loss=1.5'"},
      {"rx_loss=-0.1", "'rx_loss=-0.1'"},
      {"rx_loss=nan", "'rx_loss=nan'"},
      {"rx_loss=", "'rx_loss='"},
      {"rx_loss", "expected key=value"},
      {"rx_los=0.1", "unknown key 'rx_los'"},
      {"rx_loss=0.1,,tx_loss=0.1", "empty token"},
      {"rx_loss=0.1,", "empty token"},
      {"reorder_depth=0", "'reorder_depth=0'"},
      {"reorder_depth=65", "1..64"},
      {"reorder_us=2.5", "'reorder_us=2.5'"},
      {"seed=18446744073709551616", "'seed=18446744073709551616'"},
      {"rx_loss=0.01 ", "'rx_loss=0.01 '"},
  };
  for (const auto& [text, want] : bad) {
    absl::StatusOr<FaultSpec> s = ParseFaultSpec(text);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(s.status().message().find(want), absl::string_view::npos)
        << text << " -> " << s.status().message();
    EXPECT_NE(s.status().message().find("OFFLOADD_FAULT"), absl::string_view::npos);
  }
}

}  // namespace
}  // namespace offload::nic
