// SYN cookie encoding (RFC 4987 3.6, Linux layout); see syncookie.h.
#include "daemon/tcp/syncookie.h"

namespace offload::tcp {
namespace {

constexpr uint16_t kMssTable[] = {536, 1300, 1440, 1460};  // Linux msstab
constexpr uint32_t kCountBits = 24;
constexpr uint32_t kHashMask = (1u << kCountBits) - 1;
constexpr uint64_t kMinuteNs = 60'000'000'000ull;
constexpr uint32_t kTsBits = 6;                 // Linux TSBITS
constexpr uint32_t kTsWscaleNone = 0xf;         // TS_OPT_WSCALE_MASK
constexpr uint32_t kTsSack = 1u << 4;           // TS_OPT_SACK

uint32_t Minutes(uint64_t now_ns) { return static_cast<uint32_t>(now_ns / kMinuteNs); }

uint32_t Hash(const SecretKey& key, const CookieTuple& t, uint32_t peer_isn, uint32_t count) {
  // Salted per minute and per peer ISN, like Linux's second hash.
  return static_cast<uint32_t>(SipHash4Tuple(key, t.local_ip, t.local_port, t.remote_ip,
                                             t.remote_port, peer_isn ^ (count * 0x9e3779b9u)) >>
                               16);
}

}  // namespace

uint32_t SynCookieIsn(const SecretKey& key, const CookieTuple& t, uint32_t peer_isn,
                      uint16_t peer_mss, uint64_t now_ns, uint16_t* mss) {
  if (peer_mss == 0) peer_mss = kMssTable[0];
  uint32_t idx = 0;
  for (uint32_t i = 0; i < 4; ++i) {
    if (kMssTable[i] <= peer_mss) idx = i;
  }
  *mss = kMssTable[idx];
  const uint32_t count = Minutes(now_ns) & 0xff;
  return (count << kCountBits) | ((Hash(key, t, peer_isn, count) + idx) & kHashMask);
}

uint16_t SynCookieCheck(const SecretKey& key, const CookieTuple& t, uint32_t peer_isn,
                        uint32_t cookie, uint64_t now_ns) {
  const uint32_t count = cookie >> kCountBits;
  const uint32_t age = (Minutes(now_ns) - count) & 0xff;
  if (age > kSynCookieMaxAgeMinutes) return 0;
  const uint32_t idx = ((cookie & kHashMask) - Hash(key, t, peer_isn, count)) & kHashMask;
  return idx < 4 ? kMssTable[idx] : 0;
}

uint32_t SynCookieTsval(uint32_t ts_now, int peer_wscale, bool sack_ok) {
  uint32_t options = peer_wscale >= 0 ? static_cast<uint32_t>(peer_wscale) : kTsWscaleNone;
  if (sack_ok) options |= kTsSack;
  uint32_t ts = ((ts_now >> kTsBits) << kTsBits) | options;
  if (static_cast<int32_t>(ts - ts_now) > 0) ts -= 1u << kTsBits;
  return ts;
}

bool SynCookieDecodeTs(uint32_t tsecr, int* peer_wscale, bool* sack_ok) {
  const uint32_t options = tsecr & ((1u << kTsBits) - 1);
  const uint32_t ws = options & kTsWscaleNone;
  *sack_ok = (options & kTsSack) != 0;
  if (ws == kTsWscaleNone) {
    *peer_wscale = -1;
    return true;
  }
  if (ws > 14) return false;  // RFC 7323 2.3
  *peer_wscale = static_cast<int>(ws);
  return true;
}

}  // namespace offload::tcp
