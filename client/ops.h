// The offloaded socket operations behind the interposed calls: TCP pipes,
// offloaded listeners, sockets shared between processes, UDP rings,
// waiting, readiness. Everything here is called with a Socket already
// looked up in the fd table.
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
#include <sys/select.h>
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

// The interposed calls' work on a socket of ours (interpose.cc looks the fd
// up and dispatches): connect() (connect.cc), getsockopt() / setsockopt()
// and the application's O_NONBLOCK (sockopt.cc). Same results and errno
// as the libc calls.
int ConnectImpl(int fd, const sockaddr* addr, socklen_t len);
int GetsockoptImpl(int fd, int level, int name, void* val, socklen_t* len);
int SetsockoptImpl(int fd, int level, int name, const void* val, socklen_t len);
// The application's O_NONBLOCK of `s`: in the socket's shared state for an
// offloaded one (every holder sees it, as the open file's flag in Linux).
void SetNonblock(Socket* s, bool on);
bool GetNonblock(Socket* s);

// Lifecycle.
// `family`: the shadow's domain, AF_INET or AF_INET6.
Socket* NewSocket(int fd, int type, bool nonblock, int family = AF_INET);
// Called when the last fd naming `s` is closed (before the kernel close).
void Teardown(Socket* s);
// Marks `s` offloaded on `path`: stats, OFFLOAD_DEBUG line, and moves its
// kernel epoll registrations to user-space readiness.
void OnOffloaded(Socket* s, Path path);
void OnKernel(Socket* s, shm::Fallback why, const char* detail);
// Copies s->local / s->remote into the stats slot (either family).
void UpdateSlotAddrs(Socket* s);
// True for an AF_INET6 socket whose shadow has IPV6_V6ONLY set (no IPv4
// peers, no v4-mapped destinations).
bool V6Only(const Socket* s);

inline bool IsInet(const sockaddr* a, socklen_t len) {
  return a != nullptr && len >= sizeof(sockaddr_in) && a->sa_family == AF_INET;
}

// The kernel's recvmsg on `s`'s fd. A blocking one on an undecided UDP
// socket waits so that the decision can wake it (UdpState::
// waiting_receivers). *retry: the socket was decided meanwhile; receive
// again (it may be offloaded now).
ssize_t KernelRecvmsg(Socket* s, int fd, msghdr* msg, int flags, bool* retry);
// After a UDP socket's path is decided and published: wakes the threads
// waiting in KernelRecvmsg so that they receive on that path.
void WakeUndecidedReceivers(Socket* s);
// `fd`'s Socket if it is a UDP socket not decided yet, else null.
Socket* UndecidedDgram(int fd);
// The data path of one call on `s` (fd `fd`): pipe, UDP rings or kernel.
// `from`/`to` may be null. Return and errno as recvmsg/sendmsg.
ssize_t SocketRecv(Socket* s, int fd, const iovec* iov, int iovcnt, int flags, sockaddr* from,
                   socklen_t* fromlen);
ssize_t SocketSend(Socket* s, int fd, const iovec* iov, int iovcnt, int flags,
                   const sockaddr* to, socklen_t tolen);

// TCP (tcp.cc: connects and pipe ends; tcp_listener.cc: listen, accept).
void TcpAfterListen(Socket* s, int backlog);   // after a successful kernel listen()
// `dst`: an endpoint of s->family (IsInetOf). 0, -1 (errno) or kUseKernel.
int TcpConnect(Socket* s, const sockaddr* dst, socklen_t len);
int TcpAccept(Socket* s, sockaddr* addr, socklen_t* len, int flags);
// Makes `s` this process's handle on end `end` of pipe (`chan`, slot,
// gen); false if the slot is gone.
bool AttachPipeEnd(Socket* s, shm::ChannelMap* chan, uint32_t slot, uint32_t gen, int end,
                   bool engine);
// Publishes `s`'s pipe end in its arena slot (offloadd closes a dead
// process's exclusive ends from it).
void SetSlotPipe(Socket* s);
// Makes `s` this process's handle on listener `id` (a reference taken).
bool AttachListener(Socket* s, uint32_t id, shm::ListenerHeader* hdr);
// The last fd of `s` in this process is being closed (socket_ops.cc
// Teardown): ends the pipe end if this process held it alone, drops our
// references otherwise.
void ClosePipeEnd(Socket* s);
void CloseListenerRef(Socket* s);

