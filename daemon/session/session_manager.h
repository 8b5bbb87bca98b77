// SessionManager: the daemon's side of liboffload.so.
//
// It serves the attach socket <run_dir>/engine.sock (SOCK_SEQPACKET). Every
// process that uses liboffload.so attaches once: the manager reads its
// SO_PEERCRED, creates its arena (a sealed memfd, shm/abi.h ArenaHeader),
// registers its doorbell eventfd and keeps the connection as the liveness
// signal. It is composed of
//   * TcpBroker (tcp_broker.h): offloaded listeners, channels of same-host
//     connections, connections on the wire, sockets shared between
//     processes (followed with SocketWatch), adoptions;
//   * DoorbellRegistry (doorbells.h): every process's and engine's
//     doorbell, for wake-ups across processes;
//   * UdpBroker (udp_broker.h): offloaded UDP receivers, same-host
//     datagram rings, engine endpoints on the wire;
//   * statistics and run-time control (session_control.cc): rule and
//     thread-offload tables published in every arena, per-socket counters.
// After a connection is set up no daemon is on its data path; a process
// that goes away is cleaned up (its peers see EOF or ECONNRESET as with
// Linux).
//
// Everything received from a process (messages, fds, shared memory) is
// copied and validated; a process cannot crash the daemon or reach another
// process's connections or arena.
//
// Thread safety: all public methods are thread-safe. Start() runs one
// event-loop thread; the control plane may call the accessors from any
// thread.

#ifndef OFFLOAD_DAEMON_SESSION_SESSION_MANAGER_H_
#define OFFLOAD_DAEMON_SESSION_SESSION_MANAGER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/rules/rule_store.h"
#include "daemon/session/doorbells.h"
#include "daemon/session/id_allocator.h"
#include "daemon/session/protocol.h"
#include "shm/abi.h"
#include "shm/unique_fd.h"
#include "daemon/wire/wire_plane.h"
#include "offload/v1/config.pb.h"
#include "offload/v1/control.pb.h"

namespace offload {
namespace session {

struct Session;
class SocketWatch;
class TcpBroker;
class UdpBroker;

class SessionManager {
 public:
  // `rules` may be null (no rule publication: everything is offloaded);
  // otherwise it must outlive the manager. Validates the sizes in `config`
  // (INVALID_ARGUMENT says which field).
  static absl::StatusOr<std::unique_ptr<SessionManager>> Create(
      const offload::v1::DaemonConfig& config, rules::RuleStore* rules);
  ~SessionManager();

  // Serves TCP on the wire through `wire` (null: same-host only). Call
  // before Start(); `wire` must outlive the manager's Stop().
  void SetWirePlane(wire::WirePlane* wire);

  // Binds <run_dir>/engine.sock (removing a stale one; refusing one a live
  // daemon answers on: FAILED_PRECONDITION) and starts the event loop.
  absl::Status Start();
  // Detaches every process (their pipes see EOF), removes engine.sock and
  // joins the event loop. Idempotent.
  void Stop();

  std::vector<offload::v1::Session> ListSessions() const;
  // pid 0 = every attached process. NOT_FOUND for a pid that is not attached.
  absl::StatusOr<std::vector<offload::v1::ProcessStats>> GetStats(uint32_t pid,
                                                                  bool sockets) const;
  // NOT_FOUND for an unknown pid; RESOURCE_EXHAUSTED when the process's
  // thread table is full.
  absl::Status SetThreadOffload(uint32_t pid, uint32_t tid, bool offload);
  absl::StatusOr<offload::v1::GetThreadOffloadResponse> GetThreadOffload(uint32_t pid,
                                                                         uint32_t tid) const;
  // `level`: trace, debug, info, warn, error, critical, off.
  absl::Status SetProcessLogLevel(uint32_t pid, const std::string& level);

  // Copies `rules` (version `version`) into every arena and remembers it for
  // processes that attach later. Called by the RuleStore subscription.
  void PublishRules(const std::vector<rules::Rule>& rules, uint64_t version);

  const std::string& engine_socket_path() const { return socket_path_; }
  size_t NumSessionsForTest() const;

 private:
  SessionManager(const offload::v1::DaemonConfig& config, rules::RuleStore* rules);

  void Loop();
  void Accept() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ServeSession(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Handle(Session* s, Request& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status HandleHello(Session* s, Request& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Detach(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RepublishPorts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRules(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PostEvent(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Process doorbell `id` is gone (unregistered, or its process detached):
  // every other session that holds a copy is told to close it.
  void RetireDoorbell(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Same-host channel `id` was retired (TcpBroker::ReapChannels): the
  // sessions it was sent to are told to unmap it.
  void RetireChannel(uint32_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Session* FindByPid(uint32_t pid) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void FillSession(const Session& s, offload::v1::Session* out);
  // Sets or clears a TCP / UDP port bit in every attached arena.
  void PublishTcpPort(uint16_t port_net, bool on) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishUdpPort(uint16_t port_net, bool on) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const offload::v1::DaemonConfig config_;
  rules::RuleStore* const rules_;
  const std::string socket_path_;
  uint32_t pipe_capacity_ = 0;
  uint32_t dgram_capacity_ = 0;
  uint32_t max_sockets_ = 0;
  uint64_t arena_bytes_ = 0;
  uint32_t fence_mode_ = 0;  // shm::kFence*; OFFLOAD_ASYMMETRIC_FENCES=1 in the environment

  mutable absl::Mutex mu_;
  shm::UniqueFd listen_fd_ ABSL_GUARDED_BY(mu_);
  shm::UniqueFd epoll_fd_ ABSL_GUARDED_BY(mu_);
  shm::UniqueFd stop_fd_;  // eventfd; written by Stop()
  std::map<int, std::unique_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);  // by attach fd
  uint64_t next_serial_ ABSL_GUARDED_BY(mu_) = 1;
  DoorbellRegistry doorbells_;
  std::unique_ptr<SocketWatch> watch_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<TcpBroker> tcp_ ABSL_GUARDED_BY(mu_);
  bool deferred_ ABSL_GUARDED_BY(mu_) = false;  // tcp_ has work to retry
  std::unique_ptr<UdpBroker> udp_ ABSL_GUARDED_BY(mu_);
  // Ids of channels, listeners, UDP endpoints and datagram rings
  // (continued across restarts from RUN_DIR/ids).
  IdAllocator ids_ ABSL_GUARDED_BY(mu_);
  std::vector<rules::Rule> published_rules_ ABSL_GUARDED_BY(mu_);
  uint64_t rules_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;

  // Wire path (the brokers hold it too).
  wire::WirePlane* wire_ = nullptr;
  uint32_t wire_addr_ = 0;   // offloaded interface address, network order
  uint64_t wire_netns_ = 0;  // only processes in the daemon's namespace use it
};

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_SESSION_MANAGER_H_
