// TcpBroker: listeners, same-host channels, shared sockets and closes (the
// wire half is tcp_broker_wire.cc). Near 470 lines: the requests and the
// closes they race with (listener drains, slot frees deferred while a
// process holds a lock) are kept in one file on purpose.

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

// Takes a listener's queue lock without ever waiting for a process.
bool TryLockQueue(shm::ListenerHeader* h) {
  const int rc = pthread_mutex_trylock(&h->q_mu);
  if (rc == EOWNERDEAD) {
    pthread_mutex_consistent(&h->q_mu);
    return true;
  }
  return rc == 0;
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

void TcpBroker::FreeSlotRequest(Session* s, const Msg& m) {
  Channel* c = FindChannel(m.id);
  shm::PipeRecord* r = c != nullptr ? c->view()->Record(m.slot) : nullptr;
  if (r == nullptr || r->ctl.gen.load(std::memory_order_acquire) != m.gen ||
      r->ctl.closed.load(std::memory_order_acquire) != 3u) {
    return;
  }
  FreeSlot(c, m.slot, m.gen);
}

void TcpBroker::OnReleased(int wd) {
  auto it = watched_.find(wd);
  if (it == watched_.end()) return;
  const Watched w = it->second;
  watched_.erase(it);
  auto byi = wd_by_inode_.find(w.inode);
  if (byi != wd_by_inode_.end() && byi->second == wd) wd_by_inode_.erase(byi);
  if (w.listener) {
    if (Listener* l = FindListener(w.id)) CloseListener(l);
    return;
  }
  if (Channel* c = FindChannel(w.id)) CloseEnd(c, w.slot, w.gen, w.end, /*abort=*/false);
}

void TcpBroker::OnSessionGone(Session* s) {
  if (!s->hello_done) return;
  const shm::ArenaHeader* a = s->header();
  // The daemon's own numbers, never the arena's.
  const uint32_t max = a->max_sockets;
  const uint64_t bytes = s->arena.size();
  if (a->slots_offset + uint64_t{max} * sizeof(shm::SocketSlot) > bytes) return;
  const auto* slots = reinterpret_cast<const shm::SocketSlot*>(
      reinterpret_cast<const uint8_t*>(a) + a->slots_offset);
  // Only the slots the process ever used (ArenaHeader::slots_hwm, clamped):
  // a scan of all max_sockets (131072) faulted in megabytes of untouched
  // shared memory at every detach and held up every other request of the
  // session thread meanwhile (a connect's SYN left 140 ms late while the
  // short-lived processes of a shell script came and went).
  const uint32_t used =
      std::min(a->slots_hwm.load(std::memory_order_acquire), max);
  for (uint32_t i = 0; i < used; ++i) {
    const shm::SocketSlot& slot = slots[i];
    // Acquire: pairs with the process's store-release of in_use.
    if (slot.in_use.load(std::memory_order_acquire) != 1) continue;
    const uint32_t channel = slot.channel_id, pslot = slot.pipe_slot, gen = slot.pipe_gen;
    const uint8_t end = slot.pipe_end;
    const uint64_t inode = slot.inode;
    if (channel == 0 || end > 1 || inode == 0 ||
        slot.share.load(std::memory_order_acquire) != shm::kSlotExclusive) {
      continue;
    }
    Channel* c = FindChannel(channel);
    shm::PipeRecord* r = c != nullptr ? c->view()->Record(pslot) : nullptr;
    // The record must say the same: the process cannot make us close a
    // connection that was not its own.
    if (r == nullptr || r->ctl.gen.load(std::memory_order_acquire) != gen ||
        r->end[end].inode != inode || wd_by_inode_.count(inode)) {
      continue;
    }
    CloseEnd(c, pslot, gen, end, /*abort=*/false);
  }
  for (const auto& [id, c] : channels_) {
    if (c->map != nullptr && c->connector == s->serial) orphans_.insert(id);
  }
  ReapChannels();
}

void TcpBroker::ReapChannels() {
  for (auto it = orphans_.begin(); it != orphans_.end();) {
    const uint32_t id = *it;
    Channel* c = FindChannel(id);
    if (c == nullptr) {
      it = orphans_.erase(it);
      continue;
    }
    // Every slot the file holds must be free. The channel is untrusted: a
    // process keeping a slot "open" only keeps its own channel alive.
    shm::ChannelMap* v = c->map.get();
    const uint64_t slots = uint64_t{std::min(v->header()->num_extents.load(std::memory_order_acquire),
                                             v->header()->max_extents)} *
                           shm::kSlotsPerExtent;
    bool busy = false;
    for (uint64_t i = 0; i < slots && !busy; ++i) {
      const shm::PipeRecord* r = v->Record(static_cast<uint32_t>(i));
      busy = r != nullptr && r->ctl.state.load(std::memory_order_acquire) != shm::kSlotFree;
    }
    if (busy) {
      ++it;
      continue;
    }
    if (Listener* l = FindListener(c->listener_id)) {
      auto known = l->channels.find(c->connector);
      if (known != l->channels.end() && known->second == id) l->channels.erase(known);
    }
    spdlog::debug("channel {} retired (its process is gone, every slot free)", id);
    channels_.erase(id);
    it = orphans_.erase(it);
    if (env_.channel_gone) env_.channel_gone(id);
  }
}

void TcpBroker::Wake(shm::RingWaitLine* w, uint32_t bits) {
  if (bits != 0) wire::WakeWaitLine(w, bits, env_.doorbells);
}

void TcpBroker::CloseEnd(Channel* c, uint32_t slot, uint32_t gen, uint32_t end, bool abort) {
  shm::PipeRecord* r = c->view()->Record(slot);
  if (r == nullptr || end > 1 || r->ctl.gen.load(std::memory_order_acquire) != gen) return;
  if (abort) r->end[end].flags.fetch_or(shm::kEndLingerAbort, std::memory_order_acq_rel);
  spdlog::debug("pipe {}/{} end {} ends ({})", c->id, slot, end, abort ? "abort" : "close");
  const shm::CloseWakeups w = shm::CloseEnd(r, static_cast<int>(end));
  Wake(&r->dir[end].reader_wait, w.peer_readers);
  Wake(&r->dir[1 - end].writer_wait, w.peer_writers);
  if (w.free_slot) FreeSlot(c, slot, gen);
}

void TcpBroker::FreeSlot(Channel* c, uint32_t slot, uint32_t gen) {
  if (c->engine != nullptr) {
    c->engine->Free(slot, gen);
    return;
  }
  shm::PipeRecord* r = c->map->Record(slot);
  if (r == nullptr || r->ctl.gen.load(std::memory_order_acquire) != gen) return;
  if (!c->map->Free(slot, /*try_only=*/true)) deferred_frees_.push_back({c->id, slot, gen});
}

void TcpBroker::CloseListener(Listener* l) {
  // Release: connectors that load kListenerClosed stop posting (they check
  // under the queue lock, so none posts after our drain below).
  l->header()->state.store(shm::kListenerClosed, std::memory_order_release);
  WireUnlisten(l);
  const uint16_t port = l->port;
  const uint32_t id = l->id;
  auto it = listeners_.find(id);
  std::unique_ptr<Listener> owned = std::move(it->second);
  listeners_.erase(it);
  bool port_used = false;
  for (const auto& [other_id, other] : listeners_) port_used |= other->port == port;
  if (!port_used) env_.publish_port(port, false);
  // Drained once now and once more later: an engine may post a connection
  // it accepted just before it saw the listener closed.
  DrainListener(owned.get());
  closing_listeners_.push_back(std::move(owned));
}

bool TcpBroker::DrainListener(Listener* l) {
  shm::ListenerHeader* h = l->header();
  if (!TryLockQueue(h)) return false;
  // Connections never accepted are reset, as Linux does when a listener
  // with a non-empty accept queue is closed.
  std::vector<shm::AcceptEntry> pending;
  uint32_t head = h->q_head.load(std::memory_order_relaxed);
  const uint32_t tail = h->q_tail.load(std::memory_order_acquire);
  for (uint32_t n = 0; head != tail && n < shm::kAcceptQueueCap; ++head, ++n) {
    pending.push_back(h->q[head % shm::kAcceptQueueCap]);
  }
  h->q_head.store(head, std::memory_order_release);
  for (uint32_t e = 0; e < shm::kMaxAcceptEngines; ++e) {
    shm::EngineAcceptRing& ring = h->engine[e];
    uint64_t eh = ring.head.load(std::memory_order_relaxed);
    const uint64_t et = ring.tail.load(std::memory_order_acquire);
    for (uint32_t n = 0; eh != et && n < shm::kEngineAcceptCap; ++eh, ++n) {
      pending.push_back(h->engine_q[e][eh % shm::kEngineAcceptCap]);
    }
    ring.head.store(eh, std::memory_order_release);
  }
  pthread_mutex_unlock(&h->q_mu);
  for (const shm::AcceptEntry& e : pending) {
    if (Channel* c = FindChannel(e.channel_id)) CloseEnd(c, e.slot, e.gen, 1, /*abort=*/true);
  }
  return true;
}

bool TcpBroker::RetryDeferred() {
  std::vector<DeferredFree> frees;
  frees.swap(deferred_frees_);
  for (const DeferredFree& f : frees) {
    if (Channel* c = FindChannel(f.channel)) FreeSlot(c, f.slot, f.gen);
  }
  std::vector<std::unique_ptr<Listener>> closing;
  closing.swap(closing_listeners_);
  for (auto& l : closing) {
    // Each closing listener is drained twice (see CloseListener); one that
    // could not be locked stays for another round.
    if (!DrainListener(l.get())) closing_listeners_.push_back(std::move(l));
  }
  return !deferred_frees_.empty() || !closing_listeners_.empty();
}

}  // namespace session
}  // namespace offload
