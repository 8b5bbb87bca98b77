// SessionManager: the event loop, attached sessions and the one switch over
// every attach message (dispatch to the brokers), kept together so the
// protocol reads in one place; what a message does is in the brokers, ids in
// id_allocator.h. Construction, start and stop are session_lifecycle.cc;
// statistics and run-time control live in session_control.cc.

#include "daemon/session/session_manager.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include "daemon/session/session_internal.h"
#include "daemon/session/socket_watch.h"
#include "daemon/session/tcp_broker.h"
#include "daemon/session/udp_broker.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

using shm::Msg;
using shm::MsgType;

namespace {

constexpr size_t kMaxSessions = 4096;
constexpr int kMaxRequestsPerWakeup = 64;

}  // namespace

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
