#include "tests/testing/packet_builder.h"

#include <arpa/inet.h>

#include <cstring>

namespace offload::testing {

net::MacAddr Mac(uint8_t last) { return net::MacAddr{{0x02, 0, 0, 0, 0, last}}; }

uint32_t Ip(const char* dotted) {
  in_addr a;
  inet_pton(AF_INET, dotted, &a);
  return ntohl(a.s_addr);
}

Frame BuildTcp(const TcpSpec& s) {
  uint8_t opts[64] = {};
  size_t opt_len;
  if (!s.raw_options.empty()) {
    opt_len = s.raw_options.size();
    std::memcpy(opts, s.raw_options.data(), opt_len);
    while (opt_len % 4) opts[opt_len++] = 0;
  } else {
    opt_len = tcp::WriteTcpOptions(s.options, opts);
  }
  size_t tcp_len = net::kTcpHeaderLen + opt_len + s.payload.size();
  Frame f(net::kEthHeaderLen + net::kIpv4HeaderLen + tcp_len);
  net::WriteEthHeader(f.data(), s.dst.mac, s.src.mac, net::kEthTypeIpv4);
  net::Ipv4Fields ip;
  ip.src_ip = s.src.ip;
  ip.dst_ip = s.dst.ip;
  ip.protocol = net::kIpProtoTcp;
  ip.ttl = s.ttl;
  net::WriteIpv4Header(f.data() + net::kEthHeaderLen, ip, static_cast<uint16_t>(tcp_len));
  uint8_t* t = f.data() + net::kEthHeaderLen + net::kIpv4HeaderLen;
  auto* th = reinterpret_cast<net::TcpHeader*>(t);
  net::Store16(th->src_port, s.src.port);
  net::Store16(th->dst_port, s.dst.port);
  net::Store32(th->seq, s.seq);
  net::Store32(th->ack, s.ack);
  th->data_offset = static_cast<uint8_t>(((net::kTcpHeaderLen + opt_len) / 4) << 4);
  th->flags = s.flags;
  net::Store16(th->window, s.window);
  std::memcpy(t + net::kTcpHeaderLen, opts, opt_len);
  if (!s.payload.empty()) {
    std::memcpy(t + net::kTcpHeaderLen + opt_len, s.payload.data(), s.payload.size());
  }
  net::FinishL4Checksum(t, static_cast<uint16_t>(tcp_len), net::kIpProtoTcp, s.src.ip, s.dst.ip);
  if (s.corrupt_checksum) t[16] ^= 0x5a;
  if (f.size() < net::kMinEthFrameLen) f.resize(net::kMinEthFrameLen, 0);
  return f;
}

Frame BuildUdp(const Endpoint& src, const Endpoint& dst, const std::vector<uint8_t>& payload,
               bool zero_checksum) {
  size_t l4 = net::kUdpHeaderLen + payload.size();
  Frame f(net::kEthHeaderLen + net::kIpv4HeaderLen + l4);
  net::WriteEthHeader(f.data(), dst.mac, src.mac, net::kEthTypeIpv4);
  net::Ipv4Fields ip;
  ip.src_ip = src.ip;
  ip.dst_ip = dst.ip;
  ip.protocol = net::kIpProtoUdp;
  net::WriteIpv4Header(f.data() + net::kEthHeaderLen, ip, static_cast<uint16_t>(l4));
  uint8_t* u = f.data() + net::kEthHeaderLen + net::kIpv4HeaderLen;
  auto* uh = reinterpret_cast<net::UdpHeader*>(u);
  net::Store16(uh->src_port, src.port);
  net::Store16(uh->dst_port, dst.port);
  net::Store16(uh->length, static_cast<uint16_t>(l4));
  if (!payload.empty()) std::memcpy(u + net::kUdpHeaderLen, payload.data(), payload.size());
  if (!zero_checksum) {
    net::FinishL4Checksum(u, static_cast<uint16_t>(l4), net::kIpProtoUdp, src.ip, dst.ip);
  }
  if (f.size() < net::kMinEthFrameLen) f.resize(net::kMinEthFrameLen, 0);
  return f;
}

Frame BuildArp(uint16_t oper, const net::MacAddr& eth_dst, const net::MacAddr& sha,
               uint32_t spa, const net::MacAddr& tha, uint32_t tpa) {
  Frame f(net::kMinEthFrameLen);
  net::BuildArpFrame(f.data(), oper, eth_dst, sha, spa, tha, tpa);
  return f;
}

std::string FlagsToString(uint8_t fl) {
  std::string s;
  const char* names[] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"};
  for (int i = 0; i < 8; ++i) {
    if (fl & (1 << i)) {
      if (!s.empty()) s += "|";
      s += names[i];
    }
  }
  return s.empty() ? "none" : s;
}

::testing::AssertionResult ParseTcp(const Frame& frame, TcpView* out) {
  net::ParseStatus st =
      net::ParseFrame(frame.data(), frame.size(), net::L4Checksum::kVerify, &out->f);
  if (st != net::ParseStatus::kOk) {
    return ::testing::AssertionFailure() << "frame does not parse: " << net::ParseStatusName(st);
  }
  if (out->f.arp != nullptr || out->f.protocol != net::kIpProtoTcp) {
    return ::testing::AssertionFailure() << "not a TCP frame";
  }
  out->raw_options.assign(out->f.tcp_options, out->f.tcp_options + out->f.tcp_options_len);
  out->payload.assign(out->f.payload, out->f.payload + out->f.payload_len);
  tcp::ParseTcpOptions(out->f.tcp_options, out->f.tcp_options_len,
                       (out->f.tcp_flags & net::kTcpSyn) != 0, &out->opts);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult MatchTcp(const Frame& frame, const TcpExpect& e) {
  TcpView v;
  ::testing::AssertionResult r = ParseTcp(frame, &v);
  if (!r) return r;
  std::string err;
  auto check = [&](const char* what, auto want, auto got) {
    if (want != got) {
      err += std::string(" ") + what + ": want " + std::to_string(want) + " got " +
             std::to_string(got) + ";";
    }
  };
  if (e.flags && *e.flags != v.f.tcp_flags) {
    err += " flags: want " + FlagsToString(*e.flags) + " got " + FlagsToString(v.f.tcp_flags) + ";";
  }
  if (e.seq) check("seq", *e.seq, v.f.seq);
  if (e.ack) check("ack", *e.ack, v.f.ack);
  if (e.window) check("window", *e.window, v.f.window);
  if (e.payload_len) check("payload_len", *e.payload_len, v.f.payload_len);
  if (e.has_timestamp) check("has_timestamp", *e.has_timestamp, v.opts.has_timestamp);
  if (e.tsecr) check("tsecr", *e.tsecr, v.opts.tsecr);
  if (e.num_sack) check("num_sack", *e.num_sack, v.opts.num_sack);
  if (e.src_port) check("src_port", *e.src_port, v.f.src_port);
  if (e.dst_port) check("dst_port", *e.dst_port, v.f.dst_port);
  if (!err.empty()) {
    return ::testing::AssertionFailure()
           << "segment " << FlagsToString(v.f.tcp_flags) << " seq=" << v.f.seq
           << " ack=" << v.f.ack << " win=" << v.f.window << " len=" << v.f.payload_len
           << " mismatch:" << err;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace offload::testing
