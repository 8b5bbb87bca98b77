// SYN cookies (RFC 4987 3.6), encoded as Linux encodes them
// (net/ipv4/syncookies.c), so a listener under a SYN flood keeps no state
// for a SYN it cannot queue and still accepts every peer that completes
// the handshake.
//
// The SYN,ACK's sequence number carries the state:
//   ISN = (T << 24) | ((H(key, 4-tuple, peer ISN, T) + MSS index) mod 2^24)
// where T counts minutes (8 bits) and the MSS index picks one of Linux's
// four MSS values (536, 1300, 1440, 1460). A returning ACK is valid when
// SEG.ACK - 1 decodes to a T at most kMaxAgeMinutes old and an index < 4.
//
// With RFC 7323 timestamps the options that do not fit in the ISN ride in
// the low 6 bits of our TSval (Linux cookie_init_timestamp): bits 0-3 the
// peer's window scale (0xf: none), bit 4 SACK-permitted, bit 5 ECN (never
// set: no ECN here). The peer echoes them in TSecr. Without timestamps a
// cookie connection has neither window scaling nor SACK (Linux clears them).
//
// Pure functions; no state. Thread safety: any thread.
#ifndef OFFLOAD_DAEMON_TCP_SYNCOOKIE_H_
#define OFFLOAD_DAEMON_TCP_SYNCOOKIE_H_

#include <cstdint>

#include "daemon/tcp/isn.h"

namespace offload::tcp {

inline constexpr uint32_t kSynCookieMaxAgeMinutes = 2;  // Linux MAX_SYNCOOKIE_AGE

// The connection a cookie belongs to (host byte order).
struct CookieTuple {
  uint32_t local_ip = 0;
  uint16_t local_port = 0;
  uint32_t remote_ip = 0;
  uint16_t remote_port = 0;
};

// Returns the cookie ISN for a SYN with sequence number `peer_isn` and MSS
// option `peer_mss` (0: none, treated as 536), and in *mss the MSS the
// cookie encodes (the largest table value not above peer_mss).
uint32_t SynCookieIsn(const SecretKey& key, const CookieTuple& t, uint32_t peer_isn,
                      uint16_t peer_mss, uint64_t now_ns, uint16_t* mss);

// Checks the ACK completing a cookie handshake: `cookie` = SEG.ACK - 1,
// `peer_isn` = SEG.SEQ - 1. Returns the encoded MSS, or 0 if the cookie is
// invalid or too old.
uint16_t SynCookieCheck(const SecretKey& key, const CookieTuple& t, uint32_t peer_isn,
                        uint32_t cookie, uint64_t now_ns);

// The TSval of a cookie SYN,ACK: `ts_now` with its low 6 bits replaced by
// the options, never later than ts_now. `peer_wscale` < 0: no window scale.
uint32_t SynCookieTsval(uint32_t ts_now, int peer_wscale, bool sack_ok);

// Decodes the options from the TSecr of the completing ACK. Returns false
// if they are invalid (a window scale above 14).
bool SynCookieDecodeTs(uint32_t tsecr, int* peer_wscale, bool* sack_ok);

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_SYNCOOKIE_H_
