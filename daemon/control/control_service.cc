#include "daemon/control/control_service.h"

#include <unistd.h>

#include <ctime>

#include "daemon/common/logging.h"
#include "daemon/control/status_mapping.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace control {
namespace {

v1::Transport ToProto(rules::Transport t) {
  return t == rules::Transport::kOs ? v1::TRANSPORT_OS : v1::TRANSPORT_OFFLOAD;
}

v1::Role ToProto(rules::Role r) {
  switch (r) {
    case rules::Role::kTcpServer: return v1::ROLE_TCP_SERVER;
    case rules::Role::kTcpClient: return v1::ROLE_TCP_CLIENT;
    case rules::Role::kUdpSender: return v1::ROLE_UDP_SENDER;
    case rules::Role::kUdpReceiver: return v1::ROLE_UDP_RECEIVER;
    case rules::Role::kUdpConnect: return v1::ROLE_UDP_CONNECT;
  }
  return v1::ROLE_UNSPECIFIED;
}

uint64_t UnixMillis() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace

ControlService::ControlService(DaemonInfo info, rules::RuleStore* rules, DataPlane* data_plane,
                               const PeerRegistry* peers)
    : info_(std::move(info)), rules_(rules), data_plane_(data_plane), peers_(peers) {}

v1::Rule ControlService::ToProto(const rules::Rule& rule, const std::string& origin,
                                 uint32_t position) {
  v1::Rule out;
  out.set_id(rule.id);
  out.set_position(position);
  out.set_text(rules::FormatRule(rule));
  out.set_transport(control::ToProto(rule.transport));
  out.set_role(control::ToProto(rule.role));
  out.set_program(rule.program);
  out.set_application_id(rule.app_id);
  out.set_origin(origin);
  return out;
}

absl::Status ControlService::Authorize(grpc::ServerContext* ctx, const std::string& action) const {
  std::optional<ucred> cred = peers_->Find(ctx->peer());
  if (!cred.has_value()) {
    return absl::PermissionDeniedError(action + ": cannot identify the caller (peer " +
                                       ctx->peer() + "); connect through the control socket");
  }
  absl::Status s = AuthorizeMutation(*cred, action);
  if (!s.ok()) {
    spdlog::warn("denied {} to pid {} uid {}", action, cred->pid, cred->uid);
  }
  return s;
}

grpc::Status ControlService::GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                                       v1::GetStatusResponse* resp) {
  DataPlane* dp = data_plane_.load();
  resp->set_version(kVersion);
  resp->set_abi_version(dp->AbiVersion());
  resp->set_pid(static_cast<uint32_t>(::getpid()));
  resp->set_uptime_ms(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - info_.started)
                                                .count()));
  *resp->mutable_config() = info_.config;
  resp->set_config_file(info_.config_file);
  for (v1::InterfaceStatus& i : dp->GetInterfaces()) *resp->add_interfaces() = std::move(i);
  std::shared_ptr<const rules::RuleSnapshot> snap = rules_->Snapshot();
  resp->set_rules_version(snap->version);
  resp->set_num_rules(static_cast<uint32_t>(snap->rules.size()));
  resp->set_num_sessions(static_cast<uint32_t>(dp->ListSessions().size()));
  resp->set_mode(info_.config.interfaces_size() == 0 ? "same-host" : "same-host+wire");
  return grpc::Status::OK;
}

grpc::Status ControlService::ListRules(grpc::ServerContext*, const v1::ListRulesRequest*,
                                       v1::ListRulesResponse* resp) {
  std::shared_ptr<const rules::RuleSnapshot> snap = rules_->Snapshot();
  for (size_t i = 0; i < snap->rules.size(); ++i) {
    *resp->add_rules() = ToProto(snap->rules[i], snap->origins[i], static_cast<uint32_t>(i + 1));
  }
  resp->set_version(snap->version);
  resp->set_rules_file(rules_->rules_file());
  return grpc::Status::OK;
}

