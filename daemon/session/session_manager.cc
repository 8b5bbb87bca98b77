// SessionManager: attach server, arenas, sessions, dispatch to the brokers.
// Statistics and run-time control live in session_control.cc. (Near 480
// lines: the event loop and the one switch over every attach message stay
// together so the protocol reads in one place; what a message does is in
// the brokers, ids in id_allocator.h.)

#include "daemon/session/session_manager.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>

#include "absl/strings/str_cat.h"
#include "daemon/common/errors.h"
#include "daemon/session/session_internal.h"
#include "daemon/session/socket_watch.h"
#include "daemon/session/id_allocator.h"
#include "daemon/session/tcp_broker.h"
#include "daemon/session/udp_broker.h"
#include "shm/fence.h"
#include "shm/wakeup.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

using shm::Msg;
using shm::MsgType;

namespace {

constexpr size_t kMaxSessions = 4096;
constexpr int kMaxRequestsPerWakeup = 64;

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

void SessionManager::PublishTcpPort(uint16_t port_net, bool on) {
  for (auto& [fd, other] : sessions_) {
    if (other->hello_done) SetPortWord(other->header()->tcp_ports, ntohs(port_net), on);
  }
}

void SessionManager::PublishUdpPort(uint16_t port_net, bool on) {
  for (auto& [fd, other] : sessions_) {
    if (other->hello_done) SetPortWord(other->header()->udp_ports, ntohs(port_net), on);
  }
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

void SessionManager::Loop() {
  int epfd;
  {
    absl::MutexLock l(&mu_);
    epfd = epoll_fd_.get();
  }
  struct epoll_event evs[64];
  // Work a process's lock kept us from doing is retried this often.
  constexpr int kRetryMs = 10;
  bool retry = false;
  for (;;) {
    const int n = epoll_wait(epfd, evs, 64, retry ? kRetryMs : -1);
    if (n < 0 && errno != EINTR) {
      spdlog::error("session loop: epoll_wait: {}", strerror(errno));
      return;
    }
    absl::MutexLock l(&mu_);
    if (!started_) return;
    if (deferred_) deferred_ = tcp_->RetryDeferred();
    for (int i = 0; i < n; ++i) {
      const int fd = evs[i].data.fd;
      if (fd == stop_fd_.get()) return;
      if (fd == listen_fd_.get()) {
        Accept();
        continue;
      }
      if (fd == watch_->fd()) {
        // Sockets released by every process that held them.
        watch_->Drain([this](int wd) ABSL_NO_THREAD_SAFETY_ANALYSIS { tcp_->OnReleased(wd); });
        deferred_ = true;
        continue;
      }
      auto it = sessions_.find(fd);
      if (it == sessions_.end()) continue;
      if (evs[i].events & (EPOLLHUP | EPOLLERR)) {
        // Serve what is still queued first: a process may close right after
        // its last request.
        ServeSession(it->second.get());
        if (sessions_.count(fd)) Detach(fd);
        continue;
      }
      ServeSession(it->second.get());
    }
    if (deferred_) deferred_ = tcp_->RetryDeferred();
    retry = deferred_;
  }
}

void SessionManager::Accept() {
  for (int i = 0; i < 64; ++i) {
    shm::UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;
    if (sessions_.size() >= kMaxSessions) {
      spdlog::warn("refusing attach: {} sessions already", sessions_.size());
      continue;  // the process sees EOF and runs on the kernel
    }
    struct ucred cred = {};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) continue;
    auto s = std::make_unique<Session>();
    s->serial = next_serial_++;
    s->pid = cred.pid;
    s->uid = cred.uid;
    s->gid = cred.gid;
    s->netns = NetnsOf(cred.pid);
    s->program = CommOf(cred.pid);
    s->attached_unix_ms = NowUnixMs();
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd.get();
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) continue;
    const int key = fd.get();
    s->fd = std::move(fd);
    sessions_[key] = std::move(s);
  }
}

void SessionManager::ServeSession(Session* s) {
  const int key = s->fd.get();
  for (int i = 0; i < kMaxRequestsPerWakeup; ++i) {
    auto req = ReceiveRequest(key);
    if (!req.ok()) {
      if (absl::IsResourceExhausted(req.status())) return;  // drained
      if (!absl::IsUnavailable(req.status())) {
        spdlog::warn("pid {}: dropping session: {}", s->pid, req.status().ToString());
      }
      Detach(key);
      return;
    }
    absl::Status st = Handle(s, *req);
    if (!st.ok()) {
      spdlog::warn("pid {}: dropping session: {}", s->pid, st.ToString());
      Detach(key);
      return;
    }
  }
}

