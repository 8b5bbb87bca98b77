// The wake-up handshake of shm/ring.h under stress: two processes ping-pong
// one byte through a pipe slot of a channel with spinning disabled, so
// every message goes through the sleep path (arm, fence, re-check, then
// futex_wait on the eventcount, or poll() on an eventfd doorbell). A lost
// wake-up shows up as a sleep that times out with the ring still empty and
// fails the test; the run is bounded in count and in time.

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "shm/channel_map.h"
#include "shm/futex.h"
#include "shm/ring.h"
#include "shm/fence.h"
#include "shm/unique_fd.h"
#include "shm/wakeup.h"
#include "gtest/gtest.h"

namespace offload {
namespace shm {
namespace {

constexpr uint32_t kCap = 4096;
constexpr int kLostWakeupMs = 5000;

// One pipe slot (both directions) in a channel memfd shared across fork(),
// and one eventfd per side for the doorbell variant.
struct SharedPipe {
  std::unique_ptr<ChannelMap> chan;
  PipeRecord* rec = nullptr;
  uint32_t slot = 0;
  UniqueFd efd[2];
  bool doorbell = false;  // sleep on eventfds (poll/epoll path) instead of futexes

  bool Create(bool use_doorbell) {
    doorbell = use_doorbell;
    chan = ChannelMap::Create(1, ChannelKind::kSameHost, kCap, 0, 1);
    uint32_t gen = 0;
    if (chan == nullptr || !chan->Allocate(0, 2, false, &slot, &gen)) return false;
    rec = chan->Record(slot);
    efd[0] = UniqueFd(eventfd(0, EFD_NONBLOCK));
    efd[1] = UniqueFd(eventfd(0, EFD_NONBLOCK));
    return efd[0].valid() && efd[1].valid();
  }
  // Side 0 produces into dir[0] and consumes dir[1]; side 1 the reverse.
  void Attach(int side, ByteRingProducer* p, ByteRingConsumer* c) {
    p->Init(&rec->dir[side], chan->RingData(slot, side), kCap);
    c->Init(&rec->dir[1 - side], chan->RingData(slot, 1 - side), kCap);
  }
  uint32_t ArmBit() const { return doorbell ? kArmDoorbell : kArmFutex; }
  // Wakes what `bits` says sleeps on `w`; `efd`: the sleeper's doorbell.
  void Wake(RingWaitLine* w, uint32_t bits, int peer_efd) {
    if (bits & kArmFutex) WakeFutexWaiters(w);
    if (bits & kArmDoorbell) Kick(peer_efd);
  }
  // Sleeps on `w` after the caller armed it and re-checked. False on a
  // lost wake-up (nothing for kLostWakeupMs).
  bool Sleep(RingWaitLine* w, uint32_t seq, int my_efd) {
    if (doorbell) {
      struct pollfd pfd = {my_efd, POLLIN, 0};
      if (poll(&pfd, 1, kLostWakeupMs) == 0) return false;
      Drain(my_efd);
      return true;
    }
    return FutexWait(&w->wake_seq, seq, int64_t{kLostWakeupMs} * 1000000) != ETIMEDOUT;
  }
};

SharedPipe* g_pipe = nullptr;

// Blocks until the ring has a byte. Returns false on a lost wake-up.
bool SleepForData(ByteRingConsumer* c, int efd) {
  while (c->Readable() == 0) {
    const uint32_t seq = c->ArmReader(g_pipe->ArmBit());
    HeavyFence();
    if (c->WriterLazy()) PeerBarrier();
    if (c->RecheckAfterFence() != 0) {
      c->DisarmReader(g_pipe->ArmBit());
      break;
    }
    const bool woken = g_pipe->Sleep(c->reader_wait(), seq, efd);
    c->DisarmReader(g_pipe->ArmBit());
    if (!woken) return c->Readable() != 0;
  }
  return true;
}

// Returns the number of round trips done, or -1 on a lost wake-up.
long PingPong(ByteRingProducer* p, ByteRingConsumer* c, int my_efd, int peer_efd,
              bool initiator, long rounds, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration<double>(seconds);
  uint8_t b = 0;
  for (long i = 0; i < rounds; ++i) {
    if (initiator) {
      p->CopyIn(0, &b, 1);
      g_pipe->Wake(&p->indexes()->reader_wait, p->Commit(1), peer_efd);
    }
    if (!SleepForData(c, my_efd)) return -1;
    uint8_t v;
    c->CopyOut(0, &v, 1);
    if (v == 0xff) return i;  // peer stopped on its deadline
    c->Consume(1);
    if (!initiator) {
      p->CopyIn(0, &v, 1);
      g_pipe->Wake(&p->indexes()->reader_wait, p->Commit(1), peer_efd);
    }
    if (initiator && (i & 1023) == 0 && std::chrono::steady_clock::now() > deadline) {
      b = 0xff;
      p->CopyIn(0, &b, 1);
      g_pipe->Wake(&p->indexes()->reader_wait, p->Commit(1), peer_efd);
      return i + 1;
    }
  }
  return rounds;
}

void RunPingPongs(bool asymmetric, bool doorbell) {
  if (asymmetric) {
    ASSERT_TRUE(MembarrierAvailable()) << "kernel without MEMBARRIER_CMD_GLOBAL_EXPEDITED";
    ASSERT_TRUE(EnableAsymmetricFences());
  } else {
    ForgetFastSide();
    g_heavy_membarrier.store(0);
  }
  SharedPipe pipe;
  ASSERT_TRUE(pipe.Create(doorbell));
  g_pipe = &pipe;
  UniqueFd* efd = pipe.efd;
  const long kRounds = 2'000'000;
  const double kSeconds = 20;

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (asymmetric) EnableAsymmetricFences();  // registration is not inherited
    ByteRingProducer p;
    ByteRingConsumer c;
    pipe.Attach(1, &p, &c);
    const long n = PingPong(&p, &c, efd[1].get(), efd[0].get(), false, kRounds, kSeconds + 30);
    _exit(n < 0 ? 1 : 0);
  }
  ByteRingProducer p;
  ByteRingConsumer c;
  pipe.Attach(0, &p, &c);
  const auto t0 = std::chrono::steady_clock::now();
  const long n = PingPong(&p, &c, efd[0].get(), efd[1].get(), true, kRounds, kSeconds);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_GE(n, 0) << "lost wake-up in the initiator";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "lost wake-up in the responder";
  std::printf("%ld sleeping round trips in %.1f s (%.2f us each)\n", n, secs, secs * 1e6 / n);
  EXPECT_GT(n, 100000);
}

// Fast side with compiler barriers only, slow side with membarrier;
// blocking calls' futex sleeps.
TEST(WakeupStressTest, MillionsOfSleepingPingPongsLoseNothingWithAsymmetricFences) {
  RunPingPongs(true, false);
}

// A process that could not register: real fences on both sides; the
// doorbell sleeps of poll/epoll.
TEST(WakeupStressTest, MillionsOfSleepingPingPongsLoseNothingWithFullFences) {
  RunPingPongs(false, true);
}

// A streaming (lazy) producer: no fence on its fast side, the consumer's
// sleep issues a membarrier instead (fence.h). The child sends bursts of
// random-sized chunks with short pauses inside them, so the parent drains
// the ring and goes to sleep in the middle of a burst over and over; the
// parent checks every byte and acks each burst on the reverse ring. A lost
// wake-up stalls a burst and fails on the poll timeout.
uint8_t StreamByte(uint64_t i) { return static_cast<uint8_t>(i * 131 + (i >> 9)); }

TEST(WakeupStressTest, LazyStreamingProducerLosesNoWakeup) {
  ASSERT_TRUE(MembarrierAvailable()) << "kernel without MEMBARRIER_CMD_GLOBAL_EXPEDITED";
  ForgetFastSide();
  g_heavy_membarrier.store(0);  // full-fence mode: only the lazy ring uses membarrier
  SharedPipe pipe;
  ASSERT_TRUE(pipe.Create(false));
  g_pipe = &pipe;
  UniqueFd* efd = pipe.efd;
  const long kBursts = 300'000;
  const double kSeconds = 15;

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (!RegisterForPeerBarriers()) _exit(2);
    ByteRingProducer p;
    ByteRingConsumer c;
    pipe.Attach(0, &p, &c);
    p.SetLazy(true);
    if (!p.lazy()) _exit(3);
    uint64_t seq = 0, rng = 88172645463325252ull;
    for (;;) {
      // The burst size is announced by the parent's ack byte (0: stop).
      if (!SleepForData(&c, efd[1].get())) _exit(1);
      uint8_t burst;
      c.CopyOut(0, &burst, 1);
      c.Consume(1);
      if (burst == 0) _exit(0);
      size_t left = size_t{burst} * 16;
      while (left > 0) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        size_t n = std::min<size_t>(left, 1 + rng % 100);
        while (p.Writable(n) < n) {  // full: wait for the consumer
          const uint32_t wseq = p.ArmWriter(kArmFutex);
          HeavyFence();
          if (p.RecheckAfterFence() >= n) {
            p.DisarmWriter(kArmFutex);
            break;
          }
          const int rc =
              FutexWait(&p.writer_wait()->wake_seq, wseq, int64_t{kLostWakeupMs} * 1000000);
          p.DisarmWriter(kArmFutex);
          if (rc == ETIMEDOUT && p.Writable(n) < n) _exit(1);
        }
        uint8_t chunk[100];
        for (size_t k = 0; k < n; ++k) chunk[k] = StreamByte(seq + k);
        p.CopyIn(0, chunk, n);
        pipe.Wake(&p.indexes()->reader_wait, p.Commit(n), efd[0].get());
        seq += n;
        left -= n;
        if ((rng >> 40) % 4 == 0) {  // a pause inside the burst: the reader may sleep
          for (int k = 0; k < static_cast<int>((rng >> 20) % 2000); ++k) __builtin_ia32_pause();
        }
      }
    }
  }
  ByteRingProducer p;
  ByteRingConsumer c;
  pipe.Attach(1, &p, &c);
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::duration<double>(kSeconds);
  uint64_t seq = 0, sleeps = 0;
  long bursts = 0;
  bool lost = false, corrupt = false;
  for (; bursts < kBursts && !lost && !corrupt; ++bursts) {
    if ((bursts & 255) == 0 && std::chrono::steady_clock::now() > deadline) break;
    const uint8_t burst = static_cast<uint8_t>(1 + bursts % 200);
    p.CopyIn(0, &burst, 1);
    pipe.Wake(&p.indexes()->reader_wait, p.Commit(1), efd[1].get());
    size_t want = size_t{burst} * 16;
    while (want > 0) {
      size_t avail = c.Readable();
      if (avail == 0) {
        ++sleeps;
        if (!SleepForData(&c, efd[0].get())) {
          lost = true;
          break;
        }
        continue;
      }
      const size_t n = std::min(avail, want);
      uint8_t buf[kCap];
      c.CopyOut(0, buf, n);
      for (size_t k = 0; k < n; ++k) {
        if (buf[k] != StreamByte(seq + k)) corrupt = true;
      }
      pipe.Wake(&c.indexes()->writer_wait, c.Consume(n), efd[1].get());
      seq += n;
      want -= n;
    }
  }
  const uint8_t stop = 0;
  p.CopyIn(0, &stop, 1);
  pipe.Wake(&p.indexes()->reader_wait, p.Commit(1), efd[1].get());
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(lost) << "lost wake-up: the consumer slept on data after " << bursts << " bursts";
  ASSERT_FALSE(corrupt) << "byte mismatch near stream offset " << seq;
  ASSERT_TRUE(WIFEXITED(status)) << "child killed";
  ASSERT_NE(WEXITSTATUS(status), 2) << "membarrier registration failed";
  ASSERT_NE(WEXITSTATUS(status), 3) << "the producer did not go lazy";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "lost wake-up in the producer";
  std::printf("%ld bursts, %llu bytes, %llu consumer sleeps in %.1f s\n", bursts,
              static_cast<unsigned long long>(seq), static_cast<unsigned long long>(sleeps), secs);
  EXPECT_GT(bursts, 1000);
  EXPECT_GT(sleeps, 1000u);  // the sleep path really ran against a lazy writer
}

}  // namespace
}  // namespace shm
}  // namespace offload