// Pipe I/O (pipe_io.cc; an engine's connect and loss: pipe_connect.cc).
ssize_t PipeSend(Socket* s, const iovec* iov, int iovcnt, int flags);
ssize_t PipeRecv(Socket* s, const iovec* iov, int iovcnt, int flags);
int PipeShutdown(Socket* s, int how);
size_t PipeReadable(Socket* s);
uint32_t PipeEvents(Socket* s, uint32_t want);
// The engine serving an offloaded TCP connection is gone (offloadd died):
// the connection reads as reset (ECONNRESET), as after a RST.
void EngineLost(Socket* s);
// For a socket whose engine connect is in flight (non-blocking connect):
// 0 once connected, EINPROGRESS while the handshake runs, or the errno it
// failed with (also left in SO_ERROR; the socket then reads as reset).
int ConnectProgress(Socket* s);
// Blocks until the connect in flight ends; 0 or its errno.
int WaitConnected(Socket* s);
// Send/receive on a socket whose connect may still be in flight: 0 to go
// on, or -1 with errno (EAGAIN while connecting without blocking, the
// connect's error once).
int SettleConnect(Socket* s, bool nonblock);

// Socket options and values of engine connections (tcp_options.cc).
// After the kernel accepted a setsockopt on the shadow of a TCP socket:
// keeps it (TcpState::opts) and, on an engine connection, publishes it to
// the engine (a TCP_NODELAY turned on or a TCP_CORK turned off flushes).
void TcpOptionSet(Socket* s, int level, int name, const void* val, socklen_t len);
// An offloaded listener's options changed after listen(): offloadd passes
// them to its engine listener (later SYN,ACKs and children).
void TcpListenerOptionsChanged(Socket* s);
// A new engine connection (connect): the options set before it go to its
// record, where later changes edit them.
void PublishInitialOptions(Socket* s);
// An accepted engine connection `c` of listener `ls`: inherits its options
// (shadow and engine), as Linux's children do.
void InheritListenerOptions(Socket* ls, Socket* c);
// getsockopt TCP_MAXSEG / TCP_INFO / SO_SNDBUF / SO_RCVBUF of an engine
// connection, from the engine. False: not one of those (the shadow answers).
bool TcpOptionGet(Socket* s, int level, int name, void* val, socklen_t* len, int* rc);
// ioctl SIOCOUTQ / SIOCOUTQNSD of an engine connection. False: not handled.
bool TcpOptionIoctl(Socket* s, unsigned long req, void* arg, int* rc);
// After a recvmsg() on a pipe returned data: its control messages (the
// TCP_INQ one, if the application asked for it; none otherwise).
void PipeRecvControl(Socket* s, msghdr* msg);
// The errno a reset connection reports: the engine's (ETIMEDOUT after a
// user timeout or keep-alive, ECONNRESET...), ECONNRESET by default.
int ResetErrno(const PipeEnd* p);
// SO_ERROR of an engine connection that was reset and has not reported it
// yet: its errno, once (0: nothing pending).
int TakeResetError(PipeEnd* p);
// Under the TX producer lock, before committing `n` bytes of a send with
// MSG_MORE / MSG_EOR (`last`: the send's last chunk): tells the engine.
void EngineSendMarks(PipeEnd* p, size_t n, bool last, int flags);

// Sockets held by several processes (sharing.cc).
// Tells offloadd that `s` is (about to be) held by another process too:
// from now on it ends when the last holder anywhere closes it.
void ShareSocket(Socket* s);
// Before fork(): every offloaded socket of this process becomes shared.
void ShareAllBeforeFork();
// Before exec: the offloaded sockets that survive it (no FD_CLOEXEC).
void ShareSurvivorsBeforeExec();
// Before sendmsg(): the offloaded sockets passed in its SCM_RIGHTS.
void ShareFdsInMessage(const msghdr* msg);
// After recvmsg(): the sockets received in its SCM_RIGHTS.
void AdoptFdsInMessage(const msghdr* msg);
// At start-up: sockets inherited across exec.
void AdoptInherited();
// Once attached to a new arena (a forked child's session, a restarted
// offloadd): slots of it for every socket this process holds.
void RehomeSlots();

