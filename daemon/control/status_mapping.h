// The one mapping from absl::Status to grpc::Status (and back, for clients).
// Both use the canonical error space, so codes map one to one and the message
// is passed through unchanged: users see the daemon's own wording.

#ifndef OFFLOAD_DAEMON_CONTROL_STATUS_MAPPING_H_
#define OFFLOAD_DAEMON_CONTROL_STATUS_MAPPING_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace offload {
namespace control {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace control
}  // namespace offload

#endif  // OFFLOAD_DAEMON_CONTROL_STATUS_MAPPING_H_
