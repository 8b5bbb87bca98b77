// Internet checksum (RFC 1071) over raw network-order bytes, with the IPv4
// and IPv6 pseudo-headers used by TCP and UDP (RFC 9293 3.1, RFC 768,
// RFC 8200 8.1).
//
// All sums are computed over the bytes exactly as they are laid out on the
// wire; the folded result can be stored into a header field with memcpy and is
// then in network byte order on any host.
#ifndef OFFLOAD_DAEMON_NET_CHECKSUM_H_
#define OFFLOAD_DAEMON_NET_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

#include "daemon/net/headers.h"

namespace offload::net {

// Returns `sum` plus the one's-complement sum of `len` bytes at `data`, as a
// 32-bit partial sum (not folded, not inverted).
// REQUIRES: when partial sums are chained, every chunk but the last has even
// length.
uint32_t ChecksumPartial(const void* data, size_t len, uint32_t sum);

// Folds a partial sum to 16 bits and returns its one's complement, i.e. the
// value to store in a checksum field (in the byte order the sum was taken in).
inline uint16_t ChecksumFold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

// Returns the checksum field value for `len` bytes at `data`.
inline uint16_t Checksum(const void* data, size_t len) {
  return ChecksumFold(ChecksumPartial(data, len, 0));
}

// Returns the partial sum of the IPv4 pseudo-header (RFC 9293 3.1): source
// and destination addresses in network byte order as stored in the IP header,
// protocol, and the L4 length (host order).
uint32_t PseudoHeaderSum(uint32_t src_be, uint32_t dst_be, uint8_t protocol,
                         uint16_t l4_len);

// Returns the partial sum of the IPv6 pseudo-header (RFC 8200 8.1): source
// and destination addresses, the upper-layer packet length (32 bits) and the
// next header value of the upper layer (not of an extension header).
uint32_t PseudoHeaderSum6(const Ip6Addr& src, const Ip6Addr& dst, uint8_t protocol,
                          uint32_t l4_len);

}  // namespace offload::net

#endif  // OFFLOAD_DAEMON_NET_CHECKSUM_H_
