// EngineUdp + AppDgram against a real Stack on a virtual clock (no NIC, no
// root): what an application appends to its TX ring leaves as UDP frames to
// each record's destination; datagrams the stack receives land in the RX
// ring with their source; a full RX ring drops and counts; hostile TX rings
// (bad indices, bad lengths, bad destinations) are contained; the wake-up
// handshake kicks the application's eventfd only when it sleeps.

#include "daemon/wire/engine_udp.h"

#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "daemon/net/frame.h"
#include "shm/dgram_ring.h"
#include "shm/fence.h"
#include "shm/unique_fd.h"
#include "daemon/wire/app_dgram.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"
#include "tests/testing/packet_builder.h"

namespace offload::wire {
namespace {

using offload::testing::BuildUdp;
using offload::testing::Frame;
using offload::testing::Ip;
using offload::testing::kPeerMac;
using offload::testing::kUsMac;
using offload::testing::StackUnderTest;

constexpr uint32_t kCapacity = 1u << 17;  // the smallest ring that holds two 64 KiB records
constexpr uint16_t kPort = 5000;
constexpr uint64_t kCookie = 77;

class EngineUdpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    efd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    ASSERT_TRUE(efd_.valid());
    absl::StatusOr<std::shared_ptr<AppDgram>> r =
        AppDgram::Create(kCapacity, efd_.get(), 0, htons(kPort), 1472);
    ASSERT_TRUE(r.ok()) << r.status();
    rings_ = *r;
    udp_.set_stack(&sut_.s());
    ASSERT_EQ(udp_.Bind(kCookie, 0, kPort, false, rings_), 0);
    app_tx_.Init(rings_->tx_header());
    app_rx_.Init(rings_->rx_header());
    sut_.s().SeedNeighbor(Ip("198.18.0.2"), kPeerMac);
    sut_.s().SeedNeighbor(Ip("198.18.0.3"), kPeerMac);
  }

  // The application's sendto().
  bool AppSend(const char* dst, uint16_t port, const std::vector<uint8_t>& data, bool* kick) {
    struct iovec iov = {const_cast<uint8_t*>(data.data()), data.size()};
    return app_tx_.Push(&iov, 1, data.size(), kick, htonl(Ip(dst)), htons(port));
  }
  // Runs the stack's events through EngineUdp.
  size_t DeliverEvents() {
    size_t n = 0;
    for (const stack::FlowEvent& ev : sut_.Events()) n += udp_.OnEvent(ev);
    return n;
  }
  uint64_t Kicks() {
    uint64_t v = 0;
    return read(efd_.get(), &v, sizeof(v)) == sizeof(v) ? v : 0;
  }

  StackUnderTest sut_;
  shm::UniqueFd efd_;
  std::shared_ptr<AppDgram> rings_;
  EngineUdp udp_;
  shm::DgramProducer app_tx_;
  shm::DgramConsumer app_rx_;
};

TEST_F(EngineUdpTest, TxRecordsLeaveAsFramesToTheirDestinations) {
  bool kick = false;
  ASSERT_TRUE(AppSend("198.18.0.2", 9000, {1, 2, 3}, &kick));
  ASSERT_TRUE(AppSend("198.18.0.3", 9001, std::vector<uint8_t>(1472, 0xab), &kick));
  ASSERT_TRUE(AppSend("198.18.0.2", 9002, {}, &kick));
  EXPECT_FALSE(kick) << "the engine polls: no wake-up needed";
  EXPECT_EQ(udp_.PollApplications(), 3u);
  EXPECT_EQ(udp_.PollApplications(), 0u);
  std::vector<Frame> out = sut_.Drain();
  ASSERT_EQ(out.size(), 3u);
  const struct {
    const char* ip;
    uint16_t port;
    size_t len;
  } want[] = {{"198.18.0.2", 9000, 3}, {"198.18.0.3", 9001, 1472}, {"198.18.0.2", 9002, 0}};
  for (size_t i = 0; i < out.size(); ++i) {
    net::ParsedFrame f;
    ASSERT_EQ(net::ParseFrame(out[i].data(), out[i].size(), net::L4Checksum::kVerify, &f),
              net::ParseStatus::kOk);
    EXPECT_EQ(f.protocol, net::kIpProtoUdp);
    EXPECT_EQ(f.src_ip, Ip("198.18.0.1"));
    EXPECT_EQ(f.dst_ip, Ip(want[i].ip));
    EXPECT_EQ(f.src_port, kPort);
    EXPECT_EQ(f.dst_port, want[i].port);
    EXPECT_EQ(f.payload_len, want[i].len);
  }
  EXPECT_EQ(udp_.counters().tx_datagrams, 3u);
  // The space is handed back: the producer sees an empty ring.
  EXPECT_EQ(app_tx_.Queued(), 0u);
}

