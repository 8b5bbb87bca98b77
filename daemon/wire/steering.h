// Steering: which flows the offloaded interface's NIC hands to the engines'
// queues instead of the kernel (nic::NicDriver::Steer: the XDP flow map, or
// ibv_create_flow), with the per-queue count the statistics show, and the
// reference counts of the keys several engine endpoints share: a UDP port's
// unicast key (sockets with SO_REUSEADDR/SO_REUSEPORT) and a multicast
// (group, port) (every member socket on the port).
//
// A flow's key is steered BEFORE the engine can send for it (a SYN,ACK
// that reached the kernel would be answered with a RST) and released only
// when the engine is done with it (Release, after TIME-WAIT).
//
// Thread safety: every method may be called from any thread (control
// plane, gRPC threads, engine threads). The counts are atomics; the shared
// keys and each endpoint's groups are guarded by mu_. The driver's Steer
// and Unsteer are thread-safe (nic.h).

#ifndef OFFLOAD_DAEMON_WIRE_STEERING_H_
#define OFFLOAD_DAEMON_WIRE_STEERING_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "daemon/nic/flow.h"
#include "daemon/nic/nic.h"

namespace offload::wire {

class Steering {
 public:
  // REQUIRES: `driver` outlives this object.
  explicit Steering(nic::NicDriver* driver);

  // Steers `key` to `queue` and counts it. Errors: the driver's.
  absl::Status Steer(uint32_t queue, const nic::FlowKey& key);
  // Steer, with a failure logged: true when steered.
  bool TrySteer(uint32_t queue, const nic::FlowKey& key);
  // The flow of `key` is gone: unsteers it (NotFound is not an error: the
  // key may never have been steered) and counts the release.
  void Release(uint32_t queue, const nic::FlowKey& key);

  // Shared keys. Acquire* steers the key for its first user and returns
  // false (nothing counted) when that fails; Release* unsteers it with
  // its last user. Ports and addresses are host order.
  bool AcquireUdpPort(uint32_t queue, uint32_t ip, uint16_t port);
  void ReleaseUdpPort(uint32_t queue, uint32_t ip, uint16_t port);
  // The same for an IPv6 address.
  bool AcquireUdpPort6(uint32_t queue, const nic::Ip6Bytes& ip, uint16_t port);
  void ReleaseUdpPort6(uint32_t queue, const nic::Ip6Bytes& ip, uint16_t port);
  // `endpoint` (a WireUdp cookie) joins `group` on `port`.
  bool AcquireGroup(uint32_t queue, uint64_t endpoint, uint32_t group, uint16_t port);
  // `endpoint` leaves `group`: false when it is not a member.
  bool ReleaseGroup(uint32_t queue, uint64_t endpoint, uint32_t group, uint16_t port);
  // `endpoint` is closed: leaves all its groups.
  void ReleaseAllGroups(uint32_t queue, uint64_t endpoint, uint16_t port);

  // Keys steered to `queue` now (statistics).
  uint64_t steered(uint32_t queue) const;
  // Flows released since start.
  uint64_t released() const { return released_.load(std::memory_order_relaxed); }

 private:
  // Drops one reference to (group, port). REQUIRES: mu_ held.
  void DropGroupRef(uint32_t queue, uint32_t group, uint16_t port);

  nic::NicDriver* const driver_;
  std::unique_ptr<std::atomic<uint64_t>[]> steered_;  // per queue
  const size_t num_queues_;
  std::atomic<uint64_t> released_{0};

  std::mutex mu_;
  // (ip, port) -> endpoints using the unicast key; (group, port) -> member
  // endpoints; endpoint -> its groups. All guarded by mu_.
  std::map<std::pair<uint32_t, uint16_t>, int> udp_refs_;
  std::map<std::pair<nic::Ip6Bytes, uint16_t>, int> udp6_refs_;
  std::map<std::pair<uint32_t, uint16_t>, int> group_refs_;
  std::map<uint64_t, std::vector<uint32_t>> groups_;
};

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_STEERING_H_
