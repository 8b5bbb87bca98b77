// Pipes: TCP connections in shared memory, carved from channels.
//
// A channel is one memfd (created by offloadd) holding the connections
// between one group of processes and one other: for the same host, every
// connection from a connecting process (and the children it forks) to one
// offloaded listener, which all processes holding that listener can map;
// for the wire, the connections an engine serves for one process or one
// listener. A new connection between processes that already share a
// channel is a slot allocation and an entry in the listener's accept queue
// (shm/listener.h): no daemon, no mapping, no file descriptor.
//
// Layout: ChannelHeader (one page), then extents of kSlotsPerExtent slots:
//   extent k at kChannelHeaderBytes + k * extent_bytes:
//     PipeRecord[kSlotsPerExtent]                  (kPipeRecordBytes each)
//     data: slot i's two rings, 2 * capacity bytes each (dir 0 then dir 1)
// The file grows by whole extents (ftruncate by the allocating process, or
// the daemon); a process maps an extent when it first meets a slot in it.
// Pages are touched only as data flows: a sparse file.
//
// A pipe has two ends: end 0 is the connector's socket, end 1 the
// acceptor's (a process, or an engine serving a connection on the wire).
// End e writes dir[e] and reads dir[1 - e] (shm/ring.h).
//
// Lifetime of a slot: allocated (gen bumped, kSlotOpen) by the connector
// (same host) or the daemon (engine channels); each end is closed exactly
// once, by the last process holding its socket (CloseEnd below) or by the
// daemon on its behalf (the socket was released everywhere, or its only
// process died); the end that closes second frees the slot. Engine
// channels are allocated and freed by the daemon only.
//
// Trust: processes sharing a channel trust each other as much as they
// trust any peer they exchange data with; the daemon trusts nothing in a
// channel and never takes its locks (it tries, and defers).
//
// Thread safety / invariants: see each field.

#ifndef OFFLOAD_SHM_PIPE_H_
#define OFFLOAD_SHM_PIPE_H_

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shm/ring.h"
#include "shm/sockaddr.h"

