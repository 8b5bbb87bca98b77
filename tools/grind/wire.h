// offload-grind wire format and the deterministic variation schedule
// (buffer splits and read lengths) shared by client and server. Internal to
// //tools/grind; see grind.h for the protocol overview.
//
// Thread safety: constants and pure functions.

#ifndef OFFLOAD_TOOLS_GRIND_WIRE_H_
#define OFFLOAD_TOOLS_GRIND_WIRE_H_

#include <stddef.h>
#include <stdint.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/grind/grind.h"

namespace offload::tools::grind {

inline constexpr size_t kHandshakeSize = 30;
inline constexpr size_t kVerdictSize = 31;
// Datagrams per UDP batch: small enough that a batch always fits the default
// receive buffer, so loopback never drops.
inline constexpr uint64_t kMaxUdpBatch = 32;
// A datagram that has not arrived after this long is reported lost.
inline constexpr absl::Duration kUdpLossTimeout = absl::Seconds(3);

enum class VerdictCode : uint8_t {
  kOk = 0,
  kMismatch = 1,   // a byte differs
  kLost = 2,       // a datagram did not arrive
  kBadLength = 3,  // a datagram arrived with the wrong length (in `offset`)
};

// Sent by the server after each UDP batch.
enum class BatchAck : uint8_t { kContinue = 0, kStop = 1 };

// Result of checking one size step.
struct Verdict {
  VerdictCode code = VerdictCode::kOk;
  uint32_t size = 0;
  uint64_t bytes = 0;    // bytes checked
  uint64_t offset = 0;   // absolute stream offset of the first bad byte
  uint64_t message = 0;  // message index within the size step
  uint8_t expected = 0;
  uint8_t got = 0;
};

// splitmix64 finaliser: cheap, well mixed; drives splits and read lengths.
uint64_t Mix(uint64_t x);

// Where the sender splits message `i` of `size` bytes (0 or `size` = not
// split).
size_t SendSplit(uint64_t i, uint32_t size);

// Where the UDP receiver splits its iovecs for datagram `i`.
size_t RecvSplit(uint64_t i, uint32_t size);

// Length the TCP receiver asks for on read `j` (1 .. 2 x size).
size_t RecvLen(uint64_t j, uint32_t size);

// Writes kHandshakeSize bytes describing `plan` to `p`.
void EncodeHandshake(const Plan& plan, uint8_t* p);

// Parses and validates kHandshakeSize untrusted bytes. Errors:
// InvalidArgument saying what is wrong (magic, version, plan limits).
absl::StatusOr<Plan> DecodeHandshake(const uint8_t* p);

// Writes kVerdictSize bytes to `p`.
void EncodeVerdict(const Verdict& v, uint8_t* p);

// Parses kVerdictSize bytes. Errors: Internal for an unknown code.
absl::StatusOr<Verdict> DecodeVerdict(const uint8_t* p);

std::string TransportName(Transport t);

// OK for kOk, else DataLoss with the human-readable description (offset,
// message, byte, expected and received values). `step_base` is the stream
// offset where the verdict's size step began.
absl::Status VerdictStatus(const Verdict& v, uint64_t step_base);

}  // namespace offload::tools::grind

#endif  // OFFLOAD_TOOLS_GRIND_WIRE_H_
