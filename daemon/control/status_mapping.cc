#include "daemon/control/status_mapping.h"

#include <string>

namespace offload {
namespace control {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share the canonical numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

static_assert(static_cast<int>(absl::StatusCode::kPermissionDenied) ==
                  static_cast<int>(grpc::StatusCode::PERMISSION_DENIED),
              "canonical codes must agree");
static_assert(static_cast<int>(absl::StatusCode::kUnauthenticated) ==
                  static_cast<int>(grpc::StatusCode::UNAUTHENTICATED),
              "canonical codes must agree");

}  // namespace control
}  // namespace offload
