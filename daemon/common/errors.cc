#include "daemon/common/errors.h"

#include <cerrno>
#include <cstring>

#include <string>

namespace offload {

absl::StatusCode ErrnoToCode(int err) {
  switch (err) {
    case 0: return absl::StatusCode::kOk;
    case ENOENT: case ESRCH: case ENODEV: case ENXIO: return absl::StatusCode::kNotFound;
    case EACCES: case EPERM: return absl::StatusCode::kPermissionDenied;
    case EEXIST: case EADDRINUSE: return absl::StatusCode::kAlreadyExists;
    case EINVAL: case ENAMETOOLONG: case E2BIG: return absl::StatusCode::kInvalidArgument;
    case ENOMEM: case ENOSPC: case EMFILE: case ENFILE: case ENOBUFS:
      return absl::StatusCode::kResourceExhausted;
    case EAGAIN: case EBUSY: case ECONNREFUSED: case ECONNRESET: case EPIPE:
      return absl::StatusCode::kUnavailable;
    case ETIMEDOUT: return absl::StatusCode::kDeadlineExceeded;
    case ENOSYS: case EOPNOTSUPP: return absl::StatusCode::kUnimplemented;
    default: return absl::StatusCode::kInternal;
  }
}

absl::Status ErrnoStatus(int err, std::string_view what) {
  return absl::Status(ErrnoToCode(err), std::string(what) + ": " + std::strerror(err));
}

absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), std::string(context) + ": " + std::string(status.message()));
}

}  // namespace offload
