// Flow rule construction (see header).

#include "daemon/verbs/flow_spec.h"

#include <arpa/inet.h>

#include <cstring>

namespace offload::verbs {

std::array<uint8_t, 6> MulticastMac(uint32_t group) {
  return {0x01,
          0x00,
          0x5e,
          static_cast<uint8_t>((group >> 16) & 0x7f),
          static_cast<uint8_t>(group >> 8),
          static_cast<uint8_t>(group)};
}

FlowRule::FlowRule(const nic::FlowKey& key, const std::array<uint8_t, 6>& mac,
                   uint8_t port) {
  memset(&layout_, 0, sizeof(layout_));
  ibv_flow_attr& a = layout_.attr;
  a.type = IBV_FLOW_ATTR_NORMAL;
  a.size = sizeof(Layout);
  a.priority = key.is_listener() ? 1 : 0;  // connections win over listeners
  a.num_of_specs = 3;
  a.port = port;

  ibv_flow_spec_eth& eth = layout_.eth;
  eth.type = IBV_FLOW_SPEC_ETH;
  eth.size = sizeof(eth);
  const std::array<uint8_t, 6> dst =
      nic::IsMulticast(key.local_ip) ? MulticastMac(key.local_ip) : mac;
  memcpy(eth.val.dst_mac, dst.data(), 6);
  memset(eth.mask.dst_mac, 0xff, 6);
  eth.val.ether_type = htons(0x0800);
  eth.mask.ether_type = 0xffff;

  ibv_flow_spec_ipv4& ip = layout_.ipv4;
  ip.type = IBV_FLOW_SPEC_IPV4;
  ip.size = sizeof(ip);
  if (key.local_ip != 0) {
    ip.val.dst_ip = htonl(key.local_ip);
    ip.mask.dst_ip = 0xffffffff;
  }
  if (key.remote_ip != 0) {
    ip.val.src_ip = htonl(key.remote_ip);
    ip.mask.src_ip = 0xffffffff;
  }

  ibv_flow_spec_tcp_udp& l4 = layout_.l4;
  l4.type =
      key.proto == nic::IpProto::kTcp ? IBV_FLOW_SPEC_TCP : IBV_FLOW_SPEC_UDP;
  l4.size = sizeof(l4);
  l4.val.dst_port = htons(key.local_port);
  l4.mask.dst_port = 0xffff;
  if (key.remote_port != 0) {
    l4.val.src_port = htons(key.remote_port);
    l4.mask.src_port = 0xffff;
  }
}

}  // namespace offload::verbs
