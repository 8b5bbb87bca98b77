// TCP options (RFC 9293 3.2): parsing of received options and writing of the
// option block in the same order and layout as Linux (tcp_options_write):
//   SYN:   MSS, SACK-permitted+Timestamps (or NOP,NOP,TS / NOP,NOP,SACK-perm),
//          NOP+Window-scale
//   other: NOP,NOP,Timestamps, then NOP,NOP,SACK blocks.
#ifndef OFFLOAD_DAEMON_TCP_OPTIONS_H_
#define OFFLOAD_DAEMON_TCP_OPTIONS_H_

#include <cstddef>
#include <cstdint>

namespace offload::tcp {

inline constexpr uint8_t kOptEol = 0;
inline constexpr uint8_t kOptNop = 1;
inline constexpr uint8_t kOptMss = 2;
inline constexpr uint8_t kOptWindowScale = 3;
inline constexpr uint8_t kOptSackPermitted = 4;
inline constexpr uint8_t kOptSack = 5;
inline constexpr uint8_t kOptTimestamp = 8;

inline constexpr uint8_t kMaxWindowScale = 14;  // RFC 7323 2.3
inline constexpr size_t kMaxOptionBytes = 40;
inline constexpr size_t kMaxSackBlocks = 4;

struct SackBlock {
  uint32_t start = 0;  // first sequence number of the block
  uint32_t end = 0;    // sequence number just past the block
};

struct TcpOptions {
  bool has_mss = false;
  bool has_wscale = false;
  bool sack_permitted = false;
  bool has_timestamp = false;
  uint16_t mss = 0;
  uint8_t wscale = 0;  // already clamped to 14
  uint8_t num_sack = 0;
  uint32_t tsval = 0;
  uint32_t tsecr = 0;
  SackBlock sack[kMaxSackBlocks];
};

// Parses `len` option bytes. Like Linux, stops at EOL or at the first option
// whose length is malformed, keeping what was parsed so far; options with a
// wrong fixed length are ignored. `syn` enables the SYN-only options (MSS,
// window scale, SACK-permitted; RFC 9293 3.7.1, RFC 7323 2.2, RFC 2018 2).
void ParseTcpOptions(const uint8_t* p, size_t len, bool syn, TcpOptions* out);

// What to put in an outgoing segment's option block.
struct OptionsToWrite {
  bool mss = false;
  uint16_t mss_value = 0;
  bool wscale = false;
  uint8_t wscale_value = 0;
  bool sack_permitted = false;
  bool timestamp = false;
  uint32_t tsval = 0;
  uint32_t tsecr = 0;
  uint8_t num_sack = 0;
  SackBlock sack[kMaxSackBlocks];
};

// Returns the length in bytes (a multiple of 4) WriteTcpOptions would write.
size_t TcpOptionsLength(const OptionsToWrite& o);

// Writes the option block to `p` (room for kMaxOptionBytes). SACK blocks that
// do not fit are dropped. Returns the length written (a multiple of 4).
size_t WriteTcpOptions(const OptionsToWrite& o, uint8_t* p);

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_OPTIONS_H_
