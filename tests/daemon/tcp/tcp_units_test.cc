// Unit tests of TCP building blocks: sequence arithmetic, interval sets
// (reassembly / scoreboard), shared-memory byte rings with untrusted
// indices, RFC 6528 ISNs, RFC 6675 pipe/IsLost, CUBIC window growth.
#include <random>
#include <set>
#include <vector>

#include "daemon/tcp/byte_ring.h"
#include "daemon/tcp/interval_set.h"
#include "daemon/tcp/isn.h"
#include "daemon/tcp/sack.h"
#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcb.h"
#include "gtest/gtest.h"
#include "tests/testing/owned_ring.h"

namespace offload::tcp {
namespace {

using testing::OwnedRing;

TEST(SeqTest, WrapSafeComparison) {
  EXPECT_TRUE(SeqLt(0xfffffff0u, 0x10u));
  EXPECT_TRUE(SeqGt(0x10u, 0xfffffff0u));
  EXPECT_TRUE(SeqInRange(0u, 0xffffff00u, 0x100u));
  EXPECT_EQ(SeqMax(0xfffffff0u, 0x10u), 0x10u);
}

TEST(IntervalSetTest, MergesOverlappingAndAdjacentRanges) {
  SeqIntervalSet<8> s;
  EXPECT_TRUE(s.Add(10, 20));
  EXPECT_TRUE(s.Add(30, 40));
  EXPECT_TRUE(s.Add(20, 30));  // adjacent on both sides
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].start, 10u);
  EXPECT_EQ(s[0].end, 40u);
  EXPECT_FALSE(s.Add(50, 50));  // empty
}

TEST(IntervalSetTest, BoundedCapacityRefusesNewRangeButAllowsMerge) {
  SeqIntervalSet<2> s;
  EXPECT_TRUE(s.Add(10, 20));
  EXPECT_TRUE(s.Add(30, 40));
  EXPECT_FALSE(s.Add(50, 60));
  EXPECT_TRUE(s.Add(15, 35));
  EXPECT_EQ(s.size(), 1u);
}

TEST(IntervalSetTest, MatchesBruteForceAcrossWrap) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    SeqIntervalSet<64> s;
    std::set<uint32_t> ref;
    const uint32_t base = 0xffffff00u;
    for (int i = 0; i < 30; ++i) {
      uint32_t a = base + rng() % 500, len = 1 + rng() % 40;
      if (s.Add(a, a + len)) {
        for (uint32_t k = 0; k < len; ++k) ref.insert(a + k);
      }
    }
    uint32_t cut = base + rng() % 500;
    s.RemoveBelow(cut);
    for (auto it = ref.begin(); it != ref.end();) {
      it = SeqLt(*it, cut) ? ref.erase(it) : std::next(it);
    }
    EXPECT_EQ(s.TotalBytes(), ref.size());
    for (uint32_t k = 0; k < 600; ++k) {
      EXPECT_EQ(s.Contains(base + k), ref.count(base + k) > 0);
    }
    for (size_t i = 1; i < s.size(); ++i) EXPECT_TRUE(SeqLt(s[i - 1].end, s[i].start));
  }
}

TEST(IntervalSetTest, PopContiguousAdvancesReassembly) {
  SeqIntervalSet<8> s;
  s.Add(110, 120);
  s.Add(130, 140);
  uint32_t end = 100;
  EXPECT_FALSE(s.PopContiguous(&end));
  end = 110;
  EXPECT_TRUE(s.PopContiguous(&end));
  EXPECT_EQ(end, 120u);
  EXPECT_FALSE(s.PopContiguous(&end));
}

// Regression: in-order data that covers a held range entirely must not stop
// the walk; a later range it reaches is also consumed (found by the
// reassembly fuzzer: stale ranges stayed below RCV.NXT).
TEST(IntervalSetTest, PopContiguousContinuesPastCoveredRanges) {
  SeqIntervalSet<8> s;
  s.Add(10, 20);
  s.Add(30, 40);
  uint32_t end = 35;  // new data [0, 35) covers [10,20) and reaches [30,40)
  while (s.PopContiguous(&end)) {
  }
  EXPECT_EQ(end, 40u);
  EXPECT_TRUE(s.empty());
}

TEST(ByteRingTest, TxRingCopiesAcrossWrapAndReleasesOnConsume) {
  OwnedRing ring(16);
  TxRing tx;
  tx.Attach(ring.memory());
  uint8_t data[12];
  for (int i = 0; i < 12; ++i) data[i] = static_cast<uint8_t>(i);
  ASSERT_EQ(ring.AppWrite(data, 12), 12u);
  ASSERT_TRUE(tx.RefreshTail());
  tx.Consume(10);
  EXPECT_EQ(ring.AppFree(), 14u);
  ASSERT_EQ(ring.AppWrite(data, 12), 12u);  // wraps
  ASSERT_TRUE(tx.RefreshTail());
  ASSERT_EQ(tx.size(), 14u);
  uint8_t out[14];
  tx.CopyOut(0, out, 14);
  EXPECT_EQ(out[0], 10);
  EXPECT_EQ(out[2], 0);
  EXPECT_EQ(out[13], 11);
}

