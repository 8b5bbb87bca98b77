// Accept queues of offloaded listeners (listener.h).

#include "shm/listener.h"

#include "shm/abi.h"

#include <errno.h>

#include <cstring>

namespace offload {
namespace shm {

namespace {

void LockQueue(ListenerHeader* l) {
  // A holder that died mid-operation left the indices consistent (an entry
  // is written before the tail that publishes it): take the lock over.
  if (pthread_mutex_lock(&l->q_mu) == EOWNERDEAD) pthread_mutex_consistent(&l->q_mu);
}

}  // namespace

void InitListener(ListenerHeader* l, uint32_t id, const SockAddr& local, uint32_t backlog) {
  l->magic = kListenerMagic;
  l->abi_version = kAbiVersion;
  l->listener_id = id;
  l->local = local;
  l->backlog = backlog;
  l->num_engines = kMaxAcceptEngines;
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&l->q_mu, &a);
  pthread_mutexattr_destroy(&a);
  l->q_head.store(0, std::memory_order_relaxed);
  l->q_tail.store(0, std::memory_order_relaxed);
  for (EngineAcceptRing& r : l->engine) {
    r.tail.store(0, std::memory_order_relaxed);
    r.head.store(0, std::memory_order_relaxed);
  }
  // Release: everything above before a reader sees the listener open.
  l->state.store(kListening, std::memory_order_release);
}

PostResult PostConnection(ListenerHeader* l, const AcceptEntry& e) {
  LockQueue(l);
  // Under the lock: the daemon sets kListenerClosed and then drains the
  // queue under it, so nothing is posted after its drain. Acquire: pairs
  // with its store-release.
  if (l->state.load(std::memory_order_acquire) != kListening) {
    pthread_mutex_unlock(&l->q_mu);
    return PostResult::kClosed;
  }
  const uint32_t head = l->q_head.load(std::memory_order_relaxed);
  const uint32_t tail = l->q_tail.load(std::memory_order_relaxed);
  if (tail - head >= kAcceptQueueCap) {
    pthread_mutex_unlock(&l->q_mu);
    l->refused.fetch_add(1, std::memory_order_relaxed);
    return PostResult::kFull;
  }
  l->q[tail % kAcceptQueueCap] = e;
  // Release: the entry before the tail that publishes it (lock-free
  // readiness checks load q_tail with acquire).
  l->q_tail.store(tail + 1, std::memory_order_release);
  pthread_mutex_unlock(&l->q_mu);
  l->posted.fetch_add(1, std::memory_order_relaxed);
  return PostResult::kPosted;
}

bool TakeConnection(ListenerHeader* l, AcceptEntry* e, int* engine) {
  LockQueue(l);
  const uint32_t head = l->q_head.load(std::memory_order_relaxed);
  if (head != l->q_tail.load(std::memory_order_relaxed)) {
    *e = l->q[head % kAcceptQueueCap];
    l->q_head.store(head + 1, std::memory_order_release);
    pthread_mutex_unlock(&l->q_mu);
    *engine = -1;
    l->accepted.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  for (uint32_t i = 0; i < kMaxAcceptEngines; ++i) {
    EngineAcceptRing& r = l->engine[i];
    const uint64_t h = r.head.load(std::memory_order_relaxed);
    // Acquire: pairs with the engine's store-release of tail.
    if (h == r.tail.load(std::memory_order_acquire)) continue;
    *e = l->engine_q[i][h % kEngineAcceptCap];
    // Release: the entry is copied before the engine may reuse it.
    r.head.store(h + 1, std::memory_order_release);
    pthread_mutex_unlock(&l->q_mu);
    *engine = static_cast<int>(i);
    l->accepted.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  pthread_mutex_unlock(&l->q_mu);
  return false;
}

bool PostEngineConnection(ListenerHeader* l, uint32_t engine, const AcceptEntry& e,
                          uint64_t* tail) {
  if (engine >= kMaxAcceptEngines) return false;
  EngineAcceptRing& r = l->engine[engine];
  // Acquire: pairs with the acceptor's store-release of head. A head the
  // application moved past our tail (corrupt) reads as "full".
  const uint64_t head = r.head.load(std::memory_order_acquire);
  if (*tail - head >= kEngineAcceptCap) return false;
  l->engine_q[engine][*tail % kEngineAcceptCap] = e;
  ++*tail;
  // Release: the entry before the tail that publishes it.
  r.tail.store(*tail, std::memory_order_release);
  l->posted.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace shm
}  // namespace offload
