// SessionManager: TCP connections on the wire. A connect routed through the
// offloaded interface gets a pipe whose other end is an engine; offloaded
// listeners also listen on the wire and are offered the connections the
// engine accepts, exactly like same-host ones (see wire/app_pipe.h).

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
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

namespace {

uint64_t OwnNetns() {
  struct stat st;
  return stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}

std::string Ip(uint32_t net_order) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a;
  a.s_addr = net_order;
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

}  // namespace

void SessionManager::SetWirePlane(wire::WirePlane* wire) {
  absl::MutexLock l(&mu_);
  wire_ = wire;
  wire_addr_ = wire != nullptr ? htonl(wire->local_ip()) : 0;
  wire_netns_ = OwnNetns();
  if (wire != nullptr && !accepted_fd_.valid()) {
    accepted_fd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  }
}

bool SessionManager::AddLiveness(Pipe* p, int side, shm::UniqueFd* write_end) {
  int lv[2];
  if (pipe2(lv, O_CLOEXEC | O_NONBLOCK) != 0) {
    spdlog::warn("liveness pipe: {}", strerror(errno));
    return false;
  }
  p->alive[side].reset(lv[0]);
  write_end->reset(lv[1]);
  // No EPOLLIN: a process writing into its liveness pipe must not make us
  // spin; EPOLLHUP is always reported.
  struct epoll_event ev = {};
  ev.events = 0;
  ev.data.fd = lv[0];
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, lv[0], &ev);
  liveness_[lv[0]] = {p->id, side};
  return true;
}

bool SessionManager::WireConnect(Session* s, const Msg& m, uint32_t shadow_addr,
                                 shm::UniqueFd* shadow) {
  if (wire_ == nullptr || s->netns != wire_netns_) return false;
  // A shadow bound to a specific address other than the interface's would
  // put another source address on the wire than the application chose.
  if (shadow_addr != 0 && shadow_addr != wire_addr_) return false;
  absl::StatusOr<wire::WireRoute> route = wire_->RouteTo(ntohl(m.remote.addr), ntohs(m.remote.port));
  if (!route.ok()) {
    spdlog::debug("pid {}: connect to {}:{} stays with the kernel: {}", s->pid, Ip(m.remote.addr),
                  ntohs(m.remote.port), std::string(route.status().message()));
    return false;
  }
  if (s->pipes.size() >= max_sockets_) return false;
  absl::StatusOr<std::shared_ptr<wire::AppPipe>> app =
      wire::AppPipe::Create(pipe_capacity_, 0, shm::kConnectPending);
  if (!app.ok()) {
    spdlog::warn("pid {}: {}", s->pid, std::string(app.status().message()));
    return false;
  }
  (*app)->HoldShadow(std::move(*shadow));
  auto p = std::make_unique<Pipe>();
  p->id = next_id_++;
  p->app = *app;
  wire::TcpConnectParams params;
  params.remote_ip = ntohl(m.remote.addr);
  params.remote_port = ntohs(m.remote.port);
  params.local_port = ntohs(m.local.port);
  params.pipe = *app;
  absl::StatusOr<wire::WireFlow> flow = wire_->ConnectTcp(params);
  if (!flow.ok()) {
    spdlog::warn("pid {}: connect to {}:{} through the engine failed, using the kernel: {}",
                 s->pid, Ip(m.remote.addr), ntohs(m.remote.port),
                 std::string(flow.status().message()));
    return false;
  }
  p->flow = *flow;
  shm::UniqueFd alive_w;
  if (!AddLiveness(p.get(), 0, &alive_w)) {
    wire_->Close(p->flow, /*abort=*/true);
    Reply(s, m, ENOBUFS);
    return true;
  }
  p->side[0] = s;
  p->open[0] = true;
  p->accepted = true;
  s->pipes.insert(p->id);
  Msg r = {};
  r.type = MsgType::kPipe;
  r.seq = m.seq;
  r.status = 1;  // the peer is an engine: connect_status says when it is connected
  r.id = p->id;
  r.value = pipe_capacity_;
  r.local.addr = htonl(route->local_ip);
  r.local.port = m.local.port;
  r.remote = m.remote;
  const int fds[4] = {p->app->memfd(), p->app->app_efd(), wire_->DoorbellFd(flow->engine),
                      alive_w.get()};
  Pipe* sent = p.get();
  pipes_[p->id] = std::move(p);
  // If the reply is lost, alive_w closes below: the hang-up ends the flow.
  SendMsg(s->fd.get(), r, fds, 4);
  sent->app->CloseMemfd();  // the application has its copy (or never will)
  return true;
}

