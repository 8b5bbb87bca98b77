// The client's view of an application fd: what the fd table holds for each
// socket it manages (Socket) and for each epoll instance that watches an
// offloaded socket (EpollSet).
//
// Every Socket's fd is a real kernel socket of the same family and type
// (the shadow); it is the number the application sees, and its kernel file
// is the socket's identity across fork, exec and SCM_RIGHTS (DESIGN.md "The
// fd model"). A Socket starts undecided; bind/listen/connect/first send
// decide whether it stays a kernel socket (path kKernel) or is offloaded
// (kPipe, kListener, kUdp).
//
// An offloaded TCP socket's state lives in shared memory, where every
// holder of it (threads, processes) reaches it: a pipe end's record and
// rings (shm/pipe.h) or a listener's accept queue (shm/listener.h). A
// Socket is this process's handle on it: pointers into the mappings,
// cached ring indices, per-process heuristics.
//
// Thread safety / invariants:
//   * The fd table maps fd -> FdObject* with atomic loads/stores; an object
//     is reachable from every fd that dup()ed it (fd_refs) and from epoll
//     entries (mem_refs). Teardown of the offloaded state runs when the last
//     fd goes; memory is freed when the last reference goes.
//   * A pipe end's senders and receivers are serialised by the EndLocks in
//     its rings (shm/end_lock.h), across threads and processes; the
//     producer/consumer objects below are used under them.
//   * UDP sockets: one thread at a time per socket direction (UdpState's
//     tx_mu, rx_mu); incoming rings are handed over under `mu`.
//   * Per-path state is owned by the Socket through std::unique_ptr: the
//     pipe end (kPipe), the listener's queue (kListener), the datagram
//     path (every SOCK_DGRAM socket, used once kUdp), the TCP state kept
//     whatever the path (every SOCK_STREAM socket: options, backlog,
//     shadow port).

#ifndef OFFLOAD_CLIENT_SOCKET_H_
#define OFFLOAD_CLIENT_SOCKET_H_

#include <netinet/in.h>
#include <pthread.h>
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "client/caller_token.h"
#include "client/offload_extra.h"
#include "client/udp_state.h"
#include "shm/abi.h"
#include "shm/channel_map.h"
#include "shm/dgram_ring.h"
#include "shm/end_lock.h"
#include "shm/listener.h"
#include "shm/ring.h"
#include "shm/sockaddr.h"
#include "shm/unique_fd.h"

namespace offload {
namespace client {

enum class ObjKind : uint8_t { kSocket = 1, kEpoll = 2 };

struct EpollSet;
struct SetBell;

struct FdObject {
  explicit FdObject(ObjKind k) : kind(k) {}
  virtual ~FdObject() = default;
  const ObjKind kind;
  std::atomic<int> fd_refs{1};   // fds that name this object
  std::atomic<int> mem_refs{1};  // fd_refs != 0 counts as one, + epoll entries
};

enum class Path : uint8_t {
  kUndecided = 0,
  kKernel = 1,    // plain kernel socket; the interposed calls pass through
  kPipe = 2,      // connected same-host pipe
  kListener = 3,  // offloaded TCP listener (+ its shadow listening)
  kUdp = 4,       // offloaded UDP socket (rings + its shadow)
};

// A registration of the socket's fd directly in a kernel epoll set (made
// while the socket was on the kernel path), kept to move it to user-space
// readiness if the socket is offloaded later.
struct KernelEpollReg {
  int epfd;
  uint32_t events;
  epoll_data_t data;
};

// This process's handle on one end of a pipe (a connected offloaded TCP
// socket): end `end` of slot `slot` of channel `channel_id`.
// This process's sleepers counted in one wait line of shared memory
// (shm/ring.h ArmWait). The close that ends this process's use of the line
// takes their counts back (a close does not wake another thread's poll or
// epoll_wait) and retires the line: a sleeper's late disarm then touches
// nothing, as the line may be reused or unmapped by then. wait.cc.
struct LineArms {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  uint32_t futex = 0, doorbell = 0;  // counted by threads of this process
  bool retired = false;
};

struct PipeEnd {
  ~PipeEnd();  // releases chan (channels.h)
  shm::ChannelMap* chan = nullptr;  // counted mapping (AcquireChannel)
  shm::PipeRecord* rec = nullptr;
  uint32_t channel_id = 0, slot = 0, gen = 0;
  int end = 0;            // 0 connector, 1 acceptor
  bool engine = false;    // the other end is an engine (a connection on the wire)
  shm::ByteRingProducer tx;  // dir[end]: under its producer_lock
  shm::ByteRingConsumer rx;  // dir[1 - end]: under its consumer_lock
  shm::EndState& me() const { return rec->end[end]; }
  shm::EndState& peer() const { return rec->end[1 - end]; }
  uint32_t flags() const { return me().flags.load(std::memory_order_acquire); }

