// The client's attach session with offloadd: the engine.sock connection,
// the arena, synchronous requests and the asynchronous messages (offers of
// connections and of UDP rings) that the daemon posts.
//
// Attach is lazy (first socket use) and never an error to the application:
// with no daemon, or an ABI mismatch, one line is logged and every socket
// stays on the kernel; an absent daemon is retried at most once a second.
//
// Implemented in three files: the session and its requests (attach.cc),
// registrations and arena slots (registry.cc), doorbells and wake-ups
// (doorbells.cc).
//
// Thread safety: all functions are thread-safe. Requests are serialised by
// one mutex (control path only); PollEvents() is lock-free when nothing is
// pending.

#ifndef OFFLOAD_CLIENT_ATTACH_H_
#define OFFLOAD_CLIENT_ATTACH_H_

#include <atomic>
#include <cstdint>

#include "client/socket.h"
#include "shm/abi.h"

namespace offload {
namespace client {

// Returns true if attached (attaching now if needed and allowed).
bool EnsureAttached();

// Moves a descriptor the library keeps for itself (eventfds, liveness
// pipes, the attach socket) above the numbers applications use: the kernel
// gives an application the lowest free number, and event loops sized by
// connection count (wrk, redis's ae) or select()'s FD_SETSIZE must not see
// their own sockets pushed up by ours. Returns the new fd (CLOEXEC), or
// `fd` unchanged when there is no room up there.
int HideFd(int fd);
// The arena, or null when not attached.
shm::ArenaHeader* Arena();
// Bumped on every (re-)attach: registrations of an older generation belong
// to a previous session (e.g. the parent's, after fork).
uint32_t AttachGeneration();
// The daemon's per-process log level override, or -1.
int DaemonLogLevel();

// Sends `msg` with `fds` and waits for its reply. Received fds are stored in
// `rfds` (up to shm::kMaxMsgFds; owned by the caller). Returns false if the
// daemon is gone (the caller falls back to the kernel).
bool Call(shm::Msg* msg, const int* fds, int nfds, shm::Msg* reply, int* rfds, int* nrfds);
// Fire-and-forget message (closes, acknowledgements), with up to
// shm::kMaxMsgFds descriptors (borrowed).
void SendAsync(const shm::Msg& msg, const int* fds = nullptr, int nfds = 0);

// Drains the attach socket if the daemon posted something since the last
// drain. Cheap (one load) when nothing is pending.
void DrainEvents();
extern std::atomic<uint64_t> g_events_seen;
inline void PollEvents() {
  shm::ArenaHeader* a = Arena();
  // Acquire: pairs with the daemon's release increment after sending.
  if (a != nullptr &&
      a->events_posted.load(std::memory_order_acquire) !=
          g_events_seen.load(std::memory_order_relaxed)) {
    DrainEvents();
  }
}

// --- registry.cc -------------------------------------------------------------
// Registration ids (listeners, UDP endpoints) and the sockets behind them.
uint32_t NewRegId();
void RegisterSocket(uint32_t id, Socket* s);
void UnregisterSocket(uint32_t id);

// (Re-)registers an offloaded listener (kTcpListen, value = backlog) or UDP
// endpoint (kUdpBind) with the current session, after attach, a fork (the
// child's own session) or a daemon restart. Returns false when the daemon
// refused or is unreachable; the socket then stays unregistered.
bool RegisterEndpoint(Socket* s, shm::MsgType type, uint32_t value);
// The socket's own wake-up eventfd (Socket::efd), created on first use
// under Socket::mu (a receiver of an undecided UDP socket may create it
// while another thread registers the socket). Returns it, or -1 (EMFILE).
int EnsureSocketEventFd(Socket* s);

// Counter blocks in the arena; a process-local dummy when not attached.
shm::SocketSlot* AllocSlot(Socket* s);
void FreeSlot(Socket* s);
// Called (once per attach) after this process attached: a forked child
// gives the sockets it inherited slots of its own arena (sharing.cc).
extern void (*g_on_attached)();

// pthread_atfork child handler: forget the parent's session.
void AttachAtForkChild();
// The attach socket (POLLHUP: offloadd is gone), -1 when not attached.
int AttachFd();
// offloadd hung up: forget the session (new sockets use the kernel until
// it is back; EnsureAttached() tries again at most once a second).
void DropSession();

// --- wake-ups (shm/ring.h; doorbells.cc) ---------------------------------------
// The calling thread's doorbell: the eventfd it sleeps on in poll, select,
// epoll and accept, and its id in rings' waiter sets (registered with
// offloadd on first use). -1 / 0 when not attached.
int DoorbellFd();
uint64_t DoorbellId();
// An epoll set's doorbell (epoll.cc): an eventfd in the set's kernel
// epoll instance and a hint ring (shm/hint_ring.h) that wakers post the
// token of the socket they woke to. Like threads' doorbells, their fds are
// never closed (a racing kicker may hold the number): a set that goes
// gives its bell back to a pool. AcquireSetBell() returns null when no fd
// or memory is left; EnsureSetBell() registers it with the current
// offloadd (false: not attached now).
struct SetBell {
  int fd = -1;
  uint64_t id = 0;  // 0 until first registered; kept for the process lifetime
  shm::HintRing* ring = nullptr;
  int hints_fd = -1;
  uint32_t attach_gen = 0;  // the session it is registered with (0: none)
};
SetBell* AcquireSetBell();
// Bumped in every forked child (arms and doorbells made before belong to
// the parent).
uint32_t ForkGeneration();
void ReleaseSetBell(SetBell* b);
bool EnsureSetBell(SetBell* b);

// Takes every doorbell of this process's threads off `set` (a socket this
// process no longer watches).
void RemoveOwnWaiters(shm::WaiterSet set);
// Wakes the sleepers `bits` (shm::TakeArmed() of `w`) says are there:
// futex sleepers directly, poll/epoll sleepers through their process's
// doorbell (asked from offloadd once per peer process).
// `set`: where the doorbells are listed (the line's own waiters unless
// given).
// `start`: where in `set` the search for the one exclusive waiter to wake
// begins (shm::WakeWaiters; a listener's acceptors).
void WakeLine(shm::RingWaitLine* w, uint32_t bits, shm::WaiterSet set, uint32_t start = 0);
void WakeLine(shm::RingWaitLine* w, uint32_t bits);
// CallerToken(): client/caller_token.h (through socket.h).
// Sockets with a serial below this were inherited across fork.
extern uint64_t g_fork_serial;

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_ATTACH_H_
