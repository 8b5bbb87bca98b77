// DataPlane: what the control service asks of the data path (attached
// processes, their sockets and counters, thread toggles, engines, NICs).
//
// The session manager implements it; until a data path is running the daemon
// uses NoDataPlane, which reports that nothing is attached (never made-up
// data). Implementations must be thread-safe: gRPC calls arrive on gRPC's
// threads.

#ifndef OFFLOAD_DAEMON_CONTROL_DATA_PLANE_H_
#define OFFLOAD_DAEMON_CONTROL_DATA_PLANE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "offload/v1/control.pb.h"

namespace offload {
namespace control {

class DataPlane {
 public:
  virtual ~DataPlane() = default;

  // Shared-memory ABI version spoken with liboffload (0 = none).
  virtual uint32_t AbiVersion() const = 0;
  virtual std::vector<v1::Session> ListSessions() const = 0;
  // pid 0 = every process. NOT_FOUND when `pid` is not attached.
  virtual absl::StatusOr<std::vector<v1::ProcessStats>> GetStats(uint32_t pid,
                                                                 bool sockets) const = 0;
  virtual std::vector<v1::EngineStats> GetEngineStats() const = 0;
  virtual std::vector<v1::NicStats> GetNicStats() const = 0;
  virtual std::vector<v1::InterfaceStatus> GetInterfaces() const = 0;
  // NOT_FOUND when the pid is not attached or the tid is not one of its threads.
  virtual absl::Status SetThreadOffload(uint32_t pid, uint32_t tid, bool offload) = 0;
  virtual absl::StatusOr<v1::GetThreadOffloadResponse> GetThreadOffload(uint32_t pid,
                                                                        uint32_t tid) const = 0;
  virtual absl::Status SetProcessLogLevel(uint32_t pid, const std::string& level) = 0;
};

// The data plane of a daemon with nothing attached.
class NoDataPlane : public DataPlane {
 public:
  uint32_t AbiVersion() const override { return 0; }
  std::vector<v1::Session> ListSessions() const override { return {}; }
  absl::StatusOr<std::vector<v1::ProcessStats>> GetStats(uint32_t pid,
                                                         bool sockets) const override {
    if (pid != 0) return NotAttached(pid);
    return std::vector<v1::ProcessStats>();
  }
  std::vector<v1::EngineStats> GetEngineStats() const override { return {}; }
  std::vector<v1::NicStats> GetNicStats() const override { return {}; }
  std::vector<v1::InterfaceStatus> GetInterfaces() const override { return {}; }
  absl::Status SetThreadOffload(uint32_t pid, uint32_t, bool) override { return NotAttached(pid); }
  absl::StatusOr<v1::GetThreadOffloadResponse> GetThreadOffload(uint32_t pid,
                                                                uint32_t) const override {
    return NotAttached(pid);
  }
  absl::Status SetProcessLogLevel(uint32_t pid, const std::string&) override {
    return NotAttached(pid);
  }

 private:
  static absl::Status NotAttached(uint32_t pid) {
    return absl::NotFoundError("process " + std::to_string(pid) +
                               " is not attached to offloadd (`offloadctl stats` lists the "
                               "attached processes)");
  }
};

}  // namespace control
}  // namespace offload

#endif  // OFFLOAD_DAEMON_CONTROL_DATA_PLANE_H_
