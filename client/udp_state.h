// The datagram path of an offloaded UDP socket, as a Socket holds it
// (Socket::udp): its incoming and outgoing rings, the extra API's receive
// state, and the per-direction locks of this process's threads. Split from
// socket.h, which includes it.

#ifndef OFFLOAD_CLIENT_UDP_STATE_H_
#define OFFLOAD_CLIENT_UDP_STATE_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "client/offload_extra.h"
#include "shm/dgram_ring.h"
#include "shm/end_lock.h"
#include "shm/sockaddr.h"
#include "shm/unique_fd.h"

namespace offload {
namespace client {

struct InRing {  // an incoming UDP ring
  shm::Mapping map;
  shm::DgramConsumer c;
  uint32_t id = 0;          // 0: the socket's wire RX ring (records carry the source)
  shm::SockAddr src = {};   // the sender (canonical), from the daemon's offer
  // Zero-copy receive (udp_extra.cc), under the socket's udp->rx_mu: records
  // lent to the application and not yet freed, one bit per 8-byte slot of
  // the ring at the record's start (allocated at the first lend), and how
  // many. While any is lent the ring's shared head stays at the oldest.
  std::unique_ptr<uint64_t[]> lent;
  uint32_t lent_count = 0;
  // Read position of the front record the receive callback answered RECV
  // (it is not shown to the callback again).
  uint64_t accepted = ~uint64_t{0};
  // A connected socket takes datagrams from its peer only, from this ring
  // position on: what the ring held at connect() stays readable, as the
  // kernel keeps what it queued before (UdpConnected).
  uint64_t connect_from = 0;
};

// A UDP socket that uses the extra API's zero-copy receive or receive
// callback (udp_extra.cc). Created once, freed with the Socket; receives
// on a socket that has one take udp_extra.cc's path.
struct UdpExtra {
  offload_recv_callback_t cb = nullptr;  // under udp->rx_mu
  void* cb_ctx = nullptr;
  std::atomic<pthread_t> cb_thread{};  // the thread inside cb while in_cb
  std::atomic<bool> in_cb{false};
  uint64_t held = 0;         // packets lent, all rings (under udp->rx_mu)
};

struct OutRing {  // an outgoing UDP ring to one destination
  shm::Mapping map;
  shm::DgramProducer p;
  uint32_t id = 0;
  shm::SockAddr dst = {};  // canonical
  shm::UniqueFd efd;      // the receiver's eventfd
};

// One side of a UDP socket (its senders, or its receivers) for the threads
// of this process: an shm::EndLock in process memory, biased to its first
// user, so a socket used by one thread enters with two plain stores where
// a mutex costs two atomic read-modify-writes; the first call from another
// thread revokes the bias and everyone uses the mutex from then on. Never
// shared between processes: a UDP socket held by several goes to the
// kernel, and a forked child starts from fresh locks (Reset(), in
// ResetUdpLocksAfterFork). Take it with MutexGuard.
class SideLock {
 public:
  SideLock() { shm::InitEndLock(&l_); }
  SideLock(const SideLock&) = delete;
  SideLock& operator=(const SideLock&) = delete;
  // REQUIRES: nobody holds it (a forked child, whose other threads are gone).
  void Reset() { shm::InitEndLock(&l_); }
  shm::EndLock* get() { return &l_; }

 private:
  shm::EndLock l_;
};

// UdpState::shut bits.
inline constexpr uint8_t kUdpShutRd = 1;
inline constexpr uint8_t kUdpShutWr = 2;

// The datagram path of a UDP socket (udp*.cc): its same-host rings, its
// engine endpoint, its multicast memberships and the extra API's receive
// state. Every SOCK_DGRAM Socket owns one (Socket::udp) from its creation;
// it is used once the socket's path is kUdp.
//
// Ownership: the rings in new_rings / in_rings / out_rings and the extra
// API's state (extra_owned) are owned here and freed with it.
struct UdpState {
  UdpState() = default;
  ~UdpState();
  UdpState(const UdpState&) = delete;
  UdpState& operator=(const UdpState&) = delete;

