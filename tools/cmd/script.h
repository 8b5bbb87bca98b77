// offload-cmd scripts: a communication pattern, one step per line, after
// VMMC's sockcmd.
//
//   # comment (also after a step)
//   send <size> <repeat> <char>   send <repeat> messages of <size> bytes,
//                                 every byte equal to <char>
//   recv <size> <repeat> <char>   receive <repeat> x <size> bytes and check
//                                 that every byte equals <char>
//
// TCP is a byte stream, so only the bytes must agree between the two scripts,
// not the message boundaries: "recv 1024 10 A" on one side matches
// "send 512 20 A" on the other.
//
// Thread safety: plain values and pure functions.

#ifndef OFFLOAD_TOOLS_CMD_SCRIPT_H_
#define OFFLOAD_TOOLS_CMD_SCRIPT_H_

#include <stdint.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace offload::tools::cmd {

inline constexpr uint64_t kMaxSize = 64ull << 20;       // bytes per message
inline constexpr uint64_t kMaxRepeat = 1000000000ull;   // messages per line
inline constexpr uint64_t kMaxLineBytes = 1ull << 40;   // size x repeat

enum class Op { kSend, kRecv };

struct Step {
  Op op = Op::kSend;
  uint64_t size = 0;
  uint64_t repeat = 0;
  char fill = 0;
  int line = 0;  // 1-based line in the script file

  uint64_t bytes() const { return size * repeat; }
};

struct Script {
  std::string name;  // file name, used in messages as name:line
  std::vector<Step> steps;
};

// Parses script `text`; `name` is used in error messages.
// Errors: InvalidArgument "name:line:column: expected ..., got '...'".
absl::StatusOr<Script> ParseScript(absl::string_view text,
                                   absl::string_view name);

// Reads and parses the file at `path`. Errors: NotFound / PermissionDenied
// for an unreadable file, else as ParseScript.
absl::StatusOr<Script> LoadScript(const std::string& path);

// Checks, without any network, that `client` and `server` describe the same
// bytes in both directions (what one sends the other receives, char for
// char). Returns FailedPrecondition naming both lines at the first
// difference. Ordering deadlocks (both sides sending more than the socket
// buffers hold) are not detected here; the run times out instead.
absl::Status CheckPair(const Script& client, const Script& server);

// "send 1024 10 'A'" style description of a step, for messages.
std::string DescribeStep(const Script& script, const Step& step);

// 'A' for printable characters, 0x07 otherwise.
std::string ShowChar(char c);

}  // namespace offload::tools::cmd

#endif  // OFFLOAD_TOOLS_CMD_SCRIPT_H_
