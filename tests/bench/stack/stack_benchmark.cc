// Per-segment cost of the protocol engine: two Stacks wired back to back in
// memory (no link model, no copies besides the frames themselves).
//   BM_Output:    sender PollTx() producing data segments (segments/s)
//   BM_Input:     receiver ProcessRx() of data segments + its ACK output
//   BM_RoundTrip: the whole exchange (both stacks on this core)
// Payloads of 64 and 1448 bytes (timestamps on, as Linux defaults).
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "daemon/stack/stack.h"
#include "daemon/tcp/byte_ring.h"
#include "tests/testing/owned_ring.h"

namespace offload {
namespace {

constexpr uint32_t kRing = 1u << 22;
constexpr size_t kBatch = 64;

class NullProvider : public stack::BufferProvider {
 public:
  bool AllocateRings(uint64_t, tcp::RingMemory* tx, tcp::RingMemory* rx) override {
    rings_.push_back(std::make_unique<testing::OwnedRing>(kRing));
    *tx = rings_.back()->memory();
    rings_.push_back(std::make_unique<testing::OwnedRing>(kRing));
    *rx = rings_.back()->memory();
    return true;
  }
  void ReleaseRings(const tcp::RingMemory&, const tcp::RingMemory&) override {}
  testing::OwnedRing* last_rx() { return rings_.back().get(); }

 private:
  std::vector<std::unique_ptr<testing::OwnedRing>> rings_;
};

struct Frames {
  explicit Frames(size_t n) : storage(n, std::vector<uint8_t>(2048)), tx(n), rx(n) {}
  void Reset() {
    for (size_t i = 0; i < tx.size(); ++i) tx[i] = stack::TxFrame{storage[i].data(), 2048, 0};
  }
  // Turns `n` produced frames into receive descriptors.
  void ToRx(size_t n) {
    for (size_t i = 0; i < n; ++i) rx[i] = stack::RxFrame{tx[i].data, tx[i].len};
  }
  std::vector<std::vector<uint8_t>> storage;
  std::vector<stack::TxFrame> tx;
  std::vector<stack::RxFrame> rx;
};

class Pair {
 public:
  explicit Pair(uint32_t payload) : payload_(payload), ab_(kBatch * 2), ba_(kBatch * 2),
                                    data_(kBatch * payload, 'x') {
    stack::StackConfig a, b;
    a.local_mac = net::MacAddr{{2, 0, 0, 0, 0, 1}};
    b.local_mac = net::MacAddr{{2, 0, 0, 0, 0, 2}};
    a.local_ip = 0xc6120001;
    b.local_ip = 0xc6120002;
    a.isn_key = b.isn_key = tcp::SecretKey{1, 2};
    a_ = std::move(*stack::Stack::Create(a, &prov_a_, now_));
    b_ = std::move(*stack::Stack::Create(b, &prov_b_, now_));
    a_->SeedNeighbor(b.local_ip, b.local_mac, true);
    b_->SeedNeighbor(a.local_ip, a.local_mac, true);
    stack::FlowId l;
    b_->TcpListen(0, 5001, 16, 0, &l);
    tx_ = std::make_unique<testing::OwnedRing>(kRing);
    rx_ = std::make_unique<testing::OwnedRing>(kRing);
    a_->TcpConnect(b.local_ip, 5001, 0, tx_->memory(), rx_->memory(), 0, &flow_);
    for (int i = 0; i < 4; ++i) {
      Shuttle(*a_, *b_, ab_);
      Shuttle(*b_, *a_, ba_);
    }
    b_->TcpAccept(l, 0, &child_);
    brx_ = prov_b_.last_rx();
    a_->TcpSetOption(flow_, tcp::TcpOpt::kNoDelay, 1);
    // Let the congestion window be large enough that it never limits a batch.
    a_->MutableTcbForTest(flow_)->snd_cwnd = 1u << 28;
    a_->MutableTcbForTest(flow_)->snd_ssthresh = 1u << 28;
  }