grpc::Status ControlService::AddRule(grpc::ServerContext* ctx, const v1::AddRuleRequest* req,
                                     v1::AddRuleResponse* resp) {
  if (absl::Status s = Authorize(ctx, "add-rule"); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<rules::Rule> rule =
      rules_->Add(req->line(), req->position(), req->persist(), req->program(),
                  req->application_id());
  if (!rule.ok()) return ToGrpcStatus(rule.status());
  std::shared_ptr<const rules::RuleSnapshot> snap = rules_->Snapshot();
  uint32_t position = 0;
  for (size_t i = 0; i < snap->rules.size(); ++i) {
    if (snap->rules[i].id == rule->id) position = static_cast<uint32_t>(i + 1);
  }
  *resp->mutable_rule() = ToProto(*rule, "runtime", position);
  resp->set_version(snap->version);
  spdlog::info("rule {} added at position {}{}: {}", rule->id, position,
               req->persist() ? " (persisted)" : "", rules::FormatRule(*rule));
  return grpc::Status::OK;
}

grpc::Status ControlService::DeleteRule(grpc::ServerContext* ctx,
                                        const v1::DeleteRuleRequest* req,
                                        v1::DeleteRuleResponse* resp) {
  if (absl::Status s = Authorize(ctx, "del-rule"); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = rules_->Delete(req->id(), req->persist()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  resp->set_version(rules_->Snapshot()->version);
  spdlog::info("rule {} deleted{}", req->id(), req->persist() ? " (persisted)" : "");
  return grpc::Status::OK;
}

grpc::Status ControlService::ReloadRules(grpc::ServerContext* ctx, const v1::ReloadRulesRequest*,
                                         v1::ReloadRulesResponse* resp) {
  if (absl::Status s = Authorize(ctx, "reload"); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<size_t> n = rules_->Reload();
  if (!n.ok()) return ToGrpcStatus(n.status());
  resp->set_num_rules(static_cast<uint32_t>(*n));
  resp->set_version(rules_->Snapshot()->version);
  resp->set_rules_file(rules_->rules_file());
  spdlog::info("reloaded {} rules from {}", *n, rules_->rules_file());
  return grpc::Status::OK;
}

grpc::Status ControlService::SetThreadOffload(grpc::ServerContext* ctx,
                                              const v1::SetThreadOffloadRequest* req,
                                              v1::SetThreadOffloadResponse*) {
  if (absl::Status s = Authorize(ctx, "thread-offload"); !s.ok()) return ToGrpcStatus(s);
  if (req->pid() == 0 || req->tid() == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "thread-offload needs a pid and a tid (both non-zero)");
  }
  return ToGrpcStatus(data_plane_.load()->SetThreadOffload(req->pid(), req->tid(),
                                                           req->offload()));
}

grpc::Status ControlService::GetThreadOffload(grpc::ServerContext*,
                                              const v1::GetThreadOffloadRequest* req,
                                              v1::GetThreadOffloadResponse* resp) {
  absl::StatusOr<v1::GetThreadOffloadResponse> r =
      data_plane_.load()->GetThreadOffload(req->pid(), req->tid());
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = *r;
  return grpc::Status::OK;
}

grpc::Status ControlService::ListSessions(grpc::ServerContext*, const v1::ListSessionsRequest*,
                                          v1::ListSessionsResponse* resp) {
  for (v1::Session& s : data_plane_.load()->ListSessions()) *resp->add_sessions() = std::move(s);
  return grpc::Status::OK;
}

grpc::Status ControlService::GetStats(grpc::ServerContext*, const v1::GetStatsRequest* req,
                                      v1::GetStatsResponse* resp) {
  DataPlane* dp = data_plane_.load();
  absl::StatusOr<std::vector<v1::ProcessStats>> procs = dp->GetStats(req->pid(), req->sockets());
  if (!procs.ok()) return ToGrpcStatus(procs.status());
  for (v1::ProcessStats& p : *procs) *resp->add_processes() = std::move(p);
  for (v1::EngineStats& e : dp->GetEngineStats()) *resp->add_engines() = std::move(e);
  for (v1::NicStats& n : dp->GetNicStats()) *resp->add_nics() = std::move(n);
  resp->set_taken_unix_ms(UnixMillis());
  return grpc::Status::OK;
}

grpc::Status ControlService::SetLogLevel(grpc::ServerContext* ctx,
                                         const v1::SetLogLevelRequest* req,
                                         v1::SetLogLevelResponse* resp) {
  if (absl::Status s = Authorize(ctx, "log-level"); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<spdlog::level::level_enum> level = ParseLogLevel(req->level());
  if (!level.ok()) return ToGrpcStatus(level.status());
  if (req->pid() != 0) {
    return ToGrpcStatus(data_plane_.load()->SetProcessLogLevel(req->pid(), req->level()));
  }
  resp->set_previous(LogLevelName(spdlog::default_logger()->level()));
  spdlog::default_logger()->set_level(*level);
  spdlog::info("log level set to {} (was {})", LogLevelName(*level), resp->previous());
  return grpc::Status::OK;
}

}  // namespace control
}  // namespace offload
