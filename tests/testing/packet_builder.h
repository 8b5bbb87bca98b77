// Test packet builder and expected-packet checker (katran-style): build
// Ethernet/IPv4/TCP|UDP|ARP frames from a few fields, and check frames the
// stack produced against expectations with readable gtest failures.
#ifndef OFFLOAD_TESTS_TESTING_PACKET_BUILDER_H_
#define OFFLOAD_TESTS_TESTING_PACKET_BUILDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/net/frame.h"
#include "daemon/net/headers.h"
#include "daemon/tcp/options.h"
#include "gtest/gtest.h"

namespace offload::testing {

using Frame = std::vector<uint8_t>;

net::MacAddr Mac(uint8_t last);
// "a.b.c.d" -> host-order address.
uint32_t Ip(const char* dotted);

struct Endpoint {
  net::MacAddr mac;
  uint32_t ip = 0;
  uint16_t port = 0;
};

struct TcpSpec {
  Endpoint src;
  Endpoint dst;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = net::kTcpAck;
  uint16_t window = 65535;
  tcp::OptionsToWrite options;
  std::vector<uint8_t> raw_options;  // used instead of `options` if non-empty
  std::vector<uint8_t> payload;
  bool corrupt_checksum = false;
  uint8_t ttl = 64;
};

Frame BuildTcp(const TcpSpec& s);
Frame BuildUdp(const Endpoint& src, const Endpoint& dst, const std::vector<uint8_t>& payload,
               bool zero_checksum = false);
Frame BuildArp(uint16_t oper, const net::MacAddr& eth_dst, const net::MacAddr& sha,
               uint32_t spa, const net::MacAddr& tha, uint32_t tpa);

// A parsed TCP frame with its options, for checks.
struct TcpView {
  net::ParsedFrame f;
  tcp::TcpOptions opts;
  std::vector<uint8_t> raw_options;
  std::vector<uint8_t> payload;
};
// Parses `frame` (verifying all checksums). Fails the assertion if it is not
// a valid TCP frame.
::testing::AssertionResult ParseTcp(const Frame& frame, TcpView* out);

struct TcpExpect {
  std::optional<uint8_t> flags;  // exact flag byte
  std::optional<uint32_t> seq;
  std::optional<uint32_t> ack;
  std::optional<uint16_t> window;
  std::optional<uint32_t> payload_len;
  std::optional<bool> has_timestamp;
  std::optional<uint32_t> tsecr;
  std::optional<uint8_t> num_sack;
  std::optional<uint16_t> src_port;
  std::optional<uint16_t> dst_port;
};
::testing::AssertionResult MatchTcp(const Frame& frame, const TcpExpect& e);

std::string FlagsToString(uint8_t flags);

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_TESTING_PACKET_BUILDER_H_
