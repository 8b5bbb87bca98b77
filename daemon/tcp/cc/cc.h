// Pluggable congestion control, shaped like Linux's tcp_congestion_ops:
// per-algorithm hooks, per-connection private state inside the TCB.
//
// The core (tcp_input.cc) does loss detection and recovery (RFC 5681, 6582,
// 6675); an algorithm only decides how cwnd grows on ACKs and what ssthresh
// becomes after a loss. cwnd and ssthresh are in bytes.
#ifndef OFFLOAD_DAEMON_TCP_CC_CC_H_
#define OFFLOAD_DAEMON_TCP_CC_CC_H_

#include <cstdint>
#include <string_view>

namespace offload::tcp {

struct Tcb;

enum class CcEvent : uint8_t {
  kEnterRecovery,  // fast retransmit (loss detected by dupacks / SACK)
  kExitRecovery,
  kRto,            // retransmission timeout
};

struct CcOps {
  const char* name;
  // Initializes the private state (Tcb::cc_priv) for a new connection.
  void (*init)(Tcb* tcb);
  // An ACK acknowledged `acked` new bytes outside loss recovery.
  void (*cong_avoid)(Tcb* tcb, uint32_t acked, uint64_t now_ns);
  // Returns the slow-start threshold to use after a loss (bytes).
  uint32_t (*ssthresh)(Tcb* tcb);
  // Optional notification (may be null).
  void (*on_event)(Tcb* tcb, CcEvent ev, uint64_t now_ns);
};

extern const CcOps kRenoOps;   // RFC 5681 / RFC 6582 NewReno
extern const CcOps kCubicOps;  // RFC 9438 CUBIC

// Returns the algorithm called `name` ("reno", "cubic"), or nullptr.
const CcOps* FindCongestionControl(std::string_view name);

// RFC 5681 3.1 slow start with Linux's byte counting: grows cwnd by the bytes
// acknowledged, up to ssthresh. Returns the acked bytes left over for
// congestion avoidance.
uint32_t SlowStart(Tcb* tcb, uint32_t acked);

// RFC 5681 3.1 congestion avoidance: about one SMSS per cwnd of data acked.
void RenoCongestionAvoidance(Tcb* tcb, uint32_t acked);

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_CC_CC_H_
