// Fuzz target for the offload-cmd script parser: any text either parses to
// steps within the documented limits or fails with "name:line:column:
// expected ..."; the pair checker never misbehaves on what parses.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "tools/cmd/script.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offload::tools::cmd;
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Script> s = ParseScript(text, "f.txt");
  if (!s.ok()) {
    Check(absl::IsInvalidArgument(s.status()));
    Check(absl::StartsWith(s.status().message(), "f.txt:"));
    Check(absl::StrContains(s.status().message(), ": expected "));
    return 0;
  }
  int last_line = 0;
  for (const Step& step : s->steps) {
    Check(step.size >= 1 && step.size <= kMaxSize);
    Check(step.repeat >= 1 && step.repeat <= kMaxRepeat);
    Check(step.size <= kMaxLineBytes / step.repeat);
    Check(step.line > last_line);
    last_line = step.line;
    (void)DescribeStep(*s, step);
  }
  absl::Status pair = CheckPair(*s, *s);
  Check(pair.ok() || absl::IsFailedPrecondition(pair));
  return 0;
}

extern const char* const kFuzzSeeds[] = {
    "# client\nsend 512 20 A\nrecv 64 1 z   # reply\n",
    "recv 1024 10 A\r\nsend 32 2 z\n\n",
    "send 67108864 1 x\n",
    "send 0 1 A",
    "recv 10 2 AB",
    "sned 1 1 a",
};
extern const size_t kNumFuzzSeeds = sizeof(kFuzzSeeds) / sizeof(kFuzzSeeds[0]);
