// OFFLOADD_FAULT parser (see header).

#include "daemon/nic/fault_spec.h"

#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace offload::nic {
namespace {

constexpr char kKeys[] =
    "rx_loss, tx_loss, loss, rx_reorder, tx_reorder, reorder, reorder_depth, "
    "reorder_us, seed";

absl::Status BadToken(absl::string_view token, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(
      kFaultEnvVar, ": bad token '", token, "': ", what,
      " (example: ", kFaultEnvVar, "=\"rx_loss=0.01,tx_reorder=0.02\")"));
}

// Digits, '.', and an optional exponent only: no "nan", "inf", sign or spaces.
bool ParseProbability(absl::string_view s, double* out) {
  if (s.empty() || s.find_first_not_of("0123456789.eE-+") != absl::string_view::npos ||
      s[0] == '-' || s[0] == '+') {
    return false;
  }
  double v;
  if (!absl::SimpleAtod(s, &v) || !std::isfinite(v) || v < 0 || v > 1) return false;
  *out = v;
  return true;
}

bool ParseUint(absl::string_view s, uint64_t lo, uint64_t hi, uint64_t* out) {
  if (s.empty() || s.find_first_not_of("0123456789") != absl::string_view::npos) {
    return false;
  }
  uint64_t v;
  if (!absl::SimpleAtoi(s, &v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace

std::string FaultSpec::ToString() const {
  return absl::StrCat("rx_loss=", rx.loss, ",rx_reorder=", rx.reorder, ",tx_loss=", tx.loss,
                      ",tx_reorder=", tx.reorder, ",reorder_depth=", reorder_depth,
                      ",reorder_us=", reorder_us, ",seed=", seed);
}

absl::StatusOr<FaultSpec> ParseFaultSpec(absl::string_view text) {
  FaultSpec spec;
  if (text.empty()) return spec;
  for (absl::string_view token : absl::StrSplit(text, ',')) {
    if (token.empty()) return BadToken(token, "empty token (stray comma?)");
    size_t eq = token.find('=');
    if (eq == absl::string_view::npos) return BadToken(token, "expected key=value");
    absl::string_view key = token.substr(0, eq);
    absl::string_view value = token.substr(eq + 1);
    double p = 0;
    uint64_t u = 0;
    std::vector<double*> probs;
    if (key == "rx_loss") {
      probs = {&spec.rx.loss};
    } else if (key == "tx_loss") {
      probs = {&spec.tx.loss};
    } else if (key == "loss") {
      probs = {&spec.rx.loss, &spec.tx.loss};
    } else if (key == "rx_reorder") {
      probs = {&spec.rx.reorder};
    } else if (key == "tx_reorder") {
      probs = {&spec.tx.reorder};
    } else if (key == "reorder") {
      probs = {&spec.rx.reorder, &spec.tx.reorder};
    } else if (key == "reorder_depth") {
      if (!ParseUint(value, 1, FaultSpec::kMaxReorderDepth, &u)) {
        return BadToken(token, absl::StrCat("expected an integer frame count in 1..",
                                            FaultSpec::kMaxReorderDepth));
      }
      spec.reorder_depth = static_cast<uint32_t>(u);
      continue;
    } else if (key == "reorder_us") {
      if (!ParseUint(value, 1, FaultSpec::kMaxReorderUs, &u)) {
        return BadToken(token, absl::StrCat("expected microseconds in 1..",
                                            FaultSpec::kMaxReorderUs));
      }
      spec.reorder_us = static_cast<uint32_t>(u);
      continue;
    } else if (key == "seed") {
      if (!ParseUint(value, 0, UINT64_MAX, &u)) {
        return BadToken(token, "expected an unsigned 64-bit integer");
      }
      spec.seed = u;
      continue;
    } else {
      return BadToken(token, absl::StrCat("unknown key '", key, "'; keys are ", kKeys));
    }
    if (!ParseProbability(value, &p)) {
      return BadToken(token, "expected a probability between 0 and 1 (e.g. 0.01)");
    }
    for (double* d : probs) *d = p;
  }
  return spec;
}

}  // namespace offload::nic
