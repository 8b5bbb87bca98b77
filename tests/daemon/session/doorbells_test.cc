// DoorbellRegistry with hint rings (shm/hint_ring.h): a kick of a listed
// id that carries a token posts the token before it writes the eventfd.

#include "daemon/session/doorbells.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"
#include "shm/hint_ring.h"

namespace offload {
namespace session {
namespace {

constexpr uint64_t kId = uint64_t{0x1234} << shm::kHintTokenBits;

std::vector<uint32_t> Drain(shm::HintRing* r, bool* overflow) {
  std::vector<uint32_t> got;
  *overflow = shm::DrainHints(r, [&](uint32_t t) { got.push_back(t); });
  return got;
}

TEST(DoorbellsTest, AKickWithATokenPostsItThenWakes) {
  DoorbellRegistry reg;
  shm::Mapping ring;
  shm::UniqueFd hints = shm::CreateHintRing(&ring);
  ASSERT_TRUE(hints.valid());
  shm::UniqueFd efd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  const int efd_raw = efd.get();
  ASSERT_TRUE(reg.AddProcess(kId, std::move(efd), std::move(hints)));
  EXPECT_EQ(reg.KickDoorbell(kId | 7 | shm::kExclusiveWaiterBit), shm::KickResult::kKicked);
  EXPECT_EQ(reg.KickDoorbell(kId | 9), shm::KickResult::kKicked);
  uint64_t v = 0;
  ASSERT_EQ(read(efd_raw, &v, 8), 8);
  EXPECT_EQ(v, 2u);
  bool overflow = true;
  EXPECT_EQ(Drain(ring.as<shm::HintRing>(), &overflow), (std::vector<uint32_t>{7, 9}));
  EXPECT_FALSE(overflow);
  // No token: a wake-up only.
  EXPECT_EQ(reg.KickDoorbell(kId), shm::KickResult::kKicked);
  EXPECT_TRUE(Drain(ring.as<shm::HintRing>(), &overflow).empty());
}

TEST(DoorbellsTest, AFullRingRaisesOverflowAndStillWakes) {
  DoorbellRegistry reg;
  shm::Mapping ring;
  shm::UniqueFd hints = shm::CreateHintRing(&ring);
  shm::UniqueFd efd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_TRUE(reg.AddProcess(kId, std::move(efd), std::move(hints)));
  for (uint32_t i = 0; i < shm::kHintRingEntries + 5; ++i) {
    EXPECT_EQ(reg.KickDoorbell(kId | (1 + i % 1000)), shm::KickResult::kKicked);
  }
  bool overflow = false;
  EXPECT_EQ(Drain(ring.as<shm::HintRing>(), &overflow).size(), shm::kHintRingEntries);
  EXPECT_TRUE(overflow) << "the consumer must look at everything";
  EXPECT_FALSE(shm::HintsPending(ring.as<shm::HintRing>()));
}

TEST(DoorbellsTest, MalformedIdsAndRingsAreRefused) {
  DoorbellRegistry reg;
  EXPECT_FALSE(reg.AddProcess(kId | 3, shm::UniqueFd(eventfd(0, 0))))
      << "token bits are not part of a doorbell id";
  // A ring that can shrink could fault offloadd: refused.
  shm::UniqueFd plain(memfd_create("x", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(plain.get(), shm::HintRingBytes()), 0);
  EXPECT_FALSE(reg.AddProcess(kId, shm::UniqueFd(eventfd(0, 0)), std::move(plain)));
  EXPECT_EQ(reg.KickDoorbell(kId | 1), shm::KickResult::kUnknown);
  ASSERT_TRUE(reg.AddProcess(kId, shm::UniqueFd(eventfd(0, 0))));
  reg.RemoveProcess(kId);
  EXPECT_EQ(reg.KickDoorbell(kId | 5), shm::KickResult::kGone)
      << "a listed id of a gone process is recognised with its token";
}

// A process that got a copy of a doorbell (kDoorbell) is told when its
// owner goes, so that it closes the copy: a server serving many
// short-lived clients kept one eventfd per client before.
TEST(DoorbellsTest, RemovingADoorbellNamesTheSessionsHoldingCopies) {
  DoorbellRegistry reg;
  ASSERT_TRUE(reg.AddProcess(kId, shm::UniqueFd(eventfd(0, 0))));
  reg.NoteAsker(kId | 7, 11);  // a listed id: the token does not matter
  reg.NoteAsker(kId, 12);
  reg.NoteAsker(kId, 12);
  reg.NoteAsker(kId, 13);
  reg.ForgetAsker(kId, 13);  // that session detached first
  std::vector<int> askers = reg.RemoveProcess(kId);
  std::sort(askers.begin(), askers.end());
  EXPECT_EQ(askers, (std::vector<int>{11, 12}));
  EXPECT_TRUE(reg.RemoveProcess(kId).empty()) << "told once";
  reg.NoteAsker(kId, 14);  // a late asker of a gone id is not recorded
  ASSERT_TRUE(reg.AddProcess(kId + (uint64_t{1} << shm::kHintTokenBits), shm::UniqueFd(eventfd(0, 0))));
  EXPECT_TRUE(reg.RemoveProcess(kId + (uint64_t{1} << shm::kHintTokenBits)).empty());
}

}  // namespace
}  // namespace session
}  // namespace offload
