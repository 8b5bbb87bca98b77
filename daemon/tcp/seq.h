// Wrap-safe TCP sequence number arithmetic (RFC 9293 3.4, RFC 1982).
#ifndef OFFLOAD_DAEMON_TCP_SEQ_H_
#define OFFLOAD_DAEMON_TCP_SEQ_H_

#include <cstdint>

namespace offload::tcp {

inline bool SeqLt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
inline bool SeqLeq(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) <= 0; }
inline bool SeqGt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
inline bool SeqGeq(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) >= 0; }
inline uint32_t SeqMax(uint32_t a, uint32_t b) { return SeqGt(a, b) ? a : b; }
inline uint32_t SeqMin(uint32_t a, uint32_t b) { return SeqLt(a, b) ? a : b; }
// a <= x < b in sequence space.
inline bool SeqInRange(uint32_t x, uint32_t a, uint32_t b) {
  return SeqLeq(a, x) && SeqLt(x, b);
}

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_SEQ_H_
