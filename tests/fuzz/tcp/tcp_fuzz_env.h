// A small Stack with one established connection and one listener, driven by
// fuzz input. Shared by the TCP fuzz targets.
#ifndef OFFLOAD_TESTS_FUZZ_TCP_TCP_FUZZ_ENV_H_
#define OFFLOAD_TESTS_FUZZ_TCP_TCP_FUZZ_ENV_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "daemon/stack/stack.h"
#include "daemon/tcp/byte_ring.h"
#include "tests/testing/owned_ring.h"

namespace offload::fuzz {

class TcpFuzzEnv : public stack::BufferProvider {
 public:
  TcpFuzzEnv();
  bool AllocateRings(uint64_t, tcp::RingMemory* tx, tcp::RingMemory* rx) override;
  void ReleaseRings(const tcp::RingMemory&, const tcp::RingMemory&) override {}

  // Delivers a TCP segment from the peer on the connection (or, with
  // `to_listener`, from port `sport` to the listener). Fields come from the
  // caller; checksums are correct.
  void Segment(bool to_listener, uint16_t sport, uint32_t seq, uint32_t ack, uint8_t flags,
               uint16_t window, const uint8_t* opts, size_t opt_len, const uint8_t* payload,
               size_t len);
  void Advance(uint64_t ns);
  void Drain();
  // Checks TCB invariants; aborts on violation.
  void CheckInvariants();

  stack::Stack& s() { return *stack_; }
  const tcp::Tcb* conn() { return stack_->TcbForTest(conn_); }
  stack::FlowId conn_id() const { return conn_; }
  testing::OwnedRing& tx() { return tx_; }
  testing::OwnedRing& rx() { return rx_; }
  uint64_t now() const { return now_; }
  uint16_t our_port() const { return our_port_; }

 private:
  uint64_t now_ = 1'000'000'000;
  std::unique_ptr<stack::Stack> stack_;
  testing::OwnedRing tx_{1 << 14};
  testing::OwnedRing rx_{1 << 14};
  std::vector<std::unique_ptr<testing::OwnedRing>> child_rings_;
  stack::FlowId conn_ = 0;
  stack::FlowId listener_ = 0;
  uint16_t our_port_ = 0;
  std::vector<uint8_t> frame_;
  std::vector<uint8_t> out_;
};

}  // namespace offload::fuzz

#endif  // OFFLOAD_TESTS_FUZZ_TCP_TCP_FUZZ_ENV_H_