TEST_F(EngineUdpTest, ReceivedDatagramsCarryTheirSourceAndWakeASleepingReader) {
  app_rx_.SetSleepFlag();  // the application sleeps in recvfrom()
  sut_.Inject(BuildUdp({kPeerMac, Ip("198.18.0.2"), 4321}, {kUsMac, Ip("198.18.0.1"), kPort},
                       {'p', 'i', 'n', 'g'}));
  sut_.Inject(BuildUdp({kPeerMac, Ip("198.18.0.3"), 4322}, {kUsMac, Ip("198.18.0.1"), kPort},
                       std::vector<uint8_t>(1000, 7)));
  EXPECT_EQ(DeliverEvents(), 2u);
  EXPECT_EQ(Kicks(), 1u) << "one kick for the batch";
  size_t len = 0;
  uint32_t addr = 0;
  uint16_t port = 0;
  const uint8_t* p = app_rx_.Front(&len, &addr, &port);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p), len), "ping");
  EXPECT_EQ(ntohl(addr), Ip("198.18.0.2"));
  EXPECT_EQ(ntohs(port), 4321);
  app_rx_.Pop(len);
  p = app_rx_.Front(&len, &addr, &port);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(len, 1000u);
  EXPECT_EQ(ntohl(addr), Ip("198.18.0.3"));
  EXPECT_EQ(ntohs(port), 4322);
  app_rx_.Pop(len);
  // A reader that polls (no flag) is not kicked.
  sut_.Inject(BuildUdp({kPeerMac, Ip("198.18.0.2"), 4321}, {kUsMac, Ip("198.18.0.1"), kPort},
                       {1}));
  EXPECT_EQ(DeliverEvents(), 1u);
  EXPECT_EQ(Kicks(), 0u);
}

TEST_F(EngineUdpTest, FullRxRingDropsAndCountsLikeAFullReceiveBuffer) {
  const std::vector<uint8_t> data(1400, 1);
  const int kSent = 200;  // ~200 * 1416 bytes: more than the ring holds
  for (int i = 0; i < kSent; i += 20) {
    for (int j = 0; j < 20; ++j) {
      sut_.Inject(BuildUdp({kPeerMac, Ip("198.18.0.2"), 4321},
                           {kUsMac, Ip("198.18.0.1"), kPort}, data));
    }
    DeliverEvents();
  }
  size_t len;
  int received = 0;
  while (app_rx_.Front(&len) != nullptr) {
    EXPECT_EQ(len, data.size());
    app_rx_.Pop(len);
    ++received;
  }
  const uint64_t drops = rings_->rx_header()->drops.load();
  EXPECT_GT(received, 0);
  EXPECT_GT(drops, 0u);
  EXPECT_EQ(received + static_cast<int>(drops), kSent);
  EXPECT_EQ(udp_.counters().rx_drops, drops);
  // Space again: delivery resumes.
  sut_.Inject(BuildUdp({kPeerMac, Ip("198.18.0.2"), 4321}, {kUsMac, Ip("198.18.0.1"), kPort},
                       data));
  EXPECT_EQ(DeliverEvents(), 1u);
}

TEST_F(EngineUdpTest, InvalidDestinationsAreDroppedAndCountedOthersStillSent) {
  bool kick;
  ASSERT_TRUE(AppSend("127.0.0.1", 53, {1}, &kick));
  ASSERT_TRUE(AppSend("240.0.0.1", 53, {1}, &kick));  // class E (multicast is sendable)
  ASSERT_TRUE(AppSend("0.0.0.0", 53, {1}, &kick));
  ASSERT_TRUE(AppSend("198.18.0.2", 0, {1}, &kick));
  ASSERT_TRUE(AppSend("198.18.0.2", 53, {1}, &kick));
  EXPECT_EQ(udp_.PollApplications(), 5u);
  EXPECT_EQ(sut_.Drain().size(), 1u);
  EXPECT_EQ(rings_->tx_header()->drops.load(), 4u);
  EXPECT_EQ(udp_.counters().tx_drops, 4u);
}

