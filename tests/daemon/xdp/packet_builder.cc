// Frame builder/parser for tests.

#include "tests/daemon/xdp/packet_builder.h"

#include <arpa/inet.h>

#include <cstring>

namespace offload::testing {
namespace {

uint32_t SumWords(const uint8_t* p, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len & 1) sum += p[len - 1] << 8;
  return sum;
}

uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void Put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}
void Put32(uint8_t* p, uint32_t v) {
  Put16(p, v >> 16);
  Put16(p + 2, v & 0xffff);
}
uint16_t Get16(const uint8_t* p) { return (p[0] << 8) | p[1]; }
uint32_t Get32(const uint8_t* p) {
  return (uint32_t{Get16(p)} << 16) | Get16(p + 2);
}

}  // namespace

uint32_t Ip(const char* dotted) {
  in_addr a;
  if (inet_pton(AF_INET, dotted, &a) != 1) return 0;
  return ntohl(a.s_addr);
}

std::vector<uint8_t> BuildFrame(const FrameSpec& s) {
  const size_t ihl = 20 + 4 * s.ip_options_words;
  size_t l4 = 0;
  if (s.proto == 17) l4 = 8;
  if (s.proto == 6) l4 = 20;
  std::vector<uint8_t> f(14 + ihl + l4 + s.payload.size(), 0);
  memcpy(&f[0], s.dst_mac.data(), 6);
  memcpy(&f[6], s.src_mac.data(), 6);
  Put16(&f[12], s.ether_type);
  uint8_t* ip = &f[14];
  ip[0] = 0x40 | static_cast<uint8_t>(ihl / 4);
  Put16(ip + 2, static_cast<uint16_t>(ihl + l4 + s.payload.size()));
  Put16(ip + 4, 0x1234);
  Put16(ip + 6, s.frag_off);
  ip[8] = 64;
  ip[9] = s.proto;
  Put32(ip + 12, s.src_ip);
  Put32(ip + 16, s.dst_ip);
  for (size_t i = 20; i < ihl; ++i) ip[i] = 1;  // NOP options
  Put16(ip + 10, Fold(SumWords(ip, ihl, 0)));
  uint8_t* l = ip + ihl;
  memcpy(l + l4, s.payload.data(), s.payload.size());
  const size_t l4_len = l4 + s.payload.size();
  if (l4 != 0) {
    Put16(l, s.src_port);
    Put16(l + 2, s.dst_port);
    if (s.proto == 17) {
      Put16(l + 4, static_cast<uint16_t>(l4_len));
    } else {
      Put32(l + 4, 1000);  // seq
      l[12] = 5 << 4;      // data offset
      l[13] = s.tcp_flags;
      Put16(l + 14, 65535);  // window
    }
    // RFC 768 / RFC 9293 3.1: checksum over the pseudo-header + segment.
    uint32_t sum = SumWords(ip + 12, 8, 0);
    sum += s.proto;
    sum += static_cast<uint32_t>(l4_len);
    uint16_t csum = Fold(SumWords(l, l4_len, sum));
    if (s.proto == 17 && csum == 0) csum = 0xffff;
    Put16(l + (s.proto == 17 ? 6 : 16), csum);
  }
  return f;
}

bool ChecksumsValid(const uint8_t* d, size_t len) {
  if (len < 34 || Get16(d + 12) != 0x0800) return false;
  const uint8_t* ip = d + 14;
  const size_t ihl = (ip[0] & 0xf) * 4u;
  const size_t total = Get16(ip + 2);
  if (ihl < 20 || total < ihl || 14 + total > len) return false;
  if (Fold(SumWords(ip, ihl, 0)) != 0) return false;
  const uint8_t proto = ip[9];
  if (proto != 6 && proto != 17) return true;
  const uint8_t* l4 = ip + ihl;
  const size_t l4_len = total - ihl;
  if (proto == 17 && l4_len >= 8 && Get16(l4 + 6) == 0) return true;
  uint32_t sum =
      SumWords(ip + 12, 8, 0) + proto + static_cast<uint32_t>(l4_len);
  return Fold(SumWords(l4, l4_len, sum)) == 0;
}

std::optional<ParsedFrame> ParseFrame(const uint8_t* d, size_t len) {
  if (len < 14) return std::nullopt;
  ParsedFrame p;
  p.ether_type = Get16(d + 12);
  if (p.ether_type != 0x0800) return p;
  if (len < 34) return std::nullopt;
  const uint8_t* ip = d + 14;
  size_t ihl = (ip[0] & 0xf) * 4;
  size_t total = Get16(ip + 2);
  if (ihl < 20 || 14 + total > len || total < ihl) return std::nullopt;
  p.proto = ip[9];
  p.src_ip = Get32(ip + 12);
  p.dst_ip = Get32(ip + 16);
  const uint8_t* l = ip + ihl;
  size_t l4_len = total - ihl;
  if (p.proto == 17) {
    if (l4_len < 8) return std::nullopt;
    p.payload.assign(reinterpret_cast<const char*>(l + 8), l4_len - 8);
  } else if (p.proto == 6) {
    if (l4_len < 20) return std::nullopt;
    size_t doff = (l[12] >> 4) * 4;
    if (doff < 20 || doff > l4_len) return std::nullopt;
    p.tcp_flags = l[13];
    p.payload.assign(reinterpret_cast<const char*>(l + doff), l4_len - doff);
  } else {
    return p;
  }
  p.src_port = Get16(l);
  p.dst_port = Get16(l + 2);
  return p;
}

}  // namespace offload::testing
