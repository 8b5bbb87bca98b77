// The shared-memory ABI between offloadd and liboffload.so: the per-process
// arena, the datagram-ring segments, and the messages on the attach socket
// (<run dir>/engine.sock, SOCK_SEQPACKET). The other shared structures have
// their own headers in this folder: ring.h (the byte ring of a TCP
// direction), end_lock.h (the lock of a socket side), pipe.h (channels of
// TCP connections), listener.h (accept queues), dgram_ring.h (UDP rings).
// kAbiVersion covers all of them.
//
// One header set, included by both sides; never written twice. Everything
// here is standard-layout, fixed-size and free of pointers so it can live in
// a memfd mapped at different addresses in different processes.
//
// Trust model (DESIGN.md principle 3): the daemon never follows an offset or
// length it reads from shared memory or from the attach socket; it copies,
// then validates. The client trusts the daemon.
//
// Thread safety / invariants:
//   * The ArenaHeader fields above `live` are written once by the daemon
//     before the memfd is handed out and are read-only afterwards.
//   * Atomics in shared memory are lock-free (static_assert below) and each
//     documents the operation it pairs with.

#ifndef OFFLOAD_SHM_ABI_H_
#define OFFLOAD_SHM_ABI_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "rules/rules.h"
#include "shm/hint_ring.h"
#include "shm/listener.h"
#include "shm/pipe.h"
#include "shm/ring.h"

