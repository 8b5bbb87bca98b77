// NewReno window growth (RFC 5681 3.1) and the registry of algorithms.
#include <algorithm>

#include "daemon/tcp/cc/cc.h"
#include "daemon/tcp/tcb.h"

namespace offload::tcp {

uint32_t SlowStart(Tcb* tcb, uint32_t acked) {
  uint64_t cwnd = uint64_t{tcb->snd_cwnd} + acked;
  if (cwnd <= tcb->snd_ssthresh) {
    tcb->snd_cwnd = static_cast<uint32_t>(std::min<uint64_t>(cwnd, kMaxCwnd));
    return 0;
  }
  uint32_t used = tcb->snd_ssthresh > tcb->snd_cwnd ? tcb->snd_ssthresh - tcb->snd_cwnd : 0;
  tcb->snd_cwnd = std::max(tcb->snd_cwnd, tcb->snd_ssthresh);
  return acked - std::min(acked, used);
}

void RenoCongestionAvoidance(Tcb* tcb, uint32_t acked) {
  // Byte counting: cwnd += SMSS once a full cwnd of data has been acked
  // (RFC 5681 eq. 3 without the per-ACK rounding error; RFC 3465).
  tcb->snd_cwnd_cnt += acked;
  while (tcb->snd_cwnd_cnt >= tcb->snd_cwnd && tcb->snd_cwnd < kMaxCwnd) {
    tcb->snd_cwnd_cnt -= tcb->snd_cwnd;
    tcb->snd_cwnd += tcb->snd_mss;
  }
}

namespace {

void RenoInit(Tcb*) {}

void RenoCongAvoid(Tcb* tcb, uint32_t acked, uint64_t) {
  if (tcb->snd_cwnd < tcb->snd_ssthresh) {
    acked = SlowStart(tcb, acked);
    if (acked == 0) return;
  }
  RenoCongestionAvoidance(tcb, acked);
}

uint32_t RenoSsthresh(Tcb* tcb) {
  // RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2 * SMSS).
  uint32_t flight = tcb->snd_max - tcb->snd_una;
  return std::max<uint32_t>(flight / 2, 2u * tcb->snd_mss);
}

}  // namespace

const CcOps kRenoOps = {"reno", RenoInit, RenoCongAvoid, RenoSsthresh, nullptr};

const CcOps* FindCongestionControl(std::string_view name) {
  if (name == "reno") return &kRenoOps;
  if (name == "cubic") return &kCubicOps;
  return nullptr;
}

}  // namespace offload::tcp
