// SessionDataPlane: the control service's view of the data path: sessions,
// processes and thread toggles from the SessionManager (same-host path),
// interfaces, engines and NIC queues from the WirePlane when the daemon
// offloads interfaces (none otherwise: never made-up rows).
//
// Thread safety: forwards to SessionManager and WirePlane, whose methods
// used here are thread-safe.

#ifndef OFFLOAD_DAEMON_SERVER_SESSION_DATA_PLANE_H_
#define OFFLOAD_DAEMON_SERVER_SESSION_DATA_PLANE_H_

#include <string>
#include <vector>

#include "daemon/control/data_plane.h"
#include "daemon/control/wire_stats.h"
#include "daemon/session/session_manager.h"
#include "shm/abi.h"
#include "daemon/wire/wire_plane.h"

namespace offload {
namespace server {

class SessionDataPlane : public control::DataPlane {
 public:
  // `sessions` and `wire` (null: no interface offloaded) must outlive this
  // object.
  explicit SessionDataPlane(session::SessionManager* sessions,
                            const wire::WirePlane* wire = nullptr)
      : sessions_(sessions), wire_(wire) {}

  uint32_t AbiVersion() const override { return shm::kAbiVersion; }
  std::vector<v1::Session> ListSessions() const override { return sessions_->ListSessions(); }
  absl::StatusOr<std::vector<v1::ProcessStats>> GetStats(uint32_t pid,
                                                         bool sockets) const override {
    return sessions_->GetStats(pid, sockets);
  }
  std::vector<v1::EngineStats> GetEngineStats() const override {
    return wire_ != nullptr ? control::ToProto(wire_->EngineStats()) : std::vector<v1::EngineStats>();
  }
  std::vector<v1::NicStats> GetNicStats() const override {
    return wire_ != nullptr ? control::ToProto(wire_->NicStats()) : std::vector<v1::NicStats>();
  }
  std::vector<v1::InterfaceStatus> GetInterfaces() const override {
    return wire_ != nullptr ? control::ToProto(wire_->Interfaces()) : std::vector<v1::InterfaceStatus>();
  }
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
  const wire::WirePlane* const wire_;
};

}  // namespace server
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SERVER_SESSION_DATA_PLANE_H_
