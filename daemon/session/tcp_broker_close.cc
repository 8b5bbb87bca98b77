// TcpBroker: closes and reaping: slot frees (deferred while a process holds
// a lock), released shared sockets, a session's death, channel reaping and
// listener drains. They race with the requests of tcp_broker.cc: read both
// when changing either.

#include <errno.h>
#include <pthread.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "daemon/session/tcp_broker.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace session {

using shm::Msg;

namespace {

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
    // process keeping a slot "open" only keeps its own channel alive. The
    // scan resumes where the last one stopped (Channel::reap_cursor), so a
    // server that keeps a dead client's connections open costs one look
    // per orphan here, not a rescan of its slots.
    shm::ChannelMap* v = c->map.get();
    const uint64_t slots = uint64_t{std::min(v->header()->num_extents.load(std::memory_order_acquire),
                                             v->header()->max_extents)} *
                           shm::kSlotsPerExtent;
    uint64_t i = c->reap_cursor;
    for (; i < slots; ++i) {
      const shm::PipeRecord* r = v->Record(static_cast<uint32_t>(i));
      if (r != nullptr && r->ctl.state.load(std::memory_order_acquire) != shm::kSlotFree) break;
    }
    c->reap_cursor = i;
    if (i < slots) {
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
