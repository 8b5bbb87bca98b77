// The daemon's side of the attach protocol (shm/abi.h Msg): sending
// and receiving one SEQPACKET record with SCM_RIGHTS, and the validation of
// everything a client sends. A client can send anything: every request is
// copied out of the receive buffer, then checked before it is used.
//
// Thread safety: free functions, no shared state.

#ifndef OFFLOAD_DAEMON_SESSION_PROTOCOL_H_
#define OFFLOAD_DAEMON_SESSION_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shm/abi.h"
#include "shm/unique_fd.h"

namespace offload {
namespace session {

// A request received from a client, validated.
struct Request {
  shm::Msg msg;
  std::vector<shm::UniqueFd> fds;
};

// Number of fds a request of `type` must carry.
int ExpectedFds(shm::MsgType type);

// Validates the raw bytes of one record (`len` bytes at `data`) carrying
// `num_fds` descriptors. On success returns a copy of the message with its
// strings NUL-terminated. INVALID_ARGUMENT says which field is wrong.
absl::StatusOr<shm::Msg> ValidateRequest(const void* data, size_t len, int num_fds);

// Receives one record from `fd` (non-blocking). Returns NOT_FOUND-free
// statuses: UNAVAILABLE on EOF/reset (the process is gone),
// RESOURCE_EXHAUSTED when nothing is pending (EAGAIN), INVALID_ARGUMENT for a
// malformed record (fds received with it are closed).
absl::StatusOr<Request> ReceiveRequest(int fd);

// Sends `msg` with `fds` (borrowed) on `fd` without blocking. Returns false
// if the peer cannot take it now or is gone.
bool SendMsg(int fd, const shm::Msg& msg, const int* fds, int num_fds);

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_PROTOCOL_H_
