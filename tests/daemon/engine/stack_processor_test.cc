// The real protocol engine behind the real engine loop, on a fake NIC: an
// ARP request is answered, a UDP datagram is delivered to a bound endpoint,
// and a datagram sent through the stack leaves as a well-formed frame.

#include "daemon/engine/stack_processor.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "daemon/engine/engine.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_nic.h"
#include "tests/daemon/xdp/packet_builder.h"

namespace offload::engine {
namespace {

using offload::testing::BuildFrame;
using offload::testing::FakeQueue;
using offload::testing::FrameSpec;
using offload::testing::Ip;
using offload::testing::ParseFrame;

const net::MacAddr kOurMac = {{0x02, 0, 0, 0, 0, 0x01}};
const net::MacAddr kPeerMac = {{0x02, 0, 0, 0, 0, 0x02}};

template <typename F>
bool WaitFor(F cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class StackProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack::StackConfig sc;
    sc.local_mac = kOurMac;
    sc.local_ip = Ip("198.18.0.1");
    sc.prefix_len = 24;
    auto s = stack::Stack::Create(sc, nullptr,
                                  static_cast<uint64_t>(MonotonicNowNs()));
    ASSERT_TRUE(s.ok()) << s.status();
    auto p = std::make_unique<StackProcessor>(*std::move(s));
    proc_ = p.get();
    auto e = Engine::Create(EngineConfig{}, {&queue_}, std::move(p));
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = *std::move(e);
    ASSERT_TRUE(engine_->Start().ok());
  }

  FakeQueue queue_;
  StackProcessor* proc_ = nullptr;
  std::unique_ptr<Engine> engine_;
};

TEST_F(StackProcessorTest, AnswersArpRequest) {
  // RFC 826 request: who has 198.18.0.1? tell 198.18.0.2.
  uint8_t f[42] = {};
  memset(f, 0xff, 6);
  memcpy(f + 6, kPeerMac.b, 6);
  f[12] = 0x08, f[13] = 0x06;
  const uint8_t arp[8] = {0, 1, 8, 0, 6, 4, 0, 1};
  memcpy(f + 14, arp, 8);
  memcpy(f + 22, kPeerMac.b, 6);
  uint32_t spa = htonl(Ip("198.18.0.2")), tpa = htonl(Ip("198.18.0.1"));
  memcpy(f + 28, &spa, 4);
  memcpy(f + 38, &tpa, 4);
  queue_.Inject(std::string(reinterpret_cast<char*>(f), sizeof(f)));
  ASSERT_TRUE(WaitFor([&] { return !queue_.Sent().empty(); }));
  std::string reply = queue_.Sent()[0];
  ASSERT_GE(reply.size(), 42u);
  const auto* r = reinterpret_cast<const uint8_t*>(reply.data());
  EXPECT_EQ(memcmp(r, kPeerMac.b, 6), 0);  // unicast to the asker
  EXPECT_EQ(r[12], 0x08);
  EXPECT_EQ(r[13], 0x06);
  EXPECT_EQ(r[21], 2);  // opcode reply
  EXPECT_EQ(memcmp(r + 22, kOurMac.b, 6), 0);
}

TEST_F(StackProcessorTest, UdpInAndOut) {
  stack::FlowId ep = stack::kInvalidFlow;
  int rc = -1;
  ASSERT_TRUE(engine_
                  ->RunSync(
                      [&] {
                        proc_->stack().SeedNeighbor(Ip("198.18.0.2"), kPeerMac);
                        rc = proc_->stack().UdpBind(0, 7000, false, 1, &ep);
                      },
                      absl::Seconds(10))
                  .ok());
  ASSERT_EQ(rc, 0);

  FrameSpec in;
  memcpy(in.src_mac.data(), kPeerMac.b, 6);
  memcpy(in.dst_mac.data(), kOurMac.b, 6);
  in.src_ip = Ip("198.18.0.2");
  in.dst_ip = Ip("198.18.0.1");
  in.src_port = 4000;
  in.dst_port = 7000;
  in.payload = "to-stack";
  std::vector<uint8_t> frame = BuildFrame(in);
  queue_.Inject(std::string(frame.begin(), frame.end()));
  char buf[64];
  int64_t got = -1;
  ASSERT_TRUE(WaitFor([&] {
    uint32_t src_ip = 0;
    uint16_t src_port = 0;
    EXPECT_TRUE(engine_
                    ->RunSync(
                        [&] {
                          got = proc_->stack().UdpRecvFrom(ep, buf, sizeof(buf),
                                                           &src_ip, &src_port);
                        },
                        absl::Seconds(10))
                    .ok());
    return got >= 0;
  }));
  EXPECT_EQ(std::string(buf, static_cast<size_t>(got)), "to-stack");

  ASSERT_TRUE(engine_
                  ->RunSync(
                      [&] {
                        rc = proc_->stack().UdpSendTo(ep, Ip("198.18.0.2"),
                                                      4000, "from-stack", 10);
                      },
                      absl::Seconds(10))
                  .ok());
  ASSERT_EQ(rc, 0);
  ASSERT_TRUE(WaitFor([&] { return !queue_.Sent().empty(); }));
  std::string out = queue_.Sent().back();
  auto p = ParseFrame(reinterpret_cast<const uint8_t*>(out.data()), out.size());
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->proto, 17);
  EXPECT_EQ(p->src_port, 7000);
  EXPECT_EQ(p->dst_port, 4000);
  EXPECT_EQ(p->dst_ip, Ip("198.18.0.2"));
  EXPECT_EQ(p->payload, "from-stack");
}

}  // namespace
}  // namespace offload::engine
