// Fuzz target for the OFFLOADD_FAULT parser: any text either parses into a
// spec whose canonical form parses back to itself, or is refused with an
// InvalidArgument that names OFFLOADD_FAULT and a bad token.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "daemon/nic/fault_spec.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using offload::nic::FaultSpec;
  using offload::nic::ParseFaultSpec;
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<FaultSpec> spec = ParseFaultSpec(text);
  if (!spec.ok()) {
    Check(spec.status().code() == absl::StatusCode::kInvalidArgument);
    Check(spec.status().message().find("OFFLOADD_FAULT: bad token '") == 0);
    return 0;
  }
  Check(spec->rx.loss >= 0 && spec->rx.loss <= 1 && spec->tx.loss >= 0 && spec->tx.loss <= 1);
  Check(spec->rx.reorder >= 0 && spec->rx.reorder <= 1);
  Check(spec->tx.reorder >= 0 && spec->tx.reorder <= 1);
  Check(spec->reorder_depth >= 1 && spec->reorder_depth <= FaultSpec::kMaxReorderDepth);
  Check(spec->reorder_us >= 1 && spec->reorder_us <= FaultSpec::kMaxReorderUs);
  const std::string canonical = spec->ToString();
  absl::StatusOr<FaultSpec> again = ParseFaultSpec(canonical);
  Check(again.ok());
  Check(again->ToString() == canonical);
  return 0;
}

extern const char* const kFuzzSeeds[] = {
    "",
    "rx_loss=0.01,tx_reorder=0.02,reorder_depth=3,reorder_us=200",
    "loss=0.05,reorder=1,seed=18446744073709551615",
    "rx_loss=1e-07,tx_loss=0.5",
    "rx_loss=abc",
    "rx_loss=0.1,,tx_loss=0.1",
    "reorder_depth=65",
    "seed=18446744073709551616",
    "rx_loss",
    "=",
    "rx_loss=nan",
};
extern const size_t kNumFuzzSeeds = sizeof(kFuzzSeeds) / sizeof(kFuzzSeeds[0]);
