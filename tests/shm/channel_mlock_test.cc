// A process under mlockall(MCL_FUTURE) maps a channel extent without
// populating it: only the pages a slot touches become resident. Regression
// test for packetdrill's first connect() leaving its SYN ~27 ms late (the
// whole 32 MiB extent was faulted in at mmap()).

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "shm/channel_map.h"
#include "shm/pipe.h"

namespace offload {
namespace shm {
namespace {

constexpr uint32_t kCap = 256 * 1024;  // offloadd's default ring capacity

// Resident pages of [p, p + len).
size_t ResidentPages(const uint8_t* p, size_t len) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((len + page - 1) / page);
  if (mincore(const_cast<uint8_t*>(p), len, v.data()) != 0) return ~size_t{0};
  size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

TEST(ChannelMlockTest, McFutureDoesNotPopulateAnExtentAtMap) {
  std::unique_ptr<ChannelMap> daemon = ChannelMap::Create(9, ChannelKind::kEngine, kCap, 0, 1);
  ASSERT_NE(daemon, nullptr);
  UniqueFd fd(fcntl(daemon->memfd(), F_DUPFD_CLOEXEC, 0));
  ASSERT_TRUE(fd.valid());
  if (mlockall(MCL_FUTURE) != 0) {
    GTEST_SKIP() << "mlockall(MCL_FUTURE): " << strerror(errno);
  }
  std::unique_ptr<ChannelMap> client = ChannelMap::Open(std::move(fd), false);
  ASSERT_NE(client, nullptr);
  PipeRecord* r = client->Record(0);  // maps extent 0 under MCL_FUTURE
  munlockall();
  ASSERT_NE(r, nullptr);
  const uint8_t* extent = reinterpret_cast<const uint8_t*>(r);  // slot 0 starts it
  const size_t bytes = ExtentBytes(kCap);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t resident = ResidentPages(extent, bytes);
  ASSERT_NE(resident, ~size_t{0});
  // Nothing was touched yet; allow a few pages, never the extent.
  EXPECT_LT(resident * page, bytes / 64) << resident << " of " << bytes / page << " pages";

  // The mapping is usable: a slot's ring data reads and writes.
  uint8_t* data = client->RingData(0, 1);
  ASSERT_NE(data, nullptr);
  data[0] = 0x5a;
  EXPECT_EQ(daemon->RingData(0, 1)[0], 0x5a);
}

}  // namespace
}  // namespace shm
}  // namespace offload
