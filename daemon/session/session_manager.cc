// SessionManager: attach server, arenas, listener/UDP registries, brokers.
// Statistics and run-time control live in session_control.cc.

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

#include <cstring>
#include <fstream>
#include <new>

#include "absl/strings/str_cat.h"
#include "daemon/common/errors.h"
#include "daemon/session/session_internal.h"
#include "daemon/shm/fence.h"
#include "daemon/shm/wakeup.h"
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

uint64_t NowUnixMs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

uint64_t NetnsOf(uint32_t pid) {
  struct stat st;
  const std::string path = absl::StrCat("/proc/", pid, "/ns/net");
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

std::string CommOf(uint32_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/comm"));
  std::string s;
  std::getline(in, s);
  return s;
}

// Creates a sealed memfd of `bytes` and maps it. Returns an invalid fd on
// failure (errno set).
shm::UniqueFd MakeSealedMemfd(const char* name, size_t bytes, shm::Mapping* map) {
  shm::UniqueFd fd(memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return fd;
  if (ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0 ||
      fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return shm::UniqueFd();
  }
  *map = shm::Mapping::MapShared(fd.get(), bytes);
  if (!map->valid()) return shm::UniqueFd();
  return fd;
}

bool SetPortWord(std::atomic<uint64_t>* words, uint16_t port_host, bool on) {
  const uint64_t bit = uint64_t{1} << (port_host & 63);
  // Release: pairs with the client's acquire load in shm::PortBit().
  if (on) return words[port_host >> 6].fetch_or(bit, std::memory_order_release) & bit;
  return words[port_host >> 6].fetch_and(~bit, std::memory_order_release) & bit;
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
                                "/engine.sock")) {
  pipe_capacity_ = RoundUpPow2(std::max(config.rcvbuf(), config.sndbuf()) == 0
                                   ? 262144
                                   : std::max(config.rcvbuf(), config.sndbuf()));
  dgram_capacity_ = std::max<uint32_t>(pipe_capacity_, 262144);
  max_sockets_ = config.max_sockets_per_process() == 0 ? 4096 : config.max_sockets_per_process();
  const uint64_t cap = config.arena_bytes() == 0 ? (64ull << 20) : config.arena_bytes();
  while (max_sockets_ > 16 && shm::ArenaBytesFor(max_sockets_) > cap) max_sockets_ /= 2;
  arena_bytes_ = std::min<uint64_t>(cap, shm::ArenaBytesFor(max_sockets_));
  const char* asym = getenv("OFFLOAD_ASYMMETRIC_FENCES");
  fence_mode_ = asym != nullptr && std::string(asym) == "1" && shm::MembarrierAvailable()
                    ? shm::kFenceAsymmetric
                    : shm::kFenceFull;
}

SessionManager::~SessionManager() { Stop(); }

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
  for (;;) {
    const int n = epoll_wait(epfd, evs, 64, -1);
    if (n < 0 && errno != EINTR) {
      spdlog::error("session loop: epoll_wait: {}", strerror(errno));
      return;
    }
    absl::MutexLock l(&mu_);
    if (!started_) return;
    for (int i = 0; i < n; ++i) {
      const int fd = evs[i].data.fd;
      if (fd == stop_fd_.get()) return;
      if (fd == listen_fd_.get()) {
        Accept();
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
      return HandleHello(s, m);
    case MsgType::kTcpListen:
      return HandleListen(s, req);
    case MsgType::kTcpUnlisten:
      RemoveListener(s, m.id);
      return absl::OkStatus();
    case MsgType::kTcpConnect:
      HandleConnect(s, req);
      return absl::OkStatus();
    case MsgType::kPipeAccepted:
    case MsgType::kPipeClose: {
      auto it = pipes_.find(m.id);
      const int side = m.value == 1 ? 1 : 0;
      if (it == pipes_.end() || it->second->side[side] != s) {
        return absl::InvalidArgumentError(absl::StrCat("pipe ", m.id, " side ", side,
                                                       " does not belong to this process"));
      }
      Pipe* p = it->second.get();
      if (side == 1 && !p->accepted) {
        p->accepted = true;
        auto l = listeners_.find(p->listener_id);
        if (l != listeners_.end() && l->second->pending > 0) --l->second->pending;
      }
      if (m.type == MsgType::kPipeClose) ClosePipeSide(m.id, side, /*died=*/false);
      return absl::OkStatus();
    }
    case MsgType::kUdpBind:
      return HandleUdpBind(s, req);
    case MsgType::kUdpUnbind:
      RemoveUdp(s, m.id);
      return absl::OkStatus();
    case MsgType::kUdpOpen:
      HandleUdpOpen(s, m);
      return absl::OkStatus();
    case MsgType::kDgramClose: {
      auto it = dgrams_.find(m.id);
      const bool sender = m.value == 1;
      if (it == dgrams_.end() ||
          (sender ? it->second->sender : it->second->receiver) != s) {
        return absl::InvalidArgumentError(
            absl::StrCat("datagram ring ", m.id, " does not belong to this process"));
      }
      CloseDgramSide(m.id, sender);
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError("unexpected message");
  }
}

absl::Status SessionManager::HandleHello(Session* s, const Msg& m) {
  if (s->hello_done) return absl::InvalidArgumentError("second hello");
  if (m.value != shm::kAbiVersion) {
    spdlog::info("pid {} ({}) speaks ABI {}, we speak {}: it runs on the kernel", s->pid,
                 s->program, m.value, shm::kAbiVersion);
    Reply(s, m, EPROTONOSUPPORT);
    return absl::OkStatus();
  }
  shm::UniqueFd memfd = MakeSealedMemfd("offload-arena", arena_bytes_, &s->arena);
  if (!memfd.valid()) {
    spdlog::error("pid {}: cannot create arena of {} bytes: {}", s->pid, arena_bytes_,
                  strerror(errno));
    Reply(s, m, ENOMEM);
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
  h->log_level.store(static_cast<uint32_t>(shm::LogLevel::kInfo), std::memory_order_relaxed);
  for (const auto& [id, l] : listeners_) SetPortWord(h->tcp_ports, ntohs(l->port), true);
  for (const auto& [id, u] : udp_) SetPortWord(h->udp_ports, ntohs(u->port), true);
  s->app_id = m.app_id;
  s->hello_done = true;
  WriteRules(s);
  Msg r = {};
  r.type = MsgType::kHelloOk;
  r.seq = m.seq;
  r.value = shm::kAbiVersion;
  r.value64 = arena_bytes_;
  const int fds[1] = {memfd.get()};
  if (!SendMsg(s->fd.get(), r, fds, 1)) return absl::UnavailableError("hello reply not sent");
  spdlog::info("pid {} ({}) attached", s->pid, s->program);
  return absl::OkStatus();
}

absl::Status SessionManager::HandleListen(Session* s, Request& req) {
  const Msg& m = req.msg;
  if (s->listeners.count(m.id)) {
    return absl::InvalidArgumentError(absl::StrCat("listener id ", m.id, " registered twice"));
  }
  if (s->listeners.size() + s->udp.size() >= max_sockets_) {
    Reply(s, m, ENOBUFS);
    return absl::OkStatus();
  }
  // The shadow socket is the proof: it must be a listening TCP socket of
  // this process bound where the request says.
  struct sockaddr_in sin = {};
  socklen_t len = sizeof(sin);
  int listening = 0;
  socklen_t ilen = sizeof(listening);
  if (getsockname(req.fds[0].get(), reinterpret_cast<sockaddr*>(&sin), &len) != 0 ||
      sin.sin_family != AF_INET || sin.sin_port != m.local.port ||
      getsockopt(req.fds[0].get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) != 0 ||
      !listening) {
    Reply(s, m, EINVAL);
    return absl::OkStatus();
  }
  auto l = std::make_unique<Listener>();
  l->id = next_id_++;
  l->session = s;
  l->client_id = m.id;
  l->addr = sin.sin_addr.s_addr;
  l->port = sin.sin_port;
  l->netns = s->netns;
  l->backlog = m.value;
  l->efd = std::move(req.fds[1]);
  s->listeners[m.id] = l->id;
  for (auto& [fd, other] : sessions_) {
    if (other->hello_done) SetPortWord(other->header()->tcp_ports, ntohs(l->port), true);
  }
  listeners_[l->id] = std::move(l);
  Reply(s, m, 0);
  return absl::OkStatus();
}

void SessionManager::RemoveListener(Session* s, uint32_t client_id) {
  auto it = s->listeners.find(client_id);
  if (it == s->listeners.end()) return;
  auto l = listeners_.find(it->second);
  s->listeners.erase(it);
  if (l == listeners_.end()) return;
  const uint16_t port = l->second->port;
  listeners_.erase(l);
  for (const auto& [id, other] : listeners_) {
    if (other->port == port) return;  // still offloaded somewhere
  }
  for (auto& [fd, other] : sessions_) {
    if (other->hello_done) SetPortWord(other->header()->tcp_ports, ntohs(port), false);
  }
}

bool SessionManager::IsLocalAddress(uint32_t addr) const {
  if ((ntohl(addr) >> 24) == 127) return true;
  struct ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return false;
  bool local = false;
  for (struct ifaddrs* i = ifa; i != nullptr && !local; i = i->ifa_next) {
    if (i->ifa_addr != nullptr && i->ifa_addr->sa_family == AF_INET) {
      local = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == addr;
    }
  }
  freeifaddrs(ifa);
  return local;
}

void SessionManager::HandleConnect(Session* s, Request& req) {
  Msg m = req.msg;
  // The shadow is the proof of the source port: the acceptor's peer address
  // comes from the kernel, not from what the process claims.
  {
    struct sockaddr_in sin = {};
    socklen_t len = sizeof(sin);
    int type = 0;
    socklen_t tlen = sizeof(type);
    if (getsockname(req.fds[0].get(), reinterpret_cast<sockaddr*>(&sin), &len) != 0 ||
        sin.sin_family != AF_INET || sin.sin_port == 0 ||
        getsockopt(req.fds[0].get(), SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
        type != SOCK_STREAM) {
      Reply(s, m, kStatusUseKernel);
      return;
    }
    m.local.port = sin.sin_port;
    if (sin.sin_addr.s_addr != 0) m.local.addr = sin.sin_addr.s_addr;
  }
  // Candidates: offloaded listeners in the connector's network namespace on
  // the destination port, bound to the destination or to INADDR_ANY of a
  // local destination, with room in their backlog (Linux accepts backlog+1).
  std::vector<Listener*> cands;
  bool dst_local = false, dst_local_known = false;
  for (auto& [id, l] : listeners_) {
    if (l->port != m.remote.port || l->netns != s->netns) continue;
    if (l->addr != m.remote.addr) {
      if (l->addr != 0) continue;
      if (!dst_local_known) {
        dst_local = IsLocalAddress(m.remote.addr);
        dst_local_known = true;
      }
      if (!dst_local) continue;
    }
    if (l->pending > l->backlog) continue;
    cands.push_back(l.get());
  }
  if (cands.empty() || s->pipes.size() >= max_sockets_) {
    Reply(s, m, kStatusUseKernel);
    return;
  }
  Listener* l = cands[next_id_ % cands.size()];
  auto p = std::make_unique<Pipe>();
  p->id = next_id_++;
  shm::UniqueFd memfd =
      MakeSealedMemfd("offload-pipe", shm::PipeSegmentBytes(pipe_capacity_), &p->segment);
  p->efd[0].reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  p->efd[1].reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!memfd.valid() || !p->efd[0].valid() || !p->efd[1].valid()) {
    spdlog::warn("pipe for pid {}: {}", s->pid, strerror(errno));
    Reply(s, m, kStatusUseKernel);
    return;
  }
  auto* h = new (p->segment.get()) shm::PipeHeader();
  h->magic = shm::kPipeMagic;
  h->capacity = pipe_capacity_;

  Msg offer = {};
  offer.type = MsgType::kOffer;
  offer.id = l->client_id;
  offer.id2 = p->id;
  offer.value = pipe_capacity_;
  offer.local = m.remote;
  offer.remote = m.local;
  const int offer_fds[3] = {memfd.get(), p->efd[1].get(), p->efd[0].get()};
  if (!SendMsg(l->session->fd.get(), offer, offer_fds, 3)) {
    Reply(s, m, kStatusUseKernel);  // the listener's process is not keeping up
    return;
  }
  ++l->pending;
  PostEvent(l->session);
  shm::Kick(l->efd.get());

  p->side[0] = s;
  p->side[1] = l->session;
  p->open[0] = p->open[1] = true;
  p->listener_id = l->id;
  s->pipes.insert(p->id);
  l->session->pipes.insert(p->id);
  Msg r = {};
  r.type = MsgType::kPipe;
  r.seq = m.seq;
  r.id = p->id;
  r.value = pipe_capacity_;
  r.local = m.local;
  r.remote = m.remote;
  const int fds[3] = {memfd.get(), p->efd[0].get(), p->efd[1].get()};
  const uint32_t pid = p->id;
  pipes_[pid] = std::move(p);
  if (!SendMsg(s->fd.get(), r, fds, 3)) ClosePipeSide(pid, 0, /*died=*/true);
}

void SessionManager::ClosePipeSide(uint32_t pipe_id, int side, bool died) {
  auto it = pipes_.find(pipe_id);
  if (it == pipes_.end()) return;
  Pipe* p = it->second.get();
  if (!p->open[side]) return;
  p->open[side] = false;
  if (died && p->open[1 - side]) {
    // The process is gone without closing: do what its kernel would have.
    // Unread data in what it was receiving makes the close an abort
    // (RFC 2525 2.17, Linux: RST on close with unread data); else FIN.
    shm::PipeHeader* h = p->header();
    shm::RingIndexes& out = h->dir[side];
    shm::RingIndexes& in = h->dir[1 - side];
    const bool unread = in.tail.load(std::memory_order_acquire) !=
                        in.head.load(std::memory_order_acquire);
    // Pairs with the survivor's load-acquire of reader_closed (ByteRingProducer).
    in.reader_closed.store(unread ? 2 : 1, std::memory_order_release);
    if (unread || out.shut.load(std::memory_order_relaxed) == 0) {
      // Pairs with the survivor's load-acquire of shut (ByteRingConsumer::Shut).
      out.shut.store(unread ? shm::kShutRst : shm::kShutFin, std::memory_order_release);
    }
    shm::Kick(p->efd[1 - side].get());
  }
  // A closed side forgets its session: the session may be destroyed before
  // the other side closes (regression: double free on detach).
  if (p->side[side] != nullptr && p->side[side] != p->side[1 - side]) {
    p->side[side]->pipes.erase(pipe_id);
  }
  if (p->side[side] != p->side[1 - side]) p->side[side] = nullptr;
  if (!p->open[1 - side]) {
    if (p->side[1 - side] != nullptr) p->side[1 - side]->pipes.erase(pipe_id);
    if (p->side[side] != nullptr) p->side[side]->pipes.erase(pipe_id);
    if (!p->accepted) {
      auto l = listeners_.find(p->listener_id);
      if (l != listeners_.end() && l->second->pending > 0) --l->second->pending;
    }
    pipes_.erase(it);
  }
}

absl::Status SessionManager::HandleUdpBind(Session* s, Request& req) {
  const Msg& m = req.msg;
  if (s->udp.count(m.id)) {
    return absl::InvalidArgumentError(absl::StrCat("udp endpoint ", m.id, " registered twice"));
  }
  if (s->listeners.size() + s->udp.size() >= max_sockets_) {
    Reply(s, m, ENOBUFS);
    return absl::OkStatus();
  }
  struct sockaddr_in sin = {};
  socklen_t len = sizeof(sin);
  int type = 0;
  socklen_t tlen = sizeof(type);
  if (getsockname(req.fds[0].get(), reinterpret_cast<sockaddr*>(&sin), &len) != 0 ||
      sin.sin_family != AF_INET || sin.sin_port != m.local.port ||
      getsockopt(req.fds[0].get(), SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
      type != SOCK_DGRAM) {
    Reply(s, m, EINVAL);
    return absl::OkStatus();
  }
  auto u = std::make_unique<UdpEndpoint>();
  u->id = next_id_++;
  u->session = s;
  u->client_id = m.id;
  u->addr = sin.sin_addr.s_addr;
  u->port = sin.sin_port;
  u->netns = s->netns;
  u->efd = std::move(req.fds[1]);
  s->udp[m.id] = u->id;
  for (auto& [fd, other] : sessions_) {
    if (other->hello_done) SetPortWord(other->header()->udp_ports, ntohs(u->port), true);
  }
  udp_[u->id] = std::move(u);
  Reply(s, m, 0);
  return absl::OkStatus();
}

void SessionManager::RemoveUdp(Session* s, uint32_t client_id) {
  auto it = s->udp.find(client_id);
  if (it == s->udp.end()) return;
  const uint32_t uid = it->second;
  s->udp.erase(it);
  auto u = udp_.find(uid);
  if (u == udp_.end()) return;
  // Rings into this endpoint: senders see reader_closed and go back to the
  // kernel for that destination.
  for (auto& [id, r] : dgrams_) {
    if (r->receiver_endpoint == uid) {
      r->header()->idx.reader_closed.store(1, std::memory_order_release);
      r->receiver_endpoint = 0;
    }
  }
  const uint16_t port = u->second->port;
  udp_.erase(u);
  for (const auto& [id, other] : udp_) {
    if (other->port == port) return;
  }
  for (auto& [fd, other] : sessions_) {
    if (other->hello_done) SetPortWord(other->header()->udp_ports, ntohs(port), false);
  }
}

void SessionManager::HandleUdpOpen(Session* s, const Msg& m) {
  auto self = s->udp.find(m.id);
  if (self == s->udp.end()) {
    Reply(s, m, kStatusUseKernel);
    return;
  }
  UdpEndpoint* dst = nullptr;
  bool dst_local = false, dst_local_known = false;
  for (auto& [id, u] : udp_) {
    if (u->port != m.remote.port || u->netns != s->netns) continue;
    if (u->addr != m.remote.addr) {
      if (u->addr != 0) continue;
      if (!dst_local_known) {
        dst_local = IsLocalAddress(m.remote.addr);
        dst_local_known = true;
      }
      if (!dst_local) continue;
    }
    dst = u.get();
    break;
  }
  if (dst == nullptr || s->dgrams.size() >= 4 * size_t{max_sockets_}) {
    Reply(s, m, kStatusUseKernel);
    return;
  }
  auto r = std::make_unique<DgramRing>();
  r->id = next_id_++;
  shm::UniqueFd memfd = MakeSealedMemfd(
      "offload-dgram", shm::DgramSegmentBytes(dgram_capacity_), &r->segment);
  if (!memfd.valid()) {
    Reply(s, m, kStatusUseKernel);
    return;
  }
  auto* h = new (r->segment.get()) shm::DgramHeader();
  h->magic = shm::kDgramMagic;
  h->capacity = dgram_capacity_;
  // The source is the sender's registered (kernel-bound) endpoint, never
  // what the request claims.
  const UdpEndpoint* src = udp_.at(self->second).get();
  h->src_addr = src->addr != 0 ? src->addr : m.remote.addr;
  h->src_port = src->port;
  Msg offer = {};
  offer.type = MsgType::kDgramOffer;
  offer.id = dst->client_id;
  offer.id2 = r->id;
  offer.value = dgram_capacity_;
  offer.remote.addr = h->src_addr;
  offer.remote.port = h->src_port;
  const int offer_fds[1] = {memfd.get()};
  if (!SendMsg(dst->session->fd.get(), offer, offer_fds, 1)) {
    Reply(s, m, kStatusUseKernel);
    return;
  }
  PostEvent(dst->session);
  shm::Kick(dst->efd.get());
  r->sender = s;
  r->receiver = dst->session;
  r->receiver_endpoint = dst->id;
  r->sender_open = r->receiver_open = true;
  s->dgrams.insert(r->id);
  dst->session->dgrams.insert(r->id);
  Msg rep = {};
  rep.type = MsgType::kDgram;
  rep.seq = m.seq;
  rep.id = r->id;
  rep.value = dgram_capacity_;
  rep.remote = m.remote;
  const int fds[2] = {memfd.get(), dst->efd.get()};
  const uint32_t rid = r->id;
  dgrams_[rid] = std::move(r);
  if (!SendMsg(s->fd.get(), rep, fds, 2)) CloseDgramSide(rid, /*sender=*/true);
}

void SessionManager::CloseDgramSide(uint32_t ring_id, bool sender) {
  auto it = dgrams_.find(ring_id);
  if (it == dgrams_.end()) return;
  DgramRing* r = it->second.get();
  if (sender) {
    if (!r->sender_open) return;
    r->sender_open = false;
    if (r->sender != r->receiver) {
      r->sender->dgrams.erase(ring_id);
      r->sender = nullptr;
    }
    // Pairs with the receiver's load-acquire in DgramConsumer::SenderGone().
    r->header()->idx.shut.store(shm::kShutFin, std::memory_order_release);
    auto u = udp_.find(r->receiver_endpoint);
    if (u != udp_.end()) shm::Kick(u->second->efd.get());
  } else {
    if (!r->receiver_open) return;
    r->receiver_open = false;
    if (r->sender != r->receiver) {
      r->receiver->dgrams.erase(ring_id);
      r->receiver = nullptr;
    }
    r->header()->idx.reader_closed.store(1, std::memory_order_release);
  }
  if (!r->sender_open && !r->receiver_open) {
    if (r->sender != nullptr) r->sender->dgrams.erase(ring_id);
    if (r->receiver != nullptr) r->receiver->dgrams.erase(ring_id);
    dgrams_.erase(it);
  }
}

void SessionManager::Detach(int fd) {
  auto it = sessions_.find(fd);
  if (it == sessions_.end()) return;
  Session* s = it->second.get();
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  while (!s->listeners.empty()) RemoveListener(s, s->listeners.begin()->first);
  while (!s->udp.empty()) RemoveUdp(s, s->udp.begin()->first);
  const std::set<uint32_t> pipes = s->pipes;
  for (uint32_t id : pipes) {
    auto p = pipes_.find(id);
    if (p == pipes_.end()) continue;
    // A process connected to itself is both sides.
    for (int side = 0; side < 2; ++side) {
      auto q = pipes_.find(id);
      if (q != pipes_.end() && q->second->side[side] == s) ClosePipeSide(id, side, true);
    }
  }
  const std::set<uint32_t> dgrams = s->dgrams;
  for (uint32_t id : dgrams) {
    auto r = dgrams_.find(id);
    if (r != dgrams_.end() && r->second->sender == s) CloseDgramSide(id, true);
    r = dgrams_.find(id);
    if (r != dgrams_.end() && r->second->receiver == s) CloseDgramSide(id, false);
  }
  if (s->hello_done) spdlog::info("pid {} ({}) detached", s->pid, s->program);
  sessions_.erase(it);
}

void SessionManager::PostEvent(Session* s) {
  // Release: pairs with the client's acquire load before it drains the
  // attach socket.
  if (s->hello_done) s->header()->events_posted.fetch_add(1, std::memory_order_release);
}

void SessionManager::Reply(Session* s, const Msg& req, int status) {
  Msg r = {};
  r.type = MsgType::kStatus;
  r.seq = req.seq;
  r.status = status;
  SendMsg(s->fd.get(), r, nullptr, 0);
}

SessionManager::Session* SessionManager::FindByPid(uint32_t pid) const {
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