  // Streams of small messages (pipe_io.cc): per-process heuristics.
  // The last operation was a recv that returned data (no send since).
  std::atomic<bool> rx_streaming{false};
  // Bumped by every receive; the sending thread counts sends since it last
  // saw it change (tx_streak) and goes lazy after a run of them.
  std::atomic<uint32_t> rx_epoch{0};
  uint32_t tx_seen_rx_epoch = 0;
  uint32_t tx_streak = 0;

  // A non-blocking connect an engine is still completing.
  std::atomic<bool> connecting{false};
  bool async_connect = false;   // connect() returned EINPROGRESS, outcome not yet returned
  bool connect_failed = false;  // the engine could not connect
  int connect_errno = 0;        // why (kept: SO_ERROR may be read meanwhile)
  // Our doorbell is listed in the rings' wait lines (removed at teardown).
  std::atomic<bool> doorbell_listed{false};
  LineArms rx_arms;  // rx.reader_wait()
  LineArms tx_arms;  // tx.writer_wait()
};

// This process's handle on an offloaded listener's accept queue.
struct ListenerRef {
  uint32_t id = 0;
  shm::ListenerHeader* hdr = nullptr;  // mapping owned by LocalListeners
  std::atomic<bool> doorbell_listed{false};
  LineArms accept_arms;  // hdr->accept_wait
};

// An endpoint as the application sees it: AF_INET or AF_INET6 (AF_UNSPEC,
// all zero, while unset). Code that is IPv4-only (the engine's wire,
// multicast) uses `v4` of AF_INET sockets only.
// The largest member first: `= {}` zeroes all of it.
union InetName {
  sockaddr_in6 v6;
  sockaddr_in v4;
  sockaddr sa;
};

// What a TCP socket keeps whatever its path (tcp*.cc, shadow_ports.cc,
// tcp_options.cc, sockopt.cc): the application's listen() backlog and
// options, and the shadow port of an offloaded connect. Every SOCK_STREAM
// Socket owns one (Socket::tcp) from its creation. Used as the Socket's
// own fields were: by the thread that listens / connects / sets an option.
struct TcpState {
  int backlog = 0;            // listen() backlog
  bool linger_abort = false;  // SO_LINGER {1, 0}: close() resets
  // An offloaded connect's shadow port (shadow_ports.cc): counted in this
  // process's pool of fork generation `shadow_port_gen`; `shadow_port`
  // (network order, 0: not pooled) is shared with connections to other
  // destinations than `shadow_dest`. SO_REUSEADDR was set for that
  // (`reuseaddr_forced`): getsockopt shows the application's own value.
  bool shadow_port_counted = false;
  bool reuseaddr_forced = false;
  bool app_reuseaddr = false;
  uint16_t shadow_port = 0;
  uint32_t shadow_port_gen = 0;
  uint64_t shadow_dest = 0;
  // The options the application set (tcp_options.cc), sent with
  // connect()/listen() to an engine; an engine connection's live copy is
  // in its pipe record.
  shm::SockOpts opts = {};
  bool inq = false;  // TCP_INQ: recvmsg() adds a TCP_CM_INQ control message
  // SO_RCVLOWAT (at least 1, as Linux's sock_rcvlowat): a pipe is readable
  // once that many bytes wait, and a blocking receive waits for them.
  std::atomic<int> rcvlowat{1};
};

struct Socket : FdObject {
  Socket() : FdObject(ObjKind::kSocket) { pthread_mutex_init(&mu, nullptr); }
  ~Socket() override;

