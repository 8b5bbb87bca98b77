// Test harnesses around a real Stack:
//   - TestBufferProvider: owning rings for passively opened connections;
//   - StackUnderTest: one Stack on a virtual clock, driven segment by
//     segment by a test acting as the peer (inject frames, drain output).
#ifndef OFFLOAD_TESTS_TESTING_HARNESS_H_
#define OFFLOAD_TESTS_TESTING_HARNESS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "daemon/stack/stack.h"
#include "daemon/tcp/socket_options.h"
#include "daemon/tcp/byte_ring.h"
#include "tests/testing/packet_builder.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {

class TestBufferProvider : public stack::BufferProvider {
 public:
  explicit TestBufferProvider(uint32_t ring_bytes) : ring_bytes_(ring_bytes) {}
  bool AllocateRings(uint64_t listener_cookie, tcp::RingMemory* tx, tcp::RingMemory* rx) override;
  void ReleaseRings(const tcp::RingMemory& tx, const tcp::RingMemory& rx) override;
  // The ring whose memory starts at `base` (from a RingMemory).
  testing::OwnedRing* Find(const uint8_t* base);
  size_t allocated() const { return allocated_; }
  size_t released() const { return released_; }
  void set_refuse(bool refuse) { refuse_ = refuse; }

 private:
  uint32_t ring_bytes_;
  std::map<const uint8_t*, std::unique_ptr<testing::OwnedRing>> rings_;
  size_t allocated_ = 0;
  size_t released_ = 0;
  bool refuse_ = false;
};

// Addresses used by the single-stack tests.
inline const net::MacAddr kUsMac = {{0x02, 0, 0, 0, 0, 0x01}};
inline const net::MacAddr kPeerMac = {{0x02, 0, 0, 0, 0, 0x02}};

stack::StackConfig DefaultTestConfig();

// Stands in for the kernel's neighbour table (StackConfig::neighbours):
// records every next hop the stack asks it to resolve.
class RecordingNeighbors : public stack::NeighborRequester {
 public:
  void RequestResolution(uint32_t ip) override { asked.push_back(ip); }
  std::vector<uint32_t> asked;
};

class StackUnderTest {
 public:
  explicit StackUnderTest(const stack::StackConfig& cfg = DefaultTestConfig(),
                          uint32_t ring_bytes = 1 << 16);

  stack::Stack& s() { return *stack_; }
  TestBufferProvider& provider() { return provider_; }
  uint64_t now() const { return now_; }

  // Advances the clock by `ns` and runs timers.
  void Advance(uint64_t ns);
  // Delivers one frame at the current time.
  void Inject(const Frame& f);
  // Returns every frame the stack wants to send now.
  std::vector<Frame> Drain();
  // Returns pending events.
  std::vector<stack::FlowEvent> Events();

  Endpoint Us(uint16_t port) const { return Endpoint{kUsMac, us_ip_, port}; }
  Endpoint Peer(uint16_t port) const { return Endpoint{kPeerMac, peer_ip_, port}; }
  uint32_t us_ip() const { return us_ip_; }
  uint32_t peer_ip() const { return peer_ip_; }

  // Opens an active connection to the peer with owned rings.
  stack::FlowId Connect(uint16_t peer_port, testing::OwnedRing** tx = nullptr,
                        testing::OwnedRing** rx = nullptr, uint32_t ring_bytes = 1 << 16,
                        const tcp::SocketOptions* options = nullptr);

 private:
  uint64_t now_ = 1'000'000'000'000ull;  // arbitrary non-zero start
  uint32_t us_ip_;
  uint32_t peer_ip_;
  TestBufferProvider provider_;
  std::unique_ptr<stack::Stack> stack_;
  std::vector<std::unique_ptr<testing::OwnedRing>> rings_;
};

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_TESTING_HARNESS_H_