TEST_F(EngineUdpTest, MulticastRecordsLeaveToTheGroupMacWithTheirTtl) {
  const std::vector<uint8_t> d = {1, 2, 3};
  struct iovec iov = {const_cast<uint8_t*>(d.data()), d.size()};
  bool kick;
  const uint32_t group = htonl(Ip("239.129.2.3"));
  ASSERT_TRUE(app_tx_.Push(&iov, 1, d.size(), &kick, group, htons(6000)));  // default TTL
  ASSERT_TRUE(app_tx_.Push(&iov, 1, d.size(), &kick, group, htons(6000), shm::kDgramTtlSet | 5));
  // TTL 0 is host-local: never on the wire (the client sends it through the kernel).
  ASSERT_TRUE(app_tx_.Push(&iov, 1, d.size(), &kick, group, htons(6000), shm::kDgramTtlSet | 0));
  EXPECT_EQ(udp_.PollApplications(), 3u);
  std::vector<Frame> out = sut_.Drain();
  ASSERT_EQ(out.size(), 2u);
  const uint8_t want_ttl[] = {1, 5};
  for (size_t i = 0; i < out.size(); ++i) {
    net::ParsedFrame f;
    ASSERT_EQ(net::ParseFrame(out[i].data(), out[i].size(), net::L4Checksum::kVerify, &f),
              net::ParseStatus::kOk);
    // RFC 1112 6.4: 01:00:5e + the low 23 bits of 239.129.2.3.
    const net::MacAddr mac{{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}};
    EXPECT_TRUE(f.dst_mac == mac);
    EXPECT_EQ(f.dst_ip, Ip("239.129.2.3"));
    EXPECT_EQ(f.ttl, want_ttl[i]);
    EXPECT_EQ(f.src_port, kPort);
  }
  EXPECT_EQ(udp_.counters().tx_datagrams, 2u);
  EXPECT_EQ(rings_->tx_header()->drops.load(), 1u);
}

TEST_F(EngineUdpTest, GroupDatagramsReachEveryMemberOnThePortUntilItLeaves) {
  constexpr uint16_t kGroupPort = 6000;
  shm::UniqueFd efd_a(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  shm::UniqueFd efd_b(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  absl::StatusOr<std::shared_ptr<AppDgram>> a =
      AppDgram::Create(kCapacity, efd_a.get(), 0, htons(kGroupPort), 1472);
  absl::StatusOr<std::shared_ptr<AppDgram>> b =
      AppDgram::Create(kCapacity, efd_b.get(), 0, htons(kGroupPort), 1472);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(udp_.Bind(10, 0, kGroupPort, true, *a), 0);
  ASSERT_EQ(udp_.Bind(11, 0, kGroupPort, true, *b), 0);
  const uint32_t group = Ip("239.1.2.3");
  EXPECT_EQ(udp_.JoinGroup(10, group), 0);
  EXPECT_EQ(udp_.JoinGroup(11, group), 0);
  EXPECT_EQ(udp_.JoinGroup(11, group), EADDRINUSE);
  EXPECT_EQ(udp_.JoinGroup(99, group), EBADF);
  shm::DgramConsumer rx_a, rx_b;
  rx_a.Init((*a)->rx_header());
  rx_b.Init((*b)->rx_header());
  const net::MacAddr group_mac = net::MacAddr::ForIpv4Multicast(group);
  auto inject = [&](uint32_t dst, uint8_t v) {
    sut_.Inject(BuildUdp({kPeerMac, Ip("198.18.0.2"), 4000},
                         {net::IsIpv4Multicast(dst) ? group_mac : kUsMac, dst, kGroupPort}, {v}));
    return DeliverEvents();
  };
  EXPECT_EQ(inject(group, 1), 2u) << "one copy per member";
  EXPECT_EQ(inject(Ip("239.9.9.9"), 2), 0u) << "a group nobody joined";
  size_t len;
  uint32_t src;
  uint16_t sport;
  const uint8_t* p = rx_a.Front(&len, &src, &sport);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(ntohl(src), Ip("198.18.0.2"));
  rx_a.Pop(len);
  p = rx_b.Front(&len);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[0], 1);
  rx_b.Pop(len);
  EXPECT_EQ(udp_.LeaveGroup(10, group), 0);
  EXPECT_EQ(udp_.LeaveGroup(10, group), EADDRNOTAVAIL);
  EXPECT_EQ(inject(group, 3), 1u) << "only the member that stayed";
  EXPECT_TRUE(rx_a.Empty());
  p = rx_b.Front(&len);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[0], 3);
}

