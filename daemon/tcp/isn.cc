// SipHash-2-4 (Aumasson & Bernstein) for RFC 6528 ISNs.
#include "daemon/tcp/isn.h"

namespace offload::tcp {
namespace {

inline uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct SipState {
  uint64_t v0, v1, v2, v3;
  void Round() {
    v0 += v1; v1 = Rotl(v1, 13); v1 ^= v0; v0 = Rotl(v0, 32);
    v2 += v3; v3 = Rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = Rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = Rotl(v1, 17); v1 ^= v2; v2 = Rotl(v2, 32);
  }
  void Compress(uint64_t m) {
    v3 ^= m;
    Round();
    Round();
    v0 ^= m;
  }
};

// SipHash-2-4 of two 64-bit words (16 bytes of input).
uint64_t SipHash2Words(const SecretKey& key, uint64_t m0, uint64_t m1) {
  SipState s{key.k0 ^ 0x736f6d6570736575ull, key.k1 ^ 0x646f72616e646f6dull,
             key.k0 ^ 0x6c7967656e657261ull, key.k1 ^ 0x7465646279746573ull};
  s.Compress(m0);
  s.Compress(m1);
  s.Compress(uint64_t{16} << 56);  // length byte, no tail
  s.v2 ^= 0xff;
  s.Round();
  s.Round();
  s.Round();
  s.Round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

}  // namespace

uint64_t SipHash4Tuple(const SecretKey& key, uint32_t local_ip,
                       uint16_t local_port, uint32_t remote_ip,
                       uint16_t remote_port, uint32_t salt) {
  uint64_t m0 = (uint64_t{local_ip} << 32) | remote_ip;
  uint64_t m1 = (uint64_t{local_port} << 48) | (uint64_t{remote_port} << 32) | salt;
  return SipHash2Words(key, m0, m1);
}

uint32_t GenerateIsn(const SecretKey& key, uint32_t local_ip, uint16_t local_port,
                     uint32_t remote_ip, uint16_t remote_port, uint64_t now_ns) {
  uint32_t f = static_cast<uint32_t>(
      SipHash4Tuple(key, local_ip, local_port, remote_ip, remote_port, 0));
  uint32_t m = static_cast<uint32_t>(now_ns / 4000);  // 4 us ticks
  return m + f;
}

uint32_t TimestampOffset(const SecretKey& key, uint32_t local_ip,
                         uint16_t local_port, uint32_t remote_ip,
                         uint16_t remote_port) {
  return static_cast<uint32_t>(
      SipHash4Tuple(key, local_ip, local_port, remote_ip, remote_port, 1) >> 32);
}

uint32_t Ip6Digest(const SecretKey& key, const uint8_t addr[16]) {
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 8; ++i) {
    hi = (hi << 8) | addr[i];
    lo = (lo << 8) | addr[8 + i];
  }
  // Domain separation from SipHash4Tuple: a key with k0 flipped.
  const SecretKey k6{key.k0 ^ 0x6970763664696765ull, key.k1};
  return static_cast<uint32_t>(SipHash2Words(k6, hi, lo));
}

}  // namespace offload::tcp
