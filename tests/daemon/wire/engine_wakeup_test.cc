// The engine half of the lost-wake-up handshake (EngineFlows, app_pipe.h,
// shm/ring.h) over a WirePlane on the fake NIC and route source (no root).
// The engine, before it sleeps, arms the wake-up flags of its pipes, fences
// and re-checks them (ArmWakeups, RecheckAfterArm); the application
// publishes its tail, fences and takes the armed flags (ByteRingProducer::
// Commit), kicking the engine's doorbell when it found one. Whatever the
// interleaving, a publish is seen by the re-check or finds the flag: never
// neither.
//
// The deterministic cases run the two sides step by step inside one command
// on the engine thread (RunSync), so the engine loop cannot interleave; the
// stress case runs them on two threads, bounded by an iteration count and a
// time budget, and fails only if a publish stays unseen (a hang, caught by
// a generous bound), never on timing.

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "daemon/wire/engine_flows.h"
#include "gtest/gtest.h"
#include "shm/pipe.h"
#include "shm/ring.h"
#include "tests/daemon/wire/fake_wire_plane.h"

namespace offload::testing {
namespace {

class EngineWakeupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<FakePlane> fp = MakeFakePlane();
    ASSERT_TRUE(fp.ok()) << fp.status();
    fp_ = std::move(*fp);
    ASSERT_TRUE(ConnectFake(fp_, &conn_));
    flows_ = fp_.plane->FlowsForTest(0);
    ASSERT_NE(flows_, nullptr);
    doorbell_ = fp_.plane->DoorbellFd(0);
    ASSERT_GE(doorbell_, 0);
  }
  void TearDown() override {
    if (fp_.plane != nullptr) fp_.plane->Stop();
  }

  // Runs `steps` on the engine thread, the engine loop held meanwhile.
  void OnEngine(const std::function<void()>& steps) {
    ASSERT_TRUE(fp_.plane->EnginesForTest()->engine(0).RunSync(steps, absl::Seconds(30)).ok());
  }

  // The application publishes one byte; returns the arm bits it took
  // (kicking no doorbell: the deterministic cases check the bits).
  uint32_t Publish() {
    const char b = 'x';
    conn_.tx.CopyIn(0, &b, 1);
    return conn_.tx.Commit(1);
  }

  FakePlane fp_;
  FakeConnection conn_;
  wire::EngineFlows* flows_ = nullptr;
  int doorbell_ = -1;
};

TEST_F(EngineWakeupTest, PublishBeforeArmIsSeenByTheRecheck) {
  OnEngine([&] {
    flows_->PollApplications();  // up to date, disarmed
    const uint32_t bits = Publish();
    EXPECT_EQ(bits, 0u) << "nothing was armed: the application owes no wake-up";
    ASSERT_TRUE(flows_->ArmWakeups());
    EXPECT_TRUE(flows_->RecheckAfterArm()) << "the engine would sleep over published data";
    EXPECT_GT(flows_->PollApplications(), 0u) << "the data is handed to the stack";
  });
}

TEST_F(EngineWakeupTest, PublishBetweenArmAndRecheckIsSeenBothWays) {
  OnEngine([&] {
    flows_->PollApplications();
    ASSERT_TRUE(flows_->ArmWakeups());
    const uint32_t bits = Publish();
    const bool recheck = flows_->RecheckAfterArm();
    // Either alone would do; stepped on one thread, both hold.
    EXPECT_NE(bits & shm::kArmDoorbell, 0u) << "armed before the publish: the app must see it";
    EXPECT_TRUE(recheck) << "published before the re-check: the engine must see it";
    EXPECT_GT(flows_->PollApplications(), 0u);
  });
}

TEST_F(EngineWakeupTest, PublishAfterSleepFindsTheFlag) {
  OnEngine([&] {
    flows_->PollApplications();
    ASSERT_TRUE(flows_->ArmWakeups());
    ASSERT_FALSE(flows_->RecheckAfterArm()) << "nothing published: the engine may sleep";
    // The engine sleeps now; the application publishes.
    const uint32_t bits = Publish();
    EXPECT_NE(bits & shm::kArmDoorbell, 0u) << "a sleeping engine would never be woken";
    // A second publish owes nothing more (the wake-up was taken).
    EXPECT_EQ(Publish() & shm::kArmDoorbell, 0u);
    // Woken, the engine finds both bytes and disarms.
    EXPECT_GT(flows_->PollApplications(), 0u);
    EXPECT_EQ(Publish() & shm::kArmDoorbell, 0u) << "a running engine asks for no wake-up";
    flows_->PollApplications();
  });
}

