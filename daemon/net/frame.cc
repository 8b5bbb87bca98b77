// Frame parsing and header builders; see frame.h.
#include "daemon/net/frame.h"

#include <cstring>

#include "daemon/net/checksum.h"

namespace offload::net {

const char* ParseStatusName(ParseStatus s) {
  switch (s) {
    case ParseStatus::kOk: return "ok";
    case ParseStatus::kTruncated: return "truncated";
    case ParseStatus::kUnsupportedEthertype: return "unsupported_ethertype";
    case ParseStatus::kBadArp: return "bad_arp";
    case ParseStatus::kBadIpVersion: return "bad_ip_version";
    case ParseStatus::kBadIpHeaderLength: return "bad_ip_header_length";
    case ParseStatus::kBadIpTotalLength: return "bad_ip_total_length";
    case ParseStatus::kBadIpChecksum: return "bad_ip_checksum";
    case ParseStatus::kIpFragment: return "ip_fragment";
    case ParseStatus::kUnsupportedProtocol: return "unsupported_protocol";
    case ParseStatus::kBadUdpLength: return "bad_udp_length";
    case ParseStatus::kBadTcpHeaderLength: return "bad_tcp_header_length";
    case ParseStatus::kBadL4Checksum: return "bad_l4_checksum";
    case ParseStatus::kIpv6ExtensionHeader: return "ipv6_extension_header";
    case ParseStatus::kCount: break;
  }
  return "unknown";
}

namespace {

ParseStatus ParseArp(const uint8_t* p, size_t len, ParsedFrame* out) {
  if (len < kArpPacketLen) return ParseStatus::kTruncated;
  const auto* arp = reinterpret_cast<const ArpPacket*>(p);
  // RFC 826: only Ethernet hardware and IPv4 protocol addresses.
  if (Load16(arp->htype) != 1 || Load16(arp->ptype) != kEthTypeIpv4 ||
      arp->hlen != 6 || arp->plen != 4) {
    return ParseStatus::kBadArp;
  }
  uint16_t oper = Load16(arp->oper);
  if (oper != kArpRequest && oper != kArpReply) return ParseStatus::kBadArp;
  out->arp = arp;
  return ParseStatus::kOk;
}

// True if the checksum over `len` bytes at `l4` (with pseudo-header `sum`) is
// right, or if `mode` allows a partial one and the field at `field` holds only
// the folded pseudo-header sum (then sets *partial).
bool L4ChecksumOk(const uint8_t* l4, uint32_t len, uint32_t sum, const uint8_t* field,
                  L4Checksum mode, bool* partial) {
  if (ChecksumFold(ChecksumPartial(l4, len, sum)) == 0) return true;
  if (mode != L4Checksum::kVerifyOrPartial) return false;
  uint16_t stored;
  std::memcpy(&stored, field, 2);
  *partial = stored == static_cast<uint16_t>(~ChecksumFold(sum));
  return *partial;
}

// The partial sum of the pseudo-header of `out`'s family.
uint32_t PseudoSum(const ParsedFrame& f, uint8_t protocol, uint32_t l4_len) {
  if (f.ipv6) return PseudoHeaderSum6(f.src_ip6, f.dst_ip6, protocol, l4_len);
  return PseudoHeaderSum(htonl(f.src_ip), htonl(f.dst_ip), protocol,
                         static_cast<uint16_t>(l4_len));
}

ParseStatus ParseL4(ParsedFrame* out, L4Checksum mode) {
  const bool verify = mode != L4Checksum::kSkip;
  const uint8_t* l4 = out->l4;
  const uint32_t l4_len = out->l4_len;
  if (out->protocol == kIpProtoUdp) {
    if (l4_len < kUdpHeaderLen) return ParseStatus::kTruncated;
    const auto* udp = reinterpret_cast<const UdpHeader*>(l4);
    uint16_t ulen = Load16(udp->length);
    // RFC 768: length covers header and data; must fit in the IP payload.
    if (ulen < kUdpHeaderLen || ulen > l4_len) return ParseStatus::kBadUdpLength;
    // RFC 8200 8.1: over IPv6 a zero UDP checksum is not allowed (Linux
    // drops it too, udp6_csum_zero_error).
    if (verify && out->ipv6 && Load16(udp->checksum) == 0) return ParseStatus::kBadL4Checksum;
    if (verify && Load16(udp->checksum) != 0) {  // RFC 768: 0 = no checksum
      uint32_t sum = PseudoSum(*out, kIpProtoUdp, ulen);
      if (!L4ChecksumOk(l4, ulen, sum, udp->checksum, mode, &out->l4_checksum_partial)) {
        return ParseStatus::kBadL4Checksum;
      }
    }
    out->src_port = Load16(udp->src_port);
    out->dst_port = Load16(udp->dst_port);
    out->payload = l4 + kUdpHeaderLen;
    out->payload_len = ulen - kUdpHeaderLen;
    return ParseStatus::kOk;
  }
  if (out->protocol == kIpProtoTcp) {
    if (l4_len < kTcpHeaderLen) return ParseStatus::kTruncated;
    const auto* tcp = reinterpret_cast<const TcpHeader*>(l4);
    uint32_t doff = static_cast<uint32_t>(tcp->data_offset >> 4) * 4;
    // RFC 9293 3.1: Data Offset is at least 5 words and within the segment.
    if (doff < kTcpHeaderLen || doff > l4_len) {
      return ParseStatus::kBadTcpHeaderLength;
    }
    if (verify) {
      uint32_t sum = PseudoSum(*out, kIpProtoTcp, l4_len);
      if (!L4ChecksumOk(l4, l4_len, sum, tcp->checksum, mode, &out->l4_checksum_partial)) {
        return ParseStatus::kBadL4Checksum;
      }
    }
    out->src_port = Load16(tcp->src_port);
    out->dst_port = Load16(tcp->dst_port);
    out->seq = Load32(tcp->seq);
    out->ack = Load32(tcp->ack);
    out->tcp_flags = tcp->flags;
    out->window = Load16(tcp->window);
    out->urgent = Load16(tcp->urgent);
    out->tcp_options = l4 + kTcpHeaderLen;
    out->tcp_options_len = static_cast<uint8_t>(doff - kTcpHeaderLen);
    out->payload = l4 + doff;
    out->payload_len = l4_len - doff;
    return ParseStatus::kOk;
  }
  return ParseStatus::kUnsupportedProtocol;
}

// RFC 8200 3: the fixed header at `p` (`rest` bytes to the frame's end).
ParseStatus ParseIpv6(const uint8_t* p, size_t rest, L4Checksum l4_checksum,
                      ParsedFrame* out) {
  if (rest < kIpv6HeaderLen) return ParseStatus::kTruncated;
  const auto* ip = reinterpret_cast<const Ipv6Header*>(p);
  const uint32_t vtf = Load32(ip->ver_tc_flow);
  if ((vtf >> 28) != 6) return ParseStatus::kBadIpVersion;
  // Payload length covers extension headers and L4; a jumbogram (0, with a
  // hop-by-hop option, RFC 2675) is an extension-header case below.
  size_t payload = Load16(ip->payload_length);
  if (payload > rest - kIpv6HeaderLen) return ParseStatus::kBadIpTotalLength;
  out->ipv6 = true;
  out->tos = static_cast<uint8_t>(vtf >> 20);
  out->flow_label = vtf & 0xfffff;
  out->ttl = ip->hop_limit;
  out->df = true;
  std::memcpy(out->src_ip6.b, ip->src, 16);
  std::memcpy(out->dst_ip6.b, ip->dst, 16);
  out->protocol = ip->next_header;
  out->l4 = p + kIpv6HeaderLen;
  out->l4_len = static_cast<uint32_t>(payload);
  if (ip->next_header == kIpv6ExtFragment) return ParseStatus::kIpFragment;
  if (IsIpv6ExtensionHeader(ip->next_header)) return ParseStatus::kIpv6ExtensionHeader;
  return ParseL4(out, l4_checksum);
}

}  // namespace

ParseStatus ParseFrame(const uint8_t* data, size_t len, L4Checksum l4_checksum,
                       ParsedFrame* out) {
  *out = ParsedFrame{};
  if (len < kEthHeaderLen) return ParseStatus::kTruncated;
  out->frame = data;
  out->frame_len = static_cast<uint32_t>(len);
  const auto* eth = reinterpret_cast<const EthHeader*>(data);
  std::memcpy(out->dst_mac.b, eth->dst, 6);
  std::memcpy(out->src_mac.b, eth->src, 6);
  out->ethertype = Load16(eth->ethertype);
  const uint8_t* p = data + kEthHeaderLen;
  size_t rest = len - kEthHeaderLen;
  if (out->ethertype == kEthTypeArp) return ParseArp(p, rest, out);
  if (out->ethertype == kEthTypeIpv6) return ParseIpv6(p, rest, l4_checksum, out);
  if (out->ethertype != kEthTypeIpv4) return ParseStatus::kUnsupportedEthertype;

  if (rest < kIpv4HeaderLen) return ParseStatus::kTruncated;
  const auto* ip = reinterpret_cast<const Ipv4Header*>(p);
  // RFC 791 3.1: version 4, IHL >= 5 words.
  if ((ip->version_ihl >> 4) != 4) return ParseStatus::kBadIpVersion;
  size_t ihl = static_cast<size_t>(ip->version_ihl & 0xf) * 4;
  if (ihl < kIpv4HeaderLen) return ParseStatus::kBadIpHeaderLength;
  if (ihl > rest) return ParseStatus::kTruncated;
  size_t total = Load16(ip->total_length);
  // Total length covers the header; anything after it is link padding.
  if (total < ihl || total > rest) return ParseStatus::kBadIpTotalLength;
  // RFC 1122 3.2.1.2: silently discard datagrams with a bad header checksum.
  if (Checksum(ip, ihl) != 0) return ParseStatus::kBadIpChecksum;
  uint16_t frag = Load16(ip->frag);
  out->df = (frag & kIpFlagDf) != 0;
  out->src_ip = Load32(ip->src);
  out->dst_ip = Load32(ip->dst);
  out->protocol = ip->protocol;
  out->ttl = ip->ttl;
  out->tos = ip->tos;
  out->ip_id = Load16(ip->id);
  out->l4 = p + ihl;
  out->l4_len = static_cast<uint32_t>(total - ihl);
  // Fragments (MF set or non-zero offset) are not reassembled.
  if ((frag & (kIpFlagMf | kIpFragOffsetMask)) != 0) return ParseStatus::kIpFragment;
  return ParseL4(out, l4_checksum);
}

size_t WriteEthHeader(uint8_t* buf, const MacAddr& dst, const MacAddr& src,
                      uint16_t ethertype) {
  auto* eth = reinterpret_cast<EthHeader*>(buf);
  std::memcpy(eth->dst, dst.b, 6);
  std::memcpy(eth->src, src.b, 6);
  Store16(eth->ethertype, ethertype);
  return kEthHeaderLen;
}

size_t WriteIpv4Header(uint8_t* buf, const Ipv4Fields& f, uint16_t l4_len) {
  auto* ip = reinterpret_cast<Ipv4Header*>(buf);
  ip->version_ihl = 0x45;
  ip->tos = f.tos;
  Store16(ip->total_length, static_cast<uint16_t>(kIpv4HeaderLen + l4_len));
  Store16(ip->id, f.id);
  Store16(ip->frag, f.df ? kIpFlagDf : 0);
  ip->ttl = f.ttl;
  ip->protocol = f.protocol;
  ip->checksum[0] = ip->checksum[1] = 0;
  Store32(ip->src, f.src_ip);
  Store32(ip->dst, f.dst_ip);
  uint16_t c = Checksum(ip, kIpv4HeaderLen);
  std::memcpy(ip->checksum, &c, 2);
  return kIpv4HeaderLen;
}

size_t WriteIpv6Header(uint8_t* buf, const Ipv6Fields& f, uint16_t l4_len) {
  auto* ip = reinterpret_cast<Ipv6Header*>(buf);
  Store32(ip->ver_tc_flow,
          (6u << 28) | (uint32_t{f.traffic_class} << 20) | (f.flow_label & 0xfffff));
  Store16(ip->payload_length, l4_len);
  ip->next_header = f.next_header;
  ip->hop_limit = f.hop_limit;
  std::memcpy(ip->src, f.src.b, 16);
  std::memcpy(ip->dst, f.dst.b, 16);
  return kIpv6HeaderLen;
}

size_t BuildArpFrame(uint8_t* buf, uint16_t oper, const MacAddr& eth_dst,
                     const MacAddr& sha, uint32_t spa, const MacAddr& tha,
                     uint32_t tpa) {
  size_t n = WriteEthHeader(buf, eth_dst, sha, kEthTypeArp);
  auto* arp = reinterpret_cast<ArpPacket*>(buf + n);
  Store16(arp->htype, 1);
  Store16(arp->ptype, kEthTypeIpv4);
  arp->hlen = 6;
  arp->plen = 4;
  Store16(arp->oper, oper);
  std::memcpy(arp->sha, sha.b, 6);
  Store32(arp->spa, spa);
  std::memcpy(arp->tha, tha.b, 6);
  Store32(arp->tpa, tpa);
  n += kArpPacketLen;
  std::memset(buf + n, 0, kMinEthFrameLen - n);
  return kMinEthFrameLen;
}

namespace {

// Stores the TCP/UDP checksum of `l4` given its pseudo-header sum.
void StoreL4Checksum(uint8_t* l4, uint16_t l4_len, uint8_t protocol, uint32_t pseudo) {
  uint8_t* field = protocol == kIpProtoTcp
                       ? reinterpret_cast<TcpHeader*>(l4)->checksum
                       : reinterpret_cast<UdpHeader*>(l4)->checksum;
  field[0] = field[1] = 0;
  uint16_t c = ChecksumFold(ChecksumPartial(l4, l4_len, pseudo));
  if (protocol == kIpProtoUdp && c == 0) c = 0xffff;  // RFC 768, RFC 8200 8.1
  std::memcpy(field, &c, 2);
}

}  // namespace

void FinishL4Checksum(uint8_t* l4, uint16_t l4_len, uint8_t protocol,
                      uint32_t src_ip, uint32_t dst_ip) {
  StoreL4Checksum(l4, l4_len, protocol,
                  PseudoHeaderSum(htonl(src_ip), htonl(dst_ip), protocol, l4_len));
}

void FinishL4Checksum6(uint8_t* l4, uint16_t l4_len, uint8_t protocol, const Ip6Addr& src,
                       const Ip6Addr& dst) {
  StoreL4Checksum(l4, l4_len, protocol, PseudoHeaderSum6(src, dst, protocol, l4_len));
}

}  // namespace offload::net
