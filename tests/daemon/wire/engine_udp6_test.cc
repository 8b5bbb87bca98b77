// EngineUdp for an AF_INET6 socket (Bind6) against a real Stack: TX records
// with an IPv6 address in front (abi.h kDgramAddr6) leave as IPv6 frames,
// plain IPv4 records of a dual-stack socket as IPv4 frames; IPv6 records the
// engine does not send (groups, link-local, ::1, v4-mapped, too short) are
// dropped and counted; received IPv6 datagrams land in the RX ring as
// kDgramAddr6 records (shm::DgramAddr6Payload reads them), IPv4 ones as
// plain records; a full ring drops and counts, and a small datagram still
// fits once one record is consumed.

#include <arpa/inet.h>
#include <sys/eventfd.h>

#include <cstring>
#include <string>
#include <vector>

#include "daemon/net/frame.h"
#include "daemon/wire/app_dgram.h"
#include "daemon/wire/engine_udp.h"
#include "gtest/gtest.h"
#include "shm/dgram_ring.h"
#include "shm/unique_fd.h"
#include "tests/daemon/udp/udp6_frames.h"
#include "tests/testing/harness.h"
#include "tests/testing/packet_builder.h"

namespace offload::wire {
namespace {

using testing::A6;
using testing::BuildUdp;
using testing::Frame;
using testing::Ip;
using testing::kPeerMac;
using testing::kUsMac;

constexpr uint32_t kCapacity = 1u << 17;
constexpr uint16_t kPort = 5000;
constexpr uint64_t kCookie = 77;
const net::Ip6Addr kUs6 = A6("2001:db8::1");
const net::Ip6Addr kPeer6 = A6("2001:db8::2");

stack::StackConfig Config6() {
  stack::StackConfig cfg = testing::DefaultTestConfig();
  cfg.local_ip6 = kUs6;
  return cfg;
}

class EngineUdp6Test : public ::testing::Test {
 protected:
  EngineUdp6Test() : sut_(Config6()) {}
  void SetUp() override {
    efd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    ASSERT_TRUE(efd_.valid());
    absl::StatusOr<std::shared_ptr<AppDgram>> r =
        AppDgram::Create(kCapacity, efd_.get(), 0, htons(kPort), 1472);
    ASSERT_TRUE(r.ok()) << r.status();
    rings_ = *r;
    udp_.set_stack(&sut_.s());
    ASSERT_EQ(udp_.Bind6(kCookie, net::Ip6Addr{}, /*v6only=*/false, kPort, false, rings_), 0);
    app_tx_.Init(rings_->tx_header());
    app_rx_.Init(rings_->rx_header());
    sut_.s().SeedNeighbor6(kPeer6, kPeerMac, true);
    sut_.s().SeedNeighbor(Ip("198.18.0.2"), kPeerMac, true);
  }
  // The client's WireSend6: the address in front of the datagram.
  bool AppSend6(const net::Ip6Addr& dst, uint16_t port, const std::string& data) {
    struct iovec iov[2] = {{const_cast<uint8_t*>(dst.b), 16},
                           {const_cast<char*>(data.data()), data.size()}};
    bool kick;
    return app_tx_.Push(iov, 2, 16 + data.size(), &kick, 0, htons(port), shm::kDgramAddr6);
  }
  size_t DeliverEvents() {
    size_t n = 0;
    for (const stack::FlowEvent& ev : sut_.Events()) n += udp_.OnEvent(ev);
    return n;
  }
  // The front RX record: payload, source (16-byte form), IPv6 flag.
  std::string Front(net::Ip6Addr* src, uint16_t* port, bool* v6) {
    size_t len = 0, rec = 0;
    uint32_t addr = 0;
    const uint8_t* p = app_rx_.Front(&rec, &addr, port);
    if (p == nullptr) return "<empty>";
    len = rec;
    *v6 = shm::DgramAddr6Payload(&p, &len, src->b);
    if (!*v6) *src = net::Ip6Addr::V4Mapped(ntohl(addr));
    *port = ntohs(*port);
    std::string out(reinterpret_cast<const char*>(p), len);
    app_rx_.Pop(rec);
    return out;
  }

