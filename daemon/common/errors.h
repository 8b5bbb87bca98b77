// Helpers that turn errno and context into absl::Status values.
//
// Every error that reaches a user should say what failed, on what, and why
// (the errno text), so callers pass the operation and the object.

#ifndef OFFLOAD_DAEMON_COMMON_ERRORS_H_
#define OFFLOAD_DAEMON_COMMON_ERRORS_H_

#include <string_view>

#include "absl/status/status.h"

namespace offload {

// Maps an errno value to the closest canonical code (ENOENT -> NOT_FOUND,
// EACCES/EPERM -> PERMISSION_DENIED, EEXIST -> ALREADY_EXISTS, ...).
absl::StatusCode ErrnoToCode(int err);

// "<what>: <strerror(err)>" with the mapped code.
absl::Status ErrnoStatus(int err, std::string_view what);

// Returns `status` with `context` prepended to its message ("context: msg").
absl::Status Annotate(const absl::Status& status, std::string_view context);

}  // namespace offload

#endif  // OFFLOAD_DAEMON_COMMON_ERRORS_H_
