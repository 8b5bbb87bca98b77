// EndLock (shm/end_lock.h): the lock of one side of a socket.

#include "shm/end_lock.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace offload {
namespace shm {
namespace {

uint64_t Token() {
  return uint64_t(static_cast<uint32_t>(getpid())) << 32 |
         static_cast<uint32_t>(syscall(SYS_gettid));
}

// Shared memory, as between processes.
template <typename T>
T* MapShared() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return new (p) T();
}

struct Guarded {
  EndLock lock;
  uint64_t counter;  // plain: only the lock protects it
};

TEST(EndLockTest, FirstCallerIsBiasedAndEntersWithoutTheMutex) {
  EndLock l;
  InitEndLock(&l);
  const uint64_t me = Token();
  EXPECT_EQ(AcquireEndLock(&l, me), EndLockMode::kLocked);  // biases it
  ReleaseEndLock(&l, EndLockMode::kLocked);
  EXPECT_TRUE(EndLockBiasedTo(&l, me));
  EXPECT_EQ(AcquireEndLock(&l, me), EndLockMode::kBiased);
  ReleaseEndLock(&l, EndLockMode::kBiased);
}

TEST(EndLockTest, ASecondThreadRevokesTheBiasForGood) {
  EndLock l;
  InitEndLock(&l);
  const uint64_t me = Token();
  ReleaseEndLock(&l, AcquireEndLock(&l, me));
  std::thread([&] { ReleaseEndLock(&l, AcquireEndLock(&l, Token())); }).join();
  EXPECT_FALSE(EndLockBiasedTo(&l, me));
  EXPECT_EQ(AcquireEndLock(&l, me), EndLockMode::kLocked);
  ReleaseEndLock(&l, EndLockMode::kLocked);
}

TEST(EndLockTest, ThreadsNeverOverlapAcrossTheRevocation) {
  for (bool registered : {false, true}) {
    g_peer_barriers.store(registered ? 1 : 0);
    if (registered && !RegisterForPeerBarriers()) continue;
    Guarded g;
    InitEndLock(&g.lock);
    g.counter = 0;
    constexpr int kThreads = 4, kRounds = 20000;
    std::vector<std::thread> th;
    for (int t = 0; t < kThreads; ++t) {
      th.emplace_back([&] {
        const uint64_t me = Token();
        for (int i = 0; i < kRounds; ++i) {
          EndLockGuard lock(&g.lock, me);
          const uint64_t c = g.counter;
          g.counter = c + 1;
        }
      });
    }
    for (auto& t : th) t.join();
    EXPECT_EQ(g.counter, uint64_t{kThreads} * kRounds) << "registered " << registered;
  }
}

TEST(EndLockTest, ProcessesShareItAndADeadHolderDoesNotBlockTheOthers) {
  auto* g = MapShared<Guarded>();
  InitEndLock(&g->lock);
  g->counter = 0;
  // A child takes the lock and dies holding it (mutex, not biased: the
  // parent used it first).
  ReleaseEndLock(&g->lock, AcquireEndLock(&g->lock, Token()));
  const pid_t dead = fork();
  if (dead == 0) {
    AcquireEndLock(&g->lock, Token());
    _exit(0);
  }
  waitpid(dead, nullptr, 0);
  constexpr int kProcs = 3, kRounds = 5000;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    const pid_t pid = fork();
    if (pid == 0) {
      for (int i = 0; i < kRounds; ++i) {
        EndLockGuard lock(&g->lock, Token());
        const uint64_t c = g->counter;
        g->counter = c + 1;
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int st = 0;
    waitpid(k, &st, 0);
    EXPECT_TRUE(WIFEXITED(st));
  }
  EXPECT_EQ(g->counter, uint64_t{kProcs} * kRounds);
}

TEST(EndLockTest, AGuardReleasesAndTakesItAgain) {
  EndLock l;
  InitEndLock(&l);
  EndLockGuard g(&l, Token());
  EXPECT_TRUE(g.held());
  g.Unlock();
  EXPECT_FALSE(g.held());
  std::thread([&] { ReleaseEndLock(&l, AcquireEndLock(&l, Token())); }).join();
  g.Relock(Token());
  EXPECT_TRUE(g.held());
}

}  // namespace
}  // namespace shm
}  // namespace offload