TEST(ByteRingTest, Untrusted_TxTailBeyondCapacityRejected) {
  OwnedRing ring(16);
  TxRing tx;
  tx.Attach(ring.memory());
  ring.indices().tail.store(17);
  EXPECT_FALSE(tx.RefreshTail());
  EXPECT_EQ(tx.size(), 0u);
  ring.indices().tail.store(uint64_t{0} - 16);  // "backwards"
  EXPECT_FALSE(tx.RefreshTail());
  ring.indices().tail.store(16);
  EXPECT_TRUE(tx.RefreshTail());
  EXPECT_EQ(tx.size(), 16u);
}

TEST(ByteRingTest, RxRingWritesAtOffsetsAndPublishesOnCommit) {
  OwnedRing ring(16);
  RxRing rx;
  rx.Attach(ring.memory());
  rx.WriteAt(4, reinterpret_cast<const uint8_t*>("efgh"), 4);
  EXPECT_EQ(ring.AppUsed(), 0u);  // out-of-order bytes are not visible
  rx.WriteAt(0, reinterpret_cast<const uint8_t*>("abcd"), 4);
  rx.Commit(8);
  char out[9] = {};
  EXPECT_EQ(ring.AppRead(out, 8), 8u);
  EXPECT_STREQ(out, "abcdefgh");
  ASSERT_TRUE(rx.RefreshHead());
  EXPECT_EQ(rx.free(), 16u);
  ring.indices().head.store(100);  // beyond tail
  EXPECT_FALSE(rx.RefreshHead());
}

TEST(IsnTest, Rfc6528_KeyedAndClockDriven) {
  SecretKey k1{1, 2}, k2{3, 4};
  uint32_t a = GenerateIsn(k1, 1, 2, 3, 4, 0);
  EXPECT_NE(a, GenerateIsn(k2, 1, 2, 3, 4, 0));     // depends on the key
  EXPECT_NE(a, GenerateIsn(k1, 1, 2, 3, 5, 0));     // and on the 4-tuple
  EXPECT_EQ(GenerateIsn(k1, 1, 2, 3, 4, 4000), a + 1);  // M ticks every 4 us
}

TEST(SackTest, Rfc6675_LostBoundaryAndPipe) {
  Tcb t;
  t.snd_mss = 100;
  t.snd_una = 1000;
  t.snd_max = 2000;
  t.high_rxt = 1000;
  // SACKed: [1100,1200) [1300,1400) [1500,1600): three ranges.
  t.scoreboard.Add(1100, 1200);
  t.scoreboard.Add(1300, 1400);
  t.scoreboard.Add(1500, 1600);
  uint32_t lb = LostBoundary(t, 3);
  EXPECT_EQ(lb, 1100u);  // DupThresh ranges above [1000,1100) only
  // pipe = unSACKed octets >= lb: 1000-300 - 100 (below lb) = 600
  EXPECT_EQ(Pipe(t, lb), 600u);
  t.high_rxt = 1100;  // the hole was retransmitted: counts again
  EXPECT_EQ(Pipe(t, lb), 700u);
  uint32_t seq, len;
  t.high_rxt = 1000;
  ASSERT_TRUE(NextSegRetransmit(t, lb, false, &seq, &len));
  EXPECT_EQ(seq, 1000u);
  EXPECT_EQ(len, 100u);
  ASSERT_TRUE(NextSegRetransmit(t, lb, true, &seq, &len));
  EXPECT_EQ(seq, 1000u);
  t.high_rxt = 1100;
  EXPECT_FALSE(NextSegRetransmit(t, lb, false, &seq, &len));
  ASSERT_TRUE(NextSegRetransmit(t, lb, true, &seq, &len));  // rule 3
  EXPECT_EQ(seq, 1200u);
}

TEST(CubicTest, Rfc9438_ConcaveThenConvexGrowthAroundWmax) {
  Tcb t;
  t.snd_mss = 1000;
  t.cc = &kCubicOps;
  t.cc->init(&t);
  t.snd_cwnd = 1000 * 1000;  // W_max = 1000 segments
  t.snd_max = t.snd_una + t.snd_cwnd;
  t.srtt_us = 100000;        // 100 ms
  t.snd_ssthresh = t.cc->ssthresh(&t);
  EXPECT_EQ(t.snd_ssthresh, 700u * 1000);  // beta_cubic = 0.7
  t.snd_cwnd = t.snd_ssthresh;
  // K = cbrt(1000 * 0.3 / 0.4) = 9.09 s: fast growth first, a plateau at
  // W_max around t = K, then convex probing beyond it. Reno-friendly W_est
  // stays below (alpha * 91 RTTs ~ 49 segments).
  uint64_t now = 1'000'000'000;
  auto run = [&](double secs) {
    uint64_t end = now + static_cast<uint64_t>(secs * 1e9);
    for (; now < end; now += 100'000'000) t.cc->cong_avoid(&t, t.snd_cwnd, now);
    return t.snd_cwnd / 1000.0;
  };
  double w2 = run(2.0);
  double w9 = run(7.0);
  double w11 = run(2.0);
  double w14 = run(3.0);
  EXPECT_GT(w2, 800);
  EXPECT_NEAR(w9, 1000, 15);   // plateau near W_max at t ~ K
  EXPECT_LT(w11 - w9, 20);     // flat around K
  EXPECT_GT(w14 - w11, 30);    // convex: W(14 s) = 0.4 * 4.9^3 + 1000 ~ 1047
  EXPECT_NEAR(w14, 1047, 10);
}

