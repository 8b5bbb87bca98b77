// SessionManager: offloaded TCP listeners and the pipe broker
// (offloaded connector -> offloaded listener), and pipe clean-up.

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <sys/socket.h>

#include <cstring>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/session/session_internal.h"
#include "daemon/session/session_manager.h"
#include "shm/wakeup.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

using shm::Msg;
using shm::MsgType;

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
  WireListen(l.get());
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
  WireUnlisten(l->second.get());
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
  uint32_t shadow_addr = 0;
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
    shadow_addr = sin.sin_addr.s_addr;
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
  if (cands.empty()) {
    // No offloaded listener on this host: maybe a connection on the wire.
    if (!WireConnect(s, m, shadow_addr, &req.fds[0])) Reply(s, m, kStatusUseKernel);
    return;
  }
  if (s->pipes.size() >= max_sockets_) {
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
  // Liveness pipes: each side's process gets the write end; we watch the
  // read end for the hang-up that follows the last close anywhere.
  shm::UniqueFd alive_w[2];
  if (!AddLiveness(p.get(), 0, &alive_w[0]) || !AddLiveness(p.get(), 1, &alive_w[1])) {
    for (int side = 0; side < 2; ++side) DropLiveness(p.get(), side);
    Reply(s, m, kStatusUseKernel);
    return;
  }

  Msg offer = {};
  offer.type = MsgType::kOffer;
  offer.id = l->client_id;
  offer.id2 = p->id;
  offer.value = pipe_capacity_;
  offer.local = m.remote;
  offer.remote = m.local;
  const int offer_fds[4] = {memfd.get(), p->efd[1].get(), p->efd[0].get(), alive_w[1].get()};
  if (!SendMsg(l->session->fd.get(), offer, offer_fds, 4)) {
    for (int side = 0; side < 2; ++side) DropLiveness(p.get(), side);
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
  const int fds[4] = {memfd.get(), p->efd[0].get(), p->efd[1].get(), alive_w[0].get()};
  const uint32_t pid = p->id;
  pipes_[pid] = std::move(p);
  SendMsg(s->fd.get(), r, fds, 4);  // if it fails, alive_w[0] closes below: HUP ends side 0
}

void SessionManager::DropLiveness(Pipe* p, int side) {
  if (!p->alive[side].valid()) return;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, p->alive[side].get(), nullptr);
  liveness_.erase(p->alive[side].get());
  p->alive[side].reset();
}

void SessionManager::ClosePipeSide(uint32_t pipe_id, int side, bool died) {
  auto it = pipes_.find(pipe_id);
  if (it == pipes_.end()) return;
  Pipe* p = it->second.get();
  DropLiveness(p, side);
  if (!p->open[side]) return;
  p->open[side] = false;
  if (p->app != nullptr) {
    // The engine is the other side: it finishes the connection.
    CloseWirePipe(p);
    if (p->side[side] != nullptr) p->side[side]->pipes.erase(pipe_id);
    if (!p->accepted) {
      auto l = listeners_.find(p->listener_id);
      if (l != listeners_.end() && l->second->pending > 0) --l->second->pending;
    }
    pipes_.erase(it);
    return;
  }
  if (died && p->open[1 - side]) {
    // The last copy of the side's fd is gone: do what the kernel does on the
    // last close. Unread data in what it was receiving (or SO_LINGER {1,0})
    // makes the close an abort (RFC 2525 2.17, Linux: RST); else FIN after
    // the queued data.
    shm::PipeHeader* h = p->header();
    shm::RingIndexes& out = h->dir[side];
    shm::RingIndexes& in = h->dir[1 - side];
    // Acquire: pairs with the closing process's fetch_or (release).
    const bool unread = in.tail.load(std::memory_order_acquire) !=
                            in.head.load(std::memory_order_acquire) ||
                        (h->abort_requested.load(std::memory_order_acquire) >> side) & 1;
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

}  // namespace session
}  // namespace offload
