// DgramConsumer's read position apart from the shared head (zero-copy
// receive, client/udp_extra.cc): records read past with Skip() stay the
// consumer's until PublishHead() gives their space back, and the producer
// never writes over them meanwhile.

#include <cstring>
#include <new>
#include <vector>

#include "gtest/gtest.h"
#include "shm/dgram_ring.h"

namespace offload {
namespace shm {
namespace {

struct Ring {
  explicit Ring(uint32_t cap) : mem(DgramSegmentBytes(cap) / 8 + 1) {
    hdr = new (mem.data()) DgramHeader();
    hdr->capacity = cap;
    p.Init(hdr);
    c.Init(hdr);
  }
  bool Push(uint8_t fill, size_t len) {
    std::vector<uint8_t> msg(len, fill);
    iovec iov = {msg.data(), len};
    bool kick;
    return p.Push(&iov, 1, len, &kick);
  }
  std::vector<uint64_t> mem;
  DgramHeader* hdr;
  DgramProducer p;
  DgramConsumer c;
};

constexpr size_t kLen = 64 - sizeof(DgramRecord);  // 64-byte records: 4 in 256

TEST(DgramLendTest, SkippedRecordsHoldTheirSpaceUntilPublished) {
  Ring r(256);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(r.Push(static_cast<uint8_t>(i), kLen));
  EXPECT_FALSE(r.Push(9, kLen));  // full
  // Read all four without releasing any: still full for the producer.
  std::vector<const uint8_t*> lent;
  for (int i = 0; i < 4; ++i) {
    size_t len = 0;
    const uint8_t* p = r.c.Front(&len);
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(len, kLen);
    lent.push_back(p);
    r.c.Skip(len);
  }
  EXPECT_TRUE(r.c.Empty());
  EXPECT_EQ(r.c.SharedHead(), 0u);
  EXPECT_FALSE(r.Push(9, kLen));
  // Give back the first two: two records fit, the third does not, and the
  // two still lent are intact.
  r.c.PublishHead(128);
  EXPECT_TRUE(r.Push(4, kLen));
  EXPECT_TRUE(r.Push(5, kLen));
  EXPECT_FALSE(r.Push(6, kLen));
  for (int i = 2; i < 4; ++i) {
    for (size_t j = 0; j < kLen; ++j) ASSERT_EQ(lent[i][j], i) << i << " " << j;
  }
  // The new ones are read from the read position, not the shared head.
  size_t len = 0;
  const uint8_t* p = r.c.Front(&len);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[0], 4);
  EXPECT_EQ(r.c.ReadPos(), 256u);
  r.c.Skip(len);
  r.c.PublishHead(r.c.ReadPos());
  EXPECT_TRUE(r.Push(6, kLen));
  EXPECT_TRUE(r.Push(7, kLen));
}

}  // namespace
}  // namespace shm
}  // namespace offload