absl::Status SessionManager::Handle(Session* s, Request& req) {
  const Msg& m = req.msg;
  if (!s->hello_done && m.type != MsgType::kHello) {
    return absl::InvalidArgumentError("request before hello");
  }
  switch (m.type) {
    case MsgType::kHello:
      return HandleHello(s, req);
    case MsgType::kTcpListen:
      tcp_->Listen(s, req);
      return absl::OkStatus();
    case MsgType::kTcpConnect:
      tcp_->Connect(s, req);
      return absl::OkStatus();
    case MsgType::kMapChannel:
      tcp_->MapChannel(s, req);
      return absl::OkStatus();
    case MsgType::kShare:
      tcp_->Share(s, req);
      return absl::OkStatus();
    case MsgType::kAdopt:
      tcp_->Adopt(s, req);
      return absl::OkStatus();
    case MsgType::kFreeSlot:
      tcp_->FreeSlotRequest(s, m);
      deferred_ = true;
      return absl::OkStatus();
    case MsgType::kRegisterDoorbell:
    case MsgType::kRegisterHintedDoorbell:
      if (m.type == MsgType::kRegisterHintedDoorbell && s->doorbells.size() < 4096 &&
          !shm::MapHintRing(req.fds[1].get()).valid()) {
        ReplyStatus(s, m, EINVAL);
      } else if (s->doorbells.size() >= 4096 ||
                 !doorbells_.AddProcess(m.value64, std::move(req.fds[0]),
                                        m.type == MsgType::kRegisterHintedDoorbell
                                            ? std::move(req.fds[1])
                                            : shm::UniqueFd())) {
        ReplyStatus(s, m, EEXIST);  // the thread picks another id
      } else {
        s->doorbells.push_back(m.value64);
        ReplyStatus(s, m, 0);
      }
      return absl::OkStatus();
    case MsgType::kUnregisterDoorbell:
      for (size_t i = 0; i < s->doorbells.size(); ++i) {
        if (s->doorbells[i] == m.value64) {
          RetireDoorbell(m.value64);
          s->doorbells[i] = s->doorbells.back();
          s->doorbells.pop_back();
          break;
        }
      }
      return absl::OkStatus();
    case MsgType::kDoorbell: {
      Msg r = {};
      r.type = MsgType::kDoorbellFd;
      r.seq = m.seq;
      r.value64 = m.value64;
      if (!doorbells_.WithFd(m.value64, [&](int fd, int hints_fd) {
            const int fds[2] = {fd, hints_fd};
            SendMsg(s->fd.get(), r, fds, hints_fd >= 0 ? 2 : 1);
          })) {
        ReplyStatus(s, m, ENOENT);
      } else if (!(m.value64 & shm::kEngineDoorbellBit)) {
        // Told to close its copy when the owner goes (RetireDoorbell), so a
        // process serving many short-lived peers does not keep one fd each.
        doorbells_.NoteAsker(m.value64, s->fd.get());
        s->peer_doorbells.insert(shm::DoorbellOf(m.value64));
      }
      return absl::OkStatus();
    }
    case MsgType::kUdpBind:
      return udp_->Bind(s, req);
    case MsgType::kUdpUnbind:
      udp_->Unbind(s, m.id);
      return absl::OkStatus();
    case MsgType::kUdpOpen:
      udp_->Open(s, m);
      return absl::OkStatus();
    case MsgType::kUdpWire:
      udp_->Wire(s, m);
      return absl::OkStatus();
    case MsgType::kUdpJoin:
    case MsgType::kUdpLeave:
      udp_->Group(s, m);
      return absl::OkStatus();
    case MsgType::kDgramClose:
      return udp_->CloseRing(s, m);
    default:
      return absl::InvalidArgumentError("unexpected message");
  }
}

