// TcpBroker: listeners, same-host channels and shared sockets: the requests
// that set them up (listen, connect, map, share, adopt). The closes they
// race with (listener drains, slot frees deferred while a process holds a
// lock) are tcp_broker_close.cc; the wire half is tcp_broker_wire.cc.

#include "daemon/session/tcp_broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>
#include <new>

#include "shm/segment.h"
#include "shm/sockaddr.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

using shm::Msg;
using shm::MsgType;

namespace {

uint64_t InodeOf(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

}  // namespace

TcpBroker::~TcpBroker() {
  for (auto& [id, l] : listeners_) WireUnlisten(l.get());
}

TcpBroker::Listener* TcpBroker::FindListener(uint32_t id) {
  auto it = listeners_.find(id);
  return it == listeners_.end() ? nullptr : it->second.get();
}

TcpBroker::Channel* TcpBroker::FindChannel(uint32_t id) {
  auto it = channels_.find(id);
  return it == channels_.end() ? nullptr : it->second.get();
}

void TcpBroker::ForEachListenerPort(const std::function<void(uint16_t)>& fn) const {
  for (const auto& [id, l] : listeners_) fn(l->port);
}

bool TcpBroker::WatchSocket(int fd, const Watched& w) {
  absl::StatusOr<int> wd = env_.watch->Watch(fd);
  if (!wd.ok()) {
    spdlog::warn("{}", std::string(wd.status().message()));
    return false;
  }
  watched_[*wd] = w;
  wd_by_inode_[w.inode] = *wd;
  return true;
}

void TcpBroker::Listen(Session* s, Request& req) {
  const Msg& m = req.msg;
  const int fd = req.fds[0].get();
  // The socket is the proof: a listening TCP socket bound where it says.
  ListenAddr where;
  uint16_t port = 0;
  int listening = 0;
  socklen_t ilen = sizeof(listening);
  const uint64_t inode = InodeOf(fd);
  if (!ListenAddrOf(fd, &where, &port) ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) != 0 || !listening ||
      inode == 0) {
    ReplyStatus(s, m, EINVAL);
    return;
  }
  Listener* l = nullptr;
  auto known = wd_by_inode_.find(inode);
  if (known != wd_by_inode_.end()) {
    // listen() again on a listening socket (a new backlog): same listener.
    const Watched& w = watched_[known->second];
    l = w.listener ? FindListener(w.id) : nullptr;
    if (l == nullptr) {
      ReplyStatus(s, m, EINVAL);
      return;
    }
    l->backlog = m.value;
    if (std::memcmp(&l->opts, &m.opts, sizeof(l->opts)) != 0) {
      l->opts = m.opts;
      WireListenerOptions(l);
    }
  } else {
    auto created = std::make_unique<Listener>();
    created->id = env_.next_id();
    created->inode = inode;
    created->netns = s->netns;
    if (where.family == AF_INET) std::memcpy(&created->addr, where.addr + 12, 4);
    created->port = port;
    created->where = where;
    created->backlog = m.value;
    created->pid = s->pid;
    created->opts = m.opts;
    shm::Mapping map;
    created->memfd = MakeSealedMemfd("offload-listener", shm::ListenerSegmentBytes(), &map);
    if (!created->memfd.valid()) {
      spdlog::warn("pid {}: listener segment: {}", s->pid, strerror(errno));
      ReplyStatus(s, m, ENOBUFS);
      return;
    }
    created->seg = std::make_shared<shm::Mapping>(std::move(map));
    auto* h = new (created->seg->get()) shm::ListenerHeader();
    shm::SockAddr local = {};
    if (where.family == AF_INET6 && !shm::IsV4Mapped(where.addr)) {
      local.family = AF_INET6;
      std::memcpy(local.addr, where.addr, 16);
      local.port = port;
    } else {
      uint32_t v4;
      std::memcpy(&v4, where.addr + 12, 4);
      local = shm::FromV4(v4, port);
    }
    shm::InitListener(h, created->id, local, m.value);
    Watched w;
    w.listener = true;
    w.id = created->id;
    w.inode = inode;
    if (!WatchSocket(fd, w)) {
      ReplyStatus(s, m, ENOBUFS);
      return;
    }
    created->wd = wd_by_inode_[inode];
    l = created.get();
    listeners_[l->id] = std::move(created);
    env_.publish_port(l->port, true);
    WireListen(l);
  }
  Msg r = {};
  r.type = MsgType::kListener;
  r.seq = m.seq;
  r.id = l->id;
  const int fds[1] = {l->memfd.get()};
  SendMsg(s->fd.get(), r, fds, 1);
}

