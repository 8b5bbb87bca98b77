// Byte ring and datagram ring: full/empty, wrap-around, and SPSC correctness
// under two threads (every byte checked).

#include "shm/ring.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "shm/dgram_ring.h"
#include "gtest/gtest.h"

namespace offload {
namespace shm {
namespace {

struct TestRing {
  explicit TestRing(uint32_t cap) : idx(new RingIndexes()), data(cap), capacity(cap) {
    p.Init(idx.get(), data.data(), cap);
    c.Init(idx.get(), data.data(), cap);
  }
  std::unique_ptr<RingIndexes> idx;
  std::vector<uint8_t> data;
  uint32_t capacity;
  ByteRingProducer p;
  ByteRingConsumer c;
};

TEST(ByteRingTest, EmptyThenFullThenEmpty) {
  TestRing r(64);
  EXPECT_EQ(r.c.Readable(), 0u);
  EXPECT_EQ(r.p.Writable(), 64u);
  uint8_t buf[64];
  for (int i = 0; i < 64; ++i) buf[i] = static_cast<uint8_t>(i);
  r.p.CopyIn(0, buf, 64);
  EXPECT_EQ(r.p.Commit(64), 0u);
  EXPECT_EQ(r.p.Writable(), 0u);
  EXPECT_EQ(r.c.Readable(), 64u);
  uint8_t out[64] = {};
  r.c.CopyOut(0, out, 64);
  EXPECT_EQ(std::memcmp(buf, out, 64), 0);
  EXPECT_EQ(r.c.Consume(64), 0u);
  EXPECT_EQ(r.c.Readable(), 0u);
  EXPECT_EQ(r.p.Writable(), 64u);
}

TEST(ByteRingTest, WrapAroundKeepsBytesInOrder) {
  TestRing r(16);
  uint8_t next_in = 0, next_out = 0;
  for (int round = 0; round < 100; ++round) {
    const size_t n = 1 + round % 15;
    ASSERT_GE(r.p.Writable(n), n);
    uint8_t buf[16];
    for (size_t i = 0; i < n; ++i) buf[i] = next_in++;
    r.p.CopyIn(0, buf, n);
    r.p.Commit(n);
    ASSERT_EQ(r.c.Readable(), n);
    uint8_t out[16];
    r.c.CopyOut(0, out, n);
    r.c.Consume(n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], next_out++) << "round " << round;
  }
}

TEST(ByteRingTest, AWakeUpIsOwedOncePerSleepAndOnlyWhileSomeoneWaits) {
  TestRing r(16);
  uint8_t b = 1;
  auto send1 = [&] {
    r.p.CopyIn(0, &b, 1);
    return r.p.Commit(1);
  };
  EXPECT_EQ(send1(), 0u);  // nobody waits: no wake-up to do
  r.c.Consume(1);
  r.c.ArmReader(kArmFutex);     // a blocking reader and
  r.c.ArmReader(kArmDoorbell);  // a poller go to sleep
  EXPECT_EQ(r.c.RecheckAfterFence(), 0u);
  EXPECT_EQ(send1(), kArmFutex | kArmDoorbell);  // the producer must wake both kinds
  EXPECT_EQ(send1(), 0u);  // woken already, even if they have not run yet
  r.c.DisarmReader(kArmFutex);
  r.c.DisarmReader(kArmDoorbell);
  // A poller that arms, finds data on its re-check and leaves owes nothing.
  r.c.ArmReader(kArmDoorbell);
  EXPECT_NE(r.c.RecheckAfterFence(), 0u);
  r.c.DisarmReader(kArmDoorbell);
  EXPECT_EQ(send1(), 0u);
  // Two blocking readers; one leaves without sleeping: the other is owed.
  r.c.ArmReader(kArmFutex);
  r.c.ArmReader(kArmFutex);
  r.c.DisarmReader(kArmFutex);
  EXPECT_EQ(send1(), kArmFutex);
  r.c.DisarmReader(kArmFutex);
  EXPECT_EQ(r.idx->reader_wait.sleepers.load(), 0u);
  // Writer side: fill, sleep, the consumer must wake it once.
  r.p.CopyIn(0, &b, 1);
  r.p.Commit(r.p.RecheckAfterFence());
  r.p.ArmWriter(kArmFutex);
  EXPECT_EQ(r.p.RecheckAfterFence(), 0u);
  EXPECT_EQ(r.c.Consume(1), kArmFutex);
  EXPECT_EQ(r.c.Consume(1), 0u);
  r.p.DisarmWriter(kArmFutex);
  EXPECT_EQ(r.idx->writer_wait.sleepers.load(), 0u);
}

TEST(ByteRingTest, WaiterSetListsEachProcessOnceAndReportsOverflow) {
  RingWaitLine w = {};
  for (uint64_t id = 1; id <= kMaxRingWaiters; ++id) {
    EXPECT_TRUE(AddWaiter(&w, id));
    EXPECT_TRUE(AddWaiter(&w, id));  // idempotent
  }
  EXPECT_FALSE(AddWaiter(&w, 99));
  EXPECT_EQ(w.waiter_overflow.load(), 1u);
  RemoveWaiter(&w, 2);
  EXPECT_TRUE(AddWaiter(&w, 99));
}

TEST(ByteRingTest, SharedReadinessNeverWrapsWhileIndicesMove) {
  TestRing r(64);
  uint8_t buf[64] = {};
  r.p.CopyIn(0, buf, 40);
  r.p.Commit(40);
  EXPECT_EQ(r.c.ReadableShared(), 40u);
  EXPECT_EQ(r.p.WritableShared(), 24u);
  r.c.Consume(40);
  EXPECT_EQ(r.c.ReadableShared(), 0u);
  EXPECT_EQ(r.p.WritableShared(), 64u);
}

TEST(ByteRingTest, ShutIsSeenAfterTheLastByte) {
  TestRing r(16);
  uint8_t b = 7;
  r.p.CopyIn(0, &b, 1);
  r.p.Commit(1);
  r.p.Shut(kShutFin);
  ASSERT_EQ(r.c.Readable(), 1u);
  r.c.Consume(1);
  EXPECT_EQ(r.c.Readable(), 0u);
  EXPECT_EQ(r.c.Shut(), kShutFin);
}

TEST(ByteRingTest, TwoThreadsTransferEveryByteInOrder) {
  TestRing r(4096);
  constexpr uint64_t kTotal = 64ull << 20;
  std::thread producer([&] {
    uint64_t sent = 0;
    uint8_t buf[1500];
    while (sent < kTotal) {
      const size_t want = 1 + (sent * 7919) % sizeof(buf);
      const size_t room = r.p.Writable(want);
      if (room == 0) continue;
      size_t n = std::min<uint64_t>({want, room, kTotal - sent});
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>((sent + i) * 131 >> 3);
      r.p.CopyIn(0, buf, n);
      r.p.Commit(n);
      sent += n;
    }
  });
  uint64_t got = 0;
  uint64_t bad = 0;
  uint8_t buf[3000];
  while (got < kTotal) {
    size_t n = r.c.Readable();
    if (n == 0) continue;
    n = std::min(n, sizeof(buf));
    r.c.CopyOut(0, buf, n);
    for (size_t i = 0; i < n; ++i)
      bad += buf[i] != static_cast<uint8_t>((got + i) * 131 >> 3);
    r.c.Consume(n);
    got += n;
  }
  producer.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(got, kTotal);
}

struct TestDgram {
  explicit TestDgram(uint32_t cap) : mem(DgramSegmentBytes(cap) / 8 + 1) {
    hdr = new (mem.data()) DgramHeader();
    hdr->capacity = cap;
    p.Init(hdr);
    c.Init(hdr);
  }
  std::vector<uint64_t> mem;
  DgramHeader* hdr;
  DgramProducer p;
  DgramConsumer c;
};

TEST(DgramRingTest, RecordsKeepBoundariesAcrossWrap) {
  TestDgram r(256);
  bool kick = false;
  for (int i = 0; i < 1000; ++i) {
    const size_t len = i % 90;
    std::vector<uint8_t> msg(len, static_cast<uint8_t>(i));
    struct iovec iov = {msg.data(), len};
    ASSERT_TRUE(r.p.Push(&iov, 1, len, &kick)) << i;
    size_t got_len = 0;
    const uint8_t* p = r.c.Front(&got_len);
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(got_len, len);
    for (size_t j = 0; j < len; ++j) ASSERT_EQ(p[j], static_cast<uint8_t>(i));
    r.c.Pop(got_len);
  }
  EXPECT_TRUE(r.c.Empty());
}

TEST(DgramRingTest, FullRingRejectsWithoutCorruption) {
  TestDgram r(256);
  bool kick = false;
  uint8_t msg[64 - sizeof(DgramRecord)] = {};
  struct iovec iov = {msg, sizeof(msg)};
  int pushed = 0;
  while (r.p.Push(&iov, 1, sizeof(msg), &kick)) ++pushed;
  EXPECT_EQ(pushed, 4);  // 4 records of 64 bytes
  size_t len;
  int popped = 0;
  while (r.c.Front(&len) != nullptr) {
    EXPECT_EQ(len, sizeof(msg));
    r.c.Pop(len);
    ++popped;
  }
  EXPECT_EQ(popped, pushed);
}

}  // namespace
}  // namespace shm
}  // namespace offload
