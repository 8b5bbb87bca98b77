// Two Stacks wired back to back over an in-memory link with fault injection
// (loss, reordering, duplication, delay, corruption, bottleneck rate with a
// tail-drop queue), on a virtual clock, with a deterministic seed.
#ifndef OFFLOAD_TESTS_TESTING_LOOPBACK_H_
#define OFFLOAD_TESTS_TESTING_LOOPBACK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "daemon/stack/stack.h"
#include "tests/testing/harness.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {

struct LinkConfig {
  double loss = 0;        // probability a frame is dropped
  double duplicate = 0;   // probability a frame is delivered twice
  double reorder = 0;     // probability a frame gets extra delay
  double corrupt = 0;     // probability one byte is flipped
  uint64_t delay_ns = 20'000;          // one-way propagation
  uint64_t reorder_extra_ns = 100'000; // extra delay of reordered frames
  uint64_t rate_bytes_per_sec = 0;     // 0: unlimited
  uint64_t queue_limit_bytes = 256 * 1024;
  uint64_t seed = 1;
};

struct LinkStats {
  uint64_t sent = 0, delivered = 0, lost = 0, duplicated = 0, reordered = 0, corrupted = 0,
           queue_drops = 0;
};

// One direction of the link.
class LinkDirection {
 public:
  LinkDirection(const LinkConfig& cfg, uint64_t seed) : cfg_(cfg), rng_(seed) {}
  void Send(const uint8_t* data, uint32_t len, uint64_t now);
  // Moves frames due at or before `now` into `out`.
  void TakeDue(uint64_t now, std::vector<std::vector<uint8_t>>* out);
  uint64_t NextDue() const;
  bool empty() const { return q_.empty(); }
  LinkStats& stats() { return stats_; }
  void set_config(const LinkConfig& cfg) { cfg_ = cfg; }

 private:
  LinkConfig cfg_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> u_{0.0, 1.0};
  std::multimap<uint64_t, std::vector<uint8_t>> q_;
  uint64_t busy_until_ = 0;
  LinkStats stats_;
};

class LoopbackPair {
 public:
  static constexpr uint64_t kNever = ~0ull;

  LoopbackPair(const LinkConfig& link, stack::StackConfig a_cfg, stack::StackConfig b_cfg,
               uint32_t ring_bytes = 1 << 20);
  static stack::StackConfig ConfigFor(int which);  // 1 -> A, 2 -> B

  stack::Stack& a() { return *a_; }
  stack::Stack& b() { return *b_; }
  TestBufferProvider& provider_a() { return prov_a_; }
  TestBufferProvider& provider_b() { return prov_b_; }
  uint64_t now() const { return now_; }
  LinkDirection& a_to_b() { return ab_; }
  LinkDirection& b_to_a() { return ba_; }

  // Called with each event batch after every step.
  std::function<void(stack::Stack&, const stack::FlowEvent&)> on_event;
  // Called once per simulation step (application pumping).
  std::function<void()> on_step;

  // Runs the simulation until `done()` or `max_ns` of virtual time passes.
  // Returns done().
  bool RunUntil(const std::function<bool()>& done, uint64_t max_ns);

 private:
  void Exchange(stack::Stack& from, LinkDirection& dir);
  void Deliver(stack::Stack& to, LinkDirection& dir);
  void DrainEvents(stack::Stack& s);

  uint64_t now_ = 1'000'000'000ull;
  TestBufferProvider prov_a_;
  TestBufferProvider prov_b_;
  std::unique_ptr<stack::Stack> a_;
  std::unique_ptr<stack::Stack> b_;
  LinkDirection ab_;
  LinkDirection ba_;
  std::vector<std::vector<uint8_t>> tx_bufs_;
  std::vector<std::vector<uint8_t>> due_;
};

// The byte at stream offset `off` of the verification pattern of stream `id`.
inline uint8_t PatternByte(uint64_t id, uint64_t off) {
  uint64_t x = (off + id * 0x51ed27ull) * 0x9E3779B97F4A7C15ull;
  return static_cast<uint8_t>(x >> 56);
}

// One unidirectional byte stream over a TCP connection: the sender fills its
// TX ring with the pattern, the receiver drains and verifies every byte.
class StreamTransfer {
 public:
  StreamTransfer(uint64_t id, uint64_t total_bytes) : id_(id), total_(total_bytes) {}
  // Writes as much as fits into `tx`; returns whether anything was written.
  bool Produce(testing::OwnedRing* tx);
  // Reads everything available from `rx`, verifying it; returns bytes read.
  uint64_t Consume(testing::OwnedRing* rx);
  bool all_sent() const { return sent_ == total_; }
  bool complete() const { return received_ == total_; }
  uint64_t sent() const { return sent_; }
  uint64_t received() const { return received_; }
  uint64_t mismatches() const { return mismatches_; }

 private:
  uint64_t id_;
  uint64_t total_;
  uint64_t sent_ = 0;
  uint64_t received_ = 0;
  uint64_t mismatches_ = 0;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(64 * 1024);
};

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_TESTING_LOOPBACK_H_
