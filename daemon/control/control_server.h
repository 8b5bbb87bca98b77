// ControlServer: serves ControlService on <run dir>/control.sock.
//
// Owns the listening Unix socket and an accept thread. Each accepted
// connection's SO_PEERCRED is recorded in the PeerRegistry before the fd is
// handed to gRPC, so handlers can authorize by uid/gid/groups.
//
// Socket permissions: `mode` (default 0660); group `offload` when that group
// exists, else the daemon's own group. Thread safety: Start/Stop from one
// thread.

#ifndef OFFLOAD_DAEMON_CONTROL_CONTROL_SERVER_H_
#define OFFLOAD_DAEMON_CONTROL_CONTROL_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "daemon/common/unique_fd.h"
#include "daemon/control/peer_auth.h"
#include "grpcpp/server.h"

namespace offload {
namespace control {

class ControlServer {
 public:
  // Binds `socket_path` (a stale socket from a crashed daemon is replaced;
  // the caller holds the run-dir lock) and starts serving `service`.
  // `registry` must be the one `service` consults. Both must outlive this.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(const std::string& socket_path,
                                                              unsigned mode,
                                                              grpc::Service* service,
                                                              PeerRegistry* registry);
  ~ControlServer();  // Stops and removes the socket.

  void Stop();
  const std::string& path() const { return path_; }

 private:
  ControlServer() = default;
  void AcceptLoop();

  std::string path_;
  PeerRegistry* registry_ = nullptr;
  std::unique_ptr<grpc::Server> server_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;  // eventfd: wakes the accept loop for shutdown
  std::thread acceptor_;
  bool stopped_ = false;
};

}  // namespace control
}  // namespace offload

#endif  // OFFLOAD_DAEMON_CONTROL_CONTROL_SERVER_H_
