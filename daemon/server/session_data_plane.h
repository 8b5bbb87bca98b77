// SessionDataPlane: the control service's view of the same-host data path,
// served by the SessionManager.
//
// Thread safety: forwards to SessionManager, whose methods are thread-safe.

#ifndef OFFLOAD_DAEMON_SERVER_SESSION_DATA_PLANE_H_
#define OFFLOAD_DAEMON_SERVER_SESSION_DATA_PLANE_H_

#include <string>
#include <vector>

#include "daemon/control/data_plane.h"
#include "daemon/session/session_manager.h"
#include "daemon/shm/abi.h"

namespace offload {
namespace server {

class SessionDataPlane : public control::DataPlane {
 public:
  // `sessions` must outlive this object.
  explicit SessionDataPlane(session::SessionManager* sessions) : sessions_(sessions) {}

  uint32_t AbiVersion() const override { return shm::kAbiVersion; }
  std::vector<v1::Session> ListSessions() const override { return sessions_->ListSessions(); }
  absl::StatusOr<std::vector<v1::ProcessStats>> GetStats(uint32_t pid,
                                                         bool sockets) const override {
    return sessions_->GetStats(pid, sockets);
  }
  std::vector<v1::EngineStats> GetEngineStats() const override { return {}; }
  std::vector<v1::NicStats> GetNicStats() const override { return {}; }
  std::vector<v1::InterfaceStatus> GetInterfaces() const override { return {}; }
  absl::Status SetThreadOffload(uint32_t pid, uint32_t tid, bool offload) override {
    return sessions_->SetThreadOffload(pid, tid, offload);
  }
  absl::StatusOr<v1::GetThreadOffloadResponse> GetThreadOffload(uint32_t pid,
                                                                uint32_t tid) const override {
    return sessions_->GetThreadOffload(pid, tid);
  }
  absl::Status SetProcessLogLevel(uint32_t pid, const std::string& level) override {
    return sessions_->SetProcessLogLevel(pid, level);
  }

 private:
  session::SessionManager* const sessions_;
};

}  // namespace server
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SERVER_SESSION_DATA_PLANE_H_
