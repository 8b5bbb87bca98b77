// Daemon: the whole of offloadd — run-dir lock, rules, data plane (same-host
// sessions, and the wire path when `interfaces` names NICs), control
// service — and its signal-driven lifetime.
//
//   SIGTERM, SIGINT  clean shutdown: sessions closed, sockets removed
//   SIGHUP           reload the rules file (errors are logged, old rules kept)
//
// Thread safety: Create and Run are called from the main thread, before any
// other thread exists (Create blocks the handled signals in every thread).

#ifndef OFFLOAD_DAEMON_SERVER_DAEMON_H_
#define OFFLOAD_DAEMON_SERVER_DAEMON_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/common/unique_fd.h"
#include "daemon/control/control_server.h"
#include "daemon/control/control_service.h"
#include "daemon/control/data_plane.h"
#include "daemon/rules/rule_store.h"
#include "daemon/session/session_manager.h"
#include "daemon/wire/wire_plane.h"
#include "offload/v1/config.pb.h"

namespace offload {
namespace server {

class Daemon {
 public:
  // `config` must be validated and defaulted. Takes the run-dir lock (a second
  // daemon on the same run dir fails with FAILED_PRECONDITION naming the pid
  // that holds it), loads the rules, starts the data plane and the control
  // service.
  static absl::StatusOr<std::unique_ptr<Daemon>> Create(const v1::DaemonConfig& config,
                                                        const std::string& config_file);
  ~Daemon();

  // Serves until SIGTERM/SIGINT. Returns OK after a clean shutdown.
  absl::Status Run();

 private:
  Daemon() = default;
  absl::Status LockRunDir();
  void Shutdown();

  v1::DaemonConfig config_;
  UniqueFd lock_fd_;
  UniqueFd signal_fd_;
  std::unique_ptr<rules::RuleStore> rules_;
  std::unique_ptr<wire::WirePlane> wire_;  // null: same-host offload only
  std::unique_ptr<session::SessionManager> sessions_;
  std::unique_ptr<control::DataPlane> data_plane_;
  control::PeerRegistry peers_;
  std::unique_ptr<control::ControlService> service_;
  std::unique_ptr<control::ControlServer> control_;
};

}  // namespace server
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SERVER_DAEMON_H_