  uint64_t serial = 0;       // unique per Socket, for stale epoll entries
  int fd = -1;               // the fd it was created as
  int type = 0;              // SOCK_STREAM or SOCK_DGRAM
  int family = AF_INET;      // AF_INET or AF_INET6 (the shadow's domain)
  uint64_t inode = 0;        // the shadow's inode (its identity for offloadd)
  std::atomic<Path> path{Path::kUndecided};
  bool nonblock = false;     // the application's O_NONBLOCK (pipes: EndState kEndNonblock)
  bool thread_offload = true;  // creating thread's state
  std::atomic<bool> closed{false};  // torn down (last fd closed)
  // Held by several processes (fork, exec, SCM_RIGHTS): offloadd watches
  // it and ends it when the last holder closes it (sharing.cc).
  std::atomic<bool> shared{false};
  // UDP: held by several processes, so back on the kernel (udp.cc
  // DemoteSharedUdp); the path stays kUdp while datagrams left in its
  // rings are read.
  std::atomic<bool> udp_shared{false};
  shm::Fallback fallback = shm::Fallback::kNone;
  uint32_t rule_id = 0;
  char fallback_detail[24] = {};

  InetName local = {};       // what getsockname reports once offloaded
  InetName remote = {};
  bool bound = false;
  bool connected = false;    // UDP default destination set
  int64_t rcvtimeo_ms = -1;  // SO_RCVTIMEO (-1 = forever); pipes: EndState
  int64_t sndtimeo_ms = -1;
  int so_error = 0;          // pending SO_ERROR (UDP); pipes: EndState

  // Counters in the arena (never null once created). Not owning: the slot
  // belongs to the arena (registry.cc hands it out and takes it back).
  shm::SocketSlot* slot = nullptr;
  int slot_index = -1;
  uint32_t slot_gen = 0;      // AttachGeneration() of the arena `slot` is in

  std::unique_ptr<PipeEnd> pipe;        // kPipe
  std::unique_ptr<ListenerRef> listener;  // kListener

  // Listeners and UDP: own wake-up eventfd (offloadd's offers, UDP rings'
  // producers kick it).
  shm::UniqueFd efd;

  // kListener / kUdp registration with the current session
  uint32_t reg_id = 0;
  uint32_t reg_gen = 0;      // attach generation the registration belongs to
  pthread_mutex_t mu;        // guards `epolls`, `uepolls`, udp->new_rings

  // SOCK_DGRAM sockets: the datagram path's state, from creation (NewSocket)
  // to the socket's end; null for TCP sockets.
  std::unique_ptr<UdpState> udp;
  // SOCK_STREAM sockets: the TCP state, from creation (NewSocket) to the
  // socket's end; null for UDP sockets. Read without locks (recvmsg's
  // TCP_INQ test), so it is never reset before ~Socket.
  std::unique_ptr<TcpState> tcp;