// UDP.
void UdpAfterBind(Socket* s);                  // after a successful kernel bind()
// `to`: the destination (canonical), or null for the connected peer.
ssize_t UdpSend(Socket* s, const iovec* iov, int iovcnt, int flags, const shm::SockAddr* to);
ssize_t UdpRecv(Socket* s, msghdr* msg, int flags);
size_t UdpNextSize(Socket* s);  // FIONREAD: size of the next ring datagram
bool UdpHasData(Socket* s);
// UdpRecv without the extra API (a socket with no udp->extra, or shared).
ssize_t UdpRecvPlain(Socket* s, msghdr* msg, int flags);
// Helpers for udp_extra.cc, under udp->rx_mu: take the rings the attach
// reader handed over, drop empty rings whose sender is gone (udp_rings.cc);
// the engine's drop counters into the socket's slot (udp_wire.cc).
void UdpAdoptNewRings(Socket* s);
void UdpReapRings(Socket* s);
void UdpSyncWireDrops(Socket* s);
// The end of a receive that found the rings empty: EAGAIN (-1), a wait
// (0: look again), or 1 when shutdown(SHUT_RD) ended the socket's blocking
// receives (the caller returns 0, as Linux does).
int UdpAwaitData(Socket* s, bool nonblock);
// The receive that UdpAwaitData's 1 ends: 0 bytes, no name, no control.
ssize_t UdpShutdownEnd(msghdr* msg);

// The extra API on UDP sockets (udp_extra.cc; offload_extra.h has the
// contract). Receives of a socket with udp->extra take these paths.
struct ZcopyOut;  // recvfrom_zcopy's request and result
ssize_t UdpRecvExtra(Socket* s, msghdr* msg, int flags, ZcopyOut* zc);
bool UdpHasDataExtra(Socket* s);
size_t UdpNextSizeExtra(Socket* s);
int RegisterRecvCallback(int fd, offload_recv_callback_t cb, void* context);
int RecvfromZcopy(int fd, void* buf, size_t len, int* flags, sockaddr* from, socklen_t* fromlen);
int FreePackets(int fd, offload_packet_t* pkts, size_t count);
// Ends this process's endpoint registration and rings of an offloaded UDP
// socket (its last close, or DemoteSharedUdp).
void ReleaseUdpEndpoint(Socket* s);
// The UDP socket `s` is about to be held by another process too (fork,
// SCM_RIGHTS, an exec it survives): it goes back to the kernel in every
// holder, keeping what its rings already hold readable (udp.cc).
void DemoteSharedUdp(Socket* s);
// shutdown() of a UDP socket (any path): the kernel's, and the flags the
// offloaded receive, send and readiness follow (UdpState::shut).
int UdpShutdown(Socket* s, int how);
// After connect() on an offloaded UDP socket: what its rings hold now stays
// readable, later datagrams from others than the peer are dropped.
void UdpConnected(Socket* s);
// The same for a reason of its own (`why`, with `detail` for the stats):
// an option the offload path cannot honour was set on an offloaded UDP
// socket (a receive control message, GSO), so the kernel serves it from
// now on, after what its rings already hold.
void DemoteUdp(Socket* s, shm::Fallback why, const char* detail);
// A forked child: the UDP sockets' process-local locks may have been held
// by a thread of the parent that the child does not have.
void ResetUdpLocksAfterFork();
// After the application's IPPROTO_IP multicast setsockopt succeeded on the
// shadow (the kernel joined / left, or took the value): records it and, for
// memberships, tells the daemon so that the engine receives (or stops
// receiving) the group (udp.cc "Multicast", udp_multicast.cc).
void UdpMulticastOption(Socket* s, int name, const void* val, socklen_t len);

