// Two real Stacks back to back over the in-memory link: bulk transfers with
// every byte verified, at several loss/reorder settings, both congestion
// controls; connection storms.
#include <cstdio>

#include "gtest/gtest.h"
#include "tests/daemon/stack/transfer_util.h"

namespace offload::testing {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kSec = 1'000'000'000ull;

void Report(const char* name, LoopbackPair& lp, const std::vector<Conn>& conns, uint64_t start) {
  const auto& ca = lp.a().tcp_counters();
  double secs = (lp.now() - start) / 1e9;
  uint64_t bytes = 0;
  for (auto& c : conns) bytes += c.stream->received();
  std::printf("%s: %.1f MiB in %.3f virtual s (%.1f MiB/s), segs_out=%lu retrans=%lu "
              "fast_rtx=%lu rto=%lu sack_rec=%lu link lost=%lu reordered=%lu dup=%lu\n",
              name, bytes / 1048576.0, secs, bytes / 1048576.0 / secs,
              (unsigned long)ca.segs_out, (unsigned long)ca.retrans_segs,
              (unsigned long)ca.fast_retransmits, (unsigned long)ca.rto_timeouts,
              (unsigned long)ca.sack_recoveries, (unsigned long)lp.a_to_b().stats().lost,
              (unsigned long)lp.a_to_b().stats().reordered,
              (unsigned long)lp.a_to_b().stats().duplicated);
}

void RunBulk(const char* name, const LinkConfig& link, const char* cc, uint64_t bytes, int conns_n) {
  LoopbackPair lp(link, LoopbackPair::ConfigFor(1), LoopbackPair::ConfigFor(2));
  lp.a().SeedNeighbor(lp.b().config().local_ip, lp.b().config().local_mac);
  lp.b().SeedNeighbor(lp.a().config().local_ip, lp.a().config().local_mac);
  std::vector<Conn> conns;
  uint64_t start = lp.now();
  bool ok = RunTransfers(&lp, conns_n, bytes / conns_n, cc, 3600 * kSec, &conns);
  if (!ok) {
    std::printf("now=%.3f s\n", (lp.now() - start) / 1e9);
    for (auto& c : conns) {
      const tcp::Tcb* a = lp.a().TcbForTest(c.client);
      const tcp::Tcb* b = c.server ? lp.b().TcbForTest(c.server) : nullptr;
      std::printf("conn sent=%lu recv=%lu client=%s server=%s\n", (unsigned long)c.stream->sent(),
                  (unsigned long)c.stream->received(), a ? tcp::TcpStateName(a->state) : "-",
                  b ? tcp::TcpStateName(b->state) : "-");
      if (a) std::printf("  A una=%u nxt=%u max=%u end=%u wnd=%u cwnd=%u rtx_dl=%lu persist=%d rtx=%u inrec=%d sb=%zu ooo=%zu ackq=%d\n",
          a->snd_una - a->iss, a->snd_nxt - a->iss, a->snd_max - a->iss, a->DataEndSeq() - a->iss, a->snd_wnd, a->snd_cwnd,
          (unsigned long)(a->rtx_deadline ? a->rtx_deadline - lp.now() : 0), a->persist, a->retransmits, a->in_recovery, a->scoreboard.size(), a->ooo.size(), a->in_output_list);
      if (b) std::printf("  B rcv_nxt=%u adv=%u free=%u ooo=%zu una=%u max=%u\n", b->rcv_nxt - b->irs, b->rcv_adv - b->irs, b->rx.free(), b->ooo.size(), b->snd_una - b->iss, b->snd_max-b->iss);
    }
  }
  ASSERT_TRUE(ok);
  for (auto& c : conns) {
    EXPECT_EQ(c.stream->received(), bytes / conns_n);
    EXPECT_EQ(c.stream->mismatches(), 0u);
  }
  Report(name, lp, conns, start);
}

TEST(LoopbackTest, Bulk1MiBNoLoss) {
  LinkConfig link;
  RunBulk("1MiB/0%", link, "cubic", 1 * kMiB, 1);
}

}  // namespace
}  // namespace offload::testing

namespace offload::testing {
namespace {

LinkConfig Lossy(double loss, double reorder, uint64_t seed) {
  LinkConfig link;
  link.loss = loss;
  link.reorder = reorder;
  link.seed = seed;
  return link;
}

TEST(LoopbackTest, Cubic100MiBNoLoss) { RunBulk("100MiB/0% cubic", LinkConfig{}, "cubic", 100 * kMiB, 1); }
TEST(LoopbackTest, Reno100MiBNoLoss) { RunBulk("100MiB/0% reno", LinkConfig{}, "reno", 100 * kMiB, 1); }
TEST(LoopbackTest, Cubic100MiBLoss1Reorder) {
  RunBulk("100MiB/1%+reorder cubic", Lossy(0.01, 0.02, 11), "cubic", 100 * kMiB, 1);
}
TEST(LoopbackTest, Reno100MiBLoss1Reorder) {
  RunBulk("100MiB/1%+reorder reno", Lossy(0.01, 0.02, 12), "reno", 100 * kMiB, 1);
}
TEST(LoopbackTest, Cubic100MiBLoss5Reorder) {
  RunBulk("100MiB/5%+reorder cubic", Lossy(0.05, 0.05, 13), "cubic", 100 * kMiB, 4);
}
TEST(LoopbackTest, Reno100MiBLoss5Reorder) {
  RunBulk("100MiB/5%+reorder reno", Lossy(0.05, 0.05, 14), "reno", 100 * kMiB, 4);
}

}  // namespace
}  // namespace offload::testing