namespace offload {
namespace shm {

inline constexpr uint64_t kArenaMagic = 0x4f46464c4f414431ull;  // "OFFLOAD1"
inline constexpr uint64_t kDgramMagic = 0x4f46464c44475231ull;  // "OFFLDGR1"
// Bumped on every incompatible change of anything in shm/.
inline constexpr uint32_t kAbiVersion = 13;


static_assert(std::atomic<uint64_t>::is_always_lock_free, "shm atomics must be lock-free");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "shm atomics must be lock-free");

// ------------------------------------------------------------------ arena

inline constexpr uint32_t kMaxPublishedRules = 256;
inline constexpr uint32_t kMaxThreadEntries = 256;
inline constexpr uint32_t kPortWords = 65536 / 64;

// Log levels as in OFFLOAD_TRACELEVEL.
enum class LogLevel : uint32_t {
  kPanic = 0, kError = 1, kWarn = 2, kInfo = 3, kDebug = 4, kFunc = 5, kFuncAll = 6,
};

// A seqlock-protected table written by the daemon only.
// Writer (daemon, serialised by its own mutex): seq.fetch_add(1) (odd),
// release fence, write entries, seq.fetch_add(1, release) (even).
// Reader (client): s1 = seq.load(acquire); if odd retry; copy; acquire fence;
// s2 = seq.load(relaxed); retry unless s1 == s2.
struct SeqLock {
  std::atomic<uint32_t> seq{0};
};

// Thread offload states published by the daemon (offloadctl thread-offload).
struct ThreadEntry {
  uint32_t tid;      // 0 = free slot
  uint32_t offload;  // 1 = offload, 0 = kernel
};

struct PublishedRules {
  SeqLock lock;
  uint32_t count;     // <= kMaxPublishedRules
  uint64_t version;   // RuleStore version
  rules::Rule rules[kMaxPublishedRules];
};

struct ThreadTable {
  SeqLock lock;
  uint32_t count;     // used entries, <= kMaxThreadEntries
  ThreadEntry entries[kMaxThreadEntries];
};

// Fallback reasons: same numbering as offload.v1.FallbackReason.
enum class Fallback : uint8_t {
  kNone = 0, kRule = 1, kThreadOff = 2, kUnsupportedOption = 3, kDaemonAbsent = 4,
  kPeerNotOffloaded = 5, kNotRouted = 6, kLimit = 7, kUnsupportedFamily = 8,
  kSharedDgram = 9,  // a UDP socket held by several processes (client/udp.cc)
  kBlockedReceiver = 10,  // a UDP socket decided while a thread was in a kernel receive
};
inline constexpr uint8_t kMaxFallback = 10;

enum class SocketState : uint8_t {
  kFree = 0, kCreated = 1, kBound = 2, kListen = 3, kConnecting = 4,
  kEstablished = 5, kClosed = 6,
};
inline constexpr uint8_t kMaxSocketState = 6;

enum class SocketPath : uint8_t { kKernel = 0, kPipe = 1, kUdpRing = 2, kEngine = 3 };
inline constexpr uint8_t kMaxSocketPath = 3;

// SocketSlot::share: how the daemon learns that a pipe end is closed.
inline constexpr uint8_t kSlotExclusive = 0;  // only this process holds it: when the process
                                              // dies, offloadd closes the end for it
inline constexpr uint8_t kSlotShared = 1;     // offloadd watches the socket itself

// One row per socket of the process (kernel ones included): what it is,
// why it is not offloaded, and its counters. Written by the client (the
// counters by the thread holding the socket side's EndLock, relaxed: they
// are statistics), read by the daemon for GetStats and, for pipe ends held
// by this process alone, to close them when the process dies. The daemon
// copies a slot and validates every field before use.
struct alignas(kCacheLine) SocketSlot {
  // Written last when a slot is taken (release), first when it is freed;
  // pairs with the daemon's acquire load when it copies the slot.
  std::atomic<uint32_t> in_use;
  int32_t fd;
  uint64_t inode;
  uint8_t protocol;     // IPPROTO_TCP or IPPROTO_UDP
  uint8_t state;        // SocketState
  uint8_t path;         // SocketPath
  uint8_t fallback;     // Fallback
  uint32_t rule_id;
  uint32_t local_addr, remote_addr;  // network byte order
  uint16_t local_port, remote_port;  // network byte order
  char fallback_detail[24];
  // The pipe end (path kPipe / kEngine) or listener (state kListen) this
  // socket is: written before `share` says kSlotExclusive with release.
  uint32_t channel_id, pipe_slot, pipe_gen, listener_id;
  uint8_t pipe_end;     // 0 connector, 1 acceptor
  std::atomic<uint8_t> share;  // kSlotExclusive / kSlotShared
  uint8_t family;       // AF_INET / AF_INET6 of the socket
  uint8_t reserved8;
  uint32_t reserved32;
  std::atomic<uint64_t> rx_bytes, rx_msgs, tx_bytes, tx_msgs;
  std::atomic<uint64_t> rx_eagain, tx_eagain, errors, poll_hits, poll_misses;
  std::atomic<uint64_t> rx_queue_bytes, rx_queue_max, drops;
  // UDP multicast: groups joined that the engine receives / that only the
  // kernel serves (another interface, no engine endpoint); datagrams to
  // groups sent through the engine / the kernel; host-local copies sent
  // through the kernel for IP_MULTICAST_LOOP next to an engine send.
  std::atomic<uint32_t> mc_groups_engine, mc_groups_kernel;
  std::atomic<uint64_t> mc_tx_engine, mc_tx_kernel, mc_loop_copies;
  // An AF_INET6 socket's addresses (the IPv4 fields above hold those that
  // are IPv4 or v4-mapped; these are then zero, the ports are above).
  uint8_t local_addr6[16], remote_addr6[16];
};

// The head of every per-process arena.
struct alignas(kCacheLine) ArenaHeader {
  uint64_t magic;          // kArenaMagic
  uint32_t abi_version;    // kAbiVersion
  uint32_t header_bytes;   // sizeof(ArenaHeader)
  uint64_t arena_bytes;    // size of the memfd
  uint32_t pid;            // the process this arena belongs to
  uint32_t max_sockets;    // number of SocketSlot entries
  uint64_t slots_offset;   // byte offset of SocketSlot[max_sockets]
  uint32_t rcvbuf, sndbuf; // default pipe ring sizes (power of two)
  uint32_t fence_mode;     // kFenceFull or kFenceAsymmetric (fence.h), same for every process
  // The offloaded interface's IPv4 address (network order), 0 when offloadd
  // has no wire path. Non-zero: a TCP connect to a non-local destination
  // asks the daemon, which routes it through an engine when the kernel's
  // routes send it out of that interface.
  uint32_t wire_addr;
  // Client -> daemon, live: one past the highest slot index the process has
  // used (store-release by the client before the slot's in_use; the
  // daemon's load-acquire, clamped to max_sockets, bounds its scans so that
  // untouched slots' pages are never faulted in).
  std::atomic<uint32_t> slots_hwm;