TEST_F(EngineWakeupTest, ShutdownBetweenArmAndRecheckIsSeen) {
  OnEngine([&] {
    flows_->PollApplications();
    ASSERT_TRUE(flows_->ArmWakeups());
    const uint32_t bits = conn_.tx.Shut(shm::kShutFin);  // shutdown(SHUT_WR)
    const bool recheck = flows_->RecheckAfterArm();
    EXPECT_TRUE(recheck || (bits & shm::kArmDoorbell) != 0) << "a shutdown slept through";
    EXPECT_TRUE(recheck);
    EXPECT_GT(flows_->PollApplications(), 0u);
  });
}

// The application's last close of its socket (shm::CloseEnd: shut,
// reader_closed, fence, then the armed bits) racing the engine's sleep.
TEST_F(EngineWakeupTest, AppCloseBetweenArmAndRecheckIsSeen) {
  OnEngine([&] {
    flows_->PollApplications();
    ASSERT_TRUE(flows_->ArmWakeups());
    const shm::CloseWakeups w = shm::CloseEnd(conn_.pipe->record(), conn_.pipe->app_end());
    EXPECT_NE(w.peer_readers & shm::kArmDoorbell, 0u) << "armed before the close";
    EXPECT_TRUE(flows_->RecheckAfterArm()) << "a committed close slept through";
    EXPECT_GT(flows_->PollApplications(), 0u) << "the engine closes the flow";
  });
}

TEST_F(EngineWakeupTest, AppCloseAfterSleepFindsTheFlag) {
  OnEngine([&] {
    flows_->PollApplications();
    ASSERT_TRUE(flows_->ArmWakeups());
    ASSERT_FALSE(flows_->RecheckAfterArm());
    const shm::CloseWakeups w = shm::CloseEnd(conn_.pipe->record(), conn_.pipe->app_end());
    EXPECT_NE(w.peer_readers & shm::kArmDoorbell, 0u) << "a sleeping engine would miss the close";
    EXPECT_GT(flows_->PollApplications(), 0u);
  });
}

// The real engine loop, no stepping: the engine has gone to sleep (its
// sleep counter moved after its last work) when the application sends;
// every send must leave on the wire, the peer acknowledging each. A send
// that finds the engine asleep takes its wake-up (the arm bits); the
// engine may have woken meanwhile (a timer of the stack), so this is
// required of some attempts, not each: an engine that never armed fails,
// one woken by a timer instead of the doorbell would deliver the data late
// and pass the frame check alone.
TEST_F(EngineWakeupTest, SendsAfterTheEngineSleptLeaveOnTheWire) {
  const engine::EngineCounters& c = fp_.plane->EnginesForTest()->engine(0).counters();
  int armed_sends = 0;
  for (int attempt = 0; attempt < 20 && armed_sends < 3; ++attempt) {
    const uint64_t sleeps = c.sleeps.Get();
    ASSERT_TRUE(Eventually([&] { return c.sleeps.Get() > sleeps; }));
    const std::string msg = "after-sleep-" + std::to_string(attempt);
    if (AppSend(&conn_, msg, doorbell_) & shm::kArmDoorbell) ++armed_sends;
    std::string got;
    ASSERT_TRUE(Eventually([&] {
      for (const TcpView& v : SentTcp(fp_.queue, &conn_.sent_seen)) {
        got.append(v.payload.begin(), v.payload.end());
      }
      return got.find(msg) != std::string::npos;
    })) << "send " << attempt << " never left the engine (lost wake-up)";
    conn_.our_next += static_cast<uint32_t>(msg.size());
    TcpSpec ack;  // the peer acknowledges (no Nagle hold, no retransmission)
    ack.src = PeerEnd();
    ack.dst = LocalEnd();
    ack.seq = kPeerIsn + 1;
    ack.ack = conn_.our_next;
    fp_.queue->Inject(BuildTcp(ack));
  }
  EXPECT_GT(armed_sends, 0) << "no send found the sleeping engine's wake-up armed";
}

