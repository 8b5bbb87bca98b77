// Mapped channels, listener segments and the route cache (channels.h).

#include "client/channels.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <array>
#include <cstring>
#include <map>
#include <unordered_map>

#include "client/attach.h"
#include "client/log.h"
#include "shm/abi.h"

namespace offload {
namespace client {

namespace {

pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;  // guards everything below

// Heap tables, created on first use (the library must not run constructors
// of globals before libc is ready); never destroyed (process lifetime).
struct ChannelEntry {
  shm::ChannelMap* map = nullptr;
  uint32_t refs = 0;     // pipe ends of this process using it
  bool retired = false;  // offloadd retired it: unmapped at refs == 0
};
std::unordered_map<uint32_t, ChannelEntry>* g_channels = nullptr;

struct ListenerMap {
  shm::ListenerHeader* hdr = nullptr;
  uint32_t refs = 0;
};
std::unordered_map<uint32_t, ListenerMap>* g_listeners = nullptr;
// Destination address (16-byte form, IPv4 v4-mapped) and port.
using RouteKeyT = std::array<uint8_t, 18>;
std::map<RouteKeyT, Route>* g_routes = nullptr;

RouteKeyT RouteKey(const shm::SockAddr& dst) {
  RouteKeyT k;
  shm::Addr16Of(dst, k.data());
  std::memcpy(k.data() + 16, &dst.port, 2);
  return k;
}

void EnsureTablesLocked() {
  if (g_channels == nullptr) g_channels = new std::unordered_map<uint32_t, ChannelEntry>();
  if (g_listeners == nullptr) g_listeners = new std::unordered_map<uint32_t, ListenerMap>();
  if (g_routes == nullptr) g_routes = new std::map<RouteKeyT, Route>();
}

void ReleaseListenerLocked(uint32_t id) {
  auto it = g_listeners->find(id);
  if (it == g_listeners->end() || --it->second.refs != 0) return;
  munmap(it->second.hdr, shm::ListenerSegmentBytes());
  g_listeners->erase(it);
}

}  // namespace

shm::ChannelMap* FindChannel(uint32_t id) {
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  auto it = g_channels->find(id);
  shm::ChannelMap* c = it == g_channels->end() || it->second.retired ? nullptr : it->second.map;
  pthread_mutex_unlock(&g_mu);
  return c;
}

void AcquireChannel(shm::ChannelMap* c) {
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  auto it = g_channels->find(c->id());
  if (it != g_channels->end() && it->second.map == c) ++it->second.refs;
  pthread_mutex_unlock(&g_mu);
}

void ReleaseChannel(shm::ChannelMap* c) {
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  auto it = g_channels->find(c->id());
  shm::ChannelMap* drop = nullptr;
  if (it != g_channels->end() && it->second.map == c && it->second.refs != 0 &&
      --it->second.refs == 0 && it->second.retired) {
    drop = c;
    g_channels->erase(it);
  }
  pthread_mutex_unlock(&g_mu);
  delete drop;  // unmaps and closes the memfd
}

void RetireChannel(uint32_t id) {
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  auto it = g_channels->find(id);
  shm::ChannelMap* drop = nullptr;
  if (it != g_channels->end()) {
    it->second.retired = true;
    if (it->second.refs == 0) {
      drop = it->second.map;
      g_channels->erase(it);
    }
  }
  pthread_mutex_unlock(&g_mu);
  delete drop;
}

shm::ChannelMap* AddChannel(shm::UniqueFd memfd) {
  std::unique_ptr<shm::ChannelMap> map = shm::ChannelMap::Open(std::move(memfd), false);
  if (map == nullptr) return nullptr;
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  ChannelEntry& slot = (*g_channels)[map->id()];
  if (slot.map == nullptr) slot.map = map.release();  // else: ours already; the new one unmaps
  shm::ChannelMap* c = slot.retired ? nullptr : slot.map;
  pthread_mutex_unlock(&g_mu);
  return c;
}

shm::ChannelMap* MapChannelVia(uint32_t id, int proof_fd) {
  if (shm::ChannelMap* c = FindChannel(id)) return c;
  shm::Msg m = {};
  m.type = shm::MsgType::kMapChannel;
  m.id = id;
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, &proof_fd, 1, &r, rfds, &nr)) return nullptr;
  shm::UniqueFd memfd(nr > 0 ? rfds[0] : -1);
  for (int i = 1; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
  if (r.type != shm::MsgType::kChannel || r.id != id) {
    Log(2, "offloadd refused channel %u (%d)", id, r.status);
    return nullptr;
  }
  return AddChannel(std::move(memfd));
}

shm::ListenerHeader* AcquireListener(uint32_t id, shm::UniqueFd memfd) {
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  auto it = g_listeners->find(id);
  if (it != g_listeners->end()) {
    ++it->second.refs;
    shm::ListenerHeader* h = it->second.hdr;
    pthread_mutex_unlock(&g_mu);
    return h;
  }
  pthread_mutex_unlock(&g_mu);
  if (!memfd.valid()) return nullptr;
  struct stat st;
  if (fstat(memfd.get(), &st) != 0 || static_cast<uint64_t>(st.st_size) < shm::ListenerSegmentBytes()) {
    return nullptr;
  }
  void* p = mmap(nullptr, shm::ListenerSegmentBytes(), PROT_READ | PROT_WRITE, MAP_SHARED,
                 memfd.get(), 0);
  if (p == MAP_FAILED) return nullptr;
  auto* h = static_cast<shm::ListenerHeader*>(p);
  if (h->magic != shm::kListenerMagic || h->abi_version != shm::kAbiVersion ||
      h->listener_id != id) {
    munmap(p, shm::ListenerSegmentBytes());
    return nullptr;
  }
  pthread_mutex_lock(&g_mu);
  ListenerMap& e = (*g_listeners)[id];
  if (e.hdr == nullptr) {
    e.hdr = h;
  } else {
    munmap(p, shm::ListenerSegmentBytes());  // another thread mapped it meanwhile
  }
  ++e.refs;
  h = e.hdr;
  pthread_mutex_unlock(&g_mu);
  return h;
}

void ReleaseListener(uint32_t id) {
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  ReleaseListenerLocked(id);
  pthread_mutex_unlock(&g_mu);
}

bool LookupRoute(const shm::SockAddr& dst, Route* out) {
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  auto it = g_routes->find(RouteKey(dst));
  bool ok = false;
  if (it != g_routes->end()) {
    // Acquire: pairs with offloadd's store-release of kListenerClosed.
    if (it->second.hdr->state.load(std::memory_order_acquire) == shm::kListening) {
      *out = it->second;
      ok = true;
    } else {
      ReleaseListenerLocked(it->second.listener_id);
      g_routes->erase(it);
    }
  }
  pthread_mutex_unlock(&g_mu);
  return ok;
}

void InsertRoute(const shm::SockAddr& dst, const Route& r) {
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  auto [it, inserted] = g_routes->emplace(RouteKey(dst), r);
  if (!inserted) {
    ReleaseListenerLocked(it->second.listener_id);
    it->second = r;
  }
  pthread_mutex_unlock(&g_mu);
}

void EvictRoute(const shm::SockAddr& dst) {
  pthread_mutex_lock(&g_mu);
  EnsureTablesLocked();
  auto it = g_routes->find(RouteKey(dst));
  if (it != g_routes->end()) {
    ReleaseListenerLocked(it->second.listener_id);
    g_routes->erase(it);
  }
  pthread_mutex_unlock(&g_mu);
}

void ChannelsAtForkChild() {
  pthread_mutex_init(&g_mu, nullptr);
  if (g_routes == nullptr) return;
  for (auto& [key, route] : *g_routes) ReleaseListenerLocked(route.listener_id);
  g_routes->clear();
}

}  // namespace client
}  // namespace offload
