// libFuzzer entry point: arbitrary sequences of peer segments (any flags,
// sequence/ack numbers near the interesting edges, raw options, payload),
// clock advances and application calls against a live Stack. Checks that
// nothing crashes (ASan/UBSan), every emitted frame is valid, and the TCB
// invariants hold after every step.
#include <cstdint>
#include <cstring>

#include "tests/fuzz/tcp/tcp_fuzz_env.h"

namespace {

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t U8() { return n ? (--n, *p++) : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() << 8 | U8()); }
  uint32_t U32() { return uint32_t{U16()} << 16 | U16(); }
  const uint8_t* Take(size_t* len) {
    if (*len > n) *len = n;
    const uint8_t* r = p;
    p += *len;
    n -= *len;
    return r;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  offload::fuzz::TcpFuzzEnv env;
  Reader r{data, size};
  uint8_t scratch[4096];
  for (int step = 0; step < 64 && r.n > 0; ++step) {
    uint8_t op = r.U8();
    const offload::tcp::Tcb* t = env.conn();
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {  // a segment on the connection, seq/ack near the edges
        uint8_t flags = r.U8();
        int32_t dseq = static_cast<int16_t>(r.U16());
        int32_t dack = static_cast<int16_t>(r.U16());
        uint16_t window = r.U16();
        size_t opt_len = r.U8() % 41;
        const uint8_t* opts = r.Take(&opt_len);
        size_t len = r.U16() % 1500;
        const uint8_t* payload = r.Take(&len);
        uint32_t rcv = t ? t->rcv_nxt : 0, una = t ? t->snd_una : 0;
        env.Segment(false, 0, rcv + dseq, una + dack, flags, window, opts, opt_len, payload, len);
        break;
      }
      case 3: {  // a segment to the listener from a chosen port
        uint16_t sport = r.U16();
        uint8_t flags = r.U8();
        uint32_t seq = r.U32(), ack = r.U32();
        size_t opt_len = r.U8() % 41;
        const uint8_t* opts = r.Take(&opt_len);
        env.Segment(true, sport, seq, ack, flags, r.U16(), opts, opt_len, nullptr, 0);
        break;
      }
      case 4:
        env.Advance(uint64_t{r.U16()} * 1'000'000 + r.U8());
        break;
      case 5: {  // application writes / reads
        uint16_t n = r.U16() % sizeof(scratch);
        std::memset(scratch, 'w', n);
        env.tx().AppWrite(scratch, n);
        env.s().TcpSend(env.conn_id(), r.U8() & 1);
        env.rx().AppRead(scratch, r.U16() % sizeof(scratch));
        env.s().TcpReceiveCredit(env.conn_id());
        break;
      }
      case 6: {  // socket options
        uint8_t which = r.U8() % 10;
        env.s().TcpSetOption(env.conn_id(), static_cast<offload::tcp::TcpOpt>(which), r.U16());
        if (r.U8() & 1) env.s().TcpSetCongestion(env.conn_id(), (r.U8() & 1) ? "reno" : "cubic");
        break;
      }
      case 7: {  // shutdown / close / bogus ring indices
        uint8_t what = r.U8() % 4;
        if (what == 0) env.s().TcpShutdown(env.conn_id(), false, true);
        if (what == 1) env.s().TcpClose(env.conn_id());
        if (what == 2) env.tx().indices().tail.store(r.U32());
        if (what == 3) env.rx().indices().head.store(r.U32());
        break;
      }
    }
    env.Drain();
    env.CheckInvariants();
  }
  return 0;
}
