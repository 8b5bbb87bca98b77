// What the fault-injecting NIC decorator (fault_nic.h) does, and its parser
// for the OFFLOADD_FAULT environment variable.
//
// OFFLOADD_FAULT is a comma-separated list of key=value tokens:
//   rx_loss=P, tx_loss=P         drop a received / transmitted frame with
//                                probability P (0..1)
//   loss=P                       both directions
//   rx_reorder=Q, tx_reorder=Q   hold a frame with probability Q and release
//                                it after reorder_depth later frames or
//                                reorder_us microseconds, whichever first
//   reorder=Q                    both directions
//   reorder_depth=K              1..64 (default 3)
//   reorder_us=T                 1..1000000 (default 200)
//   seed=N                       PRNG seed, 0..2^64-1 (default 1)
// Example: OFFLOADD_FAULT="rx_loss=0.01,tx_reorder=0.02,reorder_depth=3".

#ifndef OFFLOAD_DAEMON_NIC_FAULT_SPEC_H_
#define OFFLOAD_DAEMON_NIC_FAULT_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace offload::nic {

inline constexpr char kFaultEnvVar[] = "OFFLOADD_FAULT";

struct FaultDirectionSpec {
  double loss = 0;     // probability of dropping a frame
  double reorder = 0;  // probability of holding a frame back
};

struct FaultSpec {
  static constexpr uint32_t kMaxReorderDepth = 64;
  static constexpr uint32_t kMaxReorderUs = 1000000;

  FaultDirectionSpec rx;
  FaultDirectionSpec tx;
  uint32_t reorder_depth = 3;  // K: later frames that overtake a held one
  uint32_t reorder_us = 200;   // T: longest a frame is held
  uint64_t seed = 1;

  // True if any probability is non-zero.
  bool active() const {
    return rx.loss > 0 || rx.reorder > 0 || tx.loss > 0 || tx.reorder > 0;
  }
  // "rx_loss=0.01,rx_reorder=0,tx_loss=0,..." (every field; parses back).
  std::string ToString() const;
};

// Parses `text` (the OFFLOADD_FAULT grammar above). An empty string is an
// inactive spec. Errors: InvalidArgument naming the offending token and what
// was expected (unknown key, missing '=', value not a number or out of range,
// empty token).
absl::StatusOr<FaultSpec> ParseFaultSpec(absl::string_view text);

}  // namespace offload::nic

#endif  // OFFLOAD_DAEMON_NIC_FAULT_SPEC_H_