namespace offload {
namespace shm {

inline constexpr uint64_t kChannelMagic = 0x4f46464c4348414eull;  // "OFFLCHAN"
inline constexpr uint32_t kSlotsPerExtent = 64;
inline constexpr uint32_t kMaxExtents = 4096;  // 262144 connections per channel
inline constexpr uint32_t kChannelHeaderBytes = 4096;
inline constexpr uint32_t kPipeRecordBytes = 2048;
inline constexpr uint32_t kNoSlot = 0xffffffffu;

enum class ChannelKind : uint32_t {
  kSameHost = 1,  // both ends are processes
  kEngine = 2,    // one end is an engine (a connection on the wire)
};

// PipeControl::state
inline constexpr uint32_t kSlotFree = 0;
inline constexpr uint32_t kSlotOpen = 1;

// PipeControl::connect_status while an engine completes an active open.
inline constexpr int32_t kConnectPending = -1;

// EndState::flags (bits). They are the socket's own state, shared by every
// holder of it (the kernel keeps them in the socket, not per fd).
inline constexpr uint32_t kEndShutRd = 1;       // shutdown(SHUT_RD)
inline constexpr uint32_t kEndShutWr = 2;       // shutdown(SHUT_WR): FIN queued
inline constexpr uint32_t kEndRstReported = 4;  // ECONNRESET returned once
inline constexpr uint32_t kEndShared = 8;       // held by several processes: offloadd
                                                // watches the socket and closes the end
inline constexpr uint32_t kEndLingerAbort = 16;  // SO_LINGER {1, 0}: close resets
inline constexpr uint32_t kEndNonblock = 32;     // O_NONBLOCK of the open file description
inline constexpr uint32_t kEndAccepted = 64;     // end 1: taken by accept()
inline constexpr uint32_t kEndConnectDone = 128;  // end 0: the outcome of an engine connect
                                                  // was returned by connect()/SO_ERROR

// The slot's own line: written at allocation, at close, and by an engine
// for its connect outcome.
struct alignas(kCacheLine) PipeControl {
  // Bumped (release) by the allocator before the slot is handed out; an
  // accept-queue entry or a cached reference with another gen is stale.
  std::atomic<uint32_t> gen;
  std::atomic<uint32_t> state;  // kSlotFree / kSlotOpen, store-release by the allocator
  // Bit e set (fetch_or, acq_rel) when end e is closed; the closer that
  // sees the other bit already set frees the slot.
  std::atomic<uint32_t> closed;
  // 0 for same-host pipes. Engine active opens: kConnectPending until the
  // handshake ends, then 0 or the errno (store-release by the engine,
  // load-acquire by the connector, which is then woken like a reader).
  std::atomic<int32_t> connect_status;
  uint32_t free_next;    // free-list link, under ChannelHeader::alloc_mu
  uint32_t listener_id;  // same host: the listener the slot was posted to
  uint32_t engine_end;   // engine channels: the end an engine serves (0 or 1), else 2
  uint32_t reserved[9];
};

// One end's socket state, shared by every thread and process holding it.
struct alignas(kCacheLine) EndState {
  SockAddr local;  // getsockname(); the peer's getpeername(). Written before the end is used.
  std::atomic<uint32_t> flags;       // kEnd*; fetch_or / fetch_and by holders
  std::atomic<int32_t> so_error;     // pending SO_ERROR (exchange to 0 when read)
  std::atomic<int32_t> rcvtimeo_ms;  // SO_RCVTIMEO, -1 = none (set by any holder)
  std::atomic<int32_t> sndtimeo_ms;  // SO_SNDTIMEO
  uint64_t inode;                    // the end's socket (stats; set by its creator)
};
static_assert(sizeof(EndState) == kCacheLine, "shm layout");

// ---- Engine pipes: what the application's socket calls carry to the engine
// (docs/tcp-conformance.md "What the client and the shared-memory ABI must
// carry"; the engine half is daemon/tcp/socket_options.h). Unused by
// same-host pipes. The engine trusts none of it: it copies and validates.

// TCP socket options as the application set them (tcp::SocketOptions):
// 0 = not set (the namespace's sysctl default applies) where the option
// has no 0 value. Also carried by the kTcpConnect / kTcpListen requests
// (abi.h Msg::opts): options set before connect()/listen() shape the SYN.
inline constexpr uint32_t kOptNodelay = 1;     // TCP_NODELAY
inline constexpr uint32_t kOptCork = 2;        // TCP_CORK
inline constexpr uint32_t kOptKeepalive = 4;   // SO_KEEPALIVE
inline constexpr uint32_t kOptLingerZero = 8;  // SO_LINGER {1, 0}
struct SockOpts {
  uint32_t flags;            // kOpt*
  uint32_t keepidle_s;       // TCP_KEEPIDLE
  uint32_t keepintvl_s;      // TCP_KEEPINTVL
  uint32_t keepcnt;          // TCP_KEEPCNT
  uint32_t user_timeout_ms;  // TCP_USER_TIMEOUT
  uint32_t maxseg;           // TCP_MAXSEG
  uint32_t rcvbuf;           // SO_RCVBUF as passed
  uint32_t sndbuf;           // SO_SNDBUF as passed
};
inline constexpr uint32_t kSockOptWords = 8;
static_assert(sizeof(SockOpts) == kSockOptWords * 4, "SockOpts is words");

// Written by the holders of the application's socket, read by the engine
// after it loads the TX tail or sees `opts_seq` / `query` move.
struct alignas(kCacheLine) EngineRequests {
  // The TX tail right after the last MSG_MORE send (stored before that
  // send's tail store-release): the engine holds a partial segment while
  // the tail it sees equals it (Stack::TcpSend more). A later send without
  // MSG_MORE moves the tail past it, so plain sends store nothing here.
  std::atomic<uint64_t> more_tail;
  // The TX tail when `opts` were last written (under the seqlock): the
  // engine hands the bytes before it over first, then the options (a
  // TCP_CORK set after a write lets that write leave, as on Linux).
  std::atomic<uint64_t> opts_tail;
  // Seqlock over `opts`: a holder that changes an option CASes it from
  // even to odd, writes every word, stores it even + 2 (release), then
  // rings the engine (the TX ring's reader wait line). The engine copies
  // the words between two equal even loads and applies what changed.
  std::atomic<uint32_t> opts_seq;
  std::atomic<uint32_t> opts[kSockOptWords];  // SockOpts words
  // Under the same seqlock: bumped by every setsockopt(TCP_NODELAY, 1),
  // which on Linux pushes what is pending even when TCP_NODELAY was on
  // already or TCP_CORK holds it (TCP_NAGLE_PUSH).
  std::atomic<uint32_t> nodelay_pushes;
  // Bumped (fetch_add) by a getsockopt/ioctl that wants the engine's
  // values (EngineAnswers), then the engine is rung.
  std::atomic<uint32_t> query;
  // Record ends (MSG_EOR) pushed: eor_ends[i % kMaxEorEnds] is the TX index
  // just past record i, stored before eor_count (release) and both before
  // the send's tail store. Under the TX producer lock. An engine that fell
  // more than kMaxEorEnds behind loses the oldest (those records may then
  // share a segment with the next).
  std::atomic<uint32_t> eor_count;
};
static_assert(sizeof(EngineRequests) == kCacheLine, "one line");
inline constexpr uint32_t kMaxEorEnds = 16;

// Engine -> application: answers to queries and the errno of the close.
inline constexpr uint32_t kTcpInfoBytes = 256;  // >= sizeof(struct tcp_info)
inline constexpr uint32_t kValMaxseg = 0, kValSndbuf = 1, kValRcvbuf = 2, kValInq = 3,
                          kValOutq = 4, kValNotsent = 5, kNumValues = 6;
struct alignas(kCacheLine) EngineAnswers {
  // The `query` value the latest answer covers (store-release after the
  // values; a futex word the engine wakes after each answer).
  std::atomic<uint32_t> answered;
  // Seqlock over `values` and `info`, written by the engine only.
  std::atomic<uint32_t> seq;
  // The errno of the engine's close (ECONNRESET, ETIMEDOUT, ECONNREFUSED,
  // EPIPE...), stored before the shut / reader_closed it explains; 0: a
  // reset without a stated errno reads as ECONNRESET.
  std::atomic<int32_t> close_error;
  // 1 once the engine has given the connection up: the values are its last
  // ones and no query will be answered any more.
  std::atomic<uint32_t> final_answer;
  std::atomic<uint32_t> values[kNumValues];  // kVal*: tcp::SocketValues
  alignas(kCacheLine) std::atomic<uint64_t> info[kTcpInfoBytes / 8];  // struct tcp_info
};

struct PipeRecord {
  PipeControl ctl;
  EndState end[2];
  RingIndexes dir[2];  // dir[e]: written by end e
  // Engine pipes only (see above).
  EngineRequests req;
  alignas(kCacheLine) std::atomic<uint64_t> eor_ends[kMaxEorEnds];
  EngineAnswers ans;
};
static_assert(sizeof(PipeRecord) <= kPipeRecordBytes, "records fit their stride");
static_assert(offsetof(PipeRecord, req) % kCacheLine == 0, "request line of its own");

struct alignas(4096) ChannelHeader {
  uint64_t magic;        // kChannelMagic
  uint32_t abi_version;  // kAbiVersion
  uint32_t channel_id;   // daemon-assigned, host-unique
  ChannelKind kind;
  uint32_t capacity;     // ring bytes per direction (power of two, >= 4096)
  uint32_t listener_id;  // same host: the listener every slot is posted to
  uint32_t max_extents;
  uint64_t extent_bytes;
  // Slot allocation (same-host channels; engine channels are allocated by
  // the daemon alone and leave these unused). Guarded by alloc_mu, a
  // process-shared robust mutex the daemon only ever try-locks.
  pthread_mutex_t alloc_mu;
  uint32_t free_head;    // kNoSlot or the first free slot (LIFO: warm pages first)
  uint32_t next_unused;  // slots [next_unused, num_extents * kSlotsPerExtent) never used
  // Extents the file holds: grown under alloc_mu (after the ftruncate),
  // read (acquire) by anyone mapping a slot.
  std::atomic<uint32_t> num_extents;
  uint32_t reserved0;
  std::atomic<uint64_t> allocs, frees;  // statistics (relaxed)
};
static_assert(sizeof(ChannelHeader) == kChannelHeaderBytes, "one page");

inline constexpr uint64_t ExtentBytes(uint32_t capacity) {
  return uint64_t{kSlotsPerExtent} * kPipeRecordBytes +
         uint64_t{kSlotsPerExtent} * 2 * uint64_t{capacity};
}
inline constexpr uint64_t ChannelBytes(uint32_t capacity, uint32_t extents) {
  return kChannelHeaderBytes + uint64_t{extents} * ExtentBytes(capacity);
}
inline constexpr uint64_t ExtentOffset(uint32_t capacity, uint32_t extent) {
  return kChannelHeaderBytes + uint64_t{extent} * ExtentBytes(capacity);
}
// Within a mapped extent: slot j's record and ring data.
inline PipeRecord* RecordIn(uint8_t* extent, uint32_t j) {
  return reinterpret_cast<PipeRecord*>(extent + uint64_t{j} * kPipeRecordBytes);
}
inline uint8_t* RingDataIn(uint8_t* extent, uint32_t capacity, uint32_t j, int dir) {
  return extent + uint64_t{kSlotsPerExtent} * kPipeRecordBytes +
         (uint64_t{j} * 2 + static_cast<uint64_t>(dir)) * capacity;
}

// Resets a slot's record for a new connection (the allocator, before it
// publishes the slot). REQUIRES: nobody uses the slot (both ends closed).
void ResetRecord(PipeRecord* r, uint32_t listener_id, uint32_t engine_end);

// What CloseEnd() asks the caller to wake.
struct CloseWakeups {
  uint32_t peer_readers = 0;  // arm bits of dir[e].reader_wait (the peer's receivers)
  uint32_t peer_writers = 0;  // arm bits of dir[1-e].writer_wait (the peer's senders)
  bool free_slot = false;     // both ends are closed now: the caller frees the slot
};

// Ends end `e` of `r`, as Linux does on the last close of a socket: FIN
// after the queued data, or RST when data we never read is pending or
// SO_LINGER {1, 0} was set (RFC 2525 2.17); the peer's sends fail from now
// on. Idempotent per end (a second call does nothing and frees nothing).
// REQUIRES: called once the socket has no holder left (or by its last
// holder, holding both of the end's EndLocks).
CloseWakeups CloseEnd(PipeRecord* r, int e);

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_PIPE_H_
