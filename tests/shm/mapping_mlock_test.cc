// A process under mlockall(MCL_FUTURE) maps a shared segment with
// Mapping::MapShared without populating it: only the pages it touches
// become resident. Regression test for an offloaded process's first
// socket() taking ~27 ms under mlockall (the 33 MB attach arena was faulted
// in at mmap(); packetdrill and latency-minded servers lock their memory).

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "shm/unique_fd.h"

namespace offload {
namespace shm {
namespace {

constexpr size_t kBytes = 32u << 20;  // about the attach arena's size

// Resident pages of [p, p + len).
size_t ResidentPages(const void* p, size_t len) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((len + page - 1) / page);
  if (mincore(const_cast<void*>(p), len, v.data()) != 0) return ~size_t{0};
  size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

TEST(MappingMlockTest, McFutureDoesNotPopulateASharedMappingAtMap) {
  UniqueFd fd(memfd_create("mapping_mlock_test", MFD_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(ftruncate(fd.get(), kBytes), 0);
  if (mlockall(MCL_FUTURE) != 0) {
    GTEST_SKIP() << "mlockall(MCL_FUTURE): " << strerror(errno);
  }
  Mapping m = Mapping::MapShared(fd.get(), kBytes);
  munlockall();
  ASSERT_TRUE(m.valid());
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t resident = ResidentPages(m.get(), kBytes);
  ASSERT_NE(resident, ~size_t{0});
  EXPECT_LT(resident * page, kBytes / 64) << resident << " of " << kBytes / page << " pages";
  // Usable: reads and writes through the file.
  m.as<uint8_t>()[kBytes - 1] = 0x5a;
  uint8_t b = 0;
  ASSERT_EQ(pread(fd.get(), &b, 1, kBytes - 1), 1);
  EXPECT_EQ(b, 0x5a);
}

}  // namespace
}  // namespace shm
}  // namespace offload
