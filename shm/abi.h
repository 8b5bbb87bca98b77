// The shared-memory ABI between offloadd and liboffload.so: the per-process
// arena, the same-host pipe and datagram-ring segments, and the messages on
// the attach socket (<run dir>/engine.sock, SOCK_SEQPACKET).
//
// One header set, included by both sides; never written twice. Everything
// here is standard-layout, fixed-size and free of pointers so it can live in
// a memfd mapped at different addresses in different processes.
//
// Trust model (DESIGN.md principle 3): the daemon never follows an offset or
// length it reads from shared memory or from the attach socket; it copies,
// then validates (see validate.h). The client trusts the daemon.
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
#include <type_traits>

#include "rules/rules.h"

namespace offload {
namespace shm {

inline constexpr uint64_t kArenaMagic = 0x4f46464c4f414431ull;  // "OFFLOAD1"
inline constexpr uint64_t kPipeMagic = 0x4f46464c50495045ull;   // "OFFLPIPE"
inline constexpr uint64_t kDgramMagic = 0x4f46464c44475231ull;  // "OFFLDGR1"
// Bumped on every incompatible change of anything in shm/.
inline constexpr uint32_t kAbiVersion = 6;

inline constexpr size_t kCacheLine = 64;

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
};
inline constexpr uint8_t kMaxFallback = 8;

enum class SocketState : uint8_t {
  kFree = 0, kCreated = 1, kBound = 2, kListen = 3, kConnecting = 4,
  kEstablished = 5, kClosed = 6,
};
inline constexpr uint8_t kMaxSocketState = 6;

enum class SocketPath : uint8_t { kKernel = 0, kPipe = 1, kUdpRing = 2, kEngine = 3 };
inline constexpr uint8_t kMaxSocketPath = 3;

// Per-socket counters, written by the client (one thread at a time per
// socket, relaxed: they are statistics), read by the daemon for GetStats.
// The daemon copies a slot and validates every enum before use.
struct alignas(kCacheLine) SocketSlot {
  // Written last when a slot is taken (release), first when it is freed;
  // pairs with the daemon's acquire load in session/stats.cc.
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
  std::atomic<uint64_t> rx_bytes, rx_msgs, tx_bytes, tx_msgs;
  std::atomic<uint64_t> rx_eagain, tx_eagain, errors, poll_hits, poll_misses;
  std::atomic<uint64_t> rx_queue_bytes, rx_queue_max, drops;
  // UDP multicast: groups joined that the engine receives / that only the
  // kernel serves (another interface, no engine endpoint); datagrams to
  // groups sent through the engine / the kernel; host-local copies sent
  // through the kernel for IP_MULTICAST_LOOP next to an engine send.
  std::atomic<uint32_t> mc_groups_engine, mc_groups_kernel;
  std::atomic<uint64_t> mc_tx_engine, mc_tx_kernel, mc_loop_copies;
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

  // Daemon -> client, live.
  alignas(kCacheLine) std::atomic<uint64_t> events_posted;
  // Incremented by the daemon (release) after it has sent an asynchronous
  // message (an offer) on this process's attach socket; the client compares
  // it (acquire) with the number it consumed to know a recv() is worthwhile.
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

// --------------------------------------------------------------- pipes

// One direction of a byte stream. `tail` and `head` are free-running byte
// counts; the data area has `capacity` (power of two) bytes.
//
// Four cache lines so that the steady state touches only what it must: the
// producer writes its line on every send, the consumer its line on every
// receive; the wake-up/close flags live on lines written only when a side
// goes to sleep or closes, so reading them on every send/receive stays a
// cache hit.
struct RingIndexes {
  // Producer line: written only by the producer (and by the daemon when the
  // producer's process dies).
  alignas(kCacheLine) std::atomic<uint64_t> tail;
  // Store-release by the producer after copying data; pairs with the
  // consumer's load-acquire before it reads data.
  std::atomic<uint32_t> shut;
  // kShutFin (write side shut down) / kShutRst (aborted). Store-release after
  // the last tail update; pairs with the consumer's load-acquire once it has
  // found the ring empty.

  // Consumer line: written only by the consumer.
  alignas(kCacheLine) std::atomic<uint64_t> head;
  // Store-release by the consumer after copying data out; pairs with the
  // producer's load-acquire before it reuses the space.

