// offload-grind wire format; see wire.h.

#include "tools/grind/wire.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace offload::tools::grind {
namespace {

constexpr uint32_t kMagic = 0x3152474F;  // "OGR1"
constexpr uint8_t kVersion = 1;

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

std::string Describe(const Verdict& v, uint64_t step_base) {
  switch (v.code) {
    case VerdictCode::kOk:
      return "";
    case VerdictCode::kMismatch:
      return absl::StrFormat(
          "MISMATCH: size %u, message %u, byte %u of the message (stream "
          "offset %u): expected 0x%02x, got 0x%02x",
          v.size, v.message, (v.offset - step_base) % std::max(v.size, 1u),
          v.offset, v.expected, v.got);
    case VerdictCode::kLost:
      return absl::StrFormat(
          "LOST: size %u, datagram %u did not arrive within %d s", v.size,
          v.message, absl::ToInt64Seconds(kUdpLossTimeout));
    case VerdictCode::kBadLength:
      return absl::StrFormat(
          "MISMATCH: size %u, datagram %u arrived with %u bytes (message "
          "boundary not preserved)",
          v.size, v.message, v.offset);
  }
  return "";
}

}  // namespace

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

size_t SendSplit(uint64_t i, uint32_t size) {
  return size <= 1 ? size : static_cast<size_t>(Mix(i) % (size + 1ull));
}

size_t RecvLen(uint64_t j, uint32_t size) {
  return 1 + static_cast<size_t>(Mix(j ^ 0xA5A5A5A5ull) % (2ull * size));
}

void EncodeHandshake(const Plan& plan, uint8_t* p) {
  Put32(p, kMagic);
  p[4] = kVersion;
  p[5] = plan.transport == Transport::kUdp ? 1 : 0;
  Put32(p + 6, plan.start);
  Put32(p + 10, plan.end);
  Put32(p + 14, plan.increment);
  Put32(p + 18, plan.wraps);
  Put64(p + 22, plan.seed);
}

absl::StatusOr<Plan> DecodeHandshake(const uint8_t* p) {
  if (Get32(p) != kMagic) {
    return absl::InvalidArgumentError(
        "peer is not an offload-grind client (bad magic)");
  }
  if (p[4] != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "peer speaks grind protocol version ", p[4], ", this server ",
        kVersion));
  }
  if (p[5] > 1) return absl::InvalidArgumentError("bad transport byte");
  Plan plan;
  plan.transport = p[5] == 1 ? Transport::kUdp : Transport::kTcp;
  plan.start = Get32(p + 6);
  plan.end = Get32(p + 10);
  plan.increment = Get32(p + 14);
  plan.wraps = Get32(p + 18);
  plan.seed = Get64(p + 22);
  if (absl::Status s = ValidatePlan(plan); !s.ok()) return s;
  return plan;
}

void EncodeVerdict(const Verdict& v, uint8_t* p) {
  p[0] = static_cast<uint8_t>(v.code);
  Put32(p + 1, v.size);
  Put64(p + 5, v.bytes);
  Put64(p + 13, v.offset);
  Put64(p + 21, v.message);
  p[29] = v.expected;
  p[30] = v.got;
}

absl::StatusOr<Verdict> DecodeVerdict(const uint8_t* p) {
  if (p[0] > 3) return absl::InternalError("server sent a bad verdict code");
  Verdict v;
  v.code = static_cast<VerdictCode>(p[0]);
  v.size = Get32(p + 1);
  v.bytes = Get64(p + 5);
  v.offset = Get64(p + 13);
  v.message = Get64(p + 21);
  v.expected = p[29];
  v.got = p[30];
  return v;
}

std::string TransportName(Transport t) {
  return t == Transport::kUdp ? "udp" : "tcp";
}

absl::Status VerdictStatus(const Verdict& v, uint64_t step_base) {
  if (v.code == VerdictCode::kOk) return absl::OkStatus();
  return absl::DataLossError(Describe(v, step_base));
}

size_t RecvSplit(uint64_t i, uint32_t size) {
  return static_cast<size_t>(Mix(i ^ 0x77) % (size + 1ull));
}

}  // namespace offload::tools::grind
