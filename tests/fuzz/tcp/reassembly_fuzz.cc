// libFuzzer entry point: out-of-order, overlapping and duplicate data
// segments (and a FIN) delivered in fuzzer-chosen order; afterwards every
// missing byte is delivered in order. The bytes the application reads must
// be exactly the stream, byte for byte, and the reassembly state must be
// empty (RFC 9293 3.10.7.4 seventh step, bounded reassembly).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "daemon/net/headers.h"
#include "tests/fuzz/tcp/tcp_fuzz_env.h"

namespace {

uint8_t StreamByte(uint32_t off) { return static_cast<uint8_t>(off * 131 + (off >> 8)); }

void CheckAt(bool ok, int line) {
  if (!ok) {
    std::fprintf(stderr, "reassembly_fuzz: check failed at line %d\n", line);
    std::abort();
  }
}
#define Check(x) CheckAt((x), __LINE__)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  offload::fuzz::TcpFuzzEnv env;
  const offload::tcp::Tcb* t = env.conn();
  if (t == nullptr) return 0;
  const uint32_t base = t->rcv_nxt;
  const uint32_t una = t->snd_una;
  constexpr uint32_t kStream = 12000;  // < the 16 KiB ring
  std::vector<uint8_t> payload(1400);
  std::vector<uint8_t> got;
  auto send = [&](uint32_t off, uint32_t len, bool fin) {
    for (uint32_t i = 0; i < len; ++i) payload[i] = StreamByte(off + i);
    env.Segment(false, 0, base + off, una,
                offload::net::kTcpAck | (fin ? offload::net::kTcpFin : 0), 65535, nullptr, 0,
                payload.data(), len);
    env.Drain();
    uint8_t buf[16384];
    uint32_t n = env.rx().AppRead(buf, sizeof(buf));
    got.insert(got.end(), buf, buf + n);
    if (n) env.s().TcpReceiveCredit(env.conn_id());
  };
  for (size_t i = 0; i + 4 <= size && i < 4 * 200; i += 4) {
    uint32_t off = (uint32_t{data[i]} << 8 | data[i + 1]) % kStream;
    uint32_t len = 1 + (uint32_t{data[i + 2]} << 8 | data[i + 3]) % 1400;
    if (off + len > kStream) len = kStream - off;
    send(off, len, off + len == kStream && (data[i + 3] & 1));
  }
  // Fill every hole in order.
  for (uint32_t off = 0; off < kStream; off += 1000) {
    send(off, off + 1000 > kStream ? kStream - off : 1000, off + 1000 >= kStream);
  }
  if (got.size() != kStream) {
    std::fprintf(stderr, "got %zu rcv_nxt-base=%u ooo=%zu state=%s free=%u\n", got.size(),
                 env.conn() ? env.conn()->rcv_nxt - base : 0, env.conn() ? env.conn()->ooo.size() : 0,
                 env.conn() ? offload::tcp::TcpStateName(env.conn()->state) : "-", env.conn() ? env.conn()->rx.free() : 0);
  }
  Check(got.size() == kStream);
  for (uint32_t i = 0; i < kStream; ++i) Check(got[i] == StreamByte(i));
  t = env.conn();
  Check(t != nullptr && t->ooo.empty());
  Check(t->rcv_nxt == base + kStream + 1);  // the FIN was consumed once
  return 0;
}