  // Handed over by the attach reader, under Socket::mu.
  std::vector<std::unique_ptr<InRing>> new_rings;
  std::atomic<bool> has_new_rings{false};

  // An undecided socket's blocking receivers (io.cc KernelRecvmsg).
  // `waiting_receivers` sleep in poll() on the kernel socket and the
  // socket's eventfd: the decision, whichever way it goes, publishes the
  // path and then kicks the eventfd if any wait (WakeUndecidedReceivers),
  // and they receive again on the path chosen. `kernel_receivers` are the
  // ones that could not get an eventfd and sleep in the kernel's recvmsg:
  // with `deciding` a Dekker pair, so that a socket is never offloaded under
  // such a thread (UdpAfterBind keeps it on the kernel).
  std::atomic<uint32_t> waiting_receivers{0};
  // shutdown() was called (kUdpShutRd | kUdpShutWr), as Linux's
  // sk_shutdown: a blocking receive that finds nothing returns 0 instead of
  // waiting, readiness adds EPOLLRDHUP (and EPOLLHUP for both), and sends
  // go to the kernel, which fails them with EPIPE.
  std::atomic<uint8_t> shut{0};
  std::atomic<uint32_t> kernel_receivers{0};
  std::atomic<bool> deciding{false};

  // Serialise the socket's senders / receivers (threads of this process),
  // so a datagram is never torn and the ring state below is used by one
  // thread at a time.
  SideLock tx_mu;
  SideLock rx_mu;

  // Zero-copy receive / receive callback in use (set once, by the extra
  // API; null for every other socket: the one test of the UDP receive
  // path). Not owning: it points at extra_owned, which the thread that
  // installed it (EnsureExtra) fills and nobody resets before ~UdpState.
  std::atomic<UdpExtra*> extra{nullptr};
  std::unique_ptr<UdpExtra> extra_owned;

  std::vector<std::unique_ptr<InRing>> in_rings;    // receiver-private
  std::vector<std::unique_ptr<OutRing>> out_rings;  // sender-private
  std::vector<uint64_t> no_ring;           // destinations known to be kernel (addr<<16|port)
  uint32_t rr = 0;                         // round-robin start among in_rings
  uint32_t os_poll_count = 0;

  // Served by an engine on the wire (udp_wire.cc): the segment of the two
  // rings (abi.h WireUdpSegmentBytes), the TX producer (sender-private),
  // the engine's doorbell, and a direct-mapped cache of destinations
  // (addr<<16|port) known to go through it or through the kernel. The RX
  // ring is the InRing with id 0.
  shm::Mapping wire_seg;
  shm::DgramProducer wire_tx;
  shm::UniqueFd wire_doorbell;
  uint16_t wire_max_payload = 0;
  uint64_t wire_drops_seen = 0;
  std::unique_ptr<uint64_t[]> wire_routes;

  // Multicast (udp_multicast.cc): the application's memberships (kept so
  // that they can be offered to an engine endpoint that appears later, e.g.
  // joined before bind()) and the IP_MULTICAST_* values it set on the
  // shadow. Addresses network order; `engine`: the engine receives the
  // group for this socket. Used by one thread at a time (setsockopt/send).
  struct McMembership {
    uint32_t group = 0, if_addr = 0;
    int ifindex = 0;
    bool engine = false;
  };
  static constexpr uint32_t kMaxMcGroups = 20;  // Linux IP_MAX_MEMBERSHIPS
  McMembership mc_groups[kMaxMcGroups];
  uint32_t num_mc_groups = 0;
  int mc_ttl = 1;          // IP_MULTICAST_TTL (RFC 1112 6.1 default 1)
  bool mc_loop = true;     // IP_MULTICAST_LOOP (Linux default on)
  uint32_t mc_if_addr = 0; // IP_MULTICAST_IF address / ifindex (0: any)
  int mc_ifindex = 0;
};

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_UDP_STATE_H_
