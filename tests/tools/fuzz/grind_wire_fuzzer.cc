// Fuzz target for the offload-grind wire decoders, which the server runs on
// bytes from an untrusted client: any handshake either decodes to a plan
// that passes ValidatePlan and re-encodes to the same bytes, or is rejected
// with InvalidArgument; any verdict decodes or is rejected, and describing
// it never misbehaves.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "tools/grind/grind.h"
#include "tools/grind/wire.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offload::tools::grind;
  if (size >= kHandshakeSize) {
    absl::StatusOr<Plan> plan = DecodeHandshake(data);
    if (plan.ok()) {
      Check(ValidatePlan(*plan).ok());
      uint8_t again[kHandshakeSize];
      EncodeHandshake(*plan, again);
      Check(std::memcmp(again, data, kHandshakeSize) == 0);
      Check(MessagesPerSize(plan->start, plan->wraps) >= 1);
    } else {
      Check(absl::IsInvalidArgument(plan.status()));
      Check(!plan.status().message().empty());
    }
  }
  if (size >= kVerdictSize) {
    absl::StatusOr<Verdict> v = DecodeVerdict(data);
    if (v.ok()) {
      const uint64_t base = size > kVerdictSize ? data[kVerdictSize] : 0;
      absl::Status s = VerdictStatus(*v, base);
      Check(s.ok() == (v->code == VerdictCode::kOk));
      uint8_t again[kVerdictSize];
      EncodeVerdict(*v, again);
      Check(std::memcmp(again, data, kVerdictSize) == 0);
    }
  }
  return 0;
}

// Text seeds only reach the rejection paths (the replay harness treats
// seeds as C strings); the binary handshakes and verdicts are in
// corpus/grind_wire.
extern const char* const kFuzzSeeds[] = {
    "GET / HTTP/1.0\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "OGR1\x01\x02xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
};
extern const size_t kNumFuzzSeeds = sizeof(kFuzzSeeds) / sizeof(kFuzzSeeds[0]);