  // Sender: kBatch application writes of `payload` bytes (TCP_NODELAY), each
  // followed by an engine poll, as a request/response or streaming app with
  // small messages drives it: one segment per write.
  size_t Produce() {
    ab_.Reset();
    size_t n = 0;
    for (size_t i = 0; i < kBatch; ++i) {
      tx_->AppWrite(data_.data(), payload_);
      a_->TcpSend(flow_);
      n += a_->PollTx(ab_.tx.data() + n, ab_.tx.size() - n, now_);
    }
    return n;
  }
  // Receiver: consume `n` segments, read the data, produce ACKs.
  size_t Consume(size_t n) {
    ab_.ToRx(n);
    b_->ProcessRx(ab_.rx.data(), n, now_);
    ba_.Reset();
    size_t acks = b_->PollTx(ba_.tx.data(), ba_.tx.size(), now_);
    return acks;
  }
  void AppRead() {
    static thread_local std::vector<uint8_t> sink(kRing);
    brx_->AppRead(sink.data(), kRing);
    b_->TcpReceiveCredit(child_);
  }
  // Sender: process the receiver's ACKs.
  void Acks(size_t n) {
    ba_.ToRx(n);
    a_->ProcessRx(ba_.rx.data(), n, now_);
  }
  void Tick() { now_ += 1000; }

 private:
  void Shuttle(stack::Stack& from, stack::Stack& to, Frames& f) {
    f.Reset();
    size_t n = from.PollTx(f.tx.data(), f.tx.size(), now_);
    f.ToRx(n);
    to.ProcessRx(f.rx.data(), n, now_);
  }

  uint32_t payload_;
  uint64_t now_ = 1'000'000'000;
  NullProvider prov_a_, prov_b_;
  std::unique_ptr<stack::Stack> a_, b_;
  std::unique_ptr<testing::OwnedRing> tx_, rx_;
  testing::OwnedRing* brx_ = nullptr;
  stack::FlowId flow_ = 0, child_ = 0;
  Frames ab_, ba_;
  std::string data_;
};

void BM_Output(benchmark::State& state) {
  Pair p(static_cast<uint32_t>(state.range(0)));
  size_t segs = 0;
  for (auto _ : state) {
    size_t n = p.Produce();
    segs += n;
    state.PauseTiming();
    size_t acks = p.Consume(n);
    p.AppRead();
    p.Acks(acks);
    p.Tick();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(segs));
  state.SetBytesProcessed(static_cast<int64_t>(segs * state.range(0)));
}

void BM_Input(benchmark::State& state) {
  Pair p(static_cast<uint32_t>(state.range(0)));
  size_t segs = 0;
  for (auto _ : state) {
    state.PauseTiming();
    size_t n = p.Produce();
    state.ResumeTiming();
    size_t acks = p.Consume(n);
    segs += n;
    state.PauseTiming();
    p.AppRead();
    p.Acks(acks);
    p.Tick();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(segs));
  state.SetBytesProcessed(static_cast<int64_t>(segs * state.range(0)));
}

void BM_RoundTrip(benchmark::State& state) {
  Pair p(static_cast<uint32_t>(state.range(0)));
  size_t segs = 0;
  for (auto _ : state) {
    size_t n = p.Produce();
    size_t acks = p.Consume(n);
    p.AppRead();
    p.Acks(acks);
    p.Tick();
    segs += n;
  }
  state.SetItemsProcessed(static_cast<int64_t>(segs));
  state.SetBytesProcessed(static_cast<int64_t>(segs * state.range(0)));
}

BENCHMARK(BM_Output)->Arg(64)->Arg(1448);
BENCHMARK(BM_Input)->Arg(64)->Arg(1448);
BENCHMARK(BM_RoundTrip)->Arg(64)->Arg(1448);

}  // namespace
}  // namespace offload
