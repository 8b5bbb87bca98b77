// UdpBroker: offloadd's part in offloaded UDP. Datagrams travel in shared
// memory (shm/dgram_ring.h); the broker only
//   * registers receivers (kUdpBind / kUdpUnbind): the endpoint's address,
//     port and wake-up eventfd, and the port's bit published in every arena
//     (a clear bit sends a process straight to the kernel);
//   * brokers same-host datagram rings (kUdpOpen): one ring from a sender
//     socket to the receiver of its destination, offered to the receiver's
//     process; either side closes its end (kDgramClose), the ring goes when
//     both have;
//   * gives a registered socket an engine endpoint on the wire (kUdpWire,
//     multicast memberships kUdpJoin / kUdpLeave; udp_broker_wire.cc).
// A reply of kStatusUseKernel sends the socket's traffic to the kernel.
//
// Everything a process sends is validated: endpoints and rings are looked
// up in the broker's own tables, the ring's source address is the sender's
// registered one, never what the request claims.
//
// Thread safety: every method runs on the session manager's thread with
// its mutex held (ABSL annotations live on the manager).

#ifndef OFFLOAD_DAEMON_SESSION_UDP_BROKER_H_
#define OFFLOAD_DAEMON_SESSION_UDP_BROKER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "absl/status/status.h"
#include "daemon/session/protocol.h"
#include "daemon/session/session_internal.h"
#include "daemon/wire/wire_plane.h"

namespace offload {
namespace session {

class UdpBroker {
 public:
  struct Env {
    uint32_t max_sockets = 0;     // endpoints per process (rings: 4x)
    uint32_t dgram_capacity = 0;  // bytes of a ring
    // Sets or clears a UDP port bit in every arena.
    std::function<void(uint16_t port_net, bool on)> publish_port;
    // Assigns host-unique ids (endpoints, rings).
    std::function<uint32_t()> next_id;
    // Says an asynchronous message (an offer) was sent to the process.
    std::function<void(Session*)> post_event;
  };
  explicit UdpBroker(Env env) : env_(std::move(env)) {}
  ~UdpBroker();

  // Wire path (null: same host only). Before any request.
  void SetWirePlane(wire::WirePlane* wire, uint32_t wire_addr_net, uint64_t netns);

  // Requests; each replies to `s` unless said otherwise. Errors (the
  // process breaks the protocol: it is detached): InvalidArgument.
  absl::Status Bind(Session* s, Request& req);
  void Unbind(Session* s, uint32_t client_id);  // no reply
  void Open(Session* s, const shm::Msg& m);
  absl::Status CloseRing(Session* s, const shm::Msg& m);  // kDgramClose, no reply
  void Wire(Session* s, const shm::Msg& m);
  void Group(Session* s, const shm::Msg& m);  // kUdpJoin replies, kUdpLeave not

  // `s` is gone: its endpoints are unregistered (UnbindAll), then the ring
  // sides it held are closed (CloseRingsOf).
  void UnbindAll(Session* s);
  void CloseRingsOf(Session* s);

  // Calls `fn` with the network-order port of every registered endpoint.
  template <typename Fn>
  void ForEachPort(Fn fn) const {
    for (const auto& [id, u] : udp_) fn(u->port);
  }

 private:
  // udp_broker_wire.cc: whether the socket's engine endpoint serves a send
  // to m.remote, and its release.
  bool WireRoutes(const UdpEndpoint* u, const shm::Msg& m);
  bool WireRoutes6(const UdpEndpoint* u, const shm::Msg& m);
  void CloseWire(UdpEndpoint* u);
  void CloseSide(uint32_t ring_id, bool sender);

  const Env env_;
  wire::WirePlane* wire_ = nullptr;
  uint32_t wire_addr_ = 0;   // offloaded interface address, network order
  uint64_t wire_netns_ = 0;  // only processes in the daemon's namespace use it
  std::map<uint32_t, std::unique_ptr<UdpEndpoint>> udp_;  // by endpoint id
  std::map<uint32_t, std::unique_ptr<DgramRing>> dgrams_;  // by ring id
};

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_UDP_BROKER_H_
