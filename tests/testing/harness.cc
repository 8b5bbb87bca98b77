#include "tests/testing/harness.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {

bool TestBufferProvider::AllocateRings(uint64_t, tcp::RingMemory* tx, tcp::RingMemory* rx) {
  if (refuse_) return false;
  auto t = std::make_unique<testing::OwnedRing>(ring_bytes_);
  auto r = std::make_unique<testing::OwnedRing>(ring_bytes_);
  *tx = t->memory();
  *rx = r->memory();
  rings_[tx->base] = std::move(t);
  rings_[rx->base] = std::move(r);
  ++allocated_;
  return true;
}

void TestBufferProvider::ReleaseRings(const tcp::RingMemory&, const tcp::RingMemory&) {
  ++released_;  // memory kept until the provider dies (tests may inspect it)
}

testing::OwnedRing* TestBufferProvider::Find(const uint8_t* base) {
  auto it = rings_.find(base);
  return it == rings_.end() ? nullptr : it->second.get();
}

stack::StackConfig DefaultTestConfig() {
  stack::StackConfig cfg;
  cfg.local_mac = kUsMac;
  cfg.local_ip = Ip("198.18.0.1");
  cfg.prefix_len = 24;
  cfg.max_concurrency = 64;
  cfg.max_udp_endpoints = 16;
  cfg.max_num_buffers = 256;
  cfg.isn_key = tcp::SecretKey{0x1234, 0x5678};
  return cfg;
}

StackUnderTest::StackUnderTest(const stack::StackConfig& cfg, uint32_t ring_bytes)
    : us_ip_(cfg.local_ip), peer_ip_(Ip("198.18.0.2")), provider_(ring_bytes) {
  auto s = stack::Stack::Create(cfg, &provider_, now_);
  EXPECT_TRUE(s.ok()) << s.status();
  stack_ = std::move(*s);
  stack_->SeedNeighbor(peer_ip_, kPeerMac, /*permanent=*/true);
}

void StackUnderTest::Advance(uint64_t ns) {
  now_ += ns;
  stack_->OnTimer(now_);
}

void StackUnderTest::Inject(const Frame& f) {
  stack::RxFrame rx{f.data(), static_cast<uint32_t>(f.size())};
  stack_->ProcessRx(&rx, 1, now_);
}

std::vector<Frame> StackUnderTest::Drain() {
  std::vector<Frame> out;
  while (true) {
    std::vector<Frame> bufs(16, Frame(2048));
    stack::TxFrame tx[16];
    for (int i = 0; i < 16; ++i) tx[i] = stack::TxFrame{bufs[i].data(), 2048, 0};
    size_t n = stack_->PollTx(tx, 16, now_);
    for (size_t i = 0; i < n; ++i) {
      bufs[i].resize(tx[i].len);
      out.push_back(std::move(bufs[i]));
    }
    if (n < 16) break;
  }
  return out;
}

std::vector<stack::FlowEvent> StackUnderTest::Events() {
  std::vector<stack::FlowEvent> out(256);
  out.resize(stack_->PollEvents(out.data(), out.size()));
  return out;
}

stack::FlowId StackUnderTest::Connect(uint16_t peer_port, testing::OwnedRing** tx,
                                      testing::OwnedRing** rx, uint32_t ring_bytes,
                                      const tcp::SocketOptions* options) {
  rings_.push_back(std::make_unique<testing::OwnedRing>(ring_bytes));
  testing::OwnedRing* t = rings_.back().get();
  rings_.push_back(std::make_unique<testing::OwnedRing>(ring_bytes));
  testing::OwnedRing* r = rings_.back().get();
  stack::FlowId id = stack::kInvalidFlow;
  int err = stack_->TcpConnect(peer_ip_, peer_port, 0, t->memory(), r->memory(), 7, &id,
                               nullptr, options);
  EXPECT_EQ(err, 0);
  if (tx) *tx = t;
  if (rx) *rx = r;
  return id;
}

}  // namespace offload::testing