// Two threads: the engine thread loops poll / arm / re-check / sleep on its
// doorbell (the engine's own loop, held in one command), the application
// thread publishes one byte at a time and kicks the doorbell when the arm
// bits say so, then waits for the engine to have polled it before the next
// one (ping-pong: every publish races the engine going to sleep; a lost
// wake-up is not masked by the next publish's). Varying spins before each
// publish, and in the engine between its poll and its arm (the rest of an
// iteration and the poll budget), move the publish across the engine's
// poll, arm and re-check. A wait that
// exceeds its bound is a lost wake-up (a hang detector, not a timing check).
TEST_F(EngineWakeupTest, TwoThreadStressLosesNoWakeup) {
  constexpr uint64_t kMaxBytes = 20000;  // < the ring: no one consumes TX
  const auto budget = std::chrono::seconds(3);
  const auto hang = std::chrono::seconds(10);
  std::atomic<uint64_t> engine_seen{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> lost{false};
  std::atomic<uint64_t> sleeps{0};
  std::atomic<bool> engine_running{false};
  const shm::RingIndexes& tw = conn_.pipe->to_wire();

  std::thread engine([&] {
    OnEngine([&] {
      uint64_t round = 0;
      std::atomic<uint32_t> engine_sink{0};
      engine_running.store(true);
      while (!stop.load(std::memory_order_acquire)) {
        // Loaded before the poll: what the poll hands over includes it.
        const uint64_t tail = tw.tail.load(std::memory_order_acquire);
        flows_->PollApplications();
        engine_seen.store(tail, std::memory_order_release);
        // The rest of an engine iteration and its idle spin (poll budget):
        // a varying time in which the application may publish unarmed.
        for (uint32_t i = 0; i < (++round * 104729) % 600; ++i) engine_sink.fetch_add(1);
        if (!flows_->ArmWakeups()) {
          lost.store(true);  // the pipe must be armable
          break;
        }
        if (flows_->RecheckAfterArm()) continue;
        // Asleep until the doorbell (bounded: a lost wake-up ends the test).
        sleeps.fetch_add(1, std::memory_order_relaxed);
        pollfd pfd{doorbell_, POLLIN, 0};
        if (poll(&pfd, 1, 20000) != 1) {
          lost.store(true);
          break;
        }
        uint64_t v;
        [[maybe_unused]] ssize_t n = read(doorbell_, &v, sizeof(v));
      }
      flows_->PollApplications();  // disarm before the loop resumes
    });
  });
  ASSERT_TRUE(Eventually([&] { return engine_running.load(); }));

  const auto start = std::chrono::steady_clock::now();
  uint64_t published = 0;
  uint64_t lost_at = 0;
  std::atomic<uint32_t> sink{0};
  while (published < kMaxBytes && std::chrono::steady_clock::now() - start < budget) {
    for (uint32_t i = 0; i < (published * 7919) % 400; ++i) sink.fetch_add(1);
    AppSend(&conn_, "y", doorbell_);
    ++published;
    const auto since = std::chrono::steady_clock::now();
    for (uint32_t spins = 0; engine_seen.load(std::memory_order_acquire) < published; ++spins) {
      if (lost.load()) break;
      if ((spins & 1023) == 1023) {
        if (std::chrono::steady_clock::now() - since > hang) break;
        std::this_thread::yield();
      }
    }
    if (engine_seen.load() < published) {
      lost_at = published;
      break;
    }
  }
  const bool all_seen = lost_at == 0 && Eventually(
      [&] { return engine_seen.load(std::memory_order_acquire) == published || lost.load(); });
  stop.store(true, std::memory_order_release);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(doorbell_, &one, sizeof(one));  // the stop, not data
  engine.join();
  EXPECT_FALSE(lost.load()) << "the engine slept through a publish (lost wake-up)";
  EXPECT_TRUE(all_seen) << "published " << published << ", engine saw " << engine_seen.load();
  EXPECT_EQ(lost_at, 0u) << "publish " << lost_at << " was never seen (lost wake-up)";
  EXPECT_GT(published, 0u);
  RecordProperty("published", static_cast<int>(published));
  RecordProperty("engine_sleeps", static_cast<int>(sleeps.load()));
}

}  // namespace
}  // namespace offload::testing