void TcpBroker::SendChannel(Session* s, const Msg& req, Channel* c, Listener* l, uint32_t slot,
                            uint32_t gen) {
  Msg r = {};
  r.type = MsgType::kChannel;
  r.seq = req.seq;
  r.id = c->id;
  r.id2 = l != nullptr ? l->id : c->listener_id;
  r.value = c->view()->capacity();
  r.kind = c->engine != nullptr ? shm::kChannelEngine : shm::kChannelSameHost;
  r.slot = slot;
  r.gen = gen;
  int fds[2] = {c->memfd(), l != nullptr ? l->memfd.get() : -1};
  SendMsg(s->fd.get(), r, fds, l != nullptr ? 2 : 1);
  s->channels_sent.insert(c->id);
}

void TcpBroker::Connect(Session* s, Request& req) {
  const Msg& m = req.msg;
  const int fd = req.fds[0].get();
  // The socket is the proof of the source port: the acceptor's peer
  // address comes from the kernel, not from what the process claims.
  sockaddr_in6 shadow = {};
  socklen_t len = sizeof(shadow);
  shm::SockAddr src = {};
  int type = 0;
  socklen_t tlen = sizeof(type);
  const uint64_t inode = InodeOf(fd);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&shadow), &len) != 0 ||
      !shm::FromSockaddr(reinterpret_cast<sockaddr*>(&shadow), len, &src) || src.port == 0 ||
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM ||
      inode == 0) {
    ReplyStatus(s, m, kStatusUseKernel);
    return;
  }
  // The destination, 16-byte form: IPv6 in remote6, IPv4 (and v4-mapped)
  // in remote (abi.h Dst6).
  const bool dst_v6 = m.remote6.family == AF_INET6;
  uint8_t dst[16];
  shm::Addr16Of(dst_v6 ? shm::SockAddr{} : shm::FromV4(m.remote.addr, m.remote.port), dst);
  if (dst_v6) std::memcpy(dst, m.remote6.addr, 16);
  // Candidates: offloaded listeners in the connector's network namespace on
  // the destination port, bound to the destination or to INADDR_ANY of a
  // local destination, still listening.
  std::vector<Listener*> cands;
  bool dst_local = false, dst_local_known = false;
  for (auto& [id, l] : listeners_) {
    if (l->port != m.remote.port || l->netns != s->netns) continue;
    if (l->header()->state.load(std::memory_order_acquire) != shm::kListening) continue;
    const bool takes = ListenerTakes(l->where, dst, [&] {
      if (!dst_local_known) {
        dst_local = dst_v6 ? IsLocalAddress6(dst) : IsLocalAddress(m.remote.addr);
        dst_local_known = true;
      }
      return dst_local;
    });
    if (takes) cands.push_back(l.get());
  }
  if (cands.empty()) {
    // No offloaded listener on this host: maybe a connection on the wire.
    if (src.family != (dst_v6 ? AF_INET6 : AF_INET) || !WireConnect(s, m, src, inode, fd)) {
      ReplyStatus(s, m, kStatusUseKernel);
    }
    return;
  }
  Listener* l = cands[rr_++ % cands.size()];
  Channel* c = nullptr;
  auto known = l->channels.find(s->serial);
  if (known != l->channels.end()) c = FindChannel(known->second);
  if (c == nullptr) {
    auto created = std::make_unique<Channel>();
    created->id = env_.next_id();
    created->listener_id = l->id;
    created->map = shm::ChannelMap::Create(created->id, shm::ChannelKind::kSameHost,
                                           env_.pipe_capacity, l->id, 1);
    if (created->map == nullptr) {
      spdlog::warn("pid {}: cannot create a channel: {}", s->pid, strerror(errno));
      ReplyStatus(s, m, kStatusUseKernel);
      return;
    }
    created->connector = s->serial;
    c = created.get();
    l->channels[s->serial] = c->id;
    channels_[c->id] = std::move(created);
    ReapChannels();  // a new client: earlier ones' channels may be done
  }
  SendChannel(s, m, c, l, 0, 0);
}