TEST_F(EngineUdpTest, CorruptTxIndexStopsReadingThatRingOnly) {
  // A second, well-behaved socket on the same engine.
  shm::UniqueFd efd2(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  absl::StatusOr<std::shared_ptr<AppDgram>> other =
      AppDgram::Create(kCapacity, efd2.get(), 0, htons(kPort + 1), 1472);
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(udp_.Bind(kCookie + 1, 0, kPort + 1, false, *other), 0);
  shm::DgramProducer good;
  good.Init((*other)->tx_header());

  rings_->tx_header()->idx.tail.store(uint64_t{1} << 40);  // far beyond the ring
  const std::vector<uint8_t> d = {5};
  struct iovec iov = {const_cast<uint8_t*>(d.data()), d.size()};
  bool kick;
  ASSERT_TRUE(good.Push(&iov, 1, 1, &kick, htonl(Ip("198.18.0.2")), htons(7)));
  EXPECT_EQ(udp_.PollApplications(), 1u);
  EXPECT_EQ(udp_.counters().corrupt_rings, 1u);
  EXPECT_EQ(sut_.Drain().size(), 1u);
  EXPECT_EQ(udp_.PollApplications(), 0u) << "the corrupt ring is not read again";
}

TEST_F(EngineUdpTest, RecordLongerThanTheRingIsCorruptNotAnOverread) {
  // A record header claiming more bytes than were published.
  auto* data = reinterpret_cast<uint8_t*>(rings_->tx_header()) + sizeof(shm::DgramHeader);
  shm::DgramRecord r = {};
  r.len = 60000;
  r.addr = htonl(Ip("198.18.0.2"));
  r.port = htons(7);
  std::memcpy(data, &r, sizeof(r));
  rings_->tx_header()->idx.tail.store(64);  // 64 bytes published, 60016 claimed
  EXPECT_EQ(udp_.PollApplications(), 0u);
  EXPECT_EQ(udp_.counters().corrupt_rings, 1u);
  EXPECT_TRUE(sut_.Drain().empty());
}

TEST_F(EngineUdpTest, SleepHandshakeNeverLosesATxRecord) {
  udp_.SetSleepFlags();
  shm::HeavyFence();
  EXPECT_FALSE(udp_.RecheckAfterFence()) << "nothing queued: the engine may sleep";
  bool kick = false;
  ASSERT_TRUE(AppSend("198.18.0.2", 9000, {1}, &kick));
  EXPECT_TRUE(kick) << "the engine sleeps: the application rings its doorbell";
  EXPECT_TRUE(udp_.RecheckAfterFence());
  udp_.CancelSleep();
  EXPECT_EQ(udp_.PollApplications(), 1u);
  ASSERT_TRUE(AppSend("198.18.0.2", 9000, {2}, &kick));
  EXPECT_FALSE(kick) << "flag cleared: a polling engine is not kicked";
}

TEST_F(EngineUdpTest, CloseReleasesThePortAndForgetsTheRings) {
  udp_.Close(kCookie);
  EXPECT_EQ(udp_.size(), 0u);
  bool kick;
  ASSERT_TRUE(AppSend("198.18.0.2", 9000, {1}, &kick));
  EXPECT_EQ(udp_.PollApplications(), 0u);
  EXPECT_EQ(udp_.Bind(kCookie + 2, 0, kPort, false, rings_), 0) << "the port is free again";
}

}  // namespace
}  // namespace offload::wire
