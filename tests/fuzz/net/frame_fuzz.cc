// libFuzzer entry point: Ethernet/ARP/IPv4/IPv6/UDP/TCP frame parsing and TCP
// option parsing on arbitrary bytes. Invariants checked: every pointer the
// parser returns lies inside the input, lengths are consistent, and options
// written by the engine parse back identically.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "daemon/net/frame.h"
#include "daemon/tcp/options.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

bool Inside(const uint8_t* p, size_t n, const uint8_t* base, size_t len) {
  return p >= base && p + n <= base + len;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using offload::net::ParsedFrame;
  using offload::net::ParseStatus;
  using offload::net::L4Checksum;
  for (L4Checksum mode :
       {L4Checksum::kVerify, L4Checksum::kVerifyOrPartial, L4Checksum::kSkip}) {
    ParsedFrame f;
    ParseStatus st = offload::net::ParseFrame(data, size, mode, &f);
    if (st != ParseStatus::kOk) continue;
    if (f.arp != nullptr) {
      Check(Inside(reinterpret_cast<const uint8_t*>(f.arp), sizeof(*f.arp), data, size));
      continue;
    }
    Check(Inside(f.l4, f.l4_len, data, size));
    // IPv6: upper layer right after the fixed header (extension headers are
    // rejected, never walked); no IPv4 address is reported.
    if (f.ipv6) {
      Check(f.l4 == data + offload::net::kEthHeaderLen + offload::net::kIpv6HeaderLen);
      Check(f.src_ip == 0 && f.dst_ip == 0);
    }
    Check(f.protocol == offload::net::kIpProtoTcp || f.protocol == offload::net::kIpProtoUdp);
    Check(Inside(f.payload, f.payload_len, data, size));
    if (f.protocol == offload::net::kIpProtoTcp) {
      Check(Inside(f.tcp_options, f.tcp_options_len, data, size));
      offload::tcp::TcpOptions o;
      offload::tcp::ParseTcpOptions(f.tcp_options, f.tcp_options_len,
                                    (f.tcp_flags & offload::net::kTcpSyn) != 0, &o);
      Check(o.num_sack <= offload::tcp::kMaxSackBlocks);
      Check(o.wscale <= offload::tcp::kMaxWindowScale);
    }
  }
  // Raw option parsing of the whole input (both SYN and non-SYN rules), then
  // a write/parse round trip of what was understood.
  size_t n = size > 40 ? 40 : size;
  for (bool syn : {true, false}) {
    offload::tcp::TcpOptions o;
    offload::tcp::ParseTcpOptions(data, n, syn, &o);
    offload::tcp::OptionsToWrite w;
    w.mss = o.has_mss;
    w.mss_value = o.mss;
    w.wscale = o.has_wscale;
    w.wscale_value = o.wscale;
    w.sack_permitted = o.sack_permitted;
    w.timestamp = o.has_timestamp;
    w.tsval = o.tsval;
    w.tsecr = o.tsecr;
    w.num_sack = syn ? 0 : o.num_sack;
    std::memcpy(w.sack, o.sack, sizeof(w.sack));
    uint8_t buf[offload::tcp::kMaxOptionBytes];
    size_t len = offload::tcp::WriteTcpOptions(w, buf);
    Check(len <= sizeof(buf) && len % 4 == 0 && len == offload::tcp::TcpOptionsLength(w));
    offload::tcp::TcpOptions back;
    offload::tcp::ParseTcpOptions(buf, len, syn, &back);
    Check(back.has_mss == w.mss && (!w.mss || back.mss == w.mss_value));
    Check(back.has_timestamp == w.timestamp && (!w.timestamp || back.tsval == w.tsval));
    Check(back.sack_permitted == (syn && w.sack_permitted));
  }
  return 0;
}
