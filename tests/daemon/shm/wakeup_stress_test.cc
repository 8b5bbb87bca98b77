// The need-wake-up handshake under stress: two processes ping-pong one byte
// through a shared pipe segment with spinning disabled, so every message
// goes through the sleep path (flag, fence, re-check, poll on an eventfd).
// A lost wake-up shows up as a poll() that times out with the flag set and
// fails the test; the run is bounded in count and in time.

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "daemon/shm/byte_ring.h"
#include "daemon/shm/fence.h"
#include "daemon/shm/unique_fd.h"
#include "daemon/shm/wakeup.h"
#include "gtest/gtest.h"

namespace offload {
namespace shm {
namespace {

constexpr uint32_t kCap = 4096;
constexpr int kLostWakeupMs = 5000;

// Blocks until the ring has a byte. Returns false on a lost wake-up.
bool SleepForData(ByteRingConsumer* c, int efd) {
  while (c->Readable() == 0) {
    if (c->PrepareSleep() != 0) {
      c->CancelSleep();
      break;
    }
    struct pollfd pfd = {efd, POLLIN, 0};
    const int rc = poll(&pfd, 1, kLostWakeupMs);
    if (rc == 0) return false;
    Drain(efd);
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
      if (p->Commit(1)) Kick(peer_efd);
    }
    if (!SleepForData(c, my_efd)) return -1;
    uint8_t v;
    c->CopyOut(0, &v, 1);
    if (v == 0xff) return i;  // peer stopped on its deadline
    c->Consume(1);
    if (!initiator) {
      p->CopyIn(0, &v, 1);
      if (p->Commit(1)) Kick(peer_efd);
    }
    if (initiator && (i & 1023) == 0 && std::chrono::steady_clock::now() > deadline) {
      b = 0xff;
      p->CopyIn(0, &b, 1);
      if (p->Commit(1)) Kick(peer_efd);
      return i + 1;
    }
  }
  return rounds;
}

void RunPingPongs(bool asymmetric) {
  if (asymmetric) {
    ASSERT_TRUE(MembarrierAvailable()) << "kernel without MEMBARRIER_CMD_GLOBAL_EXPEDITED";
    ASSERT_TRUE(EnableAsymmetricFences());
  } else {
    ForgetFastSide();
    g_heavy_membarrier.store(0);
  }
  UniqueFd mem(memfd_create("wakeup_stress", MFD_CLOEXEC));
  ASSERT_TRUE(mem.valid());
  const size_t bytes = PipeSegmentBytes(kCap);
  ASSERT_EQ(ftruncate(mem.get(), bytes), 0);
  Mapping map = Mapping::MapShared(mem.get(), bytes);
  ASSERT_TRUE(map.valid());
  auto* hdr = new (map.get()) PipeHeader();
  hdr->capacity = kCap;
  auto* base = map.as<uint8_t>();
  UniqueFd efd[2] = {UniqueFd(eventfd(0, EFD_NONBLOCK)), UniqueFd(eventfd(0, EFD_NONBLOCK))};
  const long kRounds = 2'000'000;
  const double kSeconds = 20;

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (asymmetric) EnableAsymmetricFences();  // registration is not inherited
    ByteRingProducer p;
    ByteRingConsumer c;
    p.Init(&hdr->dir[1], base + PipeDataOffset(1, kCap), kCap);
    c.Init(&hdr->dir[0], base + PipeDataOffset(0, kCap), kCap);
    const long n = PingPong(&p, &c, efd[1].get(), efd[0].get(), false, kRounds, kSeconds + 30);
    _exit(n < 0 ? 1 : 0);
  }
  ByteRingProducer p;
  ByteRingConsumer c;
  p.Init(&hdr->dir[0], base + PipeDataOffset(0, kCap), kCap);
  c.Init(&hdr->dir[1], base + PipeDataOffset(1, kCap), kCap);
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

// Fast side with compiler barriers only, slow side with membarrier.
TEST(WakeupStressTest, MillionsOfSleepingPingPongsLoseNothingWithAsymmetricFences) { RunPingPongs(true); }

// A process that could not register: real fences on both sides.
TEST(WakeupStressTest, MillionsOfSleepingPingPongsLoseNothingWithFullFences) { RunPingPongs(false); }

}  // namespace
}  // namespace shm
}  // namespace offload