absl::Status SessionManager::HandleHello(Session* s, Request& req) {
  const Msg& m = req.msg;
  if (s->hello_done) return absl::InvalidArgumentError("second hello");
  if (m.value != shm::kAbiVersion) {
    spdlog::info("pid {} ({}) speaks ABI {}, we speak {}: it runs on the kernel", s->pid,
                 s->program, m.value, shm::kAbiVersion);
    ReplyStatus(s, m, EPROTONOSUPPORT);
    return absl::OkStatus();
  }
  shm::UniqueFd memfd = MakeSealedMemfd("offload-arena", arena_bytes_, &s->arena);
  if (!memfd.valid()) {
    spdlog::error("pid {}: cannot create arena of {} bytes: {}", s->pid, arena_bytes_,
                  strerror(errno));
    ReplyStatus(s, m, ENOMEM);
    return absl::OkStatus();
  }
  auto* h = new (s->arena.get()) shm::ArenaHeader();
  h->magic = shm::kArenaMagic;
  h->abi_version = shm::kAbiVersion;
  h->header_bytes = sizeof(shm::ArenaHeader);
  h->arena_bytes = arena_bytes_;
  h->pid = s->pid;
  h->max_sockets = max_sockets_;
  h->slots_offset = sizeof(shm::ArenaHeader);
  h->rcvbuf = pipe_capacity_;
  h->sndbuf = pipe_capacity_;
  h->fence_mode = fence_mode_;
  h->wire_addr = wire_addr_;
  h->log_level.store(static_cast<uint32_t>(shm::LogLevel::kInfo), std::memory_order_relaxed);
  tcp_->ForEachListenerPort([h](uint16_t port) { SetPortWord(h->tcp_ports, ntohs(port), true); });
  udp_->ForEachPort([h](uint16_t port) { SetPortWord(h->udp_ports, ntohs(port), true); });
  s->app_id = m.app_id;
  s->hello_done = true;
  WriteRules(s);
  Msg r = {};
  r.type = MsgType::kHelloOk;
  r.seq = m.seq;
  r.value64 = arena_bytes_;
  const int fds[1] = {memfd.get()};
  if (!SendMsg(s->fd.get(), r, fds, 1)) return absl::UnavailableError("hello reply not sent");
  spdlog::info("pid {} ({}) attached", s->pid, s->program);
  return absl::OkStatus();
}

void SessionManager::Detach(int fd) {
  auto it = sessions_.find(fd);
  if (it == sessions_.end()) return;
  Session* s = it->second.get();
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  udp_->UnbindAll(s);
  // The pipe ends it held alone end now (the kernel closed its fds); the
  // shared ones end when their last holder closes them (SocketWatch).
  tcp_->OnSessionGone(s);
  deferred_ = true;
  for (uint64_t id : s->doorbells) RetireDoorbell(id);
  for (uint64_t id : s->peer_doorbells) doorbells_.ForgetAsker(id, fd);
  udp_->CloseRingsOf(s);
  if (s->hello_done) spdlog::info("pid {} ({}) detached", s->pid, s->program);
  sessions_.erase(it);
}

void SessionManager::RetireDoorbell(uint64_t id) {
  for (int asker : doorbells_.RemoveProcess(id)) {
    auto it = sessions_.find(asker);
    if (it == sessions_.end()) continue;
    Session* a = it->second.get();
    if (a->peer_doorbells.erase(id) == 0) continue;  // not that session's copy
    Msg gone = {};
    gone.type = MsgType::kDoorbellGone;
    gone.value64 = id;
    // Best effort: a session that cannot take it is going away.
    if (SendMsg(a->fd.get(), gone, nullptr, 0)) PostEvent(a);
  }
}

void SessionManager::RetireChannel(uint32_t id) {
  for (auto& [fd, session] : sessions_) {
    Session* a = session.get();
    if (a->channels_sent.erase(id) == 0) continue;
    Msg gone = {};
    gone.type = MsgType::kChannelGone;
    gone.id = id;
    // Best effort: a session that cannot take it is going away.
    if (SendMsg(a->fd.get(), gone, nullptr, 0)) PostEvent(a);
  }
}

void SessionManager::PostEvent(Session* s) {
  // Release: pairs with the client's acquire load before it drains the
  // attach socket.
  if (s->hello_done) s->header()->events_posted.fetch_add(1, std::memory_order_release);
}

Session* SessionManager::FindByPid(uint32_t pid) const {
  Session* found = nullptr;
  for (const auto& [fd, s] : sessions_) {
    if (s->pid == pid && s->hello_done) found = s.get();
  }
  return found;
}

size_t SessionManager::NumSessionsForTest() const {
  absl::MutexLock l(&mu_);
  return sessions_.size();
}

}  // namespace session
}  // namespace offload