  testing::StackUnderTest sut_;
  shm::UniqueFd efd_;
  std::shared_ptr<AppDgram> rings_;
  EngineUdp udp_;
  shm::DgramProducer app_tx_;
  shm::DgramConsumer app_rx_;
};

TEST_F(EngineUdp6Test, Ipv6AndIpv4RecordsLeaveInTheirFamily) {
  ASSERT_TRUE(AppSend6(kPeer6, 9000, "over six"));
  struct iovec iov = {const_cast<char*>("four"), 4};
  bool kick;
  ASSERT_TRUE(app_tx_.Push(&iov, 1, 4, &kick, htonl(Ip("198.18.0.2")), htons(9001)));
  EXPECT_EQ(udp_.PollApplications(), 2u);
  std::vector<Frame> out = sut_.Drain();
  ASSERT_EQ(out.size(), 2u);
  net::ParsedFrame f;
  ASSERT_EQ(net::ParseFrame(out[0].data(), out[0].size(), net::L4Checksum::kVerify, &f),
            net::ParseStatus::kOk);
  EXPECT_TRUE(f.ipv6);
  EXPECT_EQ(f.src_ip6, kUs6);
  EXPECT_EQ(f.dst_ip6, kPeer6);
  EXPECT_EQ(f.src_port, kPort);
  EXPECT_EQ(f.dst_port, 9000);
  EXPECT_EQ(std::string(f.payload, f.payload + f.payload_len), "over six");
  ASSERT_EQ(net::ParseFrame(out[1].data(), out[1].size(), net::L4Checksum::kVerify, &f),
            net::ParseStatus::kOk);
  EXPECT_FALSE(f.ipv6);
  EXPECT_EQ(f.dst_ip, Ip("198.18.0.2"));
  EXPECT_EQ(std::string(f.payload, f.payload + f.payload_len), "four");
  EXPECT_EQ(udp_.counters().tx_datagrams, 2u);
  EXPECT_EQ(udp_.counters().tx_drops, 0u);
}

TEST_F(EngineUdp6Test, RecordsTheEngineDoesNotSendAreDroppedAndCounted) {
  for (const char* dst : {"ff02::1", "fe80::2", "::1", "::", "::ffff:198.18.0.2"}) {
    ASSERT_TRUE(AppSend6(A6(dst), 9000, "x")) << dst;
  }
  ASSERT_TRUE(AppSend6(kPeer6, 0, "port 0"));
  // Flagged but shorter than the address.
  struct iovec iov = {const_cast<char*>("short"), 5};
  bool kick;
  ASSERT_TRUE(app_tx_.Push(&iov, 1, 5, &kick, 0, htons(9000), shm::kDgramAddr6));
  EXPECT_EQ(udp_.PollApplications(), 7u);
  EXPECT_TRUE(sut_.Drain().empty());
  EXPECT_EQ(udp_.counters().tx_drops, 7u);
  EXPECT_EQ(rings_->tx_header()->drops.load(), 7u);
}

TEST_F(EngineUdp6Test, ReceivedDatagramsCarryTheirSourceInTheirFamily) {
  sut_.Inject(testing::Udp6Frame(kPeer6, kUs6, 4321, kPort, "ping6"));
  sut_.Inject(BuildUdp({kPeerMac, Ip("198.18.0.2"), 4322}, {kUsMac, Ip("198.18.0.1"), kPort},
                       {'p', '4'}));
  EXPECT_EQ(DeliverEvents(), 2u);
  net::Ip6Addr src;
  uint16_t port = 0;
  bool v6 = false;
  EXPECT_EQ(Front(&src, &port, &v6), "ping6");
  EXPECT_TRUE(v6);
  EXPECT_EQ(src, kPeer6);
  EXPECT_EQ(port, 4321);
  EXPECT_EQ(Front(&src, &port, &v6), "p4");
  EXPECT_FALSE(v6);
  EXPECT_EQ(src, net::Ip6Addr::V4Mapped(Ip("198.18.0.2")));
  EXPECT_EQ(port, 4322);
  EXPECT_EQ(Front(&src, &port, &v6), "<empty>");
}

TEST_F(EngineUdp6Test, FullRingDropsThenASmallIpv6DatagramFitsAgain) {
  // Fill the RX ring until a datagram is dropped; once one record is
  // consumed a small IPv6 datagram fits again (in place or through the
  // scratch buffer), its address in front.
  const std::string big(1400, 'b');
  size_t n = 0;
  while (n < 200) {
    sut_.Inject(testing::Udp6Frame(kPeer6, kUs6, 1, kPort, big));
    const size_t before = udp_.counters().rx_drops;
    DeliverEvents();
    ++n;
    if (udp_.counters().rx_drops != before) break;
  }
  ASSERT_GT(udp_.counters().rx_drops, 0u) << "the ring never filled";
  // Free exactly one record: room for a small one, not for a full reservation.
  net::Ip6Addr src;
  uint16_t port = 0;
  bool v6 = false;
  ASSERT_EQ(Front(&src, &port, &v6), big);
  sut_.Inject(testing::Udp6Frame(kPeer6, kUs6, 2, kPort, "small"));
  EXPECT_EQ(DeliverEvents(), 1u);
  std::string last;
  for (size_t i = 0; i < n; ++i) {
    const std::string got = Front(&src, &port, &v6);
    if (got == "<empty>") break;
    last = got;
    EXPECT_TRUE(v6);
    EXPECT_EQ(src, kPeer6);
  }
  EXPECT_EQ(last, "small");
}

}  // namespace
}  // namespace offload::wire