void SessionManager::CloseWirePipe(Pipe* p) {
  const int side = p->app->app_side();
  // Unread data, or SO_LINGER {1, 0}: the close is an abort (RFC 2525 2.17,
  // as Linux does); otherwise FIN after the queued data.
  shm::RingIndexes& in = p->app->from_wire();
  const bool unread =
      in.tail.load(std::memory_order_acquire) != in.head.load(std::memory_order_acquire) ||
      ((p->header()->abort_requested.load(std::memory_order_acquire) >> side) & 1);
  if (wire_ != nullptr) wire_->Close(p->flow, unread);
}

void SessionManager::WireListen(Listener* l) {
  if (wire_ == nullptr || l->netns != wire_netns_ || (l->addr != 0 && l->addr != wire_addr_)) {
    return;
  }
  WirePort& port = wire_ports_[l->port];
  if (port.refs == 0) {
    wire::TcpListenParams params;
    params.local_ip = ntohl(l->addr);
    params.port = ntohs(l->port);
    params.backlog = static_cast<int>(std::max<uint32_t>(l->backlog, 128));
    params.pipe_capacity = pipe_capacity_;
    params.sink = this;
    params.token = l->port;
    absl::StatusOr<wire::WireListener> h = wire_->ListenTcp(params);
    if (!h.ok()) {
      wire_ports_.erase(l->port);
      spdlog::warn("pid {}: port {} is not offloaded on the wire (kernel clients are served by "
                   "the kernel): {}",
                   l->session->pid, ntohs(l->port), std::string(h.status().message()));
      return;
    }
    port.handle = *h;
  }
  ++port.refs;
  l->on_wire = true;
}

void SessionManager::WireUnlisten(Listener* l) {
  if (!l->on_wire) return;
  l->on_wire = false;
  auto it = wire_ports_.find(l->port);
  if (it == wire_ports_.end()) return;
  if (--it->second.refs == 0) {
    wire_->CloseListener(it->second.handle);
    wire_ports_.erase(it);
  }
}

void SessionManager::OnAccepted(uint64_t, const wire::AcceptedConnection& conn) {
  {
    absl::MutexLock l(&accepted_mu_);
    accepted_.push_back(conn);
  }
  shm::Kick(accepted_fd_.get());
}

void SessionManager::OfferAccepted() {
  std::vector<wire::AcceptedConnection> batch;
  {
    absl::MutexLock l(&accepted_mu_);
    batch.swap(accepted_);
  }
  for (wire::AcceptedConnection& c : batch) {
    const uint32_t laddr = htonl(c.local_ip);
    const uint16_t lport = htons(c.local_port);
    // The listening processes of the port, round robin, with room in their
    // backlog (Linux accepts backlog + 1).
    std::vector<Listener*> cands;
    for (auto& [id, l] : listeners_) {
      if (l->on_wire && l->port == lport && (l->addr == 0 || l->addr == laddr) &&
          l->pending <= l->backlog) {
        cands.push_back(l.get());
      }
    }
    if (cands.empty()) {
      wire_->Close(c.flow, /*abort=*/true);
      continue;
    }
    Listener* l = cands[next_id_ % cands.size()];
    auto p = std::make_unique<Pipe>();
    p->id = next_id_++;
    p->app = c.pipe;
    p->flow = c.flow;
    shm::UniqueFd alive_w;
    if (!AddLiveness(p.get(), 1, &alive_w)) {
      wire_->Close(c.flow, /*abort=*/true);
      continue;
    }
    p->open[1] = true;  // ends through the liveness pipe from now on
    p->listener_id = l->id;
    Msg offer = {};
    offer.type = MsgType::kOffer;
    offer.status = 1;  // served by an engine (statistics say so)
    offer.id = l->client_id;
    offer.id2 = p->id;
    offer.value = c.pipe->capacity();
    offer.local.addr = laddr;
    offer.local.port = lport;
    offer.remote.addr = htonl(c.remote_ip);
    offer.remote.port = htons(c.remote_port);
    const int fds[4] = {c.pipe->memfd(), c.pipe->app_efd(), wire_->DoorbellFd(c.flow.engine),
                        alive_w.get()};
    const bool offered = SendMsg(l->session->fd.get(), offer, fds, 4);
    c.pipe->CloseMemfd();  // the listener's process has its copy (or never will)
    if (!offered) {
      // The listener's process is not keeping up; alive_w closing ends it.
      p->accepted = true;  // nothing pending in the listener's backlog
      pipes_[p->id] = std::move(p);
      continue;
    }
    ++l->pending;
    PostEvent(l->session);
    shm::Kick(l->efd.get());
    p->side[1] = l->session;
    l->session->pipes.insert(p->id);
    pipes_[p->id] = std::move(p);
  }
}

}  // namespace session
}  // namespace offload
