// Hashed timing wheel on a virtual clock.
#include "daemon/timer/timer_wheel.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace offload::timer {
namespace {

constexpr uint64_t kMs = 1'000'000;

TEST(TimerWheelTest, FiresAtOrAfterExpiryNeverEarly) {
  TimerWheel w(kMs, 64, 0);
  TimerNode a, b;
  w.Schedule(&a, 5 * kMs + 1);
  w.Schedule(&b, 3 * kMs);
  std::vector<TimerNode*> fired;
  auto rec = [&](TimerNode* n) { fired.push_back(n); };
  w.Advance(3 * kMs - 1, rec);
  EXPECT_TRUE(fired.empty());
  w.Advance(3 * kMs, rec);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], &b);
  w.Advance(5 * kMs, rec);
  EXPECT_EQ(fired.size(), 1u);  // a is due at 5 ms + 1 ns
  w.Advance(5 * kMs + 1, rec);
  EXPECT_EQ(fired.size(), 2u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheelTest, TimersBeyondOneRevolutionWaitTheirRound) {
  TimerWheel w(kMs, 16, 0);
  TimerNode a;
  w.Schedule(&a, 100 * kMs);
  int n = 0;
  for (uint64_t t = 0; t < 100 * kMs; t += kMs) w.Advance(t, [&](TimerNode*) { ++n; });
  EXPECT_EQ(n, 0);
  EXPECT_EQ(w.NextExpiry(), 100 * kMs);
  w.Advance(100 * kMs, [&](TimerNode*) { ++n; });
  EXPECT_EQ(n, 1);
}

TEST(TimerWheelTest, CancelAndRescheduleInsideCallback) {
  TimerWheel w(kMs, 64, 0);
  TimerNode a, b;
  w.Schedule(&a, 1 * kMs);
  w.Schedule(&b, 1 * kMs);
  int fired = 0;
  w.Advance(1 * kMs, [&](TimerNode* n) {
    ++fired;
    TimerNode* other = n == &a ? &b : &a;
    w.Cancel(other);
    w.Schedule(n, 0);  // in the past: fires on the next Advance only
  });
  EXPECT_EQ(fired, 1);
  w.Advance(1 * kMs, [&](TimerNode*) { ++fired; });
  EXPECT_EQ(fired, 2);
}

TEST(TimerWheelTest, LargeClockJumpFiresEverythingDue) {
  TimerWheel w(kMs, 64, 0);
  std::vector<TimerNode> nodes(1000);
  std::mt19937 rng(1);
  for (auto& n : nodes) w.Schedule(&n, rng() % (10000 * kMs));
  EXPECT_EQ(w.size(), 1000u);
  size_t fired = w.Advance(5000 * kMs, [](TimerNode* n) { EXPECT_LE(n->expiry_ns, 5000 * kMs); });
  size_t rest = w.Advance(20000 * kMs, [](TimerNode*) {});
  EXPECT_EQ(fired + rest, 1000u);
}

TEST(TimerWheelTest, NextExpiryIsTheMinimum) {
  TimerWheel w(kMs, 64, 0);
  EXPECT_EQ(w.NextExpiry(), TimerWheel::kNever);
  std::vector<TimerNode> nodes(50);
  uint64_t min = ~0ull;
  std::mt19937 rng(2);
  for (auto& n : nodes) {
    uint64_t t = 1 + rng() % (500 * kMs);
    min = std::min(min, t);
    w.Schedule(&n, t);
  }
  EXPECT_EQ(w.NextExpiry(), min);
}

TEST(TimerWheelTest, CachedNextExpiryFollowsEveryChange) {
  // NextExpiry() is cached; compare it with a brute-force minimum after
  // every kind of change, including cancelling the earliest timer and
  // rescheduling timers from inside a callback.
  TimerWheel w(kMs, 64, 0);
  std::vector<TimerNode> nodes(40);
  std::mt19937 rng(3);
  auto brute = [&] {
    uint64_t min = TimerWheel::kNever;
    for (const TimerNode& n : nodes) {
      if (n.scheduled()) min = std::min(min, n.expiry_ns);
    }
    return min;
  };
  uint64_t now = 0;
  for (int step = 0; step < 20000; ++step) {
    TimerNode& n = nodes[rng() % nodes.size()];
    switch (rng() % 4) {
      case 0:
      case 1:
        w.Schedule(&n, now + rng() % (200 * kMs));
        break;
      case 2: {
        // Cancel the earliest timer half of the time, a random one otherwise.
        TimerNode* victim = &n;
        if (rng() % 2 == 0) {
          for (TimerNode& m : nodes) {
            if (m.scheduled() && m.expiry_ns == brute()) victim = &m;
          }
        }
        w.Cancel(victim);
        break;
      }
      case 3:
        now += rng() % (20 * kMs);
        w.Advance(now, [&](TimerNode* fired) {
          if (rng() % 3 == 0) w.Schedule(fired, now + 1 + rng() % (50 * kMs));
        });
        break;
    }
    ASSERT_EQ(w.NextExpiry(), brute()) << "after step " << step;
  }
}

}  // namespace
}  // namespace offload::timer
