// Differential fuzz target for the XDP steering program: arbitrary bytes are
// run through the real, loaded program with BPF_PROG_TEST_RUN, and the
// statistic it bumps (where the packet went and why) must equal what an
// independent C++ reading of the rules in steer_kern.c predicts. Any
// disagreement aborts. Needs root to load BPF; without it every input is a
// no-op (the replay test is tagged "root").

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "daemon/xdp/steer_program.h"

namespace {

using offload::nic::FlowKey;
using offload::nic::IpProto;

constexpr uint32_t kA = 0xc6120001;  // 198.18.0.1
constexpr uint32_t kB = 0xc6120002;  // 198.18.0.2
// 2001:db8::1 and 2001:db8::2.
constexpr offload::nic::Ip6Bytes kA6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
constexpr offload::nic::Ip6Bytes kB6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

offload::xdp::SteerProgram* Program() {
  static offload::xdp::SteerProgram* program = [] {
    if (geteuid() != 0)
      return static_cast<offload::xdp::SteerProgram*>(nullptr);
    auto p = offload::xdp::SteerProgram::LoadForTest(64);
    if (!p.ok()) std::abort();
    // The steered set the reference model below knows about.
    if (!(*p)->SetFlow(FlowKey::Listener(IpProto::kUdp, 0, 7000), 0).ok() ||
        !(*p)->SetFlow(FlowKey::Listener(IpProto::kTcp, kA, 80), 0).ok() ||
        !(*p)->SetFlow(FlowKey::Connection(IpProto::kUdp, kA, 5000, kB, 6000),
                       0)
             .ok() ||
        !(*p)->SetFlow(FlowKey::Listener6(IpProto::kTcp, offload::nic::Ip6Bytes{}, 443), 0)
             .ok() ||
        !(*p)->SetFlow(FlowKey::Connection6(IpProto::kUdp, kA6, 5000, kB6, 6000), 0).ok()) {
      std::abort();
    }
    return p->release();
  }();
  return program;
}

uint16_t Get16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t Get32(const uint8_t* p) {
  return uint32_t{Get16(p)} << 16 | Get16(p + 2);
}

bool Steered(uint8_t proto, uint32_t dst, uint16_t dport, uint32_t src,
             uint16_t sport) {
  if (proto == 17 && dport == 7000) return true;
  if (proto == 6 && dst == kA && dport == 80) return true;
  return proto == 17 && dst == kA && dport == 5000 && src == kB &&
         sport == 6000;
}

bool Steered6(uint8_t proto, const uint8_t* dst, uint16_t dport, const uint8_t* src,
              uint16_t sport) {
  if (proto == 6 && dport == 443) return true;
  return proto == 17 && memcmp(dst, kA6.data(), 16) == 0 && dport == 5000 &&
         memcmp(src, kB6.data(), 16) == 0 && sport == 6000;
}

// The same for an IPv6 packet (RFC 8200: extension headers, fragments and
// ICMPv6 go to the kernel).
int Expected6(const uint8_t* d, size_t n) {
  if (n < 14 + 40) return OFFLOAD_STAT_PASS_MALFORMED;
  const uint8_t* ip = d + 14;
  if ((ip[0] >> 4) != 6) return OFFLOAD_STAT_PASS_MALFORMED;
  const uint8_t next = ip[6];
  if (next == 44) return OFFLOAD_STAT_PASS_FRAGMENT;
  for (uint8_t ext : {0, 43, 50, 51, 59, 60, 135, 139, 140, 253, 254}) {
    if (next == ext) return OFFLOAD_STAT_PASS_IPV6_EXT;
  }
  if (next != 6 && next != 17) return OFFLOAD_STAT_PASS_NOT_L4;
  if (ip[24] == 0xfe && (ip[25] & 0xc0) == 0x80) return OFFLOAD_STAT_PASS_LINK_LOCAL;
  if (n < 14 + 40 + 4) return OFFLOAD_STAT_PASS_MALFORMED;
  const uint8_t* l4 = ip + 40;
  return Steered6(next, ip + 24, Get16(l4 + 2), ip + 8, Get16(l4)) ? OFFLOAD_STAT_NO_SOCKET
                                                                    : OFFLOAD_STAT_PASS_NO_FLOW;
}

// What the program must do with `d` (RFC 791 header rules, see
// steer_kern.c): the offload_xdp_stat it counts.
int Expected(const uint8_t* d, size_t n) {
  if (n < 14) return OFFLOAD_STAT_PASS_MALFORMED;
  if (Get16(d + 12) == 0x86dd) return Expected6(d, n);
  if (Get16(d + 12) != 0x0800) return OFFLOAD_STAT_PASS_NOT_IP;
  if (n < 34) return OFFLOAD_STAT_PASS_MALFORMED;
  const uint8_t* ip = d + 14;
  const size_t ihl = (ip[0] & 0xf) * 4u;
  if ((ip[0] >> 4) != 4 || ihl < 20) return OFFLOAD_STAT_PASS_MALFORMED;
  if (ip[9] != 6 && ip[9] != 17) return OFFLOAD_STAT_PASS_NOT_L4;
  if (Get16(ip + 6) & 0x3fff) return OFFLOAD_STAT_PASS_FRAGMENT;
  if (14 + ihl + 4 > n) return OFFLOAD_STAT_PASS_MALFORMED;
  const uint8_t* l4 = ip + ihl;
  return Steered(ip[9], Get32(ip + 16), Get16(l4 + 2), Get32(ip + 12),
                 Get16(l4))
             ? OFFLOAD_STAT_NO_SOCKET  // steered; no socket in the test
             : OFFLOAD_STAT_PASS_NO_FLOW;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  offload::xdp::SteerProgram* p = Program();
  // BPF_PROG_TEST_RUN takes an Ethernet header up to about a page.
  if (p == nullptr || size < 14 || size > 3000) return 0;
  auto before = p->ReadStats();
  std::vector<uint8_t> in(data, data + size);
  DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(),
                      .data_size_in = static_cast<__u32>(in.size()),
                      .repeat = 1);
  if (bpf_prog_test_run_opts(p->prog_fd(), &opts) != 0) std::abort();
  auto after = p->ReadStats();
  if (!before.ok() || !after.ok()) std::abort();
  if (opts.retval != XDP_PASS) std::abort();  // no socket bound: always pass
  const int want = Expected(data, size);
  for (int i = 0; i < OFFLOAD_STAT_COUNT; ++i) {
    if (i == OFFLOAD_STAT_QUEUE_MISMATCH) continue;
    const uint64_t moved = (*after)[i] - (*before)[i];
    if (moved != (i == want ? 1u : 0u)) std::abort();
  }
  return 0;
}

// Seeds live in corpus/ (frames contain NUL bytes).
extern const char* const kFuzzSeeds[] = {""};
extern const size_t kNumFuzzSeeds = 0;