  // Daemon -> client, live.
  // Incremented by the daemon (release) after it has sent an asynchronous
  // message (an offer) on this process's attach socket; the client compares
  // it (acquire) with the number it consumed to know a recv() is worthwhile.
  alignas(kCacheLine) std::atomic<uint64_t> events_posted;
  std::atomic<uint32_t> log_level;  // LogLevel; relaxed both sides.
  std::atomic<uint32_t> process_offload;  // reserved

  // Ports with an offloaded TCP listener / UDP receiver anywhere on the host.
  // Set by the daemon (fetch_or, release) BEFORE it acknowledges the listen
  // or bind; read by the client (acquire) before connect/sendto: a clear bit
  // means "go to the kernel" without a daemon round trip.
  alignas(kCacheLine) std::atomic<uint64_t> tcp_ports[kPortWords];
  std::atomic<uint64_t> udp_ports[kPortWords];

  alignas(kCacheLine) ThreadTable threads;
  alignas(kCacheLine) PublishedRules rules;
};

inline constexpr uint32_t kFenceFull = 0;        // seq_cst fences on both sides
inline constexpr uint32_t kFenceAsymmetric = 1;  // compiler barrier + membarrier (fence.h)

inline bool PortBit(const std::atomic<uint64_t>* words, uint16_t port_host) {
  return (words[port_host >> 6].load(std::memory_order_acquire) >> (port_host & 63)) & 1;
}

// ----------------------------------------------------- datagram rings

// A UDP ring from one sender socket to one receiver socket: records of
// DgramRecord + payload padded to 8 bytes, in a byte ring of `capacity`.
// A record never wraps: a record whose len is kDgramSkip pads to the end
// (only its first 4 bytes need fit).
//
// Same-host rings (one per sender socket -> receiver endpoint) have a fixed
// source, src_addr/src_port, set by the daemon; the records' addresses are
// unused. A UDP socket served by an engine (on the wire) has a segment of
// two rings (WireUdpSegmentBytes) with kDgramAddrPerRecord set:
//   ring 0, app -> engine: each record carries its destination;
//   ring 1, engine -> app: each record carries its source.
// An IPv4 address (an AF_INET6 socket's v4-mapped peers included) is in the
// record's `addr`. An IPv6 one (an AF_INET6 socket on the wire) sets
// kDgramAddr6 in the record's `ttl` field: the record's first 16 bytes
// (counted in `len`) are then the address (network order) and the
// datagram follows them; `addr` is 0. DgramAddr6Payload() reads it.
// The engine reads ring 0 as untrusted input (dgram_ring.h
// CheckedDgramConsumer) and trusts none of the app-written fields.
struct alignas(kCacheLine) DgramHeader {
  uint64_t magic;        // kDgramMagic
  uint32_t capacity;     // power of two
  uint32_t src_addr;     // sender's address (network order), fixed per ring
  uint16_t src_port;     // network order
  // Wire TX ring: the largest payload the engine sends (MTU - 28; larger
  // datagrams go through the kernel, which fragments). 0 otherwise.
  uint16_t max_payload;
  uint32_t flags;        // kDgramAddrPerRecord
  // Datagrams the producer dropped because the ring was full (engine ->
  // app: the socket's receive-buffer drops), or the consumer dropped as
  // invalid (app -> engine). Written by the daemon only (relaxed: a
  // statistic); the client adds it to its socket slot's `drops`.
  std::atomic<uint64_t> drops;
  RingIndexes idx;       // `shut` is kShutFin once the sender closed
};
struct DgramRecord {
  uint32_t len;          // payload bytes, or kDgramSkip
  uint32_t addr;         // kDgramAddrPerRecord: destination (TX) / source (RX), network order
  uint16_t port;         // network order
  // Wire TX records to a multicast group: kDgramTtlSet | IP_MULTICAST_TTL
  // (0..255); 0 = the default (RFC 1112 6.1: TTL 1). Ignored otherwise.
  // Wire records either way: kDgramAddr6 (an IPv6 address, see above).
  uint16_t ttl;
  uint32_t reserved32;
};
inline constexpr uint16_t kDgramTtlSet = 0x100;
// Wire records: the address is IPv6, in front of the payload (above).
inline constexpr uint16_t kDgramAddr6 = 0x200;
inline constexpr uint32_t kDgramAddr6Bytes = 16;
static_assert(sizeof(DgramRecord) == 16, "records stay 8-byte aligned");
inline constexpr uint32_t kDgramSkip = 0xffffffffu;
inline constexpr uint32_t kDgramAddrPerRecord = 1;
inline constexpr uint32_t kMaxDatagram = 65507;
// The record of the payload `p` (what a consumer's Front() returned) has
// an IPv6 address in front of its datagram (kDgramAddr6): true, `addr6`
// (16 bytes) copied, `*payload`/`*len` moved past it. False for an IPv4
// record (nothing changed). A record flagged but shorter than the
// address is reported as IPv6 with an empty datagram.
inline bool DgramAddr6Payload(const uint8_t** payload, size_t* len, uint8_t* addr6) {
  uint16_t flags;
  std::memcpy(&flags, *payload - sizeof(DgramRecord) + offsetof(DgramRecord, ttl), 2);
  if ((flags & kDgramAddr6) == 0) return false;
  if (*len < kDgramAddr6Bytes) {
    std::memset(addr6, 0, kDgramAddr6Bytes);
    *payload += *len;
    *len = 0;
    return true;
  }
  std::memcpy(addr6, *payload, kDgramAddr6Bytes);
  *payload += kDgramAddr6Bytes;
  *len -= kDgramAddr6Bytes;
  return true;
}
inline constexpr size_t DgramSegmentBytes(uint32_t capacity) {
  return sizeof(DgramHeader) + size_t{capacity};
}
// A wire UDP socket's segment: ring 0 (app -> engine) at offset 0, ring 1
// (engine -> app) at DgramSegmentBytes(capacity), same capacity.
inline constexpr size_t WireUdpSegmentBytes(uint32_t capacity) {
  return 2 * DgramSegmentBytes(capacity);
}

// --------------------------------------------------- attach protocol

// Every message on engine.sock is one SEQPACKET record: a Msg (exactly
// sizeof(Msg) bytes) plus up to kMaxMsgFds fds in SCM_RIGHTS.
enum class MsgType : uint32_t {
  // client -> daemon
  kHello = 1,          // value: kAbiVersion. Reply kHelloOk + [arena memfd].
  kTcpListen = 2,      // fds: [listening socket]. value: backlog, opts: the socket's
                       // options (pipe.h SockOpts; sent again, same listener, when
                       // they change after listen()). Reply kListener
                       // + [listener memfd] (shm/listener.h), or kStatus.
  kTcpConnect = 4,     // fds: [socket, bound]. remote: destination, opts: the socket's
                       // options (an engine's SYN uses them). Reply kChannel
                       // (see there), or kStatus kStatusUseKernel (no offloaded peer:
                       // the kernel connects) or an errno.
  kUdpBind = 6,        // fds: [shadow socket, receiver eventfd]. Reply kStatus.
  kUdpUnbind = 7,      // no reply.
  kUdpOpen = 8,        // Reply kDgram + [memfd, receiver efd] or kStatus: kStatusUseKernel,
                       // or 0 (socket with an engine endpoint): use its wire ring.
                       // To a multicast group: `value` / `value64` are the socket's
                       // IP_MULTICAST_IF ifindex / address (network order; 0: any),
                       // and no same-host ring is offered (local members get the
                       // datagram through the kernel, IP_MULTICAST_LOOP).
  kDgramClose = 9,     // no reply.
  kUdpWire = 11,       // `id`: a registered UDP endpoint asks for an engine endpoint.
                       // Reply kDgram + [memfd (WireUdpSegmentBytes(value)), engine
                       // doorbell efd], or kStatus kStatusUseKernel (the kernel serves
                       // the wire).
  kUdpJoin = 12,       // `id`: a UDP endpoint with an engine endpoint joined multicast
                       // group remote.addr on the interface local.addr / ifindex
                       // `value` (0: any; the kernel socket has joined already).
                       // Reply kStatus: 0 the engine receives the group for the
                       // socket's port, kStatusUseKernel the kernel does, or an errno.
  kUdpLeave = 13,      // the same fields: the membership is dropped. No reply.
  kMapChannel = 14,    // fds: [a socket proving access: the listener the channel
                       // serves, or a pipe end in it]. id: channel id.
                       // Reply kChannel + [channel memfd], or kStatus.
  kDoorbell = 15,      // value64: a doorbell id. Reply kDoorbellFd + [eventfd], or kStatus
                       // ENOENT (that process is gone: drop the id).
  kShare = 16,         // fds: [socket]. The socket is (about to be) held by several
                       // processes: from now on offloadd watches it and closes it
                       // when the last holder anywhere has closed it. kind
                       // kSharePipe (channel id, slot, gen, end) or kShareListener
                       // (listener id). No reply.
  kAdopt = 17,         // fds: [socket]. A process that got the socket by exec or
                       // SCM_RIGHTS asks what it is. Reply kAdopted (kind, ids,
                       // addresses) + [channel or listener memfd], or kStatus
                       // ENOENT (not offloaded: a kernel socket).
  kFreeSlot = 18,      // channel id, slot, gen: the process closed its end of a pipe
                       // an engine had already finished; offloadd frees the slot.
                       // No reply.
  kRegisterDoorbell = 19,  // fds: [a thread's doorbell eventfd]. value64: its id (ring.h;
                           // chosen by the thread, kept across daemon restarts).
                           // Reply kStatus 0, or EEXIST (the id is taken: pick another).
  kUnregisterDoorbell = 20,  // value64: a doorbell id of this process. No reply.
  kRegisterHintedDoorbell = 21,  // kRegisterDoorbell for a doorbell with a hint ring
                                 // (hint_ring.h: an epoll set's). fds: [eventfd, hint
                                 // ring memfd, sealed against shrinking]. value64: its
                                 // id (low kHintTokenBits clear). Reply as kRegisterDoorbell,
                                 // or EINVAL for a ring that is not one.
  // daemon -> client
  kHelloOk = 101,      // value64: arena bytes.
  kStatus = 102,       // result of a request: `status` (0 or a positive errno)
  kChannel = 103,      // reply to kTcpConnect / kMapChannel: id channel id, value
                       // capacity, value64 channel file size (extents), id2 listener id.
                       // fds: [channel memfd, listener memfd] (kTcpConnect; the
                       // listener memfd only for same-host channels) or [channel
                       // memfd] (kMapChannel). kTcpConnect through an engine:
                       // kind kChannelEngine, slot/gen the pipe the engine allocated
                       // (end 0 is ours; connect_status says when it is connected).
  kListener = 104,     // reply to kTcpListen: id listener id. fds: [listener memfd].
  kDgramOffer = 105,   // a new incoming ring for a UDP receiver: fds [memfd]
  kDgram = 106,        // reply to kUdpOpen: fds [memfd, receiver efd]
  kDoorbellFd = 107,   // reply to kDoorbell: fds [eventfd] or [eventfd, hint ring memfd]
  kAdopted = 108,      // reply to kAdopt: kind kSharePipe (id channel id, slot, gen,
                       // end, value capacity, value64 channel size; fds [channel memfd])
                       // or kShareListener (id listener id; fds [listener memfd]).
  kDoorbellGone = 109,  // value64: a doorbell id this process asked for (kDoorbell) whose
                        // owner unregistered it or exited: close the copy. Sent once
                        // per asking process; a client that does not know it ignores it.
  kChannelGone = 110,  // id: a same-host channel this process was given (kChannel,
                       // kAdopted) is retired: its connecting process is gone and
                       // every slot is free. Unmap it once no pipe end uses it.
};

// Msg::status of a kTcpConnect, kUdpOpen, kUdpWire or kUdpJoin reply: the
// kernel serves the socket (no offloaded peer, no engine endpoint, another
// interface). Every other status is 0 or a positive errno.
inline constexpr int32_t kStatusUseKernel = -1;
// Msg::kind values.
inline constexpr uint32_t kChannelSameHost = 1;  // kChannel: a same-host channel
inline constexpr uint32_t kChannelEngine = 2;    // kChannel: an engine allocated the pipe
inline constexpr uint32_t kSharePipe = 1;
inline constexpr uint32_t kShareListener = 2;

inline constexpr int kMaxMsgFds = 4;
inline constexpr size_t kMaxProgramName = 32;
inline constexpr size_t kMaxAppId = 64;

// IPv4 endpoint, network byte order, as in sockaddr_in.
struct Addr4 {
  uint32_t addr;
  uint16_t port;
  uint16_t pad;
};

// kTcpConnect to an IPv6 destination that is not v4-mapped: Msg::remote
// holds the port (remote.addr is 0) and this the address. family is
// AF_INET6 then, 0 for an IPv4 destination (or a v4-mapped one, which
// travels as IPv4 in Msg::remote).
struct Dst6 {
  uint8_t addr[16];
  uint32_t family;
  uint32_t scope_id;
};

struct Msg {
  MsgType type;
  uint32_t seq;         // request sequence; replies echo it; 0 for async
  int32_t status;       // kStatus: 0 or errno
  uint32_t id;          // listener / channel / endpoint / ring / doorbell id (see types)
  uint32_t id2;         // second id (see types)
  uint32_t value;       // see types
  uint64_t value64;     // see types
  uint32_t kind;        // kChannel* / kShare*
  uint32_t slot;        // pipe slot
  uint32_t gen;         // pipe slot generation
  uint32_t end;         // pipe end (0 connector, 1 acceptor)
  Addr4 local;          // the sender's own endpoint (connect: bound shadow)
  Addr4 remote;         // destination / peer
  union {
    char program[kMaxProgramName];  // kHello
    SockOpts opts;                  // kTcpConnect / kTcpListen: the socket's options (pipe.h)
  };
  union {
    char app_id[kMaxAppId];  // kHello
    Dst6 remote6;            // kTcpConnect
  };
};
static_assert(sizeof(SockOpts) == kMaxProgramName, "options share the program name's bytes");
static_assert(std::is_trivially_copyable<Msg>::value, "Msg goes over a socket");
static_assert(sizeof(Msg) == 160, "attach protocol ABI");

static_assert(std::is_standard_layout<ArenaHeader>::value, "shm layout");
static_assert(std::is_standard_layout<PipeRecord>::value, "shm layout");
static_assert(std::is_standard_layout<ListenerHeader>::value, "shm layout");
static_assert(std::is_standard_layout<ChannelHeader>::value, "shm layout");
static_assert(std::is_standard_layout<DgramHeader>::value, "shm layout");
static_assert(sizeof(SocketSlot) == 4 * kCacheLine, "slot layout");
// What the arena embeds from the rule grammar is part of this ABI too.
static_assert(sizeof(rules::Rule) == 196, "rules::Rule is published in the arena: bump kAbiVersion");
// The sizes of everything in shared memory at this kAbiVersion. A change of
// any of them is an incompatible change: bump kAbiVersion, then update the
// version and the sizes here together.
static_assert(kAbiVersion == 13 && sizeof(ArenaHeader) == 68864 &&
                  sizeof(PublishedRules) == 50192 && sizeof(ThreadTable) == 2056 &&
                  sizeof(DgramHeader) == 448 && sizeof(RingIndexes) == 384 &&
                  sizeof(PipeRecord) == 1472 && sizeof(ChannelHeader) == 4096 &&
                  sizeof(ListenerHeader) == 135168 && sizeof(HintRing) == 16576,
              "shared-memory layout changed: bump kAbiVersion and update these sizes");

// Size of the arena for `max_sockets` slots, rounded up to a page.
inline constexpr uint64_t ArenaBytesFor(uint32_t max_sockets) {
  return (sizeof(ArenaHeader) + uint64_t{max_sockets} * sizeof(SocketSlot) + 4095) & ~uint64_t{4095};
}

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_ABI_H_
