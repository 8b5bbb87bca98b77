// TCP option parsing and Linux-ordered option writing; see options.h.
#include "daemon/tcp/options.h"

#include <algorithm>

#include "daemon/net/headers.h"

namespace offload::tcp {

using net::Load16;
using net::Load32;
using net::Store16;
using net::Store32;

void ParseTcpOptions(const uint8_t* p, size_t len, bool syn, TcpOptions* out) {
  *out = TcpOptions{};
  size_t i = 0;
  while (i < len) {
    uint8_t kind = p[i];
    if (kind == kOptEol) break;
    if (kind == kOptNop) {
      ++i;
      continue;
    }
    if (i + 1 >= len) break;
    uint8_t olen = p[i + 1];
    if (olen < 2 || i + olen > len) break;  // "silly options": stop
    const uint8_t* v = p + i + 2;
    switch (kind) {
      case kOptMss:
        // RFC 9293 3.7.1: MSS is only sent (and honoured) on SYN segments.
        if (olen == 4 && syn) {
          out->has_mss = true;
          out->mss = Load16(v);
        }
        break;
      case kOptWindowScale:
        if (olen == 3 && syn) {
          out->has_wscale = true;
          // RFC 7323 2.3: a shift > 14 is treated as 14.
          out->wscale = std::min<uint8_t>(v[0], kMaxWindowScale);
        }
        break;
      case kOptSackPermitted:
        if (olen == 2 && syn) out->sack_permitted = true;
        break;
      case kOptTimestamp:
        if (olen == 10) {
          out->has_timestamp = true;
          out->tsval = Load32(v);
          out->tsecr = Load32(v + 4);
        }
        break;
      case kOptSack:
        // RFC 2018 3: length 2 + 8n.
        if (!syn && olen >= 10 && (olen - 2) % 8 == 0) {
          size_t n = std::min<size_t>((olen - 2) / 8, kMaxSackBlocks);
          for (size_t b = 0; b < n; ++b) {
            out->sack[b].start = Load32(v + 8 * b);
            out->sack[b].end = Load32(v + 8 * b + 4);
          }
          out->num_sack = static_cast<uint8_t>(n);
        }
        break;
      default:
        break;  // unknown options are skipped (RFC 9293 3.2)
    }
    i += olen;
  }
}

namespace {

size_t FixedLength(const OptionsToWrite& o) {
  size_t n = 0;
  if (o.mss) n += 4;
  if (o.timestamp) n += 12;  // (SACK-perm or NOP,NOP) + TS
  if (o.sack_permitted && !o.timestamp) n += 4;
  if (o.wscale) n += 4;
  return n;
}

size_t SackBlocksThatFit(const OptionsToWrite& o) {
  if (o.num_sack == 0) return 0;
  size_t room = kMaxOptionBytes - FixedLength(o);
  if (room < 4 + 8) return 0;
  return std::min<size_t>(o.num_sack, (room - 4) / 8);
}

}  // namespace

size_t TcpOptionsLength(const OptionsToWrite& o) {
  size_t blocks = SackBlocksThatFit(o);
  return FixedLength(o) + (blocks ? 4 + 8 * blocks : 0);
}

size_t WriteTcpOptions(const OptionsToWrite& o, uint8_t* p) {
  uint8_t* start = p;
  if (o.mss) {
    p[0] = kOptMss;
    p[1] = 4;
    Store16(p + 2, o.mss_value);
    p += 4;
  }
  if (o.timestamp) {
    if (o.sack_permitted) {
      p[0] = kOptSackPermitted;
      p[1] = 2;
    } else {
      p[0] = kOptNop;
      p[1] = kOptNop;
    }
    p[2] = kOptTimestamp;
    p[3] = 10;
    Store32(p + 4, o.tsval);
    Store32(p + 8, o.tsecr);
    p += 12;
  } else if (o.sack_permitted) {
    p[0] = kOptNop;
    p[1] = kOptNop;
    p[2] = kOptSackPermitted;
    p[3] = 2;
    p += 4;
  }
  if (o.wscale) {
    p[0] = kOptNop;
    p[1] = kOptWindowScale;
    p[2] = 3;
    p[3] = o.wscale_value;
    p += 4;
  }
  size_t blocks = SackBlocksThatFit(o);
  if (blocks > 0) {
    p[0] = kOptNop;
    p[1] = kOptNop;
    p[2] = kOptSack;
    p[3] = static_cast<uint8_t>(2 + 8 * blocks);
    p += 4;
    for (size_t b = 0; b < blocks; ++b) {
      Store32(p, o.sack[b].start);
      Store32(p + 4, o.sack[b].end);
      p += 8;
    }
  }
  return static_cast<size_t>(p - start);
}

}  // namespace offload::tcp
