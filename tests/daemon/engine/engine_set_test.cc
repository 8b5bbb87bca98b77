// EngineSet: queue-to-engine affinity and per-core engines.

#include "daemon/engine/engine_set.h"

#include <sched.h>

#include "gtest/gtest.h"
#include "tests/testing/fake_nic.h"

namespace offload::engine {
namespace {

using offload::testing::FakeDriver;

class IdleProcessor : public PacketProcessor {
 public:
  void OnFrames(size_t, const nic::RxFrame*, size_t n, TimeNs,
                TxBatch&) override {
    frames += n;
  }
  size_t PollTx(TxBatch* const*, size_t, TimeNs) override { return 0; }
  void OnTimers(TimeNs) override {}
  TimeNs NextTimerDeadline() const override { return kNoDeadline; }
  bool HasPendingWork() override { return false; }
  size_t frames = 0;
};

TEST(AssignQueuesTest, QueueQGoesToEngineQModN) {
  FakeDriver a(4), b(2);
  auto lists = AssignQueues({&a, &b}, 2);
  ASSERT_EQ(lists.size(), 2u);
  std::vector<nic::NicQueue*> want0 = {a.queue(0), a.queue(2), b.queue(0)};
  std::vector<nic::NicQueue*> want1 = {a.queue(1), a.queue(3), b.queue(1)};
  EXPECT_EQ(lists[0], want0);
  EXPECT_EQ(lists[1], want1);
}

TEST(EngineSetTest, OneEnginePerCoreEachOnItsCpu) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  std::vector<int> usable;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) usable.push_back(c);
  }
  FakeDriver d(4);
  EngineSetConfig config;
  config.num_cores = 2;
  auto set = EngineSet::Create(
      config, {&d}, [](size_t) { return std::make_unique<IdleProcessor>(); });
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_TRUE((*set)->Start().ok());
  ASSERT_EQ((*set)->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    int cpu = -1;
    ASSERT_TRUE((*set)
                    ->engine(i)
                    .RunSync([&] { cpu = sched_getcpu(); }, absl::Seconds(10))
                    .ok());
    EXPECT_EQ(cpu, usable[i % usable.size()]);
    EXPECT_EQ((*set)->engine(i).num_queues(), 2u);
  }
  EXPECT_EQ((*set)->EngineForQueue(3), 1u);
  (*set)->Stop();
}

TEST(EngineSetTest, BadConfigIsRejected) {
  FakeDriver d(1);
  auto factory = [](size_t) { return std::make_unique<IdleProcessor>(); };
  EngineSetConfig zero;
  zero.num_cores = 0;
  EXPECT_EQ(EngineSet::Create(zero, {&d}, factory).status().code(),
            absl::StatusCode::kInvalidArgument);
  EngineSetConfig mismatch;
  mismatch.num_cores = 2;
  mismatch.cores = {0};
  EXPECT_EQ(EngineSet::Create(mismatch, {&d}, factory).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace offload::engine
