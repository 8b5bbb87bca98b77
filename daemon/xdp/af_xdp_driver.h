// The af_xdp NIC driver: AF_XDP sockets on queues 0..n-1 of any Linux
// interface, with the XDP steering program deciding which received packets
// come to offloadd (see steer_program.h) -- everything else stays with the
// kernel.
//
// Queue placement: on a multi-queue interface Steer() also asks the NIC,
// through an ethtool n-tuple rule, to deliver the flow to the chosen queue
// (see ntuple.h). Interfaces without n-tuple filters fall back to RSS.
// Rules are removed by Unsteer() and on destruction; a daemon killed with
// SIGKILL leaves its rules behind (they only pin flows to queues; the XDP
// program still passes unsteered traffic to the kernel).
//
// Multicast: steering a UDP multicast group also joins the group on the
// interface through a kernel socket (IP_ADD_MEMBERSHIP): the NIC then accepts
// the group's MAC, and the kernel sends the IGMP reports that make switches
// forward the group. The datagrams themselves are redirected by the XDP
// program before the kernel stack sees them.
//
// Lifetime: creating the driver attaches the program (replacing a stale one
// left by a killed daemon) and binds the sockets; destroying it detaches the
// program first (traffic returns to the kernel at once), then closes the
// sockets.
// Thread safety: see nic::NicDriver.

#ifndef OFFLOAD_DAEMON_XDP_AF_XDP_DRIVER_H_
#define OFFLOAD_DAEMON_XDP_AF_XDP_DRIVER_H_

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/nic/config.h"
#include "daemon/nic/nic.h"
#include "daemon/xdp/af_xdp_queue.h"
#include "daemon/xdp/steer_program.h"

namespace offload::xdp {

class AfXdpDriver : public nic::NicDriver {
 public:
  // Opens `config.num_queues` queues of interface `config.name` in the
  // calling thread's network namespace. Errors: NotFound (no interface),
  // InvalidArgument (queue count), FailedPrecondition (foreign XDP program,
  // zero-copy required but unavailable), PermissionDenied, Internal.
  static absl::StatusOr<std::unique_ptr<AfXdpDriver>> Create(
      const nic::InterfaceConfig& config);

  ~AfXdpDriver() override;

  const nic::InterfaceInfo& info() const override { return info_; }
  size_t num_queues() const override { return queues_.size(); }
  nic::NicQueue* queue(size_t i) override { return queues_[i].get(); }
  absl::Status Steer(const nic::FlowKey& flow, uint32_t queue) override;
  absl::Status Unsteer(const nic::FlowKey& flow) override;

  // Counters of the XDP program (passes by reason, redirects).
  absl::StatusOr<SteerStats> ReadSteerStats() const {
    return program_->ReadStats();
  }
  bool native_xdp() const { return program_->native(); }
  // False once the interface refused an n-tuple rule (RSS decides).
  bool hardware_steering() const;

 private:
  AfXdpDriver() = default;
  // REQUIRES: steer_mu_ held. Reference-counted per group.
  absl::Status JoinGroup(uint32_t group);
  void LeaveGroup(uint32_t group);

  nic::InterfaceInfo info_;
  std::unique_ptr<SteerProgram> program_;
  std::vector<std::unique_ptr<AfXdpQueue>> queues_;
  // AF_INET socket of the interface's namespace, for ethtool ioctls issued
  // from any thread.
  int ioctl_fd_ = -1;

  mutable std::mutex steer_mu_;  // serialises Steer/Unsteer; guards below
  bool ntuple_supported_ = true;
  using Key = std::tuple<int, uint32_t, uint16_t, uint32_t, uint16_t>;
  std::map<Key, uint32_t> ntuple_rules_;  // flow -> rule location
  struct Membership {
    int fd = -1;   // kernel socket holding the IP_ADD_MEMBERSHIP
    int refs = 0;  // steered flows of this group
  };
  std::map<uint32_t, Membership> groups_;  // multicast group -> membership
};

}  // namespace offload::xdp

#endif  // OFFLOAD_DAEMON_XDP_AF_XDP_DRIVER_H_