// Readiness as EPOLL* bits (== POLL* bits for the common ones).
// `kernel_ready` says the shadow reported EPOLLIN (listeners, UDP).
// `want`: the events the caller cares about (others may be left out).
uint32_t Events(Socket* s, bool kernel_ready, uint32_t want);
// The sleep side of the wake-up handshake (shm/ring.h) for a thread about
// to sleep on this process's doorbell waiting for `events` of `s`: lists
// the doorbell and counts the thread in the lines it waits on, then (after
// one shm::HeavyFence() for the whole set) ArmRecheck() says whether `s`
// became ready meanwhile; the first socket whose producer is lazy issues
// the one shm::PeerBarrier() the set needs (`barrier_done`, false at
// first). ArmFlags() returns what it armed (kArmed*), to pass to Disarm()
// once the thread stops waiting, slept or not; `*listed` is cleared when
// the socket could not list the doorbell (sleep with a short timeout).
inline constexpr uint32_t kArmedRx = 1, kArmedTx = 2, kArmedAccept = 4, kArmedUdp = 8;
uint32_t ArmFlags(Socket* s, uint32_t events, bool* listed);
bool ArmRecheck(Socket* s, uint32_t events, bool* barrier_done);
void Disarm(Socket* s, uint32_t armed);
// The arms of `a` on `w` (socket.h LineArms): ArmLine() counts the caller
// (`bits`: shm::kArmFutex / kArmDoorbell; `*seq`: the eventcount for a
// futex wait) and is false once the line is retired (the socket is being
// closed: do not sleep); DisarmLine() uncounts it; RetireLine() (close)
// takes back what this process's sleepers still count there.
bool ArmLine(LineArms* a, shm::RingWaitLine* w, uint32_t bits, uint32_t* seq);
// A doorbell sleeper also takes the thread's doorbell off the waiter set
// (`set`: the line's own unless given).
void DisarmLine(LineArms* a, shm::RingWaitLine* w, uint32_t bits);
void DisarmLine(LineArms* a, shm::RingWaitLine* w, uint32_t bits, shm::WaiterSet set);
// RetireLine returns the kinds (kArmFutex, kArmDoorbell) this process's
// threads were sleeping as: the ones the close must wake.
uint32_t RetireLine(LineArms* a, shm::RingWaitLine* w);
// A forked child: the counts of its arms are its parent's threads' (none
// of which run here).
void ResetArmsAfterFork();
// EPOLLET marks: change when new data arrives / space is freed.
uint64_t RxMark(Socket* s);
uint64_t TxMark(Socket* s);

// Blocks until Events(s) & events, a timeout (ms, -1 forever) or a signal.
// Returns 0 when ready, EAGAIN on timeout, EINTR on a signal (without a
// timeout, only when SignalsRestart() says Linux would not restart).
int WaitSocket(Socket* s, uint32_t events, int64_t timeout_ms);
// Whether a blocking socket call without a timeout, interrupted by a signal
// handler, continues as Linux's would: the handler had SA_RESTART. The
// signal that ran is not known here, so every installed handler must have
// it (a process that mixes both gets EINTR). Used after EINTR only.
bool SignalsRestart();
// Doorbell handling for sleepers (wait.cc): drains it; marks every engine
// connection reset when the attach socket hung up (offloadd died).
void AfterDoorbellSleep(bool doorbell_ready, bool attach_hup);

// poll/select (mux.cc) and epoll (epoll.cc) implementations.
// How long poll/select/epoll may spin (ns) before sleeping, given when the
// set last had activity: OFFLOAD_SELECT_POLL while active in the last
// second, else 0 (mux.cc).
int64_t SpinBudgetNs(int64_t last_active_ns, int64_t now, int64_t timeout_ns);
// A timeout in ns as poll()'s ms (rounded up; -1 stays -1).
int ToMs(int64_t ns);
int PollImpl(pollfd* fds, nfds_t n, int64_t timeout_ns, const sigset_t* sigmask);
// select() / pselect() (select.cc): `timeout_ns` -1 is forever; `mask` as
// pselect's (null: none).
int SelectImpl(int nfds, fd_set* r, fd_set* w, fd_set* e, int64_t timeout_ns,
               const sigset_t* mask);
int EpollCtlImpl(int epfd, int op, int fd, epoll_event* ev);
int EpollWaitImpl(int epfd, epoll_event* events, int maxevents, int timeout_ms,
                  const sigset_t* sigmask);
void EpollForgetKernelReg(Socket* s, int epfd);
// The close that tears `s` down: drops its user-space entries from every
// epoll set (Linux drops a file from its sets at its last close).
void EpollForgetSocket(Socket* s);
// close() of an epoll fd's last descriptor: releases its entries, arms and
// doorbell.
void EpollSetClosed(EpollSet* set);

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_OPS_H_
