// Engine loop tests on a fake NIC: frame hand-off and batched TX, sleeping
// when idle (counted by the engine's own counters, no timing gate), no lost
// wake-ups under a bounded stress loop, timers, commands and pinning.

#include "daemon/engine/engine.h"

#include <sched.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"
#include "tests/testing/fake_nic.h"

namespace offload::engine {
namespace {

using offload::testing::FakeQueue;
using std::chrono::steady_clock;

// Waits for `cond` for at most 10 s: yields first, then polls every
// millisecond.
template <typename F>
bool WaitFor(F cond) {
  auto deadline = steady_clock::now() + std::chrono::seconds(10);
  for (int spins = 0; !cond(); ++spins) {
    if (steady_clock::now() > deadline) return false;
    if (spins < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return true;
}

// Echoes every frame back with a prefix; work posted by a "producer" (an
// application ring stand-in) is consumed in PollTx; one optional timer.
class EchoProcessor : public PacketProcessor {
 public:
  void OnFrames(size_t queue, const nic::RxFrame* frames, size_t n, TimeNs now,
                TxBatch& tx) override {
    for (size_t i = 0; i < n; ++i) {
      nic::TxFrame* f = tx.Alloc();
      if (f == nullptr) continue;
      f->data[0] = 'r';
      memcpy(f->data + 1, frames[i].data, frames[i].len);
      f->len = frames[i].len + 1;
      tx.Commit();
    }
    rx_frames.fetch_add(n, std::memory_order_relaxed);
  }
  size_t PollTx(TxBatch* const*, size_t, TimeNs) override {
    uint64_t p = posted.load(std::memory_order_acquire);
    uint64_t c = consumed.load(std::memory_order_relaxed);
    if (p == c) return 0;
    consumed.store(p, std::memory_order_release);
    return static_cast<size_t>(p - c);
  }
  void OnTimers(TimeNs now) override {
    fired_at.store(now, std::memory_order_relaxed);
    deadline = kNoDeadline;
    timer_runs.fetch_add(1, std::memory_order_release);
  }
  TimeNs NextTimerDeadline() const override { return deadline; }
  bool HasPendingWork() override {
    return posted.load(std::memory_order_acquire) !=
           consumed.load(std::memory_order_relaxed);
  }

  std::atomic<uint64_t> posted{0};
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> rx_frames{0};
  std::atomic<int> timer_runs{0};
  std::atomic<TimeNs> fired_at{0};
  TimeNs deadline = kNoDeadline;  // set before Start()
};

struct Rig {
  explicit Rig(EngineConfig config = {}, TimeNs timer = kNoDeadline) {
    auto p = std::make_unique<EchoProcessor>();
    p->deadline = timer;
    proc = p.get();
    auto e = Engine::Create(config, {&queue}, std::move(p));
    EXPECT_TRUE(e.ok()) << e.status();
    engine = *std::move(e);
  }
  FakeQueue queue;
  EchoProcessor* proc;
  std::unique_ptr<Engine> engine;
};

TEST(EngineTest, FramesAreHandedOverAndRepliesFlushedInBatches) {
  Rig rig;
  constexpr int kFrames = 100;
  for (int i = 0; i < kFrames; ++i) rig.queue.Inject("f" + std::to_string(i));
  ASSERT_TRUE(rig.engine->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return rig.queue.Sent().size() == kFrames; }));
  auto sent = rig.queue.Sent();
  for (int i = 0; i < kFrames; ++i) {
    EXPECT_EQ(sent[i], "rf" + std::to_string(i));
  }
  // 100 frames in bursts of 32: one flush per burst, not one per frame.
  EXPECT_LE(rig.queue.submits(), 4u);
  rig.engine->Stop();
  EXPECT_EQ(rig.queue.rx_outstanding(), 0u);  // every RX buffer returned
}

TEST(EngineTest, SleepsWhenIdle) {
  EngineConfig config;
  config.poll_budget_us = 200;
  Rig rig(config);
  ASSERT_TRUE(rig.engine->Start().ok());
  ASSERT_TRUE(
      WaitFor([&] { return rig.engine->counters().sleeps.Get() >= 1; }));
  rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  uint64_t loops_before = rig.engine->counters().loops.Get();
  // A measurement window, not synchronisation: an idle engine must not loop.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  uint64_t loops = rig.engine->counters().loops.Get() - loops_before;
  getrusage(RUSAGE_SELF, &after);
  double cpu_ms = (after.ru_utime.tv_sec - before.ru_utime.tv_sec) * 1e3 +
                  (after.ru_utime.tv_usec - before.ru_utime.tv_usec) / 1e3 +
                  (after.ru_stime.tv_sec - before.ru_stime.tv_sec) * 1e3 +
                  (after.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1e3;
  ::testing::Test::RecordProperty("idle_cpu_ms_per_s", std::to_string(cpu_ms));
  ::testing::Test::RecordProperty("idle_loops_per_s", std::to_string(loops));
  // Asleep in epoll_wait with no timer: not a single iteration.
  EXPECT_EQ(loops, 0u);
  EXPECT_EQ(rig.engine->counters().sleeps.Get(), 1u);
}

TEST(EngineTest, DoorbellWakeUpIsNeverLost) {
  EngineConfig config;
  config.poll_budget_us = 0;  // sleep as soon as idle: maximise the races
  Rig rig(config);
  ASSERT_TRUE(rig.engine->Start().ok());
  constexpr uint64_t kRounds = 100000;
  for (uint64_t i = 1; i <= kRounds; ++i) {
    rig.proc->posted.store(i, std::memory_order_release);  // publish work
    rig.engine->doorbell().Ring();
    if (i % 4 == 0) {
      // Let the engine catch up and go back to sleep now and then; a lost
      // wake-up leaves it asleep forever (no timers), failing the wait.
      ASSERT_TRUE(WaitFor([&] {
        return rig.proc->consumed.load(std::memory_order_acquire) == i;
      })) << "engine missed the wake-up of round "
          << i;
    }
  }
  ASSERT_TRUE(WaitFor([&] {
    return rig.proc->consumed.load(std::memory_order_acquire) == kRounds;
  }));
  EXPECT_GT(rig.engine->counters().wakeups.Get(), 0u);
  EXPECT_GT(rig.engine->counters().sleeps.Get(), 0u);
  ::testing::Test::RecordProperty(
      "sleeps", std::to_string(rig.engine->counters().sleeps.Get()));
  ::testing::Test::RecordProperty(
      "aborted_sleeps",
      std::to_string(rig.engine->counters().aborted_sleeps.Get()));
}

TEST(EngineTest, RxWakesASleepingEngine) {
  Rig rig;
  ASSERT_TRUE(rig.engine->Start().ok());
  uint64_t sleeps_before_frame = 0;
  for (int round = 0; round < 50; ++round) {
    // Wait until the engine went to sleep after the previous frame.
    ASSERT_TRUE(WaitFor([&] {
      return rig.engine->counters().sleeps.Get() > sleeps_before_frame;
    }));
    sleeps_before_frame = rig.engine->counters().sleeps.Get();
    rig.queue.Inject("x");
    ASSERT_TRUE(WaitFor([&] {
      return rig.proc->rx_frames.load() == static_cast<uint64_t>(round + 1);
    }));
  }
}

TEST(EngineTest, SleepsUntilTimerDeadline) {
  const TimeNs deadline = MonotonicNowNs() + 50 * 1000 * 1000;  // +50 ms
  EngineConfig config;
  config.poll_budget_us = 0;  // no spinning: every loop is counted below
  Rig rig(config, deadline);
  ASSERT_TRUE(rig.engine->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return rig.proc->timer_runs.load() == 1; }));
  EXPECT_GE(rig.proc->fired_at.load(), deadline);
  // It slept until the deadline instead of spinning 50 ms.
  EXPECT_GE(rig.engine->counters().sleeps.Get(), 1u);
  EXPECT_LT(rig.engine->counters().loops.Get(), 10u);
}

TEST(EngineTest, CommandsRunInOrderOnTheEngineThread) {
  Rig rig;
  ASSERT_TRUE(rig.engine->Start().ok());
  std::vector<int> order;  // touched only by the engine thread until RunSync
  for (int i = 0; i < 100; ++i)
    rig.engine->Post([&order, i] { order.push_back(i); });
  std::thread::id engine_thread;
  ASSERT_TRUE(rig.engine
                  ->RunSync([&] { engine_thread = std::this_thread::get_id(); },
                            absl::Seconds(10))
                  .ok());
  EXPECT_NE(engine_thread, std::this_thread::get_id());
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  // Counted after the batch ran, i.e. possibly just after RunSync returned.
  EXPECT_TRUE(
      WaitFor([&] { return rig.engine->counters().commands.Get() >= 101; }));
}

TEST(EngineTest, RunSyncOnStoppedEngineFails) {
  Rig rig;
  EXPECT_EQ(rig.engine->RunSync([] {}, absl::Seconds(1)).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(EngineTest, PinsToTheConfiguredCore) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int core = -1;
  for (int c = 0; c < CPU_SETSIZE && core < 0; ++c) {
    if (CPU_ISSET(c, &allowed)) core = c;
  }
  EngineConfig config;
  config.core = core;
  Rig rig(config);
  ASSERT_TRUE(rig.engine->Start().ok());
  int ran_on = -1;
  ASSERT_TRUE(
      rig.engine->RunSync([&] { ran_on = sched_getcpu(); }, absl::Seconds(10))
          .ok());
  EXPECT_EQ(ran_on, core);
}

TEST(EngineTest, UnusableCoreIsAStartError) {
  EngineConfig config;
  config.core = CPU_SETSIZE - 1;
  Rig rig(config);
  EXPECT_EQ(rig.engine->Start().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, BadBurstIsRejected) {
  EngineConfig config;
  config.rx_burst = Engine::kMaxRxBurst + 1;
  FakeQueue q;
  auto e = Engine::Create(config, {&q}, std::make_unique<EchoProcessor>());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace offload::engine
