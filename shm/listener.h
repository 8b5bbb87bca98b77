// The shared state of an offloaded TCP listener: its accept queue.
//
// offloadd creates one listener segment (a memfd, sealed) per offloaded
// listening socket and hands it to every process that holds the socket
// (the one that called listen(), its children, processes it passed the
// socket to) and to every process that connects to it. Connections are
// queued here and taken by whichever holder calls accept() first, so a
// pre-fork server hands each connection to a process that is accepting,
// as the kernel does.
//
// Two queues feed it:
//   * the connectors' queue: processes on this host post the pipe slot of
//     a new connection (shm/pipe.h) under `q_mu`;
//   * one ring per engine: an engine thread posts connections it accepted
//     on the wire (single producer, lock-free; consumers take them under
//     `q_mu`). An engine never takes a lock an application can hold.
// Acceptors sleep on `accept_wait` (futex for accept(), doorbells for
// poll/epoll), armed and woken as in shm/ring.h.
//
// Trust: the daemon never takes q_mu and reads nothing here but `state`.
// Entries are validated by the acceptor against the slot's generation.
//
// Thread safety / invariants: see each field.

#ifndef OFFLOAD_SHM_LISTENER_H_
#define OFFLOAD_SHM_LISTENER_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "shm/ring.h"
#include "shm/sockaddr.h"

namespace offload {
namespace shm {

inline constexpr uint64_t kListenerMagic = 0x4f46464c4c53544eull;  // "OFFLLSTN"
inline constexpr uint32_t kAcceptQueueCap = 4096;  // connectors' queue (Linux somaxconn)
inline constexpr uint32_t kEngineAcceptCap = 1024;  // per engine
inline constexpr uint32_t kMaxAcceptEngines = 4;
inline constexpr uint32_t kMaxAcceptWaiters = 64;  // sleeping acceptors with a doorbell

// ListenerHeader::app_flags
inline constexpr uint32_t kListenerNonblock = 1;  // O_NONBLOCK as the application set it

// ListenerHeader::state
inline constexpr uint32_t kListening = 1;
inline constexpr uint32_t kListenerClosed = 2;  // set by offloadd when the socket is released

struct AcceptEntry {
  uint32_t channel_id;
  uint32_t slot;
  uint32_t gen;  // PipeControl::gen when posted
  uint32_t reserved;
};

// An engine's ring of accepted connections: the engine writes entries and
// stores `tail` (release); an acceptor, under q_mu, loads tail (acquire),
// takes the entry and stores `head` (release), which the engine loads
// (acquire) before reusing the entry.
struct alignas(kCacheLine) EngineAcceptRing {
  std::atomic<uint64_t> tail;
  alignas(kCacheLine) std::atomic<uint64_t> head;
};

struct alignas(4096) ListenerHeader {
  uint64_t magic;        // kListenerMagic
  uint32_t abi_version;  // kAbiVersion
  uint32_t listener_id;  // daemon-assigned, host-unique
  SockAddr local;        // the listening socket's address
  uint32_t backlog;      // as given to listen()
  uint32_t num_engines;  // engine rings in use
  // kListening until offloadd saw the socket released everywhere
  // (store-release by the daemon; connectors load-acquire it and stop
  // posting; acceptors of a closed listener do not exist).
  std::atomic<uint32_t> state;
  // The listening socket's own state, shared by every holder (the kernel
  // keeps it in the socket's open file): kListenerNonblock. Relaxed.
  std::atomic<uint32_t> app_flags;

  // The connectors' queue: entries [q_head, q_tail) of q[], guarded by q_mu
  // (process-shared, robust). q_tail is also read without the lock
  // (acquire, readiness); stored with release under the lock.
  alignas(kCacheLine) pthread_mutex_t q_mu;
  std::atomic<uint32_t> q_head;
  std::atomic<uint32_t> q_tail;

  alignas(kCacheLine) EngineAcceptRing engine[kMaxAcceptEngines];

  // Acceptors waiting for a connection: the line, and the doorbells of
  // those that sleep in poll/epoll/accept (every worker of a pre-fork
  // server may; AcceptWaiters()).
  alignas(kCacheLine) RingWaitLine accept_wait;
  alignas(kCacheLine) std::atomic<uint64_t> acceptor_ids[kMaxAcceptWaiters];
  std::atomic<uint32_t> acceptor_overflow;

  // Statistics (relaxed).
  alignas(kCacheLine) std::atomic<uint64_t> posted, accepted, refused;

  AcceptEntry q[kAcceptQueueCap];
  AcceptEntry engine_q[kMaxAcceptEngines][kEngineAcceptCap];
};

inline constexpr uint64_t ListenerSegmentBytes() { return (sizeof(ListenerHeader) + 4095) & ~4095ull; }

// The doorbells of the acceptors sleeping on `l` (its accept_wait line's
// own waiter ids are unused).
inline WaiterSet AcceptWaiters(ListenerHeader* l) {
  return {l->acceptor_ids, kMaxAcceptWaiters, &l->acceptor_overflow};
}

// Connections waiting (any queue); no lock, may be stale by the time the
// caller acts.
inline uint32_t PendingAccepts(const ListenerHeader* l) {
  uint64_t n = l->q_tail.load(std::memory_order_acquire) - l->q_head.load(std::memory_order_acquire);
  for (uint32_t e = 0; e < kMaxAcceptEngines; ++e) {
    n += l->engine[e].tail.load(std::memory_order_acquire) -
         l->engine[e].head.load(std::memory_order_acquire);
  }
  return static_cast<uint32_t>(n);
}

// Initialises a fresh segment (the daemon, before handing it out).
void InitListener(ListenerHeader* l, uint32_t id, const SockAddr& local, uint32_t backlog);

enum class PostResult { kPosted, kClosed, kFull };

// A connector queues the connection `e`. On kPosted the caller wakes the
// acceptors: a full fence, then TakeArmed(&l->accept_wait).
PostResult PostConnection(ListenerHeader* l, const AcceptEntry& e);

// An acceptor takes the oldest queued connection of any queue. Returns
// false if there is none. `*engine`: the engine ring it came from, or -1
// for the connectors' queue.
bool TakeConnection(ListenerHeader* l, AcceptEntry* e, int* engine);

// Engine `engine` (its thread only) queues `e`. `*tail` is the engine's
// private copy of its ring's tail (0 for a fresh segment). Returns false
// if the ring is full (the engine refuses the connection). On true the
// caller wakes the acceptors as after PostConnection().
bool PostEngineConnection(ListenerHeader* l, uint32_t engine, const AcceptEntry& e,
                          uint64_t* tail);

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_LISTENER_H_
