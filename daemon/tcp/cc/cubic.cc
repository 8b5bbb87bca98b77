// CUBIC congestion control, RFC 9438 (C = 0.4, beta_cubic = 0.7, fast
// convergence, Reno-friendly region). Window arithmetic in segments as the
// RFC states it; cwnd is stored in bytes.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "daemon/tcp/cc/cc.h"
#include "daemon/tcp/tcb.h"

namespace offload::tcp {
namespace {

constexpr double kC = 0.4;
constexpr double kBeta = 0.7;
// RFC 9438 4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta).
constexpr double kAlpha = 3.0 * (1.0 - kBeta) / (1.0 + kBeta);

struct CubicState {
  double w_max = 0;        // segments, before the last reduction
  double k = 0;            // seconds
  double origin = 0;       // segments
  double w_est = 0;        // Reno-friendly estimate, segments
  double cwnd_epoch = 0;   // segments
  uint64_t epoch_start_ns = 0;
  bool in_epoch = false;
};
static_assert(sizeof(CubicState) <= kCcPrivSize);

CubicState* State(Tcb* tcb) { return reinterpret_cast<CubicState*>(tcb->cc_priv); }

void CubicInit(Tcb* tcb) { new (tcb->cc_priv) CubicState(); }

void CubicCongAvoid(Tcb* tcb, uint32_t acked, uint64_t now_ns) {
  CubicState* s = State(tcb);
  if (tcb->snd_cwnd < tcb->snd_ssthresh) {
    acked = SlowStart(tcb, acked);
    if (acked == 0) return;
  }
  const double mss = tcb->snd_mss;
  double cwnd = tcb->snd_cwnd / mss;
  if (!s->in_epoch) {
    // RFC 9438 4.2: a new congestion-avoidance epoch.
    s->in_epoch = true;
    s->epoch_start_ns = now_ns;
    s->cwnd_epoch = cwnd;
    s->w_est = cwnd;
    if (s->w_max > cwnd) {
      s->k = std::cbrt((s->w_max - cwnd) / kC);  // RFC 9438 eq. 2
      s->origin = s->w_max;
    } else {
      s->k = 0;
      s->origin = cwnd;
    }
  }
  double segs_acked = acked / mss;
  // RFC 9438 4.3: W_est grows by alpha_cubic per cwnd of acked segments.
  s->w_est += kAlpha * segs_acked / cwnd;
  double t = static_cast<double>(now_ns - s->epoch_start_ns) / 1e9;
  double rtt = tcb->srtt_us > 0 ? tcb->srtt_us / 1e6 : 0.0;
  double w_t = kC * std::pow(t - s->k, 3) + s->origin;
  double target;
  if (w_t < s->w_est) {
    target = s->w_est;  // Reno-friendly region (4.3)
  } else {
    // RFC 9438 4.4/4.5: aim at W_cubic(t + RTT), clamped to [cwnd, 1.5 cwnd].
    double w_next = kC * std::pow(t + rtt - s->k, 3) + s->origin;
    target = std::clamp(w_next, cwnd, 1.5 * cwnd);
  }
  if (target > cwnd) {
    // cwnd += (target - cwnd) / cwnd per acked segment.
    double inc = (target - cwnd) / cwnd * segs_acked;
    double new_cwnd = std::min(cwnd + inc, target);
    uint64_t bytes = static_cast<uint64_t>(new_cwnd * mss);
    tcb->snd_cwnd = static_cast<uint32_t>(
        std::min<uint64_t>(std::max<uint64_t>(bytes, tcb->snd_cwnd), kMaxCwnd));
  }
}

uint32_t CubicSsthresh(Tcb* tcb) {
  CubicState* s = State(tcb);
  const double mss = tcb->snd_mss;
  double cwnd = tcb->snd_cwnd / mss;
  // RFC 9438 4.7 fast convergence.
  if (cwnd < s->w_max) {
    s->w_max = cwnd * (1.0 + kBeta) / 2.0;
  } else {
    s->w_max = cwnd;
  }
  s->in_epoch = false;
  // RFC 9438 4.6: ssthresh = cwnd * beta_cubic (at least 2 segments).
  double ss = std::max(cwnd * kBeta, 2.0);
  return static_cast<uint32_t>(ss * mss);
}

void CubicEvent(Tcb* tcb, CcEvent ev, uint64_t) {
  if (ev == CcEvent::kRto || ev == CcEvent::kExitRecovery) {
    State(tcb)->in_epoch = false;
  }
}

}  // namespace

const CcOps kCubicOps = {"cubic", CubicInit, CubicCongAvoid, CubicSsthresh,
                         CubicEvent};

}  // namespace offload::tcp