  // Consumer flags line: written by the consumer when it goes to sleep or
  // closes (and by the producer when it clears the flag to kick).
  alignas(kCacheLine) std::atomic<uint32_t> reader_needs_wakeup;
  // The need-wake-up handshake: the consumer sets it (seq_cst store), then
  // re-checks tail and only then sleeps on its eventfd; the producer, after
  // its tail store, does a seq_cst fence, loads it and, if set, exchanges it
  // to 0 and writes the consumer's eventfd. Either the consumer sees the new
  // tail or the producer sees the flag: no lost wake-up.
  std::atomic<uint32_t> reader_closed;
  // 1 once the consumer's socket is closed (store-release; the producer's
  // send fails with EPIPE after a load-acquire). 2 = closed with unread data
  // (the producer sees ECONNRESET).

  // Producer flags line: written by a producer that sleeps on a full ring.
  alignas(kCacheLine) std::atomic<uint32_t> writer_needs_wakeup;
  // Set by a producer that found the ring full (seq_cst), then it re-checks
  // head and sleeps; the consumer, after advancing head, does a seq_cst
  // fence, loads it and, if set, exchanges it to 0 and kicks the producer.
  std::atomic<uint32_t> writer_lazy;
  // 1 while the producer skips its fast-side fence (a stream: fence.h,
  // ByteRingProducer::SetLazy). Stored with a full fence after it (on) or
  // release after the last lazy commit (off); a consumer loads it after its
  // sleep fence and, if set, issues shm::PeerBarrier() before re-checking.
};

inline constexpr int32_t kConnectPending = -1;

inline constexpr uint32_t kShutFin = 1;
inline constexpr uint32_t kShutRst = 2;

// Segment layout: PipeHeader, then data[0] (connector -> acceptor, capacity
// bytes), then data[1] (acceptor -> connector, capacity bytes).
//
// The other side of a pipe is either another process (same host) or an
// engine of offloadd serving a TCP connection on the wire; the application
// sees the same rings, and only connect_status tells them apart.
struct alignas(kCacheLine) PipeHeader {
  uint64_t magic;        // kPipeMagic
  uint32_t capacity;     // per direction, power of two
  std::atomic<uint32_t> abort_requested;
  // Bit `side` set (fetch_or, release) by a process closing that side with
  // SO_LINGER {1, 0}; read (acquire) by the daemon when the side's liveness
  // pipe hangs up, to send RST instead of FIN.
  std::atomic<int32_t> connect_status;
  // 0: connected (always for same-host pipes). kConnectPending: an engine is
  // completing the TCP handshake; it stores 0 or the errno of the failure
  // (ECONNREFUSED, ETIMEDOUT, ...) with release and then kicks the
  // connector's eventfd; the connector loads it with acquire.
  RingIndexes dir[2];    // [0]: connector -> acceptor; [1]: acceptor -> connector
};
inline constexpr size_t PipeSegmentBytes(uint32_t capacity) {
  return sizeof(PipeHeader) + 2 * size_t{capacity};
}
inline constexpr size_t PipeDataOffset(int dir, uint32_t capacity) {
  return sizeof(PipeHeader) + size_t(dir) * capacity;
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
  uint16_t ttl;
  uint32_t reserved32;
};
inline constexpr uint16_t kDgramTtlSet = 0x100;
static_assert(sizeof(DgramRecord) == 16, "records stay 8-byte aligned");
inline constexpr uint32_t kDgramSkip = 0xffffffffu;
inline constexpr uint32_t kDgramAddrPerRecord = 1;
inline constexpr uint32_t kMaxDatagram = 65507;
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
  kHello = 1,          // fds: none. Reply kHelloOk + [arena memfd].
  kTcpListen = 2,      // fds: [shadow socket, listener eventfd]. Reply kStatus.
  kTcpUnlisten = 3,    // no reply.
  kTcpConnect = 4,     // fds: [shadow socket]. Reply kPipe + [memfd, own efd, peer efd] or kStatus.
  kPipeClose = 5,      // no reply. Also acknowledges an offer (accepted or refused).
  kUdpBind = 6,        // fds: [shadow socket, receiver eventfd]. Reply kStatus.
  kUdpUnbind = 7,      // no reply.
  kUdpOpen = 8,        // Reply kDgram + [memfd, receiver efd] or kStatus: -1 use the
                       // kernel, 0 (socket with an engine endpoint) use its wire ring.
                       // To a multicast group: `value` / `value64` are the socket's
                       // IP_MULTICAST_IF ifindex / address (network order; 0: any),
                       // and no same-host ring is offered (local members get the
                       // datagram through the kernel, IP_MULTICAST_LOOP).
  kDgramClose = 9,     // no reply.
  kPipeAccepted = 10,  // no reply: an offer left the listener's backlog.
  kUdpWire = 11,       // `id`: a registered UDP endpoint asks for an engine endpoint.
                       // Reply kDgram + [memfd (WireUdpSegmentBytes(value)), engine
                       // doorbell efd], or kStatus (-1: the kernel serves the wire).
  kUdpJoin = 12,       // `id`: a UDP endpoint with an engine endpoint joined multicast
                       // group remote.addr on the interface local.addr / ifindex
                       // `value` (0: any; the kernel socket has joined already).
                       // Reply kStatus: 0 the engine receives the group for the
                       // socket's port, -1 the kernel does, or an errno.
  kUdpLeave = 13,      // the same fields: the membership is dropped. No reply.
  // daemon -> client
  kHelloOk = 101,
  kStatus = 102,       // result of a request: `status` (0 or a positive errno)
  kPipe = 103,         // a connect succeeded: fds [memfd, own efd, peer efd, alive];
                       // status 1: the peer is an engine (PipeHeader::connect_status)
  kOffer = 104,        // a connection for a listener: fds [memfd, own efd, peer efd, alive];
                       // status 1: the peer is an engine (a connection on the wire)
  // `alive` is the write end of the side's liveness pipe: the daemon holds
  // the read end and ends the side (FIN, or RST with unread data) when the
  // last copy in any process is closed, so fork/dup/fd passing follow the
  // kernel's file reference count.
  kDgramOffer = 105,   // a new incoming ring for a UDP receiver: fds [memfd]
  kDgram = 106,        // reply to kUdpOpen: fds [memfd, receiver efd]
};

inline constexpr int kMaxMsgFds = 4;
inline constexpr size_t kMaxProgramName = 32;
inline constexpr size_t kMaxAppId = 64;

// IPv4 endpoint, network byte order, as in sockaddr_in.
struct Addr4 {
  uint32_t addr;
  uint16_t port;
  uint16_t pad;
};

struct Msg {
  MsgType type;
  uint32_t seq;         // request sequence; replies echo it; 0 for async
  int32_t status;       // kStatus: 0 or errno
  uint32_t id;          // listener / pipe / endpoint / ring id (see types)
  uint32_t id2;         // second id (kOffer: pipe id; kDgramOffer: ring id)
  uint32_t value;       // kHello: ABI version; kTcpListen: backlog; kPipe/kOffer/kDgram*: capacity
  uint64_t value64;     // kHelloOk: arena bytes
  Addr4 local;          // the sender's own endpoint (connect: bound shadow)
  Addr4 remote;         // destination / peer
  char program[kMaxProgramName];
  char app_id[kMaxAppId];
};
static_assert(std::is_trivially_copyable<Msg>::value, "Msg goes over a socket");
static_assert(sizeof(Msg) == 144, "attach protocol ABI");

static_assert(std::is_standard_layout<ArenaHeader>::value, "shm layout");
static_assert(std::is_standard_layout<PipeHeader>::value, "shm layout");
static_assert(std::is_standard_layout<DgramHeader>::value, "shm layout");
static_assert(sizeof(RingIndexes) == 4 * kCacheLine, "one line per writer and purpose");
static_assert(sizeof(SocketSlot) == 3 * kCacheLine, "slot layout");

// Size of the arena for `max_sockets` slots, rounded up to a page.
inline constexpr uint64_t ArenaBytesFor(uint32_t max_sockets) {
  return (sizeof(ArenaHeader) + uint64_t{max_sockets} * sizeof(SocketSlot) + 4095) & ~uint64_t{4095};
}

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_ABI_H_