TEST(RenoTest, Rfc5681_SlowStartThenAdditiveIncrease) {
  Tcb t;
  t.snd_mss = 1000;
  t.cc = &kRenoOps;
  t.snd_cwnd = 2000;
  t.snd_ssthresh = 4000;
  t.cc->cong_avoid(&t, 3000, 0);
  EXPECT_EQ(t.snd_cwnd, 4000u);  // capped at ssthresh; 1000 left over for CA
  t.cc->cong_avoid(&t, 3000, 0);
  EXPECT_EQ(t.snd_cwnd, 5000u);
}

// RFC 8985 transmit records: new data appends in sequence order, a
// retransmission re-stamps exactly the bytes it covers (splitting records),
// SACKs and cumulative ACKs report each record once.
TEST(SentLogTest, RecordsRetransmissionsSacksAndAcks) {
  SentLog log;
  const uint32_t base = 0xfffff000u;  // across the sequence wrap
  for (uint32_t i = 0; i < 4; ++i) log.OnSend(base + i * 1000, base + (i + 1) * 1000, 10 + i);
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[2].start, base + 2000);
  EXPECT_EQ(log[2].xmit_ns, 12u);
  // A retransmission of [500, 1500): [0,500) [500,1000) [1000,1500) [1500,2000) ...
  log.OnSend(base + 500, base + 1500, 50);
  ASSERT_EQ(log.size(), 6u);
  EXPECT_EQ(log[0].xmit_ns, 10u);
  EXPECT_FALSE(log[0].retrans);
  EXPECT_EQ(log[1].start, base + 500);
  EXPECT_TRUE(log[1].retrans);
  EXPECT_EQ(log[1].xmit_ns, 50u);
  EXPECT_TRUE(log[2].retrans);
  EXPECT_EQ(log[2].end, base + 1500);
  EXPECT_FALSE(log[3].retrans);
  EXPECT_EQ(log[3].xmit_ns, 11u);
  // A send straddling the end: the old part is a retransmission, the rest new.
  log.OnSend(base + 3500, base + 4500, 60);
  EXPECT_EQ(log[log.size() - 1].start, base + 4000);
  EXPECT_FALSE(log[log.size() - 1].retrans);
  EXPECT_TRUE(log[log.size() - 2].retrans);
  // SACK [2000, 3000): one record, reported once.
  int sacked = 0;
  log.Sack(base + 2000, base + 3000, [&](const SentSeg& s) {
    ++sacked;
    EXPECT_EQ(s.xmit_ns, 12u);
  });
  log.Sack(base + 2000, base + 3000, [&](const SentSeg&) { ++sacked; });
  EXPECT_EQ(sacked, 1);
  // Cumulative ACK to 3000: the SACKed record is not reported again.
  std::vector<uint64_t> acked;
  log.AckTo(base + 3000, [&](const SentSeg& s) { acked.push_back(s.xmit_ns); });
  EXPECT_EQ(acked, (std::vector<uint64_t>{10, 50, 50, 11}));
  EXPECT_EQ(log[0].start, base + 3000);
  log.AckTo(base + 3200, [&](const SentSeg&) {});  // partial: trimmed
  EXPECT_EQ(log[0].start, base + 3200);
  log.AckTo(base + 5000, [&](const SentSeg&) {});
  EXPECT_TRUE(log.empty());
}

// Past kMaxRecords new data merges into the last record with the newest time.
TEST(SentLogTest, BoundedByMergingNewData) {
  SentLog log;
  const uint32_t n = SentLog::kMaxRecords + 100;
  for (uint32_t i = 0; i < n; ++i) log.OnSend(i * 10, i * 10 + 10, i);
  EXPECT_EQ(log.size(), SentLog::kMaxRecords);
  const SentSeg& last = log[log.size() - 1];
  EXPECT_EQ(last.end, n * 10);
  EXPECT_EQ(last.xmit_ns, n - 1);
  size_t reported = 0;
  log.AckTo(n * 10, [&](const SentSeg&) { ++reported; });
  EXPECT_EQ(reported, SentLog::kMaxRecords);
  EXPECT_TRUE(log.empty());
}

}  // namespace
}  // namespace offload::tcp
