// Internals shared by the files of the offloaded UDP socket: udp.cc (the
// entry points), udp_rings.cc (same-host datagram rings), udp_wire.cc (the
// engine endpoint), udp_multicast.cc (memberships and group sends),
// udp_extra.cc and udp_extra_api.cc (the extra API), and
// the attach session's dispatch of ring offers (attach.cc). Other client
// code uses ops.h.
//
// Thread safety: each function says which of the socket's locks it needs
// (socket.h: udp->tx_mu for the sending side, udp->rx_mu for the receiving
// side).

#ifndef OFFLOAD_CLIENT_UDP_INTERNAL_H_
#define OFFLOAD_CLIENT_UDP_INTERNAL_H_

#include <netinet/in.h>
#include <pthread.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>

#include "client/offload_extra.h"
#include "client/socket.h"
#include "shm/abi.h"

namespace offload {
namespace client {

// Spins a full ring gets before a blocking send sleeps (the wire) or a
// datagram is dropped (same host).
inline constexpr uint64_t kFullRingSpins = 4096;

// --- udp_rings.cc: same-host datagram rings ---------------------------------
// The message telling offloadd this process is done with its side of
// datagram ring `ring_id` (`sender`: the producing side, else the consuming
// one). The only place a kDgramClose is built.
shm::Msg DgramCloseMsg(uint32_t ring_id, bool sender);
// Sends DgramCloseMsg() (fire and forget).
void SendDgramClose(uint32_t ring_id, bool sender);
// Maps the ring offered by kDgramOffer `m` in memfd `fd` (borrowed) as an
// incoming ring. Null if it cannot be mapped (the caller closes the
// ring: DgramCloseMsg).
std::unique_ptr<InRing> MapOfferedRing(const shm::Msg& m, int fd);
// A destination as a 64-bit key (no_ring, the wire cache).
uint64_t NoRingKey(const shm::SockAddr& d);
bool SameEndpoint(const shm::SockAddr& a, const shm::SockAddr& b);
// REQUIRES: udp->rx_mu. Takes the rings offered since the last call.
void AdoptNewRings(Socket* s);
// REQUIRES: udp->rx_mu. The next datagram of `r` the socket may receive:
// a connected socket's datagrams from others than its peer (past
// InRing::connect_from) are dropped on the way, as the kernel never queues
// them. Its payload (*len bytes; the record is *rec_len) and source, or
// null. `shared`: the rings are read from their shared heads. `drop`
// consumes a dropped record instead (the extra API's, which keeps lent
// records' space).
const uint8_t* PeerFront(Socket* s, InRing* r, bool shared, size_t* len, size_t* rec_len,
                         shm::SockAddr* from,
                         void (*drop)(Socket*, InRing*, size_t) = nullptr);
// REQUIRES: udp->rx_mu. Drops incoming rings whose sender is gone and that
// are empty.
void ReapRings(Socket* s);
// Makes sure the shadow has a local port (Linux autobinds on first send).
bool EnsureBound(Socket* s);
// REQUIRES: udp->tx_mu. A same-host ring to `d`, or nullptr: then *wire says
// whether the socket's engine endpoint serves `d` (else the kernel does).
// The ring is owned by udp->out_rings.
OutRing* OpenRing(Socket* s, const shm::SockAddr& d, bool* wire);

// --- udp_wire.cc: the engine endpoint ---------------------------------------
// Whether the engine serves a destination, as cached per socket.
enum class WireRoute { kUnknown, kWire, kKernel };
WireRoute CachedRoute(const Socket* s, uint64_t key);
void CacheRoute(Socket* s, uint64_t key, bool wire);
// Forgets the engine endpoint (its daemon is gone, or the socket went back
// to the kernel).
void DropWire(Socket* s);
// Asks offloadd for an engine endpoint on the socket's port. True if the
// socket now has one.
bool RequestWire(Socket* s);
// Engine drops for this socket into the slot's `drops`.
void SyncWireDrops(Socket* s);
// REQUIRES: udp->tx_mu. Sends one datagram through the engine; kUseKernel
// if it is too large for the engine. `ttl`: shm::kDgramTtlSet | TTL for a
// group, else 0.
ssize_t WireSend(Socket* s, const iovec* iov, int iovcnt, size_t len, int flags,
                 const sockaddr_in* dst, uint16_t ttl = 0);
// The same to an IPv6 destination (`dst`.family AF_INET6; abi.h
// kDgramAddr6 record). kUseKernel also for more than 63 iovecs.
ssize_t WireSend6(Socket* s, const iovec* iov, int iovcnt, size_t len, int flags,
                  const shm::SockAddr& dst);
// REQUIRES: udp->rx_mu. The front datagram of the wire RX ring `r` (id 0):
// its payload and `len`, its source in `from` (an IPv6 one from the
// record's kDgramAddr6 address, an IPv4 one AF_INET), and the record's
// length in `rec_len` (what Pop takes). nullptr when the ring is empty.
const uint8_t* WireFront(InRing* r, size_t* len, size_t* rec_len, shm::SockAddr* from);

// --- udp_multicast.cc ---------------------------------------------------------
// True for an IPv4 multicast address (network order).
bool IsGroup(uint32_t addr_net);
// Offers every membership the engine does not serve yet (a new engine
// endpoint).
void ReportJoins(Socket* s);
// The host-local copy of a datagram the engine sent to a group
// (IP_MULTICAST_LOOP).
void LoopCopy(Socket* s, const iovec* iov, int iovcnt, const sockaddr_in* dst);

// --- udp_extra.cc (receive path, lending) / udp_extra_api.cc (entry points)
// recvfrom_zcopy's side of UdpRecvExtra: the caller's buffer, and what was
// done with it.
struct ZcopyOut {
  void* buf;
  size_t len;
  bool force;   // OFFLOAD_MSG_ZCOPY_FORCE: never copy
  bool zcopy;   // out: a packets descriptor was written
};

// The descriptor recvfrom_zcopy writes: packets, one packet, one iovec.
constexpr size_t kDescriptorBytes =
    sizeof(offload_packets_t) + sizeof(offload_packet_t) + sizeof(iovec);
static_assert(kDescriptorBytes == 40, "offload_extra.h documents 40 bytes");
static_assert(sizeof(offload_packet_t) == 16 && sizeof(offload_packets_t) == 8 &&
                  sizeof(offload_info_t) == 80,
              "layouts of VMA's vma_packet_t, vma_packets_t, vma_info_t");

// The extra state of `s`, created on first use (UdpState::extra).
UdpExtra* EnsureExtra(Socket* s);
// True if the calling thread is inside `x`'s socket's receive callback
// (which holds udp->rx_mu): receiving or freeing there would deadlock.
// Inline: every zero-copy receive and free asks.
inline bool InOwnCallback(const UdpExtra* x) {
  return __builtin_expect(x->in_cb.load(std::memory_order_relaxed), 0) &&
         pthread_equal(x->cb_thread.load(std::memory_order_relaxed), pthread_self());
}
// REQUIRES: udp->rx_mu. Frees the lent records of `pkts` (their packet_id,
// as handed out) in order, up to the first one `s` does not hold; returns
// how many were freed. Ring space is released once per run of packets of
// one ring, as far as ring order allows.
size_t FreeLent(Socket* s, UdpExtra* x, const offload_packet_t* pkts, size_t count);

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_UDP_INTERNAL_H_