void TcpBroker::MapChannel(Session* s, Request& req) {
  const Msg& m = req.msg;
  Channel* c = FindChannel(m.id);
  bool allowed = c != nullptr && s->channels_sent.count(m.id) != 0;
  if (c != nullptr && !allowed) {
    // The proof: a socket the channel serves (a listener of it, or an end
    // of one of its pipes) that offloadd knows.
    auto it = wd_by_inode_.find(InodeOf(req.fds[0].get()));
    if (it != wd_by_inode_.end()) {
      const Watched& w = watched_[it->second];
      if (w.listener) {
        Listener* l = FindListener(w.id);
        allowed = c->listener_id == w.id ||
                  (l != nullptr && l->engine_channel != nullptr && l->engine_channel->id() == m.id);
      } else {
        allowed = w.id == m.id;
      }
    }
  }
  if (!allowed) {
    ReplyStatus(s, m, EPERM);
    return;
  }
  SendChannel(s, m, c, nullptr, 0, 0);
}

void TcpBroker::Share(Session* s, Request& req) {
  const Msg& m = req.msg;
  const int fd = req.fds[0].get();
  const uint64_t inode = InodeOf(fd);
  if (inode == 0 || wd_by_inode_.count(inode) || m.kind != shm::kSharePipe) return;
  Channel* c = FindChannel(m.id);
  shm::PipeRecord* r = c != nullptr ? c->view()->Record(m.slot) : nullptr;
  if (r == nullptr || m.end > 1 || r->ctl.gen.load(std::memory_order_acquire) != m.gen ||
      r->end[m.end].inode != inode) {
    spdlog::debug("pid {}: share of a socket that is not the pipe end it claims", s->pid);
    return;
  }
  Watched w;
  w.id = m.id;
  w.slot = m.slot;
  w.gen = m.gen;
  w.end = m.end;
  w.inode = inode;
  if (!WatchSocket(fd, w)) return;
  r->end[m.end].flags.fetch_or(shm::kEndShared, std::memory_order_acq_rel);
  if (c->engine != nullptr) {
    // From now on the holders' copies keep the port; ours would keep the
    // socket from ever being released.
    auto it = engine_pipes_.find(uint64_t{m.id} << 32 | m.slot);
    if (it != engine_pipes_.end()) {
      if (std::shared_ptr<wire::AppPipe> p = it->second.lock()) p->HoldPort(shm::UniqueFd());
      engine_pipes_.erase(it);
    }
  }
}

void TcpBroker::Adopt(Session* s, Request& req) {
  const Msg& m = req.msg;
  auto it = wd_by_inode_.find(InodeOf(req.fds[0].get()));
  if (it == wd_by_inode_.end()) {
    ReplyStatus(s, m, ENOENT);
    return;
  }
  const Watched& w = watched_[it->second];
  Msg r = {};
  r.type = MsgType::kAdopted;
  r.seq = m.seq;
  if (w.listener) {
    Listener* l = FindListener(w.id);
    if (l == nullptr) {
      ReplyStatus(s, m, ENOENT);
      return;
    }
    r.kind = shm::kShareListener;
    r.id = l->id;
    r.value = l->backlog;
    r.local.addr = l->addr;
    r.local.port = l->port;
    const int fds[1] = {l->memfd.get()};
    SendMsg(s->fd.get(), r, fds, 1);
    return;
  }
  Channel* c = FindChannel(w.id);
  if (c == nullptr) {
    ReplyStatus(s, m, ENOENT);
    return;
  }
  r.kind = shm::kSharePipe;
  r.id = c->id;
  r.id2 = c->listener_id;
  r.value = c->view()->capacity();
  r.value64 = c->engine != nullptr ? shm::kChannelEngine : shm::kChannelSameHost;
  r.slot = w.slot;
  r.gen = w.gen;
  r.end = w.end;
  const int fds[1] = {c->memfd()};
  SendMsg(s->fd.get(), r, fds, 1);
  s->channels_sent.insert(c->id);
}

}  // namespace session
}  // namespace offload
