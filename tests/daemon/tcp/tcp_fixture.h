// Segment-level TCP test fixture: a real Stack under test on a virtual clock,
// with the test playing the peer. Each test states the rule it exercises:
// state + input segments + clock advance -> expected output segments + state.
#ifndef OFFLOAD_TESTS_DAEMON_TCP_TCP_FIXTURE_H_
#define OFFLOAD_TESTS_DAEMON_TCP_TCP_FIXTURE_H_

#include <errno.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/harness.h"
#include "tests/testing/packet_builder.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {

inline constexpr uint64_t kMsNs = 1'000'000ull;
inline constexpr uint64_t kSecNs = 1'000'000'000ull;

struct PeerOptions {
  bool mss = true;
  uint16_t mss_value = 1460;
  bool wscale = false;
  uint8_t wscale_value = 7;
  bool sack = false;
  bool timestamps = false;
  uint16_t window = 65535;
  uint64_t handshake_rtt_ns = 0;  // PassiveOpen: time between SYN,ACK and ACK
};

class TcpSegmentTest : public ::testing::Test {
 protected:
  explicit TcpSegmentTest(const stack::StackConfig& cfg = DefaultTestConfig()) : h_(cfg) {}

  // Active open to peer port 80, completing the handshake with the given
  // peer options. Leaves the flow ESTABLISHED with nothing pending.
  void ActiveOpen(const PeerOptions& po = PeerOptions());
  // Passive open: listen on 80, peer SYN from port 40000, our SYN,ACK, peer
  // ACK, accept(). Leaves the child ESTABLISHED.
  void PassiveOpen(const PeerOptions& po = PeerOptions());

  // A segment from the peer on the current connection.
  Frame Seg(uint8_t flags, uint32_t seq, uint32_t ack, const std::string& payload = "",
            uint16_t window = 0xffff, bool with_ts = true);
  // Peer data at the peer's next sequence number (advances it).
  Frame PeerData(const std::string& payload, uint8_t extra_flags = 0);
  // Peer pure ACK of everything we sent.
  Frame PeerAck(uint16_t window = 0xffff);

  // Drains output and parses every segment (fails on non-TCP).
  std::vector<TcpView> Out();
  // Expects exactly one segment out and returns it.
  TcpView One();
  // Expects no output.
  void ExpectSilence();
  // Application write of `n` bytes ('a'..) and TcpSend.
  void AppSend(size_t n, bool more = false);
  void AppSend(const std::string& s, bool more = false);
  std::string AppRead();
  // Event bits reported for the flow since the last call.
  uint32_t FlowEvents(int* error = nullptr);
  const tcp::Tcb& tcb() { return *h_.s().TcbForTest(flow_); }
  tcp::TcpState state() { return tcb().state; }
  bool FlowGone() { return h_.s().TcbForTest(flow_) == nullptr; }

  StackUnderTest h_;
  stack::FlowId flow_ = 0;
  stack::FlowId listener_ = 0;
  testing::OwnedRing* tx_ = nullptr;
  testing::OwnedRing* rx_ = nullptr;
  uint16_t our_port_ = 0;
  uint16_t peer_port_ = 80;
  uint32_t our_iss_ = 0;
  uint32_t peer_iss_ = 5000;
  uint32_t snd_ = 0;       // our next sequence number as the peer sees it
  uint32_t rcv_ = 0;       // the peer's next sequence number
  bool peer_ts_ = false;
  uint32_t peer_tsval_ = 100;
  uint32_t our_last_tsval_ = 0;
  PeerOptions po_;
};

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_DAEMON_TCP_TCP_FIXTURE_H_
