// SessionManager: construction (ring sizes, the brokers and their callbacks),
// the attach socket, and start and stop. The event loop and the attach
// protocol are in session_manager.cc.

#include <arpa/inet.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/common/errors.h"
#include "daemon/session/session_internal.h"
#include "daemon/session/session_manager.h"
#include "daemon/session/socket_watch.h"
#include "daemon/session/tcp_broker.h"
#include "daemon/session/udp_broker.h"
#include "shm/fence.h"
#include "shm/wakeup.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

namespace {

uint32_t RoundUpPow2(uint32_t v) {
  uint32_t p = 4096;
  while (p < v && p < (1u << 30)) p <<= 1;
  return p;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SessionManager>> SessionManager::Create(
    const offload::v1::DaemonConfig& config, rules::RuleStore* rules) {
  if (config.rcvbuf() > (64u << 20) || config.sndbuf() > (64u << 20)) {
    return absl::InvalidArgumentError("rcvbuf/sndbuf above 64 MiB; lower them in offloadd.conf");
  }
  auto m = std::unique_ptr<SessionManager>(new SessionManager(config, rules));
  if (m->arena_bytes_ < shm::ArenaBytesFor(16)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "arena_bytes ", config.arena_bytes(), " is too small; it must hold at least ",
        shm::ArenaBytesFor(16), " bytes"));
  }
  m->stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!m->stop_fd_.valid()) return ErrnoStatus(errno, "eventfd");
  {
    absl::MutexLock l(&m->mu_);
    absl::StatusOr<std::unique_ptr<SocketWatch>> watch = SocketWatch::Create();
    if (!watch.ok()) return watch.status();
    m->watch_ = std::move(*watch);
    SessionManager* self = m.get();
    TcpBroker::Env env;
    env.doorbells = &self->doorbells_;
    env.watch = self->watch_.get();
    env.pipe_capacity = self->pipe_capacity_;
    env.publish_port = [self](uint16_t port, bool on) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      self->PublishTcpPort(port, on);
    };
    env.next_id = [self]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->ids_.Next(); };
    env.channel_gone = [self](uint32_t id) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      self->RetireChannel(id);
    };
    m->tcp_ = std::make_unique<TcpBroker>(std::move(env));
    UdpBroker::Env udp_env;
    udp_env.max_sockets = self->max_sockets_;
    udp_env.dgram_capacity = self->dgram_capacity_;
    udp_env.publish_port = [self](uint16_t port, bool on) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      self->PublishUdpPort(port, on);
    };
    udp_env.next_id = [self]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->ids_.Next(); };
    udp_env.post_event = [self](Session* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      self->PostEvent(s);
    };
    m->udp_ = std::make_unique<UdpBroker>(std::move(udp_env));
  }
  if (rules != nullptr) {
    SessionManager* self = m.get();
    auto snap = rules->Snapshot();
    self->PublishRules(snap->rules, snap->version);
    rules->Subscribe([self](std::shared_ptr<const rules::RuleSnapshot> s) {
      self->PublishRules(s->rules, s->version);
    });
  }
  return m;
}

SessionManager::SessionManager(const offload::v1::DaemonConfig& config, rules::RuleStore* rules)
    : config_(config),
      rules_(rules),
      socket_path_(absl::StrCat(config.run_dir().empty() ? "/run/offloadd" : config.run_dir(),
                                "/engine.sock")),
      ids_(socket_path_.substr(0, socket_path_.rfind('/')) + "/ids") {
  pipe_capacity_ = RoundUpPow2(std::max(config.rcvbuf(), config.sndbuf()) == 0
                                   ? 262144
                                   : std::max(config.rcvbuf(), config.sndbuf()));
  dgram_capacity_ = std::max<uint32_t>(pipe_capacity_, 262144);
  max_sockets_ = config.max_sockets_per_process() == 0 ? 131072 : config.max_sockets_per_process();
  const uint64_t cap = config.arena_bytes() == 0 ? (64ull << 20) : config.arena_bytes();
  while (max_sockets_ > 16 && shm::ArenaBytesFor(max_sockets_) > cap) max_sockets_ /= 2;
  arena_bytes_ = std::min<uint64_t>(cap, shm::ArenaBytesFor(max_sockets_));
  const char* asym = getenv("OFFLOAD_ASYMMETRIC_FENCES");
  fence_mode_ = asym != nullptr && std::string(asym) == "1" && shm::MembarrierAvailable()
                    ? shm::kFenceAsymmetric
                    : shm::kFenceFull;
}

void SessionManager::SetWirePlane(wire::WirePlane* wire) {
  absl::MutexLock l(&mu_);
  wire_ = wire;
  wire_addr_ = wire != nullptr ? htonl(wire->local_ip()) : 0;
  wire_netns_ = NetnsOf(0);
  tcp_->SetWirePlane(wire, wire_addr_, wire_netns_);
  udp_->SetWirePlane(wire, wire_addr_, wire_netns_);
  if (wire != nullptr) {
    for (uint32_t e = 0; e < wire->num_engines(); ++e) {
      doorbells_.AddEngine(e, wire->DoorbellFd(e));
    }
    wire->SetAppWaker(&doorbells_);
  }
}

SessionManager::~SessionManager() {
  Stop();
  absl::MutexLock l(&mu_);
  tcp_.reset();
  udp_.reset();
}

absl::Status SessionManager::Start() {
  absl::MutexLock l(&mu_);
  if (started_) return absl::FailedPreconditionError("session manager already started");
  const std::string dir = socket_path_.substr(0, socket_path_.rfind('/'));
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("creating run directory ", dir));
  }
  struct sockaddr_un sun = {};
  sun.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(sun.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("run_dir too long for a unix socket path: ", socket_path_));
  }
  std::memcpy(sun.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  {
    // A stale socket from a crashed daemon is removed; a live one is not.
    shm::UniqueFd probe(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (connect(probe.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "another offloadd is serving ", socket_path_, "; stop it or use another --run-dir"));
    }
    if (errno == ECONNREFUSED) unlink(socket_path_.c_str());
  }
  shm::UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket(AF_UNIX, SOCK_SEQPACKET)");
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind ", socket_path_));
  }
  chmod(socket_path_.c_str(), 0666);  // same-host offload needs no privileges
  if (listen(fd.get(), 256) != 0) return ErrnoStatus(errno, "listen on engine.sock");
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_.valid()) return ErrnoStatus(errno, "epoll_create1");
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = fd.get();
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd.get(), &ev);
  ev.data.fd = stop_fd_.get();
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, stop_fd_.get(), &ev);
  ev.data.fd = watch_->fd();
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, watch_->fd(), &ev);
  listen_fd_ = std::move(fd);
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
  spdlog::info("same-host offload: attach socket {} (arena {} bytes, {} sockets/process, "
               "pipe rings {} bytes)",
               socket_path_, arena_bytes_, max_sockets_, pipe_capacity_);
  return absl::OkStatus();
}

void SessionManager::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (!started_) return;
    started_ = false;
  }
  shm::Kick(stop_fd_.get());
  if (thread_.joinable()) thread_.join();
  absl::MutexLock l(&mu_);
  while (!sessions_.empty()) Detach(sessions_.begin()->first);
  // Same-host pipes keep working between their processes without us (no
  // daemon on their data path).
  listen_fd_.reset();
  epoll_fd_.reset();
  unlink(socket_path_.c_str());
}

}  // namespace session
}  // namespace offload
