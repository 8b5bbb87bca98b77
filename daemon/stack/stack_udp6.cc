// Stack: UDP over IPv6 (RFC 768 over RFC 8200): AF_INET6 endpoints (bind on
// ::, the interface's address or a v4-mapped one; dual-stack delivery in
// udp::UdpTable), sendto an IPv6 destination with the IPv6 pseudo-header
// checksum (a computed 0 leaves as 0xffff, RFC 8200 8.1) and receive. A
// received IPv6 datagram with a zero checksum is dropped (RFC 8200 8.1;
// the parser rejects it too when it verifies checksums). IPv6 multicast is
// the kernel's: the XDP program steers no group, a group datagram that
// reaches the engine anyway is dropped and counted.
#include <errno.h>

#include <cstring>

#include "daemon/stack/stack.h"

namespace offload::stack {

int Stack::UdpBind6(const net::Ip6Addr& local_ip, uint16_t port, bool v6only, bool reuse,
                    uint64_t cookie, FlowId* out, uint16_t* bound_port) {
  if (local_ip.IsV4Mapped()) {
    // RFC 4291 2.5.5.2: the IPv4 address; a v6-only socket cannot have it.
    if (v6only) return EADDRNOTAVAIL;
    if (local_ip.V4() != 0 && !IsLocalAddress(local_ip.V4())) return EADDRNOTAVAIL;
  } else if (!local_ip.IsUnspecified() && !IsLocalAddress6(local_ip)) {
    return EADDRNOTAVAIL;
  }
  if (port == 0) {
    port = PickEphemeralPort(TupleKey{}, true);
    if (port == 0) return EADDRINUSE;
  }
  uint32_t idx;
  int err = udp_.Bind6(local_ip, port, v6only, reuse, cookie, &idx);
  if (err != 0) return err;
  *out = (uint64_t{udp_.Get(idx)->generation} << 32) | idx;
  if (bound_port != nullptr) *bound_port = port;
  return 0;
}

int Stack::UdpSendTo6(FlowId id, const net::Ip6Addr& dst_ip, uint16_t dst_port,
                      const void* data, uint32_t len) {
  uint32_t idx;
  udp::UdpEndpoint* ep = GetUdp(id, &idx);
  if (ep == nullptr) return EBADF;
  if (!ep->ipv6) return EAFNOSUPPORT;
  if (dst_ip.IsV4Mapped()) return UdpSendTo(id, dst_ip.V4(), dst_port, data, len);
  if (!ep->takes_v6) return ENETUNREACH;  // bound to a v4-mapped address
  if (dst_ip.IsUnspecified() || dst_port == 0) return EINVAL;
  if (dst_ip.IsMulticast() || dst_ip.IsLinkLocal()) return ENETUNREACH;
  const net::Ip6Addr src =
      ep->local_ip6.IsUnspecified() ? config_.local_ip6 : ep->local_ip6;
  if (src.IsUnspecified()) return ENETUNREACH;
  // No fragmentation (the kernel fragments what the engine cannot send).
  if (len > config_.mtu - net::kIpv6HeaderLen - net::kUdpHeaderLen) return EMSGSIZE;
  uint32_t f = pool_.Alloc();
  if (f == FramePool::kNone) {
    counters_.tx_no_buffer++;
    return ENOBUFS;
  }
  uint8_t* p = pool_.data(f);
  net::WriteEthHeader(p, net::MacAddr{}, config_.local_mac, net::kEthTypeIpv6);
  const uint16_t l4_len = static_cast<uint16_t>(net::kUdpHeaderLen + len);
  net::Ipv6Fields ip;
  ip.src = src;
  ip.dst = dst_ip;
  ip.next_header = net::kIpProtoUdp;
  ip.hop_limit = 64;
  net::WriteIpv6Header(p + net::kEthHeaderLen, ip, l4_len);
  uint8_t* l4 = p + net::kEthHeaderLen + net::kIpv6HeaderLen;
  auto* uh = reinterpret_cast<net::UdpHeader*>(l4);
  net::Store16(uh->src_port, ep->local_port);
  net::Store16(uh->dst_port, dst_port);
  net::Store16(uh->length, l4_len);
  if (len > 0) std::memcpy(l4 + net::kUdpHeaderLen, data, len);
  net::FinishL4Checksum6(l4, l4_len, net::kIpProtoUdp, src, dst_ip);
  size_t total = net::kEthHeaderLen + net::kIpv6HeaderLen + l4_len;
  if (total < net::kMinEthFrameLen) {
    std::memset(p + total, 0, net::kMinEthFrameLen - total);
    total = net::kMinEthFrameLen;
  }
  pool_.len(f) = static_cast<uint32_t>(total);
  ep->tx_datagrams++;
  counters_.udp_out++;
  counters_.udp6_out++;
  TransmitIp6(f, dst_ip);
  return 0;
}

int64_t Stack::UdpRecvFrom6(FlowId id, void* buf, uint32_t cap, net::Ip6Addr* src_ip,
                            uint16_t* src_port) {
  uint32_t idx;
  udp::UdpEndpoint* ep = GetUdp(id, &idx);
  if (ep == nullptr) return -EBADF;
  udp::DatagramInfo info;
  if (!ep->queue->Pop(static_cast<uint8_t*>(buf), cap, &info)) return -EAGAIN;
  if (src_ip != nullptr) {
    *src_ip = info.ipv6 ? info.src_ip6 : net::Ip6Addr::V4Mapped(info.src_ip);
  }
  if (src_port != nullptr) *src_port = info.src_port;
  return info.length;
}

bool Stack::UdpNextFromIpv6(FlowId id) {
  uint32_t idx;
  udp::UdpEndpoint* ep = GetUdp(id, &idx);
  return ep != nullptr && ep->queue->FrontIsIpv6();
}

void Stack::HandleUdp6(const net::ParsedFrame& f) {
  counters_.udp_in++;
  counters_.udp6_in++;
  // RFC 8200 8.1: IPv6 receivers discard UDP packets with a zero checksum,
  // whatever the parser was told to verify.
  if (net::Load16(reinterpret_cast<const net::UdpHeader*>(f.l4)->checksum) == 0) {
    counters_.udp6_zero_checksum++;
    counters_.rx_checksum_errors++;
    return;
  }
  if (f.dst_ip6.IsMulticast()) {
    counters_.udp6_multicast++;
    return;
  }
  if (!IsLocalAddress6(f.dst_ip6)) {
    counters_.rx_not_for_us++;
    return;
  }
  const uint32_t i = udp_.LookupUnicast6(f.dst_ip6, f.dst_port);
  if (i == udp::UdpTable::kNone) {
    counters_.udp_no_port++;  // the kernel would send ICMPv6 port unreachable
    return;
  }
  udp::UdpEndpoint* ep = udp_.Get(i);
  if (ep->queue->Push6(f.src_ip6, f.src_port, f.payload, f.payload_len)) {
    ep->rx_datagrams++;
    NotifyUdp(i, kUdpReadable);
  } else {
    ep->rx_dropped++;
    counters_.udp_queue_full++;
  }
}

void Stack::TransmitIp6(uint32_t f, const net::Ip6Addr& dst_ip) {
  const net::Ip6Addr nh = NextHop6(dst_ip);
  bool send_request = false;
  net::MacAddr mac;
  const net::NeighborResult r = nd_.Lookup(nh, now_ns_, &mac, &send_request);
  if (send_request) RequestNeighbor6(nh);
  switch (r) {
    case net::NeighborResult::kResolved:
      std::memcpy(pool_.data(f), mac.b, 6);
      QueueControl(f);
      return;
    case net::NeighborResult::kIncomplete:
      if (!nd_.EnqueuePending(nh, f)) pool_.Free(f);
      return;
    case net::NeighborResult::kFailed:
      counters_.neighbor_unresolved++;
      pool_.Free(f);
      return;
  }
}

}  // namespace offload::stack
