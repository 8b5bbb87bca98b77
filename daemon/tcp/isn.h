// Initial sequence numbers (RFC 6528) and per-connection timestamp offsets,
// from a keyed SipHash-2-4 of the connection 4-tuple.
#ifndef OFFLOAD_DAEMON_TCP_ISN_H_
#define OFFLOAD_DAEMON_TCP_ISN_H_

#include <cstdint>

namespace offload::tcp {

struct SecretKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
};

// SipHash-2-4 of the 4-tuple (host-order addresses and ports) and `salt`.
uint64_t SipHash4Tuple(const SecretKey& key, uint32_t local_ip,
                       uint16_t local_port, uint32_t remote_ip,
                       uint16_t remote_port, uint32_t salt);

// RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, key),
// where M is a timer ticking every 4 microseconds.
uint32_t GenerateIsn(const SecretKey& key, uint32_t local_ip, uint16_t local_port,
                     uint32_t remote_ip, uint16_t remote_port, uint64_t now_ns);

// RFC 7323 7.1 (and Linux): a per-connection random offset added to TSval so
// that the clock is not exposed across connections.
uint32_t TimestampOffset(const SecretKey& key, uint32_t local_ip,
                         uint16_t local_port, uint32_t remote_ip,
                         uint16_t remote_port);

// A keyed 32-bit digest of an IPv6 address (SipHash-2-4 of its 16 bytes,
// domain-separated from the 4-tuple hashes). IPv6 flows pass the digests of
// their addresses where the functions above take an IPv4 address, so ISNs,
// timestamp offsets and SYN cookies depend on all 128 bits (a keyed PRF of
// a keyed PRF: an off-path attacker can neither predict nor choose
// collisions without the key, RFC 6528 3).
uint32_t Ip6Digest(const SecretKey& key, const uint8_t addr[16]);

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_ISN_H_
