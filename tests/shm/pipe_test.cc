// Channels of pipes and accept queues (shm/pipe.h, shm/channel_map.h,
// shm/listener.h).

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>
#include <set>

#include "gtest/gtest.h"
#include "shm/abi.h"
#include "shm/channel_map.h"
#include "shm/listener.h"
#include "shm/pipe.h"

namespace offload {
namespace shm {
namespace {

constexpr uint32_t kCap = 4096;

std::unique_ptr<ChannelMap> NewChannel() {
  return ChannelMap::Create(7, ChannelKind::kSameHost, kCap, 3, 1);
}

TEST(ChannelTest, AProcessOpensWhatTheDaemonCreatedAndSeesTheSameSlots) {
  std::unique_ptr<ChannelMap> daemon = NewChannel();
  ASSERT_NE(daemon, nullptr);
  std::unique_ptr<ChannelMap> app =
      ChannelMap::Open(UniqueFd(fcntl(daemon->memfd(), F_DUPFD_CLOEXEC, 0)), false);
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->id(), 7u);
  uint32_t slot = 0, gen = 0;
  ASSERT_TRUE(app->Allocate(3, 2, false, &slot, &gen));
  app->Record(slot)->end[0].inode = 42;
  EXPECT_EQ(daemon->Record(slot)->end[0].inode, 42u);
  EXPECT_EQ(daemon->Record(slot)->ctl.gen.load(), gen);
  EXPECT_EQ(daemon->Record(slot)->ctl.listener_id, 3u);
}

TEST(ChannelTest, SlotsAreUniqueAndTheFileGrowsByExtents) {
  std::unique_ptr<ChannelMap> c = NewChannel();
  std::set<uint32_t> slots;
  for (uint32_t i = 0; i < 3 * kSlotsPerExtent; ++i) {
    uint32_t slot = 0, gen = 0;
    ASSERT_TRUE(c->Allocate(3, 2, false, &slot, &gen));
    EXPECT_TRUE(slots.insert(slot).second);
  }
  EXPECT_EQ(c->header()->num_extents.load(), 3u);
  struct stat st;
  ASSERT_EQ(fstat(c->memfd(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), ChannelBytes(kCap, 3));
}

TEST(ChannelTest, AFreedSlotComesBackWithANewGeneration) {
  std::unique_ptr<ChannelMap> c = NewChannel();
  uint32_t slot = 0, gen = 0;
  ASSERT_TRUE(c->Allocate(3, 2, false, &slot, &gen));
  c->Record(slot)->ctl.closed.store(3);
  ASSERT_TRUE(c->Free(slot, false));
  EXPECT_TRUE(c->Free(slot, false));  // twice: nothing happens
  uint32_t again = 0, gen2 = 0;
  ASSERT_TRUE(c->Allocate(3, 2, false, &again, &gen2));
  EXPECT_EQ(again, slot);
  EXPECT_NE(gen2, gen);
  EXPECT_EQ(c->Record(again)->ctl.closed.load(), 0u);
}

// Issue 15: a freed slot gives the pages its traffic touched back (all but
// the first of each ring); what another slot holds is left alone.
TEST(ChannelTest, AFreedSlotGivesItsRingPagesBack) {
  constexpr uint32_t kBig = 256 * 1024;
  std::unique_ptr<ChannelMap> c = ChannelMap::Create(9, ChannelKind::kSameHost, kBig, 3, 1);
  ASSERT_NE(c, nullptr);
  uint32_t slot = 0, gen = 0, other = 0, ogen = 0;
  ASSERT_TRUE(c->Allocate(3, 2, false, &slot, &gen));
  ASSERT_TRUE(c->Allocate(3, 2, false, &other, &ogen));
  auto blocks = [&] {
    struct stat st;
    EXPECT_EQ(fstat(c->memfd(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  };
  const uint64_t before = blocks();
  // Traffic: 200 KiB one way, 3 KiB (one page) the other; the other slot
  // carries 64 KiB.
  memset(c->RingData(slot, 0), 0xab, 200 * 1024);
  c->Record(slot)->dir[0].tail.store(200 * 1024);
  memset(c->RingData(slot, 1), 0xcd, 3 * 1024);
  c->Record(slot)->dir[1].tail.store(3 * 1024);
  memset(c->RingData(other, 0), 0xef, 64 * 1024);
  c->Record(other)->dir[0].tail.store(64 * 1024);
  const uint64_t touched = blocks();
  EXPECT_GE(touched - before, uint64_t{(200 + 4 + 64) * 1024});
  c->Record(slot)->ctl.closed.store(3);
  ASSERT_TRUE(c->Free(slot, false));
  const uint64_t after = blocks();
  // 196 KiB of the first ring went back; its first page and the second
  // ring's page stay.
  EXPECT_EQ(touched - after, uint64_t{196 * 1024});
  EXPECT_EQ(c->RingData(slot, 0)[0], 0xab);
  EXPECT_EQ(c->RingData(slot, 0)[4096], 0);  // a hole reads as zeros
  EXPECT_EQ(c->RingData(slot, 1)[0], 0xcd);
  EXPECT_EQ(c->RingData(other, 0)[64 * 1024 - 1], 0xef);
  // A tail past the ring (a hostile process) punches the ring, no more.
  uint32_t again = 0, gen2 = 0;
  ASSERT_TRUE(c->Allocate(3, 2, false, &again, &gen2));
  ASSERT_EQ(again, slot);
  memset(c->RingData(slot, 1), 0x11, kBig);
  c->Record(slot)->dir[1].tail.store(~uint64_t{0} >> 1);
  c->Record(slot)->ctl.closed.store(3);
  ASSERT_TRUE(c->Free(slot, false));
  EXPECT_EQ(c->RingData(slot, 1)[0], 0x11);
  EXPECT_EQ(c->RingData(slot, 1)[kBig - 1], 0);
  EXPECT_EQ(c->RingData(other, 0)[0], 0xef);
  EXPECT_EQ(c->Record(other)->dir[0].tail.load(), 64u * 1024);
}

TEST(ChannelTest, AReusedSlotStartsWithNoEngineOptionsQueriesOrErrno) {
  std::unique_ptr<ChannelMap> c = NewChannel();
  uint32_t slot = 0, gen = 0;
  ASSERT_TRUE(c->Allocate(3, 1, false, &slot, &gen));
  PipeRecord* r = c->Record(slot);
  r->req.opts_seq.store(4);
  r->req.opts[0].store(kOptNodelay);
  r->req.query.store(9);
  r->req.more_tail.store(100);
  r->req.eor_count.store(2);
  r->ans.answered.store(9);
  r->ans.close_error.store(110);
  r->ans.final_answer.store(1);
  r->ans.info[0].store(1);
  r->ctl.closed.store(3);
  ASSERT_TRUE(c->Free(slot, false));
  uint32_t again = 0, gen2 = 0;
  ASSERT_TRUE(c->Allocate(3, 1, false, &again, &gen2));
  ASSERT_EQ(again, slot);
  r = c->Record(again);
  EXPECT_EQ(r->req.opts_seq.load(), 0u);
  EXPECT_EQ(r->req.opts[0].load(), 0u);
  EXPECT_EQ(r->req.query.load(), 0u);
  EXPECT_EQ(r->req.more_tail.load(), 0u);
  EXPECT_EQ(r->req.eor_count.load(), 0u);
  EXPECT_EQ(r->ans.answered.load(), 0u);
  EXPECT_EQ(r->ans.close_error.load(), 0);
  EXPECT_EQ(r->ans.final_answer.load(), 0u);
  EXPECT_EQ(r->ans.info[0].load(), 0u);
}

TEST(ChannelTest, ACorruptFreeListIsForgottenNotFollowed) {
  std::unique_ptr<ChannelMap> c = NewChannel();
  c->header()->free_head = 123456789;  // a process wrote garbage
  uint32_t slot = 0, gen = 0;
  EXPECT_TRUE(c->Allocate(3, 2, false, &slot, &gen));
  EXPECT_LT(slot, kSlotsPerExtent);
}

TEST(ChannelTest, OpenRefusesSomethingThatIsNotAChannel) {
  UniqueFd fd(memfd_create("x", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(fd.get(), 8192), 0);
  EXPECT_EQ(ChannelMap::Open(std::move(fd), true), nullptr);
}

struct PipeFixture : ::testing::Test {
  void SetUp() override {
    c = NewChannel();
    ASSERT_TRUE(c->Allocate(3, 2, false, &slot, &gen));
    r = c->Record(slot);
  }
  void Write(int dir, uint32_t n) {
    ByteRingProducer p;
    p.Init(&r->dir[dir], c->RingData(slot, dir), kCap);
    uint8_t b[64] = {};
    p.CopyIn(0, b, n);
    p.Commit(n);
  }
  std::unique_ptr<ChannelMap> c;
  uint32_t slot = 0, gen = 0;
  PipeRecord* r = nullptr;
};

// RFC 9293 3.10.4 / Linux: the last close of a socket sends FIN after the
// queued data, and the peer's later sends fail.
TEST_F(PipeFixture, CloseWithNothingUnreadIsAFin) {
  Write(0, 10);
  const CloseWakeups w = CloseEnd(r, 0);
  EXPECT_FALSE(w.free_slot);
  EXPECT_EQ(r->dir[0].shut.load(), kShutFin);
  EXPECT_EQ(r->dir[1].reader_closed.load(), kReaderClosed);
  EXPECT_EQ(r->dir[0].tail.load(), 10u);  // the queued bytes stay for the peer
}

// RFC 2525 2.17: closing with unread data aborts (RST).
TEST_F(PipeFixture, CloseWithUnreadDataIsAReset) {
  Write(1, 5);
  CloseEnd(r, 0);
  EXPECT_EQ(r->dir[0].shut.load(), kShutRst);
  EXPECT_EQ(r->dir[1].reader_closed.load(), kReaderClosedUnread);
}

TEST_F(PipeFixture, LingerZeroIsAReset) {
  r->end[0].flags.fetch_or(kEndLingerAbort);
  CloseEnd(r, 0);
  EXPECT_EQ(r->dir[0].shut.load(), kShutRst);
}

TEST_F(PipeFixture, TheSecondEndToCloseFreesTheSlotExactlyOnce) {
  EXPECT_FALSE(CloseEnd(r, 1).free_slot);
  EXPECT_FALSE(CloseEnd(r, 1).free_slot);  // a repeat does nothing
  EXPECT_TRUE(CloseEnd(r, 0).free_slot);
  EXPECT_FALSE(CloseEnd(r, 0).free_slot);
}

TEST_F(PipeFixture, CloseWakesThePeersSleepers) {
  ArmWait(&r->dir[0].reader_wait, kArmFutex);
  ArmWait(&r->dir[1].writer_wait, kArmDoorbell);
  const CloseWakeups w = CloseEnd(r, 0);
  EXPECT_EQ(w.peer_readers, kArmFutex);
  EXPECT_EQ(w.peer_writers, kArmDoorbell);
}

struct ListenerFixture : ::testing::Test {
  void SetUp() override {
    void* p = mmap(nullptr, ListenerSegmentBytes(), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    l = new (p) ListenerHeader();
    InitListener(l, 9, FromV4(0x0100007f, 0x5000), 128);
  }
  void TearDown() override { munmap(l, ListenerSegmentBytes()); }
  ListenerHeader* l = nullptr;
};

TEST_F(ListenerFixture, ConnectionsAreTakenInOrderFromEveryQueue) {
  ASSERT_EQ(PostConnection(l, {1, 10, 1, 0}), PostResult::kPosted);
  ASSERT_EQ(PostConnection(l, {1, 11, 1, 0}), PostResult::kPosted);
  uint64_t tail = 0;
  ASSERT_TRUE(PostEngineConnection(l, 0, {2, 20, 1, 0}, &tail));
  EXPECT_EQ(PendingAccepts(l), 3u);
  AcceptEntry e;
  int engine = 0;
  ASSERT_TRUE(TakeConnection(l, &e, &engine));
  EXPECT_EQ(e.slot, 10u);
  EXPECT_EQ(engine, -1);
  ASSERT_TRUE(TakeConnection(l, &e, &engine));
  EXPECT_EQ(e.slot, 11u);
  ASSERT_TRUE(TakeConnection(l, &e, &engine));
  EXPECT_EQ(e.slot, 20u);
  EXPECT_EQ(engine, 0);
  EXPECT_FALSE(TakeConnection(l, &e, &engine));
}

TEST_F(ListenerFixture, AClosedListenerRefusesAndAFullOneSaysSo) {
  for (uint32_t i = 0; i < kAcceptQueueCap; ++i) {
    ASSERT_EQ(PostConnection(l, {1, i, 1, 0}), PostResult::kPosted);
  }
  EXPECT_EQ(PostConnection(l, {1, 0, 1, 0}), PostResult::kFull);
  l->state.store(kListenerClosed);
  EXPECT_EQ(PostConnection(l, {1, 0, 1, 0}), PostResult::kClosed);
}

TEST_F(ListenerFixture, AnEngineRingNeverOverrunsItsConsumer) {
  uint64_t tail = 0;
  for (uint32_t i = 0; i < kEngineAcceptCap; ++i) {
    ASSERT_TRUE(PostEngineConnection(l, 1, {2, i, 1, 0}, &tail));
  }
  EXPECT_FALSE(PostEngineConnection(l, 1, {2, 0, 1, 0}, &tail));
  l->engine[1].head.store(tail + 5);  // a process wrote garbage
  EXPECT_FALSE(PostEngineConnection(l, 1, {2, 0, 1, 0}, &tail));
  EXPECT_FALSE(PostEngineConnection(l, kMaxAcceptEngines, {2, 0, 1, 0}, &tail));
}

}  // namespace
}  // namespace shm
}  // namespace offload
