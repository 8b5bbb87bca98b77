// The offloaded socket operations behind the interposed calls: TCP pipes,
// offloaded listeners, UDP rings, waiting, readiness. Everything here is
// called with a Socket already looked up in the fd table.
//
// Error convention: functions returning ssize_t/int return -1 with errno set
// as the corresponding Linux call would; kUseKernel means "this call goes
// to the kernel socket after all".
//
// Thread safety: see socket.h.

#ifndef OFFLOAD_CLIENT_OPS_H_
#define OFFLOAD_CLIENT_OPS_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <poll.h>
#include <signal.h>

#include <atomic>
#include <cstdint>

#include "client/socket.h"

namespace offload {
namespace client {

inline constexpr int kUseKernel = -2;

int64_t NowNs();
inline void CpuRelax() { __builtin_ia32_pause(); }
// One step of a busy-poll loop: a pause, and every OFFLOAD_SPIN_YIELD steps
// a sched_yield() so that a peer sharing this CPU gets to run (spinning
// against a descheduled peer would cost a whole time slice). Returns false
// when that yield handed the CPU to someone else for long (a busy task
// shares our CPU): stop spinning and sleep, the kernel's wake-up preemption
// then serves us better than the run queue.
bool SpinStep(uint64_t i);
// False for a while after SpinStep() found our CPU taken by a busy task.
bool SpinAllowed();
// A spin found what it waited for: reset the back-off.
void SpinSucceeded();

// Lifecycle.
Socket* NewSocket(int fd, int type, bool nonblock);
// Called when the last fd naming `s` is closed (before the kernel close).
void Teardown(Socket* s);
// Marks `s` offloaded on `path`: stats, OFFLOAD_DEBUG line, and moves its
// kernel epoll registrations to user-space readiness.
void OnOffloaded(Socket* s, Path path);
void OnKernel(Socket* s, shm::Fallback why, const char* detail);
void UpdateSlotAddrs(Socket* s);

inline bool IsInet(const sockaddr* a, socklen_t len) {
  return a != nullptr && len >= sizeof(sockaddr_in) && a->sa_family == AF_INET;
}

// The data path of one call on `s` (fd `fd`): pipe, UDP rings or kernel.
// `from`/`to` may be null. Return and errno as recvmsg/sendmsg.
ssize_t SocketRecv(Socket* s, int fd, const iovec* iov, int iovcnt, int flags, sockaddr* from,
                   socklen_t* fromlen);
ssize_t SocketSend(Socket* s, int fd, const iovec* iov, int iovcnt, int flags,
                   const sockaddr* to, socklen_t tolen);

// TCP.
void TcpAfterListen(Socket* s, int backlog);   // after a successful kernel listen()
int TcpConnect(Socket* s, const sockaddr_in* dst);  // 0, -1 (errno) or kUseKernel
int TcpAccept(Socket* s, sockaddr* addr, socklen_t* len, int flags);
// In a forked child: registers an inherited offloaded listener with the
// child's own session, so offloaded connections reach the child too.
void ReRegisterAfterFork(Socket* s);
// Number of offloaded listeners in this process (fork skips the scan at 0).
extern std::atomic<int> g_offloaded_listeners;
ssize_t PipeSend(Socket* s, const iovec* iov, int iovcnt, int flags);
ssize_t PipeRecv(Socket* s, const iovec* iov, int iovcnt, int flags);
int PipeShutdown(Socket* s, int how);
size_t PipeReadable(Socket* s);
// The engine serving an offloaded TCP connection is gone (offloadd died):
// the connection reads as reset (ECONNRESET), as after a RST.
void EngineLost(Socket* s);
// For a socket whose engine connect is in flight (non-blocking connect):
// 0 once connected, EINPROGRESS while the handshake runs, or the errno it
// failed with (also left in so_error; the socket then reads as reset).
int ConnectProgress(Socket* s);

// UDP.
void UdpAfterBind(Socket* s);                  // after a successful kernel bind()
ssize_t UdpSend(Socket* s, const iovec* iov, int iovcnt, int flags, const sockaddr_in* dst);
ssize_t UdpRecv(Socket* s, msghdr* msg, int flags);
size_t UdpNextSize(Socket* s);  // FIONREAD: size of the next ring datagram
bool UdpHasData(Socket* s);
// After the application's IPPROTO_IP multicast setsockopt succeeded on the
// shadow (the kernel joined / left, or took the value): records it and, for
// memberships, tells the daemon so that the engine receives (or stops
// receiving) the group (udp.cc "Multicast").
void UdpMulticastOption(Socket* s, int name, const void* val, socklen_t len);

// Readiness as EPOLL* bits (== POLL* bits for the common ones).
// `kernel_ready` says the shadow reported EPOLLIN (listeners, UDP).
// `want`: the events the caller cares about (others may be left out).
uint32_t Events(Socket* s, bool kernel_ready, uint32_t want);
// Need-wake-up handshake for a sleep waiting on `events` of `s`. Returns
// true if `s` became ready meanwhile (do not sleep).
bool Arm(Socket* s, uint32_t events);
// Arm() in two halves for many sockets: all ArmFlags(), one
// shm::HeavyFence(), then all ArmRecheck() with one `barrier_done` (false
// at first): the first socket whose producer is lazy issues the one
// shm::PeerBarrier() the set needs.
void ArmFlags(Socket* s, uint32_t events);
bool ArmRecheck(Socket* s, uint32_t events, bool* barrier_done);
void Disarm(Socket* s);
// EPOLLET marks: change when new data arrives / space is freed.
uint64_t RxMark(Socket* s);
uint64_t TxMark(Socket* s);

// Blocks until Events(s) & events, a timeout (ms, -1 forever) or a signal.
// Returns 0 when ready, EAGAIN on timeout, EINTR on a signal.
int WaitSocket(Socket* s, uint32_t events, int64_t timeout_ms);

// poll/select/epoll implementations (mux.cc).
int PollImpl(pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* sigmask);
int EpollCtlImpl(int epfd, int op, int fd, epoll_event* ev);
int EpollWaitImpl(int epfd, epoll_event* events, int maxevents, int timeout_ms,
                  const sigset_t* sigmask);
void EpollForgetKernelReg(Socket* s, int epfd);

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_OPS_H_
