// ShadowPorts (shadow_ports.h).

#include "client/shadow_ports.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "client/attach.h"
#include "client/libc.h"

namespace offload {
namespace client {

namespace {

// The pool: ports bound with SO_REUSEADDR by this process's live shadows,
// how many shadows hold each, and which destinations each serves.
struct Pool {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  uint32_t live = 0;                                 // pooled or not
  std::vector<uint16_t> ports;                       // ports with holders, any order
  std::unordered_map<uint16_t, uint32_t> index;      // port -> position in `ports`
  std::unordered_map<uint16_t, uint32_t> holders;    // port -> live shadows on it
  std::unordered_set<uint64_t> in_use;               // (destination key, port) pairs
  uint32_t fork_gen = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
};
Pool* g_pool = nullptr;
pthread_once_t g_pool_once = PTHREAD_ONCE_INIT;

Pool* GetPool() {
  pthread_once(&g_pool_once, [] { g_pool = new Pool(); });
  return g_pool;
}

uint64_t DestKey(const shm::SockAddr& d) {
  // FNV-1a over family, port and address: two destinations with one key
  // only share less.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  mix(reinterpret_cast<const uint8_t*>(&d.family), sizeof(d.family));
  mix(reinterpret_cast<const uint8_t*>(&d.port), sizeof(d.port));
  mix(d.addr, d.family == AF_INET ? 4 : 16);
  return h;
}

uint64_t PairKey(uint64_t dest, uint16_t port) { return (dest << 16) ^ (dest >> 48) ^ port; }

// REQUIRES: p->mu held.
void AddHolder(Pool* p, uint16_t port) {
  if (p->holders[port]++ == 0) {
    p->index[port] = static_cast<uint32_t>(p->ports.size());
    p->ports.push_back(port);
  }
}

void DropHolder(Pool* p, uint16_t port) {
  auto it = p->holders.find(port);
  if (it == p->holders.end()) return;
  if (--it->second != 0) return;
  p->holders.erase(it);
  // Nobody holds it: the kernel frees it, and it may become another
  // process's, so it leaves the pool.
  const uint32_t at = p->index[port];
  const uint16_t last = p->ports.back();
  p->ports[at] = last;
  p->index[last] = at;
  p->ports.pop_back();
  p->index.erase(port);
}

bool BindPort(int fd, int family, uint16_t port_net) {
  sockaddr_storage ss = {};
  socklen_t len;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = port_net;
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = port_net;
    len = sizeof(*a);
  }
  return Real().bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
}

// Records that `s`'s shadow holds pooled `port` for `dest`.
// REQUIRES: p->mu held.
void TakePort(Pool* p, Socket* s, uint16_t port, uint64_t dest) {
  AddHolder(p, port);
  p->in_use.insert(PairKey(dest, port));
  s->tcp->shadow_port = port;
  s->tcp->shadow_dest = dest;
}

uint16_t BoundPort(int fd) {
  sockaddr_storage ss = {};
  socklen_t len = sizeof(ss);
  if (Real().getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                  : reinterpret_cast<sockaddr_in*>(&ss)->sin_port;
}

}  // namespace

bool BindShadowPort(Socket* s, const shm::SockAddr& dst, bool shareable) {
  Pool* p = GetPool();
  pthread_mutex_lock(&p->mu);
  if (p->fork_gen != ForkGeneration()) {
    // A forked child: the pool's ports are held by the parent's shadows.
    p->live = 0;
    p->ports.clear();
    p->index.clear();
    p->holders.clear();
    p->in_use.clear();
    p->fork_gen = ForkGeneration();
  }
  const bool share = shareable && p->live >= kShareAbove;
  ++p->live;
  s->tcp->shadow_port_gen = p->fork_gen;
  s->tcp->shadow_port_counted = true;
  if (!share) {
    pthread_mutex_unlock(&p->mu);
    if (BindPort(s->fd, s->family, 0)) return true;
    const int err = errno;
    ReleaseShadowPort(s);
    errno = err;
    return false;
  }
  const uint64_t dest = DestKey(dst);
  const int one = 1;
  Real().setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  s->tcp->reuseaddr_forced = true;
  // A few random ports of the pool; one this process does not use for
  // `dst` is shared. (A port every pooled shadow uses for dst: a new one.)
  for (int probe = 0; probe < 4 && !p->ports.empty(); ++probe) {
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    const uint16_t port = p->ports[p->rng % p->ports.size()];
    if (p->in_use.count(PairKey(dest, port)) != 0) continue;
    if (!BindPort(s->fd, s->family, port)) continue;  // e.g. a listener took it meanwhile
    TakePort(p, s, port, dest);
    pthread_mutex_unlock(&p->mu);
    return true;
  }
  // A port of its own (SO_REUSEADDR set: the next connects may share it).
  if (!BindPort(s->fd, s->family, 0)) {
    const int err = errno;
    pthread_mutex_unlock(&p->mu);
    ReleaseShadowPort(s);
    errno = err;
    return false;
  }
  TakePort(p, s, BoundPort(s->fd), dest);
  pthread_mutex_unlock(&p->mu);
  return true;
}

void ReleaseShadowPort(Socket* s) {
  if (s->tcp == nullptr || !s->tcp->shadow_port_counted) return;  // UDP: never pooled
  s->tcp->shadow_port_counted = false;
  Pool* p = GetPool();
  pthread_mutex_lock(&p->mu);
  if (s->tcp->shadow_port_gen == p->fork_gen) {
    if (p->live > 0) --p->live;
    if (s->tcp->shadow_port != 0) {
      p->in_use.erase(PairKey(s->tcp->shadow_dest, s->tcp->shadow_port));
      DropHolder(p, s->tcp->shadow_port);
    }
  }
  pthread_mutex_unlock(&p->mu);
  s->tcp->shadow_port = 0;
}

void ShadowPortsAtForkChild() {
  // The parent's thread may have held the mutex.
  Pool* p = GetPool();
  pthread_mutex_init(&p->mu, nullptr);
}

}  // namespace client
}  // namespace offload
