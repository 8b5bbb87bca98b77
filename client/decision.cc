#include "client/decision.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "client/attach.h"
#include "client/config.h"
#include "client/inet_name.h"
#include "client/log.h"

namespace offload {
namespace client {

namespace {

pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
std::vector<rules::Rule>* g_local_rules = nullptr;    // guarded by g_mu
std::vector<rules::Rule>* g_published = nullptr;      // guarded by g_mu
uint32_t g_published_seq = 1;                          // odd = never read
const shm::ArenaHeader* g_published_arena = nullptr;

struct LocalThread {
  pthread_t tid;
  bool offload;
};
std::vector<LocalThread>* g_local_threads = nullptr;  // guarded by g_mu

// The caller's kernel thread id, cached with its EndLock token (no system
// call per socket).
pid_t Tid() { return static_cast<pid_t>(CallerToken() & 0xffffffffu); }

// Copies the published table under its seqlock if it changed.
void RefreshPublishedLocked(const shm::ArenaHeader* a) {
  const shm::PublishedRules& p = a->rules;
  for (int tries = 0; tries < 1000; ++tries) {
    // Acquire: pairs with the daemon's release increment (even = stable).
    const uint32_t s1 = p.lock.seq.load(std::memory_order_acquire);
    if (s1 & 1) continue;
    if (s1 == g_published_seq && a == g_published_arena) return;
    uint32_t n = p.count;
    if (n > shm::kMaxPublishedRules) n = shm::kMaxPublishedRules;
    if (g_published == nullptr) g_published = new std::vector<rules::Rule>();
    g_published->resize(n);
    memcpy(static_cast<void*>(g_published->data()), p.rules, n * sizeof(rules::Rule));
    std::atomic_thread_fence(std::memory_order_acquire);
    if (p.lock.seq.load(std::memory_order_relaxed) == s1) {
      g_published_seq = s1;
      g_published_arena = a;
      return;
    }
  }
}

}  // namespace

bool ThreadOffloadEnabled() {
  const pid_t tid = Tid();
  const pthread_t self = pthread_self();
  pthread_mutex_lock(&g_mu);
  if (g_local_threads != nullptr) {
    for (const auto& t : *g_local_threads) {
      if (pthread_equal(t.tid, self)) {
        const bool on = t.offload;
        pthread_mutex_unlock(&g_mu);
        return on;
      }
    }
  }
  pthread_mutex_unlock(&g_mu);
  if (const shm::ArenaHeader* a = Arena()) {
    const shm::ThreadTable& t = a->threads;
    for (int tries = 0; tries < 1000; ++tries) {
      const uint32_t s1 = t.lock.seq.load(std::memory_order_acquire);
      if (s1 & 1) continue;
      int found = -1;
      uint32_t n = t.count;
      if (n > shm::kMaxThreadEntries) n = shm::kMaxThreadEntries;
      for (uint32_t i = 0; i < n; ++i) {
        if (t.entries[i].tid == static_cast<uint32_t>(tid)) found = t.entries[i].offload != 0;
      }
      std::atomic_thread_fence(std::memory_order_acquire);
      if (t.lock.seq.load(std::memory_order_relaxed) != s1) continue;
      if (found >= 0) return found == 1;
      break;
    }
  }
  return Config().offloaded_sockets;
}

void SetLocalThreadOffload(pthread_t tid, bool offload) {
  pthread_mutex_lock(&g_mu);
  if (g_local_threads == nullptr) g_local_threads = new std::vector<LocalThread>();
  bool found = false;
  for (auto& t : *g_local_threads) {
    if (pthread_equal(t.tid, tid)) {
      t.offload = offload;
      found = true;
    }
  }
  if (!found) g_local_threads->push_back({tid, offload});
  pthread_mutex_unlock(&g_mu);
}

namespace {
// An endpoint as the rules see it (rules::Query): IPv4 and v4-mapped in
// host order, other IPv6 addresses through `addr6` (which `a` must outlive
// the query).
void SetQueryAddr(const shm::SockAddr& a, uint32_t* addr, const uint8_t** addr6, uint16_t* port) {
  *addr = a.family == AF_INET ? ntohl(shm::V4Of(a)) : 0;
  *addr6 = a.family == AF_INET6 ? a.addr : nullptr;
  *port = ntohs(a.port);
}
}  // namespace

bool Decide(Socket* s, rules::Role role, const InetName* local, const InetName* remote) {
  if (!s->thread_offload) {
    s->fallback = shm::Fallback::kThreadOff;
    return false;
  }
  if (!EnsureAttached()) {
    s->fallback = shm::Fallback::kDaemonAbsent;
    return false;
  }
  rules::Query q;
  q.role = role;
  const shm::SockAddr l = local != nullptr ? Canonical(*local) : shm::SockAddr{};
  const shm::SockAddr r = remote != nullptr ? Canonical(*remote) : shm::SockAddr{};
  if (local != nullptr) SetQueryAddr(l, &q.local_addr, &q.local_addr6, &q.local_port);
  if (remote != nullptr) SetQueryAddr(r, &q.remote_addr, &q.remote_addr6, &q.remote_port);
  q.program = Config().program;
  q.application_id = Config().application_id;
  pthread_mutex_lock(&g_mu);
  rules::Decision d;
  bool decided = false;
  if (g_local_rules != nullptr && !g_local_rules->empty()) {
    d = rules::Match(g_local_rules->data(), g_local_rules->size(), q);
    decided = d.index >= 0;
  }
  if (!decided) {
    if (const shm::ArenaHeader* a = Arena()) RefreshPublishedLocked(a);
    if (g_published != nullptr) d = rules::Match(g_published->data(), g_published->size(), q);
  }
  pthread_mutex_unlock(&g_mu);
  s->rule_id = d.rule_id;
  if (d.transport == rules::Transport::kOs) {
    s->fallback = shm::Fallback::kRule;
    Log(4, "fd %d: rule %u says os (%s)", s->fd, d.rule_id, rules::RoleName(role));
    return false;
  }
  return true;
}

bool OptionKeepsKernel(int level, int name, const void* val, socklen_t len, char* detail,
                       size_t detail_size) {
  if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
    // The kernel accepted the name (the caller checks), so it is a real one;
    // like the kernel, it ends at the first NUL.
    char cc[16] = {};
    if (val != nullptr) memcpy(cc, val, len < sizeof(cc) - 1 ? len : sizeof(cc) - 1);
    if (strcmp(cc, "cubic") == 0) return false;
    snprintf(detail, detail_size, "TCP_CONGESTION %s", cc);
    return true;
  }
  // Flags that only matter when turned on: turning one off changes nothing.
  int on = 1;
  if (val != nullptr && len >= static_cast<socklen_t>(sizeof(int))) memcpy(&on, val, sizeof(int));
  bool unsupported = false;
  if (level == SOL_SOCKET) {
    // Receive control messages (timestamps, drop counts) the rings do not
    // carry, and what only the kernel's path can do.
    unsupported = name == SO_BINDTODEVICE || name == SO_ATTACH_FILTER || name == SO_BROADCAST ||
                  name == SO_MARK ||
                  (on != 0 && (name == SO_TIMESTAMP || name == SO_TIMESTAMPNS ||
                               name == SO_TIMESTAMPING || name == SO_RXQ_OVFL ||
                               name == SO_TIMESTAMP_NEW || name == SO_TIMESTAMPNS_NEW ||
                               name == SO_TIMESTAMPING_NEW));
  } else if (level == IPPROTO_IP) {
    // Group memberships and IP_MULTICAST_* are honoured (udp.cc); source
    // filters and receive control messages are not.
    unsupported = name == IP_ADD_SOURCE_MEMBERSHIP || name == MCAST_JOIN_SOURCE_GROUP ||
                  (on != 0 && (name == IP_TRANSPARENT || name == IP_PKTINFO ||
                               name == IP_RECVERR || name == IP_RECVTOS ||
                               name == IP_RECVTTL || name == IP_RECVOPTS ||
                               name == IP_RETOPTS || name == IP_RECVORIGDSTADDR ||
                               name == IP_RECVFRAGSIZE));
  } else if (level == IPPROTO_IPV6) {
    unsupported = on != 0 && (name == IPV6_RECVPKTINFO || name == IPV6_RECVTCLASS ||
                              name == IPV6_RECVHOPLIMIT || name == IPV6_RECVERR ||
                              name == IPV6_RECVORIGDSTADDR || name == IPV6_RECVPATHMTU ||
                              name == IPV6_TRANSPARENT);
  } else if (level == IPPROTO_UDP) {
    // Segmentation offload: one send is several datagrams.
    unsupported = on != 0 && (name == UDP_SEGMENT || name == UDP_GRO);
  } else if (level == IPPROTO_TCP) {
    unsupported = name == TCP_MD5SIG || name == TCP_FASTOPEN || name == TCP_REPAIR;
  }
  if (unsupported) snprintf(detail, detail_size, "opt %d/%d", level, name);
  return unsupported;
}

int AddLocalRule(const char* line) {
  rules::Rule r;
  rules::ParseError err;
  if (line == nullptr || !rules::ParseRuleLine(line, 0, &r, &err)) {
    if (line != nullptr) Log(1, "add_conf_rule: %s", err.ToString().c_str());
    return -1;
  }
  pthread_mutex_lock(&g_mu);
  if (g_local_rules == nullptr) g_local_rules = new std::vector<rules::Rule>();
  g_local_rules->insert(g_local_rules->begin(), r);  // VMA: added on top
  pthread_mutex_unlock(&g_mu);
  return 0;
}

}  // namespace client
}  // namespace offload
