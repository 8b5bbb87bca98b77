// ControlService: the offload.v1.Control gRPC service.
//
// Routes rule calls to the RuleStore and data-path calls to a DataPlane.
// Mutating calls are authorized with the caller's SO_PEERCRED (PeerRegistry).
//
// Thread safety: called concurrently from gRPC threads; everything it touches
// is thread-safe. The pointed-to objects must outlive the service.

#ifndef OFFLOAD_DAEMON_CONTROL_CONTROL_SERVICE_H_
#define OFFLOAD_DAEMON_CONTROL_CONTROL_SERVICE_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "daemon/control/data_plane.h"
#include "daemon/control/peer_auth.h"
#include "daemon/rules/rule_store.h"
#include "offload/v1/control.grpc.pb.h"

namespace offload {
namespace control {

inline constexpr char kVersion[] = "0.1.0";

// Facts about the running daemon that GetStatus reports.
struct DaemonInfo {
  v1::DaemonConfig config;       // effective (defaults applied)
  std::string config_file;       // "" = built-in defaults
  std::chrono::steady_clock::time_point started;
};

class ControlService final : public v1::Control::Service {
 public:
  // `data_plane` may be replaced later with SetDataPlane (e.g. once the
  // session manager is up); all pointers must outlive the service.
  ControlService(DaemonInfo info, rules::RuleStore* rules, DataPlane* data_plane,
                 const PeerRegistry* peers);

  void SetDataPlane(DataPlane* data_plane) { data_plane_.store(data_plane); }

  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::GetStatusRequest* req,
                         v1::GetStatusResponse* resp) override;
  grpc::Status ListRules(grpc::ServerContext* ctx, const v1::ListRulesRequest* req,
                         v1::ListRulesResponse* resp) override;
  grpc::Status AddRule(grpc::ServerContext* ctx, const v1::AddRuleRequest* req,
                       v1::AddRuleResponse* resp) override;
  grpc::Status DeleteRule(grpc::ServerContext* ctx, const v1::DeleteRuleRequest* req,
                          v1::DeleteRuleResponse* resp) override;
  grpc::Status ReloadRules(grpc::ServerContext* ctx, const v1::ReloadRulesRequest* req,
                           v1::ReloadRulesResponse* resp) override;
  grpc::Status SetThreadOffload(grpc::ServerContext* ctx, const v1::SetThreadOffloadRequest* req,
                                v1::SetThreadOffloadResponse* resp) override;
  grpc::Status GetThreadOffload(grpc::ServerContext* ctx, const v1::GetThreadOffloadRequest* req,
                                v1::GetThreadOffloadResponse* resp) override;
  grpc::Status ListSessions(grpc::ServerContext* ctx, const v1::ListSessionsRequest* req,
                            v1::ListSessionsResponse* resp) override;
  grpc::Status GetStats(grpc::ServerContext* ctx, const v1::GetStatsRequest* req,
                        v1::GetStatsResponse* resp) override;
  grpc::Status SetLogLevel(grpc::ServerContext* ctx, const v1::SetLogLevelRequest* req,
                           v1::SetLogLevelResponse* resp) override;

  // Converts one table entry to its API form (1-based position).
  static v1::Rule ToProto(const rules::Rule& rule, const std::string& origin, uint32_t position);

 private:
  // OK when the caller of `ctx` may perform `action`.
  absl::Status Authorize(grpc::ServerContext* ctx, const std::string& action) const;

  const DaemonInfo info_;
  rules::RuleStore* const rules_;
  std::atomic<DataPlane*> data_plane_;
  const PeerRegistry* const peers_;
};

}  // namespace control
}  // namespace offload

#endif  // OFFLOAD_DAEMON_CONTROL_CONTROL_SERVICE_H_
