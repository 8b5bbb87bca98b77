// The offloaded interface: the checks and steps that bring one interface
// under offloadd (privileges, existence, IPv4 address, NIC driver with its
// queues and XDP steering), and what the rest of the wire plane reads of it
// afterwards. Private to daemon/wire.
//
// Thread safety: BringUpInterface runs on the controlling thread; the
// returned struct is immutable afterwards (the driver's own methods state
// theirs).

#ifndef OFFLOAD_DAEMON_WIRE_INTERFACE_H_
#define OFFLOAD_DAEMON_WIRE_INTERFACE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/nic/nic.h"
#include "daemon/wire/route_source.h"

namespace offload::wire {

struct OffloadedInterface {
  nic::InterfaceConfig config;
  std::unique_ptr<nic::NicDriver> driver;  // queues open, steering attached
  int ifindex = 0;
  uint32_t local_ip = 0;  // host order; the stacks' one address
  uint8_t prefix_len = 0;
};

// Brings `config.name` under offload, in the calling thread's network
// namespace: (1) CAP_NET_ADMIN and the interface's existence are checked
// first, so the error says what to fix rather than which syscall failed;
// (2) its first IPv4 address and prefix are read from `view`; (3)
// nic::OpenDriver opens its queues (af_xdp: XDP program + AF_XDP sockets;
// verbs: raw-packet QPs). Errors name the interface: PermissionDenied (no
// CAP_NET_ADMIN, with what to run as), NotFound (no such interface),
// FailedPrecondition (no IPv4 address; the driver's preconditions),
// the driver's other errors annotated.
// `driver` (tests, WireSeams): a driver already open stands for the
// interface's; the privilege check and nic::OpenDriver are skipped. Null:
// the steps above.
absl::StatusOr<std::unique_ptr<OffloadedInterface>> BringUpInterface(
    const nic::InterfaceConfig& config, const RouteSource& view,
    std::unique_ptr<nic::NicDriver> driver = nullptr);

// Dotted-quad text of a host-order IPv4 address (log and error messages).
std::string IpText(uint32_t host_order);
// The netmask of a prefix length, host order (0 for /0).
inline uint32_t PrefixMask(uint8_t len) {
  return len == 0 ? 0 : len >= 32 ? 0xffffffffu : ~0u << (32 - len);
}

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_INTERFACE_H_
