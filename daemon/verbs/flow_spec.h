// Builds the ibv_create_flow() rule for a steered flow: an ibv_flow_attr
// followed by Ethernet, IPv4 and TCP/UDP specs in one contiguous buffer, as
// the verbs API requires. Fields are in network byte order; a wildcard is a
// zero mask. A rule matches only the flow (never a catch-all): traffic not
// matched stays with the kernel.

#ifndef OFFLOAD_DAEMON_VERBS_FLOW_SPEC_H_
#define OFFLOAD_DAEMON_VERBS_FLOW_SPEC_H_

#include <infiniband/verbs.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "daemon/nic/flow.h"

namespace offload::verbs {

class FlowRule {
 public:
  // `mac` is the interface's unicast MAC; a multicast group flow matches the
  // group's IPv4-mapped MAC (RFC 1112 6.4) instead.
  // REQUIRES: nic::ValidateFlowKey(key) is empty.
  FlowRule(const nic::FlowKey& key, const std::array<uint8_t, 6>& mac,
           uint8_t port);

  ibv_flow_attr* mutable_attr() { return &layout_.attr; }
  const ibv_flow_attr& attr() const { return layout_.attr; }
  const ibv_flow_spec_eth& eth() const { return layout_.eth; }
  const ibv_flow_spec_ipv4& ipv4() const { return layout_.ipv4; }
  const ibv_flow_spec_tcp_udp& l4() const { return layout_.l4; }

 private:
  // Specs follow the attr back to back: the provider walks them by their
  // `size` fields, so there must be no padding between members (all four
  // are 4-byte aligned with sizes that are multiples of 4; checked below).
  struct Layout {
    ibv_flow_attr attr;
    ibv_flow_spec_eth eth;
    ibv_flow_spec_ipv4 ipv4;
    ibv_flow_spec_tcp_udp l4;
  };
  static_assert(offsetof(Layout, eth) == sizeof(ibv_flow_attr));
  static_assert(offsetof(Layout, ipv4) ==
                offsetof(Layout, eth) + sizeof(ibv_flow_spec_eth));
  static_assert(offsetof(Layout, l4) ==
                offsetof(Layout, ipv4) + sizeof(ibv_flow_spec_ipv4));
  static_assert(sizeof(Layout) ==
                offsetof(Layout, l4) + sizeof(ibv_flow_spec_tcp_udp));
  Layout layout_;
};

// RFC 1112 6.4: 01:00:5e + the low 23 bits of the group (host order).
std::array<uint8_t, 6> MulticastMac(uint32_t group);

}  // namespace offload::verbs

#endif  // OFFLOAD_DAEMON_VERBS_FLOW_SPEC_H_
