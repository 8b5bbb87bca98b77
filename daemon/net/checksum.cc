// Internet checksum, 64-bit accumulation (RFC 1071 4.1 "deferred carries").
#include "daemon/net/checksum.h"

#include <arpa/inet.h>

#include <cstring>

namespace offload::net {

uint32_t ChecksumPartial(const void* data, size_t len, uint32_t sum) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t acc = sum;
  // RFC 1071 2(B): the sum is independent of byte order and word size, so we
  // add 64-bit words and fold the carries at the end.
  while (len >= 32) {
    uint64_t w[4];
    std::memcpy(w, p, 32);
    for (uint64_t v : w) {
      acc += v;
      acc += (acc < v);
    }
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    acc += v;
    acc += (acc < v);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    acc += v;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    acc += v;
    p += 2;
    len -= 2;
  }
  if (len == 1) {
    // The odd byte is the high-order byte of a 16-bit word on the wire.
    uint16_t v = 0;
    std::memcpy(&v, p, 1);
    acc += v;
  }
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  uint32_t r = static_cast<uint32_t>(acc);
  // Keep the result within 32 bits with room for further additions.
  return (r & 0xffff) + (r >> 16);
}

uint32_t PseudoHeaderSum(uint32_t src_be, uint32_t dst_be, uint8_t protocol,
                         uint16_t l4_len) {
  uint8_t ph[12];
  std::memcpy(ph, &src_be, 4);
  std::memcpy(ph + 4, &dst_be, 4);
  ph[8] = 0;
  ph[9] = protocol;
  uint16_t len_be = htons(l4_len);
  std::memcpy(ph + 10, &len_be, 2);
  return ChecksumPartial(ph, sizeof(ph), 0);
}

uint32_t PseudoHeaderSum6(const Ip6Addr& src, const Ip6Addr& dst, uint8_t protocol,
                          uint32_t l4_len) {
  uint8_t ph[40];
  std::memcpy(ph, src.b, 16);
  std::memcpy(ph + 16, dst.b, 16);
  uint32_t len_be = htonl(l4_len);
  std::memcpy(ph + 32, &len_be, 4);
  ph[36] = ph[37] = ph[38] = 0;
  ph[39] = protocol;
  return ChecksumPartial(ph, sizeof(ph), 0);
}

}  // namespace offload::net