  std::vector<KernelEpollReg> epolls;  // guarded by mu
  // The epoll sets with a user-space entry for this socket (each holds a
  // reference on the set), by entry token: the close that tears the socket
  // down drops them (epoll.cc).
  struct UserEpollReg {
    EpollSet* set;
    uint32_t token;
  };
  std::vector<UserEpollReg> uepolls;  // guarded by mu
};

// Holds a pthread mutex or a SideLock for a scope.
class MutexGuard {
 public:
  explicit MutexGuard(pthread_mutex_t* mu) : mu_(mu) { pthread_mutex_lock(mu_); }
  explicit MutexGuard(SideLock* l)
      : end_(l->get()), mode_(shm::AcquireEndLock(end_, CallerToken())) {}
  ~MutexGuard() { Unlock(); }
  MutexGuard(const MutexGuard&) = delete;
  MutexGuard& operator=(const MutexGuard&) = delete;
  void Unlock() {
    if (end_ != nullptr) {
      shm::ReleaseEndLock(end_, mode_);
      end_ = nullptr;
    }
    if (mu_ != nullptr) pthread_mutex_unlock(mu_);
    mu_ = nullptr;
  }

 private:
  pthread_mutex_t* mu_ = nullptr;
  shm::EndLock* end_ = nullptr;
  shm::EndLockMode mode_ = shm::EndLockMode::kLocked;
};

// An offloaded socket in an epoll set (epoll.cc). Its wait lines stay
// armed between epoll_wait calls, listed under the set's doorbell id plus
// the entry's token, so a waker names the socket it woke (hint ring); an
// entry whose arm may have been taken is "watched": looked at directly on
// every call until the next sleep arms it again.
struct EpollEntry {
  int fd = -1;               // -1: a free token
  Socket* s = nullptr;       // holds a mem ref
  uint32_t events = 0;       // requested (EPOLLIN, EPOLLET, ...)
  epoll_data_t data = {};
  bool disabled = false;     // EPOLLONESHOT fired
  bool kernel_ready = false; // the shadow reported readiness (listener/udp)
  bool in_watch = false;     // its token is in EpollSet::watch
  bool unlisted = false;     // a waiter set was full: watched for good
  uint32_t armed = 0;        // kArmed* lines armed for the set (ops.h)
  uint64_t rx_mark = 0, tx_mark = 0;  // EPOLLET: state at the last report
};

struct EpollSet : FdObject {
  EpollSet() : FdObject(ObjKind::kEpoll) { pthread_mutex_init(&mu, nullptr); }
  int epfd = -1;
  pthread_mutex_t mu;        // guards everything below but the atomics
  // Entries by token - 1 (a token is never 0); fd -1 marks a free one.
  std::vector<EpollEntry> entries;
  std::vector<uint32_t> free_tokens;
  std::unordered_map<int, uint32_t> by_fd;  // fd -> token
  std::vector<uint32_t> watch;              // tokens looked at on every call
  size_t live = 0;                          // entries in use
  SetBell* bell = nullptr;   // this set's doorbell (attach.h), null until needed
  bool bell_in_kernel = false;  // bell->fd is registered in the kernel set
  uint32_t fork_gen = 0;     // ForkGeneration() the entries' arms belong to
  int kernel_fds = 0;        // application fds registered in the kernel set
  int attach_fd = -1;        // the attach socket as registered (-1: not)
  std::atomic<int64_t> last_active_ns{0};  // last time epoll_wait returned events
  std::atomic<uint32_t> calls{0};          // epoll_wait calls (kernel-check ratio)
};

// Tags in epoll_data.u64 for our own registrations in an application's
// epoll set: the high 32 bits are the tag, the low 32 bits the fd.
inline constexpr uint64_t kTagEfd = 0x0ff10ad1ull << 32;     // a UDP socket's eventfd
inline constexpr uint64_t kTagShadow = 0x0ff10ad2ull << 32;  // a listener's / UDP shadow
inline constexpr uint64_t kTagDoorbell = 0x0ff10ad3ull << 32;  // the set's doorbell
inline constexpr uint64_t kTagAttach = 0x0ff10ad4ull << 32;    // the attach socket (offloadd died)
inline constexpr uint64_t kTagMask = 0xffffffffull << 32;

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_SOCKET_H_
